"""The loop every step shares: skip samples with a cached result, run the rest (in parallel up to
the backend's concurrency), record each outcome in the cache as it arrives, show progress with ETA.

:class:`CachedChat` is the only way steps talk to an LLM: it replays a cached reply when the same
sample + prompt + model was answered before, and otherwise calls the backend and appends the reply
to the cache at once. (The ERI judge of the metrics package can use it the same way.)
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from .backends import BackendError, BackendFatalError, ChatBackend, Messages
from .cache import ResponseCache


class CachedChat:
    """``ask(sample, messages, videos=...)`` through a :class:`ResponseCache`.

    ``fresh`` holds sample ids whose calls must not be answered from the cache in this run
    (``--retry-failed``); their new replies are appended and win from then on.
    """

    def __init__(self, backend: ChatBackend, cache: ResponseCache, *, fresh: set[str] | None = None):
        self.backend = backend
        self.cache = cache
        self.fresh = set(fresh or ())
        self.model = backend.fingerprint()
        self._answered_fresh: set[str] = set()
        self._lock = threading.Lock()
        self.calls = 0  # LLM calls made in this run
        self.hits = 0  # replies replayed from the cache

    @staticmethod
    def media_fingerprint(videos: Sequence[str] | None) -> list[dict] | None:
        if not videos:
            return None
        media = []
        for path in videos:
            size = os.path.getsize(path) if os.path.exists(path) else None
            media.append({"video": os.path.basename(path), "size": size})
        return media

    def ask(self, sample: str, messages: Messages, *, videos: Sequence[str] | None = None) -> str:
        media = self.media_fingerprint(videos)
        key, prompt_hash = self.cache.call_key(sample, self.model, messages, media)
        with self._lock:
            use_cache = sample not in self.fresh or key in self._answered_fresh
        record = self.cache.get_call(key) if use_cache else None
        if record is not None:
            with self._lock:
                self.hits += 1
            return record["reply"]
        start = time.monotonic()
        reply = self.backend.chat(messages, videos=list(videos)) if videos else self.backend.chat(messages)
        if not isinstance(reply, str):
            raise BackendError(f"{type(self.backend).__name__}.chat returned {type(reply).__name__}, not str")
        self.cache.put_call(key, sample=sample, model=self.model, prompt_hash=prompt_hash, messages=messages,
                            media=media, reply=reply, seconds=time.monotonic() - start)
        with self._lock:
            self.calls += 1
            self._answered_fresh.add(key)
        return reply


@dataclass
class Outcome:
    """What processing one sample gave. Only ``final`` outcomes are cached: successes and unusable
    replies. Input problems (a missing video or description - they cost no LLM call) and backend
    trouble (``backend_error``) are not, so the next run checks those samples again."""

    status: str
    value: Any = None
    error: str | None = None
    final: bool = True
    backend_error: bool = False

    @classmethod
    def ok(cls, value: Any) -> Outcome:
        return cls("ok", value)

    @classmethod
    def failed(cls, error: str, *, final: bool = True) -> Outcome:
        return cls("failed", None, error, final)


@dataclass
class StepReport:
    step: str
    split: str
    total: int = 0
    from_cache: int = 0
    ok: int = 0
    failed: int = 0
    calls: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [
            f"[{self.step}] {self.split}: {self.total} samples - {self.ok} ok, {self.failed} failed "
            f"({self.from_cache} results reused from the cache); LLM calls this run: {self.calls}, "
            f"replies replayed from the cache: {self.cache_hits}; {self.seconds:.1f}s"
        ]
        for sample, error in self.failures[:20]:
            lines.append(f"  failed {sample}: {error}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more failures")
        return lines


class TooManyBackendErrors(BackendError):
    """Several samples in a row failed with backend errors: the server is probably down."""


def run_samples(
    items: Sequence[Any],
    process: Callable[[Any], Outcome],
    *,
    uid: Callable[[Any], str],
    cache: ResponseCache,
    fingerprint: str,
    step: str,
    report: StepReport,
    concurrency: int = 1,
    retry_failed: bool = False,
    max_consecutive_backend_errors: int = 5,
    progress: bool = True,
) -> dict[str, dict]:
    """Process every item without a cached result (and, with ``retry_failed``, every failed one);
    returns uid -> result record for all ``items`` that have one."""
    start = time.monotonic()
    done = cache.results(fingerprint)
    todo = [item for item in items
            if uid(item) not in done or (retry_failed and done[uid(item)]["status"] == "failed")]
    report.total = len(items)
    report.from_cache = len(items) - len(todo)
    settle = _Settle(cache, fingerprint, step, uid, max_consecutive_backend_errors)
    work = functools.partial(_guarded, process)
    bar = tqdm(total=len(items), initial=report.from_cache, desc=f"{step} {report.split}", unit="sample",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        if concurrency <= 1:
            for item in todo:
                settle(item, work(item))
                bar.update(1)
        else:
            _run_in_threads(todo, work, settle, bar, concurrency, step)
    finally:
        bar.close()
        report.seconds += time.monotonic() - start

    results = cache.results(fingerprint)
    by_uid = {uid(item): results[uid(item)] for item in items if uid(item) in results}
    _count_outcomes(report, by_uid, settle.transient)
    return by_uid


class _Settle:
    """Records each outcome as it arrives: final ones in the cache, the others (not cached) in ``transient``;
    raises :class:`TooManyBackendErrors` after too many backend errors in a row."""

    def __init__(self, cache: ResponseCache, fingerprint: str, step: str, uid: Callable[[Any], str], limit: int):
        self.cache, self.fingerprint, self.step, self.uid, self.limit = cache, fingerprint, step, uid, limit
        self.consecutive_errors = 0
        self.transient: dict[str, str] = {}

    def __call__(self, item: Any, outcome: Outcome) -> None:
        if outcome.final:
            self.cache.put_result(self.fingerprint, self.uid(item), step=self.step, status=outcome.status,
                                  value=outcome.value, error=outcome.error)
            self.consecutive_errors = 0
            return
        self.transient[self.uid(item)] = outcome.error or "failed"
        self.consecutive_errors = self.consecutive_errors + 1 if outcome.backend_error else 0
        if self.consecutive_errors >= self.limit:
            raise TooManyBackendErrors(
                f"{self.consecutive_errors} samples in a row failed with backend errors (last: {outcome.error}); "
                "stopping - everything finished so far is cached, rerun to continue"
            )


def _guarded(process: Callable[[Any], Outcome], item: Any) -> Outcome:
    """``process(item)``, with a (non-fatal) backend error turned into a transient failure."""
    try:
        return process(item)
    except BackendFatalError:
        raise
    except BackendError as error:
        return Outcome("failed", None, f"backend: {error}", final=False, backend_error=True)


def _run_in_threads(todo: list, work: Callable[[Any], Outcome], settle: _Settle, bar, concurrency: int, step: str) -> None:
    """Run ``work`` on ``todo`` in ``concurrency`` threads, settling each outcome (in this thread) as it finishes."""
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"mmaffect-{step}")
    try:
        pending = iter(todo)
        running = {}
        for item in pending:  # keep at most 2x concurrency queued so a stop cancels quickly
            running[pool.submit(work, item)] = item
            if len(running) >= 2 * concurrency:
                break
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                item = running.pop(future)
                settle(item, future.result())
                bar.update(1)
                following = next(pending, None)
                if following is not None:
                    running[pool.submit(work, following)] = following
    finally:
        # on any stop, let in-flight calls finish (their replies land in the cache)
        pool.shutdown(wait=True, cancel_futures=True)


def _count_outcomes(report: StepReport, by_uid: dict[str, dict], transient: dict[str, str]) -> None:
    """Fill ``report``'s ok / failed counts and failures (transient failures of this run included)."""
    report.ok = sum(1 for u, r in by_uid.items() if r["status"] == "ok" and u not in transient)
    report.failures = [(u, r["error"] or "failed") for u, r in by_uid.items()
                       if r["status"] == "failed" and u not in transient]
    report.failures += sorted(transient.items())
    report.failed = len(report.failures)
