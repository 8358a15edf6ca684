"""Simulation of converted spiking networks: folded-batch and step-by-step execution, anytime readout."""

from .engine import ExecutionOrder, neuron_runs, neurons_of, simulate

__all__ = ["ExecutionOrder", "neuron_runs", "neurons_of", "simulate"]
