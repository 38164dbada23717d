#!/usr/bin/env bash
# One GPU lease's checks, in order (run from the repo root on the device machine, results under $OUT):
#   1. the CUDA tests, 2. bench --throughput and --loader (alone on the machine: they are timings; the loader's
#   images/s from the folder against in memory is the photo issue's GPU target, >= 0.8x), 3. the datasets table
#   (shapes, the harder digits with their oracle-ink, CIFAR-10 at 0.1 / 0.3 / 0.5) over five seeds for the default
#   and for the fine preset, the candidate for the default (README, "The fine preset"), side by side, 4. the digits at
#   four times the benchmark's steps (the fine preset, oracle-ink and the unmasked classifier, five seeds: README,
#   "Four times the steps").
# Needs the CIFAR-10 archive at ../shared/data, which does not travel to a device machine, and plotly (masklab.bench
# imports it through its plots; the device image lacks it): put cifar10-jpeg.tar.gz and plotly's wheel in .gpu/
# (listed in .git/info/exclude), carry ".gpu", and run
#   python3 -m pip install -q --no-index --no-deps --target .gpu/site .gpu/*.whl && export PYTHONPATH=$PWD/.gpu/site;
#   mkdir -p ../shared/data && cp .gpu/cifar10-jpeg.tar.gz ../shared/data/ && bash tools/gpu_session.sh
set -u
W=$(mktemp -d)                                   # scratch: the unpacked photos, bench files, run folders
OUT=${OUT:-$W/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
START=$(date +%s)
since() { echo "[$(( $(date +%s) - START )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
C=$W/cifar; mkdir -p $C && tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C $C && since "unpacked"
since "CUDA tests"; timeout 120 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tail -5
since "throughput"; B=$W/bench; timeout 90 python3 -m masklab bench --throughput --out $B 2>&1 | tail -3
since "loader"; timeout 100 python3 -m masklab bench --loader --folder $C/cifar10 --out $B 2>&1 | tail -4
cp $B/throughput-*.json "$OUT/"; cp $B/loading.json "$OUT/loading-cuda.json"
python3 -c "from masklab.bench_data import cifar_folder; print(cifar_folder())"   # once, before 8 workers race
for preset in hard-concrete hard-concrete-fine; do
  since "datasets, $preset"
  timeout ${DATASETS_S:-240} python3 -m masklab bench --datasets --seeds 5 --workers 8 --preset $preset \
    --out $W/ds-$preset 2>&1 | tail -3
  cp $W/ds-$preset/datasets.csv "$OUT/datasets-cuda-$preset.csv"
  cp $W/ds-$preset/DATASETS.md "$OUT/DATASETS-cuda-$preset.md"
done
since "the digits at 6000 steps"
timeout ${LONG_S:-300} python3 tools/gpu_screen.py run long5 "$OUT/long.jsonl" --workers 15 --device cuda --seconds 60
python3 tools/gpu_screen.py summary "$OUT/long.jsonl" 2>&1 | tail -8
since "done"
ls -la "$OUT"
