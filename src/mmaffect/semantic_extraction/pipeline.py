"""The three steps wired to files: read samples, run a step through the cache, write the release
files, print a summary. ``run_step(config, "describe")`` etc.; ``run_all(config)`` runs all three.

Output folder (``output_dir``)::

    discover.json                                  step 1: counts, variants, chosen aspects
    data_desc/mintrec2.0/{split}.tsv               step 2 (layout.desc_dir / desc_file)
    data_rank/rank_mintrec2_train.tsv              step 3 (layout.rank_file)
    cache/{discover,describe,rank}.jsonl           every LLM reply and per-sample result
    cache/.lock                                    held while a run writes this folder

so ``load_benchmark("mintrec2", data_dir, descriptions_dir=output_dir/"data_desc/mintrec2.0",
ranks_file=output_dir/"data_rank/rank_mintrec2_train.tsv")`` reads the results unchanged.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .aspects import DEFAULT_ASPECTS, AspectSpec, aspect_from_dict, aspect_from_discovered
from .backends import ChatBackend, build_backend
from .cache import ResponseCache, RunLock, stable_hash
from .config import ExtractionConfig
from .describe import run_describe
from .discover import run_discover, write_discovery
from .prompts import resolve_templates
from .rank import distribution_lines, rank_distribution, read_descriptions, run_rank
from .runner import CachedChat, StepReport
from .samples import DatasetLayout, Sample, layout_from_config, read_samples
from .writers import write_descriptions, write_ranks


class Extraction:
    """One configured run: layout, aspects, templates, backends (built once, shared by steps with
    the same spec), caches under ``output_dir/cache``."""

    def __init__(self, config: ExtractionConfig, *, backend_factory: Callable[[dict], ChatBackend] = build_backend,
                 log: Callable[[str], None] | None = None):
        config.require("data_dir", "output_dir")
        self.config = config
        self.layout: DatasetLayout = layout_from_config(config.dataset)
        self.output_dir = Path(config.output_dir)
        self.templates = resolve_templates(config.templates)
        self.backend_factory = backend_factory
        self._backends: dict[str, ChatBackend] = {}
        self._caches: dict[str, ResponseCache] = {}
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.reports: list[StepReport] = []

    # ------------------------------------------------------------------------ plumbing
    def backend(self, step: str) -> ChatBackend:
        spec = self.config.step_backend(step)
        key = stable_hash(spec)
        if key not in self._backends:
            self._backends[key] = self.backend_factory(spec)
        return self._backends[key]

    def cache(self, step: str) -> ResponseCache:
        if step not in self._caches:
            self._caches[step] = ResponseCache(self.output_dir / "cache" / f"{step}.jsonl", fsync=self.config.fsync)
        return self._caches[step]

    def close(self) -> None:
        for cache in self._caches.values():
            cache.close()

    def samples(self, split: str) -> list[Sample]:
        samples = read_samples(self.layout, self.config.data_dir, split, self.config.video_dir,
                               self.config.allow_outside_data_root)
        return samples[: self.config.limit] if self.config.limit else samples

    def aspects(self) -> list[AspectSpec]:
        if self.config.use_discovered_aspects:
            path = self.output_dir / "discover.json"
            if not path.is_file():
                raise FileNotFoundError(f"use_discovered_aspects is on but {path} does not exist: run 'discover' first")
            chosen = json.loads(path.read_text(encoding="utf-8"))["aspects"]
            k = self.config.discover_config().top_k
            if len(chosen) < k:
                raise ValueError(f"{path} lists {len(chosen)} aspect(s), fewer than top_k={k}: {chosen}")
            aspects = [aspect_from_discovered(name) for name in chosen]
            # top-K by count, written in the release's column order (actions, expressions, interactions first)
            default_order = [a.key for a in DEFAULT_ASPECTS]
            return sorted(aspects, key=lambda a: (default_order.index(a.key) if a.key in default_order else
                                                  len(default_order) + chosen.index(a.name)))
        aspects = [aspect_from_dict(entry) for entry in self.config.aspects]
        keys = [a.key for a in aspects]
        if len(set(keys)) != len(keys) or not aspects:
            raise ValueError(f"aspects must be distinct and non-empty, got {keys}")
        return aspects

    def description_path(self, split: str, base: Path | None = None) -> Path:
        return (base or self.output_dir / self.layout.desc_dir) / self.layout.desc_file.format(split=split)

    @property
    def rank_path(self) -> Path:
        return self.output_dir / self.layout.rank_file

    def _session(self, step: str) -> CachedChat:
        return CachedChat(self.backend(step), self.cache(step))

    def _finish(self, report: StepReport, extra_lines: list[str] = ()) -> None:
        self.reports.append(report)
        for line in report.lines():
            self.log(line)
        for line in extra_lines:
            self.log(line)
        for path in report.outputs:
            self.log(f"  wrote {path}")

    # ------------------------------------------------------------------------ steps
    def discover(self) -> dict:
        config = self.config.discover_config()
        summary, report = run_discover(self.samples(config.split), session=self._session("discover"),
                                       cache=self.cache("discover"), config=config, templates=self.templates,
                                       retry_failed=self.config.retry_failed, progress=self.config.progress)
        path = write_discovery(self.output_dir / "discover.json", summary)
        report.outputs.append(str(path))
        lines = ["  perspectives (replies listing them): "
                 + ", ".join(f"{name} {count}" for name, count in list(summary["counts"].items())[:10])]
        lines.append(f"  top-{config.top_k}: {summary['aspects']}")
        self._finish(report, lines)
        return summary

    def describe(self) -> list[StepReport]:
        config = self.config.describe_config()
        if config.require_video and not self.config.video_dir:
            raise ValueError("describe needs the videos: give --video-dir (or set describe: {require_video: false} "
                             "to describe from the text alone, which is not the paper's method)")
        aspects = self.aspects()
        session = self._session("describe")
        reports = []
        for split in self.config.splits:
            samples = self.samples(split)
            results, report, _ = run_describe(samples, split=split, session=session, cache=self.cache("describe"),
                                              aspects=aspects, config=config, templates=self.templates,
                                              retry_failed=self.config.retry_failed, progress=self.config.progress)
            path = self.description_path(split)
            rows = write_descriptions(path, self.layout, aspects, samples, results)
            report.outputs.append(f"{path} ({rows} rows)")
            self._finish(report)
            reports.append(report)
        return reports

    def rank(self) -> StepReport:
        config = self.config.rank_config()
        aspects = self.aspects()
        samples = self.samples(config.split)
        desc_base = Path(config.descriptions_dir) if config.descriptions_dir else None
        descriptions = read_descriptions(self.description_path(config.split, desc_base), self.layout, aspects)
        results, report, _ = run_rank(samples, descriptions, session=self._session("rank"), cache=self.cache("rank"),
                                      aspects=aspects, config=config, templates=self.templates,
                                      retry_failed=self.config.retry_failed, progress=self.config.progress)
        rows = write_ranks(self.rank_path, self.layout, aspects, samples, results)
        report.outputs.append(f"{self.rank_path} ({rows} rows)")
        self._finish(report, distribution_lines(rank_distribution(results, aspects), aspects))
        return report


def run_step(config: ExtractionConfig, step: str, **kwargs: Any) -> Extraction:
    """Run ``discover``, ``describe``, ``rank`` or ``all`` under the output folder's lock."""
    if step not in ("discover", "describe", "rank", "all"):
        raise ValueError(f"step must be discover, describe, rank or all; got {step!r}")
    steps = ("discover", "describe", "rank") if step == "all" else (step,)
    for name in steps:  # fail on a missing backend before any work
        config.step_backend(name)
    extraction = Extraction(config, **kwargs)
    with RunLock(extraction.output_dir / "cache" / ".lock"):
        try:
            for name in steps:
                getattr(extraction, name)()
        finally:
            extraction.close()
    return extraction
