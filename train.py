"""Train a model from a YAML config: ``python train.py --config configs/lgsrr_mintrec2.yaml [--key value ...]``.

Without ``--config`` it runs the embedded demo (configs/lgsrr_demo.yaml), with any ``--key value``
overrides applied to it (``python train.py --num_train_epochs 1``): LGSRR on a small demo dataset shipped
in the package, with the offline all-MiniLM-L6-v2 encoder, in about a minute on a CPU.
Multi-device: ``accelerate launch train.py --config ...``. Options: ``python train.py --help``.
Errors print one line and exit 2; ``--debug`` shows the traceback.
"""

import sys
from pathlib import Path

from mmaffect.errors import run_command
from mmaffect.train.cli import main

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "lgsrr_demo.yaml"


def with_default_config(argv: list[str]) -> list[str]:
    if any(a in ("-h", "--help") or a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    return ["--config", str(DEMO_CONFIG), *argv]


if __name__ == "__main__":
    sys.exit(run_command("train", main, with_default_config(sys.argv[1:])))
