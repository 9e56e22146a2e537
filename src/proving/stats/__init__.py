"""The statistics engine: sufficient statistics in, explained results out. Pure: no I/O."""

from proving.stats.sufficient import ArmStats

__all__ = ["ArmStats"]
