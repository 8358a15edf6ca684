"""Event-camera readers on the four shared files, event frames, stream clips for the detector, and
``spikeconv stream`` end to end on a real spike-camera recording."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import CHECKPOINTS

from spikeconv.data.events import EVENT_DTYPE, EventStream, event_frames, read_events
from spikeconv.data.paths import data_root
from spikeconv.errors import DataError
from spikeconv.models import build_model
from spikeconv.quant import QReLU, calibrate_bounds_
from spikeconv.tasks.checkpoint import save_checkpoint
from spikeconv.tasks.streams import camera_clip, clip_starts, fit_to

EVENTS = data_root() / "events"
SPIKECAM = data_root() / "spikecam"


@pytest.mark.parametrize("name, count, sensor, on", [
    ("davis346_driving.hdf5", 169474, (260, 346), 88636), ("sample.aedat4", 111954, (240, 320), 55023),
    ("sample_nmnist.bin", 4325, (34, 34), 2145), ("sample_ncars.dat", 2009, (42, 78), 1350),
])
def test_every_shared_event_file_reads_with_its_counts_and_sensor(name, count, sensor, on):
    stream = read_events(EVENTS / name)
    assert len(stream.events) == count and (stream.height, stream.width) == sensor
    assert int(stream.events["p"].sum()) == on and bool((np.diff(stream.events["t"]) >= 0).all())
    frames = event_frames(stream, 4)
    assert frames.shape == (4, 2, *sensor) and int(frames.sum()) == count  # every event in a bin
    binary = event_frames(stream, 4, mode="binary")
    assert set(binary.unique().tolist()) <= {0.0, 1.0} and binary.sum() <= frames.sum()


def test_bad_event_files_are_refused_naming_the_file_and_sizes(tmp_path):
    body = b"% Data file\n% Version 2\n" + bytes([0, 8]) + b"\x00" * 13
    (tmp_path / "cut.dat").write_bytes(body)
    with pytest.raises(DataError, match=r"cut.dat: expected 8-byte events .* 13 bytes \(5 left over\)"):
        read_events(tmp_path / "cut.dat")
    (tmp_path / "plain.dat").write_bytes(b"\x01" * 16)
    with pytest.raises(DataError, match="no '%' header: not a Prophesee DAT file"):
        read_events(tmp_path / "plain.dat")
    with h5py.File(tmp_path / "other.hdf5", "w") as handle:
        handle["events"] = np.zeros(3, dtype=[("t", "<i8"), ("x", "<i2")])
    with pytest.raises(DataError, match=r"lacks the field\(s\) \['polarity', 'timestamp', 'y'\]"):
        read_events(tmp_path / "other.hdf5")
    (tmp_path / "x.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(DataError, match="7 bytes, not a whole number of 5-byte"):
        read_events(tmp_path / "x.bin")
    with pytest.raises(DataError, match="unknown event format '.txt'"):
        (tmp_path / "e.txt").write_text("1")
        read_events(tmp_path / "e.txt")
    with pytest.raises(DataError, match="outside the 10x10 sensor"):
        read_events(EVENTS / "sample_nmnist.bin", sensor=(10, 10))


def test_event_frames_bin_by_time_and_polarity():
    ev = np.zeros(4, dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [0, 1, 50, 100], [0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1]
    frames = event_frames(EventStream(ev, 1, 2, "t"), 2)
    # span 101 us, 2 bins: t = 0, 1, 50 in bin 0 (50 * 2 // 101 = 0), t = 100 in bin 1
    assert frames[0, 1, 0].tolist() == [2.0, 0.0] and frames[0, 0, 0].tolist() == [0.0, 1.0]
    assert frames[1, 1, 0].tolist() == [0.0, 1.0] and float(frames.sum()) == 4
    assert event_frames(EventStream(ev, 1, 2, "t"), 2, mode="binary")[0, 1, 0].tolist() == [1.0, 0.0]


def test_clips_steps_and_letterbox_of_spike_frames():
    frames = torch.zeros(20, 4, 6, dtype=torch.uint8)
    frames[0:4, 1, 2] = torch.tensor([1, 0, 1, 0], dtype=torch.uint8)
    binary = camera_clip(frames, timesteps=2, window=4, mode="binary")
    count = camera_clip(frames, timesteps=2, window=4, mode="count")
    assert binary.steps.shape == (2, 1, 4, 6) and binary.steps[0, 0, 1, 2] == 1 and count.steps[0, 0, 1, 2] == 0.5
    assert clip_starts(20, 8) == [0, 8] and clip_starts(100, 10, clips=2) == [0, 90]
    with pytest.raises(ValueError, match="the stream has 5 frames"):
        clip_starts(5, 8)
    fitted, scale, (left, top) = fit_to(binary.steps, 12)
    assert fitted.shape == (2, 1, 12, 12) and set(fitted.unique().tolist()) <= {0.0, 1.0}
    assert (scale, left, top) == (2.0, 0, 2) and fitted[0, 0, 1 * 2 + top, 2 * 2 + left] == 1


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    torch.manual_seed(0)
    kwargs = {"input_size": 64, "width": 0.25}
    model = build_model("yolov3_tiny", activation=lambda: QReLU(levels=4), **kwargs)
    calibrate_bounds_(model, [torch.rand(2, 3, 64, 64)], p=99.0)
    spec = {"model": "yolov3_tiny", "model_kwargs": kwargs, "activation": {"kind": "qrelu", "levels": 4},
            "dataset": "coco128"}
    return save_checkpoint(tmp_path_factory.mktemp("s") / "det.pt", model.eval(), spec)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeconv", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_stream_command_writes_a_strip_and_a_gif_for_a_real_recording_and_an_event_file(tiny_detector, tmp_path):
    for source in (SPIKECAM / "real" / "uhsr_helicopter_200x250x250.npz", EVENTS / "sample_nmnist.bin"):
        out = tmp_path / source.stem
        result = run_cli("stream", str(source), "--checkpoint", str(tiny_detector), "--out", str(out),
                         "--timesteps", "2", "--window", "2", "--clips", "3", "--min-score", "0.9")
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("clip at") == 3
        assert (out / "strip.png").stat().st_size > 1000 and (out / "stream.gif").stat().st_size > 1000


def test_stream_command_refuses_bad_inputs_in_one_line(tiny_detector, tmp_path):
    classifier = CHECKPOINTS / "mnist_lenet_qrelu.pt"
    cases = [(["stream", str(SPIKECAM / "real" / "spikingsim_real_400x250.dat"), "--checkpoint", str(tiny_detector),
               "--size", "250", "401"], "not a whole number of bytes"),
             (["stream", str(SPIKECAM / "real" / "spikingsim_real_400x250.dat"), "--checkpoint", str(tiny_detector),
               "--size", "240", "400"], "frames of 12000 bytes")]
    cases.append((["stream", str(SPIKECAM / "real" / "spikingsim_real_400x250.dat"), "--checkpoint",
                   str(classifier)], "classifier; 'spikeconv stream' runs a detector"))
    for args, message in cases:
        result = run_cli(*args, "--out", str(tmp_path / "o"))
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_stream_command_runs_an_image_folder_as_one_video_and_refuses_frames_of_two_sizes(tiny_detector, tmp_path):
    from torchvision.io import write_png

    frames = tmp_path / "video"
    frames.mkdir()
    for k in range(3):
        write_png(torch.full((3, 40, 60), 40 * k, dtype=torch.uint8), str(frames / f"f{k}.png"))
    result = run_cli("stream", str(frames), "--video", "--checkpoint", str(tiny_detector), "--out", str(tmp_path / "o"),
                     "--timesteps", "2", "--window", "2", "--min-score", "0.9")
    assert result.returncode == 0, result.stderr
    assert "video frames seen by a simulated spike camera; 3 clips" in result.stderr
    write_png(torch.zeros((3, 20, 20), dtype=torch.uint8), str(frames / "f9.png"))
    refused = run_cli("stream", str(frames), "--video", "--checkpoint", str(tiny_detector), "--out", str(tmp_path / "p"))
    assert refused.returncode == 2 and "differ in size" in refused.stderr
