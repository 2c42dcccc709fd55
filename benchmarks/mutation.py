"""Mutation testing of the core modules with mutmut, one module at a time.

Each module of ``benchmarks/mutation_modules.toml`` runs in its own folder
``outputs/mutation/<name>/`` (links to ``src/`` and ``tests/`` plus a generated ``pyproject.toml``
whose ``[tool.mutmut]`` mutates only that module and selects only its fast tests), so a mutant is
judged by its module's tests and nothing else. mutmut keeps its results there: a second run only
retests what changed; ``--fresh`` starts over.

Score = killed / (mutants - listed equivalents). "Killed" counts a failing test, a timeout and a
crash; a mutant that no selected test reaches counts as survived ("no tests"). Equivalent mutants
(same behaviour as the original) are listed with the reason in ``benchmarks/mutation_equivalent.txt``.

    python benchmarks/mutation.py                       # every module
    python benchmarks/mutation.py metrics_mer collator  # some modules
    python benchmarks/mutation.py --report-only         # tables from the stored results
    python benchmarks/mutation.py --retest-survivors X  # after adding tests: rerun X's survivors only
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES_FILE = REPO / "benchmarks" / "mutation_modules.toml"
EQUIVALENT_FILE = REPO / "benchmarks" / "mutation_equivalent.txt"
KILLED = {"killed", "timeout", "segfault", "suspicious", "caught by type check"}


def toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return repr(value)


def status_of(exit_code) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


def dotted_module(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def prepare(name: str, spec: dict, defaults: dict, fresh: bool) -> Path:
    folder = REPO / "outputs" / "mutation" / name
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for link in ("src", "tests"):
        if not (folder / link).exists():
            (folder / link).symlink_to(REPO / link, target_is_directory=True)
    tests = [test for test in spec["tests"] if (REPO / test.split("::")[0]).exists()]
    settings = {
        "source_paths": ["src"],
        "only_mutate": spec["mutate"],
        "pytest_add_cli_args_test_selection": tests + spec.get("pytest_args", []),
        "use_git_change_detection": False,
        **defaults,
    }
    base = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    table = "\n[tool.mutmut]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items())
    (folder / "pyproject.toml").write_text(base + table, encoding="utf-8")
    return folder


def mutant_patterns(spec: dict) -> list[str]:
    patterns = []
    for path in spec["mutate"]:
        for function in spec.get("functions", ["*"]):
            patterns.append(f"{dotted_module(path)}.{function}")
    return patterns


def survivors(spec: dict, folder: Path) -> list[str]:
    """Mutants of the module's last run that no test killed (to retest them after adding tests)."""
    names = []
    for path in spec["mutate"]:
        meta = folder / "mutants" / (path + ".meta")
        if meta.exists():
            codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            names += [mutant for mutant, code in codes.items() if status_of(code) not in KILLED]
    patterns = mutant_patterns(spec)
    return [m for m in names if any(fnmatch.fnmatchcase(m, pattern) for pattern in patterns)]


def run_module(name: str, spec: dict, folder: Path, max_children: int, retest_survivors: bool = False) -> float:
    names = mutant_patterns(spec) if "functions" in spec else []
    if retest_survivors:
        names = survivors(spec, folder)
        if not names:
            return 0.0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    log = folder / "mutmut.log"
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    start = time.monotonic()
    with log.open("w", encoding="utf-8") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        code = subprocess.call(command, cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    if code != 0:
        print(f"[{name}] mutmut exited with {code}; see {log}", file=sys.stderr)
    return elapsed


def load_equivalents() -> dict[str, str]:
    equivalents = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                mutant, _, reason = line.partition(" ")
                equivalents[mutant] = reason.strip()
    return equivalents


def collect(name: str, spec: dict, folder: Path, equivalents: dict[str, str]) -> dict | None:
    patterns = mutant_patterns(spec)
    statuses: dict[str, str] = {}
    for path in spec["mutate"]:
        meta = folder / "mutants" / (path + ".meta")
        if not meta.exists():
            return None
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        for mutant, code in codes.items():
            if any(fnmatch.fnmatchcase(mutant, pattern) for pattern in patterns):
                statuses[mutant] = status_of(code)
    killed = sorted(m for m, s in statuses.items() if s in KILLED)
    equivalent = sorted(m for m, s in statuses.items() if s not in KILLED and m in equivalents)
    survived = sorted(m for m, s in statuses.items() if s not in KILLED and m not in equivalents)
    not_checked = sorted(m for m, s in statuses.items() if s == "not checked")
    counted = len(statuses) - len(equivalent)
    return {
        "module": name,
        "mutants": len(statuses),
        "killed": len(killed),
        "equivalent": len(equivalent),
        "survived": survived,
        "not_checked": len(not_checked),
        "score": 100.0 * len(killed) / counted if counted else 100.0,
    }


def show(folder: Path, mutant: str) -> str:
    """The changed lines of one mutant (``mutmut show`` without the file headers)."""
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=folder, capture_output=True, text=True)
    lines = [line for line in shown.stdout.splitlines()
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return "\n".join("    " + line for line in lines)


def table(rows: list[dict]) -> str:
    lines = ["| module | mutants | killed | equivalent | survived | score |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['module']} | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
                     f"{len(row['survived'])} | {row['score']:.1f} % |")
    mutants = sum(row["mutants"] for row in rows)
    killed = sum(row["killed"] for row in rows)
    equivalent = sum(row["equivalent"] for row in rows)
    survived = sum(len(row["survived"]) for row in rows)
    counted = mutants - equivalent
    overall = 100.0 * killed / counted if counted else 100.0
    lines.append(f"| **overall** | {mutants} | {killed} | {equivalent} | {survived} | **{overall:.1f} %** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module names from mutation_modules.toml (default: all)")
    parser.add_argument("--fresh", action="store_true", help="discard stored results and mutants first")
    parser.add_argument("--report-only", action="store_true", help="no run; tables from stored results")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant workers (default 1)")
    parser.add_argument("--list-survivors", action="store_true", help="print every surviving mutant")
    parser.add_argument("--diffs", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="rerun only the stored survivors (after adding tests; mutmut keeps other results)")
    args = parser.parse_args(argv)

    config = tomllib.loads(MODULES_FILE.read_text(encoding="utf-8"))
    modules = config["modules"]
    unknown = [name for name in args.modules if name not in modules]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {sorted(modules)}")
    selected = args.modules or list(modules)
    equivalents = load_equivalents()

    rows = []
    for name in selected:
        spec = modules[name]
        folder = REPO / "outputs" / "mutation" / name
        if not args.report_only:
            folder = prepare(name, spec, config.get("defaults", {}), args.fresh)
            elapsed = run_module(name, spec, folder, args.max_children, args.retest_survivors)
        row = collect(name, spec, folder, equivalents)
        if row is None:
            print(f"[{name}] no results (run it first)", file=sys.stderr)
            continue
        rows.append(row)
        timing = "" if args.report_only else f" in {elapsed:.0f} s"
        print(f"[{name}] {row['killed']}/{row['mutants'] - row['equivalent']} killed, "
              f"score {row['score']:.1f} %{timing}", flush=True)
    if not rows:
        return 1
    print()
    print(table(rows))
    if args.list_survivors or args.diffs:
        for row in rows:
            for mutant in row["survived"]:
                print(f"survived: {mutant}")
                if args.diffs:
                    print(show(REPO / "outputs" / "mutation" / row["module"], mutant))
    summary = REPO / "outputs" / "mutation" / "summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(summary.read_text()) if summary.exists() else {}
    stored.update({row["module"]: row for row in rows})
    summary.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
