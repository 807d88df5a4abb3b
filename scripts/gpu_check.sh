#!/usr/bin/env bash
# Everything issue 5 measures on a GPU, in one device call (budget: about 6 minutes on an H100).
#
# Here, once per session (the device image lacks pydantic; nothing can be fetched there):
#     scripts/gpu_wheels.sh            # downloads Python 3.12 wheels into .whl/ (git-ignored)
# Then one device call, from the repository root:
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Results land in $OUT: kernels.txt, overhead.txt, run.txt (and the run's metrics.jsonl).
set -uo pipefail
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "installing the carried wheels failed: run scripts/gpu_wheels.sh here and carry .whl"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD:$PWD/tests

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/card.txt"

echo "== kernels in ARM's per-step terms"
python3 bench/arm_kernels.py 2>&1 | grep -v '^USDT' | tee "$OUT/kernels.txt"

echo "== step time, CREMA-D shapes (ARM eager and compiled)"
timeout 330 python3 bench/arm_overhead.py --repeats 30 2>&1 | tee "$OUT/overhead.txt"

echo "== a short real run: CREMA-D layout on disk, two ResNet-18, bf16, channels-last, compile auto"
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
    "method": "arm", "epochs": 3, "batch_size": 32, "device": "cuda", "precision": "bf16",
    "channels_last": True, "model_options": {"encoder": {"name": "resnet18"}},
})
result = train(config, root / "run")
print("status", result.status)
for record in RunDir(root / "run").metrics():
    print({k: record[k] for k in sorted(record) if k.split(".")[0] in
           ("epoch", "val_acc", "nmi", "ncmi", "arm_train_weight", "train_loss", "dominant", "epoch_seconds")})
shutil.copy(root / "run" / "metrics.jsonl", os.environ.get("OUT", "."))
PY
