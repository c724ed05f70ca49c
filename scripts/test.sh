#!/usr/bin/env bash
# Set up (if needed) and run the project's whole test suite. Extra arguments go to pytest.
#   scripts/test.sh                      -> transformers 4.x environment (.venv)
#   TRANSFORMERS_MAJOR=5 scripts/test.sh -> transformers 5.x environment (.venv-tf5)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
case "${TRANSFORMERS_MAJOR:-4}" in 5) venv=${VENV:-.venv-tf5} ;; *) venv=${VENV:-.venv} ;; esac
exec "$venv/bin/python" -m pytest "$@"
