"""Media files next to the annotations: the one warning class for missing media, the suffixes every
reader searches, and the lookup itself.

Every reader that finds no media file for some rows (``load_benchmark``'s media join, the P2E instruction
readers under ``on_missing_media="skip"|"keep"``) warns with :class:`MissingMediaWarning`, so one
``warnings.simplefilter("ignore", MissingMediaWarning)`` silences all of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class MissingMediaWarning(UserWarning):
    """Rows have no media file: dropped (``on_missing_media="skip"``), or kept with ``video`` / ``audio``
    None (``"keep"``, and ``load_benchmark``'s media join)."""


def find_media(folders: Sequence[Path | None], stems: Sequence[str], suffixes: Sequence[str]) -> str | None:
    """The first ``folder / (stem + suffix)`` that is a file (folders, then stems, then suffixes in the
    order given; None folders are skipped), or None."""
    for folder in folders:
        if folder is None:
            continue
        for stem in stems:
            for suffix in suffixes:
                candidate = Path(folder) / f"{stem}{suffix}"
                if candidate.is_file():
                    return os.fspath(candidate)
    return None


__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "MissingMediaWarning", "find_media"]
