#!/usr/bin/env bash
# The device checks for the GPU machine (see ../shared/gpu/README.md), run from the repo root.
# Prepare here (the GPU machine has no network, no PyAV, no weights package, no media):
#   bash ../shared/gpu/wheels.sh pyyaml nvidia-ml-py          # .whl/: PyAV, ffmpeg-python, PyYAML, NVML
#   mkdir -p .weights && for m in animevideov3 animevideov3-x2; do vidsr models export $m -o .weights/$m.safetensors; done
#   mkdir -p .media/images && cp -r ../shared/media/images/anime .media/images/
# then, on the device (carry .whl, .weights and .media): bash scripts/gpu_check.sh [phases...]
# Phases:
#   bench (issue 4, uncompiled), compile (issue 4, torch.compile), upscale (a real run),
#   workers (issue 7: 1 vs 2 workers on one GPU), degrade (issue 5), train (issue 6: stage 1 from scratch),
#   finetune (issue 14: compact_x4 from the official animevideov3 on the anime images, two held out:
#             3 min of the L1 stage, its training log giving the feed's rate against the step rate, the
#             wait for data and the GPU utilisation, then 1.5 min of the GAN stage; official vs each stage
#             on the held-out degraded crops; about 6 minutes in all),
#   feed (issue 14: the training feed alone, the step alone, both together; 30 s each, about 2.5 minutes),
#   finetune_x2 (issue 14: the same from animevideov3-x2 with compact_x2, shorter),
#   encoder_gap (issue 13: x264 inside vidsr against x264 alone on the same frames, about 1 minute),
#   dedup (issue 13: --dedup on anime drawn on twos and threes, fps with and without, about 1 minute),
#   speed (issue 13: the one `vidsr bench` run whose table and JSON answer its GPU lines: defaults at
#          960x540 -> x2 against --no-compile with one encoder and against min(model, encoders) of that
#          run; 1920x1080 -> x2 defaults against eager; x264 encode-only inside vidsr against x264 alone;
#          plus --encoders 2, RRDB (x4plus architecture, random weights: its 64 MB of weights do not fit
#          the carry; speed does not depend on their values) and eager / compiled / CUDA-graph model rows.
#          About 5 minutes, most of it compiling with a cold cache. Copy $OUT/bench_speed.json to
#          docs/bench/h200_issue13_speed.json.)
# Results go to $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=$PWD:/tmp/site
W=.weights/animevideov3.safetensors
W2=.weights/animevideov3-x2.safetensors
ANIME=.media/images/anime
[ -d "$ANIME" ] || ANIME=tests/data/images/anime   # committed, smaller: say so in the results
phases=${*:-bench compile upscale}
nvidia-smi -L | tee "$OUT/gpu.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/gpu.txt"
python3 -c "import sys, torch, av; print('python', sys.version.split()[0], 'torch', torch.__version__, 'av', av.__version__, 'cores', len(__import__('os').sched_getaffinity(0)))" | tee -a "$OUT/gpu.txt"
echo "anime images: $ANIME" | tee -a "$OUT/gpu.txt"
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
    finetune)
      timeout ${FINETUNE_TIMEOUT:-540} python3 scripts/finetune_check.py --device cuda --config compact_x4 --official $W \
        --data $ANIME --minutes-net ${NET_MINUTES:-3} --minutes-gan ${GAN_MINUTES:-1.5} --out "$OUT/finetune_run" \
        --json "$OUT/finetune.json" 2>"$OUT/finetune.err" | tail -40; tail -3 "$OUT/finetune.err"
      rm -rf "$OUT/finetune_run"/*/checkpoints ;;   # keep logs, samples and exports; drop the bulky checkpoints
    feed)
      timeout ${FEED_TIMEOUT:-240} python3 scripts/bench_degrade.py --device cuda --feed-only --images $ANIME \
        --feed-seconds ${FEED_SECONDS:-30} --json "$OUT/feed.json" 2>&1 | tail -8 ;;
    finetune_x2)
      timeout ${FINETUNE_TIMEOUT:-420} python3 scripts/finetune_check.py --device cuda --config compact_x2 --official $W2 \
        --data $ANIME --minutes-net ${NET_MINUTES:-2} --minutes-gan ${GAN_MINUTES:-1} --out "$OUT/finetune_x2_run" \
        --json "$OUT/finetune_x2.json" 2>"$OUT/finetune_x2.err" | tail -40; tail -3 "$OUT/finetune_x2.err"
      rm -rf "$OUT/finetune_x2_run"/*/checkpoints ;;
    speed)
      timeout ${SPEED_TIMEOUT:-480} python3 -m vidsr bench --model $W -s 2 --batch 8 --frames 600 --codec libx264 \
        --preset veryfast --reference-frames 10 --path-batch 8 --encoders 2 --large-size 1920x1080 \
        --large-frames 600 --rrdb-model random --rrdb-size 640x360 --rrdb-frames 60 \
        --json "$OUT/bench_speed.json" 2>"$OUT/bench_speed.err" | tee "$OUT/bench_speed.txt"
      tail -3 "$OUT/bench_speed.err"; du -sh "${VIDSR_CACHE_DIR:-$HOME/.cache/vidsr}/compile" 2>/dev/null ;;
    encoder_gap)
      timeout 200 python3 scripts/bench_encoder_gap.py --size 1920x1080 --frames 240 --repeat 2 \
        --json "$OUT/encoder_gap.json" 2>&1 | tail -10 ;;
    dedup)
      timeout 200 python3 scripts/bench_dedup.py --model $W --size 960x540 --device cuda --pairs 2 \
        --json "$OUT/dedup.json" 2>&1 | tail -10 ;;
    *) echo "unknown phase $phase" ;;
  esac
done
echo "=== done $(date +%T)"
