"""Simulation of converted spiking networks: folded-batch and step-by-step execution, anytime readout,
and event-driven accumulation for sparse layers."""

from .config import Kernel, SimulationConfig
from .engine import neuron_runs, neurons_of, simulate
from .events import EventDriven, default_max_density, event_conv2d, event_driven, event_linear, watch_paths

__all__ = ["EventDriven", "Kernel", "SimulationConfig", "default_max_density", "event_conv2d", "event_driven", "event_linear", "neuron_runs",
           "neurons_of", "simulate", "watch_paths"]
