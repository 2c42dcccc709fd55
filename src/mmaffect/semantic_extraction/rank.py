"""CoT step 3 - importance rank: an LLM ranks the aspects of each training sample given its intent
label, text and descriptions (Template3), and a strict parser turns the reply into a ranking.

Parsing (:func:`parse_ranking`) reads the reply line by line:

* a line that holds only aspect names and connecting words ("1. Interaction with Others",
  "Ranking: A > B > C", "A, followed by B, then C") contributes its names in order;
* a numbered / bulleted / ordinal line ("2) **Speakers' Actions** - because ...", "Second: ...")
  or a line that starts with an aspect name contributes its first name;
* other prose lines contribute nothing (a sentence like "Facial Expressions matter less than
  Interaction with Others" says nothing reliable about positions).

When numbered lines give at least K names only they are used; numbers and ordinals ("Second:",
"Least important:") order them. The first K names must be the K aspects, each once; otherwise the
reply is unusable, the LLM gets a corrective message naming the problem, and after
``max_corrections`` unusable replies the sample is recorded as failed. Nothing is ever guessed:
the reference script ordered aspects by where their names first occur, which silently mis-orders
a reply that misses or repeats an aspect.

Names are recognised in any case, with or without markdown, apostrophes or plural 's', and by
synonyms ("Facial Expressions" or "Emotions" for "Emotions and Facial Expressions").
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from mmaffect.datasets_scripts.reading import unquote

from .aspects import AspectMatcher, AspectSpec, normalise_text
from .cache import ResponseCache, stable_hash
from .prompts import assistant, rank_correction, rank_messages, step_templates, user
from .replies import is_bare_list, list_marker, starts_with
from .runner import CachedChat, Outcome, StepReport, run_samples
from .samples import DatasetLayout, Sample

PARSER_VERSION = 1


@dataclass(frozen=True)
class RankParse:
    """``ranking`` (aspect keys, most important first) or ``problem`` (why the reply is unusable)."""

    ranking: tuple[str, ...] | None
    problem: str | None = None


def parse_ranking(reply: str, aspects: Sequence[AspectSpec], matcher: AspectMatcher | None = None) -> RankParse:
    """The ranking a reply states, or the reason it states none (see the module docstring)."""
    matcher = matcher or AspectMatcher(tuple(aspects))
    names = {a.key: a.name for a in aspects}
    k = len(aspects)
    enumerated: list[tuple[int | None, str]] = []
    items: list[tuple[int | None, str]] = []
    any_mention = False
    for line in normalise_text(reply or "").splitlines():
        marker = list_marker(line)
        mentions = matcher.find(line[marker.end :])
        if not mentions:
            continue
        any_mention = True
        body = line[marker.end :]
        if is_bare_list(body, mentions):
            found = [(marker.position if len(mentions) == 1 else None, m.key) for m in mentions]
        elif marker.enumerated or starts_with(body, 0, mentions[0]):
            found = [(marker.position, mentions[0].key)]
        else:
            continue
        items += found
        if marker.enumerated:
            enumerated += found
    if not any_mention:
        return RankParse(None, "it names none of the aspects")
    pool = enumerated if len(enumerated) >= k else items
    if not pool:
        return RankParse(None, "it gives no list of the aspect names, one per line")
    head = pool[:k]
    positions = [position for position, _ in head]
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        head = sorted(head, key=lambda item: item[0])
    keys = [key for _, key in head]
    repeated = [key for key, count in Counter(keys).items() if count > 1]
    if repeated:
        return RankParse(None, "it names " + " and ".join(names[key] for key in repeated) + " more than once")
    missing = [a.key for a in aspects if a.key not in keys]
    if missing:
        return RankParse(None, "it does not rank " + " and ".join(names[key] for key in missing))
    if pool is enumerated and len(enumerated) > k:
        return RankParse(None, f"its numbered list has {len(enumerated)} items instead of {k}")
    return RankParse(tuple(keys))


# ====================================================================================== step
@dataclass
class RankConfig:
    """Step-3 settings. ``style``: ``paper`` or ``reference`` (see prompts.py). ``split``: the split
    with labels to rank (the paper ranks train only: labels are used only for training)."""

    split: str = "train"
    style: str = "paper"
    max_corrections: int = 2
    descriptions_dir: str | None = None


def read_descriptions(path: str | os.PathLike, layout: DatasetLayout,
                      aspects: Sequence[AspectSpec]) -> dict[str, dict[str, str]]:
    """A descriptions TSV (release layout) -> sample id -> {aspect key: description}. Columns are
    found by aspect name, so "Speakers Actions" and "Speakers' Actions" both work."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"descriptions file not found: {path}")
    matcher = AspectMatcher(tuple(aspects))
    out: dict[str, dict[str, str]] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        # verbatim cells, then the release's quoting layers undone: what the benchmark loader does
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) or []
        missing_ids = [c for c in layout.desc_id_columns if c not in header]
        if missing_ids:
            raise ValueError(f"{path}: missing id column(s) {missing_ids}; header is {header}")
        columns: dict[str, int] = {}
        for index, name in enumerate(header):
            key = matcher.exact(name)
            if key is not None and key not in columns:
                columns[key] = index
        absent = [a.name for a in aspects if a.key not in columns]
        if absent:
            raise ValueError(f"{path}: no column for aspect(s) {absent}; header is {header}")
        id_index = [header.index(c) for c in layout.desc_id_columns]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} fields, found {len(row)}")
            values = {text_col: row[i].strip() for text_col, i in zip(layout.id_columns, id_index)}
            sample_id = layout.id_format.format(**values)
            out[sample_id] = {key: unquote(row[index]) for key, index in columns.items()}
    return out


