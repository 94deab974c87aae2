#!/usr/bin/env bash
# The README's test command: installs everything the tests need into .venv-test, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-test
. .venv-test/bin/activate
python -m pip install -q --upgrade pip
# CPU build of torch from this machine's local wheel (a bare `torch` would pull a CUDA build).
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[train,test]'
python -m pytest "$@"
