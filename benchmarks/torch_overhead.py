"""Where the Keras PyTorch backend's time goes: the fixed cost per step.

At a tiny batch the kernels cost almost nothing, so the time of one step
is the framework's own (Python) cost, which a GPU does not shrink. This
script times, in one process on the PyTorch backend, one inference call
and one training step of the 3-expert, 100-class ResNet-32 at `--batch`
(default 2) for our Keras model (`model(x)` under `no_grad`, and Keras'
own `train_function` with `TorchSGD` + `BalPoELoss`) and for the plain
PyTorch replica of the reference (`reference_torch.py`), alternating, and
prints the medians, the difference per step and per Keras layer, and the
model's layers by type. `--explain` adds `torch._dynamo.explain` of the
Keras forward: how many graphs `torch.compile` gets and why it breaks.

    python benchmarks/torch_overhead.py                # ~1 min on a CPU
    python benchmarks/torch_overhead.py --explain      # + ~1 min compiling
"""

import argparse
import collections
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import torch  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
# The replica lives with the reproduction instruments.
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "reproduction"))
import reference_torch  # noqa: E402
import throughput  # noqa: E402

NUM_CLASSES = len(throughput.COUNTS)


def keras_calls(batch, device):
    """`(infer, train, model)`: zero-argument calls of our Keras model
    (throughput.py's timed model, eager)."""
    model = throughput.build_timed_model()
    model.make_train_function()
    x = torch.rand(batch, 32, 32, 3, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    data = [(x, y)]

    def infer():
        with torch.no_grad():
            return model(x, training=False)["logits"]

    return infer, lambda: model.train_function(data)["loss"], model


def reference_calls(batch, device):
    """`(infer, train)`: the same for the plain PyTorch replica."""
    model, step = reference_torch.make_train_step(throughput.COUNTS,
                                                  device=device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)

    def infer():
        model.eval()
        with torch.no_grad():
            return model(x).mean(dim=1)

    return infer, lambda: step(x, y)


def time_calls(calls, repeats, inner, device):
    """Median seconds per call of each `name -> fn`, alternating."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = collections.defaultdict(list)
    for fn in calls.values():  # Warm-up.
        fn()
    for _ in range(repeats):
        for name, fn in calls.items():
            sync()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(t) for name, t in times.items()}


def layer_counts(model):
    """`{layer class name: count}` of a model's layers, nested models'
    layers included (the models themselves are not counted)."""
    counts = collections.Counter()
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            counts.update(layer_counts(layer))
        else:
            counts[type(layer).__name__] += 1
    return counts


def explain(fn):
    """`(graphs, breaks, ops, [reason lines])` of `torch._dynamo.explain`.

    Each reason names the innermost Keras or balpoe_keras frame it came
    from.
    """
    result = torch._dynamo.explain(fn)()
    reasons = []
    for item in result.break_reasons:
        ours = [f for f in item.user_stack or () if _package_path(f.filename)]
        where = (f" (in {_package_path(ours[-1].filename)}:{ours[-1].lineno})"
                 if ours else "")
        line = item.reason.strip().splitlines()[0] + where
        if line not in reasons:
            reasons.append(line)
    return (result.graph_count, result.graph_break_count, result.op_count,
            reasons)


def _package_path(filename):
    """`keras/...` or `balpoe_keras/...` of a source file, else None."""
    path = filename.replace(os.sep, "/")
    for package in ("balpoe_keras/", "keras/"):
        at = path.rfind("/" + package)
        if at >= 0:
            return path[at + 1:]
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner", type=int, default=10,
                        help="calls per timed window")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (ignored on a GPU)")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "torch":
        raise SystemExit("Keras was imported with the "
                         f"{keras.backend.backend()!r} backend before this "
                         "script; run it as its own process.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    k_infer, k_train, model = keras_calls(args.batch, device)
    r_infer, r_train = reference_calls(args.batch, device)
    name = (torch.cuda.get_device_name() if device == "cuda"
            else f"CPU, {args.threads} thread(s)")
    print(f"torch {torch.__version__}, keras {keras.__version__}, {name}, "
          f"batch {args.batch}, median of {args.repeats} x {args.inner} "
          "calls")
    median = time_calls({"keras infer": k_infer, "reference infer": r_infer,
                         "keras train": k_train, "reference train": r_train},
                        args.repeats, args.inner, device)
    layers = layer_counts(model)
    total = sum(layers.values())
    for kind in ("infer", "train"):
        ours, ref = median[f"keras {kind}"], median[f"reference {kind}"]
        print(f"{kind:<6} keras {1e3 * ours:7.1f} ms  reference "
              f"{1e3 * ref:7.1f} ms  difference {1e3 * (ours - ref):6.1f} ms"
              f" per step = {1e6 * (ours - ref) / total:5.0f} us per layer")
    print(f"{total} Keras layers: " + ", ".join(
        f"{n} {k}" for k, n in layers.most_common()))
    if args.explain:
        graphs, breaks, ops, reasons = explain(k_infer)
        print(f"torch._dynamo.explain(forward): {graphs} graphs, {breaks} "
              f"graph breaks, {ops} ops captured; distinct reasons:")
        for line in reasons:
            print(f"  {line}")
    return median


if __name__ == "__main__":
    main()
