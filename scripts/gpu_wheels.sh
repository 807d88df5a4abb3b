#!/usr/bin/env bash
# Python 3.12 wheels of what armscope's engine imports and the device image lacks, into .whl/
# (ignored by git), for scripts/gpu_check.sh. Run here, where pip can download.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl pydantic pydantic-core annotated-types typing-inspection typing-extensions
ls .whl
