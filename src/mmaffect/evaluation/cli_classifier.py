"""``mmaffect evaluate classifier``: a trained LGSRR (or text-only baseline) folder over a benchmark split.

    mmaffect evaluate classifier --model runs/lgsrr/best_model --dataset mintrec2 \\
        --data-dir data/MIntRec2.0/data_text --descriptions-dir data/MIntRec2.0/data_desc --split test

Writes ``results.json``, ``per_class_report.txt`` / ``.json``, ``confusion_matrix.png`` / ``.json`` and
``predictions.jsonl`` into ``--output-dir`` (default ``<model>/eval_<dataset>_<split>``); see
:mod:`mmaffect.train.evaluate` and docs/inference_lgsrr.md.
"""

from __future__ import annotations

import argparse

from mmaffect.train.evaluate import SPLIT_NAMES, evaluate_model


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:  # 0 used to fall back silently to the training config's value
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmaffect evaluate classifier", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", required=True, help="folder written by mmaffect train (best_model) or save_pretrained")
    parser.add_argument("--dataset", required=True, help="mintrec2 | iemocap-da | mintrec | meld")
    parser.add_argument("--data-dir", required=True, help="folder of the split files (e.g. .../data_text/MIntRec2.0)")
    parser.add_argument("--descriptions-dir", help="LGSRR descriptions folder (needed by LGSRR models)")
    parser.add_argument("--ranks-file", help="LGSRR rankings (adds the LLM ranking to predictions.jsonl)")
    parser.add_argument("--split", default="test", help="train | dev | test (default test)")
    parser.add_argument("--output-dir", help="default: <model>/eval_<dataset>_<split>")
    parser.add_argument("--batch-size", type=_positive_int, default=64)
    parser.add_argument("--max-samples", type=_positive_int)
    parser.add_argument("--max-text-length", type=_positive_int, help="default: the training config's")
    parser.add_argument("--max-aspect-length", type=_positive_int, help="default: the training config's")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ranks = args.ranks_file
    if ranks and SPLIT_NAMES.get(args.split) != "train":
        ranks = {SPLIT_NAMES.get(args.split, args.split): ranks}
    evaluate_model(args.model, args.dataset, args.data_dir, descriptions_dir=args.descriptions_dir, ranks_file=ranks,
                   split=args.split, output_dir=args.output_dir, batch_size=args.batch_size,
                   max_samples=args.max_samples, max_text_length=args.max_text_length,
                   max_aspect_length=args.max_aspect_length)
    return 0


__all__ = ["build_parser", "main"]
