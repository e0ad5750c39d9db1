#!/usr/bin/env bash
# Every GPU check in one call of the lent GPU machine (device tool), from the repository root:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".devcarry"], timeout_s=300)
# At most ~260 s on an H100 (plus the machine's start); each step has its own timeout and the
# steps stop starting once GPU_CHECK_BUDGET seconds (default 255) are used.
# .whl: wheels the machine lacks (deeptime, pooch, MDAnalysis and its pure-Python deps);
# .devcarry: weights/ and oracle/ copied from ../shared. Both are git-ignored
# (.git/info/exclude: /.whl/ and /.devcarry/); to recreate them:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#       deeptime==0.4.5 pooch platformdirs MDAnalysis GridDataFormats mda-xdrlib mmtf-python \
#       mrcfile fasteners
#   mkdir -p .devcarry && cp -r ../shared/weights ../shared/oracle .devcarry/
# GEOMFEAT_CODE=DIR runs the code of another checkout copied into DIR (e.g. a branch:
# git archive BRANCH | tar -x -C .devcarry/BRANCH), with .whl and .devcarry from here.
# Writes into $OUT: gpu.txt, pytest_gpu.log, throughput_gpu.json (compiled edge messages and
# the naive PyG ViSNet; one process, same card), precision_gpu.json,
# pipeline_gpu.json, pretrain_speed.log (when benchmarks/pretrain_speed.py exists).
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
HERE="$PWD"
CODE="$(cd "${GEOMFEAT_CODE:-$PWD}" && pwd)"
BUDGET="${GPU_CHECK_BUDGET:-255}"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$HERE"/.whl/*.whl > "$OUT/pip.log" 2>&1 || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$CODE"
export GEOMFEAT_WEIGHTS_URL="$HERE/.devcarry/weights" GEOMFEAT_CACHE=/tmp/gfcache
export GEOMFEAT_SHARED="$HERE/.devcarry"
ORACLE="$HERE/.devcarry/oracle"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, torch_geometric as g; print('torch', torch.__version__, 'pyg', g.__version__)" \
    | tee -a "$OUT/gpu.txt"
cd "$CODE"

step() {  # step NAME MAX_SECONDS COMMAND...: run with a timeout that respects the budget
    local name=$1 max=$2; shift 2
    local left=$((BUDGET - SECONDS))
    if ((left < 20)); then echo "== $name: skipped (budget used)"; return; fi
    ((max > left)) && max=$left
    echo "== $name (timeout ${max}s, t=${SECONDS}s)"
    timeout "$max" "$@"
    echo "== $name: exit $? at t=${SECONDS}s"
}

# 1. Whole pipeline: encoder alone vs reading vs geomfeat embed on 4 XTC files (first: the
#    one GPU figure still missing; it ran out of budget as the last step before).
step pipeline 100 python3 benchmarks/throughput.py --device cuda --oracle "$ORACLE" \
    --models visnet-denali --configs --pipeline 4:1000:1000 \
    --out "$OUT/pipeline_gpu.json" > "$OUT/pipeline.log" 2>&1; tail -2 "$OUT/pipeline.log"
# 2. Throughput of the default (compiled) paths beside the naive baseline, one process, peak
#    GPU memory per row; protein batch 48 stays under 8 GiB. (Add "never" to --compile-modes
#    for the eager paths too: ~20 s more.)
step throughput 80 python3 benchmarks/profile_encoders.py --device cuda --oracle "$ORACLE" \
    --configs t4l_heavy:48 ala2_heavy:16384 --compile-modes auto --naive --repeats 2 \
    --out "$OUT/throughput_gpu.json" 2>&1 | grep -v USDT | tee "$OUT/throughput_gpu.log"
# 3. Tests marked gpu: CUDA equals CPU within float32; tf32 restores full float32.
step pytest 55 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py \
    > "$OUT/pytest_gpu.log" 2>&1; tail -3 "$OUT/pytest_gpu.log"
# 4. Reduced precision: error against the float64 oracle and speed (eager paths).
step precision 40 env GEOMFEAT_COMPILE=never python3 benchmarks/precision.py --device cuda \
    --oracle "$ORACLE" --batch ala2_heavy:4096 t4l_heavy:32 --repeats 2 \
    --out "$OUT/precision_gpu.json" > "$OUT/precision.log" 2>&1; tail -2 "$OUT/precision.log"
# 5. Pre-training speed (the pretrain helper's script), when present.
if [[ -f benchmarks/pretrain_speed.py ]]; then
    step pretrain 35 python3 benchmarks/pretrain_speed.py --device cuda \
        > "$OUT/pretrain_speed.log" 2>&1; tail -5 "$OUT/pretrain_speed.log"
fi
echo "done at t=${SECONDS}s"
