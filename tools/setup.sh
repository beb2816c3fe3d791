#!/usr/bin/env bash
# Set up a virtual environment in .venv with edgeir and its test tools.
# torch is installed first at the CPU build that this workplace keeps on disk (a bare "torch" could pull a
# multi-GB CUDA build). A GPU user who already has torch in .venv keeps theirs: it is only installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q torch==2.13.0
fi
.venv/bin/python -m pip install -q -e ".[compress,dev]"
.venv/bin/python -m pip install -q --no-deps "tensorrt-stubs>=10.0"
.venv/bin/python -c "import torch, edgeir; print('edgeir ready; torch', torch.__version__)"
