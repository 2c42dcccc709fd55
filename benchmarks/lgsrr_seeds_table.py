"""Print the seeds-study table (benchmarks/lgsrr_seeds_study.sh) as Markdown: per variant, the finished seeds,
dev and test macro-F1 / accuracy as mean ± sample std, and the wall time per seed.

    python benchmarks/lgsrr_seeds_table.py [--out outputs/seeds]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

VARIANTS = ("text_only", "lgsrr", "lgsrr_frozen_aspects", "lgsrr_no_rank")


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def finished_seeds(folder: Path) -> dict[int, dict]:
    results = {}
    for path in sorted(folder.glob("seed_*/results.json")):
        record = json.loads(path.read_text())
        if record.get("finished"):
            results[int(path.parent.name.removeprefix("seed_"))] = record
    return results


def table(out: Path) -> str:
    lines = ["| variant | seeds | dev macro-F1 | dev ACC | test macro-F1 | test ACC | test WF1 | wall per seed | precision |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        runs = finished_seeds(out / variant)
        seeds = sorted(runs)
        pick = lambda split, metric: [runs[s][split][metric] for s in seeds]  # noqa: E731
        walls = [runs[s]["wall_seconds"] for s in seeds]
        wall = f"{min(walls) / 60:.1f}–{max(walls) / 60:.1f} min" if walls else "–"
        precision = ", ".join(sorted({runs[s].get("mixed_precision", "?") for s in seeds})) or "–"
        lines.append(f"| {variant} | {' '.join(map(str, seeds)) or 'none'} | {_mean_std(pick('dev', 'macro_f1'))} | "
                     f"{_mean_std(pick('dev', 'accuracy'))} | {_mean_std(pick('test', 'macro_f1'))} | "
                     f"{_mean_std(pick('test', 'accuracy'))} | {_mean_std(pick('test', 'weighted_f1'))} | {wall} | {precision} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/seeds", type=Path)
    print(table(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
