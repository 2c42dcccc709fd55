"""``mmaffect evaluate --task TASK --predictions FILE --references FILE``: score prediction files.

Tasks and the paper table each one fills:

========  =====================================  ======================================
task      benchmark                              printed columns
========  =====================================  ======================================
mer       MER2023 / MER2024 / MELD / IEMOCAP     Hit Rate (Table 2)
ovmer     OV-MERD                                F ("WAF" in Table 2), P, R
msa       MOSI / MOSEI / SIMS / SIMSv2           WAF (Table 2), Acc
mir       MIntRec / MIntRec2.0                   Acc, WF1, WP (Table 4) + macro scores
erg       AvaMERG                                Acc / Hit Rate, Dist-1, Dist-2 (Table 5)
eri       EMER                                   Clue Overlap, Label Overlap (Table 3)
========  =====================================  ======================================

Predictions and references are joined by sample id (see :mod:`mmaffect.metrics.records`). The
JSON written by ``--output`` holds the raw metrics (fractions), the table values (paper units),
the extractor / judge that produced them and the sample counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from . import classification, erg, eri, label_extraction, mer, msa
from .emotion_wheel import WHEEL_DIR_ENV, normalize_labels
from .protocol import PROTOCOLS, TASKS
from .records import align_by_id, read_records

DEFAULT_DATASET = {"mer": "MER", "ovmer": "OV-MERD", "msa": "MSA", "mir": "MIR", "erg": "AvaMERG", "eri": "EMER"}

LABEL_FIELDS = ("labels", "openset", "prediction", "pred", "emotions", "emotion", "label", "value")
TEXT_FIELDS = ("text", "response", "output", "reason", "prediction", "value")
REFERENCE_FIELDS = {
    "mer": ("label", "emotion", "Emotion", "labels", "gt", "reference", "value"),
    "ovmer": ("openset", "labels", "label", "gt", "reference", "value"),
    "msa": ("score", "label", "sentiment", "value"),
    "mir": ("label", "Label", "intent", "reference", "value"),
    "erg": ("emotion", "speaker_emotion", "label", "reference", "value"),
    "eri": ("reasons", "reason", "reference", "text", "value"),
}
PREDICTION_FIELDS = {
    "mer": LABEL_FIELDS,
    "ovmer": LABEL_FIELDS,
    "msa": ("sentiment", "prediction", "label", "value"),
    "mir": ("prediction", "pred", "label", "intent", "value"),
    "erg": ("emotion", "prediction", "label"),
    "eri": ("reason", "text", "response", "prediction", "output", "value"),
}
RESPONSE_FIELDS = ("response", "text", "output", "value")


class UsageError(ValueError):
    """A problem with the command line itself."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmaffect evaluate",
        description="Score prediction files with the affective evaluation suite (MER-UniBench, MIR, ERG, ERI).",
    )
    parser.add_argument("--task", required=True, choices=TASKS, help="which metric family to compute")
    parser.add_argument("--predictions", required=True, help="predictions file (.jsonl, .json, .csv, .tsv, .npz)")
    parser.add_argument("--references", required=True, help="references file (same formats)")
    parser.add_argument("--wheel-dir", help=f"emotion-wheel folder (mer, ovmer, lexicon extractor); default ${WHEEL_DIR_ENV}")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--dataset", help="dataset name for the table column (default per task)")
    parser.add_argument("--name", help="row name in the table (default: predictions file stem)")
    parser.add_argument("--id-field", help="id field in both files (default: auto)")
    parser.add_argument("--pred-id-field", help="id field of the predictions file (overrides --id-field)")
    parser.add_argument("--ref-id-field", help="id field of the references file (overrides --id-field)")
    parser.add_argument("--pred-field", help="field holding the prediction (default: auto per task)")
    parser.add_argument("--ref-field", help="field holding the reference (default: auto per task)")
    parser.add_argument("--response-field", help="erg: field with the generated reply for Dist-n")
    parser.add_argument(
        "--extractor", choices=("none", "lexicon", "llm"), default="none",
        help="how free-text predictions become labels: none (the field already holds labels), "
        "lexicon (deterministic word matching) or llm (the benchmark's LLM step, needs --llm-backend)",
    )
    parser.add_argument("--llm-backend", help="LLM for the extractor and the ERI judge: a backend type (openai, transformers) "
                        "or MODULE:FACTORY returning an object with chat(messages) -> str")
    parser.add_argument("--llm-kwargs", default="{}", help="JSON options of the backend, e.g. "
                        "'{\"base_url\": \"http://127.0.0.1:8000/v1\", \"model\": \"qwen2.5-7b\"}'")
    parser.add_argument("--chat-kwargs", default="{}", help="JSON keyword arguments for every chat() call, e.g. '{\"temperature\": 0}'")
    parser.add_argument("--llm-cache", help="JSONL cache of LLM answers (default: next to --output, if given)")
    parser.add_argument("--missing", choices=("error", "empty"), default="error",
                        help="a reference id without prediction: error (default) or score it as an empty prediction")
    parser.add_argument("--unknown-prediction", choices=("error", "neutral"),
                        help="msa (default neutral) / erg (default error): what an unreadable prediction counts as")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="official: reproduce the published scoring scripts exactly; mmaffect: the package's "
                        "guarded choices; default: each metric's own (docs/metrics.md)")
    parser.add_argument("--per-class", action="store_true", help="mir: also print the per-class report")
    parser.add_argument("--confusion-png", help="mir: write the confusion-matrix heat map here")
    return parser


