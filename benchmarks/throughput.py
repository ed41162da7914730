"""Training and inference throughput of the BalPoE ResNet-32 per backend.

Times the 3-expert, 100-class CIFAR ResNet-32 (317.1 MFLOPs per image
forward, counted with torch's FlopCounterMode; training ~3x) at batch
128 on 32x32x3 inputs held in memory, so the model alone is timed. Each
configuration runs in its own process (the Keras backend is fixed at
import). Warm-up (tracing, compilation) is one separate call; the
timed call runs `--steps` x `--repeats` steps (plus one) in one go and
each repetition is a window of `--steps` consecutive steps from the end
of its first step (`_window_rates`), so starting an epoch or an iterator
is not timed; the median and spread over `--repeats` are reported
together with peak resident memory and achieved GFLOP/s next to this
machine's float32 matmul peak measured in the same run.

    python benchmarks/throughput.py                      # all configs
    python benchmarks/throughput.py --configs tf,tf_bf16 --repeats 5
    python benchmarks/throughput.py --out benchmarks/throughput.json

Configs: tf (graph, TensorFlow's default kernels), tf_onednn (graph with
TF_ENABLE_ONEDNN_OPTS=1, the runner's default), tf_onednn_inter1 (the same
with one inter-op thread), tf_xla, tf_bf16 (mixed_bfloat16 with oneDNN),
tf_xla_bf16, jax, jax_bf16, torch (our Keras model on the PyTorch
backend), torch_jit (the same with jit_compile, i.e. torch.compile),
torch_bf16, and
reference_torch / reference_torch_cl / reference_torch_compile: the
reference's model and SGD step rebuilt in plain PyTorch
(`reference_torch.py`), NCHW as shipped, channels-last, and torch.compile.
Unavailable backends are reported as skipped. On a machine with a CUDA GPU
the PyTorch configs run there (JAX picks its own default device), and "%
peak" is measured against that GPU's float32 matmul rate instead of the
CPU's.

`--rounds N` alternates: every configuration runs once per round, in turn,
and the reported median is over all rounds' windows, so drifting load on a
shared machine affects all configurations alike.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

FORWARD_FLOPS = 317.1e6  # per image, M=3, C=100 (FlopCounterMode)
# Training counts of the timed 100-class model (CIFAR-100-LT IR100 shape).
COUNTS = [int(500 * 0.01 ** (c / 99)) for c in range(100)]
CONFIGS = {
    "tf": ("tensorflow", False, "float32"),
    "tf_onednn": ("tensorflow", False, "float32"),
    "tf_xla": ("tensorflow", True, "float32"),
    "tf_bf16": ("tensorflow", False, "mixed_bfloat16"),
    "tf_xla_bf16": ("tensorflow", True, "mixed_bfloat16"),
    "jax": ("jax", True, "float32"),
    "jax_bf16": ("jax", True, "mixed_bfloat16"),
    "torch": ("torch", False, "float32"),
    "torch_jit": ("torch", True, "float32"),
    "torch_bf16": ("torch", False, "mixed_bfloat16"),
    "reference_torch": ("reference", False, "float32"),
    "reference_torch_cl": ("reference", False, "float32"),
    "reference_torch_compile": ("reference", True, "float32"),
}
# Environment per config on top of KERAS_BACKEND (TensorFlow reads these
# when it starts).
CONFIG_ENV = {
    "tf_onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    # bfloat16 only makes sense with oneDNN (the runner's default).
    "tf_bf16": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "tf_onednn_inter1": {"TF_ENABLE_ONEDNN_OPTS": "1",
                         "TF_NUM_INTEROP_THREADS": "1"},
}
CONFIGS["tf_onednn_inter1"] = ("tensorflow", False, "float32")


def measure_matmul_peak(size=2048, repeats=5):
    """`(GFLOP/s, device)`: best float32 matmul rate of this machine's
    compute device: a CUDA GPU through PyTorch if there is one (TF32 off),
    else NumPy's BLAS on the CPU."""
    gpu = _cuda_device_name()
    if gpu:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        size = 8192
        a = torch.rand(size, size, device="cuda")
        b = torch.rand(size, size, device="cuda")

        def run():
            a @ b
            torch.cuda.synchronize()
    else:
        a = np.random.rand(size, size).astype(np.float32)
        b = np.random.rand(size, size).astype(np.float32)

        def run():
            a @ b
    run()
    best = min(_timed(run) for _ in range(repeats))
    return 2 * size**3 / best / 1e9, gpu or "CPU"


