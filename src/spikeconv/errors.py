"""Exceptions shared by every part of spikeconv, and :func:`is_count`, the check of a count argument.

Each exception message names the cause and the remedy, so that the command line can print it as one
line. They subclass the built-in exception a caller would expect (``ValueError``, ``TypeError``,
``FileNotFoundError``), so generic handlers keep working.
"""

from __future__ import annotations


class SpikeconvError(Exception):
    """Base class of every error spikeconv raises on purpose."""


class ConversionError(SpikeconvError, ValueError):
    """A model (or one of its operations) cannot be converted; the message names the node path."""


class UnsupportedLayerError(ConversionError, TypeError):
    """A module or function has no conversion rule; the message names it and the options."""


class CheckpointError(SpikeconvError, ValueError):
    """A checkpoint file is missing, corrupt, or was written by something else."""


class DataError(SpikeconvError, FileNotFoundError):
    """A data set is missing or malformed under the configured data root."""


class ConfigError(SpikeconvError, ValueError):
    """A configuration file or option has a bad value."""


class AnnotationError(SpikeconvError, ValueError):
    """A box annotation is malformed; the message names the file and line (or object)."""


def is_count(value: object, least: int = 1) -> bool:
    """Whether ``value`` is an ``int`` (not a ``bool``) of at least ``least``: the check behind every count a
    caller passes (time steps, rounds, samples), so ``True`` or ``2.0`` never pass for a count.

    >>> is_count(3), is_count(0), is_count(0, least=0), is_count(True), is_count(2.0)
    (True, False, True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool) and value >= least
