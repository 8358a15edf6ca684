#!/usr/bin/env bash
# Every GPU figure in one prepared run on a lent GPU machine (the `device` tool), within about 8 minutes:
#   1. benchmarks/gpu_suite.py: the fast CIFAR-10 recipe trained on the GPU and converted (T table, offset
#      calibration), the same with P = 4 levels, its plain-ReLU twin at T = 16..256, ablations, a wider
#      network, the 8-seed stability study, paper 000's ResNet-18 recipe for the time that is left;
#   2. benchmarks/peers.py: the engine (eager, compiled, Triton scan) against SpikingJelly's multi-step IF
#      at batch 32 and 256, T = 8, each variant profiled once (operators, CUDA kernels, host synchronisations);
# then one JSON, $OUT/device_check.json, holding both.
#
# Here, once:   copy the CIFAR-10 archives into ./shared/data/cifar10 (shared/ travels to the machine;
#               .git/info/exclude keeps it out of git) and fetch SpikingJelly's wheel into .whl/
#               (bash scripts/fetch_peer_wheels.sh)
# There:        device run, carry [".whl"], command "bash scripts/device_check.sh", timeout_s 560
# CI / CPU:     bash scripts/device_check.sh --smoke      (tiny slices on the CPU, about 40 s)
# Peers only:   SUITE=0 TOTAL=230 bash scripts/device_check.sh   (the engine timings alone, about a minute)
#
# The machine has its own python3 with PyTorch (no venv, nothing to fetch): spikeconv runs from src/.
# Every step has its own time limit so that the earlier steps' figures always come back.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/spikeconv_device}
TOTAL=${TOTAL:-450}          # seconds for the whole script
PEERS_RESERVE=${PEERS_RESERVE:-150}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
[ "$SMOKE" = 0 ] && export SPIKECONV_CACHE=${SPIKECONV_CACHE:-/tmp/spikeconv_cache}  # a bare machine
if [ -z "${SPIKECONV_DATA:-}" ] && [ -d shared/data/cifar10 ]; then export SPIKECONV_DATA=$PWD/shared/data; fi
started=$(date +%s)
log=$OUT/device_check.log
if [ "$SMOKE" = 0 ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
if [ "$SMOKE" = 1 ]; then
  device=cpu suite_args=(--smoke --budget 200)
  models=(vgg_cifar_small) batches=(2) repeats=1 variants=("IF (auto order)" SpikingJelly)
else
  device=cuda
  budget=$((TOTAL - PEERS_RESERVE - ($(date +%s) - started)))
  suite_args=(--budget "$budget")
  models=(vgg_cifar_small resnet18_cifar) batches=(32 256) repeats=10
  variants=("IF (auto order)" "IF, compiled" "IF, fused scan" SpikingJelly)
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$log"
if [ "${SUITE:-1}" = 1 ]; then
  timeout $((TOTAL - PEERS_RESERVE + 20)) "$PYTHON" benchmarks/gpu_suite.py --device "$device" "${suite_args[@]}" \
    --json "$OUT/gpu_suite.json" --out "$OUT" 2>&1 | tee -a "$log"
fi
for batch in "${batches[@]}"; do
  left=$((TOTAL - ($(date +%s) - started)))
  [ "$left" -lt 20 ] && { echo "peers at batch $batch skipped: $left s left" | tee -a "$log"; continue; }
  limit=$([ "$batch" = "${batches[0]}" ] && echo $((left * 55 / 100)) || echo $((left - 5)))
  timeout "$limit" "$PYTHON" benchmarks/peers.py --device "$device" --models "${models[@]}" --batch "$batch" \
    --repeats "$repeats" --variants "${variants[@]}" --profile \
    --json "$OUT/peers_${device}_b$batch.json" 2>&1 | tee -a "$log"
done
"$PYTHON" - "$OUT" <<'EOF' 2>&1 | tee -a "$log"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
merged = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "device_check"}
(out / "device_check.json").write_text(json.dumps(merged, indent=1))
print("wrote", out / "device_check.json", "with", sorted(merged))
EOF
echo "device_check: $(($(date +%s) - started)) s" | tee -a "$log"
