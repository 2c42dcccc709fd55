"""Prediction files -> metrics: the ``mmaffect evaluate score`` side of the one scoring dispatch.

:data:`mmaffect.evaluation.scoring.SCORERS` holds, per task, how generated replies are scored (``generate``)
and which function of this module scores prediction files (``score``). Each ``score_*_files`` function takes
the parsed command line and the aligned :class:`FileInputs`, adds its task's extra fields to ``result`` and
returns ``(metrics, table, extractor name)``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from mmaffect.errors import UsageError
from mmaffect.metrics import classification, erg, eri, label_extraction, mer, msa
from mmaffect.metrics.emotion_wheel import normalize_labels
from mmaffect.metrics.records import RecordFile, align_by_id, read_records

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
NO_EXTRACTOR = "none (labels given)"


@dataclass
class FileInputs:
    """Predictions and references joined by sample id (what every ``score_*_files`` function reads)."""

    predictions_file: RecordFile
    ids: list[str]
    predictions: list[Any]
    references: list[Any]
    reference_lines: list[str]
    text_mode: bool  # --extractor lexicon|llm: the prediction field holds free text


def json_arg(text: str, flag: str) -> dict:
    """A JSON-object command-line value, or a :class:`UsageError` naming ``flag``."""
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
        backend = load_backend(args.llm_backend, json_arg(args.llm_kwargs, "--llm-kwargs"))
        return label_extraction.LLMLabelExtractor(
            backend, task=kind, cache_path=_cache_path(args, "extract_cache"),
            chat_kwargs=json_arg(args.chat_kwargs, "--chat-kwargs"),
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


def _label_predictions(args, raw_predictions, kind):
    """Label lists (or sentiment strings) from the prediction field, plus the extractor name."""
    if args.extractor == "none":
        return raw_predictions, NO_EXTRACTOR
    extractor = _make_extractor(args, kind)
    extracted = _extract_all(extractor, raw_predictions, "labels")
    return extracted, extractor.name


def prediction_candidates(task: str, text_mode: bool) -> tuple[str, ...]:
    """The fields tried, in order, for the prediction of ``task``."""
    if task == "erg":
        return RESPONSE_FIELDS if text_mode else PREDICTION_FIELDS["erg"]
    return TEXT_FIELDS if (text_mode and task in ("mer", "ovmer", "msa")) else PREDICTION_FIELDS[task]


def load_inputs(args) -> tuple[FileInputs, dict]:
    """Both files read and joined by id; the field choices and counts for the result."""
    task, text_mode = args.task, args.extractor != "none"
    try:
        predictions_file = read_records(args.predictions, args.pred_id_field or args.id_field)
        references_file = read_records(args.references, args.ref_id_field or args.id_field)
        pred_field = predictions_file.pick_field(args.pred_field, prediction_candidates(task, text_mode), "predictions")
        ref_field = references_file.pick_field(args.ref_field, REFERENCE_FIELDS[task], "references")
    except ValueError as error:
        if task == "erg" and not text_mode and "cannot tell which field holds the predictions" in str(error):
            raise ValueError(f"{error}; for free-text answers pass --extractor lexicon or llm") from None
        if task in ("mer", "ovmer", "msa") and not text_mode and "cannot tell which field" in str(error) and "predictions" in str(error):
            raise ValueError(f"{error}; for free-text predictions pass --extractor lexicon or llm") from None
        raise
    predictions = predictions_file.field(pred_field)
    references = references_file.field(ref_field)
    ids, aligned_predictions, aligned_references, extra = align_by_id(
        predictions, references, missing=args.missing, missing_value="", predictions_name=args.predictions
    )
    empty = [sample_id for sample_id, value in zip(ids, aligned_references) if value is None or str(value).strip() == ""]
    if empty:
        raise ValueError(f"{args.references}: {len(empty)} reference(s) are empty, e.g. {empty[:5]}")
    info = {
        "prediction_field": pred_field,
        "reference_field": ref_field,
        "num_references": len(references),
        "num_missing_predictions": sum(1 for sample_id in references if sample_id not in predictions),
        "num_extra_predictions": len(extra),
    }
    lines = [f"{args.references}:{references_file.lines[sample_id]}" for sample_id in ids]
    return FileInputs(predictions_file, ids, aligned_predictions, aligned_references, lines, text_mode), info


def score_mer_files(args, inputs: FileInputs, result: dict):
    """mer (hit rate) and ovmer (set F / P / R) over the emotion wheels."""
    label_lists, extractor_name = _label_predictions(args, inputs.predictions, "emotion")
    if args.task == "mer":
        metrics = mer.hit_rate(label_lists, inputs.references, args.wheel_dir, protocol=args.protocol)
        table = {"Hit Rate": 100 * metrics["hit_rate"]}
    else:
        metrics = mer.ov_mer_scores(label_lists, inputs.references, args.wheel_dir, protocol=args.protocol)
        table = {"F (WAF)": 100 * metrics["f1"], "P": 100 * metrics["precision"], "R": 100 * metrics["recall"]}
    result["num_empty_predictions"] = sum(1 for labels in label_lists if not normalize_labels(labels))
    return metrics, table, extractor_name


def score_msa_files(args, inputs: FileInputs, result: dict):
    """msa: WAF and accuracy on the non-neutral samples."""
    sentiments, extractor_name = _label_predictions(args, inputs.predictions, "sentiment")
    if inputs.text_mode:
        sentiments = [items[0] if items else "" for items in sentiments]
    metrics = msa.msa_scores(sentiments, inputs.references, unknown_prediction=args.unknown_prediction or "neutral",
                             protocol=args.protocol, reference_names=inputs.reference_lines)
    if metrics["num_treated_as_neutral"]:  # the benchmark's rule, but never without a word
        print(f"mmaffect evaluate: warning: {metrics['num_treated_as_neutral']} of {len(inputs.ids)} prediction(s) in "
              f"{args.predictions} are not a sentiment ({metrics['protocol']} protocol) and were scored as neutral; "
              "--unknown-prediction error lists them", file=sys.stderr)
    return metrics, {"WAF": 100 * metrics["waf"], "Acc": 100 * metrics["accuracy"]}, extractor_name


def score_mir_files(args, inputs: FileInputs, result: dict):
    """mir: accuracy, weighted and macro scores; the per-class report and confusion PNG on request."""
    y_pred = ["" if value is None else str(value).strip() for value in inputs.predictions]
    y_true = [str(value).strip() for value in inputs.references]
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
    return metrics, table, NO_EXTRACTOR


def _erg_responses(args, inputs: FileInputs, result: dict) -> list[str] | None:
    """The generated replies for Dist-n: only when the file carries them (or --response-field names them)."""
    first_record = next(iter(inputs.predictions_file.records.values()))
    if args.response_field is None and not any(name in first_record for name in RESPONSE_FIELDS):
        return None
    response_field = inputs.predictions_file.pick_field(args.response_field, RESPONSE_FIELDS, "responses")
    by_id = inputs.predictions_file.field(response_field)
    result["response_field"] = response_field
    return [str(by_id.get(sample_id) or "") for sample_id in inputs.ids]


def score_erg_files(args, inputs: FileInputs, result: dict):
    """erg: emotion accuracy / hit rate, and Dist-1/2 when the replies are there."""
    extractor_name = NO_EXTRACTOR
    if inputs.text_mode:
        emotions_raw, extractor_name = _label_predictions(args, inputs.predictions, "erg")
        emotions = [items[0] if items else "neutral" for items in emotions_raw]
        responses = [str(value or "") for value in inputs.predictions]
    else:
        emotions = ["" if value is None else str(value) for value in inputs.predictions]
        responses = _erg_responses(args, inputs, result)
    metrics = erg.erg_scores(emotions, inputs.references, responses, unknown_prediction=args.unknown_prediction or "error",
                             protocol=args.protocol)
    table = {"Acc / Hit Rate": f"{100 * metrics['accuracy']:.2f} / {100 * metrics['hit_rate']:.2f}"}
    if responses is not None:
        table.update({"Dist-1": 100 * metrics["dist_1"], "Dist-2": 100 * metrics["dist_2"]})
    return metrics, table, extractor_name


def score_eri_files(args, inputs: FileInputs, result: dict):
    """eri: clue and label overlap rated by an LLM judge (--llm-backend)."""
    if not args.llm_backend:
        raise UsageError("--task eri needs a judge: --llm-backend openai|transformers|MODULE:FACTORY (any object with chat())")
    backend = load_backend(args.llm_backend, json_arg(args.llm_kwargs, "--llm-kwargs"))
    chat_kwargs = json_arg(args.chat_kwargs, "--chat-kwargs") if args.chat_kwargs != "{}" else None
    judge = eri.make_overlap_judge(backend, args.protocol, cache_path=_cache_path(args, "eri_judge"), chat_kwargs=chat_kwargs)
    texts = ["" if value is None else str(value) for value in inputs.predictions]
    metrics = eri.eri_overlap_scores(texts, [str(value) for value in inputs.references], judge, ids=inputs.ids, progress=True)
    result["judge"] = metrics["judge"]
    result["judge_cache"] = judge.cache.path and str(judge.cache.path)
    table = {"Clue Overlap": metrics["clue_overlap"], "Label Overlap": metrics["label_overlap"]}
    return metrics, table, f"judge:{metrics['judge']}"


__all__ = ["FileInputs", "json_arg", "load_backend", "load_inputs", "prediction_candidates", "score_eri_files",
           "score_erg_files", "score_mer_files", "score_mir_files", "score_msa_files"]
