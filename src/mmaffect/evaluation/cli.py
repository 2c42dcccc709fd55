"""``mmaffect evaluate <subcommand>``: the one evaluation command.

* ``classifier`` - a trained LGSRR / text-only folder over a benchmark split (:mod:`.cli_classifier`);
* ``generate`` - Nano-EmoX or an OpenAI-compatible multimodal LM generates on a benchmark (or the paper's
  suite, ``--suite paper``) and is scored with the official protocols (:mod:`.cli_generate`);
* ``score`` - prediction files scored against references (:mod:`.cli_score`).

Each subcommand has its own ``--help``. The older flag forms without a subcommand
(``mmaffect evaluate --model DIR --dataset ...``, ``--task ... --predictions ...``, ``--suite`` / ``--predictor``)
still work: :func:`legacy_subcommand` picks the subcommand from the flags (and, for ``--model``, from the folder's
``config.json``), and a one-line note on stderr names it.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module
from pathlib import Path

SUBCOMMANDS = {
    "classifier": ("mmaffect.evaluation.cli_classifier", "a trained LGSRR / text-only folder over a benchmark split"),
    "generate": ("mmaffect.evaluation.cli_generate", "Nano-EmoX or an OpenAI-compatible multimodal LM on a benchmark "
                 "(--suite paper: Tables 2-5)"),
    "score": ("mmaffect.evaluation.cli_score", "prediction files against references (mer, ovmer, msa, mir, erg, eri)"),
}
HELP_FLAGS = {"-h", "--help"}


def usage() -> str:
    """The help of ``mmaffect evaluate`` itself: the same whatever else is on the command line."""
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: mmaffect evaluate {" + ",".join(SUBCOMMANDS) + "} [options]", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines += ["", "Run 'mmaffect evaluate <subcommand> --help' for its options.",
              "The flag forms without a subcommand (--model DIR --dataset ..., --task ... --predictions ...,",
              "--suite / --predictor) still work and print a note naming the subcommand they ran."]
    return "\n".join(lines)


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


def legacy_subcommand(argv: list[str]) -> str | None:
    """The subcommand an old flag form (no subcommand named) runs, or None when the flags say nothing."""
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if flags & {"--predictions", "--references"}:
        return "score"
    if flags & {"--suite", "--predictor"}:
        return "generate"
    if "--model" in flags:
        return "classifier" if _is_classifier_folder(_value(argv, "--model")) else "generate"
    if "--task" in flags:
        return "score"
    return None


def run_subcommand(name: str, argv: list[str]) -> int:
    """``mmaffect evaluate NAME ARGV``."""
    return int(import_module(SUBCOMMANDS[name][0]).main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Errors propagate: ``mmaffect evaluate`` shows them as one line and exits 2 (:mod:`mmaffect.errors`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:])
    if HELP_FLAGS & set(argv):
        print(usage())
        return 0
    name = legacy_subcommand(argv)
    if name is None:
        print(usage(), file=sys.stderr)
        return 2
    code = run_subcommand(name, argv)
    if code != 2:  # after the run, so that an error stays the one line it is
        print(f"mmaffect evaluate: note: ran 'mmaffect evaluate {name}' (flags without a subcommand are the old form; "
              f"'mmaffect evaluate {name} --help' lists its options)", file=sys.stderr)
    return code


__all__ = ["SUBCOMMANDS", "legacy_subcommand", "main", "run_subcommand", "usage"]
