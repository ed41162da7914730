r"""The `# Expected runtime` line of each CIFAR flagfile, from measured runs.

    python reproduction/runtime_lines.py            # print the lines
    python reproduction/runtime_lines.py --write    # rewrite the flagfiles

Each line is the flagfile's training images times its epochs, divided by
the median training speeds of the full-schedule runs in the record
(`reproduction/long_run_record.py`): the balpoe_keras run on a GPU and the
one on a CPU (both on CIFAR-10-LT IR100 with ResNet-32 and the standard
recipe). Estimates for the other CIFAR settings assume the same speed per
image: the same network and batch; with fewer experts a line is an upper
bound, with more a lower one (each expert costs per image). AutoAugment
(`*_long`) runs in the input pipeline at ~2,500 images/s on 2 busy CPU cores
(benchmarks/RESULTS.md): far above training's speed on a CPU, but not
above the GPU run's, so their GPU figure is a lower bound. Evaluation and
the one-off start-up are not counted.
"""

import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

# Images per class of the balanced CIFAR training sets the long-tailed
# subsets are drawn from (the largest class keeps them all).
BALANCED_TRAIN_PER_CLASS = {"cifar10": 5000, "cifar10_folder": 5000,
                            "cifar100": 500}
PREFIX = "# Expected runtime"


# What makes an image cost the same: flagfiles that differ from the
# measured one (`MEASURED`) in these are left alone.
COST_FLAGS = ("architecture", "num_experts", "shared_stages", "batch_size",
              "mixed_precision")
MEASURED = os.path.join(ROOT, "experiments",
                        "cifar10_folder_ir100_standard.flags")


def flag_values(path):
    """The run's flags after reading the flagfile at `path` (absl
    `FlagValues`, defaults where the file says nothing)."""
    from absl import flags

    from balpoe_keras.experiments import run

    values = flags.FlagValues()
    run.define_config_flags(values)
    values(run.expand_flagfiles(["runtime_lines", f"--flagfile={path}"]))
    return values


def training_images(values):
    """Images in the long-tailed training set of a CIFAR flagfile's
    `values` (`long_tail_counts`); None for another dataset."""
    from balpoe_keras.data.datasets import DATASETS
    from balpoe_keras.data.long_tail import long_tail_counts

    spec = DATASETS.get(values.dataset)
    if spec is None or spec.source not in BALANCED_TRAIN_PER_CLASS:
        return None
    ratio = (spec.imbalance_ratio if values.imbalance_ratio is None
             else values.imbalance_ratio)
    return sum(long_tail_counts(spec.num_classes,
                                BALANCED_TRAIN_PER_CLASS[spec.source],
                                float(ratio)))


def measured_speeds(record):
    """`(gpu, cpu)` runs of balpoe_keras in the record, each a dict with
    `median_images_per_sec` and `note`: on each kind of machine (named by
    the note: "CPU" in it for a CPU), the first such run in the record
    that is not stopped (the CPU run may be unfinished: its median so
    far). Runs without a note are not counted: their machine is unknown.
    """
    found = {}
    for run in record:
        speed = run.get("median_images_per_sec")
        if (run["implementation"] != "balpoe_keras" or not speed
                or not run.get("note") or run.get("stopped")):
            continue
        kind = "cpu" if "CPU" in run["note"] else "gpu"
        found.setdefault(kind, run)
    missing = {"gpu", "cpu"} - set(found)
    if missing:
        raise ValueError(f"the record has no balpoe_keras run on "
                         f"{sorted(missing)} with a median_images_per_sec, "
                         "a note naming its machine and not stopped.")
    return found["gpu"], found["cpu"]


def _duration(seconds):
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    return f"{seconds / 3600:.1f} h"


_BACKENDS = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}


def _machine(run, default):
    """The machine a run trained on, as its note names it first (the text
    before the first comma: `one H200`, `2 CPU cores`), else `default`."""
    return run.get("note", "").split(",")[0].strip() or default


def runtime_line(images, epochs, gpu, cpu, experts=0, other_recipe=False):
    """The header line for `images` x `epochs` at the two runs' speeds.

    `experts`: the sign of (the setting's experts - the measured run's):
    fewer experts cost less per image, so the line is an upper bound
    ("at most"); more cost more, so both figures are lower bounds ("at
    least"). `other_recipe`: another augmentation, whose input pipeline
    may not keep up with the GPU: the GPU figure is then a lower bound.
    """
    work = images * epochs
    gpu_speed, cpu_speed = gpu["median_images_per_sec"], cpu[
        "median_images_per_sec"]
    bound = {-1: " (at most: measured with more experts)",
             1: " (at least: measured with fewer experts)"}.get(experts, "")
    gpu_least = "at least " if other_recipe or experts > 0 else ""
    cpu_least = "at least " if experts > 0 else ""
    return (f"{PREFIX}{bound}: {epochs} epochs x {images:,} images = "
            f"{gpu_least}~{_duration(work / gpu_speed)} on "
            f"{_machine(gpu, 'one GPU')} ({_BACKENDS[gpu['backend']]}, "
            f"{gpu_speed:,.0f} img/s), {cpu_least}"
            f"~{_duration(work / cpu_speed)} on "
            f"{_machine(cpu, 'a CPU')} ({_BACKENDS[cpu['backend']]}, "
            f"{cpu_speed:.1f} img/s): reproduction/runtime_lines.py.")


def flagfile_lines(folder, gpu, cpu, skip=("quickstart.flags",)):
    """`{path: line or reason}` for every flagfile in `folder` with a
    `# Expected runtime` line: the line for a CIFAR setting trained like
    `MEASURED` (`COST_FLAGS`), else why it is left alone (a str not
    starting with `#`). `skip`: names left out (the quickstart's line
    is its own measurement)."""
    measured = flag_values(MEASURED)
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.flags"))):
        with open(path) as f:
            if (os.path.basename(path) in skip
                    or not any(line.startswith(PREFIX) for line in f)):
                continue
        values = flag_values(path)
        images = training_images(values)
        differ = [f"--{name}={values[name].value}" for name in COST_FLAGS
                  if values[name].value != measured[name].value]
        if images is None:
            out[path] = f"left alone: not a CIFAR set ({values.dataset})"
        elif differ and differ != [f"--num_experts={values.num_experts}"]:
            out[path] = f"left alone: not measured with {', '.join(differ)}"
        else:
            more = values.num_experts - measured.num_experts
            out[path] = runtime_line(
                images, values.epochs, gpu, cpu, experts=(more > 0) - (
                    more < 0), other_recipe=values.recipe != measured.recipe)
    return out


def rewrite(path, line):
    """Replaces the `# Expected runtime` line of `path` with `line`;
    True when the file changed."""
    with open(path) as f:
        old = f.read().splitlines(keepends=True)
    new = [line + "\n" if row.startswith(PREFIX) else row for row in old]
    if new == old:
        return False
    with open(path, "w") as f:
        f.writelines(new)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", default=os.path.join(
        HERE, "results", "cifar10_lt_ir100_200ep.json"))
    parser.add_argument("--experiments", default=os.path.join(
        ROOT, "experiments"))
    parser.add_argument("--write", action="store_true",
                        help="rewrite the flagfiles' runtime lines")
    args = parser.parse_args(argv)
    with open(args.record) as f:
        gpu, cpu = measured_speeds(json.load(f))
    for path, line in flagfile_lines(args.experiments, gpu, cpu).items():
        changed = args.write and line.startswith("#") and rewrite(path, line)
        print(f"{os.path.basename(path)}{' (rewritten)' if changed else ''}:"
              f"\n  {line}")


if __name__ == "__main__":
    main()
