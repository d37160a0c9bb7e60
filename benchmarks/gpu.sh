#!/bin/bash
# Everything a lent GPU measures, in one call of the `device` tool (see benchmarks/README.md):
#   run: bash benchmarks/gpu.sh   (carry .gpudata: a copy of the needed parts of ../shared/data)
# Each phase has its own time limit and appends its rows as they finish, so a cut-off run
# still returns what it measured. Results land in $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src" DIP_DATA="${DIP_DATA:-$PWD/.gpudata}"
OUT="${OUT:-/tmp/dip-gpu}"; mkdir -p "$OUT"
DEVICE="${DEVICE:-cuda}"; T="${T:-1}"  # T: scale of the phase limits (a CPU dry run uses small ones)
log="$OUT/log.txt"
phase() { echo "== $(date -u +%T) $1" | tee -a "$log"; }
# PHASES: which phases to run, by first word (default all): e.g. PHASES="batched f16" bash benchmarks/gpu.sh
want() { [ -z "${PHASES:-}" ] || [[ " $PHASES " == *" $1 "* ]]; }
limit() { awk -v t="$T" -v s="$1" 'BEGIN { printf "%d", s * t + 1 }'; }
# The quality suites whose folders all travelled in $DIP_DATA/paper (bash benchmarks/gpudata.sh SUITE ...).
suites_here() {
  python3 -c "
import sys; from pathlib import Path; from dip.bench.quality import SUITES
print(' '.join(n for n, s in SUITES.items() if all((Path(sys.argv[1]) / f).is_dir() for f in s.folders)))" "$DIP_DATA/paper"
}
# One `dip bench quality` table per suite: $1 full or mid, $2 suites (empty: suites_here), $3 presets,
# $4 more flags (e.g. --images), $5 the limit. Fits are kept in .probe-cache/fits-gpu-SUITE, so a
# second call on a warm machine goes on where the first stopped (mid and full share the pixels they share).
quality_tables() {
  local suite
  for suite in ${2:-$(suites_here)}; do
    timeout "$(limit "$5")" python3 -m dip bench quality --suite "$suite" $([ "$1" = mid ] && echo --mid) \
        --device "$DEVICE" --preset "$3" --fits ".probe-cache/fits-gpu-$suite" --data "$DIP_DATA/paper" \
        --out "$OUT" $4 2>&1 | tee -a "$log"
  done
}

phase "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  python3 -c "import torch, numpy, skimage; print('torch', torch.__version__, 'numpy', numpy.__version__,
'skimage', skimage.__version__, 'cuda', torch.cuda.is_available())"; nproc; } 2>&1 | tee -a "$log"

phase "tests on $DEVICE (precision, layout, determinism, CLI, the CUDA graph against the plain step)"
if want tests; then
  timeout "$(limit "${TESTS_LIMIT:-150}")" python3 -m pytest -q -p no:cacheprovider tests/test_accel.py tests/test_graphed.py tests/test_wiener.py \
      ${TESTS_K:+-k "$TESTS_K"} 2>&1 | tail -15 | tee -a "$log"
fi

phase "per-step speed: every precision and layout, with and without the CUDA graph"
if want speed; then
  timeout "$(limit 150)" python3 -m dip bench speed --device "$DEVICE" --out "$OUT" --steps "${SPEED_STEPS:-20}" \
      --sizes "${SIZES:-128,256,512}" --presets denoise/paper,denoise/default --variants "${VARIANTS:-tf32,tf32+graph,bf16,bf16+graph}" \
      2>&1 | tee -a "$log"
fi

phase "torch.compile's CUDA graphs (reduce-overhead) against dip's own (graph), one net and size"
if want compile; then
  timeout "$(limit 180)" python3 -m dip bench speed --device "$DEVICE" --out "$OUT" --steps "${SPEED_STEPS:-20}" \
      --sizes "${COMPILE_SIZES:-512}" --presets denoise/paper --variants "${COMPILE_VARIANTS:-tf32+graph,tf32+compile=reduce-overhead}" \
      2>&1 | tee -a "$log"
fi

phase "batched fits: K = 1, 4, 16 problems per step (dip.batched)"
if want batched; then
  timeout "$(limit 120)" python3 -m dip bench speed --device "$DEVICE" --out "$OUT" --steps "${SPEED_STEPS:-20}" \
      --sizes "${BATCH_SIZES:-128,512}" --presets "${BATCH_PRESETS:-denoise/default,denoise/paper}" --variants "${BATCH_VARIANTS:-tf32,tf32+graph}" --batches "${BATCHES:-1,4,16}" \
      2>&1 | tee -a "$log"
fi

phase "a batch that narrows to its live fits, and a queue through K places (benchmarks/narrowing.py)"
if want narrowing; then
  timeout "$(limit 150)" python3 benchmarks/narrowing.py --device "$DEVICE" --sizes "${NARROW_SIZES:-128,256}" \
      --ks "${NARROW_KS:-16}" --steps "${NARROW_STEPS:-100}" --acceleration "${NARROW_ACCELERATION:-tf32+graph}" 2>&1 | tee -a "$log"
  cp "$(ls -t benchmarks/results/narrowing-"$DEVICE"-*.md | head -1)" "$OUT"/ 2>/dev/null
fi

phase "the denoising presets' Wiener step on the device, matched and unmatched, by size"
if want wiener; then
  timeout "$(limit 120)" python3 benchmarks/wiener_speed.py --device "$DEVICE" --sizes "${WIENER_SIZES:-256,1024,3000}" \
      --out "$OUT" 2>&1 | tee -a "$log"
fi

