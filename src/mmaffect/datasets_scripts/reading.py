"""Line-accurate readers for the release formats, and the bad-row policy.

Every problem in an input file is reported as a :class:`BenchmarkFormatError` that names the file,
the line (1-based, as an editor shows it) and the offending value. Under ``on_bad_rows="skip"`` a
row-level problem drops the row instead and is counted; :meth:`BadRows.warn` then emits one
:class:`BadRowsWarning` with the counts per reason and the first few locations. Problems that make a
whole file unusable (missing file, missing column, undecodable bytes) always raise.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

ON_BAD_ROWS = ("raise", "skip")
# DatasetDict split -> the file stem the releases use for it
SPLIT_FILES: dict[str, str] = {"train": "train", "validation": "dev", "test": "test"}
_NO_VALUE = object()


class BenchmarkFormatError(ValueError):
    """A benchmark file breaks its format. ``path``, ``line`` (1-based, or None for a whole-file
    problem), ``reason`` (a short category such as ``"unknown label"``) and ``value`` say where and what."""

    def __init__(self, path, line: int | None, reason: str, value=_NO_VALUE, detail: str = ""):
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.value = None if value is _NO_VALUE else value
        where = self.path if line is None else f"{self.path}:{line}"
        message = f"{where}: {reason}"
        if value is not _NO_VALUE:
            message += f" {value!r}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class BadRowsWarning(UserWarning):
    """Rows were dropped under ``on_bad_rows="skip"``; the message counts them per reason."""


class UnmatchedRowsWarning(UserWarning):
    """Rows of a descriptions / ranks file whose id matches no row of the benchmark split."""


class BadRows:
    """Applies the ``on_bad_rows`` policy: raise at the first bad row, or record and skip it."""

    def __init__(self, on_bad_rows: str = "raise"):
        if on_bad_rows not in ON_BAD_ROWS:
            raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
        self.mode = on_bad_rows
        self.skipped: list[BenchmarkFormatError] = []

    def __call__(self, path, line: int | None, reason: str, value=_NO_VALUE, detail: str = "") -> None:
        """Report a bad row: raises in ``"raise"`` mode; the caller drops the row otherwise."""
        error = BenchmarkFormatError(path, line, reason, value, detail)
        if self.mode == "raise":
            raise error
        self.skipped.append(error)

    def counts(self) -> Counter:
        return Counter(error.reason for error in self.skipped)

    def warn(self, context: str, stacklevel: int = 3) -> None:
        if not self.skipped:
            return
        per_reason = ", ".join(f"{count} x {reason}" for reason, count in self.counts().most_common())
        examples = "; ".join(str(error) for error in self.skipped[:5])
        more = f"; ... {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        warnings.warn(
            f"{context}: skipped {len(self.skipped)} bad row(s) ({per_reason}): {examples}{more}",
            BadRowsWarning,
            stacklevel=stacklevel,
        )


def decode_file(path: Path, encoding: str = "utf-8") -> str:
    """The file's text with any UTF-8 byte-order mark removed; undecodable bytes raise with their line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    data = path.read_bytes()
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # the BOM some editors write is not part of the first column's name
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise BenchmarkFormatError(
            path, line, f"bytes that are not valid {encoding}", data[err.start : err.end],
            "pass encoding=... to read it with another codec",
        ) from None


