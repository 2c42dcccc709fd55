#!/usr/bin/env bash
# Mutation testing of the core modules (mutmut), one module at a time, score per module.
# Not part of CI (too slow). Needs the `mutation` extra: pip install -e ".[dev,mutation]".
#   bash benchmarks/mutation.sh                  # all modules of benchmarks/mutation_modules.toml
#   bash benchmarks/mutation.sh metrics_mer      # one module
#   bash benchmarks/mutation.sh --fresh          # discard stored results first
# Logs and mutants: outputs/mutation/<module>/ (mutmut.log; `cd` there and `mutmut show NAME`).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
PYTHON="${PYTHON:-python}"
exec "$PYTHON" benchmarks/mutation.py "$@"
