"""Application layer: experiment config, runner and the absl entry point.

Not part of the library API; `run.py` is the only module that reads flags.
"""
