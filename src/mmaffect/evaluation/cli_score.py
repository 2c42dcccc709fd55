"""``mmaffect evaluate score --task TASK --predictions FILE --references FILE``: score prediction files.

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

Predictions and references are joined by sample id (see :mod:`mmaffect.metrics.records`); each task is
scored by its entry of the one dispatch, :data:`mmaffect.evaluation.scoring.SCORERS`. The
JSON written by ``--output`` holds the raw metrics (fractions), the table values (paper units),
the extractor / judge that produced them and the sample counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mmaffect.metrics import classification
from mmaffect.metrics.emotion_wheel import WHEEL_DIR_ENV
from mmaffect.metrics.protocol import PROTOCOLS, TASKS

from .score_files import load_inputs
from .scoring import scorer_for

DEFAULT_DATASET = {"mer": "MER", "ovmer": "OV-MERD", "msa": "MSA", "mir": "MIR", "erg": "AvaMERG", "eri": "EMER"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmaffect evaluate score",
        description="Score prediction files against references with the affective evaluation suite "
        "(MER-UniBench, MIR, ERG, ERI).",
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


def run_task(args) -> dict:
    """Compute one task's metrics through its entry of the scoring dispatch; returns the JSON-ready result."""
    scorer = scorer_for(args.task)
    inputs, info = load_inputs(args)
    result: dict[str, Any] = {"task": args.task, **info, "num_scored_samples": len(inputs.ids)}
    metrics, table, extractor_name = scorer.files(args, inputs, result)
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


__all__ = ["DEFAULT_DATASET", "build_parser", "format_table", "main", "run_task"]
