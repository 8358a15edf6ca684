"""Simulation of converted spiking networks: folded-batch and step-by-step execution, anytime readout,
and event-driven accumulation for sparse layers."""

from .engine import ExecutionOrder, neuron_runs, neurons_of, simulate
from .events import EventDriven, default_max_density, event_conv2d, event_driven, event_linear

__all__ = ["EventDriven", "ExecutionOrder", "default_max_density", "event_conv2d", "event_driven", "event_linear", "neuron_runs",
           "neurons_of", "simulate"]
