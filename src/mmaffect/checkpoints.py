"""The folders a run publishes (best model, checkpoints, phase models), written so a kill or a full disk
never leaves a partial folder that looks complete, and read so a damaged one is refused by name.

Writing: :func:`publish_folder` hands out a hidden staging folder next to the target
(``.best_model.partial``); when the block ends, the files are fsynced and the staging folder is renamed
into place (an existing target is first renamed to ``.best_model.old``, then removed). At every instant
the target is the complete old folder, the complete new one, or - between the two renames - absent with
the old one kept as the backup, which :func:`recover_folder` (run by the next publish, and by a resumed
run) puts back. A failed write removes the staging folder; a disk-full failure (``ENOSPC``, or torch's
``[enforce fail ... unexpected pos]``) becomes a :class:`~mmaffect.errors.DiskFullError` naming the file
that failed and the previous folder that is still intact.

Reading: :func:`check_safetensors_file` validates a weights file's header and size (empty, truncated or
not a safetensors file: the message names the file); :func:`from_pretrained_strict` refuses missing,
unexpected or mis-shaped tensors, which ``from_pretrained`` only warns about.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import CheckpointError, DiskFullError, one_line

STAGING_SUFFIX = ".partial"
BACKUP_SUFFIX = ".old"
_SAFETENSORS_MAX_HEADER = 100_000_000  # the format's own limit


# ----------------------------------------------------------------------------------------------- writing
def staging_path(target: Path) -> Path:
    return target.parent / f".{target.name}{STAGING_SUFFIX}"


def backup_path(target: Path) -> Path:
    return target.parent / f".{target.name}{BACKUP_SUFFIX}"


def recover_folder(target: str | os.PathLike) -> None:
    """Finish or undo a publish that a kill interrupted: restore the backup if the target is missing,
    drop a backup whose replacement is in place, and remove a leftover staging folder."""
    target = Path(target)
    backup = backup_path(target)
    if backup.exists():
        if target.exists():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(backup, target)
    shutil.rmtree(staging_path(target), ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(root))


def _swap_into_place(staging: Path, target: Path) -> None:
    backup = backup_path(target)
    if target.exists():
        shutil.rmtree(backup, ignore_errors=True)
        os.rename(target, backup)
    os.rename(staging, target)
    _fsync_dir(target.parent)
    shutil.rmtree(backup, ignore_errors=True)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC / EDQUOT anywhere in the exception chain, or the messages torch and safetensors give for it."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "unexpected pos" in text or "file write failed" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def _failed_file(folder: Path) -> Path | None:
    """The file a failed save was writing: the first incomplete one (empty, a torch archive without its
    zip directory, a safetensors file short of its tensors), newest first; else the newest file."""
    import zipfile

    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    files.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)  # coarse clocks tie: hence the checks
    for path in files:
        if path.stat().st_size == 0:
            return path
        if path.suffix in (".bin", ".pt", ".pth", ".pkl") and not zipfile.is_zipfile(path):
            return path
        if path.suffix == ".safetensors":
            try:
                check_safetensors_file(path)
            except (CheckpointError, OSError):
                return path
    return files[0] if files else None


@contextlib.contextmanager
def publish_folder(
    target: str | os.PathLike,
    *,
    is_main_process: bool = True,
    wait_for_everyone: Callable[[], None] | None = None,
    what: str = "folder",
    previous: str | os.PathLike | None = None,
) -> Iterator[Path]:
    """``with publish_folder(run / "best_model") as staging: model.save_pretrained(staging)``.

    Every process of a distributed run enters the block (collective saves such as ``save_state`` write
    from all of them); the main process prepares and renames, ``wait_for_everyone`` is the barrier.
    ``previous`` is the folder that stays valid if this write fails (default: ``target`` itself)."""
    target = Path(target)
    staging = staging_path(target)
    wait = wait_for_everyone or (lambda: None)
    if is_main_process:
        recover_folder(target)
        staging.mkdir(parents=True)
    wait()
    try:
        yield staging
        wait()
        if is_main_process:
            _fsync_tree(staging)
            _swap_into_place(staging, target)
    except BaseException as error:
        failed = _failed_file(staging) if is_main_process else None
        if is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception) and is_disk_full(error):
            kept = Path(previous) if previous is not None else target
            intact = (f"the previous {what} {kept} is intact" if kept.exists() else f"no earlier {what} was published")
            full = DiskFullError(f"could not write {failed or staging}: no space left on device ({one_line(error)}); {intact}")
            full.errno = errno.ENOSPC
            raise full from error
        raise
    wait()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a file through a temporary sibling and ``os.replace``: readers see the old or the new text."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.tmp"
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# ----------------------------------------------------------------------------------------------- reading
def check_safetensors_file(path: str | os.PathLike) -> list[str]:
    """The tensor names of a safetensors file, after checking that its header parses and that the file
    holds every byte the header promises. Raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes) - the save was interrupted or the disk was full")
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated ({size} bytes, shorter than a safetensors header)")
        header_size = int.from_bytes(prefix, "little")
        if header_size > _SAFETENSORS_MAX_HEADER:
            raise CheckpointError(f"{path}: not a safetensors file (its first 8 bytes give a header of {header_size} bytes)")
        if 8 + header_size > size:
            raise CheckpointError(f"{path}: truncated (the header alone needs {8 + header_size} bytes, the file has {size})")
        raw = handle.read(header_size)
    try:
        header = json.loads(raw)
        ends = [int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise CheckpointError(f"{path}: not a safetensors file (the header is not a valid JSON tensor table)") from None
    needed = 8 + header_size + max(ends, default=0)
    if needed > size:
        raise CheckpointError(f"{path}: truncated (its tensors need {needed} bytes, the file has {size})")
    return [name for name in header if name != "__metadata__"]


def check_weight_files(folder: str | os.PathLike) -> list[Path]:
    """Check every ``*.safetensors`` file of a folder (see :func:`check_safetensors_file`)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    for file in files:
        check_safetensors_file(file)
    return files


def _names(keys, limit: int = 10) -> str:
    keys = sorted(keys)
    shown = repr(keys[:limit])
    return shown if len(keys) <= limit else f"{shown[:-1]}, ... {len(keys) - limit} more]"


def describe_key_problems(missing=(), unexpected=(), mismatched=()) -> str:
    """``missing tensor(s) [...]; unexpected tensor(s) [...]; ...`` (empty when all match)."""
    problems = []
    if missing:
        problems.append(f"missing tensor(s) {_names(missing)} (they would be randomly initialised)")
    if unexpected:
        problems.append(f"unexpected tensor(s) {_names(unexpected)}")
    if mismatched:
        problems.append("tensor(s) of another shape " + _names(
            f"{m[0]}: {tuple(m[1])} in the file, {tuple(m[2])} in the model" if isinstance(m, (tuple, list)) and len(m) == 3
            else str(m) for m in mismatched))
    return "; ".join(problems)


def weights_file_of(folder: Path) -> Path:
    for name in ("model.safetensors", "model.safetensors.index.json"):
        if (folder / name).exists():
            return folder / name
    return folder


def from_pretrained_strict(cls, folder: str | os.PathLike, **kwargs):
    """``cls.from_pretrained(folder, **kwargs)`` that refuses a checkpoint whose tensors do not match the
    model exactly (``from_pretrained`` only logs missing / unexpected keys and initialises the missing
    ones randomly). For mmaffect's own folders: evaluation, prediction, resuming, P2E phases."""
    folder = Path(folder)
    if folder.is_dir():
        check_weight_files(folder)
    model, info = cls.from_pretrained(folder, output_loading_info=True, **kwargs)
    problems = describe_key_problems(info.get("missing_keys") or (), info.get("unexpected_keys") or (),
                                     info.get("mismatched_keys") or ())
    if problems:
        raise CheckpointError(f"{weights_file_of(folder)} does not match {type(model).__name__}: {problems}")
    return model


_KEY_LINES = {"missing": re.compile(r"Missing key\(s\) in state_dict: (.*)"),
              "unexpected": re.compile(r"Unexpected key\(s\) in state_dict: (.*)")}


def explain_load_error(error: RuntimeError, source) -> CheckpointError | None:
    """A clear :class:`CheckpointError` for torch's / safetensors' ``Error(s) in loading state_dict``
    (None for any other error)."""
    text = str(error)
    if "Error(s) in loading state_dict" not in text:
        return None
    keys = {kind: [] for kind in _KEY_LINES}
    for line in text.splitlines():
        for kind, pattern in _KEY_LINES.items():
            match = pattern.search(line)
            if match:
                keys[kind] += re.findall(r'"([^"]+)"', match.group(1))
    mismatched = [line.strip() for line in text.splitlines() if "size mismatch" in line]
    problems = describe_key_problems(keys["missing"], keys["unexpected"]) + "".join(f"; {m}" for m in mismatched)
    return CheckpointError(f"{source} does not match the model: {problems or one_line(error)}")


def require_existing_path(name: str, what: str) -> None:
    """A name that can only be a local path (absolute, ``./``, ``../``, ``~`` or more than one ``/``)
    must exist; otherwise the Hub would answer with "Repo id must be in the form ...". Hub ids pass."""
    expanded = os.path.expanduser(name)
    is_path = name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
    if is_path and not os.path.exists(expanded):
        raise FileNotFoundError(f"{what} {name!r}: the folder {expanded} does not exist")


__all__ = [
    "check_safetensors_file",
    "check_weight_files",
    "describe_key_problems",
    "explain_load_error",
    "from_pretrained_strict",
    "is_disk_full",
    "publish_folder",
    "recover_folder",
    "require_existing_path",
    "write_text_atomic",
]
