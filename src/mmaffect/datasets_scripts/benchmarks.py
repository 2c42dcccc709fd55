"""Benchmark loaders: the public release files -> ``datasets.DatasetDict`` with explicit ``Features``.

``load_benchmark(name, data_dir, ...)`` reads one benchmark's splits (``train``, ``validation``,
``test``; a release's ``dev`` file is ``validation``), validates every row, optionally joins the
LGSRR descriptions and rankings (by id, never by row order) and media paths, and returns Arrow-backed
datasets (memory-mapped from the datasets cache, keyed by the content, so later ``map`` calls cache).

Formats (see ``docs/datasets.md`` for details):

=============  ==========================================  ================================
name           files in ``data_dir``                        id
=============  ==========================================  ================================
mintrec2       ``{train,dev,test}.tsv`` (LGSRR/MIntRec2.0)  ``dia{Dialogue_id}_utt{Utterance_id}``
iemocap-da     ``{train,dev,test}.tsv`` (LGSRR)             ``TURN``
mintrec        ``{train,dev,test}.tsv`` (MIntRec), or the   ``S{season:02}_E{episode:02}_{clip}``
               Nano-EmoX chat records ``{train,test}_MIntRec_ann.json``
meld           ``{train,dev,test}_sent_emo.csv``            ``dia{Dialogue_ID}_utt{Utterance_ID}``
=============  ==========================================  ================================
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, NamedSplit, Value

from .labels import (
    ASPECTS,
    IEMOCAP_DA_ACTS,
    IEMOCAP_DA_CODES,
    MELD_EMOTIONS,
    MELD_SENTIMENTS,
    MINTREC2_INTENTS,
    MINTREC_INTENTS,
)
from .lgsrr_extras import attach_descriptions, attach_ranks, check_aspect_order
from .media import AUDIO_SUFFIXES, MissingMediaWarning
from .reading import SPLIT_FILES, BadRows, CsvFile, TsvFile, read_json_array
from mmaffect.untrusted import confine


@dataclass
class SplitRows:
    """The validated rows of one split, with the file and line each came from."""

    path: Path
    rows: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def add(self, line: int, row: dict) -> None:
        self.rows.append(row)
        self.lines.append(line)

    def keep(self, keep: Sequence[bool]) -> None:
        self.rows = [row for row, k in zip(self.rows, keep) if k]
        self.lines = [line for line, k in zip(self.lines, keep) if k]


# --------------------------------------------------------------------------------------- fields
def _int(value: str, prefix: str = "") -> int | None:
    match = re.fullmatch(rf"\s*(?:{prefix})?(\d+)\s*", value)
    return int(match.group(1)) if match else None


class _RowParser:
    """Per-row helpers that report a bad value and return None (the caller then drops the row)."""

    def __init__(self, path: Path, bad_rows: BadRows):
        self.path, self.bad_rows = path, bad_rows

    def integer(self, line: int, column: str, value: str, prefix: str = "") -> int | None:
        number = _int(value, prefix)
        if number is None:
            self.bad_rows(self.path, line, f"{column} is not an integer", value)
        return number

    def label(self, line: int, value: str, label_ids: Mapping[str, int], what: str) -> int | None:
        key = value.strip()
        if key not in label_ids:
            self.bad_rows(self.path, line, "unknown label", value, f"not one of the {len(label_ids)} {what}")
            return None
        return label_ids[key]

    def identifier(self, line: int, row_id: str, seen: dict[str, int]) -> bool:
        if not row_id:
            self.bad_rows(self.path, line, "empty id", row_id)
            return False
        if row_id in seen:
            self.bad_rows(self.path, line, "duplicate id", row_id, f"first on line {seen[row_id]}")
            return False
        seen[row_id] = line
        return True


# --------------------------------------------------------------------------------------- readers
_MINTREC2_COLUMNS = (
    "Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp", "Source", "speaker_name",
)  # fmt: skip


def read_mintrec2_tsv(path: Path, bad_rows: BadRows, encoding: str = "utf-8") -> SplitRows:
    """MIntRec2.0 ``{split}.tsv``: ``Dialogue_id Utterance_id Text Label Start_timestamp End_timestamp
    Source speaker_name``."""
    table = TsvFile(path, _MINTREC2_COLUMNS, encoding=encoding)
    parse, out, seen = _RowParser(table.path, bad_rows), SplitRows(table.path), {}
    label_ids = {name: i for i, name in enumerate(MINTREC2_INTENTS)}
    for line, cells in table.rows(bad_rows):
        dialogue = parse.integer(line, "Dialogue_id", table.get(cells, "Dialogue_id"))
        if dialogue is None:
            continue
        utterance = parse.integer(line, "Utterance_id", table.get(cells, "Utterance_id"))
        if utterance is None:
            continue
        label = parse.label(line, table.get(cells, "Label"), label_ids, "MIntRec2.0 intents")
        row_id = f"dia{dialogue}_utt{utterance}"
        if label is None or not parse.identifier(line, row_id, seen):
            continue
        out.add(line, {
            "id": row_id,
            "text": table.get(cells, "Text"),
            "label": label,
            "dialogue_id": dialogue,
            "utterance_id": utterance,
            "speaker": table.get(cells, "speaker_name").strip(),
            "source": table.get(cells, "Source").strip(),
            "start_time": table.get(cells, "Start_timestamp").strip(),
            "end_time": table.get(cells, "End_timestamp").strip(),
        })  # fmt: skip
    return out


def read_iemocap_da_tsv(path: Path, bad_rows: BadRows, encoding: str = "utf-8") -> SplitRows:
    """IEMOCAP-DA ``{split}.tsv``: ``TURN UTTERANCE DA EMOTION``; ``DA`` holds the act codes."""
    table = TsvFile(path, ("TURN", "UTTERANCE", "DA", "EMOTION"), encoding=encoding)
    parse, out, seen = _RowParser(table.path, bad_rows), SplitRows(table.path), {}
    code_ids = {code: IEMOCAP_DA_ACTS.index(act) for code, act in IEMOCAP_DA_CODES.items()}
    for line, cells in table.rows(bad_rows):
        label = parse.label(line, table.get(cells, "DA"), code_ids, "IEMOCAP-DA act codes")
        row_id = table.get(cells, "TURN").strip()
        if label is None or not parse.identifier(line, row_id, seen):
            continue
        out.add(line, {
            "id": row_id,
            "text": table.get(cells, "UTTERANCE"),
            "label": label,
            "emotion": table.get(cells, "EMOTION").strip(),
        })  # fmt: skip
    return out


def _mintrec_row(parse: _RowParser, line: int, season: str, episode: str, clip: str) -> dict | None:
    season_number = parse.integer(line, "season", season, "[Ss]")
    episode_number = None if season_number is None else parse.integer(line, "episode", episode, "[Ee]")
    clip_number = None if episode_number is None else parse.integer(line, "clip", clip)
    if clip_number is None:
        return None
    return {
        "id": f"S{season_number:02d}_E{episode_number:02d}_{clip_number}",
        "season": season_number,
        "episode": episode_number,
        "clip": clip_number,
    }


def read_mintrec_tsv(path: Path, bad_rows: BadRows, encoding: str = "utf-8") -> SplitRows:
    """MIntRec ``{split}.tsv``: ``season episode clip text label`` (``S04 E16 164 ... Inform``)."""
    table = TsvFile(path, ("season", "episode", "clip", "text", "label"), encoding=encoding)
    parse, out, seen = _RowParser(table.path, bad_rows), SplitRows(table.path), {}
    label_ids = {name: i for i, name in enumerate(MINTREC_INTENTS)}
    for line, cells in table.rows(bad_rows):
        row = _mintrec_row(parse, line, *(table.get(cells, c) for c in ("season", "episode", "clip")))
        if row is None:
            continue
        label = parse.label(line, table.get(cells, "label"), label_ids, "MIntRec intents")
        if label is None or not parse.identifier(line, row["id"], seen):
            continue
        out.add(line, {"id": row.pop("id"), "text": table.get(cells, "text"), "label": label, **row})
    return out


def _chat_reader(benchmark: str) -> Callable[[Path, BadRows, str], SplitRows]:
    """Reader of the Nano-EmoX chat records: ``[{"messages": [{"role": "user", "content": TEXT},
    {"role": "assistant", "content": LABEL}], "videos": [".../<id>.mp4"]}, ...]``. The id comes from
    the video file name (the path itself points to the authors' disk)."""
    labels = MINTREC_INTENTS if benchmark == "mintrec" else MINTREC2_INTENTS
    label_ids = {name: i for i, name in enumerate(labels)}
    what = "MIntRec intents" if benchmark == "mintrec" else "MIntRec2.0 intents"

    def read(path: Path, bad_rows: BadRows, encoding: str = "utf-8") -> SplitRows:
        parse, out, seen = _RowParser(Path(path), bad_rows), SplitRows(Path(path)), {}
        for line, record in read_json_array(path, encoding=encoding):
            messages = record.get("messages") if isinstance(record, dict) else None
            videos = record.get("videos") if isinstance(record, dict) else None
            roles = [m.get("role") for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
            if "user" not in roles or "assistant" not in roles:
                bad_rows(path, line, "chat record without a user and an assistant message", str(record)[:120])
                continue
            if not (isinstance(videos, list) and videos and isinstance(videos[0], str)):
                bad_rows(path, line, "chat record without a video path", str(record)[:120])
                continue
            text = next(m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user")
            answer = next(m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
            if not isinstance(text, str) or not isinstance(answer, str):
                bad_rows(path, line, "chat message content is not a string", str(record)[:120])
                continue
            stem = Path(videos[0].replace("\\", "/")).stem
            if benchmark == "mintrec":
                match = re.fullmatch(r"(S\d+)_(E\d+)_(\d+)", stem)
                row = _mintrec_row(parse, line, *match.groups()) if match else None
            else:
                match = re.fullmatch(r"dia(\d+)_utt(\d+)", stem)
                row = None
                if match:
                    row = {"id": stem, "dialogue_id": int(match.group(1)), "utterance_id": int(match.group(2)),
                           "speaker": None, "source": None, "start_time": None, "end_time": None}  # fmt: skip
            if row is None:
                bad_rows(path, line, "video file name is not a clip id", videos[0])
                continue
            label = parse.label(line, answer, label_ids, what)
            if label is None or not parse.identifier(line, row["id"], seen):
                continue
            out.add(line, {"id": row.pop("id"), "text": text, "label": label, **row})
        return out

    return read


_MELD_COLUMNS = (
    "Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode",
    "StartTime", "EndTime",
)  # fmt: skip


def read_meld_csv(path: Path, bad_rows: BadRows, encoding: str = "utf-8") -> SplitRows:
    """MELD ``{split}_sent_emo.csv`` (RFC-4180 CSV, UTF-8 with typographic quotes kept as they are)."""
    table = CsvFile(path, _MELD_COLUMNS, encoding=encoding)
    parse, out, seen = _RowParser(table.path, bad_rows), SplitRows(table.path), {}
    emotion_ids = {name: i for i, name in enumerate(MELD_EMOTIONS)}
    sentiment_ids = {name: i for i, name in enumerate(MELD_SENTIMENTS)}
    for line, cells in table.rows(bad_rows):
        numbers = {}
        for column in ("Sr No.", "Dialogue_ID", "Utterance_ID", "Season", "Episode"):
            numbers[column] = parse.integer(line, column, table.get(cells, column))
            if numbers[column] is None:
                break
        if None in numbers.values():
            continue
        label = parse.label(line, table.get(cells, "Emotion"), emotion_ids, "MELD emotions")
        if label is None:
            continue
        sentiment = parse.label(line, table.get(cells, "Sentiment"), sentiment_ids, "MELD sentiments")
        row_id = f"dia{numbers['Dialogue_ID']}_utt{numbers['Utterance_ID']}"
        if sentiment is None or not parse.identifier(line, row_id, seen):
            continue
        out.add(line, {
            "id": row_id,
            "text": table.get(cells, "Utterance"),
            "label": label,
            "sentiment": sentiment,
            "speaker": table.get(cells, "Speaker").strip(),
            "dialogue_id": numbers["Dialogue_ID"],
            "utterance_id": numbers["Utterance_ID"],
            "season": numbers["Season"],
            "episode": numbers["Episode"],
            "start_time": table.get(cells, "StartTime").strip(),
            "end_time": table.get(cells, "EndTime").strip(),
            "sr_no": numbers["Sr No."],
        })  # fmt: skip
    return out


# ------------------------------------------------------------------------------------ benchmarks
def _features(labels: Sequence[str], **columns) -> Features:
    label = ClassLabel(names=list(labels))
    return Features({"id": Value("string"), "text": Value("string"), "label": label, **columns})


@dataclass(frozen=True)
class Benchmark:
    """What ``load_benchmark`` needs to know about one benchmark."""

    name: str
    title: str
    labels: tuple[str, ...]
    features: Features
    read: Callable[[Path, BadRows, str], SplitRows]
    file_name: str  # "{split}.tsv"
    chat_file_name: str | None = None  # "{split}_MIntRec_ann.json"
    video_names: tuple[str, ...] = ("{id}.mp4",)  # candidate file names under media_dir, tried in order


BENCHMARKS: dict[str, Benchmark] = {
    "mintrec2": Benchmark(
        "mintrec2", "MIntRec2.0", MINTREC2_INTENTS,
        _features(MINTREC2_INTENTS, dialogue_id=Value("int32"), utterance_id=Value("int32"), speaker=Value("string"),
                  source=Value("string"), start_time=Value("string"), end_time=Value("string")),
        read_mintrec2_tsv, "{split}.tsv", "{split}_MIntRec2_ann.json",
    ),
    "iemocap-da": Benchmark(
        "iemocap-da", "IEMOCAP-DA", IEMOCAP_DA_ACTS,
        _features(IEMOCAP_DA_ACTS, emotion=Value("string")),
        read_iemocap_da_tsv, "{split}.tsv", None, ("{id}.mp4", "{id}.avi"),
    ),
    "mintrec": Benchmark(
        "mintrec", "MIntRec", MINTREC_INTENTS,
        _features(MINTREC_INTENTS, season=Value("int32"), episode=Value("int32"), clip=Value("int32")),
        read_mintrec_tsv, "{split}.tsv", "{split}_MIntRec_ann.json",
        # flat (as the Nano-EmoX paths) or the MIntRec raw_data layout S04_E16/164.mp4
        ("{id}.mp4", "S{season:02d}_E{episode:02d}/{clip}.mp4"),
    ),
    "meld": Benchmark(
        "meld", "MELD", MELD_EMOTIONS,
        _features(MELD_EMOTIONS, sentiment=ClassLabel(names=list(MELD_SENTIMENTS)), speaker=Value("string"),
                  dialogue_id=Value("int32"), utterance_id=Value("int32"), season=Value("int32"),
                  episode=Value("int32"),
                  start_time=Value("string"), end_time=Value("string"), sr_no=Value("int32")),
        read_meld_csv, "{split}_sent_emo.csv",
    ),
}  # fmt: skip

LABELS: dict[str, tuple[str, ...]] = {name: bench.labels for name, bench in BENCHMARKS.items()}
_ALIASES = {"mintrec2.0": "mintrec2", "mintrec-2": "mintrec2", "iemocap_da": "iemocap-da", "iemocapda": "iemocap-da"}


def get_benchmark(name: str) -> Benchmark:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[key]


def _split_files(bench: Benchmark, data_dir: Path) -> dict[str, Path]:
    """split -> file: the release's text files, or (MIntRec / MIntRec2.0) the Nano-EmoX chat records."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{bench.title} data_dir {data_dir} is not a folder")
    tables = {split: data_dir / bench.file_name.format(split=stem) for split, stem in SPLIT_FILES.items()}
    if any(path.is_file() for path in tables.values()):
        missing = [str(path) for path in tables.values() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{bench.title}: missing split file(s) {missing}")
        return tables
    if bench.chat_file_name:
        chats = {split: data_dir / bench.chat_file_name.format(split=stem) for split, stem in SPLIT_FILES.items()}
        chats = {split: path for split, path in chats.items() if path.is_file()}
        if "train" in chats and "test" in chats:
            return chats  # the chat release merges dev into train: splits train and test only
    expected = [bench.file_name.format(split=s) for s in SPLIT_FILES.values()]
    if bench.chat_file_name:
        expected_chat = [bench.chat_file_name.format(split=s) for s in ("train", "test")]
        expected = f"{expected} or the chat records {expected_chat}"
    found = sorted(p.name for p in data_dir.iterdir())[:20]
    raise FileNotFoundError(f"{bench.title}: no split files in {data_dir}; expected {expected}; found {found}")


# ----------------------------------------------------------------------------------------- media
def _media_dirs(media_dir, split: str) -> list[Path]:
    """Folders to search for a split's media: a mapping gives one per split; a single folder is
    searched itself and through its sub-folder named after the split (``validation`` or ``dev`` ...)."""
    if isinstance(media_dir, Mapping):
        folder = media_dir.get(split) or media_dir.get(SPLIT_FILES[split])
        return [Path(folder)] if folder else []
    root = Path(media_dir)
    return [root / split, root / SPLIT_FILES[split], root]


def attach_media(bench: Benchmark, split: str, rows: SplitRows, media_dir, allow_outside_data_root: bool = False) -> None:
    """Add ``video`` (the clip) and ``audio`` (a sibling audio file, else the clip, whose audio track
    is decoded with PyAV) path columns; rows without any file get None and are reported. A row id that
    would make a media path leave the media folders (``../x``, an absolute path) is an error naming the
    file and line, unless ``allow_outside_data_root``."""
    folders = [folder for folder in _media_dirs(media_dir, split) if folder.is_dir()]
    missing: list[str] = []
    for row, line in zip(rows.rows, rows.lines):
        for pattern in (*bench.video_names, f"{{id}}{AUDIO_SUFFIXES[0]}"):
            for folder in folders:
                confine(folder / pattern.format(**row), [folder], where=f"{rows.path}:{line}", value=row["id"],
                        allow_outside=allow_outside_data_root)
        videos = (folder / pattern.format(**row) for pattern in bench.video_names for folder in folders)
        video = next((path for path in videos if path.is_file()), None)
        audios = (folder / f"{row['id']}{suffix}" for folder in folders for suffix in AUDIO_SUFFIXES)
        audio = next((path for path in audios if path.is_file()), video)
        row["video"] = None if video is None else os.fspath(video)
        row["audio"] = None if audio is None else os.fspath(audio)
        if audio is None:
            missing.append(bench.video_names[0].format(**row))
    if missing:
        searched = [os.fspath(folder) for folder in folders] or media_dir
        warnings.warn(
            f"{bench.title} {split}: {len(missing)} of {len(rows.rows)} rows have no media file in {searched} "
            f"(video/audio set to None), e.g. {missing[:5]}",
            MissingMediaWarning,
            stacklevel=3,
        )


# ------------------------------------------------------------------------------------- the loader
# Rows waiting to be written by ``Dataset.from_generator``, by content digest (see _build_dataset).
_PENDING_ROWS: dict[str, list[dict]] = {}


def _yield_rows(digest: str):
    yield from _PENDING_ROWS[digest]


def _build_dataset(rows: list[dict], features: Features, split: str, cache_dir, keep_in_memory: bool) -> Dataset:
    if keep_in_memory:
        columns = {column: [row[column] for row in rows] for column in features}
        return Dataset.from_dict(columns, features=features, split=NamedSplit(split))
    # from_generator writes an Arrow file under a cache key that hashes the generator's kwargs and the
    # features. The kwargs carry a SHA-256 of the validated rows (hashing the rows themselves with
    # dill takes seconds), so a changed input can never be served from a stale cache, while an
    # unchanged one is memory-mapped again - and later .map() calls on it find their cached results.
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
    _PENDING_ROWS[digest] = rows
    try:
        return Dataset.from_generator(_yield_rows, features=features, gen_kwargs={"digest": digest},
                                      cache_dir=cache_dir, split=NamedSplit(split))
    finally:
        del _PENDING_ROWS[digest]


def load_benchmark(
    name: str,
    data_dir,
    *,
    descriptions_dir=None,
    ranks_file=None,
    media_dir=None,
    on_bad_rows: str = "raise",
    aspect_order: Sequence[str] = ASPECTS,
    unquote_descriptions: bool = True,
    encoding: str = "utf-8",
    cache_dir: str | os.PathLike | None = None,
    keep_in_memory: bool = False,
    allow_outside_data_root: bool = False,
) -> DatasetDict:
    """Load a benchmark from its public release files as a ``DatasetDict`` (``train``, ``validation``,
    ``test``; the Nano-EmoX chat records have ``train`` and ``test`` only).

    Args:
        name: ``"mintrec2"``, ``"iemocap-da"``, ``"mintrec"`` or ``"meld"``.
        data_dir: folder of the split files (``.../data_text/MIntRec2.0``, ``.../meld``, ...).
        descriptions_dir: LGSRR CoT-step-2 descriptions, ``{train,dev,test}.tsv``; adds ``aspects``
            (one text per aspect, in ``aspect_order``). Every row needs a description.
        ranks_file: LGSRR CoT-step-3 rankings (``Dia Utt Rank_First Rank_Second Rank_Third`` or
            ``Turn ...``) joined onto ``train``, or a mapping ``{split: file}``; adds ``aspect_ranks``
            (the position of each aspect in the ranking, 0 = most important; None on rows without one).
        media_dir: folder of the clips (or ``{split: folder}``); adds ``video`` and ``audio`` paths and
            warns about the rows that have none.
        on_bad_rows: ``"raise"`` (default) stops at the first bad row with a
            :class:`BenchmarkFormatError` naming file, line and value; ``"skip"`` drops bad rows and
            counts them in one :class:`BadRowsWarning`.
        aspect_order: order of the aspects in ``aspects`` / ``aspect_ranks``; must match
            ``LGSRRConfig.aspects`` (default ``("actions", "expressions", "interactions")``).
        unquote_descriptions: undo the (doubled) CSV quoting of description cells; False keeps them
            verbatim as the reference code does (it reads them with ``quotechar=None``).
        encoding: text encoding of the files (a UTF-8 BOM is always accepted).
        cache_dir: datasets cache folder (default: ``HF_DATASETS_CACHE``).
        keep_in_memory: build in-memory tables instead of cached Arrow files (then ``map`` does not cache).
        allow_outside_data_root: accept row ids whose media path leaves ``media_dir`` (refused by default:
            docs/conventions.md, "Files from others").
    """
    bench = get_benchmark(name)
    aspect_order = check_aspect_order(aspect_order)
    bad_rows = BadRows(on_bad_rows)
    files = _split_files(bench, Path(data_dir))
    splits = {
        split: (_chat_reader(bench.name) if path.suffix == ".json" else bench.read)(path, bad_rows, encoding)
        for split, path in files.items()
    }

    features = dict(bench.features)
    if descriptions_dir is not None:
        attach_descriptions(splits, Path(descriptions_dir), aspect_order, bad_rows,
                            unquote=unquote_descriptions, encoding=encoding)
        features["aspects"] = List(Value("string"), length=len(aspect_order))
    if ranks_file is not None:
        _attach_rank_files(splits, ranks_file, aspect_order, bad_rows, encoding)
        features["aspect_ranks"] = List(Value("int32"), length=len(aspect_order))
    if media_dir is not None:
        _check_media_dirs(media_dir)
        for split, rows in splits.items():  # here, not in a helper: attach_media's warning names the caller's line
            attach_media(bench, split, rows, media_dir, allow_outside_data_root)
        features["video"] = Value("string")
        features["audio"] = Value("string")
    bad_rows.warn(f"load_benchmark({bench.name!r})")
    return _dataset_dict(bench, splits, Features(features), cache_dir, keep_in_memory)


def _attach_rank_files(splits: dict, ranks_file, aspect_order: Sequence[str], bad_rows: BadRows, encoding: str) -> None:
    """``load_benchmark``'s ``ranks_file`` (one file for ``train``, or ``{split: file}``) joined onto its splits."""
    rank_files = dict(ranks_file) if isinstance(ranks_file, Mapping) else {"train": ranks_file}
    unknown = sorted(set(rank_files) - set(splits))
    if unknown:
        raise ValueError(f"ranks_file names split(s) {unknown}; the splits are {list(splits)}")
    attach_ranks(splits, {split: Path(path) for split, path in rank_files.items()}, aspect_order, bad_rows,
                 encoding=encoding)


def _check_media_dirs(media_dir) -> None:
    """``load_benchmark``'s ``media_dir`` (one folder, or ``{split: folder}``): every folder must exist."""
    given = media_dir.values() if isinstance(media_dir, Mapping) else [media_dir]
    absent = [os.fspath(folder) for folder in given if not Path(folder).is_dir()]
    if absent:
        raise FileNotFoundError(f"media_dir folder(s) not found: {absent}")


def _dataset_dict(bench: Benchmark, splits: dict, features: Features, cache_dir, keep_in_memory: bool) -> DatasetDict:
    """One ``Dataset`` per split; a split left without rows is an error."""
    dataset = DatasetDict()
    for split, rows in splits.items():
        if not rows.rows:
            raise ValueError(f"{bench.title} {split}: no usable rows in {rows.path}")
        dataset[split] = _build_dataset(rows.rows, features, split, cache_dir, keep_in_memory)
        dataset[split].info.dataset_name = bench.name
        dataset[split].info.description = f"{bench.title} {split}, loaded by mmaffect.load_benchmark from {rows.path}"
    return dataset


__all__ = [
    "BENCHMARKS",
    "LABELS",
    "SPLIT_FILES",
    "Benchmark",
    "MissingMediaWarning",
    "SplitRows",
    "attach_media",
    "get_benchmark",
    "load_benchmark",
    "read_iemocap_da_tsv",
    "read_meld_csv",
    "read_mintrec2_tsv",
    "read_mintrec_tsv",
]
