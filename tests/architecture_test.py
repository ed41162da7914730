"""The house drawn from the code: imports only go down its layers.

Every `balpoe_keras` import in the package is read from the source (AST)
and must point to the module's own unit or to a unit of a lower layer
(docs/ARCHITECTURE.md).
"""

import ast
import os

from tests.test_case import TestCase

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "balpoe_keras")
# Bottom to top. A unit may import the units of the layers below it.
LAYERS = (
    ("version", "class_prior", "labels", "tensorflow_check",
     "architectures"),
    ("data", "layers"),
    ("data.tfdata", "data.arrays", "losses", "optimizers"),
    ("metrics",),
    ("models",),
    ("training",),
    ("evaluation", "export"),
    # The package's __init__, the public API: it imports the core (and
    # offers `data` and `export` on first access).
    ("balpoe_keras",),
    ("experiments",),
)
_LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def unit_of(module):
    """`balpoe_keras.data.tfdata.mixup` -> `data.tfdata`, `...models.x` ->
    `models`, `balpoe_keras` -> `balpoe_keras`."""
    parts = module.split(".")[1:]
    if not parts:
        return "balpoe_keras"
    if parts[0] == "data" and len(parts) > 1 and parts[1] in (
            "tfdata", "arrays"):
        return f"data.{parts[1]}"
    return parts[0]


def package_imports():
    """`[(importing module, unit, imported unit)]` over the package."""
    found = []
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path[:-3], os.path.dirname(ROOT))
            module = module.replace(os.sep, ".").removesuffix(".__init__")
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    targets = [node.module]
                    if node.module == "balpoe_keras":
                        targets = [f"balpoe_keras.{a.name}"
                                   for a in node.names]
                for target in targets:
                    if target.split(".")[0] == "balpoe_keras":
                        found.append((module, unit_of(module),
                                      unit_of(target)))
    return found


class LayeringTest(TestCase):
    def test_the_scan_finds_the_package_imports(self):
        # Not vacuous: known imports of the package are read.
        found = package_imports()
        for edge in [("balpoe_keras.models.heads", "models", "layers"),
                     ("balpoe_keras.data.tfdata.mixup", "data.tfdata",
                      "data"),
                     ("balpoe_keras.export.saved_model", "export",
                      "data.tfdata")]:
            self.assertIn(edge, found)
        self.assertEqual(unit_of("balpoe_keras.data.tfdata.mixup"),
                         "data.tfdata")
        self.assertEqual(unit_of("balpoe_keras.models.heads"), "models")

    def test_every_unit_is_placed(self):
        units = {unit for _, unit, _ in package_imports()}
        units |= {target for _, _, target in package_imports()}
        self.assertEqual(sorted(units - set(_LAYER)), [])
        # And every placed unit exists (a renamed one would leave a stale
        # entry that places nothing).
        self.assertEqual(sorted(set(_LAYER) - units), [])

    def test_no_import_runs_back_up(self):
        upward = [f"{module} imports {target}"
                  for module, unit, target in package_imports()
                  if target != unit and _LAYER[target] >= _LAYER[unit]]
        self.assertEqual(upward, [])

    def test_the_core_and_the_input_package_need_no_keras_at_import(self):
        # The runner validates its flags before Keras loads (its start-up
        # sets TensorFlow's options): the config's imports stay NumPy-only.
        light = ("class_prior", "architectures", "data")
        heavy, scanned = [], set()
        for folder, _, files in os.walk(ROOT):
            for name in files:
                path = os.path.join(folder, name)
                module = os.path.relpath(path[:-3], os.path.dirname(ROOT))
                module = module.replace(os.sep, ".").removesuffix(
                    ".__init__")
                if not name.endswith(".py") or unit_of(module) not in light:
                    continue
                scanned.add(module)
                with open(path) as f:
                    tree = ast.parse(f.read())
                for node in tree.body:  # Module level only.
                    names = ([a.name for a in node.names]
                             if isinstance(node, ast.Import) else
                             [node.module] if isinstance(node, ast.ImportFrom)
                             else [])
                    heavy += [f"{module}: {n}" for n in names
                              if n and n.split(".")[0] in (
                                  "keras", "tensorflow", "jax", "torch")]
        self.assertEqual(heavy, [])
        self.assertTrue({"balpoe_keras.class_prior", "balpoe_keras.data",
                         "balpoe_keras.data.mixing",
                         "balpoe_keras.data.sampling"} <= scanned, scanned)
        self.assertNotIn("balpoe_keras.data.tfdata.mixup", scanned)
