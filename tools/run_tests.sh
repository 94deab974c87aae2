#!/usr/bin/env bash
# The README's test command: installs everything the tests need into .venv-test, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# socat makes the pseudo-terminal pairs the serial-protocol tests talk over.
if ! command -v socat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq socat >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq socat >/dev/null; fi
fi
# mosquitto: the site tests run a real MQTT broker; chromium: the site admin page is tested in
# a real headless browser (tests/test_site_*.py skip, saying why, where these are missing).
for pkg in mosquitto chromium; do
  if ! command -v "$pkg" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$pkg" ]; then
    if [ "$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null) || true
    else (sudo apt-get update -qq && sudo apt-get install -y -qq "$pkg" >/dev/null) || true; fi
  fi
done
python3 -m venv .venv-test
. .venv-test/bin/activate
python -m pip install -q --upgrade pip
# CPU build of torch from this machine's local wheel (a bare `torch` would pull a CUDA build).
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[train,test]'
python -m pytest "$@"