def split_lines(text: str) -> list[str]:
    """Physical lines, CRLF or LF. ``str.splitlines`` is not used: it also breaks at U+2028, form
    feeds etc., which may sit inside a cell."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def unquote(cell: str) -> str:
    '''Undo CSV quoting, layer after layer, while ``cell`` is a well-formed quoted field.

    The LGSRR description files were written with CSV quoting applied twice to cells that contain
    a double quote: ``"""He says """"hi."""""""`` is ``He says "hi."``. A cell that is not a
    well-formed quoted field (``"hi" he said``) is returned unchanged.
    '''
    while len(cell) >= 2 and cell[0] == '"' and cell[-1] == '"':
        inner = cell[1:-1]
        if '"' in inner.replace('""', ""):
            break  # a lone quote inside: not a quoted field
        cell = inner.replace('""', '"')
    return cell


class TsvFile:
    """A tab-separated file with a header line, read row by row with line numbers.

    ``unquote=False`` keeps cells verbatim (the reference code reads TSVs with ``quotechar=None``);
    ``True`` applies :func:`unquote` to every cell. Cells never span lines in these releases, so a
    row is a physical line; blank lines are ignored.
    """

    def __init__(self, path, required: Sequence[str], *, unquote: bool = False, encoding: str = "utf-8"):
        self.path = Path(path)
        self.unquote = unquote
        self.lines = split_lines(decode_file(self.path, encoding))
        if not self.lines or not self.lines[0].strip():
            raise BenchmarkFormatError(self.path, 1, "missing header line; expected columns", list(required))
        self.header = [name.strip() for name in self.lines[0].split("\t")]
        self.columns = {name: i for i, name in reversed(list(enumerate(self.header)))}
        missing = [name for name in required if name not in self.columns]
        if missing:
            raise BenchmarkFormatError(self.path, 1, "missing column(s)", missing, f"header is {self.header}")

    def rows(self, bad_rows: BadRows) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) per data line; a line with the wrong number of cells is a bad row."""
        width = len(self.header)
        for index, line in enumerate(self.lines[1:], start=2):
            if not line.strip():
                continue
            cells = line.split("\t")
            while len(cells) > width and cells[-1].strip() == "":
                cells.pop()  # trailing tabs some spreadsheet exports add
            if len(cells) != width:
                bad_rows(self.path, index, f"expected {width} tab-separated cells, found {len(cells)}", line[:120])
                continue
            if self.unquote:
                cells = [unquote(cell) for cell in cells]
            yield index, cells

    def get(self, cells: list[str], column: str) -> str:
        return cells[self.columns[column]]


class CsvFile:
    """A comma-separated file with a header (RFC-4180 quoting, cells may span lines), row by row.

    The line number of a row is the line on which its record STARTS. The file is parsed strictly: a
    quote that is never closed (which would swallow the following lines into one cell), text after a
    closing quote, or a file that ends inside a quoted cell (a cut-off last line) is one bad row at the
    line where the broken record starts; reading then resumes on the next line, so only that record is
    dropped (and counted) under ``on_bad_rows="skip"``.
    """

    def __init__(self, path, required: Sequence[str], *, encoding: str = "utf-8"):
        self.path = Path(path)
        # physical lines with their line ends (str.splitlines would also break at U+2028 inside a cell)
        self.lines = decode_file(self.path, encoding).split("\n")
        self.lines = [line + "\n" for line in self.lines[:-1]] + ([self.lines[-1]] if self.lines[-1] else [])
        reader = csv.reader(iter(self.lines), strict=True)
        try:
            self.header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise BenchmarkFormatError(self.path, 1, "missing header line; expected columns", list(required)) from None
        except csv.Error as err:
            raise BenchmarkFormatError(self.path, 1, "malformed CSV header", str(err)) from None
        self.header_lines = reader.line_num
        self.columns = {name: i for i, name in reversed(list(enumerate(self.header)))}
        missing = [name for name in required if name not in self.columns]
        if missing:
            raise BenchmarkFormatError(self.path, 1, "missing column(s)", missing, f"header is {self.header}")

    def rows(self, bad_rows: BadRows) -> Iterator[tuple[int, list[str]]]:
        width = len(self.header)
        done = self.header_lines  # physical lines consumed so far
        while done < len(self.lines):
            base = done
            reader = csv.reader(iter(self.lines[base:]), strict=True)
            while True:
                start = done + 1  # a record starts on the line after the previous one ends
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    ended = base + reader.line_num
                    if "unexpected end of data" in str(err) and ended == start:
                        reason, detail = "the file ends inside a quoted cell", "a cut-off last line?"
                    elif ended > start:
                        reason, detail = "unclosed quote", f"the cell runs on to line {ended}, where the CSV breaks: {err}"
                    else:
                        reason, detail = "malformed CSV quoting", str(err)
                    bad_rows(self.path, start, reason, self.lines[start - 1].rstrip("\r\n")[:120], detail)
                    done = start  # drop this line only and read on from the next one
                    break
                done = base + reader.line_num
                if not cells or all(not cell.strip() for cell in cells):
                    continue
                if len(cells) != width:
                    if done > start:  # a quote opened on this line swallowed the following lines
                        bad_rows(self.path, start, "unclosed quote", self.lines[start - 1].rstrip("\r\n")[:120],
                                 f"one record of {len(cells)} cells spans lines {start}-{done}")
                        done = start
                        break
                    bad_rows(self.path, start, f"expected {width} comma-separated cells, found {len(cells)}", cells[:3])
                    continue
                yield start, cells

    def get(self, cells: list[str], column: str) -> str:
        return cells[self.columns[column]]


