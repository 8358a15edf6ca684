"""``spikeconv stream``: a converted detector over a spike-camera recording, an event file or an image folder,
written as a PNG strip and a GIF of the clips with their boxes."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data.annotations import IMAGE_SUFFIXES
from ..errors import SpikeconvError
from .help import add_calibration_options, calibration_options, positive_float, positive_int, unit_fraction
from .report import _progress, _say

EVENT_SUFFIXES = (".hdf5", ".h5", ".aedat4", ".bin")


def _is_prophesee(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(1) == b"%"


def _clips(args: argparse.Namespace):
    """``(clips, gain, kind)`` of the input, recognised by what it is."""
    from ..data.spikecam import SpikeStream, load_spike_npz
    from ..tasks.streams import camera_clip, clip_starts, exposure_gain

    source, T = Path(args.input), args.timesteps
    length = T * args.window
    if source.is_dir():
        kind = "video frames" if args.video else "image folder"
        return _image_clips(source, args), 1.0, f"{kind} seen by a simulated spike camera"
    if not source.is_file():
        raise SpikeconvError(f"{source} does not exist; give a spike-camera .dat or .npz, an event file or an image folder")
    if source.suffix.lower() in EVENT_SUFFIXES or (source.suffix.lower() == ".dat" and _is_prophesee(source)):
        return _event_clips(source, args)
    if source.suffix.lower() == ".dat":
        stream = SpikeStream(source, *args.size)
        starts = clip_starts(len(stream), length, args.clips)
        clips = [camera_clip(torch.from_numpy(stream.window(s, length)), T, args.window, args.mode, s) for s in starts]
        kind = f"spike-camera .dat, {len(stream)} frames of {args.size[0]}x{args.size[1]}"
    elif source.suffix.lower() == ".npz":
        frames = torch.from_numpy(load_spike_npz(source))
        clips = [camera_clip(frames[s:s + length], T, args.window, args.mode, s)
                 for s in clip_starts(frames.shape[0], length, args.clips)]
        kind = f"spike-camera recording, {frames.shape[0]} frames of {frames.shape[1]}x{frames.shape[2]}"
    else:
        raise SpikeconvError(f"{source}: not a stream spikeconv reads (.dat, .npz, {', '.join(EVENT_SUFFIXES)} or an "
                             "image folder)")
    gain = args.gain or exposure_gain(torch.cat([c.steps for c in clips]))
    return clips, gain, kind


def _event_clips(source: Path, args: argparse.Namespace):
    from ..data.events import event_frames, read_events
    from ..tasks.streams import Clip, exposure_gain

    stream = read_events(source)
    count = args.clips or 6
    frames = event_frames(stream, count * args.timesteps, mode="count").sum(1, keepdim=True)
    if args.mode == "binary":
        frames = (frames > 0).float()
    clips = [Clip(frames[k * args.timesteps:(k + 1) * args.timesteps], k * args.timesteps) for k in range(count)]
    kind = (f"event stream, {len(stream.events)} events of a {stream.height}x{stream.width} sensor over "
            f"{stream.duration_us / 1e3:.1f} ms, {count * args.timesteps} time bins")
    return clips, args.gain or exposure_gain(frames), kind


def _image_clips(folder: Path, args: argparse.Namespace):
    """Each image seen by a simulated camera for one clip; with ``--video`` the sorted images are the frames of
    one video, each shown for a clip's ``T * window`` camera frames to one camera whose pixels keep their charge
    from frame to frame."""
    from ..data.camera import simulate_camera
    from ..data.detection import read_image
    from ..tasks.streams import camera_clip

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:args.clips or 6]
    if not files:
        raise SpikeconvError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    length = args.timesteps * args.window
    greys = [read_image(path).float().mean(0) / 255 for path in files]
    if args.video:
        size = greys[0].shape
        if any(g.shape != size for g in greys):
            raise SpikeconvError(f"--video: the frames in {folder} differ in size (first {tuple(size)}); a video's "
                                 "frames share one size")
        spikes = simulate_camera(torch.stack(greys).repeat_interleave(length, 0), threshold=1.0)
        return [camera_clip(spikes[k * length:(k + 1) * length], args.timesteps, args.window, args.mode, k)
                for k in range(len(greys))]
    return [camera_clip(simulate_camera(grey, length, threshold=1.0, seed=k), args.timesteps, args.window, args.mode, k)
            for k, grey in enumerate(greys)]


def cmd_stream(args: argparse.Namespace) -> int:
    from ..analysis.figures import stream_figures
    from ..convert import ConversionConfig, convert
    from ..tasks.checkpoint import load_model
    from ..tasks.streams import detect_clips
    from ..tasks.samples import is_detection
    from .detection import calibration_for

    model, payload = load_model(args.checkpoint)
    if not is_detection(payload):
        raise SpikeconvError(f"{args.checkpoint} is a {payload.get('dataset')} classifier; 'spikeconv stream' runs a "
                             "detector (e.g. checkpoints/coco128_yolov3_tiny_qrelu.pt)")
    if args.timesteps < 1 or args.window < 1:
        raise SpikeconvError("--timesteps and --window must be positive")
    clips, gain, kind = _clips(args)
    _say(f"{args.input}: {kind}; {len(clips)} clips of T={args.timesteps} steps x {args.window} frame(s), "
         f"{args.mode} frames, gain {gain:.3g}")
    size = int(model.input_size)
    base, samples = calibration_options(args)
    snn = convert(model, torch.zeros(2, 3, size, size),
                  ConversionConfig(signed=True, max_strength=args.max_strength, percentile=base.percentile),
                  calibration=calibration_for(payload, args.data_root, samples))  # plain-ReLU detectors: from training images
    found = detect_clips(snn, model, list(_progress()(clips, desc="clips")), gain, min_score=args.min_score)
    names = None
    if payload["dataset"] == "coco128":
        from ..data.annotations import read_class_names
        from ..data.paths import data_root

        names = read_class_names(data_root(args.data_root) / "coco128" / "classes.yaml")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    previews = [clip.steps.mean(0)[0] for clip in clips]
    strip, gif = stream_figures(previews, found, names, [c.start for c in clips], out, title=Path(args.input).name)
    for clip, boxes in zip(clips, found):
        listing = ", ".join(f"{names[int(label)] if names else int(label)} {float(score):.2f}"
                            for label, score in zip(boxes["labels"], boxes["scores"])) or "no boxes"
        print(f"clip at {clip.start}: {listing}")
    print(f"wrote {strip} and {gif}")
    return 0


def add_parser(sub) -> None:
    st = sub.add_parser("stream", help="run a converted detector over a spike-camera/event stream or image folder")
    st.add_argument("input", help="spike-camera .dat or .npz, event file (.hdf5, .aedat4, .bin, Prophesee .dat), "
                                  "or an image folder (stills, or with --video the frames of a video, seen by a "
                                  "simulated spike camera)")
    st.add_argument("--checkpoint", required=True, help="a detector checkpoint")
    st.add_argument("--out", required=True, help="directory for strip.png and stream.gif")
    st.add_argument("--timesteps", type=positive_int, default=8, help="SNN steps per clip (default 8)")
    st.add_argument("--window", type=positive_int, default=4, help="camera frames per SNN step (default 4)")
    st.add_argument("--mode", default="count", choices=["binary", "count"],
                    help="a step's input: binary frame of its window (paper 000 section B) or mean count (default)")
    st.add_argument("--clips", type=positive_int, default=6, help="clips spread over the stream (default 6)")
    st.add_argument("--size", type=positive_int, nargs=2, default=[250, 400], metavar=("H", "W"),
                    help="camera size of a .dat stream (default 250 400)")
    st.add_argument("--gain", type=positive_float, help="input per spike (default: mean input 0.45)")
    st.add_argument("--video", action="store_true",
                    help="an image folder holds the frames of one video (one camera throughout), not separate stills")
    st.add_argument("--max-strength", type=int, default=1)
    st.add_argument("--min-score", type=unit_fraction, default=0.25)
    st.add_argument("--data-root")
    add_calibration_options(st)
    st.set_defaults(func=cmd_stream, needs=("matplotlib",))