def _json_arg(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{flag} is not valid JSON: {error.msg}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def load_backend(spec: str, kwargs: dict) -> Any:
    """Build a chat backend.

    ``spec`` is either ``"package.module:factory"`` (called with ``kwargs``) or a backend type of
    :func:`mmaffect.semantic_extraction.backends.build_backend` (``openai``, ``transformers``, ...),
    built from ``{"type": spec, **kwargs}``.
    """
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        try:
            from mmaffect.semantic_extraction.backends import build_backend
        except ImportError as error:
            raise UsageError(f"--llm-backend {spec!r}: the semantic-extraction backends are unavailable ({error}); "
                             "use 'package.module:factory'") from None
        try:
            return build_backend({"type": spec, **kwargs})
        except ValueError as error:
            raise UsageError(f"--llm-backend {spec!r}: {error}") from None
    if not module_name:
        raise UsageError(f"--llm-backend must be 'package.module:factory' or a backend type, got {spec!r}")
    try:
        factory = getattr(import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--llm-backend {spec!r} cannot be imported: {error}") from None
    backend = factory(**kwargs)
    if not callable(getattr(backend, "chat", None)):
        raise UsageError(f"--llm-backend {spec!r} built a {type(backend).__name__} without a chat() method")
    return backend


def _cache_path(args, suffix: str) -> str | None:
    if args.llm_cache:
        return args.llm_cache
    if args.output:
        output = Path(args.output)
        return str(output.with_name(f"{output.stem}.{suffix}.jsonl"))
    return None


def _make_extractor(args, kind: str):
    """kind: 'emotion' (mer/ovmer), 'sentiment' (msa) or 'erg'."""
    if args.extractor == "llm":
        if not args.llm_backend:
            raise UsageError("--extractor llm needs --llm-backend (a backend type or MODULE:FACTORY)")
        backend = load_backend(args.llm_backend, _json_arg(args.llm_kwargs, "--llm-kwargs"))
        return label_extraction.LLMLabelExtractor(
            backend, task=kind, cache_path=_cache_path(args, "extract_cache"),
            chat_kwargs=_json_arg(args.chat_kwargs, "--chat-kwargs"),
        )
    if kind == "emotion":
        return label_extraction.LexiconLabelExtractor.from_wheels(args.wheel_dir)
    if kind == "sentiment":
        return label_extraction.SentimentKeywordExtractor()
    return label_extraction.ERGEmotionMatcher()


def _extract_all(extractor, texts: list, what: str) -> list[list[str]]:
    from tqdm.auto import tqdm

    show = getattr(extractor, "name", "").startswith("llm:")
    return [extractor.extract("" if text is None else str(text))
            for text in tqdm(texts, desc=f"extracting {what}", unit="sample", disable=not show)]


def _load(args, prediction_candidates, reference_candidates):
    predictions_file = read_records(args.predictions, args.pred_id_field or args.id_field)
    references_file = read_records(args.references, args.ref_id_field or args.id_field)
    pred_field = predictions_file.pick_field(args.pred_field, prediction_candidates, "predictions")
    ref_field = references_file.pick_field(args.ref_field, REFERENCE_FIELDS[args.task], "references")
    predictions = predictions_file.field(pred_field)
    references = references_file.field(ref_field)
    ids, aligned_predictions, aligned_references, extra = align_by_id(
        predictions, references, missing=args.missing, missing_value="", predictions_name=args.predictions
    )
    info = {
        "prediction_field": pred_field,
        "reference_field": ref_field,
        "num_references": len(references),
        "num_missing_predictions": sum(1 for sample_id in references if sample_id not in predictions),
        "num_extra_predictions": len(extra),
    }
    info["reference_lines"] = [f"{args.references}:{references_file.lines[sample_id]}" for sample_id in ids]
    return predictions_file, ids, aligned_predictions, aligned_references, info


def _check_nonempty_references(ids, references, args):
    empty = [sample_id for sample_id, value in zip(ids, references) if value is None or str(value).strip() == ""]
    if empty:
        raise ValueError(f"{args.references}: {len(empty)} reference(s) are empty, e.g. {empty[:5]}")


def _label_predictions(args, raw_predictions, kind):
    """Label lists (or sentiment strings) from the prediction field, plus the extractor name."""
    if args.extractor == "none":
        return raw_predictions, "none (labels given)"
    extractor = _make_extractor(args, kind)
    extracted = _extract_all(extractor, raw_predictions, "labels")
    return extracted, extractor.name


def run_task(args) -> dict:
    """Compute one task's metrics; returns the JSON-ready result."""
    task = args.task
    text_mode = args.extractor != "none"
    prediction_candidates = TEXT_FIELDS if (text_mode and task in ("mer", "ovmer", "msa")) else PREDICTION_FIELDS[task]
    if task == "erg":
        prediction_candidates = PREDICTION_FIELDS["erg"] if not text_mode else RESPONSE_FIELDS
    try:
        predictions_file, ids, predictions, references, info = _load(args, prediction_candidates, REFERENCE_FIELDS[task])
    except ValueError as error:
        if task == "erg" and not text_mode and "cannot tell which field holds the predictions" in str(error):
            raise ValueError(f"{error}; for free-text answers pass --extractor lexicon or llm") from None
        if task in ("mer", "ovmer", "msa") and not text_mode and "cannot tell which field" in str(error) and "predictions" in str(error):
            raise ValueError(f"{error}; for free-text predictions pass --extractor lexicon or llm") from None
        raise
    _check_nonempty_references(ids, references, args)
    reference_lines = info.pop("reference_lines")
    result: dict[str, Any] = {"task": task, **info, "num_scored_samples": len(ids)}
    extractor_name = "none (labels given)"

    if task in ("mer", "ovmer"):
        label_lists, extractor_name = _label_predictions(args, predictions, "emotion")
        function = mer.hit_rate if task == "mer" else mer.ov_mer_scores
        metrics = function(label_lists, references, args.wheel_dir, protocol=args.protocol)
        if task == "mer":
            table = {"Hit Rate": 100 * metrics["hit_rate"]}
        else:
            table = {"F (WAF)": 100 * metrics["f1"], "P": 100 * metrics["precision"], "R": 100 * metrics["recall"]}
        result["num_empty_predictions"] = sum(1 for labels in label_lists if not normalize_labels(labels))
    elif task == "msa":
        sentiments, extractor_name = _label_predictions(args, predictions, "sentiment")
        if text_mode:
            sentiments = [items[0] if items else "" for items in sentiments]
        metrics = msa.msa_scores(sentiments, references, unknown_prediction=args.unknown_prediction or "neutral",
                                 protocol=args.protocol, reference_names=reference_lines)
        if metrics["num_treated_as_neutral"]:  # the benchmark's rule, but never without a word
            print(f"mmaffect evaluate: warning: {metrics['num_treated_as_neutral']} of {len(ids)} prediction(s) in "
                  f"{args.predictions} are not a sentiment ({metrics['protocol']} protocol) and were scored as neutral; "
                  "--unknown-prediction error lists them", file=sys.stderr)
        table = {"WAF": 100 * metrics["waf"], "Acc": 100 * metrics["accuracy"]}
    elif task == "mir":
        y_pred = ["" if value is None else str(value).strip() for value in predictions]
        y_true = [str(value).strip() for value in references]
        metrics = classification.classification_metrics(y_true, y_pred)
        reference_labels = set(y_true)
        metrics["num_out_of_label_set_predictions"] = sum(1 for value in y_pred if value not in reference_labels)
        table = {"Acc": 100 * metrics["accuracy"], "WF1": 100 * metrics["weighted_f1"], "WP": 100 * metrics["weighted_precision"],
                 "macro F1": 100 * metrics["macro_f1"], "macro P": 100 * metrics["macro_precision"], "macro R": 100 * metrics["macro_recall"]}
        labels = sorted(reference_labels)
        if args.per_class:
            result["per_class"] = classification.per_class_report(y_true, y_pred, labels=labels)
        if args.confusion_png:
            matrix, labels = classification.confusion_matrix(y_true, y_pred, labels=labels)
            result["confusion_png"] = classification.save_confusion_matrix_png(matrix, labels, args.confusion_png)
    elif task == "erg":
        if text_mode:
            emotions_raw, extractor_name = _label_predictions(args, predictions, "erg")
            emotions = [items[0] if items else "neutral" for items in emotions_raw]
            responses = [str(value or "") for value in predictions]
        else:
            emotions = ["" if value is None else str(value) for value in predictions]
            first_record = next(iter(predictions_file.records.values()))
            responses = None  # Dist-n only when the file carries the generated replies
            if args.response_field is not None or any(name in first_record for name in RESPONSE_FIELDS):
                response_field = predictions_file.pick_field(args.response_field, RESPONSE_FIELDS, "responses")
                by_id = predictions_file.field(response_field)
                responses = [str(by_id.get(sample_id) or "") for sample_id in ids]
                result["response_field"] = response_field
        metrics = erg.erg_scores(emotions, references, responses, unknown_prediction=args.unknown_prediction or "error",
                                 protocol=args.protocol)
        table = {"Acc / Hit Rate": f"{100 * metrics['accuracy']:.2f} / {100 * metrics['hit_rate']:.2f}"}
        if responses is not None:
            table.update({"Dist-1": 100 * metrics["dist_1"], "Dist-2": 100 * metrics["dist_2"]})
    else:  # eri
        if not args.llm_backend:
            raise UsageError("--task eri needs a judge: --llm-backend openai|transformers|MODULE:FACTORY (any object with chat())")
        backend = load_backend(args.llm_backend, _json_arg(args.llm_kwargs, "--llm-kwargs"))
        chat_kwargs = _json_arg(args.chat_kwargs, "--chat-kwargs") if args.chat_kwargs != "{}" else None
        judge = eri.make_overlap_judge(backend, args.protocol, cache_path=_cache_path(args, "eri_judge"),
                                       chat_kwargs=chat_kwargs)
        texts = ["" if value is None else str(value) for value in predictions]
        metrics = eri.eri_overlap_scores(texts, [str(value) for value in references], judge, ids=ids, progress=True)
        result["judge"] = metrics["judge"]
        result["judge_cache"] = judge.cache.path and str(judge.cache.path)
        extractor_name = f"judge:{metrics['judge']}"
        table = {"Clue Overlap": metrics["clue_overlap"], "Label Overlap": metrics["label_overlap"]}

    result["extractor"] = extractor_name
    result["metrics"] = metrics
    result["table"] = {key: (round(value, 2) if isinstance(value, float) else value) for key, value in table.items()}
    return result


def format_table(result: dict, dataset: str, name: str) -> str:
    """The paper-style table (one row) plus the per-wheel / per-class details."""
    titles = {
        "mer": "Table 2 - MER: emotion-wheel hit rate (x100)",
        "ovmer": "Table 2 - OV-MER: set F-score / precision / recall over the emotion wheels (x100)",
        "msa": "Table 2 - MSA: weighted F1 (WAF) and accuracy on non-neutral samples (x100)",
        "mir": "Table 4 - MIR: accuracy, weighted F1, weighted precision (x100)",
        "erg": "Table 5 - ERG: emotion accuracy / 8-class hit rate, Dist-n (x100)",
        "eri": "Table 3 - ERI: judge-rated overlap (1-10)",
    }
    headers = ["Model"] + [f"{dataset} {key} \u2191" for key in result["table"]]
    cells = [name] + [f"{value:.2f}" if isinstance(value, float) else str(value) for value in result["table"].values()]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    lines = [
        titles[result["task"]],
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |",
    ]
    metrics = result["metrics"]
    if result["task"] == "mer":
        lines.append("per wheel: " + ", ".join(
            f"{wheel} {100 * value:.2f} (n={metrics['num_scored'][wheel]})" for wheel, value in metrics["per_wheel"].items()))
    if result["task"] == "ovmer":
        lines.append("per wheel F/P/R: " + ", ".join(
            f"{wheel} {100 * v['f1']:.2f}/{100 * v['precision']:.2f}/{100 * v['recall']:.2f}" for wheel, v in metrics["per_wheel"].items()))
    if result["task"] == "mir" and "per_class" in result:
        lines.append(classification.format_per_class_report(result["per_class"]))
    lines.append(
        f"samples scored: {result['num_scored_samples']} (missing predictions: {result['num_missing_predictions']}, "
        f"extra predictions ignored: {result['num_extra_predictions']}); extractor: {result['extractor']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    dataset = args.dataset or DEFAULT_DATASET[args.task]
    name = args.name or Path(args.predictions).stem
    try:
        result = run_task(args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"mmaffect evaluate: error: {error}", file=sys.stderr)
        return 2
    result.update({"dataset": dataset, "name": name, "predictions_file": str(args.predictions),
                   "references_file": str(args.references)})
    if args.wheel_dir and args.task in ("mer", "ovmer"):
        result["wheel_dir"] = str(args.wheel_dir)
    print(format_table(result, dataset, name))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
