"""keep_freed_memory: inside it a large block freed and allocated again costs no new page faults; outside
(and after the outermost of nested blocks) glibc maps it afresh; SPIKECONV_KEEP_MEMORY=0 turns it off."""

import resource

import pytest

from spikeconv.tasks.allocator import keep_freed_memory, keeps_memory, on_glibc

SIZE = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB): a fresh mapping per allocation by default
PAGES = SIZE // 4096

needs_glibc = pytest.mark.skipif(not on_glibc(), reason="glibc's malloc only")


def _faults_per_allocation(rounds: int = 3) -> float:
    """Minor page faults per allocation of a SIZE block whose every page is written, then freed."""
    block = bytearray(SIZE)  # the first allocation may fault in any setting
    block[::4096] = bytes(PAGES)
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        block = bytearray(SIZE)
        block[::4096] = bytes(PAGES)
        del block
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


@needs_glibc
def test_freed_blocks_are_reused_inside_and_mapped_afresh_outside(monkeypatch):
    monkeypatch.delenv("SPIKECONV_KEEP_MEMORY", raising=False)
    assert _faults_per_allocation() > 0.9 * PAGES
    with keep_freed_memory() as kept:
        assert kept
        assert _faults_per_allocation() < 0.05 * PAGES
        with keep_freed_memory():
            pass
        assert _faults_per_allocation() < 0.05 * PAGES  # the inner block's end keeps the outer's setting
    assert _faults_per_allocation() > 0.9 * PAGES  # glibc's defaults again


@needs_glibc
def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setenv("SPIKECONV_KEEP_MEMORY", "0")
    assert not keeps_memory()
    with keep_freed_memory() as kept:
        assert not kept
        assert _faults_per_allocation() > 0.9 * PAGES
