"""Write constraints/tested.txt: the exact versions of mmaffect[dev]'s dependency tree in this environment.

Run it in a venv where the full suite has just passed (``.ci/run`` builds one)::

    python -m pytest -q && python constraints/write_tested.py

It walks the installed requirement tree of ``mmaffect[dev]`` (markers and extras evaluated here) and keeps
those lines of ``python -m pip freeze``; local version labels (``2.13.0+cpu``) are dropped so the file also
works as ``pip install -e ".[dev]" -c constraints/tested.txt`` on machines whose torch comes from PyPI.
``--output -`` prints instead of writing.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT_PACKAGE, ROOT_EXTRAS = "mmaffect", ("dev",)


def dependency_tree(package: str = ROOT_PACKAGE, extras: tuple[str, ...] = ROOT_EXTRAS) -> set[str]:
    """Canonical names of every installed distribution that ``package[extras]`` needs, itself excluded."""
    seen: set[str] = set()
    todo = [(package, set(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency whose marker held but that is not installed
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            key = canonicalize_name(req.name)
            if key not in seen or req.extras:
                seen.add(key)
                todo.append((req.name, set(req.extras)))
    seen.discard(canonicalize_name(package))
    return seen


def frozen_lines(names: set[str]) -> list[str]:
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    lines = []
    for line in freeze.splitlines():
        name, sep, version = line.partition("==")
        if sep and canonicalize_name(name) in names:
            lines.append(f"{canonicalize_name(name)}=={version.split('+')[0]}")
    return sorted(lines, key=lambda line: line.partition("==")[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(__file__).with_name("tested.txt")), help="file, or - for stdout")
    args = parser.parse_args(argv)
    names = dependency_tree()
    lines = frozen_lines(names)
    missing = names - {line.partition("==")[0] for line in lines}
    if missing:
        print(f"write_tested: not in pip freeze (not installed?): {', '.join(sorted(missing))}", file=sys.stderr)
    header = [
        "# Exact versions of mmaffect[dev]'s dependency tree from a run where the full suite passed, written by",
        "# `python constraints/write_tested.py` (pip freeze filtered to the tree). Reproducible install:",
        '#   pip install torch==2.13.0 && pip install -e ".[dev]" -c constraints/tested.txt',
        f"# Python {platform.python_version()}, {platform.system()} {platform.machine()}.",
    ]
    text = "\n".join(header + lines) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} ({len(lines)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
