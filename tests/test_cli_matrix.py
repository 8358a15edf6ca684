"""Every command on every kind of shipped model: it works, or refuses in one line naming what fits.

Each cell runs the real command in-process on a few real test samples (``--limit``, T = 2). A new command or
a new shipped checkpoint lands in the matrix by adding it to COMMANDS or to the checkpoints folder.
"""

import pytest
from conftest import CHECKPOINTS

from spikeconv.cli.main import main

CHECKPOINT_FILES = sorted(p.name for p in CHECKPOINTS.glob("*.pt"))
DETECTORS = {name for name in CHECKPOINT_FILES if name.startswith("coco128")}

#: command -> arguments after the checkpoint (``{out}``: a fresh path in the test's directory)
COMMANDS = {
    "evaluate": ["--limit", "8", "--timesteps", "2", "--neurons", "buffered", "--max-strengths", "1",
                 "--calibration-samples", "64", "--batch-size", "8"],
    "tradeoff": ["--limit", "8", "--timesteps", "2", "--max-strengths", "1", "--batch-size", "8"],
    "analyze": ["--out", "{out}", "--limit", "8", "--timesteps", "2", "--detail-samples", "2", "--batch-size", "8",
                "--calibration-samples", "64"],
    "inspect": [],
    "export": ["--out", "{out}.nir"],
}
#: cells that refuse by design, with the words of their one-line message
REFUSED = {("export", name): "'upsample' (Upsample) has no NIR mapping" for name in DETECTORS}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("checkpoint", CHECKPOINT_FILES)
def test_every_command_on_every_shipped_checkpoint(command, checkpoint, tmp_path, capsys):
    args = [a.format(out=tmp_path / "out") for a in COMMANDS[command]]
    status = main([command, str(CHECKPOINTS / checkpoint), *args])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("spikeconv: error:")]
    if (command, checkpoint) in REFUSED:
        assert status == 2 and len(errors) == 1 and REFUSED[command, checkpoint] in errors[0], captured.err
    else:
        assert status == 0, captured.err[-2000:]
        assert not errors and captured.out.strip()
