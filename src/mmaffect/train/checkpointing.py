"""The checkpoints of both trainers: one way to find, write, load and resume them.

A checkpoint is a folder ``<prefix><step>`` holding ``accelerator.save_state`` plus the trainer's own files, and a
marker file written last (inside the staging folder, so it exists only in a complete checkpoint). The two trainers
keep their folder names, so checkpoints written by earlier versions resume unchanged:

* LGSRR: ``checkpoints/step_0000012`` + ``progress_done`` (:data:`LGSRR_LAYOUT`);
* P2E: ``<phase>/checkpoints/step-12`` + ``COMPLETE`` (:data:`P2E_LAYOUT`).

Writing goes through :func:`mmaffect.checkpoints.publish_folder` (staged, fsynced, renamed into place): a kill or a
full disk never leaves a folder that looks complete. Loading checks the weight files first and turns
``load_state``'s errors into one :class:`~mmaffect.errors.CheckpointError` naming the checkpoint.

Resume policy (:func:`resolve_resume`): ``resume_from_checkpoint`` is ``None`` (start; a previous run in the folder
is refused unless it may be overwritten), ``"latest"`` (the newest complete checkpoint, or a fresh start if there is
none) or a path (that checkpoint, which must be complete).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmaffect.checkpoints import check_weight_files, explain_load_error, publish_folder
from mmaffect.errors import CheckpointError, one_line

logger = logging.getLogger("mmaffect.train")


@dataclass(frozen=True)
class CheckpointLayout:
    """How a trainer names its checkpoint folders and marks them complete."""

    prefix: str  # folder name before the step number
    marker: str  # written last: present only in a complete checkpoint
    digits: int = 0  # zero-padding of the step number (0: none)

    def folder(self, parent: Path, step: int) -> Path:
        return parent / f"{self.prefix}{step:0{self.digits}d}"

    def step_of(self, folder: Path) -> int:
        return int(folder.name[len(self.prefix):])

    def complete(self, parent: Path) -> list[Path]:
        """The complete checkpoints under ``parent`` (marker present), oldest first."""
        if not parent.is_dir():
            return []
        pattern = re.escape(self.prefix) + r"\d+"
        found = [p for p in parent.iterdir() if p.is_dir() and re.fullmatch(pattern, p.name) and (p / self.marker).is_file()]
        return sorted(found, key=self.step_of)

    def latest(self, parent: Path) -> Path | None:
        found = self.complete(parent)
        return found[-1] if found else None


LGSRR_LAYOUT = CheckpointLayout(prefix="step_", marker="progress_done", digits=7)
P2E_LAYOUT = CheckpointLayout(prefix="step-", marker="COMPLETE")


def resolve_resume(resume: str | None, parent: Path, layout: CheckpointLayout) -> Path | None:
    """The checkpoint to resume from: ``None`` for a fresh start, the newest complete one for ``"latest"`` (``None``
    when there is none yet), else the given folder, refused when it is not a complete checkpoint."""
    if not resume:
        return None
    checkpoint = layout.latest(parent) if resume == "latest" else Path(resume)
    if checkpoint is not None and not (checkpoint / layout.marker).exists():
        raise ValueError(f"resume_from_checkpoint={resume!r}: {checkpoint} is not a complete checkpoint")
    return checkpoint


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings_changes(saved: dict | None, now: dict) -> dict[str, tuple]:
    """``{dotted key: (saved, now)}`` for the settings a checkpoint was saved with that differ now; a key the saved
    copy lacks (a setting added by a later version) is no change; no saved copy (older checkpoints): none."""
    if saved is None:
        return {}
    old, new = (_flat(json.loads(json.dumps(values, default=str))) for values in (saved, now))  # tuples -> lists
    return {key: (old[key], new.get(key)) for key in sorted(old) if old[key] != new.get(key)}


def refuse_or_log_config_change(changes: dict[str, tuple], checkpoint: Path, allow: bool, log_path: Path,
                                is_main_process: bool, flag: str = "--allow_config_change") -> None:
    """A resumed run with another config: refused unless ``allow`` (then logged to ``log_path``, one JSON line)."""
    if not changes:
        return
    if not allow:
        listed = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        raise ValueError(f"resume_from_checkpoint: {checkpoint} was saved with another config ({listed}); "
                         f"pass {flag} to continue with the new values (the change is logged in "
                         f"{log_path}), or start a new output_dir")
    if is_main_process:
        logger.warning("resuming %s with a changed config: %s", checkpoint, sorted(changes))
        with open(log_path, "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "checkpoint": str(checkpoint),
                                "changes": {k: {"from": old, "to": new} for k, (old, new) in changes.items()}},
                               default=str) + "\n")


def save_checkpoint(accelerator, target: Path, write_files: Callable[[Path], None], layout: CheckpointLayout,
                    keep: int | None = 1) -> Path:
    """``accelerator.save_state`` into ``target`` through a staging folder, then ``write_files(staging)`` and the
    marker on the main process; afterwards only the newest ``keep`` complete checkpoints stay (``None``/0: all)."""
    main = accelerator.is_main_process
    previous = layout.latest(target.parent)
    with publish_folder(target, is_main_process=main, wait_for_everyone=accelerator.wait_for_everyone,
                        what="checkpoint", previous=previous) as staging:
        accelerator.save_state(str(staging))
        if main:
            write_files(staging)
    if main and keep:
        for old in layout.complete(target.parent)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def load_checkpoint(accelerator, checkpoint: Path) -> None:
    """``accelerator.load_state`` with errors that name the checkpoint: a corrupt weights file, a missing or
    unexpected tensor (refused: ``load_state`` is strict), or an unreadable state file."""
    import pickle

    check_weight_files(checkpoint)
    try:
        accelerator.load_state(str(checkpoint))
    except RuntimeError as error:
        raise (explain_load_error(error, f"checkpoint {checkpoint}") or
               CheckpointError(f"checkpoint {checkpoint} cannot be loaded: {one_line(error)}")) from error
    except (OSError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"checkpoint {checkpoint} cannot be loaded: {one_line(error)}") from error


__all__ = ["CheckpointLayout", "LGSRR_LAYOUT", "P2E_LAYOUT", "load_checkpoint", "refuse_or_log_config_change",
           "resolve_resume", "save_checkpoint", "settings_changes"]
