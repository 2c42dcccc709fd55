"""Start-up cost of ``import mmaffect`` and ``mmaffect --help``, each in a fresh interpreter.

    OMP_NUM_THREADS=1 python benchmarks/import_time.py --rounds 7 [--baseline-src /path/to/old/src]

For every command it reports the median wall time of ``--rounds`` fresh processes and, for the
import, the cumulative time ``python -X importtime`` gives to the ``mmaffect`` module. With
``--baseline-src`` (another checkout's ``src``, put first on ``PYTHONPATH``) both versions run
interleaved, round by round, so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = {
    "import mmaffect": [sys.executable, "-X", "importtime", "-c", "import mmaffect"],
    "mmaffect --help": [sys.executable, "-c", "import sys; from mmaffect.cli import main; sys.exit(main(['--help']))"],
    "import mmaffect + AutoModel registry": [
        sys.executable, "-c", "import mmaffect; from transformers import AutoModel, AutoConfig; AutoConfig.for_model('lgsrr')"],
}


def run_once(command: list[str], src: Path) -> tuple[float, float | None]:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    cumulative = None
    for line in result.stderr.splitlines():  # "import time: self [us] | cumulative | name"
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| mmaffect$", line)
        if match:
            cumulative = int(match.group(1)) / 1e6
    return wall, cumulative


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline-src", help="the src folder of the version to compare with")
    args = parser.parse_args()
    versions = {"this checkout": SRC}
    if args.baseline_src:
        versions = {"baseline": Path(args.baseline_src), **versions}
    times = {(v, c): [] for v in versions for c in COMMANDS}
    cumulative = {v: [] for v in versions}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            for version, src in versions.items():
                wall, inner = run_once(command, src)
                times[(version, name)].append(wall)
                if inner is not None:
                    cumulative[version].append(inner)
    report = {"cpu": cpu_name(), "python": platform.python_version(), "rounds": args.rounds,
              "median_wall_seconds": {f"{v} | {c}": round(statistics.median(t), 3) for (v, c), t in times.items()},
              "importtime_mmaffect_seconds": {v: round(statistics.median(t), 4) for v, t in cumulative.items() if t}}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
