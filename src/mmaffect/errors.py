"""Errors a user can act on, and how the command line shows them.

Every ``mmaffect`` command (and the repository's ``train.py``) runs through :func:`run_command`: an error
prints ONE line, ``mmaffect <command>: error: <message>``, on stderr and exits with status 2; ``--debug``
(anywhere on the command line) or ``MMAFFECT_DEBUG=1`` lets the exception through with its traceback.
Library code raises ordinary exception classes (``ValueError``, ``FileNotFoundError``, ``OSError``) whose
message names the file, key or value; the classes below add nothing but a name to catch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEBUG_FLAG = "--debug"


class UsageError(ValueError):
    """A bad argument, config key or value (the message says which, and what is expected)."""


class CheckpointError(ValueError):
    """A saved model or checkpoint that cannot be used as it is: a missing, unexpected or mis-shaped
    tensor, or a corrupt weights file (the message names the file and the tensors)."""


class DiskFullError(OSError):
    """Writing a checkpoint or model failed for lack of space; the message names the file and says
    what is still intact."""


def one_line(error: BaseException) -> str:
    """The exception's message on one line (torch and yaml messages span several)."""
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = f"missing key {error.args[0]!r}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


# Classes whose message is written for the user; anything else is shown with its class name.
_USER_ERRORS = (ValueError, OSError, LookupError)


def split_debug_flag(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it (or ``MMAFFECT_DEBUG=1``) asks for tracebacks."""
    argv = list(argv)
    debug = DEBUG_FLAG in argv or os.environ.get("MMAFFECT_DEBUG", "") not in ("", "0")
    return [a for a in argv if a != DEBUG_FLAG], debug


def run_command(command: str, func: Callable[[list[str]], int | None], argv: Sequence[str]) -> int:
    """``func(argv)`` with the command line's error handling (see the module docstring)."""
    argv, debug = split_debug_flag(argv)
    if debug:
        return int(func(argv) or 0)
    try:
        return int(func(argv) or 0)
    except KeyboardInterrupt:
        print(f"mmaffect {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the command line's last line of defence
        message = one_line(error)
        if not isinstance(error, _USER_ERRORS):
            message = f"{type(error).__name__}: {message} (rerun with --debug for the traceback)"
        print(f"mmaffect {command}: error: {message}", file=sys.stderr)
        return 2


def read_text_utf8(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A text file's content; a byte that is not UTF-8 is a ``ValueError`` naming the file, line, column
    and byte (Python's own ``UnicodeDecodeError`` names none of them)."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {column}); "
                         "save the file as UTF-8") from None


def read_yaml_file(path: str | os.PathLike, what: str = "config file"):
    """A YAML file's content; a syntax error names the file, line and column (yaml says ``<unicode string>``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(read_text_utf8(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or one_line(error)
        context = getattr(error, "context", None)
        raise UsageError(f"{what} {path}: invalid YAML{where}: {problem}" + (f" ({context})" if context else "")) from None


__all__ = ["CheckpointError", "DiskFullError", "UsageError", "one_line", "read_text_utf8", "read_yaml_file", "run_command", "split_debug_flag"]
