"""Files from others: read them without running their code, opening files outside the data root, or
echoing secrets (docs/conventions.md, "Files from others").

Researchers exchange prediction files, benchmark label files and checkpoints; none of them is trusted.

* :func:`load_npz` reads an ``.npz`` (or ``.npy``): plain arrays with ``allow_pickle=False``; object arrays
  (the MER-UniBench label files hold dicts of strings and numbers) through an unpickler that can only
  build numpy arrays / dtypes / scalars and builtin containers, strings and numbers. Anything else
  (``os.system``, ``builtins.eval``, any class) raises :class:`UnsafeFileError` naming the file and the
  class it asked for, before it is called.
* :func:`confine` refuses a media path (built from a sample id or read from a file) that resolves outside
  the data root, naming the file, line and value, unless the caller passes the explicit opt-in
  (``allow_outside_data_root=True``, ``--allow-outside-data-root``).
* :func:`redact` / :func:`redact_text` hide header values, ``api_key``-like fields and the values of
  ``*_API_KEY`` environment variables before a spec is shown in an error, a log or a written file.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# not bytes: bytes(10**12) would be a memory bomb, and protocols >= 3 write bytes without a global
_PLAIN_BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "complex"})
#: module -> names an object array's pickle may ask for: how numpy rebuilds arrays, dtypes and scalars
#: (``numpy.core`` is NumPy 1's name), ``_codecs.encode`` (protocol-2 bytes) and the plain builtins.
_ALLOWED_GLOBALS = {
    "numpy": {"ndarray", "dtype"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "_codecs": {"encode"},
    "builtins": _PLAIN_BUILTINS,
    "__builtin__": _PLAIN_BUILTINS,  # Python 2 pickles
}


class UnsafeFileError(ValueError):
    """A data file asked to run code (an object array pickling something other than data)."""


class OutsideDataRootError(ValueError):
    """A media path from a data file resolves outside the data root (and no opt-in was given)."""


# ----------------------------------------------------------------------------------------- .npz
class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays of plain data; refuses every other global before it is looked up."""

    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")  # what numpy uses for Python 2 pickles
        self.source = source

    def find_class(self, module: str, name: str):
        if name in _ALLOWED_GLOBALS.get(module, ()):
            return super().find_class(module, name)
        raise UnsafeFileError(
            f"{self.source}: refused to load: its pickled data asks for {module}.{name}, which is not plain data "
            "(numbers, strings, lists, dicts, numpy arrays); such a file can run code when opened"
        )


def _read_npy(stream, source: str):
    """One ``.npy`` stream: the numpy header, then the raw data or (object dtype) the restricted pickle."""
    import numpy as np
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
    else:  # 3.0 (utf-8 field names) has no public header reader
        shape, fortran_order, dtype = npy_format._read_array_header(stream, version)
    if not dtype.hasobject:
        stream.seek(0)
        return npy_format.read_array(stream, allow_pickle=False)
    try:
        array = _DataOnlyUnpickler(stream, source).load()
    except UnsafeFileError:
        raise
    except Exception as error:  # noqa: BLE001 - a truncated or corrupt pickle, whatever the exception
        raise ValueError(f"{source}: unreadable object array ({type(error).__name__}: {error})") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise ValueError(f"{source}: the object array does not match its header (shape {shape})")
    return array


def load_npz(path: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The arrays of an ``.npz`` (or the one array of an ``.npy``, under ``"arr_0"``) read safely.

    ``names`` limits which arrays are read (absent ones are simply missing from the result). Raises
    :class:`UnsafeFileError` when an object array asks for anything but plain data, ``ValueError`` naming
    the file when it is not a readable numpy file."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        with open(path, "rb") as handle:
            return {"arr_0": _read_npy(handle, str(path))}
    wanted = None if names is None else set(names)
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                if wanted is not None and key not in wanted:
                    continue
                # a seekable copy: read_array seeks back to the start for plain arrays
                stream = io.BytesIO(archive.read(member))
                arrays[key] = _read_npy(stream, f"{path} (array {key!r})")
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    return arrays


def npz_names(path: str | os.PathLike) -> list[str]:
    """The array names of an ``.npz`` without reading any array."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [m[:-4] if m.endswith(".npy") else m for m in archive.namelist()]
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None


# ------------------------------------------------------------------------------------ data root
def is_inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` (made absolute, ``..`` collapsed; links not followed: a link placed in the data
    root by its owner is the owner's choice) lies in one of ``roots``."""
    target = Path(os.path.abspath(path))
    return any(target.is_relative_to(os.path.abspath(root)) for root in roots if root is not None)


def confine(path, roots: Iterable, *, where: str, value: Any = None, allow_outside: bool = False):
    """``path`` unchanged when it lies inside one of ``roots`` (or ``allow_outside``); else
    :class:`OutsideDataRootError` naming ``where`` (file and line), the ``value`` read there and the roots."""
    roots = [root for root in roots if root is not None]
    if path is None or allow_outside or is_inside(path, roots):
        return path
    shown = value if value is not None else path
    raise OutsideDataRootError(
        f"{where}: media path {shown!r} resolves to {os.path.abspath(path)}, outside the data root "
        f"{[os.fspath(r) for r in roots]}; pass allow_outside_data_root=True (--allow-outside-data-root) "
        "if your media is kept elsewhere on purpose"
    )


# -------------------------------------------------------------------------------------- secrets
REDACTED = "<redacted>"
# field names that hold a secret (``max_tokens`` does not; ``api_key_env`` names a variable, not a key)
_SECRET_NAME = re.compile(r"(api_?key|access_token|auth_token|secret|password|passwd|authorization)$")


def _secret_env_values() -> list[str]:
    return [v for k, v in os.environ.items() if k.upper().endswith("_API_KEY") and len(v) >= 4]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the value of every ``*_API_KEY`` environment variable (and of ``secrets``, e.g. the
    header values a client sent) replaced by ``<redacted>``."""
    for secret in [*_secret_env_values(), *(s for s in secrets if isinstance(s, str) and len(s) >= 4)]:
        text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, *, _key: str = "") -> Any:
    """A copy of a spec safe to show: every ``headers`` value, every field named like ``api_key``,
    ``access_token``, ``secret``, ``password`` or ``authorization``, and every ``*_API_KEY`` environment
    value inside a string become ``<redacted>``."""
    if isinstance(value, dict):
        if _key.lower() == "headers":
            return {k: REDACTED for k in value}
        return {k: redact(v, _key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, _key=_key) for v in value)
    if value is not None and _SECRET_NAME.search(_key.lower().replace("-", "_")):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    return value


__all__ = [
    "OutsideDataRootError", "REDACTED", "UnsafeFileError", "confine", "is_inside", "load_npz", "npz_names",
    "redact", "redact_text",
]
