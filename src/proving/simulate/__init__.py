"""Synthetic worlds with known truth, for the demo, benchmarks and calibration tests."""

from proving.simulate.experiment import SimulatedExperiment, simulate_experiment

__all__ = ["SimulatedExperiment", "simulate_experiment"]
