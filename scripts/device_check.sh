#!/usr/bin/env bash
# Issue 5's GPU checks in one prepared run for a lent GPU machine (the `device` tool; see
# docs/simulation.md): the CUDA tests (tests/test_cuda.py), then benchmarks/peers.py on CUDA for the two
# random-weight CIFAR nets at batch 32 and 256, T = 8; logs and JSON under $OUT.
#
# Here, once:   bash scripts/fetch_peer_wheels.sh           (the peers as wheels, into .whl/)
# There:        device run, carry [".whl"], command "bash scripts/device_check.sh", timeout_s 340
# Dry run here: DEVICE=cpu PYTHON=.venv/bin/python OUT=/tmp/out MODELS=vgg_cifar_small REPEATS=2 \
#               bash scripts/device_check.sh
#
# The machine has its own python3 with PyTorch (no venv, nothing to fetch): spikeconv runs from src/.
# Every step has its own time limit so that the logs of the earlier steps always come back.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
MODELS=${MODELS:-vgg_cifar_small resnet18_cifar}
REPEATS=${REPEATS:-15}
OUT=${OUT:-/tmp/spikeconv_device}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$OUT/machine.txt"
timeout 100 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/pytest.log" | tail -5
# batch 32 first (the issue's setting); each run writes its JSON after every model
for batch in 32 256; do
  limit=$([ "$batch" = 32 ] && echo 120 || echo 90)
  # shellcheck disable=SC2086
  timeout "$limit" "$PYTHON" benchmarks/peers.py --device "$DEVICE" --models $MODELS \
    --batch "$batch" --repeats "$REPEATS" --memory --json "$OUT/peers_${DEVICE}_b$batch.json" 2>&1 | tee "$OUT/peers_${DEVICE}_b$batch.log"
done
