"""The samples the steps work on, read from a dataset's text annotations, and the release layout
of the files they produce.

A :class:`DatasetLayout` is config as data: where the text file of a split is, which columns hold
the id, text and label, how a sample's video is named, and how the LGSRR release names the
descriptions / ranks files and their id columns. ``mintrec2`` and ``iemocap-da`` reproduce the
public LGSRR release exactly; ``LAYOUTS[name]`` can be copied with other values for a new dataset
(``layout:`` in the config).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from mmaffect.datasets_scripts.labels import IEMOCAP_DA_CODES
from mmaffect.untrusted import confine


class SampleFileError(ValueError):
    """A text-annotation file is missing, lacks a column, or has a bad row (file and line named)."""


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset's files are named and keyed.

    ``id_columns`` are read from the text file and written, under ``desc_id_columns`` /
    ``rank_id_columns``, as the first columns of the descriptions / ranks files. ``id_format`` makes
    the sample id (the loader's ``id`` column) from them; ``video_pattern`` the video file name.
    """

    name: str
    text_file: str = "{split}.tsv"
    delimiter: str = "\t"
    id_columns: tuple[str, ...] = ("Dialogue_id", "Utterance_id")
    id_format: str = "dia{Dialogue_id}_utt{Utterance_id}"
    text_column: str = "Text"
    label_column: str = "Label"
    label_names: dict[str, str] = field(default_factory=dict)  # raw label -> name shown to the LLM
    video_pattern: str = "dia{Dialogue_id}_utt{Utterance_id}.mp4"
    desc_id_columns: tuple[str, ...] = ("Dialogue_id", "Utterance_id")
    desc_dir: str = "data_desc/mintrec2.0"
    desc_file: str = "{split}.tsv"
    rank_id_columns: tuple[str, ...] = ("Dia", "Utt")
    rank_file: str = "data_rank/rank_mintrec2_train.tsv"
    rank_columns: tuple[str, ...] = ("Rank_First", "Rank_Second", "Rank_Third")
    column_overrides: dict[str, str] = field(default_factory=dict)  # aspect key -> desc header
    task: str = "intent"

    def rank_headers(self, k: int) -> tuple[str, ...]:
        """``Rank_First`` ... for the first three, ``Rank_4`` ... beyond."""
        names = list(self.rank_columns[:k])
        names += [f"Rank_{i}" for i in range(len(names) + 1, k + 1)]
        return tuple(names)


LAYOUTS: dict[str, DatasetLayout] = {
    # LGSRR release: data_text/MIntRec2.0/{split}.tsv, data_desc/mintrec2.0/, data_rank/rank_mintrec2_train.tsv
    "mintrec2": DatasetLayout(name="mintrec2"),
    # LGSRR release: data_text/IEMOCAP-DA/{split}.tsv (TURN UTTERANCE DA EMOTION); its descriptions
    # header spells "Speakers' Actions" with the apostrophe.
    "iemocap-da": DatasetLayout(
        name="iemocap-da",
        id_columns=("TURN",),
        id_format="{TURN}",
        text_column="UTTERANCE",
        label_column="DA",
        label_names=dict(IEMOCAP_DA_CODES),
        video_pattern="{TURN}.mp4",
        desc_id_columns=("TURN",),
        desc_dir="data_desc/iemocap_da",
        rank_id_columns=("Turn",),
        rank_file="data_rank/rank_iemocap_da_train.tsv",
        column_overrides={"actions": "Speakers' Actions"},
        task="dialogue act",
    ),
}


def layout_from_config(entry: str | dict) -> DatasetLayout:
    """A layout by name, or a mapping ``{"base": name, field: value, ...}`` that changes some fields."""
    if isinstance(entry, str):
        if entry not in LAYOUTS:
            raise ValueError(f"unknown dataset layout {entry!r}; known: {sorted(LAYOUTS)} (or give a mapping)")
        return LAYOUTS[entry]
    entry = dict(entry)
    base = LAYOUTS.get(entry.pop("base", "mintrec2"))
    if base is None:
        raise ValueError(f"layout base must be one of {sorted(LAYOUTS)}")
    allowed = {f.name for f in fields(DatasetLayout)}
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"unknown layout fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in ("id_columns", "desc_id_columns", "rank_id_columns", "rank_columns"):
        if key in entry:
            entry[key] = tuple(entry[key])
    return replace(base, **entry)


@dataclass(frozen=True)
class Sample:
    """One utterance: ``id`` as the loaders spell it, the raw id column values, text, label (raw and
    as shown to the LLM), and its video path (None without a video folder)."""

    split: str
    id: str
    keys: tuple[str, ...]
    text: str
    label: str
    intent: str
    video: str | None
    line: int

    @property
    def uid(self) -> str:
        """Unique across splits; the cache keys on it."""
        return f"{self.split}/{self.id}"


def read_samples(layout: DatasetLayout, data_dir: str | os.PathLike, split: str,
                 video_dir: str | os.PathLike | None = None, allow_outside_data_root: bool = False) -> list[Sample]:
    """The rows of ``data_dir/{text_file}`` for ``split``, in file order, with duplicate ids refused. Cells
    are read verbatim, one row per line (as ``mmaffect.load_benchmark`` reads them). A video name that
    leaves ``video_dir`` (``../x``, an absolute path) is an error naming file and line, unless
    ``allow_outside_data_root`` (docs/conventions.md, "Files from others")."""
    path = Path(data_dir) / layout.text_file.format(split=split)
    if not path.is_file():
        raise SampleFileError(f"text annotations for split {split!r} not found: {path}")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        # cells verbatim (no CSV quoting), as the benchmark loaders and the reference code read these files:
        # a text that starts with a quote is the same text for the extraction and for training
        reader = csv.reader(handle, delimiter=layout.delimiter, quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise SampleFileError(f"{path}: the file is empty (expected a header row)")
        header = [h.strip() for h in header]
        needed = [*layout.id_columns, layout.text_column, layout.label_column]
        missing = [c for c in needed if c not in header]
        if missing:
            raise SampleFileError(f"{path}: missing column(s) {missing}; the header is {header}")
        position = {name: header.index(name) for name in needed}
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise SampleFileError(f"{path}:{line}: expected {len(header)} fields, found {len(row)}: {row!r}")
            values = {name: row[position[name]].strip() for name in needed}
            keys = tuple(values[c] for c in layout.id_columns)
            sample_id = layout.id_format.format(**{c: values[c] for c in layout.id_columns})
            if sample_id in seen:
                raise SampleFileError(f"{path}:{line}: duplicate id {sample_id!r} (first on line {seen[sample_id]})")
            seen[sample_id] = line
            label = values[layout.label_column]
            video = None
            if video_dir is not None:
                name = layout.video_pattern.format(**{c: values[c] for c in layout.id_columns})
                video = os.fspath(confine(Path(video_dir) / name, [video_dir], where=f"{path}:{line}", value=name,
                                          allow_outside=allow_outside_data_root))
            samples.append(Sample(
                split=split, id=sample_id, keys=keys, text=values[layout.text_column], label=label,
                intent=layout.label_names.get(label, label), video=video, line=line,
            ))  # fmt: skip
    return samples
