"""Imports a script of `benchmarks/` (not a package) for the tests."""

import importlib.util
import os
import sys

BENCHMARKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "..", "benchmarks")


def load_benchmark(name):
    """The module `benchmarks/<name>.py`; its own imports of sibling
    scripts (e.g. `import reference_torch`) resolve during the load."""
    sys.path.insert(0, BENCHMARKS_DIR)
    try:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(BENCHMARKS_DIR, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(BENCHMARKS_DIR)
    return module
