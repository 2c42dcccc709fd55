"""The evaluation loop: benchmark rows -> prompts -> batched replies (cached, resumable) -> scores.

:func:`evaluate_benchmark` writes into ``output_dir``:

* ``replies.jsonl`` - one line per generated reply, appended and flushed as each batch finishes,
  keyed by the predictor's fingerprint and the sample id. A killed run resumes where it stopped:
  finished samples are never generated again (a torn last line is skipped with a warning and its
  sample regenerated). Another predictor (or other decoding settings) gets its own keys.
* ``predictions.jsonl`` - per sample: ``id``, ``reference``, ``reply``, ``prediction`` (what the
  metric scored: labels, sentiment, label, emotion or the explanation);
* ``results.json`` - metrics (fractions; ``null`` where the official value is NaN), the table cells
  (paper units), the protocol of every metric, the extractor / judge, counts, errors;
* ``summary.md`` - the one-row table of the benchmark in the paper's layout;
* ERI only: ``eri_predictions.csv`` (``names,pred_label,chi_reasons``: the file Nano-EmoX's
  ``eval_ovmerd.py`` reads) and ``eri_judge.jsonl`` (every judgement, reused by reruns).

:func:`run_suite` runs every benchmark for which data is given and writes the paper's Tables 2-5
(``paper_tables.md`` / ``.json``) and a chart (``paper_chart.png``), see :mod:`.tables`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmaffect.metrics._llm import JsonlCache
from mmaffect.run_lock import locks_output_dir

from .benchmarks import EvalData, get_eval_benchmark, load_eval_benchmark
from .predictors import EvalRequest
from .scoring import MER_FAMILY, default_prompt_task, make_extractor, score_task

MISSING_MEDIA = ("error", "omit")


def _json_safe(value):
    """NaN / inf -> None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(_json_safe(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


class ReplyStore:
    """``replies.jsonl``: replies keyed by (predictor fingerprint, sample id), appended line by line."""

    def __init__(self, path: str | os.PathLike, fingerprint: Mapping[str, Any]):
        self.fingerprint = json.dumps(fingerprint, sort_keys=True, default=str)
        self.digest = hashlib.sha256(self.fingerprint.encode("utf-8")).hexdigest()[:16]
        # valid JSON without a text reply (hand-edited, another tool's file) is skipped like a torn line
        self.cache = JsonlCache(path, is_valid=lambda record: isinstance(record.get("reply"), str))

    def _key(self, sample_id: str) -> str:
        return f"{self.digest}:{sample_id}"

    def get(self, sample_id: str) -> str | None:
        record = self.cache.get(self._key(sample_id))
        return None if record is None else record["reply"]

    def error(self, sample_id: str) -> str | None:
        """The generation error recorded for the sample (its reply is then empty), or None."""
        record = self.cache.get(self._key(sample_id))
        return None if record is None else record.get("error")

    def put(self, sample_id: str, reply: str, prompt_task: str, error: str | None = None) -> None:
        record = {"key": self._key(sample_id), "id": sample_id, "reply": reply, "prompt_task": prompt_task, "predictor": self.digest}
        self.cache.put({**record, "error": error} if error else record)


def _predict_batch(predictor, batch: list[EvalRequest]) -> list[tuple[str, str | None]]:
    """``(reply, error)`` per request. An error that names the samples it concerns (``sample_rows``, e.g. a
    placeholder that reached the model without its media) does not stop the run: the batch is generated again one
    sample at a time, and a sample that fails alone gets an empty reply and its error recorded."""
    try:
        return [(reply, None) for reply in predictor.predict(batch)]
    except ValueError as error:
        if getattr(error, "sample_rows", None) is None:
            raise
        if len(batch) == 1:
            return [("", f"{type(error).__name__}: {error}")]
        return [pair for request in batch for pair in _predict_batch(predictor, [request])]


def _requests(data: EvalData, prompt_task: str, candidate_labels: Sequence[str]) -> list[EvalRequest]:
    rows = data.samples
    columns = set(rows.column_names)
    requests = []
    for row in rows:
        requests.append(EvalRequest(
            id=row["id"], task=prompt_task, subtitle=row["subtitle"] or "", video=row["video"], audio=row["audio"],
            candidate_labels=tuple(candidate_labels),
            user_input=row["user_input"] if "user_input" in columns else None,
            dialogue_history=list(row["dialogue_history"]) if "dialogue_history" in columns else [],
        ))  # fmt: skip
    return requests


def _prompt_task(predictor, bench, prompt_task: str | None, progress: bool) -> tuple[str, str]:
    """The processor task to ask ``bench`` with and why (printed unless quiet): ``prompt_task`` when given, else
    the choice of :func:`~.scoring.default_prompt_task` from the predictor's ``trained_tasks``."""
    if prompt_task:
        reason = "asked for (--prompt-task)"
    else:
        prompt_task, reason = default_prompt_task(bench.task, getattr(predictor, "trained_tasks", None))
    if progress:
        print(f"{bench.title}: prompting with the {prompt_task} task ({reason})", file=sys.stderr)
    return prompt_task, reason


def _check_media(data: EvalData, requests: list[EvalRequest], needed: set[str], policy: str) -> dict[str, int]:
    missing = {kind: [r.id for r in requests if kind in needed and getattr(r, kind) is None] for kind in ("video", "audio")}
    if policy == "error":
        for kind, ids in missing.items():
            if ids:
                raise FileNotFoundError(
                    f"{data.benchmark.title}: {len(ids)} of {len(requests)} samples have no {kind} file "
                    f"(looked in {data.media_folders.get(kind)}), e.g. {ids[:5]}; pass --media-dir, or "
                    "--missing-media omit to drop that modality for those samples"
                )
    return {kind: len(ids) for kind, ids in missing.items()}


def _ground_truth(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def format_summary(result: dict) -> str:
    """The benchmark's one-row table in the paper's layout, plus counts, protocols and errors."""
    table = result["table"]
    headers = ["Model", "Scale"] + [f"{result['title']} {key} \u2191" for key in table]
    cells = [result["predictor"], result.get("scale") or "-"]
    cells += ["-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in table.values()]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    lines = [
        f"{result['title']} ({result['task']}): {result['num_samples']} samples, "
        f"{result['num_generated']} generated now, {result['num_cached']} from {result['replies_file']}",
        "",
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |",
        "",
        "protocols: " + (", ".join(f"{k}={v}" for k, v in result["protocols"].items()) or "-")
        + f"; extractor: {result['extractor']}; prompt task: {result['prompt_task']}"
        + (f" ({result['prompt_task_reason']})" if result.get("prompt_task_reason") else ""),
    ]
    failed = result.get("generation_errors") or {}
    if failed:
        first = next(iter(failed.items()))
        lines.append(f"generation failed for {len(failed)} sample(s) (scored as empty replies), e.g. {first[0]}: {first[1]}")
    for metric, message in result["errors"].items():
        lines.append(f"not scored - {metric}: {message}")
    return "\n".join(lines)


@locks_output_dir  # one generation run per folder at a time (the main process; other ranks pass)
def evaluate_benchmark(
    predictor,
    benchmark: str | EvalData,
    output_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    media_dir: str | os.PathLike | None = None,
    prompt_task: str | None = None,
    protocol: str | None = None,
    wheel_dir=None,
    extractor: str | Any = "lexicon",
    llm_backend=None,
    judge=None,
    max_samples: int | None = None,
    missing_media: str = "error",
    progress: bool = True,
    scale: str | None = None,
    allow_outside_data_root: bool = False,
) -> dict:
    """Evaluate ``predictor`` on one benchmark and write the files of the module doc.

    Args:
        predictor: a :class:`~mmaffect.evaluation.predictors.Predictor`.
        benchmark: a benchmark name (read from ``data_dir``) or an :class:`EvalData`.
        prompt_task: the processor task to prompt with (default: :func:`~.scoring.default_prompt_task` from the
            predictor's ``trained_tasks``; e.g. ``"MER"`` asks MER datasets with their candidate labels, ``"OV-MER"``
            the open question). The choice and why are printed (unless ``progress=False``) and kept in the results.
        protocol: ``"official"`` / ``"mmaffect"`` for every metric; ``None`` = each metric's default.
        wheel_dir: emotion-wheel folder (mer / ovmer / msa); default ``$MMAFFECT_WHEEL_DIR``.
        extractor: ``"lexicon"`` (offline proxy), ``"llm"`` (needs ``llm_backend``) or an extractor object.
        judge: ERI judge (:func:`mmaffect.metrics.make_overlap_judge`); ``None`` leaves ERI unscored.
        max_samples: evaluate the first N test samples only.
        missing_media: ``"error"`` (default: a sample without a needed video / audio file stops the
            run before anything is generated) or ``"omit"`` (its prompt leaves that modality out).
        allow_outside_data_root: accept media paths that leave ``data_dir`` / ``media_dir`` (refused by default).

    Returns:
        the ``results.json`` content.
    """
    if missing_media not in MISSING_MEDIA:
        raise ValueError(f"missing_media must be one of {MISSING_MEDIA}, got {missing_media!r}")
    data = _load_data(benchmark, data_dir, media_dir, max_samples, allow_outside_data_root)
    bench = data.benchmark
    prompt_task, prompt_reason = _prompt_task(predictor, bench, prompt_task, progress)
    candidates = data.candidate_labels if prompt_task in ("MER", "MIR") else ()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    wheels, extractor = _scoring_tools(bench.task, wheel_dir, extractor, llm_backend, output_dir)

    requests = _requests(data, prompt_task, candidates)
    missing = _check_media(data, requests, predictor.required_media(), missing_media)
    fingerprint = {**predictor.fingerprint(), "prompt_task": prompt_task}
    shard = _process_shard()
    store, num_generated = _generate(predictor, requests, output_dir, fingerprint, prompt_task, shard,
                                     progress, bench.title)
    if store is None:  # another process than the main one: the main process scored and wrote
        return json.loads((output_dir / "results.json").read_text(encoding="utf-8"))

    ids = [r.id for r in requests]
    scored = _score_replies(data, ids, store, output_dir, protocol=protocol, wheels=wheels, extractor=extractor,
                            judge=judge, progress=progress)
    result = {
        "benchmark": bench.name, "title": bench.title, "task": bench.task, "prompt_task": prompt_task,
        "prompt_task_reason": prompt_reason, "generation_errors": {i: e for i in ids if (e := store.error(i))},
        "predictor": predictor.name, "scale": scale, "predictor_fingerprint": predictor.fingerprint(),
        "data_dir": data.source, "num_samples": len(ids), "num_generated": num_generated,
        "num_cached": len(requests) - num_generated, "num_missing_media": missing, "metrics": scored["metrics"],
        "table": scored["table"], "protocols": scored["protocols"], "extractor": scored["extractor"],
        "errors": scored["errors"], "replies_file": str(output_dir / "replies.jsonl"),
        "predictions_file": str(output_dir / "predictions.jsonl"),
    }  # fmt: skip
    if bench.task == "eri" and judge is not None:
        result["judge_cache"] = str(getattr(judge.cache, "path", "") or "")
        result["judge_is_official"] = bool(getattr(judge, "is_official_model", False))
    _write_json(output_dir / "results.json", result)
    (output_dir / "summary.md").write_text(format_summary(result) + "\n", encoding="utf-8")
    if shard is not None:
        shard.wait_for_everyone()
    return _json_safe(result)


def _load_data(benchmark, data_dir, media_dir, max_samples: int | None, allow_outside_data_root: bool) -> EvalData:
    """The benchmark's test rows (read from ``data_dir`` unless given as :class:`EvalData`), the first
    ``max_samples`` only when asked."""
    if isinstance(benchmark, EvalData):
        data = benchmark
    else:
        if data_dir is None:
            raise ValueError(f"benchmark {benchmark!r} needs a data_dir")
        data = load_eval_benchmark(benchmark, data_dir, media_dir, allow_outside_data_root=allow_outside_data_root)
    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        data = dataclasses.replace(data, samples=data.samples.select(range(min(max_samples, len(data.samples)))))
    return data


def _scoring_tools(task: str, wheel_dir, extractor, llm_backend, output_dir: Path):
    """``(wheels, extractor)``: the emotion wheels and the reply -> labels extractor of mer / ovmer / msa (None
    for the other tasks); an extractor object passes through."""
    wheels = None
    if task in MER_FAMILY:
        from mmaffect.metrics.emotion_wheel import load_emotion_wheels

        wheels = load_emotion_wheels(wheel_dir)
    if isinstance(extractor, str):
        extractor = None if task not in MER_FAMILY else make_extractor(
            task, extractor, wheels, llm_backend, cache_path=output_dir / "extract_cache.jsonl")
    return wheels, extractor


def _generate(predictor, requests: list[EvalRequest], output_dir: Path, fingerprint: dict, prompt_task: str, shard,
              progress: bool, title: str) -> tuple[ReplyStore | None, int]:
    """Generate the replies not yet in ``replies.jsonl`` (each process its share of the batches when sharded).

    Returns ``(store, number generated now)``; the store of ``replies.jsonl`` holds every reply on the main
    process, and is None on the other processes (which wait for the main one to score)."""
    if shard is not None:
        _merge_shards(output_dir, shard)
    store = ReplyStore(output_dir / "replies.jsonl", fingerprint)
    todo = [r for r in requests if store.get(r.id) is None]
    batches = [todo[i: i + predictor.batch_size] for i in range(0, len(todo), predictor.batch_size)]
    if shard is not None:  # whole batches round-robin: the per-batch seed sees the batches one process would
        batches = batches[shard.process_index:: shard.num_processes]
        store = ReplyStore(output_dir / f"replies.part{shard.process_index}.jsonl", fingerprint)
    from tqdm.auto import tqdm

    with tqdm(total=sum(map(len, batches)), desc=f"{title}: generating", unit="sample",
              disable=not progress or not batches or (shard is not None and not shard.is_main_process)) as bar:
        for batch in batches:
            replies = _predict_batch(predictor, batch)
            if len(replies) != len(batch):
                raise ValueError(f"{type(predictor).__name__}.predict returned {len(replies)} replies for {len(batch)} requests")
            for request, (reply, error) in zip(batch, replies):
                if not isinstance(reply, str):
                    raise TypeError(f"{type(predictor).__name__}.predict returned a {type(reply).__name__} for {request.id!r}")
                store.put(request.id, reply, prompt_task, error)
            bar.update(len(batch))
    if shard is not None:
        _merge_shards(output_dir, shard)
        if not shard.is_main_process:
            shard.wait_for_everyone()
            return None, len(todo)
        store = ReplyStore(output_dir / "replies.jsonl", fingerprint)
    return store, len(todo)


def _score_replies(data: EvalData, ids: list[str], store: ReplyStore, output_dir: Path, **scoring) -> dict:
    """:func:`~.scoring.score_task` over the stored replies; writes ``predictions.jsonl`` (and ERI's CSV)."""
    task = data.benchmark.task
    replies = [store.get(sample_id) for sample_id in ids]
    references = [_ground_truth(value) for value in data.samples["reference"]]
    if task == "eri":
        _write_eri_csv(output_dir / "eri_predictions.csv", ids, replies)
    label_set = (data.labels or tuple(sorted(set(references)))) if task == "mir" else ()
    scored = score_task(task, ids, replies, references, candidate_labels=label_set, **scoring)
    with open(output_dir / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for sample_id, reference, reply, prediction in zip(ids, references, replies, scored["predictions"]):
            handle.write(json.dumps({"id": sample_id, "reference": reference, "reply": reply, "prediction": prediction},
                                    ensure_ascii=False) + "\n")
    metrics = scored["metrics"]
    if isinstance(metrics, dict) and "per_sample" in metrics:  # ERI: the per-sample verdicts stay out of results.json
        scored = {**scored, "metrics": {k: v for k, v in metrics.items() if k != "per_sample"}}
    return scored


def _process_shard():
    """Accelerate's process state when launched on several processes (``accelerate launch``), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # PartialState reads no ACCELERATE_USE_CPU (Accelerator does): without it, CPU processes would each run alone
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    return state if state.num_processes > 1 else None


def _merge_shards(output_dir: Path, shard) -> None:
    """Every process's ``replies.part{i}.jsonl`` appended to ``replies.jsonl`` by the main process, then removed.

    Runs before generation too: the parts a killed multi-process run left are merged, so nothing is generated twice.
    """
    shard.wait_for_everyone()
    if shard.is_main_process:
        merged = JsonlCache(output_dir / "replies.jsonl")
        for part in sorted(output_dir.glob("replies.part*.jsonl")):
            for key, record in JsonlCache(part).records.items():
                if merged.get(key) is None:
                    merged.put(record)
            part.unlink()
    shard.wait_for_everyone()


def _write_eri_csv(path: Path, ids: Sequence[str], replies: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["names", "pred_label", "chi_reasons"])
        for sample_id, reply in zip(ids, replies):
            writer.writerow([sample_id, "", reply])


@locks_output_dir  # a second suite would rewrite the tables with the first one's folders reported as busy
def run_suite(
    predictor,
    data_dirs: Mapping[str, str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    judge_factory=None,
    chart: bool = True,
    **options,
) -> dict:
    """Every benchmark of ``data_dirs`` (``{name: folder}``), then the paper's Tables 2-5.

    ``judge_factory(output_dir) -> judge`` builds the ERI judge (its cache lives in the EMER output
    folder). A benchmark that fails (bad files, ...) is reported in the tables and the returned
    ``errors`` and the others still run. ``options`` go to :func:`evaluate_benchmark`.

    Returns:
        ``{"results": {name: result}, "errors": {name: message}, "tables": path, "chart": path}``.
    """
    from .tables import paper_tables, save_paper_chart

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not data_dirs:
        raise ValueError("the paper suite needs data: --data-root ROOT or --data NAME=DIR (one per benchmark)")
    results, errors = {}, {}
    for name, folder in data_dirs.items():
        bench = get_eval_benchmark(name)
        target = output_dir / bench.name
        judge = judge_factory(target) if (judge_factory is not None and bench.task == "eri") else None
        try:
            results[bench.name] = evaluate_benchmark(predictor, bench.name, target, data_dir=folder, judge=judge, **options)
        except (ValueError, FileNotFoundError, OSError) as error:
            errors[bench.name] = f"{type(error).__name__}: {error}"
    text, table_data = paper_tables(results, predictor.name, options.get("scale"), errors)
    tables_path = output_dir / "paper_tables.md"
    tables_path.write_text(text + "\n", encoding="utf-8")
    _write_json(output_dir / "paper_tables.json", {"tables": table_data, "errors": errors})
    chart_path = None
    if chart:
        chart_path = save_paper_chart(table_data, output_dir / "paper_chart.png", predictor.name)
    return {"results": results, "errors": errors, "tables": str(tables_path), "chart": chart_path and str(chart_path)}


__all__ = ["ReplyStore", "evaluate_benchmark", "format_summary", "run_suite"]
