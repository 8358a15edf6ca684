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


def _default_sigint() -> None:
    """In the child: SIGINT's default action, so Python turns it into KeyboardInterrupt even when these tests run
    in a background job (a non-interactive shell starts those with SIGINT ignored, which children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert _wait_for(state.exists, process), process.communicate()[1][-2000:]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    # (a progress bar torn down by the signal may print its own note after ours)
    assert any(line.startswith("spikeconv: interrupted") for line in err.splitlines())
    assert not (tmp_path / "model.pt").exists()
    assert not list(tmp_path.rglob("*.tmp"))
    epochs_done = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= epochs_done < 40
    # the same command resumes from the state: its first epoch is the next one, not epoch 1
    process = subprocess.Popen([sys.executable, "-m", "spikeconv", "run", str(config)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert _wait_for(lambda: torch.load(state, weights_only=True)["epoch"] > epochs_done, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "resuming from runs/model/state.pt" in err
    assert f"epoch {epochs_done + 1}:" in err and "epoch 1:" not in err
    assert len(torch.load(state, weights_only=True)["history"]) == torch.load(state, weights_only=True)["epoch"]
    # other settings are not resumed silently
    changed = subprocess.run([sys.executable, "-m", "spikeconv", "run", str(config), "--epochs", "41"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert changed.returncode == 2 and "other settings" in changed.stderr
    assert not (tmp_path / "model.pt").exists()
