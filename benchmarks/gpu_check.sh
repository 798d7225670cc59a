#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU (torch with CUDA installed, no internet):
#   1. edgecv-torch's backend on CUDA: latency (FP32, FP16) against the CPU, and parity
#      (detections on bus.jpg, mAP50-95 on coco128) with the CPU;
#   2. edgecv-torch's tests there (the CUDA ones run instead of skipping);
#   3. four distillations of yolov8n pruned 30 % (benchmarks/torch_compress.py --device cuda),
#      side by side on the one GPU, trained on coco128's even half and scored on its odd half:
#      augmented (zoom, shift) at lr 1e-3 and 2.5e-4, not augmented, and augmented with channel
#      counts rounded to multiples of 8.
#
#   DATA=folder OUT=folder bash benchmarks/gpu_check.sh
#
# DATA holds whl/ (edgecv-core, edgecv-onnx, edgecv-torch, torch-pruning, onnxslim wheels) and
# assets/ (models/yolov8n_fp32_dequant.onnx, yolov8n_int8.onnx, yolox_nano.onnx, images/,
# coco128/). TRAIN_S: seconds of training the four runs share the GPU for (default 300); the
# step count comes from a short probe of four runs side by side. SIZE, BATCH: the training
# input size and batch (640, 32). DEVICE=cpu SIZE=64 BATCH=2 TRAIN_S=20 rehearses the whole
# script without a GPU.
# Everything lands in OUT: run.log, pytest.log and each run's distilled ONNX (<=8 files).
set -u
DATA=${DATA:?set DATA}
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
TRAIN_S=${TRAIN_S:-300}
SIZE=${SIZE:-640}
BATCH=${BATCH:-32}
WORK=${WORK:-/tmp/gpu_check}
export PYTHONUNBUFFERED=1 EDGECV_ASSETS=$DATA/assets
LOG=$OUT/run.log
mkdir -p "$WORK" "$OUT"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

if [ -d "$DATA/whl" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$DATA"/whl/*.whl || exit 1
  export PYTHONPATH=$WORK/site PATH=$WORK/site/bin:$PATH
fi
MODEL=$EDGECV_ASSETS/models/yolov8n_fp32_dequant.onnx
BUS=$EDGECV_ASSETS/images/bus.jpg
COCO=$EDGECV_ASSETS/coco128

log machine
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  python3 -c "import torch, edgecv, edgecv_torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  nproc; } >>"$LOG" 2>&1

log "1. the torch backend on $DEVICE against the CPU"
python3 -c "
import sys; from pathlib import Path
from edgecv_torch import checkpoint; from edgecv_torch.yolov8 import YOLOv8
checkpoint.save(YOLOv8.from_onnx(Path(sys.argv[1])), Path(sys.argv[2]))" "$MODEL" "$WORK/yolov8n.pt" >>"$LOG" 2>&1
half=$([ "$DEVICE" = cuda ] && echo "-o half=true")
for options in "-o device=$DEVICE" "-o device=$DEVICE $half" "-o device=cpu"; do
  runs=$([ "$options" = "-o device=cpu" ] && echo 30 || echo 300)
  log "bench $options"
  # shellcheck disable=SC2086
  edgecv bench -m "$WORK/yolov8n.pt" -b torch $options --runs "$runs" --json >>"$LOG" 2>&1
done
for device in "$DEVICE" cpu; do
  log "predict bus.jpg device=$device"
  edgecv predict "$BUS" -m "$WORK/yolov8n.pt" -b torch -o device="$device" --json >>"$LOG" 2>&1
  log "val coco128 device=$device"
  edgecv val -m "$WORK/yolov8n.pt" -b torch -o device="$device" -d "$COCO" --json >>"$LOG" 2>&1
done

log "2. edgecv-torch's tests (in the background)"
(python3 -m pytest -q -p no:cacheprovider plugins/edgecv-torch/tests/test_torch_session.py \
  plugins/edgecv-torch/tests/test_torch_distill.py plugins/edgecv-torch/tests/test_torch_yolov8.py \
  >"$OUT/pytest.log" 2>&1; echo "rc=$?" >>"$OUT/pytest.log") &
tests=$!

COMMON=(--ratio 0.3 --train-imgsz "$SIZE" --batch "$BATCH" --schedule cosine --device "$DEVICE"
  --no-bench --save-every 200)
AUG=(--scale 0.5 --translate 0.1)
log "3. probe: seconds per step of four runs side by side"
PROBE='
import contextlib, sys, time, torch
from pathlib import Path
from edgecv.calibration import take_subset
from edgecv.images import iter_image_files
from edgecv_torch.distill import DistillConfig, distill
from edgecv_torch.prune import prune
from edgecv_torch.yolov8 import YOLOv8
model, coco, work, device = sys.argv[1:5]
size, batch = int(sys.argv[5]), int(sys.argv[6])
teacher = YOLOv8.from_onnx(Path(model))
student = prune(teacher, 0.3, example=torch.zeros(1, 3, size, size))
images = take_subset(list(iter_image_files([Path(coco) / "images" / "train2017"])), "even")
ticks = []
@contextlib.contextmanager
def progress(stage, total):
    yield lambda n: ticks.append(time.perf_counter())
config = DistillConfig(steps=30, batch=batch, imgsz=size, scale=0.5, translate=0.1, save_every=1000)
distill(teacher, student, images, Path(work), config, device=device, progress=progress)
print((ticks[-1] - ticks[9]) / (len(ticks) - 10))
'
probes=""
for n in 1 2 3 4; do
  python3 -c "$PROBE" "$MODEL" "$COCO" "$WORK/probe$n" "$DEVICE" "$SIZE" "$BATCH" >"$WORK/probe$n.txt" 2>>"$LOG" &
  probes="$probes $!"
done
# shellcheck disable=SC2086
wait $probes
per_step=$(cat "$WORK"/probe?.txt | sort -g | tail -n 1)
STEPS=${STEPS:-$(python3 -c "import sys; print(max(10, int(float(sys.argv[2]) / float(sys.argv[1]))))" "$per_step" "$TRAIN_S")}
log "probe: $(cat "$WORK"/probe?.txt | tr '\n' ' ')s per step; each run gets $STEPS steps"

RUNS=(
  "aug --lr 1e-3 ${AUG[*]}"
  "aug_lr2.5e-4 --lr 2.5e-4 ${AUG[*]}"
  "plain --lr 1e-3"
  "aug8 --lr 1e-3 --round-to 8 ${AUG[*]}"
)
log "distilling ${#RUNS[@]} runs side by side"
runs=""
for run in "${RUNS[@]}"; do
  name=${run%% *}
  # shellcheck disable=SC2086
  python3 benchmarks/torch_compress.py --work "$WORK/$name" "${COMMON[@]}" ${run#* } --steps "$STEPS" \
    >"$WORK/$name.log" 2>&1 &
  runs="$runs $!"
done
# shellcheck disable=SC2086
wait $runs
for run in "${RUNS[@]}"; do
  name=${run%% *}
  log "run $name"
  tail -n 8 "$WORK/$name.log" >>"$LOG"
  cat "$WORK/$name/results.json" >>"$LOG" 2>/dev/null
  cp "$WORK/$name/distilled.onnx" "$OUT/$name.onnx" 2>/dev/null
done
wait "$tests"
log "tests: $(tail -n 2 "$OUT/pytest.log" | tr '\n' ' ')"
log done
