#!/usr/bin/env bash
# Download the benchmark peers (and the modules they import that the GPU machine's image lacks) as wheels
# into .whl/ (git-ignored), for scripts/device_check.sh on a lent GPU machine, which cannot fetch anything.
# Versions: the ones benchmarks/peers.py was measured with on the CPU (docs/simulation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  spikingjelly==2.0.0 snntorch==1.0.0 sinabs==3.1.3 nir==1.0.4 nirtorch==2.0.2 pbr==7.1.3 loguru==0.7.3 tqdm==4.70.1
# norse 1.1.0 ships only as a source archive: build its (pure-Python) wheel here
python3 -m pip wheel -q --no-deps norse==1.1.0 -w .whl
ls .whl
