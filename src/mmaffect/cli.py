"""``mmaffect`` console command: a thin dispatcher to the subcommand modules.

Each subcommand lives next to the code it drives and exposes ``main(argv: list[str] | None)``;
they are imported only when called so ``mmaffect --help`` is instant. An error prints one line,
``mmaffect <command>: error: <message>``, and exits 2; ``--debug`` shows the traceback instead
(:mod:`mmaffect.errors`).
"""

from __future__ import annotations

import sys
from importlib import import_module

COMMANDS = {
    "train": ("mmaffect.train.cli:main", "train a model from a YAML config (LGSRR or Nano-EmoX P2E)"),
    "evaluate": ("mmaffect.evaluation.cli:main", "evaluate: classifier (LGSRR folder), generate (multimodal LM), score (files)"),
    "predict": ("mmaffect.predict:main", "apply a trained LGSRR model to new utterances (JSONL / TSV in, JSONL out)"),
    "data-stats": ("mmaffect.datasets_scripts.stats:main", "statistics of a benchmark (rows, labels, lengths, ranks)"),
    "extract": ("mmaffect.semantic_extraction.cli:main", "LLM-guided semantic extraction (CoT steps 1-3)"),
    "info": ("mmaffect.info:main", "parameter counts and structure of a model"),
    "env": ("mmaffect.env:main", "versions, CPU (native bf16?) and GPU of this environment, for bug reports"),
    "convert": ("mmaffect.tools.convert_facexformer:main", "convert a public checkpoint (facexformer) into mmaffect's layout"),
}


def _usage() -> str:
    lines = ["usage: mmaffect <command> [options]", "", "commands:"]
    width = max(len(name) for name in COMMANDS)
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {help_text}")
    lines.append("")
    lines.append("Run 'mmaffect <command> --help' for the options of a command; add --debug to see the")
    lines.append("traceback of an error (errors print one line and exit with status 2).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .errors import run_command, split_debug_flag

    argv, debug = split_debug_flag(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        from . import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"mmaffect: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _, func_name = COMMANDS[command][0].partition(":")
    func = getattr(import_module(module_name), func_name)
    return run_command(command, func, rest + ["--debug"] * debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
