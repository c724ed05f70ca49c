#!/usr/bin/env bash
# Create or update a virtual environment with everything the project needs.
#   scripts/setup.sh                     -> .venv with transformers 4.x (the lecture's major)
#   TRANSFORMERS_MAJOR=5 scripts/setup.sh -> .venv-tf5 with transformers 5.x
# Versions are pinned by constraints/transformers<MAJOR>.txt, so every run is reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."
major=${TRANSFORMERS_MAJOR:-4}
case "$major" in
  4) venv=${VENV:-.venv} ;;
  5) venv=${VENV:-.venv-tf5} ;;
  *) echo "TRANSFORMERS_MAJOR must be 4 or 5, not '$major'" >&2; exit 2 ;;
esac
constraints=constraints/transformers$major.txt
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is needed ($python is older)" >&2; exit 2; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# torch first, pinned, CPU build: PyPI's Linux torch (also when pulled in as a dependency) is a
# multi-GB CUDA build. A wheel folder or mirror that pip is configured with and that holds the CPU
# build is used as is; otherwise PyTorch's CPU index ($TORCH_INDEX_URL to use another).
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  "${pip[@]}" install "torch==2.13.0+cpu" 2>/dev/null ||
    "${pip[@]}" install "torch==2.13.0" --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
fi
"${pip[@]}" install -c "$constraints" -e ".[course,dev]"
echo "environment ready: $venv (transformers $("$venv/bin/python" -c 'import transformers; print(transformers.__version__)'))" >&2
