"""keep_freed_memory: inside it a large block freed and allocated again costs no new page faults; outside
(and after the outermost of nested blocks) glibc maps it afresh; SPIKECONV_KEEP_MEMORY=0 turns it off.

Each scenario runs in a fresh interpreter: in the test process, free chunks that earlier tests left in the
heap (untrimmable below live objects) may serve a large request without a new mapping whatever the settings.
"""

import json
import os
import subprocess
import sys

import pytest

from spikeconv.tasks.allocator import on_glibc

SIZE = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB): a fresh mapping per allocation by default
PAGES = SIZE // 4096

needs_glibc = pytest.mark.skipif(not on_glibc(), reason="glibc's malloc only")

_PRELUDE = f"""
import json, resource
from spikeconv.tasks.allocator import keep_freed_memory, keeps_memory

def faults(rounds=3):
    block = bytearray({SIZE})  # the first allocation may fault in any setting
    block[::4096] = bytes({PAGES})
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        block = bytearray({SIZE})
        block[::4096] = bytes({PAGES})
        del block
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds
"""


def _run(body: str, **env: str) -> dict:
    """Minor page faults per allocation of a written, then freed SIZE block, measured in a fresh interpreter."""
    environ = {k: v for k, v in os.environ.items() if k != "SPIKECONV_KEEP_MEMORY"} | env
    done = subprocess.run([sys.executable, "-c", _PRELUDE + body], env=environ, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_glibc
def test_freed_blocks_are_reused_inside_and_mapped_afresh_outside():
    seen = _run("""
out = {"before": faults()}
with keep_freed_memory() as kept:
    out["kept"], out["inside"] = kept, faults()
    with keep_freed_memory():
        pass
    out["after_inner"] = faults()
out["after"] = faults()
print(json.dumps(out))
""")
    assert seen["kept"] is True
    assert seen["before"] > 0.9 * PAGES
    assert seen["inside"] < 0.05 * PAGES
    assert seen["after_inner"] < 0.05 * PAGES  # the inner block's end keeps the outer's setting
    assert seen["after"] > 0.9 * PAGES  # glibc's defaults again


@needs_glibc
def test_the_environment_turns_it_off():
    seen = _run("""
with keep_freed_memory() as kept:
    print(json.dumps({"keeps": keeps_memory(), "kept": kept, "inside": faults()}))
""", SPIKECONV_KEEP_MEMORY="0")
    assert seen["keeps"] is False and seen["kept"] is False
    assert seen["inside"] > 0.9 * PAGES
