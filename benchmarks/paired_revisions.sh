#!/usr/bin/env bash
# peers.py of two revisions of spikeconv, paired: round after round, the older revision's run then this
# tree's, on the same trained checkpoints and the same CPU, so that the ratios of both come from the same
# stretch of machine time (these 2-core machines drift by 10-20% over minutes).
#
#   bash benchmarks/paired_revisions.sh OLD_REV OUT_DIR ROUNDS CHECKPOINT... [-- PEERS_OPTIONS...]
#
# Writes OUT_DIR/{before,after}_<round>.json (peers.py --json) and prints each run's table. Needs the bench
# extra (the peers). The old revision runs from a git worktree in OUT_DIR/worktree with its own source on
# PYTHONPATH; the checkpoints must load in both revisions.
set -euo pipefail
old=$1 out=$2 rounds=$3
shift 3
models=()
while [[ $# -gt 0 && $1 != "--" ]]; do models+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
here=$(git rev-parse --show-toplevel)
python=${PYTHON:-$here/.venv/bin/python}
mkdir -p "$out"
[[ -d $out/worktree ]] || git -C "$here" worktree add --detach "$out/worktree" "$old" >/dev/null
for round in $(seq 1 "$rounds"); do
  echo "== round $round: $old"
  (cd "$out/worktree" && PYTHONPATH="$out/worktree/src:$out/worktree/benchmarks" \
    "$python" benchmarks/peers.py --models "${models[@]}" "$@" --json "$out/before_$round.json")
  echo "== round $round: this tree"
  (cd "$here" && "$python" benchmarks/peers.py --models "${models[@]}" "$@" --json "$out/after_$round.json")
done
