"""Spike-camera I/O on the real recordings: .dat by windows, exact round trips, npz layouts, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from spikeconv.data.spikecam import SpikeStream, load_spike_npz, read_dat, write_dat
from spikeconv.errors import DataError


@pytest.fixture(scope="module")
def spikecam(data_available):
    from spikeconv.data import data_root

    return data_root() / "spikecam"


def test_the_dat_copy_of_the_real_recording_equals_its_npz(spikecam):
    dat = read_dat(spikecam / "real" / "spikingsim_real_400x250.dat", 250, 400)
    npz = load_spike_npz(spikecam / "real" / "spikingsim_real_250x400x500.npz")
    assert dat.shape == npz.shape == (500, 250, 400)
    assert np.array_equal(dat, npz)
    assert 0.2 < dat.mean() < 0.25  # measured 0.220
    helicopter = load_spike_npz(spikecam / "real" / "uhsr_helicopter_200x250x250.npz")
    assert helicopter.shape == (200, 250, 250) and helicopter.dtype == np.uint8


def test_reds_streams_decode_upright_and_match_their_ground_truth(spikecam):
    from torchvision.io import ImageReadMode, decode_image

    streams = sorted((spikecam / "reds" / "spike").glob("*.dat"))
    assert len(streams) == 5
    for path in streams:
        stream = SpikeStream(path, 250, 400)
        assert len(stream) == 301
        gt_path = spikecam / "reds" / "gt" / (path.stem + ".png")
        gt = decode_image(torch.from_numpy(np.fromfile(gt_path, dtype=np.uint8)), mode=ImageReadMode.GRAY)[0]
        window = stream.window(130, 41).mean(0)  # 41 frames around the key frame 150
        r = np.corrcoef(window.ravel(), gt.numpy().ravel().astype(float))[0, 1]
        assert r > 0.9, (path.name, r)  # upside down or bit-reversed decoding correlates far worse
        flipped = np.corrcoef(window[::-1].ravel(), gt.numpy().ravel().astype(float))[0, 1]
        assert flipped < r - 0.3


def test_windows_stream_without_reading_the_whole_file(spikecam):
    stream = SpikeStream(spikecam / "reds" / "spike" / "test__200_part1_key_id151.dat", 250, 400)
    windows = list(stream.windows(100, 50))
    assert len(windows) == 5 and all(w.shape == (100, 250, 400) for w in windows)
    assert np.array_equal(windows[1][:50], windows[0][50:])


def test_write_then_read_is_exact(tmp_path):
    gen = np.random.default_rng(0)
    frames = (gen.random((7, 16, 24)) < 0.3).astype(np.uint8)
    path = write_dat(tmp_path / "s.dat", frames)
    assert path.stat().st_size == 7 * 16 * 24 // 8
    assert np.array_equal(read_dat(path, 16, 24), frames)
    with pytest.raises(DataError, match="0 and 1"):
        write_dat(tmp_path / "t.dat", frames * 2)


def test_bad_files_are_named_with_the_expected_and_found_sizes(tmp_path):
    path = tmp_path / "cut.dat"
    path.write_bytes(bytes(12500 * 3 + 100))  # three 400x250 frames and a piece of a fourth
    with pytest.raises(DataError, match=r"cut.dat holds 37600 bytes, not a whole number of 250 x 400 frames of 12500 "
                                        r"bytes \(3.01 frames\)"):
        SpikeStream(path, 250, 400)
    with pytest.raises(DataError, match="divisible by 8"):
        SpikeStream(path, 5, 5)
    with pytest.raises(DataError, match="does not exist"):
        SpikeStream(tmp_path / "missing.dat", 250, 400)
    stream = SpikeStream(write_dat(tmp_path / "ok.dat", np.zeros((2, 8, 8), np.uint8)), 8, 8)
    with pytest.raises(DataError, match="frames 1..2 asked, the stream has 2"):
        stream.window(1, 2)
    np.savez(tmp_path / "other.npz", images=np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=r"holds the arrays \['images'\]; none is a known spike array"):
        load_spike_npz(tmp_path / "other.npz")
    Path(tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_spike_npz(tmp_path / "text.npz")


def test_camera_simulator_is_the_if_neuron_and_reproduces_the_reds_streams(spikecam):
    from torchvision.io import ImageReadMode, decode_image

    from spikeconv.data.camera import simulate_camera

    # exact: constant light I over T steps fires floor(I T / theta + V(0) / theta) times, V(0) in [0, theta)
    counts = simulate_camera(torch.full((64, 64), 0.33), steps=20, threshold=1.0).sum(0)  # 6.6 + V(0)
    assert set(counts.unique().tolist()) == {6, 7} and 6.5 < counts.float().mean() < 6.7
    again = simulate_camera(torch.rand(8, 8, generator=torch.Generator().manual_seed(1)), 30, noise=0.1, seed=5)
    assert torch.equal(again, simulate_camera(torch.rand(8, 8, generator=torch.Generator().manual_seed(1)), 30,
                                              noise=0.1, seed=5))
    dark = simulate_camera(torch.zeros(16, 16), 40, threshold=1.0, dark_current=0.1).float().mean()
    assert 0.09 < dark < 0.11
    for path in sorted((spikecam / "reds" / "spike").glob("*.dat")):
        real = read_dat(path, 250, 400)[130:171].mean(0)
        gt_path = spikecam / "reds" / "gt" / (path.stem + ".png")
        gt = decode_image(torch.from_numpy(np.fromfile(gt_path, dtype=np.uint8)), mode=ImageReadMode.GRAY)[0] / 255
        theta = float(gt.mean()) / float(real.mean())  # the threshold that matches the stream's mean rate
        assert 1.6 < theta < 1.75  # measured 1.67 on all five streams
        simulated = simulate_camera(gt, steps=41, threshold=1.67).float().mean(0).numpy()
        assert np.corrcoef(simulated.ravel(), real.ravel())[0, 1] > 0.9  # measured 0.93-0.98


def test_tfp_and_tfi_reconstruct_the_reds_key_frames(spikecam):
    from torchvision.io import ImageReadMode, decode_image

    from spikeconv.data.reconstruct import quality, tfi, tfp

    scores = []
    for path in sorted((spikecam / "reds" / "spike").glob("*.dat")):
        spikes = torch.from_numpy(read_dat(path, 250, 400))
        gt_path = spikecam / "reds" / "gt" / (path.stem + ".png")
        gt = decode_image(torch.from_numpy(np.fromfile(gt_path, dtype=np.uint8)), mode=ImageReadMode.GRAY)[0] / 255
        scores.append((quality(1.67 * tfp(spikes, 150), gt), quality(1.67 * tfi(spikes, 150), gt)))
        noise = quality(torch.rand(250, 400, generator=torch.Generator().manual_seed(0)), gt)
        assert scores[-1][0]["psnr"] > noise["psnr"] + 10
    # measured (benchmarks/reconstruction.py): TFP 23.50-31.59 dB, SSIM 0.63-0.78; TFI 20.20-26.27 dB, 0.39-0.85
    assert all(t["psnr"] > 23 and t["ssim"] > 0.6 and i["psnr"] > 20 and i["ssim"] > 0.35 for t, i in scores)
    assert abs(np.mean([t["psnr"] for t, _ in scores]) - 26.25) < 0.05


def test_camera_encoder_is_chunk_independent_and_its_mean_approaches_the_image():
    from spikeconv.data.camera import CameraEncoder

    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    encoder = CameraEncoder(threshold=1.0)
    assert torch.equal(encoder(x, 0, 6), torch.cat([encoder(x, 0, 2), encoder(x, 2, 4)]))
    assert float((encoder(x, 0, 200).mean(0) - x).abs().max()) <= 1 / 200 + 1e-6  # one spike of charge at most
    binary = CameraEncoder(threshold=1.0, window=4)(x, 0, 50)  # up to 4 spikes a window, kept as one
    counts = CameraEncoder(threshold=1.0, window=4, mode="count")(x, 0, 50)  # the count, times theta / window
    assert set(binary.unique().tolist()) <= {0.0, 1.0} and float(counts.max()) <= 1.0 + 1e-6
    assert float((counts.mean(0) - x).abs().max()) < 0.02
    fires = 1 - (1 - x.clamp(max=1)) ** 4  # a window fires unless all four frames miss (about, for rates x)
    assert bool((binary.mean(0) >= counts.mean(0) - 1e-6).all()) and float((binary.mean(0) - fires).abs().mean()) < 0.2
    with pytest.raises(DataError, match=r"values in \[0, 1\]"):
        encoder(x * 3, 0, 1)


def test_reds_streams_come_with_their_ground_truth():
    from spikeconv.data.spikecam import reds_streams

    streams = list(reds_streams())
    assert len(streams) == 5  # six ground-truth images, one without a stream
    name, spikes, image = streams[0]
    assert name == "test__200_part1_key_id151" and spikes.shape == (301, 250, 400) and image.shape == (250, 400)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
