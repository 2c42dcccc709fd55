"""Module attributes imported on first access (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

from importlib import import_module


def lazy_attributes(package: str, exports: dict[str, str], namespace: dict):
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a public name to the module it
    lives in (relative to ``package``, e.g. ``"modeling_lgsrr"``); values are cached in ``namespace``."""

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
