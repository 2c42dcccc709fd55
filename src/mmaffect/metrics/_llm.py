"""Shared plumbing for the LLM-driven metric steps (judge, label extractor): prompts, backend
duck typing and the JSONL answer cache that lets a rerun skip every query already answered.

A backend is any object with ``chat(messages: list[dict[str, str]], **kwargs) -> str`` - e.g. the
transformers / OpenAI-compatible backends of :mod:`mmaffect.semantic_extraction.backends`, or a
small fake in tests. Nothing here imports a backend module.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Any


def load_prompt(name: str) -> str:
    """Text of ``mmaffect/metrics/prompts/<name>.txt``."""
    return resources.files("mmaffect.metrics").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def check_backend(backend: Any, role: str) -> None:
    if not callable(getattr(backend, "chat", None)):
        raise TypeError(
            f"the {role} backend must have a chat(messages, **kwargs) -> str method; got {type(backend).__name__}"
        )


def backend_name(backend: Any) -> str:
    """A readable name for a backend: its ``name``, ``model_name`` or ``model`` attribute, else its class."""
    for attribute in ("name", "model_name", "model", "model_id"):
        value = getattr(backend, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(backend).__name__


def backend_fingerprint(backend: Any) -> str:
    """What changes a backend's replies (its ``fingerprint()`` when it has one, else its name);
    part of every cache key, so a different model or temperature never reuses old answers."""
    fingerprint = getattr(backend, "fingerprint", None)
    if callable(fingerprint):
        try:
            return json.dumps(fingerprint(), sort_keys=True, default=str)
        except TypeError:
            pass
    return backend_name(backend)


def chat_text(backend: Any, messages: list[dict[str, str]], chat_kwargs: dict | None, role: str) -> str:
    reply = backend.chat(messages, **(chat_kwargs or {}))
    if not isinstance(reply, str):
        raise TypeError(f"the {role} backend's chat() returned {type(reply).__name__}, expected str")
    return reply


def cache_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


class JsonlCache:
    """Append-only JSONL store ``{"key": ..., ...}``: loaded once, one flushed line per new answer.

    A line that cannot be parsed (e.g. the torn last line of a killed run, cut inside a UTF-8
    character or not), or that ``is_valid(record)`` rejects, is skipped with a warning that names the
    file and line; its query is simply asked again, on a new line.
    """

    def __init__(self, path: str | os.PathLike | None, is_valid=None):
        self.path = Path(path) if path is not None else None
        self.records: dict[str, dict] = {}
        self._needs_newline = False  # a killed run can leave a torn last line without "\n"
        if self.path is not None and self.path.exists() and self.path.stat().st_size > 0:
            raw = self.path.read_bytes()
            self._needs_newline = not raw.endswith(b"\n")
            for line_number, line in enumerate(raw.split(b"\n"), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line.decode("utf-8"))
                    if not isinstance(record, dict) or (is_valid is not None and not is_valid(record)):
                        raise TypeError("rejected")
                    self.records[record["key"]] = record
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                    warnings.warn(f"{self.path}:{line_number}: unreadable cache line skipped", stacklevel=2)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, record: dict) -> None:
        self.records[record["key"]] = record
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            if self._needs_newline:
                handle.write("\n")
                self._needs_newline = False
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
