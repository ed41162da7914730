"""Imports a script of `benchmarks/` or `reproduction/` for the tests.

Neither folder is a package: their scripts import their siblings by name
(e.g. `import reference_torch`).
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_DIR = os.path.join(ROOT, "benchmarks")
REPRODUCTION_DIR = os.path.join(ROOT, "reproduction")


def load_script(folder, name):
    """The module `<folder>/<name>.py`; its own imports of sibling
    scripts resolve during the load."""
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(folder, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
