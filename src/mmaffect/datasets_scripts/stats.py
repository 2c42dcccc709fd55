"""``mmaffect data-stats NAME --data-dir DIR``: what a benchmark holds, before training on it.

Prints the rows per split and per label (and per value of any other class column, e.g. MELD's
sentiment), text length percentiles in words - and in tokens with ``--tokenizer`` - to choose
``max_text_length`` / ``max_aspect_length``, and, with ``--ranks-file``, the Rank@1/2/3 counts of
each aspect (the LGSRR paper's Table 7). ``--plot out.png`` draws the same as bar charts;
``--json out.json`` writes the numbers.

    mmaffect data-stats mintrec2 --data-dir ../shared/data/lgsrr_release/data_text/MIntRec2.0 \\
        --descriptions-dir ../shared/data/lgsrr_release/data_desc/mintrec2.0 \\
        --ranks-file ../shared/data/lgsrr_release/data_rank/rank_mintrec2_train.tsv --plot stats.png
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import ClassLabel, DatasetDict

from .benchmarks import BENCHMARKS, get_benchmark, load_benchmark
from .labels import ASPECTS

PERCENTILES = (50, 90, 95, 99, 100)


def _percentiles(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {}
    values = np.percentile(np.asarray(lengths), PERCENTILES)
    return {("max" if p == 100 else f"p{p}"): float(v) for p, v in zip(PERCENTILES, values)}


def column(ds, name: str) -> list:
    """A column as a Python list (``ds[name]`` is a lazy Column whose iteration is slow)."""
    return ds.select_columns([name])[:][name]


def compute_stats(dataset: DatasetDict, tokenizer=None, aspect_order=ASPECTS) -> dict:
    """The numbers ``data-stats`` prints, as a JSON-able dict:

    ``rows`` {split: n}; ``classes`` {column: {split: {name: n}}} for every ClassLabel column;
    ``lengths`` {"text"|"aspects": {"words"|"tokens": {split: {p50, p90, p95, p99, max}}}};
    ``ranks`` {split: {"ranked": n, "counts": {aspect: [Rank@1, Rank@2, Rank@3, ...]}}}.
    """
    stats: dict = {"rows": {}, "classes": {}, "lengths": {}, "ranks": {}}
    for split, ds in dataset.items():
        stats["rows"][split] = ds.num_rows
        for name, feature in ds.features.items():
            if isinstance(feature, ClassLabel):
                counts = Counter(column(ds, name))
                per_name = {name: counts.get(i, 0) for i, name in enumerate(feature.names)}
                stats["classes"].setdefault(name, {})[split] = per_name
        texts = {"text": column(ds, "text")}
        if "aspects" in ds.column_names:
            texts["aspects"] = [t for row in column(ds, "aspects") for t in row]
        for kind, values in texts.items():
            words = stats["lengths"].setdefault(kind, {}).setdefault("words", {})
            words[split] = _percentiles([len(t.split()) for t in values])
            if tokenizer is not None:
                tokens = stats["lengths"][kind].setdefault("tokens", {})
                tokens[split] = _percentiles([len(ids) for ids in tokenizer(values)["input_ids"]])
        if "aspect_ranks" in ds.column_names:
            ranked = [r for r in column(ds, "aspect_ranks") if r is not None]
            counts = {
                aspect: [sum(1 for r in ranked if r[k] == position) for position in range(len(aspect_order))]
                for k, aspect in enumerate(aspect_order)
            }
            stats["ranks"][split] = {"ranked": len(ranked), "counts": counts}
    return stats


def format_stats(stats: dict, title: str = "") -> str:
    splits = list(stats["rows"])
    lines = [title] if title else []
    total = sum(stats["rows"].values())
    lines.append("rows: " + " | ".join(f"{s} {n}" for s, n in stats["rows"].items()) + f" | total {total}")
    for column, per_split in stats["classes"].items():
        names = list(next(iter(per_split.values())))
        width = max(len(column), *(len(n) for n in names))
        lines += ["", f"{column:<{width}}  " + "  ".join(f"{s:>10}" for s in splits) + f"  {'total':>7}"]
        for name in names:
            counts = [per_split[s][name] for s in splits]
            lines.append(f"{name:<{width}}  " + "  ".join(f"{c:>10}" for c in counts) + f"  {sum(counts):>7}")
    for kind, units in stats["lengths"].items():
        for unit, per_split in units.items():
            keys = list(next(iter(per_split.values())))
            lines += ["", f"{kind} length ({unit}{', special tokens included' if unit == 'tokens' else ''})"]
            lines.append(f"{'split':<12}" + "".join(f"{k:>8}" for k in keys))
            for split, values in per_split.items():
                lines.append(f"{split:<12}" + "".join(f"{values[k]:>8.0f}" for k in keys))
    for split, ranks in stats["ranks"].items():
        if not ranks["ranked"]:
            continue
        positions = len(next(iter(ranks["counts"].values())))
        lines += ["", f"aspect ranking, {split}: {ranks['ranked']} of {stats['rows'][split]} rows ranked"]
        lines.append(f"{'aspect':<14}" + "".join(f"{f'Rank@{p + 1}':>9}" for p in range(positions)))
        for aspect, counts in ranks["counts"].items():
            lines.append(f"{aspect:<14}" + "".join(f"{c:>9}" for c in counts))
    return "\n".join(lines)


def plot_stats(stats: dict, path, title: str = "") -> None:
    """Bar charts: rows per label and split; Rank@k per aspect (when there are rankings)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label_counts = stats["classes"].get("label", {})
    ranked = {split: r for split, r in stats["ranks"].items() if r["ranked"]}
    panels = 1 + len(ranked)
    names = list(next(iter(label_counts.values()), {}))
    fig, axes = plt.subplots(panels, 1, figsize=(max(8.0, 0.45 * len(names) + 2), 4.5 * panels), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(1, len(label_counts))
    for i, (split, counts) in enumerate(label_counts.items()):
        ax.bar(np.arange(len(names)) + i * width, [counts[n] for n in names], width, label=split)
    ax.set_xticks(np.arange(len(names)) + width * (len(label_counts) - 1) / 2, names, rotation=60, ha="right")
    ax.set_ylabel("rows")
    ax.set_title(f"{title} rows per label".strip())
    ax.legend()
    for ax, (split, ranks) in zip((row[0] for row in axes[1:]), ranked.items()):
        aspects = list(ranks["counts"])
        positions = len(ranks["counts"][aspects[0]])
        width = 0.8 / positions
        for p in range(positions):
            counts = [ranks["counts"][a][p] for a in aspects]
            ax.bar(np.arange(len(aspects)) + p * width, counts, width, label=f"Rank@{p + 1}")
        ax.set_xticks(np.arange(len(aspects)) + width * (positions - 1) / 2, aspects)
        ax.set_ylabel("rows")
        ax.set_title(f"LLM ranking of the aspects ({split}, {ranks['ranked']} rows)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmaffect data-stats", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("name", help=f"benchmark: {', '.join(BENCHMARKS)}")
    parser.add_argument("--data-dir", required=True, help="folder of the split files")
    parser.add_argument("--descriptions-dir", help="LGSRR descriptions folder ({train,dev,test}.tsv)")
    parser.add_argument("--ranks-file", help="LGSRR rankings of the train split")
    parser.add_argument("--media-dir", help="folder of the clips (counts the rows without one)")
    parser.add_argument("--allow-outside-data-root", action="store_true",
                        help="accept row ids whose clip path leaves --media-dir (refused by default)")
    parser.add_argument("--on-bad-rows", choices=("raise", "skip"), default="raise")
    parser.add_argument("--encoding", default="utf-8")
    parser.add_argument("--tokenizer", help="tokenizer folder or id: adds token length percentiles")
    parser.add_argument("--plot", help="write bar charts to this PNG")
    parser.add_argument("--json", help="write the numbers to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bench = get_benchmark(args.name)
    dataset = load_benchmark(
        bench.name, args.data_dir, descriptions_dir=args.descriptions_dir, ranks_file=args.ranks_file,
        media_dir=args.media_dir, on_bad_rows=args.on_bad_rows, encoding=args.encoding, keep_in_memory=True,
        allow_outside_data_root=args.allow_outside_data_root,
    )  # fmt: skip
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    stats = compute_stats(dataset, tokenizer)
    if args.media_dir:
        stats["without_media"] = {s: sum(v is None for v in column(ds, "video")) for s, ds in dataset.items()}
    print(format_stats(stats, f"{bench.title} ({bench.name}) from {args.data_dir}"))
    if args.media_dir:
        print("\nrows without a clip: " + " | ".join(f"{s} {n}" for s, n in stats["without_media"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if args.plot:
        plot_stats(stats, args.plot, bench.title)
        print(f"wrote {args.plot}")
    return 0


__all__ = ["column", "compute_stats", "format_stats", "main", "plot_stats"]
