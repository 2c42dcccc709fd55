"""``mmaffect train --config X.yaml [--key value ...]`` (and the repository's ``train.py``).

The config is read once (:mod:`mmaffect.config`: ``inherit:`` resolved, so a child without its own
``model_type`` takes its parent's), and its ``model_type`` picks the trainer: ``lgsrr`` ->
:mod:`mmaffect.train.lgsrr`, ``nano_emox`` -> :mod:`mmaffect.train.p2e` (imported only when used). The trainer
gets the parsed config and overrides, never the command line. Every key can be overridden, in one syntax:

    --learning_rate 3e-5          values are parsed as YAML (numbers, true/false, null, lists)
    --learning-rate=3e-5          the same ('-' or '_' between words, '=' or a space before the value)
    --seeds 0 1 2 3 4             several values make a list
    --freeze_encoder              a bare flag means true
    --model.pooling mean          dotted keys reach into nested mappings
    --phases.0.learning_rate 1e-4 and numbers into lists
    --resume_from_checkpoint latest

An unknown key is refused, with the nearest known one. Works the same under ``accelerate launch``.
"""

from __future__ import annotations

import dataclasses
import sys
from importlib import import_module

from mmaffect.config import (
    ConfigError,
    Fields,
    Override,
    apply_overrides,
    check_keys,
    deep_merge,
    describe_keys,
    overrides_to_dict,
    parse_args,
    read_command_line,
    read_config,
    split_options,
)

USAGE = """usage: mmaffect train --config CONFIG.yaml [--key value ...]
       python train.py            (no arguments: the embedded demo, configs/lgsrr_demo.yaml)
       accelerate launch train.py --config CONFIG.yaml [...]
       mmaffect train --config CONFIG.yaml --help    (the keys of that config's model_type)

The YAML's model_type picks the trainer (lgsrr, nano_emox). Any key can be overridden, in one syntax:
  --learning_rate 3e-5 (= --learning-rate 3e-5 = --learning_rate=3e-5)   --seeds 0 1 2 3 4
  --freeze_encoder (a bare flag is true)   --model.pooling mean   --phases.0.learning_rate 1e-4
  --resume_from_checkpoint latest   --push_to_hub --hub_model_id user/name
Unknown keys are refused with the nearest known one.
Resuming with a changed config is refused unless --allow_config_change (the change is logged).
Errors print one line and exit 2; --debug shows the traceback.
"""

# model_type -> the trainer's entry point: f(config_path, values, overrides) -> exit status
TRAINERS = {
    "lgsrr": "mmaffect.train.cli:run_lgsrr",
    "nano_emox": "mmaffect.train.p2e:main_from_config",
}


# model_type -> "module:function" returning its schema (imported only when asked for: the dispatcher knows
# the trainers, mmaffect.config does not, so the reader stays below them in the import graph)
SCHEMAS = {
    "lgsrr": "mmaffect.train.lgsrr:config_schema",
    "nano_emox": "mmaffect.train.p2e_phases:config_schema",
}


def schema_for(model_type: str) -> Fields:
    """The keys a config of ``model_type`` accepts."""
    from importlib import import_module

    if model_type not in SCHEMAS:
        raise ConfigError(f"model_type {model_type!r} is unknown; expected one of {sorted(SCHEMAS)}")
    module, _, name = SCHEMAS[model_type].partition(":")
    return getattr(import_module(module), name)()


def parse_overrides(argv: list[str]) -> dict:
    """``["--a", "1", "--b.c", "x", "--flag", "--l", "1", "2"]`` -> ``{"a": 1, "b": {"c": "x"}, "flag": True, "l": [1, 2]}``."""
    return overrides_to_dict(parse_args(argv))


merge = deep_merge  # the one dict merge (mmaffect.config)


def _lgsrr_config(values: dict):
    from .lgsrr import LGSRRTrainingConfig, config_from_dict

    list_fields = {f.name for f in dataclasses.fields(LGSRRTrainingConfig) if "list" in str(f.type)}
    for name in list_fields:
        if name in values and values[name] is not None and not isinstance(values[name], list):
            values[name] = [values[name]]
    return config_from_dict(values)


def lgsrr_config(config_path, values: dict, overrides: list[Override]):
    """The ``LGSRRTrainingConfig`` of a read config and the command line's overrides (keys checked at every depth)."""
    schema = schema_for("lgsrr")
    check_keys(values, schema, str(config_path))
    return _lgsrr_config(apply_overrides(values, overrides, schema))


def run_lgsrr(config_path, values: dict, overrides: list[Override]) -> int:
    """LGSRR from a read config and the command line's overrides."""
    from . import lgsrr

    return lgsrr.main(lgsrr_config(config_path, values, overrides))


def training_config(argv: list[str]):
    """What ``mmaffect train ARGV`` would train, without training: ``(model_type, config)`` (the LGSRR
    ``LGSRRTrainingConfig`` or the P2E ``P2EConfig``)."""
    config_path, values, overrides = read_command_line(argv)
    model_type = values.get("model_type")
    if model_type == "lgsrr":
        return model_type, lgsrr_config(config_path, values, overrides)
    if model_type == "nano_emox":
        return model_type, import_module("mmaffect.train.p2e").config_from_command_line(config_path, values, overrides)[0]
    raise ConfigError(f"{config_path} has model_type={model_type!r}; expected one of {list(TRAINERS)}")


def _help(argv: list[str]) -> int:
    """``--help``: the usage, then the keys of the config's model_type (of both trainers without --config)."""
    options, _ = split_options(parse_args([a for a in argv if a not in ("-h", "--help")]), ("config",))
    model_types = list(TRAINERS)
    if isinstance(options.get("config"), str):
        model_types = [read_config(options["config"]).get("model_type")]
    print(USAGE)
    for model_type in model_types:
        module = import_module(TRAINERS[model_type].partition(":")[0]) if model_type in TRAINERS else None
        extra = getattr(module, "RUN_OPTIONS_HELP", "")
        print(f"{model_type} config keys (defaults):" if model_type in TRAINERS else
              f"model_type {model_type!r} is unknown; expected one of {list(TRAINERS)}")
        if model_type in TRAINERS:
            print("\n".join(describe_keys(schema_for(model_type))) + (f"\n{extra}" if extra else "") + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    if "-h" in argv or "--help" in argv:
        return _help(argv)
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        print("mmaffect train: --config CONFIG.yaml is required\n\n" + USAGE, file=sys.stderr)
        return 2
    config_path, values, overrides = read_command_line(argv)
    model_type = values.get("model_type")
    if model_type not in TRAINERS:
        print(f"mmaffect train: {config_path} has model_type={model_type!r}; expected one of {list(TRAINERS)} "
              "(or inherit: a config that has one)", file=sys.stderr)
        return 2
    module, _, name = TRAINERS[model_type].partition(":")
    return int(getattr(import_module(module), name)(config_path, values, overrides) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