def read_csv_rows(path, required: Sequence[str], *, delimiter: str = ",") -> list[tuple[int, dict[str, str]]]:
    """Rows of a headed CSV as ``(line, {column: value})`` (UTF-8, a byte-order mark dropped); a missing
    column or an undecodable byte names the file and the line."""
    reader = csv.DictReader(io.StringIO(decode_file(Path(path)), newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    missing = [column for column in required if column not in header]
    if missing:
        raise BenchmarkFormatError(path, 1, "missing column(s)", missing, detail=f"header is {header}")
    return [(reader.line_num, {k: (v if v is not None else "") for k, v in row.items()}) for row in reader]


#: transcript columns of ``subtitle_chieng.csv`` / ``transcription-*.csv``, in order of preference
SUBTITLE_COLUMNS = ("english", "sentence", "chinese")
#: cells ``pandas.read_csv`` reads as missing (its default ``na_values``): the releases' own loaders use pandas
PANDAS_NA_VALUES = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
})  # fmt: skip


def read_subtitles(path, text_columns: Sequence[str] = SUBTITLE_COLUMNS, *, strip: bool = True) -> dict[str, str]:
    """``name`` -> transcript of a MER-style subtitle file, from the first of ``text_columns`` the file
    has (the prompts are English: ``english`` first). A cell pandas reads as missing (:data:`PANDAS_NA_VALUES`, and
    ``nan`` in any case or padding: pandas' export of an empty cell) reads as ``""``; ``strip`` removes surrounding
    white space."""
    rows = read_csv_rows(path, ["name"])
    header = set(rows[0][1]) if rows else set()
    column = next((c for c in text_columns if c in header), None)
    if rows and column is None:
        missing = [text_columns[0]] if len(text_columns) == 1 else list(text_columns)
        raise BenchmarkFormatError(path, 1, "missing column(s)", missing,
                                   detail=f"no transcript column; header is {sorted(header)}")
    out = {}
    for _, row in rows:
        text = row[column]
        missing = text in PANDAS_NA_VALUES or text.strip().lower() == "nan"
        out[row["name"]] = "" if missing else text.strip() if strip else text
    return out


def read_json_array(path, *, encoding: str = "utf-8") -> list[tuple[int, object]]:
    """The elements of a JSON array file, each with the line on which it starts."""
    path = Path(path)
    text = decode_file(path, encoding)
    decoder = json.JSONDecoder()

    def skip_space(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    counted = [0, 1]  # position up to which newlines were counted, line number there

    def line_of(pos: int) -> int:
        if pos < counted[0]:
            return text.count("\n", 0, pos) + 1
        counted[1] += text.count("\n", counted[0], pos)
        counted[0] = pos
        return counted[1]

    pos = skip_space(0)
    if pos >= len(text) or text[pos] != "[":
        raise BenchmarkFormatError(path, line_of(pos), "expected a JSON array of records", text[pos : pos + 40])
    elements: list[tuple[int, object]] = []
    pos = skip_space(pos + 1)
    if pos < len(text) and text[pos] == "]":
        return elements
    while True:
        try:
            element, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise BenchmarkFormatError(path, err.lineno, "invalid JSON", err.msg) from None
        elements.append((line_of(pos), element))
        pos = skip_space(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_space(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            break
        raise BenchmarkFormatError(path, line_of(pos), "invalid JSON: expected ',' or ']'", text[pos : pos + 40])
    if skip_space(pos + 1) != len(text):
        trailing = text[pos + 1 : pos + 41]
        raise BenchmarkFormatError(path, line_of(pos + 1), "invalid JSON: data after the array", trailing)
    return elements


__all__ = [
    "BadRows",
    "BadRowsWarning",
    "BenchmarkFormatError",
    "SPLIT_FILES",
    "UnmatchedRowsWarning",
    "CsvFile",
    "TsvFile",
    "decode_file",
    "PANDAS_NA_VALUES",
    "SUBTITLE_COLUMNS",
    "read_csv_rows",
    "read_json_array",
    "read_subtitles",
    "split_lines",
    "unquote",
]
