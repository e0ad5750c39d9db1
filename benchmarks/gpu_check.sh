#!/usr/bin/env bash
# One call on the lent GPU machine (device tool), from the repository root:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".devcarry"], timeout_s=540)
# .whl: wheels the machine lacks (deeptime, pooch, MDAnalysis and its pure-Python deps, ...);
# .devcarry: weights/, oracle/ and data/ala2_r0.xtc + ala2.pdb copied from ../shared.
# Both are git-ignored (.git/info/exclude); to recreate them:
#   pip download --no-deps --python-version 3.12 --only-binary=:all: -d .whl deeptime pooch \
#       platformdirs MDAnalysis GridDataFormats mda-xdrlib mmtf-python mrcfile
#   mkdir -p .devcarry && cp -r ../shared/weights ../shared/oracle .devcarry/
# Writes into $OUT: pytest log, throughput_gpu.json, precision_gpu.json.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
pip install -q --no-index --find-links .whl --no-deps .whl/*.whl >/dev/null 2>&1
pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
export GEOMFEAT_WEIGHTS_URL="$PWD/.devcarry/weights" GEOMFEAT_CACHE=/tmp/gfcache
export GEOMFEAT_SHARED="$PWD/.devcarry"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 120 python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tail -15 \
    | tee "$OUT/pytest_gpu.log"
cd benchmarks
timeout 240 python throughput.py --device cuda --oracle ../.devcarry/oracle \
    --models visnet-denali --configs ala2_heavy:16384 ala2_all:8192 t4l_heavy:64 \
    --methods geomfeat naive \
    --min-seconds 2 --out "$OUT/throughput_gpu.json" > "$OUT/throughput.log" 2>&1
tail -3 "$OUT/throughput.log"
timeout 150 python precision.py --device cuda --oracle ../.devcarry/oracle \
    --batch ala2_heavy:16384 ala2_all:8192 t4l_heavy:64 --repeats 2 \
    --out "$OUT/precision_gpu.json" > "$OUT/precision.log" 2>&1
tail -3 "$OUT/precision.log"
