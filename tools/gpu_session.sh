#!/usr/bin/env bash
# Everything the course measures on a CUDA GPU, in one run that fits a short loan of one
# (about 10 minutes on an H100-class GPU): run it from the repository's root,
#
#     bash tools/gpu_session.sh            # writes results/bench/*-gpu.json and scale-study runs
#
# Each step has its own time limit, writes its record when it finishes and is skipped on a rerun
# when its record is there, so a loan that ends early keeps what was finished. CIFAR-10 comes from
# $RESNET_COURSE_DATA (default ../shared/data): offline, that is the 4,660-image slice, so the
# figures are the slice's; with the full set there (or a network), reproduce's runs are the paper's.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export RESNET_COURSE_DATA=${RESNET_COURSE_DATA:-../shared/data}
OUT=results/bench
mkdir -p "$OUT"

step() {  # step NAME SECONDS RECORD COMMAND...: run COMMAND unless RECORD exists
    local name=$1 seconds=$2 record=$3
    shift 3
    if [ -e "$record" ]; then echo "== $name: done before ($record)"; return; fi
    echo "== $name (at most $seconds s)"
    local start=$SECONDS
    timeout "$seconds" "$@" || echo "== $name: ended with status $? after $((SECONDS - start)) s"
}

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU here')" || exit 1

# fit against the best plain loop and the tutorial pipeline, at both preset sizes, with the precision used.
step "throughput, width 16, 32x32" 150 "$OUT/throughput-w16-32px-gpu.json" \
    "$PYTHON" -m tools.bench --device cuda --only machine,throughput --models resnet20,resnet56 \
    --image-size 32 --width 16 --steps 20 --repeats 5 --json "$OUT/throughput-w16-32px-gpu.json"
step "channels-last and torch.compile" 150 "$OUT/compile-gpu.json" \
    "$PYTHON" -m tools.bench --device cuda --only machine,memory_format,compile \
    --json "$OUT/compile-gpu.json"
# The larger GPU recipe's archive (width 16, 32x32, all of CIFAR-10, 3,150 steps), five seeds: do
# both halves of Fig. 6 hold there? Until they do, the gpu preset trains the archived CPU recipe.
# (Resumable by itself: a loan that ends early keeps the seeds it finished.)
step "scale study, Fig. 6 at the larger GPU recipe" 300 /nonexistent \
    "$PYTHON" -m tools.scale_study run --claims degradation,residual_depth \
    --configs w16-32px-full-3150st-cos --seeds 0,1,2,3,4
# Every chapter at the gpu preset (the budget: 3 minutes each on a T4).
step "every chapter at the gpu preset" 420 "$OUT/chapters-gpu-preset.json" \
    "$PYTHON" -m tools.bench --only machine,chapters --chapter-presets gpu \
    --json "$OUT/chapters-gpu-preset.json"
# The archive at the paper's width and image size, three seeds (resumable by itself).
step "scale study, width 16, 32x32" 240 /nonexistent \
    "$PYTHON" -m tools.scale_study run --claims degradation,residual_depth --configs w16-32px-1050st-cos
echo "== done: commit results/bench/*-gpu.json and results/scale-study/"
