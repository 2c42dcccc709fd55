"""One run per output folder: ``with run_lock(output_dir): ...`` around a training or evaluation run.

The lock is a file, ``<output_dir>/.mmaffect.lock``, created with ``O_EXCL`` and holding the owner's pid,
host and command. A second run into the same folder stops with :class:`RunLockedError` naming that pid
(two runs would interleave their checkpoints, replies and logs). A lock whose process is gone (same host,
dead pid: a killed run) is taken over with a warning. The lock is removed when the block ends, also on
an exception. In a distributed run only the main process takes it; the other ranks run unlocked (they
write where the main process tells them).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_NAME = ".mmaffect.lock"
_STARTING_SECONDS = 10  # an empty lock file younger than this belongs to a run that is writing it
_held: dict[str, int] = {}  # lock path -> nesting depth in this process (a suite calling a benchmark run)


class RunLockedError(OSError):
    """Another live run holds the output folder (the message names its pid and the lock file)."""


def _is_main_process() -> bool:
    """Rank 0 (or no distributed launch): ``accelerate launch`` / ``torchrun`` set ``RANK``."""
    return os.environ.get("RANK", "0") in ("", "0")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # torn by a kill between create and write: treated as stale below


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _try_create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "command": " ".join(sys.argv)[:500]}
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return True


def acquire(folder: str | os.PathLike) -> Path:
    """Take the lock of ``folder`` (created if needed); raises :class:`RunLockedError` if a live run holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    key = str(path.resolve())
    if key in _held:
        _held[key] += 1
        return path
    for _ in range(3):  # a race with another taker of a stale lock: look again
        if _try_create(path):
            _held[key] = 1
            return path
        holder = _read_holder(path)
        pid, host = holder.get("pid"), holder.get("host")
        if pid is None and _age_seconds(path) < _STARTING_SECONDS:  # created, not yet written: a run starting now
            raise RunLockedError(f"{folder} is being taken by another run that is starting (lock file {path})")
        if isinstance(pid, int) and (host != socket.gethostname() or _pid_alive(pid)):
            where = f" on {host}" if host != socket.gethostname() else ""
            raise RunLockedError(f"{folder} is in use by another run (pid {pid}{where}, started "
                                 f"{holder.get('started', '?')}: {holder.get('command', '?')}); wait for it to end or "
                                 f"use another output folder; if that process is not an mmaffect run, delete {path}")
        warnings.warn(f"{path}: taking over the lock of a run that is gone (pid {pid}, started "
                      f"{holder.get('started', '?')})", stacklevel=3)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    raise RunLockedError(f"{folder}: could not take the lock {path} (other runs keep taking it)")


def release(path: Path) -> None:
    """Drop one hold of the lock; the file goes when the outermost hold ends (and only if it is ours)."""
    key = str(path.resolve())
    _held[key] -= 1
    if _held[key] > 0:
        return
    del _held[key]
    if _read_holder(path).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, *, is_main_process: bool | None = None) -> Iterator[Path | None]:
    """Hold ``folder``'s lock for the block (the main process only; ``None``: rank 0 of ``RANK``)."""
    if not (_is_main_process() if is_main_process is None else is_main_process):
        yield None
        return
    path = acquire(folder)
    try:
        yield path
    finally:
        release(path)


def locks_output_dir(func: Callable) -> Callable:
    """Decorator: run ``func`` holding the lock of its ``output_dir`` argument (see :func:`run_lock`)."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with run_lock(signature.bind(*args, **kwargs).arguments["output_dir"]):
            return func(*args, **kwargs)

    return wrapper


__all__ = ["LOCK_NAME", "RunLockedError", "acquire", "locks_output_dir", "release", "run_lock"]
