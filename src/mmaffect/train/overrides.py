"""``--key value`` overrides of ``mmaffect train``, read by both trainers' command lines."""

from __future__ import annotations

import yaml


def parse_overrides(argv: list[str]) -> dict:
    """``["--a", "1", "--b.c", "x", "--flag", "--l", "1", "2"]`` -> ``{"a": 1, "b": {"c": "x"}, "flag": True, "l": [1, 2]}``."""
    values: dict = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise ValueError(f"unexpected argument {token!r}: options look like --key value")
        key, eq, inline = token[2:].partition("=")
        key = key.replace("-", "_")
        items = [inline] if eq else []
        i += 1
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            items.append(argv[i])
            i += 1
        parsed = [yaml.safe_load(item) for item in items]
        value = True if not parsed else parsed[0] if len(parsed) == 1 else parsed
        target = values
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ValueError(f"--{key}: {parent!r} is not a mapping")
        target[leaf] = value
    return values


def merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


__all__ = ["merge", "parse_overrides"]
