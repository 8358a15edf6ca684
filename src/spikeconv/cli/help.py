"""Help for every command-line option: the options many commands share are described once here, and every
subcommand shows its defaults (``--help``)."""

from __future__ import annotations

import argparse

#: help of the options (and positionals) several subcommands share, by destination name
SHARED = {
    "checkpoint": "a spikeconv checkpoint (.pt), or a shipped checkpoint's name, e.g. mnist_lenet_qrelu",
    "config": "a TOML run config, or a packaged config's name, e.g. mnist",
    "data_root": "data directory (default: $SPIKECONV_DATA, else ../shared/data)",
    "json": "also write the results to this JSON file (written atomically)",
    "timesteps": "simulation steps T; several values are read from one simulation of the largest",
    "max_strengths": "S^max values, the largest spike strength (powers of two)",
    "max_strength": "S^max, the largest spike strength (a power of two)",
    "neurons": "neuron kinds: the plain IF neuron and/or the buffered neuron with negative spikes",
    "batch_size": "samples per simulated batch",
    "limit": "evaluate on an evenly strided subset of this many test samples (default: all)",
    "runs": "training runs, one per seed",
    "min_score": "draw and list boxes scoring at least this",
}


def _number(kind: type, test, wording: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {text!r}") from None
        if not test(value):  # NaN fails every test
            raise argparse.ArgumentTypeError(f"must be {wording}, got {text}")
        return value

    parse.__name__ = wording
    return parse


#: argparse types that refuse a bad count or amount on the command line, before any work
positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
unit_fraction = _number(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
phi_fraction = _number(float, lambda v: 0 <= v < 1, "a fraction of the threshold in [0, 1)")


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, unless the help already names its default or there is no
    meaningful one (``None``, a flag's ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def document(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every subcommand a defaults-showing help formatter and every option without help its shared text.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> sub = p.add_subparsers()
        >>> _ = sub.add_parser("x").add_argument("--json")
        >>> document(p)._subparsers._group_actions[0].choices["x"]._actions[1].help.startswith("also write")
        True
    """
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in action.choices.values():
            sub.formatter_class = DefaultsFormatter
            for option in sub._actions:
                if option.help is None and option.dest in SHARED:
                    option.help = SHARED[option.dest]
    return parser


def add_calibration_options(sub: argparse.ArgumentParser) -> None:
    """``--percentile`` and ``--calibration-samples``: how every command normalises plain-ReLU activations."""
    sub.add_argument("--percentile", type=float, default=99.9,
                     help="plain-ReLU models: each bound is this percentile of a channel's positive activations "
                          "on training images (100 = max; paper 004's robust normalization)")
    sub.add_argument("--calibration-samples", type=positive_int, default=2000,
                     help="plain-ReLU models: training images the bounds are taken from")


def add_warmup_rounds_option(sub: argparse.ArgumentParser) -> None:
    """``--warmup-rounds K`` of the commands that take ``--warmup`` (:func:`spikeconv.neuron.warmed_up_membrane`)."""
    sub.add_argument("--warmup-rounds", type=positive_int, default=1, metavar="K",
                     help="pre-runs of the warm-up, each from the start the previous one implied (default 1)")


def warmup_rounds(args: argparse.Namespace) -> int:
    """``--warmup-rounds``, refused above 1 without a ``--warmup`` to repeat."""
    from ..errors import SpikeconvError

    if args.warmup_rounds > 1 and not args.warmup:
        raise SpikeconvError(f"--warmup-rounds {args.warmup_rounds} repeats a warm-up's pre-run; give --warmup RHO too")
    return args.warmup_rounds


def calibration_options(args: argparse.Namespace):
    """``(ConversionConfig with the percentile, number of calibration samples)`` from the command line, checked."""
    from ..convert import ConversionConfig
    from ..errors import SpikeconvError

    if args.calibration_samples < 1:
        raise SpikeconvError(f"--calibration-samples must be positive, got {args.calibration_samples}")
    try:
        return ConversionConfig(percentile=args.percentile), args.calibration_samples
    except ValueError as exc:
        raise SpikeconvError(f"--percentile: {exc}") from None