phase "restarts: K = 1, 2, 4 fits of one image, alone and together (benchmarks/restarts.py, CBSD68 in .gpudata)"
if want restarts; then  # bash benchmarks/gpudata.sh CBSD68 first
  timeout "$(limit "${RESTARTS_LIMIT:-120}")" python3 benchmarks/restarts.py --tasks "${RESTARTS_TASKS:-denoise}" \
      --images "${RESTARTS_IMAGES:-2}" --crop "${RESTARTS_CROP:-128}" --fits 4 --device "$DEVICE" \
      ${RESTARTS_ACCELERATION:+--acceleration "$RESTARTS_ACCELERATION"} 2>&1 | tee -a "$log"
  cp "$(ls -t benchmarks/results/restarts-"$DEVICE"-*.md | head -1)" "$OUT"/ 2>/dev/null
fi

photo="${PHOTO_SIZE:-4000x3000}"; photo_w="${photo%x*}"; photo_h="${photo#*x}"
phase "a ${photo} photo (sigma 25), default preset, tiled and batched"
if want photo; then
  python3 -c "
import numpy as np; from PIL import Image; from skimage import data
clean = Image.fromarray(data.astronaut()).resize(($photo_w, $photo_h), Image.LANCZOS)
noisy = np.asarray(clean) / 255 + np.random.default_rng(0).normal(0, 25 / 255, ($photo_h, $photo_w, 3))
Image.fromarray((noisy.clip(0, 1) * 255).round().astype(np.uint8)).save('$OUT/photo-noisy.png')
clean.save('$OUT/photo-clean.png')"
  tiling="--tile ${PHOTO_TILE:-256} --tile-batch auto"
  [ "${PHOTO_TILE:-}" = none ] && tiling=""  # the whole photo as one fit (about 25 GB with the default net)
  for flags in ${PHOTO_FLAGS:---cuda-graph}; do
    rm -f "$OUT/photo-denoised.png"
    start=$SECONDS
    timeout "$(limit "${PHOTO_LIMIT:-240}")" python3 -m dip denoise "$OUT/photo-noisy.png" --sigma 25 --device "$DEVICE" \
        $tiling ${flags//,/ } -o "$OUT/photo-denoised.png" --force 2>&1 \
        | while IFS= read -r line; do echo "$(date -u +%T) $line"; done | tail -"${PHOTO_LINES:-40}" | tee -a "$log"
    echo "photo ${photo}, tile ${PHOTO_TILE:-256}, flags ${flags}: $((SECONDS - start)) s (exit ${PIPESTATUS[0]})" | tee -a "$log"
    [ -f "$OUT/photo-denoised.png" ] && python3 -c "
from dip.io import read_image; from dip.metrics import psnr
print('PSNR against the clean photo: %.2f dB' % psnr(read_image('$OUT/photo-denoised.png').pixels, read_image('$OUT/photo-clean.png').pixels))" \
        2>&1 | tee -a "$log"
  done
  rm -f "$OUT/photo-noisy.png" "$OUT/photo-denoised.png" "$OUT/photo-clean.png"
fi

phase "time to quality at full size: paper vs default (and default in bf16)"
if want ttq; then
  timeout "$(limit 270)" python3 -m dip bench speed --device "$DEVICE" --out "$OUT" --sizes "${TTQ_SPEED_SIZE:-512}" \
      --steps 2 --presets denoise/default --variants "${TTQ_VARIANT:-tf32}" --ttq --ttq-tasks denoise \
      --ttq-presets "${TTQ_PRESETS:-paper,default,default@bf16}" ${TTQ_FULL---ttq-full} ${TTQ_STEPS:+--ttq-steps "$TTQ_STEPS"} \
      --data "$DIP_DATA/paper" 2>&1 | tee -a "$log"
fi

phase "F16 at full size: what the paper preset's gap comes from (benchmarks/variants.py)"
if want f16; then
  timeout "$(limit 420)" python3 benchmarks/variants.py --suite denoise25 --images F16 --mode full --device "$DEVICE" \
      --out "$OUT" --variants "${F16_VARIANTS:-paper,paper+bn-uniform,paper+bn-uniform+corners,paper+no-halving,paper+fourier+steps=3000}" 2>&1 | tee -a "$log"
fi

phase "net width and step cap at 256 px on the settings-choice set (CBSD68 in .gpudata, sigma 25 and 50)"
if want width; then  # bash benchmarks/gpudata.sh CBSD68 [SUITE ...] first
  wide="net=denoise/paper+width"
  for sigma in 25 50; do
    base=default; [ "$sigma" = 50 ] && base=default-sigma50
    timeout "$(limit "${WIDTH_LIMIT:-120}")" python3 benchmarks/variants.py --task denoise --sigma "$sigma" --crop 256 \
        --images "${WIDTH_IMAGES:-8}" --device "$DEVICE" --out "$OUT" \
        --variants "$base,$base+steps=4000,$base+$wide=48,$base+$wide=64" 2>&1 | tee -a "$log"
  done
fi

phase "full protocol (the paper's tables at full size): the suites whose data is in .gpudata"
want full && quality_tables full "${FULL_SUITES:-}" "${FULL_PRESETS:-default,best}" "${FULL_FLAGS:-}" "${FULL_LIMIT:-150}"

phase "mid protocol (256 px centre crops): the suites whose data is in .gpudata, batched"
want mid && quality_tables mid "${MID_SUITES:-}" "${MID_PRESETS:-default,best}" "${MID_FLAGS:-}" "${MID_LIMIT:-150}"
for f in "$OUT"/*+*; do [ -e "$f" ] && cp "$f" "${f//+/_}" && rm "$f"; done  # the device tool drops names with +

phase "done"
ls -la "$OUT" | tee -a "$log"
