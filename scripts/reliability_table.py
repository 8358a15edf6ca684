"""Run the bad-input campaign (tests/campaign_cases.py) and write its table: input, message, exit code, outcome.

    python scripts/reliability_table.py [--out docs/reliability.md] [--json F]

Each case runs in a fresh copy of the campaign's files; the totals count clear refusals, unclear ones,
tracebacks (including the CLI's exit 3 for an internal error), silent runs and clobbered files.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from campaign_cases import all_cases, run_case  # noqa: E402
from campaign_workspace import build_workspace  # noqa: E402

HEADER = """# Reliability: the bad-input campaign

Every input below is wrong in one place; each is run by `tests/test_reliability.py` (the test fails unless the
outcome is *clear*) and this table is written by `python scripts/reliability_table.py`. Outcomes: **clear**
(CLI: one `spikeconv: error:` line naming the cause, exit 2; API: a `ValueError`/`TypeError` naming it),
**unclear** (refused, cause not named), **traceback** (an unexpected exception, or the CLI's exit 3 for an
internal error), **silent** (ran and exited 0), **clobbered** (a file that existed was changed).

Mechanisms behind the outcomes: outputs are checked against inputs and folders before any work
(`cli/report.check_outputs`); a run config is checked key by key with the closest valid name
(`cli/config`) and against the checkpoint it would reuse (`cli/reuse.check_reuse`); a training state is
resumed only when written by the same settings (`cli/reuse.prepare_state`); checkpoints load with
`weights_only=True` and are checked for finite weights (`tasks/checkpoint`); `convert` and `simulate` check
input shape, dtype, batch and finiteness once at entry; every CLI error path prints one line and exits 2
(argparse's too), an internal error one line and exit 3 (`SPIKECONV_DEBUG=1` shows its traceback); files
are written through a temporary file and a rename (`atomic.atomic_write`), so an interrupted command
(SIGINT, SIGKILL: `tests/test_signals.py`) never leaves a half-written file.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    parser.add_argument("--json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(all_cases()):
            ws = build_workspace(Path(tmp) / f"case{i}") if i == 0 or rows[-1]["status"] != "clear" else ws
            os.chdir(ws.root)
            outcome = run_case(case, ws)
            rows.append({"group": case.group, "input": case.label, "message": outcome.message.replace(str(ws.root), "WS"),
                         "exit": outcome.code, "status": outcome.status})
            print(f"{outcome.status:<10} {case.name}: {outcome.message[:100]}", flush=True)
    os.chdir(ROOT)
    totals = collections.Counter(row["status"] for row in rows)
    summary = (f"**{len(rows)} inputs tried: {totals['clear']} clear, {totals['unclear']} unclear, "
               f"{totals['traceback']} tracebacks, {totals['silent']} silent, {totals['clobbered']} clobbered.**")
    lines = [HEADER, summary, "", "| where | input | message | exit | outcome |", "|---|---|---|---|---|"]
    for row in rows:
        message = row["message"].replace("|", "\\|")
        exit_code = "" if row["exit"] is None else row["exit"]
        lines.append(f"| {row['group']} | {row['input'].replace('|', '/')} | {message} | {exit_code} | {row['status']} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"totals": dict(totals), "rows": rows}, indent=1))
    print(summary)


if __name__ == "__main__":
    main()
