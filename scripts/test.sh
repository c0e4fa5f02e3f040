#!/usr/bin/env bash
# The test command of the README (and of .ci/run): set up a fresh machine and run every test.
# Installs Debian's chromium for the browser test when it is missing (needs root and apt), makes
# the virtual environment with the train, web, onnx, cluster and test extras, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
python3 -m venv .venv
.venv/bin/pip install -q -e ".[train,web,onnx,cluster,test]"
exec .venv/bin/python -m pytest -q "$@"
