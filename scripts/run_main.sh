#!/usr/bin/env bash
# Fresh machine -> accuracy-vs-T table: set up the virtualenv, then `spikeconv run CONFIG`
# (trains the QReLU ANN unless its checkpoint exists, converts, simulates, prints the table).
# Usage: bash scripts/run_main.sh [configs/mnist.toml] [--data-root DIR] [--retrain] [--json OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
config=${1:-configs/mnist.toml}
shift || true
exec .venv/bin/spikeconv run "$config" "$@"
