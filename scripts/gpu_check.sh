#!/usr/bin/env bash
# Everything issue 5 checks and measures on a GPU, in one device call (about 5 minutes on an H100).
#
# Here, once per session (the device image lacks pydantic; nothing can be fetched there):
#     scripts/gpu_wheels.sh            # downloads Python 3.12 wheels into .whl/ (git-ignored)
# Then one device call, from the repository root:
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Results land in $OUT: card.txt, tests.txt, overhead.txt, host.txt, run.txt (and the run's metrics.jsonl).
# Kernel counts: bench/arm_kernels.py (measured already; see the README).
set -uo pipefail
NOISE='^USDT|softmax is disabled|split the reduction|important use case|warnings.warn|^$'
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "installing the carried wheels failed: run scripts/gpu_wheels.sh here and carry .whl"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/card.txt"

echo "== the tests that need a GPU: CUDA-graph ARM steps and runs against the direct ones"
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py 2>&1 | tee "$OUT/tests.txt" | tail -15

echo "== step time, CREMA-D shapes (ARM eager, compiled, compiled + CUDA graph)"
timeout 300 python3 -W ignore bench/arm_overhead.py --rounds 12 2>&1 | grep -Ev "$NOISE" | tee "$OUT/overhead.txt"

echo "== host time per part of ARM's step, batch 64"
timeout 120 python3 -W ignore bench/arm_host.py 2>&1 | grep -Ev "$NOISE" | tee "$OUT/host.txt"

echo "== a short real run: CREMA-D layout on disk, two ResNet-18, bf16, channels-last, compiled, CUDA graph"
python3 - <<'PY' 2>&1 | tee "$OUT/run.txt"
import os, shutil, tempfile
from pathlib import Path

from av_fixtures import make_cremad

from armscope.config import RunConfig
from armscope.rundir import RunDir
from armscope.train import train

root = Path(tempfile.mkdtemp())
make_cremad(root / "cremad", n_train=96, n_test=48, frames=2, frame_size=(224, 224), seconds=3.0, rate=22050)
config = RunConfig.model_validate({
    "dataset": "cremad", "dataset_options": {"root": str(root / "cremad"), "frames": 2, "num_workers": 4},
    "method": "arm", "method_options": {"cuda_graph": "on"}, "epochs": 3, "batch_size": 32, "device": "cuda", "precision": "bf16",
    "channels_last": True, "model_options": {"encoder": {"name": "resnet18"}},
})
result = train(config, root / "run")
print("status", result.status)
for record in RunDir(root / "run").metrics():
    print({k: record[k] for k in sorted(record) if k.split(".")[0] in
           ("epoch", "val_acc", "nmi", "ncmi", "arm_train_weight", "train_loss", "dominant", "epoch_seconds")})
for event in RunDir(root / "run").events():
    print("event", event.get("kind"), event.get("message"))
shutil.copy(root / "run" / "metrics.jsonl", os.environ.get("OUT", "."))
PY
