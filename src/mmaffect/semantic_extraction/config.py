"""Extraction settings as data: a YAML file (``--config``) and command-line flags on top.

.. code-block:: yaml

    dataset: mintrec2                  # layout name, or {base: mintrec2, text_column: ..., ...}
    data_dir: ../shared/data/lgsrr_release/data_text/MIntRec2.0
    video_dir: /data/MIntRec2.0/video  # dia{D}_utt{U}.mp4
    output_dir: outputs/extraction
    splits: [train, dev, test]         # files {split}.tsv; the release calls validation "dev"
    limit: null                        # first N samples per split (trial runs)
    aspects: [actions, expressions, interactions]
    use_discovered_aspects: false      # take describe/rank aspects from discover.json instead
    templates: {}                      # override prompt pieces by name (see prompts.DEFAULT_TEMPLATES)
    backend:                           # default LLM for every step
      type: openai
      base_url: https://api.openai.com/v1
      model: gpt-3.5-turbo
      api_key_env: OPENAI_API_KEY
    discover: {num_samples: 20, samples_per_prompt: 5, seed: 0, top_k: 3, split: train}
    describe:
      mode: joint                      # or per_aspect
      backend: {type: transformers-video, model: Qwen/Qwen2-VL-7B-Instruct, num_frames: 16,
                device_map: auto, dtype: bfloat16}
    rank: {style: paper, split: train, max_corrections: 2, descriptions_dir: null}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .describe import DescribeConfig
from .discover import DiscoverConfig
from .rank import RankConfig

STEPS = ("discover", "describe", "rank")


@dataclass
class ExtractionConfig:
    dataset: str | dict = "mintrec2"
    data_dir: str | None = None
    video_dir: str | None = None
    output_dir: str | None = None
    splits: list[str] = field(default_factory=lambda: ["train", "dev", "test"])
    limit: int | None = None
    aspects: list = field(default_factory=lambda: ["actions", "expressions", "interactions"])
    use_discovered_aspects: bool = False
    templates: dict[str, str] = field(default_factory=dict)
    backend: dict[str, Any] | None = None
    discover: dict[str, Any] = field(default_factory=dict)
    describe: dict[str, Any] = field(default_factory=dict)
    rank: dict[str, Any] = field(default_factory=dict)
    retry_failed: bool = False
    allow_outside_data_root: bool = False  # video names leaving video_dir are refused unless set
    fsync: bool = False
    progress: bool = True

    # ------------------------------------------------------------------------ step views
    def step_backend(self, step: str) -> dict[str, Any]:
        spec = self.__getattribute__(step).get("backend") or self.backend
        if not spec:
            raise ValueError(
                f"no LLM backend configured for step {step!r}: pass --backend/--model (and --base-url for "
                f"openai), or set 'backend:' (or '{step}: backend:') in the config file"
            )
        return dict(spec)

    def discover_config(self) -> DiscoverConfig:
        return _step_dataclass(DiscoverConfig, self.discover, "discover")

    def describe_config(self) -> DescribeConfig:
        return _step_dataclass(DescribeConfig, self.describe, "describe")

    def rank_config(self) -> RankConfig:
        return _step_dataclass(RankConfig, self.rank, "rank")

    def require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) in (None, "")]
        if missing:
            flags = ", ".join("--" + n.replace("_", "-") for n in missing)
            raise ValueError(f"missing setting(s) {missing}: give {flags} or set them in the config file")


def _step_dataclass(cls, values: dict, step: str):
    values = {k: v for k, v in values.items() if k != "backend"}
    allowed = {f.name for f in fields(cls)}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown '{step}' setting(s) {sorted(unknown)}; allowed: {sorted(allowed | {'backend'})}")
    return cls(**values)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ExtractionConfig:
    """Read ``path`` (YAML) if given, then apply ``overrides`` (nested dicts merge, None is ignored).
    Relative paths in the file are relative to the file's folder."""
    data: dict[str, Any] = {}
    base = None
    if path is not None:
        from mmaffect.errors import read_yaml_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        loaded = read_yaml_file(path, "config file") or {}  # a syntax error names the file and line
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a mapping, got {type(loaded).__name__}")
        data = loaded.get("extract", loaded)  # allow an 'extract:' section in a larger config
        base = path.parent
    known = {f.name for f in fields(ExtractionConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    if base is not None:
        for key in ("data_dir", "video_dir", "output_dir"):
            if data.get(key) and not Path(data[key]).is_absolute():
                data[key] = str((base / data[key]).resolve())
        rank = data.get("rank") or {}
        if rank.get("descriptions_dir") and not Path(rank["descriptions_dir"]).is_absolute():
            rank["descriptions_dir"] = str((base / rank["descriptions_dir"]).resolve())
    merged = _merge(data, overrides or {})
    return ExtractionConfig(**merged)


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