def rank_fingerprint(session: CachedChat, aspects: Sequence[AspectSpec], config: RankConfig, templates: dict) -> str:
    return stable_hash({
        "step": "rank", "model": session.model, "aspects": [asdict(a) for a in aspects], "style": config.style,
        "max_corrections": config.max_corrections, "templates": step_templates(templates, "rank"),
        "parser": PARSER_VERSION,
    })  # fmt: skip


def rank_one(sample: Sample, descriptions: dict[str, str] | None, *, session: CachedChat, aspects: Sequence[AspectSpec],
             matcher: AspectMatcher, config: RankConfig, templates: dict) -> Outcome:
    """Rank one sample: ask, parse, correct up to ``max_corrections`` times, else fail."""
    # input problems are not final: a later run (after step 2 is complete) picks the sample up
    if descriptions is None:
        return Outcome.failed("no descriptions for this sample", final=False)
    empty = [a.name for a in aspects if not descriptions.get(a.key, "").strip()]
    if empty:
        return Outcome.failed(f"empty description(s) for {', '.join(empty)}", final=False)
    messages = rank_messages(intent=sample.intent, text=sample.text, descriptions=descriptions, aspects=aspects,
                             style=config.style, templates=templates)
    problem = ""
    for attempt in range(config.max_corrections + 1):
        reply = session.ask(sample.uid, messages)
        parsed = parse_ranking(reply, aspects, matcher)
        if parsed.ranking is not None:
            return Outcome.ok(list(parsed.ranking))
        problem = parsed.problem or "unusable reply"
        messages = [*messages, assistant(reply), user(rank_correction(problem, aspects, templates=templates))]
    return Outcome.failed(f"no usable ranking after {config.max_corrections + 1} replies; last: {problem}")


def run_rank(samples: Sequence[Sample], descriptions: dict[str, dict[str, str]], *, session: CachedChat,
             cache: ResponseCache, aspects: Sequence[AspectSpec], config: RankConfig, templates: dict,
             retry_failed: bool = False, progress: bool = True) -> tuple[dict[str, dict], StepReport, str]:
    """Rank every sample; returns (uid -> result, report, fingerprint)."""
    matcher = AspectMatcher(tuple(aspects))
    fingerprint = rank_fingerprint(session, aspects, config, templates)
    report = StepReport(step="rank", split=config.split)
    if retry_failed:
        session.fresh |= {uid for uid, r in cache.results(fingerprint).items() if r["status"] == "failed"}
    calls_before, hits_before = session.calls, session.hits

    def process(sample: Sample) -> Outcome:
        return rank_one(sample, descriptions.get(sample.id), session=session, aspects=aspects, matcher=matcher,
                        config=config, templates=templates)

    results = run_samples(samples, process, uid=lambda s: s.uid, cache=cache, fingerprint=fingerprint, step="rank",
                          report=report, concurrency=session.backend.concurrency, retry_failed=retry_failed,
                          progress=progress)
    report.calls, report.cache_hits = session.calls - calls_before, session.hits - hits_before
    report.extra["distribution"] = rank_distribution(results, aspects)
    return results, report, fingerprint


def rank_distribution(results: dict[str, dict], aspects: Sequence[AspectSpec]) -> dict[str, list[int]]:
    """aspect key -> [count at Rank@1, Rank@2, ...] over successful results (the paper's Table 7)."""
    table = {a.key: [0] * len(aspects) for a in aspects}
    for record in results.values():
        if record["status"] == "ok":
            for position, key in enumerate(record["value"]):
                if key in table:
                    table[key][position] += 1
    return table


def distribution_lines(table: dict[str, list[int]], aspects: Sequence[AspectSpec]) -> list[str]:
    width = max(len(a.rank_label) for a in aspects) + 2
    lines = ["  rank distribution (samples ranked):",
             "    " + " " * width + "".join(f"Rank@{i + 1}".rjust(9) for i in range(len(aspects)))]
    for a in aspects:
        lines.append("    " + a.rank_label.ljust(width) + "".join(str(n).rjust(9) for n in table[a.key]))
    return lines
