"""``mmaffect train --config X.yaml [--key value ...]`` (and the repository's ``train.py``).

The YAML's ``model_type`` picks the trainer: ``lgsrr`` -> :mod:`mmaffect.train.lgsrr`,
``nano_emox`` -> :mod:`mmaffect.train.p2e` (imported only when used). Every YAML key can be
overridden on the command line:

    --learning_rate 3e-5          values are parsed as YAML (numbers, true/false, null, lists)
    --seeds 0 1 2 3 4             several values make a list
    --freeze_encoder              a bare flag means true
    --model.pooling mean          dotted keys reach into nested mappings
    --resume_from_checkpoint latest

Works the same under ``accelerate launch`` (one process per device).
"""

from __future__ import annotations

import dataclasses
import sys
from importlib import import_module

from .overrides import merge, parse_overrides

USAGE = """usage: mmaffect train --config CONFIG.yaml [--key value ...]
       python train.py            (no arguments: the embedded demo, configs/lgsrr_demo.yaml)
       accelerate launch train.py --config CONFIG.yaml [...]

The YAML's model_type picks the trainer (lgsrr, nano_emox). Any key can be overridden:
  --learning_rate 3e-5   --seeds 0 1 2 3 4   --freeze_encoder   --model.pooling mean
  --resume_from_checkpoint latest   --push_to_hub --hub_model_id user/name
Resuming with a changed config is refused unless --allow_config_change (the change is logged).
Errors print one line and exit 2; --debug shows the traceback.
"""


def _lgsrr_config(values: dict):
    from .lgsrr import LGSRRTrainingConfig, config_from_dict

    list_fields = {f.name for f in dataclasses.fields(LGSRRTrainingConfig) if "list" in str(f.type)}
    for name in list_fields:
        if name in values and values[name] is not None and not isinstance(values[name], list):
            values[name] = [values[name]]
    return config_from_dict(values)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        from .lgsrr import LGSRRTrainingConfig

        print(USAGE + "\nLGSRR config keys (defaults):")
        for f in dataclasses.fields(LGSRRTrainingConfig):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            print(f"  {f.name}: {default!r}")
        return 0
    overrides = parse_overrides(argv)
    config_path = overrides.pop("config", None)
    if config_path is None or config_path is True:
        print("mmaffect train: --config CONFIG.yaml is required\n\n" + USAGE, file=sys.stderr)
        return 2
    from .lgsrr import load_yaml

    values = merge(load_yaml(config_path), overrides)
    model_type = values.get("model_type")
    if model_type == "lgsrr":
        from . import lgsrr

        return lgsrr.main(_lgsrr_config(values))
    if model_type == "nano_emox":
        return int(import_module("mmaffect.train.p2e").main(argv) or 0)
    print(f"mmaffect train: {config_path} has model_type={model_type!r}; expected 'lgsrr' or 'nano_emox'", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
