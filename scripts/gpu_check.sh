#!/usr/bin/env bash
# The device checks for the GPU machine (see ../shared/gpu/README.md), run from the repo root:
#   bash ../shared/gpu/wheels.sh pyyaml && mkdir -p .weights && python -m vidsr models export animevideov3 -o .weights/animevideov3.safetensors
#   then, on the device (carry .whl and .weights): bash scripts/gpu_check.sh [phases...]
# Phases: bench (issue 4, uncompiled), compile (issue 4, torch.compile), upscale (a real run),
#         workers (issue 7: 1 vs 2 workers on one GPU), degrade (issue 5), train (issue 6: stage 1).
# Results go to $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=$PWD:/tmp/site
W=.weights/animevideov3.safetensors
phases=${*:-bench compile upscale}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, av; print('torch', torch.__version__, 'av', av.__version__)" | tee -a "$OUT/gpu.txt"
for phase in $phases; do
  echo "=== $phase $(date +%T)"
  case $phase in
    bench)
      timeout 200 python3 -m vidsr bench --model $W -s 2 --batch 1,4,8 --frames 600 --codec libx264 --preset veryfast \
        --json "$OUT/bench.json" 2>"$OUT/bench.err" | tee "$OUT/bench.txt"; tail -3 "$OUT/bench.err" ;;
    compile)
      timeout 200 python3 -m vidsr bench --model $W -s 2 --batch 4 --frames 600 --compile --reference-frames 10 \
        --json "$OUT/bench_compile.json" 2>"$OUT/bench_compile.err" | tee "$OUT/bench_compile.txt"
      tail -3 "$OUT/bench_compile.err" ;;
    upscale)
      timeout 60 python3 -m vidsr upscale samples/earth_3s.mp4 --model $W -s 2 -o "$OUT/earth_x2.mp4" --debug 2>&1 | tail -3 ;;
    workers)
      timeout 80 python3 scripts/bench_workers.py --model $W --devices cuda:0 --workers 1,2 --frames 600 \
        --segment-seconds 2 --json "$OUT/workers.json" 2>&1 | grep -v "^\s*$" | tail -4 ;;
    degrade)
      timeout 50 python3 scripts/bench_degrade.py --device cuda --draw per_batch --iters 15 --json "$OUT/degrade.json" 2>&1 | tail -12 ;;
    train)
      timeout ${TRAIN_TIMEOUT:-240} python3 scripts/train_check.py --device cuda --minutes ${TRAIN_MINUTES:-2.5} \
        --data .media/images --official $W --json "$OUT/train.json" 2>&1 | tail -15 ;;
    *) echo "unknown phase $phase" ;;
  esac
done
echo "=== done $(date +%T)"
