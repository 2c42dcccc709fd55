"""Prediction / reference files -> records keyed by sample id, and id alignment.

Readable files:

* ``.jsonl`` - one JSON object per line;
* ``.json`` - a list of objects, or an object ``{id: value}`` (a value that is an object becomes
  the record; any other value is stored under the field ``"value"``);
* ``.csv`` / ``.tsv`` - a header row (values stay strings, nothing is read as NaN);
* ``.npz`` - MER-UniBench result files with arrays ``filenames`` and ``fileitems`` (field
  ``"value"``).

The sample id is the ``id_field`` column when given; otherwise the first of :data:`ID_FIELDS`
present; otherwise, for MELD / MIntRec-style tables with dialogue and utterance columns,
``dia{dialogue}_utt{utterance}`` (the clip name those datasets use).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmaffect.errors import read_text_utf8

ID_FIELDS = ("id", "name", "names", "sample_id", "video_id", "video", "utt_id")
_DIALOGUE_FIELDS = ("Dialogue_ID", "Dialogue_id", "dialogue_id", "Dia")
_UTTERANCE_FIELDS = ("Utterance_ID", "Utterance_id", "utterance_id", "Utt")


@dataclass
class RecordFile:
    """Records of one file: ``records[id]`` is the row (a dict), ``lines[id]`` where it was read."""

    path: str
    records: dict[str, dict]
    lines: dict[str, int]
    id_field: str

    def field(self, name: str) -> dict[str, Any]:
        """``{id: record[name]}``; a clear error names the first record without the field."""
        values = {}
        for sample_id, record in self.records.items():
            if name not in record:
                raise ValueError(
                    f"{self.path}:{self.lines[sample_id]}: record {sample_id!r} has no field {name!r} "
                    f"(fields: {sorted(record)})"
                )
            values[sample_id] = record[name]
        return values

    def pick_field(self, explicit: str | None, candidates: Sequence[str], role: str) -> str:
        """The field to read: ``explicit`` if given, else the first candidate in the first record."""
        first = next(iter(self.records.values()))
        if explicit is not None:
            if explicit not in first:
                raise ValueError(f"{self.path}: no field {explicit!r} for the {role}; fields: {sorted(first)}")
            return explicit
        for name in candidates:
            if name in first:
                return name
        raise ValueError(
            f"{self.path}: cannot tell which field holds the {role}; looked for {list(candidates)}, "
            f"found {sorted(first)} (name it explicitly)"
        )


def read_jsonl_objects(path: Path, bad: list[tuple[int, str]] | None = None) -> list[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of a JSONL file; a line that is not a JSON
    object is a ``ValueError`` naming ``path:line`` (or, with a ``bad`` list, appended to it as
    ``(line, message)`` and skipped)."""
    rows = []
    for line_number, line in enumerate(io.StringIO(read_text_utf8(path)), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem = None if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}"
        except json.JSONDecodeError as error:
            problem = f"not valid JSON ({error.msg})"
        if problem is None:
            rows.append((line_number, row))
        elif bad is None:
            raise ValueError(f"{path}:{line_number}: {problem}")
        else:
            bad.append((line_number, problem))
    return rows


