"""The bad-input campaign: every input a user gets wrong, through the command line and the Python API, with
what a clear refusal must name. ``tests/test_reliability.py`` runs each case; ``scripts/reliability_table.py``
writes the table in docs/reliability.md from the same cases.

Each case is classified: *clear* (the CLI exits 2 with one ``spikeconv: error:`` line naming the cause, or
the API raises a ``ValueError``/``TypeError`` naming it), *unclear* (refused, but the message does not name
the cause), *traceback* (any other exception, or the CLI's exit 3 for an internal error), *silent* (it ran
and exited 0) or *clobbered* (a file that existed before was changed or removed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from campaign_api import API_ROWS
from campaign_workspace import Workspace, config_text


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` (CLI) or ``call`` (API) built from the workspace, and the cause its error names."""

    group: str
    label: str
    expect: str
    argv: Callable[[Workspace], list[str]] | None = None
    call: Callable[[Workspace], object] | None = None

    @property
    def name(self) -> str:
        return f"{self.group}: {self.label}"


@dataclass(frozen=True)
class Outcome:
    status: str  # clear / unclear / traceback / silent / clobbered
    message: str
    code: int | None


def _digest(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def run_case(case: Case, ws: Workspace) -> Outcome:
    """Run one case in ``ws`` and classify what happened."""
    from spikeconv.cli.main import main

    before = _digest(ws.root)
    stderr, code, message = io.StringIO(), None, ""
    try:
        if case.argv is not None:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(case.argv(ws))
                except SystemExit as exc:  # argparse's own exit
                    code = int(exc.code or 0)
            lines = [line for line in stderr.getvalue().splitlines() if "error:" in line]
            message = lines[-1] if lines else ""
            status = {0: "silent", 3: "traceback"}.get(code, "clear" if re.search(case.expect, message, re.I) else "unclear")
            if code == 2 and len(lines) != 1:
                status = "unclear"
        else:
            case.call(ws)
            status = "silent"
    except (ValueError, TypeError) as exc:  # SpikeconvError's subclasses are among these
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        status = "clear" if re.search(case.expect, message, re.I) else "unclear"
    except Exception as exc:  # noqa: BLE001 - what the campaign counts as a traceback
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        status = "traceback"
    after = _digest(ws.root)
    if any(after.get(path) != digest for path, digest in before.items()) or (ws.root / "CODE_RAN").exists():
        status = "clobbered"
    return Outcome(status, message, code)


def _cli(group: str, label: str, expect: str, argv: Callable[[Workspace], list[str]]) -> Case:
    return Case(group, label, expect, argv=argv)


QUICK = ["--limit", "20", "--timesteps", "2"]

#: what the message must name for each kind of bad checkpoint file
BAD_FILES = {
    "missing": "does not exist", "directory": "is a directory", "empty": "corrupt|empty",
    "random bytes": "corrupt", "truncated": "corrupt", "JSON text": "corrupt|not a torch",
    "plain state dict": "not a spikeconv checkpoint", "pickle that runs code": "refused.*weights-only",
    "newer version": "newer spikeconv", "NaN weight": "NaN", "weights of another width": "do not fit",
    "unknown model": "no_such_net", "unknown activation": "activation", "unknown data set": "no_such_data",
}

#: each command that reads a checkpoint, as argv around the checkpoint path
READERS = {
    "evaluate": lambda ws, ck: ["evaluate", ck, *QUICK],
    "tradeoff": lambda ws, ck: ["tradeoff", ck, *QUICK],
    "analyze": lambda ws, ck: ["analyze", ck, "--out", str(ws.root / "report"), "--limit", "20"],
    "export": lambda ws, ck: ["export", ck, "--out", str(ws.root / "net.nir")],
    "stream": lambda ws, ck: ["stream", str(ws.root / "frames"), "--checkpoint", ck, "--out", str(ws.root / "strip")],
}


def checkpoint_cases() -> list[Case]:
    cases = []
    for command, argv in READERS.items():
        for bad, expect in BAD_FILES.items():
            if command == "stream" and bad in ("unknown data set",):
                continue
            cases.append(_cli(f"{command} CHECKPOINT", bad, expect,
                              lambda ws, argv=argv, bad=bad: argv(ws, str(ws.bad[bad]))))
    return cases


def output_cases() -> list[Case]:
    ck = lambda ws: str(ws.ckpt)  # noqa: E731
    return [
        _cli("outputs", "evaluate --json naming the checkpoint", "checkpoint this command reads",
             lambda ws: ["evaluate", ck(ws), *QUICK, "--json", ck(ws)]),
        _cli("outputs", "evaluate --json naming a directory", "is a directory",
             lambda ws: ["evaluate", ck(ws), *QUICK, "--json", str(ws.bad["directory"])]),
        _cli("outputs", "evaluate --json under a file (parent is not a folder)", "not a directory|cannot",
             lambda ws: ["evaluate", ck(ws), *QUICK, "--json", str(ws.ckpt / "r.json")]),
        _cli("outputs", "tradeoff --json naming the checkpoint", "checkpoint this command reads",
             lambda ws: ["tradeoff", ck(ws), *QUICK, "--json", ck(ws)]),
        _cli("outputs", "tradeoff --json naming a directory", "is a directory",
             lambda ws: ["tradeoff", ck(ws), *QUICK, "--json", str(ws.bad["directory"])]),
        _cli("outputs", "run --json naming the config", "config this command reads",
             lambda ws: ["run", str(ws.config), "--json", str(ws.config)]),
        _cli("outputs", "run --json naming a directory", "is a directory",
             lambda ws: ["run", str(ws.config), "--json", str(ws.bad["directory"])]),
        _cli("outputs", "export --out naming the checkpoint", "checkpoint this command reads",
             lambda ws: ["export", ck(ws), "--out", ck(ws)]),
        _cli("outputs", "export --out naming a directory", "is a directory",
             lambda ws: ["export", ck(ws), "--out", str(ws.bad["directory"])]),
        _cli("outputs", "export --out under a file", "not a directory|cannot",
             lambda ws: ["export", ck(ws), "--out", str(ws.ckpt / "net.nir")]),
        _cli("outputs", "export --format hardware --out with a .nir name", r"\.npz",
             lambda ws: ["export", ck(ws), "--format", "hardware", "--out", str(ws.root / "net.nir")]),
        _cli("outputs", "analyze --out naming an existing file", "is a file|not a directory",
             lambda ws: ["analyze", ck(ws), "--out", str(ws.bad["empty"]), "--limit", "20"]),
        _cli("outputs", "analyze --out naming the checkpoint", "checkpoint|source this command reads",
             lambda ws: ["analyze", ck(ws), "--out", ck(ws), "--limit", "20"]),
        _cli("outputs", "stream --out naming an existing file", "is a file|not a directory",
             lambda ws: ["stream", str(ws.root / "frames"), "--checkpoint", str(ws.detector), "--out",
                         str(ws.bad["empty"])]),
        _cli("outputs", "evaluate --figure naming the checkpoint", "checkpoint this command reads",
             lambda ws: ["evaluate", str(ws.detector), "--figure", str(ws.detector), "--limit", "4"]),
    ]


def option_cases() -> list[Case]:
    ev = lambda ws, *extra: ["evaluate", str(ws.ckpt), "--limit", "20", *extra]  # noqa: E731
    rows = [
        ("evaluate", "--timesteps 0", "positive", lambda ws: ev(ws, "--timesteps", "0")),
        ("evaluate", "--timesteps -2", "positive", lambda ws: ev(ws, "--timesteps", "-2")),
        ("evaluate", "--timesteps eight", "positive integer", lambda ws: ev(ws, "--timesteps", "eight")),
        ("evaluate", "--max-strengths 3", "power", lambda ws: ev(ws, "--max-strengths", "3")),
        ("evaluate", "--max-strengths 0", "power", lambda ws: ev(ws, "--max-strengths", "0")),
        ("evaluate", "--neurons lif", "invalid choice", lambda ws: ev(ws, "--neurons", "lif")),
        ("evaluate", "--batch-size 0", "batch", lambda ws: ev(ws, "--batch-size", "0")),
        ("evaluate", "--batch-size -1", "batch", lambda ws: ev(ws, "--batch-size", "-1")),
        ("evaluate", "--limit 0", "limit", lambda ws: ["evaluate", str(ws.ckpt), "--limit", "0"]),
        ("evaluate", "--limit -5", "limit", lambda ws: ["evaluate", str(ws.ckpt), "--limit", "-5"]),
        ("evaluate", "--weight-bits 1", "between 2 and 8", lambda ws: ev(ws, "--weight-bits", "1")),
        ("evaluate", "--weight-bits 9", "between 2 and 8", lambda ws: ev(ws, "--weight-bits", "9")),
        ("evaluate", "--calibrate-for 0", "positive", lambda ws: ev(ws, "--calibrate-for", "0")),
        ("evaluate", "--warmup 0", "positive", lambda ws: ev(ws, "--warmup", "0")),
        ("evaluate", "--warmup above every T", "exceeds", lambda ws: ev(ws, "--timesteps", "2", "--warmup", "4")),
        ("evaluate", "--percentile 0", "percentile", lambda ws: ev(ws, "--percentile", "0")),
        ("evaluate", "--percentile 101", "percentile", lambda ws: ev(ws, "--percentile", "101")),
        ("evaluate", "--percentile nan", "percentile", lambda ws: ev(ws, "--percentile", "nan")),
        ("evaluate", "--calibration-samples 0", "calibration-samples", lambda ws: ev(ws, "--calibration-samples", "0")),
        ("evaluate", "--data-root missing folder", "data root", lambda ws: ev(ws, "--data-root", str(ws.root / "nodata"))),
        ("evaluate", "--data-root a file", "data root|not a directory", lambda ws: ev(ws, "--data-root", str(ws.ckpt))),
        ("evaluate", "--splits on a classifier", "detectors", lambda ws: ev(ws, "--splits", "val")),
        ("evaluate", "--figure on a classifier", "detectors", lambda ws: ev(ws, "--figure", str(ws.root / "f.png"))),
        ("evaluate", "an unknown option --foo", "unrecognized", lambda ws: ev(ws, "--foo")),
        ("tradeoff", "--max-strengths 3", "power", lambda ws: ["tradeoff", str(ws.ckpt), "--max-strengths", "3"]),
        ("tradeoff", "--timesteps 0", "positive", lambda ws: ["tradeoff", str(ws.ckpt), "--timesteps", "0"]),
        ("tradeoff", "--batch-size 0", "batch", lambda ws: ["tradeoff", str(ws.ckpt), "--batch-size", "0"]),
        ("tradeoff", "--limit 0", "limit", lambda ws: ["tradeoff", str(ws.ckpt), "--limit", "0"]),
    ]
    an = lambda ws, *extra: ["analyze", str(ws.ckpt), "--out", str(ws.root / "report"), *extra]  # noqa: E731
    rows += [
        ("analyze", "--timesteps 0", "timesteps", lambda ws: an(ws, "--timesteps", "0")),
        ("analyze", "--max-strength 3", "power", lambda ws: an(ws, "--max-strength", "3")),
        ("analyze", "--limit 0", "limit", lambda ws: an(ws, "--limit", "0")),
        ("analyze", "--detail-samples 0", "detail-samples", lambda ws: an(ws, "--detail-samples", "0")),
        ("analyze", "--clamp -1", "clamp", lambda ws: an(ws, "--clamp", "-1")),
        ("analyze", "--layer that does not exist", "nosuch", lambda ws: an(ws, "--layer", "nosuch", "--limit", "20")),
        ("analyze", "--batch-size 0", "batch", lambda ws: an(ws, "--batch-size", "0")),
        ("analyze", "--split on a classifier", "detectors", lambda ws: an(ws, "--split", "val")),
        ("analyze", "--mac-pj -1", "pj|energy", lambda ws: an(ws, "--mac-pj", "-1")),
        ("analyze", "--warmup above --timesteps", "warmup", lambda ws: an(ws, "--timesteps", "2", "--warmup", "3")),
        ("analyze", "--warmup on a detector", "detector", lambda ws: ["analyze", str(ws.detector), "--out",
                                                                      str(ws.root / "report"), "--warmup", "2"]),
    ]
    ex = lambda ws, *extra: ["export", str(ws.ckpt), "--out", str(ws.root / "o.npz"), *extra]  # noqa: E731
    rows += [
        ("export", "--weight-bits 1", "between 2 and 8|weight", lambda ws: ex(ws, "--format", "hardware", "--weight-bits", "1")),
        ("export", "--weight-bits 9", "between 2 and 8|weight", lambda ws: ex(ws, "--format", "hardware", "--weight-bits", "9")),
        ("export", "--max-strength 3", "power", lambda ws: ex(ws, "--format", "hardware", "--max-strength", "3")),
        ("export", "--phi 1.5", "phi", lambda ws: ex(ws, "--format", "hardware", "--phi", "1.5")),
        ("export", "--phi -0.1", "phi", lambda ws: ex(ws, "--format", "hardware", "--phi", "-0.1")),
        ("export", "--format onnx", "invalid choice", lambda ws: ex(ws, "--format", "onnx")),
        ("export", "a detector to NIR", "upsampl|detector", lambda ws: ["export", str(ws.detector), "--out",
                                                                        str(ws.root / "d.nir")]),
    ]
    ins = lambda *a: ["inspect", *a]  # noqa: E731
    rows += [
        ("inspect", "--input-shape 1 28 28 for a CIFAR model", "channel|shape",
         lambda ws: ins("vgg_cifar_small", "--input-shape", "1", "28", "28")),
        ("inspect", "--input-shape 0 3", "shape|positive", lambda ws: ins("vgg_cifar_small", "--input-shape", "0", "3")),
        ("inspect", "--input-shape -1", "shape|positive", lambda ws: ins("lenet_mnist", "--input-shape", "-1")),
        ("inspect", "an unknown registry name", "nosuchmodel|unknown|not", lambda ws: ins("nosuchmodel")),
        ("inspect", "torchvision:nosuch", "unknown torchvision", lambda ws: ins("torchvision:nosuch")),
        ("inspect", "file.py:Missing", "Missing", lambda ws: ins(f"{ws.file('net.py', _NET)}:Missing")),
        ("inspect", "a .py file without :Class", "Class", lambda ws: ins(str(ws.file("net.py", _NET)))),
        ("inspect", "--weights that do not exist", "does not exist|weights",
         lambda ws: ins(f"{ws.file('net.py', _NET)}:Net", "--weights", str(ws.root / "nowhere.pt"))),
        ("inspect", "a Python file that raises", "ZeroDivision|net_raises|import",
         lambda ws: ins(f"{ws.file('net_raises.py', '1 / 0')}:Net")),
    ]
    st = lambda ws, *extra: ["stream", str(ws.root / "frames"), "--checkpoint", str(ws.detector),  # noqa: E731
                             "--out", str(ws.root / "strip"), *extra]
    rows += [
        ("stream", "--timesteps 0", "timesteps", lambda ws: st(ws, "--timesteps", "0")),
        ("stream", "--window 0", "window", lambda ws: st(ws, "--window", "0")),
        ("stream", "--clips 0", "clips", lambda ws: st(ws, "--clips", "0")),
        ("stream", "--size 0 0", "size", lambda ws: st(ws, "--size", "0", "0")),
        ("stream", "--gain -1", "gain", lambda ws: st(ws, "--gain", "-1")),
        ("stream", "--max-strength 3", "power", lambda ws: st(ws, "--max-strength", "3")),
        ("stream", "--min-score 2", "min-score|score", lambda ws: st(ws, "--min-score", "2")),
        ("stream", "an input that does not exist", "does not exist|no such",
         lambda ws: ["stream", str(ws.root / "nothing.dat"), "--checkpoint", str(ws.detector), "--out", str(ws.root / "s")]),
        ("stream", "an input of random bytes (.dat)", "dat|spike|malformed|read",
         lambda ws: ["stream", str(ws.file("noise.dat", bytes(range(7)) * 3)), "--checkpoint", str(ws.detector),
                     "--out", str(ws.root / "s")]),
        ("stream", "a classifier as detector", "detector", lambda ws: ["stream", str(ws.root / "frames"), "--checkpoint",
                                                                        str(ws.ckpt), "--out", str(ws.root / "s")]),
    ]
    rows += [
        ("stability", "--runs 0", "runs", lambda ws: ["stability", str(ws.config), "--runs", "0"]),
        ("stability", "--timesteps 0", "timesteps", lambda ws: ["stability", str(ws.config), "--timesteps", "0"]),
        ("stability", "--limit 0", "limit", lambda ws: ["stability", str(ws.config), "--limit", "0"]),
        ("stability", "a checkpoint instead of a config", "model file", lambda ws: ["stability", str(ws.ckpt)]),
        ("stability", "a detection config", "classification", lambda ws: ["stability", "coco128_yolo"]),
        ("stability", "--include a file that is not JSON", "include.*stability JSON",
         lambda ws: ["stability", str(ws.config), "--include", str(ws.bad["empty"])]),
        ("stability", "--include of another config's study", "include.*same config",
         lambda ws: ["stability", str(ws.config), "--include", str(ws.file("other.json", '{"runs": [], "model": "x"}'))]),
        ("run", "--epochs 0", "epochs", lambda ws: ["run", str(ws.config), "--epochs", "0", "--retrain"]),
        ("run", "--stages 0", "stages", lambda ws: ["run", str(ws.config), "--stages", "0"]),
        ("run", "--stages on the fast recipe", "stages", lambda ws: ["run", "cifar10_fast", "--stages", "2"]),
        ("run", "a config that does not exist", "does not exist", lambda ws: ["run", str(ws.root / "none.toml")]),
        ("run", "a directory as config", "directory", lambda ws: ["run", str(ws.bad["directory"])]),
        ("spikeconv", "no command", "required", lambda ws: []),
        ("spikeconv", "an unknown command", "invalid choice", lambda ws: ["evalute", str(ws.ckpt)]),
    ]
    return [_cli(group, label, expect, argv) for group, label, expect, argv in rows]


_NET = "import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
       "        self.fc = torch.nn.Linear(4, 2)\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n"


def config_cases() -> list[Case]:
    """``spikeconv run CONFIG`` with configs that are wrong in one place each."""

    def run(name: str, text: Callable[[Workspace], str], *extra: str):
        return lambda ws: ["run", str(ws.file(f"configs/{name}.toml", text(ws))), *extra]

    trained = lambda ws: str(ws.ckpt)  # noqa: E731 - reuses the shipped LeNet (width 16, levels 4)
    rows = [
        ("not TOML", "valid TOML", lambda ws: "[data\ndataset = "),
        ("an empty file", "dataset|needs", lambda ws: ""),
        ("binary bytes", "TOML|UTF", lambda ws: b"\xff\xfe\x00\x81"),
        ("an unknown table [training]", "unknown table", lambda ws: config_text() + "[training]\nepochs = 1\n"),
        ("[model] levles", "did you mean 'levels'", lambda ws: config_text(model={"levles": 4})),
        ("[evaluate] timestep", "did you mean 'timesteps'", lambda ws: config_text(evaluate={"timestep": [2]})),
        ("[data] roott", "did you mean 'root'", lambda ws: config_text(data={"roott": "x"})),
        ("[train] epoch", "did you mean 'epochs'", lambda ws: config_text(train={"epoch": 2})),
        ("epochs = \"ten\"", "epochs", lambda ws: config_text(train={"epochs": "ten"})),
        ("epochs = true", "epochs", lambda ws: config_text(train={"epochs": True})),
        ("epochs = 0", "epochs", lambda ws: config_text(train={"epochs": 0})),
        ("lr = -1", "lr", lambda ws: config_text(train={"lr": -1.0})),
        ("batch_size = 0", "batch_size", lambda ws: config_text(train={"batch_size": 0})),
        ("timesteps = [0]", "timesteps", lambda ws: config_text(evaluate={"timesteps": [0]})),
        ("timesteps = \"8\"", "timesteps", lambda ws: config_text(evaluate={"timesteps": "8"})),
        ("neurons = [\"lif\"]", "neurons|lif", lambda ws: config_text(evaluate={"neurons": ["lif"]})),
        ("max_strengths = [3]", "power", lambda ws: config_text(evaluate={"max_strengths": [3]})),
        ("weight_bits = [1]", "weight_bits", lambda ws: config_text(evaluate={"weight_bits": [1]})),
        ("weight_bits = 9", "weight_bits", lambda ws: config_text(evaluate={"weight_bits": 9})),
        ("calibrate_for = 0", "calibrate_for", lambda ws: config_text(evaluate={"calibrate_for": 0})),
        ("evaluate batch_size = 0", "batch_size", lambda ws: config_text(evaluate={"batch_size": 0})),
        ("test_limit = -1", "test_limit", lambda ws: config_text(evaluate={"test_limit": -1})),
        ("dataset = \"mnits\"", "mnits", lambda ws: config_text(data={"dataset": "mnits"})),
        ("model name unknown", "lenet_mnst", lambda ws: config_text(model={"name": "lenet_mnst"})),
        ("activation = \"tanh\"", "activation", lambda ws: config_text(model={"activation": "tanh"})),
        ("levels = 0", "levels", lambda ws: config_text(model={"levels": 0})),
        ("phi = 1.5", "phi", lambda ws: config_text(model={"phi": 1.5})),
        ("kwargs = 5", "kwargs", lambda ws: config_text(model={"kwargs": 5})),
        ("kwargs naming an unknown option", "widht", lambda ws: config_text(model={"kwargs": {"widht": 4}})),
        ("output = 5", "output", lambda ws: config_text(train={"output": 5})),
        ("output naming a directory", "directory", lambda ws: config_text(output=str(ws.bad["directory"]))),
        ("state naming a directory", "directory", lambda ws: config_text(train={"state": str(ws.bad["directory"])})),
        ("recipe = \"turbo\"", "turbo", lambda ws: config_text(train={"recipe": "turbo"})),
        ("data root that does not exist", "data root", lambda ws: config_text(data={"root": str(ws.root / "nodata")})),
        ("a CIFAR model on MNIST", "channel|input", lambda ws: config_text(output=str(ws.root / "cifar_on_mnist.pt"),
                                                                           model={"name": "vgg_cifar_small", "kwargs": {"width": 4}})),
        ("another width while its output exists", "width", lambda ws: config_text(output=trained(ws))),
        ("another model while its output exists", "model", lambda ws: config_text(
            output=trained(ws), model={"name": "cnn_maxpool_mnist", "kwargs": {}})),
        ("other levels while its output exists", "activation", lambda ws: config_text(
            output=trained(ws), model={"levels": 8, "kwargs": {"width": 32}})),
        ("another data set while its output exists", "dataset", lambda ws: config_text(
            output=trained(ws), data={"dataset": "cifar10"}, model={"kwargs": {"width": 32}})),
    ]
    cases = [_cli("run CONFIG", label, expect, run(f"c{i}", text)) for i, (label, expect, text) in enumerate(rows)]
    # each config writes its own output, so no case sees another's files
    cases.append(_cli("run CONFIG", "a cut-short training state on resume", "unreadable|cut short",
                      lambda ws: ["run", str(_with_state(ws, b"PK\x03\x04 cut"))]))
    cases.append(_cli("run CONFIG", "a training state from other settings", "other settings",
                      lambda ws: ["run", str(_with_state(ws, None))]))
    return cases


def _with_state(ws: Workspace, state: bytes | None) -> Path:
    """A config whose training state exists: ``state`` bytes, or a real state without the run's fingerprint."""
    import torch

    name = "cut" if state else "foreign"
    config = ws.file(f"configs/state_{name}.toml", config_text(output=str(ws.root / f"{name}.pt"),
                                                               train={"state": str(ws.root / f"runs/{name}/state.pt")}))
    path = ws.root / f"runs/{name}/state.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if state is not None:
        path.write_bytes(state)
    else:
        torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 1, "history": []}, path)
    return config


def all_cases() -> list[Case]:
    """Every case of the campaign, CLI first."""
    api = [Case("API", label, expect, call=call) for label, expect, call in API_ROWS]
    return checkpoint_cases() + output_cases() + option_cases() + config_cases() + api
