#!/usr/bin/env bash
# The LGSRR seeds study (issue 22): configs/lgsrr_minilm_cpu.yaml on real MIntRec2.0, four variants x seeds,
# one `train.py` call per (variant, seed) into outputs/seeds/<variant>/seed_<s>. Resumable: a finished seed is
# skipped (its results.json says finished), an interrupted one resumes from its latest checkpoint. Run it alone
# on the machine (it needs both cores for hours on an AVX2-only CPU), in the background:
#   nohup setsid bash benchmarks/lgsrr_seeds_study.sh > outputs/seeds/study.log 2>&1 &
# then `python benchmarks/lgsrr_seeds_table.py` prints the table for RESULTS.md.
# Environment: SEEDS (default "0 1 2"), VARIANTS (default: all four), PRECISION (default "no": fp32 on every
# CPU, so seeds run on different machines stay comparable; "auto" picks bf16 where the CPU has it natively),
# PYTHON (default: python on PATH), OUT (default outputs/seeds).
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python} OUT=${OUT:-outputs/seeds} PRECISION=${PRECISION:-no}
SEEDS=${SEEDS:-"0 1 2"} VARIANTS=${VARIANTS:-"lgsrr lgsrr_no_rank lgsrr_frozen_aspects text_only"}
declare -A ARGS=(
  [lgsrr]=""
  [lgsrr_no_rank]="--model.use_ranking_loss false"
  [lgsrr_frozen_aspects]="--freeze_aspect_encoder --model.share_encoder false --head_warmup_epochs 10"
  [text_only]="--variant text_only"
)
mkdir -p "$OUT"
echo "=== $(date -u +%FT%TZ) CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) flags:" \
     "$(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ') precision $PRECISION"
for s in $SEEDS; do  # seed-major: an interrupted study still has every variant's first seeds
  for v in $VARIANTS; do
    if [ -f "$OUT/$v/seed_$s/results.json" ] && grep -q '"finished": true' "$OUT/$v/seed_$s/results.json"; then
      echo "skip $v seed $s (finished)"; continue; fi
    echo "=== $(date -u +%FT%TZ) start $v seed $s (load $(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086  # ARGS holds several words on purpose
    $PYTHON train.py --config configs/lgsrr_minilm_cpu.yaml ${ARGS[$v]} --mixed_precision "$PRECISION" \
        --seeds "$s" --output_dir "$OUT/$v" --resume_from_checkpoint latest > "$OUT/$v.seed$s.log" 2>&1
    echo "=== $(date -u +%FT%TZ) end $v seed $s rc=$? (load $(cut -d' ' -f1-3 /proc/loadavg))"
  done
done
echo "=== $(date -u +%FT%TZ) study done"
