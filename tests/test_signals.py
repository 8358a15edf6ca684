"""Signals during training and during writes: an interrupted command leaves no half-written file, and an
interrupted training run resumes (part of the bad-input campaign, docs/reliability.md)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from campaign_workspace import config_text


def _wait_for(predicate, process, timeout=240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigint_during_training_leaves_a_resumable_state_and_no_checkpoint(tmp_path, data_available):
    config = tmp_path / "run.toml"
    config.write_text(config_text(output="model.pt", data={"train_limit": 1024}, train={"epochs": 40}))
    state = tmp_path / "runs" / "model" / "state.pt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "spikeconv", "run", str(config)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(state.exists, process), process.communicate()[1][-2000:]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("spikeconv: interrupted")
    assert not (tmp_path / "model.pt").exists()
    assert not list(tmp_path.rglob("*.tmp"))
    epochs_done = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= epochs_done < 40
    # the same command resumes from the state instead of starting over (2 more epochs only)
    resumed = subprocess.run([sys.executable, "-m", "spikeconv", "run", str(config), "--epochs", str(epochs_done + 2)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 2 and "other settings" in resumed.stderr  # --epochs changed the settings
    config.write_text(config_text(output="model.pt", data={"train_limit": 1024}, train={"epochs": epochs_done + 2}))
    resumed = subprocess.run([sys.executable, "-m", "spikeconv", "run", str(config)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {state}" in resumed.stderr
    assert resumed.stderr.count("epoch ") >= 2 and f"epoch {epochs_done + 2}:" in resumed.stderr
    assert f"epoch {epochs_done}:" not in resumed.stderr
    assert (tmp_path / "model.pt").exists()


def test_sigkill_during_an_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old results")
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from spikeconv.atomic import atomic_write

        def slow(tmp):
            Path(tmp).write_text("half")
            Path({str(tmp_path / 'started')!r}).write_text("")
            time.sleep(60)
            Path(tmp).write_text("half and the rest")

        atomic_write({str(target)!r}, slow)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    assert _wait_for((tmp_path / "started").exists, process, timeout=60)
    process.kill()
    process.wait(timeout=30)
    assert target.read_text() == "old results"
