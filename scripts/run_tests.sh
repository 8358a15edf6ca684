#!/usr/bin/env bash
# Fresh machine -> green tests: set up the virtualenv, then run pytest (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
