#!/usr/bin/env bash
# One GPU lease's checks, in order (run from the repo root on the device machine, results under $OUT):
#   1. the CUDA tests, 2. bench --throughput and --loader (alone on the machine: they are timings),
#   3. the photo demo candidates on all of CIFAR-10 beside the multi-seed screen gpu5 (both train on the GPU).
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
since "demos + screen"
R=$W/demos; mkdir -p $R
# The CPU's photo demo (width 32, 8000 steps) reached 0.499 at 30% against 0.674 unmasked: a wider classifier and
# more steps here, with and without augmentation, each beside its unmasked twin.
COMMON="--data folder:$C/cifar10 --image_size 32 --test_size 0 --steps ${DEMO_STEPS:-12000} --batch_size 128 \
  --lr_decay true --log_every 500 --device cuda --seed 0 --workers 2 --classifier_width 64"
demo() { local name=$1; shift; python3 -m masklab train $COMMON "$@" --out $R/$name > $R/$name.log 2>&1; \
  since "$name: $(tail -c 400 $R/$name.log | tr '\n' ' ' | tail -c 300)"; \
  tar -czf "$OUT/d-$name.tgz" -C $R $name $name.log; }
demo photos-topk-t3-w64 --preset top-k --area_target 0.3 &
demo photos-default-t3-w64 --preset hard-concrete --area_target 0.3 &
demo photos-unmasked-w64 --preset unmasked &
demo photos-topk-t3-w64-aug --preset top-k --area_target 0.3 --augment true &
demo photos-unmasked-w64-aug --preset unmasked --augment true &
timeout ${SCREEN_S:-300} python3 tools/gpu_screen.py run gpu5 "$OUT/gpu5.jsonl" --workers 8 \
  --seconds ${SCREEN_START_S:-170} 2>&1 | grep -v Warning
wait
since "done"
ls -la "$OUT"
