"""CoT step 2 for one clip at a time: the ``describer`` of the LGSRR pipeline, ``mmaffect predict`` and the demo.

    >>> from mmaffect.semantic_extraction import ClipDescriber
    >>> describer = ClipDescriber({"type": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "qwen2-vl"},
    ...                           cache_path="outputs/describe_cache.jsonl")
    >>> describer(text="I'm so sorry.", video="clip.mp4")
    {'actions': 'She lowers her head ...', 'expressions': '...', 'interactions': '...'}

The same prompts, reply parsing and corrections as ``mmaffect extract describe`` (Template2, joint or
per-aspect mode), through the same append-only reply cache: a clip described once is read back on
every later call, in this process or the next. The built-in backends read video frames; an audio
file alone cannot be described (the clip's video carries its sound for backends that use it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .aspects import DEFAULT_ASPECTS, AspectMatcher, AspectSpec, aspect_from_dict
from .backends import ChatBackend, build_backend
from .cache import ResponseCache
from .describe import DescribeConfig, describe_one
from .prompts import resolve_templates
from .runner import CachedChat
from .samples import Sample


class ClipDescriber:
    """``describer(text=..., video=..., audio=None) -> {aspect_key: description}``.

    Args:
        backend: a chat backend (``OpenAICompatibleBackend``, ``TransformersVideoBackend``, ...) or its
            config mapping (``{"type": "openai", "base_url": ..., "model": ...}``, see ``build_backend``).
        cache_path: the JSONL reply cache (created if missing; shared with ``mmaffect extract``'s format).
        aspects: aspect keys or specs, in the model's order (default: actions, expressions, interactions).
        mode, max_corrections: as in ``mmaffect extract describe`` (``describe:`` section of its config).
        templates: prompt overrides by name (``prompts.DEFAULT_TEMPLATES``).
    """

    def __init__(self, backend: ChatBackend | dict, cache_path: str | os.PathLike,
                 aspects: Sequence[str | dict | AspectSpec] | None = None, *, mode: str = "joint",
                 max_corrections: int = 2, templates: dict | None = None):
        self.backend = build_backend(backend) if isinstance(backend, dict) else backend
        self.cache = ResponseCache(cache_path)
        self.session = CachedChat(self.backend, self.cache)
        specs = [a if isinstance(a, AspectSpec) else aspect_from_dict(a) for a in (aspects or DEFAULT_ASPECTS)]
        self.aspects = tuple(specs)
        self.matcher = AspectMatcher(self.aspects)
        self.config = DescribeConfig(mode=mode, max_corrections=max_corrections, require_video=True)
        self.templates = resolve_templates(templates or {})

    @classmethod
    def from_config(cls, path: str | os.PathLike, cache_path: str | os.PathLike | None = None) -> "ClipDescriber":
        """From an ``mmaffect extract`` YAML config: its describe backend, aspects, mode and templates; the
        cache defaults to ``<output_dir or the config's folder>/cache/describe_clips.jsonl``."""
        from .config import load_config

        config = load_config(path)
        describe = config.describe_config()
        if cache_path is None:
            base = Path(config.output_dir) if config.output_dir else Path(path).resolve().parent
            cache_path = base / "cache" / "describe_clips.jsonl"
        return cls(config.step_backend("describe"), cache_path, config.aspects, mode=describe.mode,
                   max_corrections=describe.max_corrections, templates=config.templates)

    @property
    def aspect_keys(self) -> list[str]:
        return [a.key for a in self.aspects]

    def __call__(self, text: str, video: str | os.PathLike | None = None, audio: str | os.PathLike | None = None,
                 ) -> dict[str, str]:
        if video is None:
            raise ValueError("ClipDescriber describes a video clip: give video=... (the built-in backends read video "
                             "frames; an audio file alone cannot be described)")
        video = str(video)
        if not os.path.isfile(video):
            raise FileNotFoundError(f"video file {video} does not exist")
        if not self.backend.supports_video:
            raise ValueError(f"backend {type(self.backend).__name__} cannot read video; configure a video LLM")
        # the cache keys on the sample id + prompt + model + media: name the clip by its path and content size
        identity = f"{os.path.abspath(video)}:{os.path.getsize(video)}"
        sample = Sample(split="clip", id=hashlib.sha256(identity.encode()).hexdigest()[:16], keys=(), text=text,
                        label="", intent="", video=video, line=0)
        outcome = describe_one(sample, session=self.session, aspects=self.aspects, matcher=self.matcher,
                               config=self.config, templates=self.templates)
        if outcome.status != "ok":
            raise RuntimeError(f"describing {video} failed: {outcome.error}")
        return dict(outcome.value)

    def close(self) -> None:
        self.cache.close()

    def __enter__(self) -> "ClipDescriber":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["ClipDescriber"]
