"""A simulated MS trial with ground truth: the demo dataset and the benchmarks' reference."""

from mriproc.simulate.trial import DEFAULT_ARM_MODELS, TrialSpec, simulate_trial

__all__ = ["DEFAULT_ARM_MODELS", "TrialSpec", "simulate_trial"]
