"""Emotion wheels of MER-UniBench: map any open-vocabulary emotion word onto a wheel category.

The assets (``wheel1..5.xlsx``, ``synonym.xlsx``, ``format.csv``) ship with MER-UniBench / AffectGPT
and with the Nano-EmoX release; users pass the folder that holds them. A label is mapped onto one
wheel in three steps:

1. **form** - ``format.csv`` lists, for every base word (column ``name``), its inflected forms
   (column ``format``, comma separated). A label maps to every base word that lists it as a form,
   and a base word maps to itself. Labels that are not a known form map to nothing.
2. **synonym** - ``synonym.xlsx`` holds eight GPT runs of ``word_runK`` (a word on some wheel) and
   ``synonym_runK`` (its synonyms). Every synonym maps to the wheel word, every wheel word to itself;
   the runs are merged (union).
3. **wheel** - the candidate wheel words from steps 1-2 are sorted alphabetically and the first one
   that lies on the wheel decides: its level-1 category (``level="level1"``, the benchmark default)
   or its level-2 category (``level="level2"``; a level-1 word then goes to its alphabetically first
   level-2 child). Ties are therefore broken by the alphabetically first candidate *on that wheel*.

Every label is lower-cased and stripped first. A label that maps to nothing on a wheel (e.g.
``neutral`` on all five wheels) is dropped by the metrics.

The wheel files use "blank cell = same as above" for ``level1``/``level2``/``level3``. When one word
appears in several places of a wheel, the last place in reading order wins (level-1 groups in order
of first appearance, then their level-2 groups, then level-3 words), as in the reference code.

Files are parsed with pandas' defaults (so a cell reading ``null`` or ``NA`` is a blank, exactly as
in the reference), once per process: :func:`load_emotion_wheels` caches by folder, level and file
modification times.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

WHEEL_NAMES = ("wheel1", "wheel2", "wheel3", "wheel4", "wheel5")
SYNONYM_FILE = "synonym.xlsx"
FORMAT_FILE = "format.csv"
WHEEL_DIR_ENV = "MMAFFECT_WHEEL_DIR"

LabelsLike = Union[str, Sequence[str], None]

_SPLIT_LABELS = re.compile(r"['\",]")


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        # NaN is the only value unequal to itself; bool() inside the try: a numpy array compares
        # element-wise, and its truth value is ambiguous (an array is never "missing")
        return bool(value != value)
    except Exception:
        return False


def string_to_label_list(value: LabelsLike) -> list[str]:
    """Parse a label field into a list of raw (not yet lower-cased) labels.

    Accepts a list/tuple (returned as a list of ``str``), ``None``/NaN/``""`` (empty list), or a
    string such as ``"['happy', 'tense']"``, ``"happy, tense"`` or ``"happy"``: one pair of outer
    brackets is removed, then the text is split on commas and quote characters, items are stripped
    and empty items dropped. This is the benchmark's own parsing rule (note that an apostrophe also
    splits, so ``"can't"`` becomes two items).
    """
    if value is None or _is_missing(value):
        return []
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [str(item).strip() for item in value if str(item).strip()]
    if not isinstance(value, str):
        raise TypeError(f"a label field must be a string or a list of strings, got {type(value).__name__}: {value!r}")
    text = value
    if text == "":
        return []
    if text[0] == "[":
        text = text[1:]
    if text and text[-1] == "]":
        text = text[:-1]
    return [item.strip() for item in _SPLIT_LABELS.split(text) if item.strip()]


def normalize_labels(value: LabelsLike) -> list[str]:
    """:func:`string_to_label_list`, then lower-case and strip every label."""
    return [label.lower().strip() for label in string_to_label_list(value)]


@dataclass(frozen=True, eq=False)  # identity equality / hashing: the mappings are large dicts
class EmotionWheels:
    """Parsed MER-UniBench emotion-wheel assets.

    Attributes:
        form_to_words: inflected form -> base words of ``format.csv`` that list it (base words map
            to themselves).
        synonym_to_wheel_words: synonym or wheel word -> wheel words (merged over the GPT runs).
        wheel_maps: one dict per wheel, wheel word (any level) -> its category at ``level``.
        wheel_names: ``("wheel1", ..., "wheel5")``.
        level: ``"level1"`` or ``"level2"``.
        source: the folder the assets were read from.
    """

    form_to_words: Mapping[str, tuple[str, ...]]
    synonym_to_wheel_words: Mapping[str, frozenset[str]]
    wheel_maps: tuple[Mapping[str, str], ...]
    wheel_names: tuple[str, ...] = WHEEL_NAMES
    level: str = "level1"
    source: str = ""
    _candidate_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_wheels(self) -> int:
        return len(self.wheel_maps)

    def wheel_index(self, wheel: int | str) -> int:
        """Index of a wheel given as ``0..4`` or ``"wheel1".."wheel5"``."""
        if isinstance(wheel, str):
            if wheel not in self.wheel_names:
                raise ValueError(f"unknown wheel {wheel!r}; expected one of {list(self.wheel_names)}")
            return self.wheel_names.index(wheel)
        if not 0 <= int(wheel) < self.num_wheels:
            raise ValueError(f"wheel index {wheel} out of range 0..{self.num_wheels - 1}")
        return int(wheel)

    def candidates(self, label: str) -> list[str]:
        """Sorted wheel words reachable from ``label`` (lower-cased, stripped) via forms and synonyms."""
        key = label.lower().strip()
        cached = self._candidate_cache.get(key)
        if cached is None:
            words: list[str] = []
            for base in self.form_to_words.get(key, ()):
                words.extend(self.synonym_to_wheel_words.get(base, ()))
            cached = sorted(words)
            self._candidate_cache[key] = cached
        return cached

    def map_label(self, label: str, wheel: int | str) -> str | None:
        """Category of ``label`` on one wheel, or ``None`` when it maps to nothing there."""
        wheel_map = self.wheel_maps[self.wheel_index(wheel)]
        for word in self.candidates(label):
            if word in wheel_map:
                return wheel_map[word]
        return None

    def map_label_all(self, label: str) -> tuple[str | None, ...]:
        """Category of ``label`` on every wheel (``None`` = maps to nothing)."""
        return tuple(self.map_label(label, index) for index in range(self.num_wheels))

    def map_labels(self, labels: LabelsLike, wheel: int | str) -> set[str]:
        """Set of categories of a label field on one wheel; unmappable labels are dropped."""
        index = self.wheel_index(wheel)
        mapped = set()
        for label in normalize_labels(labels):
            category = self.map_label(label, index)
            if category is not None:
                mapped.add(category)
        return mapped

    def vocabulary(self) -> list[str]:
        """Every word form that maps somewhere through ``format.csv`` (sorted), e.g. for lexicon matching."""
        return sorted(form for form in self.form_to_words if form)


def _read_wheel(path: Path, level: str) -> dict[str, str]:
    import pandas as pd

    frame = pd.read_excel(path)
    missing = [column for column in ("level1", "level2", "level3") if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    # level1 -> level2 -> [level3], insertion-ordered like the file
    tree: dict[str, dict[str, list[str]]] = {}
    current = {"level1": "", "level2": "", "level3": ""}
    for row_number, row in enumerate(frame.itertuples(index=False), start=2):
        for column in ("level1", "level2", "level3"):
            cell = getattr(row, column)
            if not _is_missing(cell):
                if not isinstance(cell, str):
                    raise ValueError(f"{path}: row {row_number}, column {column}: expected a word, got {cell!r}")
                current[column] = cell
        level1, level2, level3 = (current[c].lower().strip() for c in ("level1", "level2", "level3"))
        tree.setdefault(level1, {}).setdefault(level2, []).append(level3)

    wheel_map: dict[str, str] = {}
    for level1, children in tree.items():
        if level == "level1":
            wheel_map[level1] = level1
            for level2, leaves in children.items():
                wheel_map[level2] = level1
                for level3 in leaves:
                    wheel_map[level3] = level1
        else:
            wheel_map[level1] = sorted(children)[0]
            for level2, leaves in children.items():
                wheel_map[level2] = level2
                for level3 in leaves:
                    wheel_map[level3] = level2
    return wheel_map


def _read_synonyms(path: Path, wheel_words: set[str]) -> dict[str, frozenset[str]]:
    import pandas as pd

    frame = pd.read_excel(path)
    runs = sorted(
        (match.group(1) for match in (re.fullmatch(r"word_(run\d+)", str(c)) for c in frame.columns) if match),
        key=lambda name: int(name[3:]),
    )
    if not runs:
        raise ValueError(f"{path}: no 'word_runK' columns; found {list(frame.columns)}")
    merged: dict[str, set[str]] = {}
    for run in runs:
        synonym_column = f"synonym_{run}"
        if synonym_column not in frame.columns:
            raise ValueError(f"{path}: column 'word_{run}' has no matching '{synonym_column}'")
        for row_number, (word, synonyms) in enumerate(zip(frame[f"word_{run}"], frame[synonym_column]), start=2):
            if _is_missing(word) or not isinstance(word, str):
                raise ValueError(f"{path}: row {row_number}, column word_{run}: expected a wheel word, got {word!r}")
            word = word.strip().lower()
            if word not in wheel_words:
                raise ValueError(
                    f"{path}: row {row_number}, column word_{run}: {word!r} is not a word of any wheel*.xlsx"
                )
            merged.setdefault(word, set()).add(word)
            for synonym in string_to_label_list(synonyms):
                merged.setdefault(synonym.strip().lower(), set()).add(word)
    return {key: frozenset(value) for key, value in merged.items()}


def _read_forms(path: Path) -> dict[str, tuple[str, ...]]:
    import pandas as pd

    frame = pd.read_csv(path)
    for column in ("name", "format"):
        if column not in frame.columns:
            raise ValueError(f"{path}: missing column {column!r}; found {list(frame.columns)}")
    forms: dict[str, list[str]] = {}
    for name, formats in zip(frame["name"], frame["format"]):
        name = "" if _is_missing(name) else str(name)
        for form in string_to_label_list("" if _is_missing(formats) else str(formats)):
            forms.setdefault(form, []).append(name)
        forms.setdefault(name, []).append(name)
    return {key: tuple(value) for key, value in forms.items()}


def resolve_wheel_dir(wheel_dir: str | os.PathLike | None) -> Path:
    """The wheel folder: the argument, else ``$MMAFFECT_WHEEL_DIR``; checked for the seven files."""
    if wheel_dir is None:
        wheel_dir = os.environ.get(WHEEL_DIR_ENV)
        if not wheel_dir:
            raise ValueError(
                "no emotion-wheel folder given: pass wheel_dir (CLI: --wheel-dir) or set "
                f"${WHEEL_DIR_ENV} to the folder holding wheel1..5.xlsx, synonym.xlsx and format.csv"
            )
    folder = Path(wheel_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"emotion-wheel folder {folder} does not exist")
    expected = [f"{name}.xlsx" for name in WHEEL_NAMES] + [SYNONYM_FILE, FORMAT_FILE]
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"emotion-wheel folder {folder} lacks {missing}")
    return folder.resolve()


@functools.lru_cache(maxsize=8)
def _load_cached(folder: str, level: str, signature: tuple) -> EmotionWheels:
    root = Path(folder)
    wheel_maps = tuple(_read_wheel(root / f"{name}.xlsx", level) for name in WHEEL_NAMES)
    wheel_words = set().union(*wheel_maps)  # every word of every level is a key of its wheel map
    return EmotionWheels(
        form_to_words=_read_forms(root / FORMAT_FILE),
        synonym_to_wheel_words=_read_synonyms(root / SYNONYM_FILE, wheel_words),
        wheel_maps=wheel_maps,
        level=level,
        source=folder,
    )


def load_emotion_wheels(wheel_dir: str | os.PathLike | None = None, level: str = "level1") -> EmotionWheels:
    """Read (once per process) the emotion-wheel assets of ``wheel_dir``.

    Args:
        wheel_dir: folder with ``wheel1..5.xlsx``, ``synonym.xlsx`` and ``format.csv``; defaults to
            ``$MMAFFECT_WHEEL_DIR``.
        level: ``"level1"`` (benchmark default) or ``"level2"``.
    """
    if level not in ("level1", "level2"):
        raise ValueError(f"level must be 'level1' or 'level2', got {level!r}")
    folder = resolve_wheel_dir(wheel_dir)
    signature = tuple(
        (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
        for entry in sorted(folder.iterdir())
        if entry.is_file()
    )
    return _load_cached(str(folder), level, signature)


def as_wheels(wheels: EmotionWheels | str | os.PathLike | None) -> EmotionWheels:
    """Accept parsed wheels or a folder path."""
    return wheels if isinstance(wheels, EmotionWheels) else load_emotion_wheels(wheels)


def map_to_wheels(labels: Iterable[str], wheels: EmotionWheels | str | os.PathLike | None = None) -> dict:
    """Convenience: ``{label: (category on wheel1, ..., wheel5)}`` for a few labels."""
    parsed = as_wheels(wheels)
    return {label: parsed.map_label_all(label) for label in labels}
