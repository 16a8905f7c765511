#!/usr/bin/env bash
# Set up a virtual environment in .venv with chipcut, its test tools, the example models and the
# test plug-in backend (tests/backends/plugin, a separate distribution that registers 'loopback').
# Installs a CPU build of torch when none is present (never the multi-GB CUDA build):
# a local CPU wheel when pip can find one, else PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || .venv/bin/pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
.venv/bin/pip install -q -e ".[test,models]"
.venv/bin/pip install -q -e tests/backends/plugin
