"""``mmaffect evaluate``: three modes behind one command.

* ``--task TASK --predictions FILE --references FILE``: score prediction files with the affective
  evaluation suite (``mmaffect.metrics.cli``).
* ``--model DIR --dataset NAME ...`` with an LGSRR (or text-only baseline) folder: run the trained
  classifier over a benchmark split (``mmaffect.train.evaluate``).
* ``--model DIR`` with a multimodal LM (Nano-EmoX), ``--predictor openai ...`` or ``--suite paper``:
  generate on the paper's benchmarks and score with the official protocols (``mmaffect.evaluation.cli``).
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path


def _value(argv: list[str], flag: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _is_classifier_folder(model: str | None) -> bool:
    """An LGSRR / text-only folder; a folder without config.json is an error saying so (no flag of either
    path would help)."""
    folder = Path(model or "")
    if not folder.is_dir():
        return False  # a Hub id: only multimodal LMs are loaded from the Hub here
    if (folder / "text_only.json").exists():
        return True
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"--model {folder}: the folder has no config.json, so it is not a saved model (expected "
                                "best_model/ of mmaffect train, or a folder written by save_pretrained)")
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") in ("lgsrr", "lgsrr_text_only")
    except (OSError, ValueError):
        return True


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if flags & {"--predictions", "--references"}:
        target = "mmaffect.metrics.cli"
    elif flags & {"--suite", "--predictor"}:
        target = "mmaffect.evaluation.cli"
    elif "--model" in flags:
        target = "mmaffect.train.evaluate" if _is_classifier_folder(_value(argv, "--model")) else "mmaffect.evaluation.cli"
    elif "--task" in flags:
        target = "mmaffect.metrics.cli"
    else:
        print(
            "usage: mmaffect evaluate --task TASK --predictions FILE --references FILE [...]   (score files)\n"
            "       mmaffect evaluate --model LGSRR_DIR --dataset NAME --data-dir DIR [...]   (LGSRR)\n"
            "       mmaffect evaluate --model NANO_EMOX_DIR --dataset NAME --data-dir DIR [...]   (multimodal LM)\n"
            "       mmaffect evaluate --predictor openai --base-url URL --model-name NAME --dataset NAME --data-dir DIR\n"
            "       mmaffect evaluate --suite paper --model DIR --data-root ROOT [...]\n"
            "Add --help to any form for its options."
        )
        return 0 if any(a in {"-h", "--help"} for a in argv) else 2
    return int(import_module(target).main(argv) or 0)