def _raw_rows(path: Path) -> list[tuple[int, dict]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl_objects(path)
    if suffix == ".json":
        try:
            data = json.loads(read_text_utf8(path))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
        if isinstance(data, list):
            for index, row in enumerate(data):
                if not isinstance(row, dict):
                    raise ValueError(f"{path}: item {index} is a {type(row).__name__}, expected an object")
            return [(index + 1, row) for index, row in enumerate(data)]
        if isinstance(data, dict):
            return [
                (index + 1, {"id": key, **value} if isinstance(value, dict) else {"id": key, "value": value})
                for index, (key, value) in enumerate(data.items())
            ]
        raise ValueError(f"{path}: expected a JSON list or object, got {type(data).__name__}")
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        reader = csv.DictReader(io.StringIO(read_text_utf8(path, "utf-8-sig"), newline=""), delimiter=delimiter)
        if not reader.fieldnames:
            raise ValueError(f"{path}: empty file (no header row)")
        return [(line_number, dict(row)) for line_number, row in enumerate(reader, start=2)]
    if suffix == ".npz":
        from mmaffect.untrusted import load_npz  # object arrays through the data-only unpickler

        data = load_npz(path)
        if "filenames" not in data or "fileitems" not in data:
            raise ValueError(f"{path}: an .npz needs arrays 'filenames' and 'fileitems'; has {list(data.keys())}")
        names, items = data["filenames"].tolist(), data["fileitems"].tolist()
        if len(names) != len(items):
            raise ValueError(f"{path}: {len(names)} filenames but {len(items)} fileitems")
        return [(index + 1, {"id": str(name), "value": item}) for index, (name, item) in enumerate(zip(names, items))]
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .csv, .tsv or .npz")


def read_records(path: str | os.PathLike, id_field: str | None = None) -> RecordFile:
    """Read a prediction or reference file into records keyed by sample id (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    rows = _raw_rows(path)
    if not rows:
        raise ValueError(f"{path}: no records")
    first = rows[0][1]
    if id_field is None:
        id_field = next((name for name in ID_FIELDS if name in first), None)
    dialogue = utterance = None
    if id_field is None:
        dialogue = next((name for name in _DIALOGUE_FIELDS if name in first), None)
        utterance = next((name for name in _UTTERANCE_FIELDS if name in first), None)
        if dialogue is None or utterance is None:
            raise ValueError(
                f"{path}: no id field; looked for {list(ID_FIELDS)} or a dialogue + utterance pair, "
                f"found {sorted(first)} (pass the id field explicitly)"
            )
    records: dict[str, dict] = {}
    lines: dict[str, int] = {}
    for line_number, row in rows:
        if dialogue is not None:
            if dialogue not in row or utterance not in row:
                raise ValueError(f"{path}:{line_number}: missing {dialogue!r} or {utterance!r}")
            sample_id = f"dia{str(row[dialogue]).strip()}_utt{str(row[utterance]).strip()}"
        else:
            if id_field not in row or row[id_field] is None or str(row[id_field]).strip() == "":
                raise ValueError(f"{path}:{line_number}: missing id field {id_field!r}")
            sample_id = str(row[id_field]).strip()
        if sample_id in records:
            raise ValueError(f"{path}:{line_number}: duplicate id {sample_id!r} (first at line {lines[sample_id]})")
        records[sample_id] = row
        lines[sample_id] = line_number
    return RecordFile(str(path), records, lines, id_field or f"dia{{{dialogue}}}_utt{{{utterance}}}")


def align_by_id(
    predictions: Mapping[str, Any],
    references: Mapping[str, Any],
    missing: str = "error",
    missing_value: Any = "",
    predictions_name: str = "predictions",
) -> tuple[list[str], list[Any], list[Any], list[str]]:
    """Pair predictions with references by id, in reference order.

    Args:
        missing: ``"error"`` - a reference id without a prediction raises ``ValueError`` (listing up
            to ten ids); ``"empty"`` - it is scored with ``missing_value`` (an empty prediction).

    Returns:
        ``(ids, predictions, references, extra_ids)``; ``extra_ids`` are prediction ids with no
        reference (ignored by the metrics, reported by the CLI).
    """
    if missing not in ("error", "empty"):
        raise ValueError(f"missing must be 'error' or 'empty', got {missing!r}")
    absent = [sample_id for sample_id in references if sample_id not in predictions]
    if absent and missing == "error":
        raise ValueError(
            f"{len(absent)} of {len(references)} reference id(s) have no prediction in {predictions_name}: "
            f"{absent[:10]}{' ...' if len(absent) > 10 else ''}"
        )
    ids = list(references)
    aligned_predictions = [predictions.get(sample_id, missing_value) for sample_id in ids]
    aligned_references = [references[sample_id] for sample_id in ids]
    extra = [sample_id for sample_id in predictions if sample_id not in references]
    return ids, aligned_predictions, aligned_references, extra