def _cuda_device_name():
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _window_rates(run, args):
    """Images/s of `repeats` windows of `steps` consecutive steps.

    `run(n, on_step)` runs n steps and calls `on_step()` after each. The
    warm-up (tracing / compilation) is one separate call; the timed call
    runs `steps * repeats + 1` steps and the windows start at the end of its
    first step, so one-off costs of starting an epoch or an iterator are
    excluded and only steady-state steps are timed.
    """
    run(args.steps, lambda: None)
    stamps = []
    run(args.steps * args.repeats + 1,
        lambda: stamps.append(time.perf_counter()))
    return [
        args.batch_size * args.steps
        / (stamps[(i + 1) * args.steps] - stamps[i * args.steps])
        for i in range(args.repeats)
    ]


def _finish(result, args, name_runs):
    """Times each `(name, run)`; prints the result as one JSON line."""
    import resource

    for name, run in name_runs:
        rates = _window_rates(run, args)
        result[f"{name}_img_s"] = statistics.median(rates)
        result[f"{name}_img_s_min"] = min(rates)
        result[f"{name}_img_s_max"] = max(rates)
        result[f"{name}_img_s_all"] = [round(r, 1) for r in rates]
    result["peak_rss_mib"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    result["train_gflop_s"] = result["train_img_s"] * 3 * FORWARD_FLOPS / 1e9
    result["infer_gflop_s"] = result["infer_img_s"] * FORWARD_FLOPS / 1e9
    print("RESULT " + json.dumps(result), flush=True)


def run_reference_worker(args):
    """Times the plain-PyTorch replica of the reference (no Keras)."""
    import torch

    # The replica lives with the reproduction instruments.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "reproduction"))
    import reference_torch

    channels_last = args.config == "reference_torch_cl"
    compiled = CONFIGS[args.config][1]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, step = reference_torch.make_train_step(
        COUNTS, channels_last=channels_last, compile=compiled, device=device)
    rng = np.random.RandomState(0)
    batch = args.batch_size
    x = torch.from_numpy(rng.rand(batch, 3, 32, 32).astype("float32"))
    y = torch.from_numpy(rng.randint(0, 100, batch))
    x, y = x.to(device), y.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def train(n, on_step):
        for _ in range(n):
            step(x, y)
            sync()  # Time finished steps, not queued ones.
            on_step()

    def infer(n, on_step):
        model.eval()
        with torch.no_grad():
            for _ in range(n):
                model(x).mean(dim=1).softmax(-1)
                sync()
                on_step()

    params = sum(p.numel() for p in model.parameters())
    result = {"config": args.config, "backend": "plain PyTorch "
              + torch.__version__, "jit_compile": compiled, "device": device,
              "dtype_policy": "float32", "batch": batch,
              "channels_last": channels_last, "trainable_params": params,
              "torch_threads": torch.get_num_threads()}
    _finish(result, args, (("train", train), ("infer", infer)))


def build_timed_model(jit_compile=False):
    """The timed model: 3-expert, 100-class ResNet-32 (seed 0), compiled
    with `TorchSGD` and `BalPoELoss(COUNTS)`, in the global dtype policy."""
    import keras

    from balpoe_keras import models
    from balpoe_keras import optimizers

    keras.utils.set_random_seed(0)
    model = models.build_balpoe_classifier("resnet32", COUNTS)
    model.compile(
        optimizer=optimizers.TorchSGD(0.1, weight_decay=5e-4),
        metrics=[],  # The loss and each expert's loss only.
        jit_compile=jit_compile,
    )
    return model


def run_worker(args):
    """Times one configuration in this process; prints one JSON line."""
    if CONFIGS[args.config][0] == "reference":
        return run_reference_worker(args)
    import keras

    _, jit, policy = CONFIGS[args.config]
    keras.mixed_precision.set_dtype_policy(policy)
    model = build_timed_model(jit)
    rng = np.random.RandomState(0)
    batch = args.batch_size
    x1 = rng.rand(batch, 32, 32, 3).astype("float32")
    y1 = rng.randint(0, 100, batch)

    class OnStep(keras.callbacks.Callback):
        def __init__(self, on_step):
            super().__init__()
            self.on_train_batch_end = lambda *a, **k: on_step()
            self.on_predict_batch_end = lambda *a, **k: on_step()

    def train(n, on_step):
        model.fit(np.tile(x1, (n, 1, 1, 1)), np.tile(y1, n),
                  batch_size=batch, epochs=1, shuffle=False, verbose=0,
                  callbacks=[OnStep(on_step)])

    def infer(n, on_step):
        model.predict(np.tile(x1, (n, 1, 1, 1)), batch_size=batch, verbose=0,
                      callbacks=[OnStep(on_step)])

    result = {"config": args.config, "backend": keras.backend.backend(),
              "jit_compile": jit, "dtype_policy": policy, "batch": batch,
              "trainable_params": int(sum(
                  np.prod(w.shape) for w in model.trainable_weights))}
    _finish(result, args, (("train", train), ("infer", infer)))


def run_config(name, args):
    """Runs one configuration in a subprocess and returns its result dict."""
    backend = CONFIGS[name][0]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    env.update(CONFIG_ENV.get(name, {}))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
           "--batch_size", str(args.batch_size), "--steps", str(args.steps),
           "--repeats", str(args.repeats)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"config": name, "skipped": f"timed out after {args.timeout} s"
                " (e.g. bfloat16 emulated on a CPU without AVX512_BF16)"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return {"config": name, "skipped": tail[0] if tail else "no output"}


def merge_rounds(results):
    """One result per config from its rounds: medians over all windows.

    A round that was skipped (timed out, failed) is left out of the medians
    and counted: `rounds_done` says "k of n" and the table shows it.
    """
    done = [r for r in results if "skipped" not in r]
    if not done:
        return results[0]
    merged = dict(done[0])
    merged["rounds_done"] = f"{len(done)} of {len(results)}"
    merged["skipped_rounds"] = [r["skipped"] for r in results
                                if "skipped" in r]
    for name in ("train", "infer"):
        rates = [v for r in done for v in r[f"{name}_img_s_all"]]
        merged[f"{name}_img_s"] = statistics.median(rates)
        merged[f"{name}_img_s_min"] = min(rates)
        merged[f"{name}_img_s_max"] = max(rates)
        merged[f"{name}_img_s_all"] = rates
    merged["peak_rss_mib"] = max(r["peak_rss_mib"] for r in done)
    merged["train_gflop_s"] = merged["train_img_s"] * 3 * FORWARD_FLOPS / 1e9
    merged["infer_gflop_s"] = merged["infer_img_s"] * FORWARD_FLOPS / 1e9
    return merged


def print_table(results, peak, peak_device="CPU"):
    print(f"\nfloat32 matmul peak ({peak_device}, this run): {peak:.1f} "
          "GFLOP/s")
    header = (f"{'config':<24} {'train img/s':>18} {'infer img/s':>18} "
              f"{'train GFLOP/s':>13} {'% peak':>7} {'RSS MiB':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        if "skipped" in r:
            print(f"{r['config']:<24} skipped: {r['skipped'][:60]}")
            continue
        train = (f"{r['train_img_s']:.1f} [{r['train_img_s_min']:.0f}-"
                 f"{r['train_img_s_max']:.0f}]")
        infer = (f"{r['infer_img_s']:.1f} [{r['infer_img_s_min']:.0f}-"
                 f"{r['infer_img_s_max']:.0f}]")
        print(f"{r['config']:<24} {train:>18} {infer:>18} "
              f"{r['train_gflop_s']:>13.1f} "
              f"{100 * r['train_gflop_s'] / peak:>6.1f}% "
              f"{r['peak_rss_mib']:>8.0f}")
        for reason in r.get("skipped_rounds", []):
            print(f"{'':<24} (rounds used: {r['rounds_done']}; one "
                  f"skipped: {reason[:60]})")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags():
    """Which of the CPU features that matter for bf16/int8 are present."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    return [flag for flag in wanted if flag in flags]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1,
                        help="Alternate the configs this many times.")
    parser.add_argument("--timeout", type=int, default=600,
                        help="Seconds allowed per configuration.")
    parser.add_argument("--out", default=None, help="JSON output path.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.config = args.worker
        return run_worker(args)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {sorted(CONFIGS)}")
    peak, peak_device = measure_matmul_peak()
    print(f"CPU: {_cpu_model()}, flags {_cpu_flags()}; peak measured on "
          f"{peak_device}", flush=True)
    rounds = [[run_config(name, args) for name in names]
              for _ in range(args.rounds)]
    results = [merge_rounds([r[i] for r in rounds]) for i in range(
        len(names))]
    print_table(results, peak, peak_device)
    report = {
        "date": time.strftime("%Y-%m-%d"), "machine": _cpu_model(),
        "cpu_flags": _cpu_flags(), "cpus": os.cpu_count(),
        "gpu": _cuda_device_name(), "load_avg": os.getloadavg(),
        "matmul_peak_gflop_s": peak, "peak_device": peak_device,
        "rounds": args.rounds, "results": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
