"""``mmaffect predict`` against ``mmaffect evaluate`` on the real MIntRec2.0 test split.

Both commands run the same trained folder over the same rows: ``evaluate`` reads the benchmark
folders, ``predict`` reads a JSONL file written from the same rows (id, text, the three descriptions).
The script checks that every row gets the same predicted label and reports the largest difference of
the predicted label's probability and of the importances α.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/lgsrr_predict_vs_evaluate.py \
        --model outputs/predict_vs_evaluate/demo/best_model --output-dir outputs/predict_vs_evaluate

Without ``--model`` it first trains the embedded demo for one epoch (``python train.py``; the demo
uses the MIntRec2.0 label set, so its head reads the real split). ``--max-samples N`` uses the first N
test rows (the test suite runs N = 96; this script's default is the whole split, 2033 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("MMAFFECT_SHARED_DATA", REPO.parent / "shared" / "data")) / "lgsrr_release"


def train_demo(output_dir: Path) -> Path:
    """``python train.py`` on the embedded demo, one epoch; returns its best_model folder."""
    best = output_dir / "best_model"
    if not (best / "processor_config.json").exists():
        subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs" / "lgsrr_demo.yaml"),
                        "--num_train_epochs", "1", "--output_dir", str(output_dir), "--overwrite_output_dir", "true"],
                       check=True)
    return best


def write_input(rows, aspects: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"id": row["id"], "text": row["text"],
                                "descriptions": dict(zip(aspects, row["aspects"]))}) + "\n")


def compare(model: Path, data: Path, output_dir: Path, max_samples: int | None = None, batch_size: int = 64) -> dict:
    """Run both commands; returns the comparison (``same_labels``, ``rows``, the largest differences)."""
    from mmaffect.cli import main as mmaffect
    from mmaffect.datasets_scripts import load_benchmark

    output_dir.mkdir(parents=True, exist_ok=True)
    text_dir, desc_dir = data / "data_text" / "MIntRec2.0", data / "data_desc" / "mintrec2.0"
    rows = load_benchmark("mintrec2", text_dir, descriptions_dir=desc_dir)["test"]
    if max_samples:
        rows = rows.select(range(min(max_samples, len(rows))))
    aspects = json.loads((model / "config.json").read_text())["aspects"]
    write_input(rows, aspects, output_dir / "test_input.jsonl")
    limit = ["--max-samples", str(max_samples)] if max_samples else []
    start = time.time()
    assert mmaffect(["evaluate", "classifier", "--model", str(model), "--dataset", "mintrec2", "--data-dir", str(text_dir),
                     "--descriptions-dir", str(desc_dir), "--split", "test", "--batch-size", str(batch_size),
                     "--output-dir", str(output_dir / "evaluate"), *limit]) == 0
    evaluate_seconds = time.time() - start
    predictions = output_dir / "predict.jsonl"
    predictions.unlink(missing_ok=True)
    start = time.time()
    assert mmaffect(["predict", "--model", str(model), "--input", str(output_dir / "test_input.jsonl"), "--output",
                     str(predictions), "--batch-size", str(batch_size), "--no-progress"]) == 0
    predict_seconds = time.time() - start

    evaluated = {r["id"]: r for r in map(json.loads, (output_dir / "evaluate" / "predictions.jsonl").read_text().splitlines())}
    predicted = {r["id"]: r for r in map(json.loads, predictions.read_text().splitlines())}
    differing = [i for i in evaluated if evaluated[i]["predicted"] != predicted[i]["label"]]
    score_diff = max(abs(evaluated[i]["score"] - predicted[i]["score"]) for i in evaluated)
    importance_diff = max(abs(evaluated[i]["importance"][k] - predicted[i]["importance"][k])
                          for i in evaluated for k in evaluated[i]["importance"])
    return {"rows": len(evaluated), "same_ids": set(evaluated) == set(predicted), "same_labels": not differing,
            "differing_ids": differing[:10], "max_score_difference": score_diff,
            "max_importance_difference": importance_diff, "evaluate_seconds": round(evaluate_seconds, 1),
            "predict_seconds": round(predict_seconds, 1), "model": str(model)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a trained LGSRR folder (default: train the demo for one epoch)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the LGSRR release folder")
    parser.add_argument("--output-dir", default="outputs/predict_vs_evaluate")
    parser.add_argument("--max-samples", type=int, help="first N test rows (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    output_dir = Path(args.output_dir)
    model = Path(args.model) if args.model else train_demo(output_dir / "demo")
    result = compare(model, Path(args.data), output_dir, args.max_samples, args.batch_size)
    print(json.dumps(result, indent=2))
    (output_dir / "comparison.json").write_text(json.dumps(result, indent=2))
    return 0 if result["same_ids"] and result["same_labels"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
