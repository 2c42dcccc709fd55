"""Extraction settings as data: a YAML file (``--config``) and command-line flags on top.

The file is read by :mod:`mmaffect.config` (``inherit:``, ``${config_dir}`` and ``${shared_data}`` in paths,
unknown keys refused with a suggestion); ``--key value`` overrides (``--rank.max_corrections 0``) use its one
syntax. A relative path is still read relative to the file's folder (deprecated: write ``${config_dir}/...``).

.. code-block:: yaml

    dataset: mintrec2                  # layout name, or {base: mintrec2, text_column: ..., ...}
    data_dir: ${shared_data}/lgsrr_release/data_text/MIntRec2.0
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

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmaffect.config import Override, Open, apply_overrides, check_keys, dataclass_schema, deep_merge, deprecated

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
    from mmaffect.config import unknown_key

    values = {k: v for k, v in values.items() if k != "backend"}
    allowed = {f.name for f in fields(cls)}
    unknown = set(values) - allowed
    if unknown:
        hints = ", ".join(unknown_key(name, allowed, f"{step}.") for name in sorted(unknown))
        raise ValueError(f"unknown '{step}' setting(s) {sorted(unknown)}: {hints}; allowed: {sorted(allowed | {'backend'})}")
    return cls(**values)


PATH_KEYS = (("data_dir",), ("video_dir",), ("output_dir",), ("rank", "descriptions_dir"))


def config_schema():
    """The keys an extraction config accepts (:mod:`mmaffect.config`)."""
    steps = {name: dataclass_schema(cls, backend=Open()) for name, cls in
             (("discover", DiscoverConfig), ("describe", DescribeConfig), ("rank", RankConfig))}
    return dataclass_schema(ExtractionConfig, backend=Open(), templates=Open(), **steps)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                extra: Sequence[Override] = ()) -> ExtractionConfig:
    """Read ``path`` (YAML, ``inherit`` resolved) if given, then apply ``overrides`` (nested dicts merge, None is
    ignored: the flags not given) and ``extra`` (``--key value`` overrides, keys checked)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_file(Path(path))
    merged = deep_merge(data, _without_none(overrides or {}))
    if extra:
        merged = apply_overrides(merged, extra, config_schema())
    return ExtractionConfig(**merged)


def _read_file(path: Path) -> dict[str, Any]:
    from mmaffect.config import expand_variables, read_config, shared_data_root

    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    loaded = read_config(path)
    data = loaded.get("extract", loaded)  # allow an 'extract:' section in a larger config
    known = {f.name for f in fields(ExtractionConfig)}
    unknown = set(data) - known
    if unknown:
        from mmaffect.config import unknown_key

        hints = ", ".join(unknown_key(name, known) for name in sorted(unknown))
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}: {hints}; known: {sorted(known)}")
    check_keys(data, config_schema(), str(path))
    base = path.parent.resolve()
    variables = {"config_dir": str(base), "shared_data": shared_data_root()}
    for keys in PATH_KEYS:
        section = data if len(keys) == 1 else data.get(keys[0]) or {}
        value = section.get(keys[-1])
        if not value:
            continue
        value = expand_variables(value, variables, str(path))
        if not Path(value).is_absolute():
            deprecated(f"{path}: {'.'.join(keys)}: {value!r} is read relative to the config file; "
                       f"write '${{config_dir}}/{value}'")
            value = str((base / value).resolve())
        section[keys[-1]] = value
    return data


def _without_none(values: dict) -> dict:
    """The flags that were given (argparse leaves the others None)."""
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in values.items() if v is not None}
