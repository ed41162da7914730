r"""Trains the reference BalPoE CIFAR recipe in plain PyTorch: the replica.

A measuring instrument for the paired runs (`paired.py`): the same recipe
as the reference code (github.com/emasa/BalPoE-CalibratedLT: its model,
loss, combiner, trainer, CIFAR loaders and metrics), written from those
facts with torch, torchvision and NumPy only (it imports neither
balpoe_keras nor Keras), trained on the same uint8 arrays from the CIFAR-10
JPEG archive, so that balpoe_keras runs can be compared with it on equal
terms:

- data: the archive decoded with Pillow, the seed-0 long-tailed subset
  (`reference_data.py`), a fresh `torch.randperm` order every epoch, the
  last partial batch kept;
- augmentation: torchvision's PIL transforms per image (`--augment=
  torchvision`, as shipped) or the pixel-identical batched version on the
  device (`--augment=tensor`, for the GPU);
- model and step: `reference_torch.py` (ResNet-32, shared stem+layer1,
  per-expert layer2/3, NormedLinear x 30; SGD 0.1, momentum 0.9, Nesterov,
  coupled weight decay 5e-4 on all parameters);
- Mixup as the reference's combiner: `lam = np.random.beta(a, a)` per batch
  from the global NumPy stream left by the subset construction (so it is
  the same for every seed, as in the reference; `--mixup_stream_seed`
  varies it, as a diagnostic), `torch.randperm`, loss
  `lam L(y) + (1 - lam) L(y[perm])` with `L` the mean over experts of
  `CE(z_m + (1 - lambda_m) log(prior + 1e-9))`;
- schedule: `LambdaLR`, stepped once per epoch: linear warm-up
  `(e + 1) / warmup`, x0.1 after each `--lr_step_epochs` milestone;
- evaluation: `model.eval()`, the mean of the expert logits on the balanced
  test set: accuracy, balanced accuracy, many/medium/few (training counts
  > 100 / 20-100 / < 20), ECE and MCE (15 bins, `(lo, hi]`), NLL;
- checkpoints (model, optimizer, scheduler, torch/NumPy/Python RNG states)
  every `--checkpoint_every` epochs, written atomically; a rerun resumes.

    python reproduction/reference_train.py --data=../shared/data \
        --out=runs/replica/seed1 --epochs=20 --seed=1
    python reproduction/reference_train.py --device=cuda --augment=tensor \
        --compile --out=gpu_out/replica --epochs=200

Outputs in `--out`: `train_log.csv`, `report.json` (`summary` with the same
`test/...` keys, in %, as balpoe_keras reports), `checkpoint.pt`, and with
`--eval_every=N` `eval_log.csv` (the same scores after every N-th epoch;
`epoch` 0-based, as in `train_log.csv`).
"""

import argparse
import csv
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference_data  # noqa: E402
from reference_torch import ReferenceResNet32  # noqa: E402

CHECKPOINT = "checkpoint.pt"
EVAL_LOG = "eval_log.csv"
EVAL_KEYS = ("accuracy", "balanced_accuracy", "acc_many", "acc_medium",
             "acc_few", "ece", "mce", "nll")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data", default=None, help="cifar10-jpeg.tar.gz, the folder "
        "holding it, or an .npz of the decoded arrays.")
    add("--cache", default=None, help="Optional .npz cache of the decoded "
        "archive.")
    add("--out", required=True, help="Output folder (resumes if it holds "
        "a checkpoint).")
    add("--epochs", type=int, default=200)
    add("--warmup_epochs", type=int, default=5)
    add("--lr_step_epochs", default="160,180")
    add("--batch_size", type=int, default=128)
    add("--learning_rate", type=float, default=0.1)
    add("--weight_decay", type=float, default=5e-4)
    add("--imbalance_ratio", type=float, default=100.0)
    add("--lambdas", default="1,0,-1", help="One per expert; 1 expert "
        "with lambda 0 is LA.")
    add("--mixup_alpha", type=float, default=0.8, help="0 = no Mixup.")
    add("--max_degrees", type=float, default=15.0)
    add("--seed", type=int, default=1)
    add("--mixup_stream_seed", type=int, default=None, help="Diagnostic, "
        "not the reference: reseed the NumPy stream of Mixup weights (the "
        "reference draws the same sequence for every --seed).")
    add("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add("--augment", choices=("torchvision", "tensor"), default=None,
        help="Default: torchvision on the CPU, tensor on CUDA.")
    add("--compile", action="store_true", help="torch.compile the model "
        "(off = as the reference ships).")
    add("--threads", type=int, default=0, help="torch CPU threads (0: "
        "torch's default). The count sets the order of float sums, so runs "
        "with other counts take other trajectories; the checkpoint keeps "
        "the count and a resume with another one says so.")
    add("--checkpoint_every", type=int, default=1)
    add("--eval_every", type=int, default=0, help="Also score the test set "
        "after every N-th epoch into eval_log.csv (0: only at the end). "
        "Evaluation draws no random numbers, so training is unchanged.")
    add("--blocks_per_stage", type=int, default=5)
    add("--tiny", type=int, default=0, help="Smoke test: keep this many "
        "train images and every 20th test image.")
    return parser.parse_args(argv)


def load(args):
    """Long-tailed train arrays, test arrays, class counts."""
    path = args.data
    if path and os.path.isdir(path):
        path = os.path.join(path, "cifar10-jpeg.tar.gz")
    arrays = reference_data.read_cifar10_archive(path, args.cache)
    labels = arrays["train_labels"]
    num_classes = len(arrays["class_names"])
    index, counts = reference_data.long_tail_indices(
        labels, num_classes, args.imbalance_ratio)
    x, y = arrays["train_images"][index], labels[index]
    x_test, y_test = arrays["test_images"], arrays["test_labels"]
    if args.tiny:
        keep = np.sort(np.random.RandomState(1).permutation(len(y))[
            :args.tiny])
        x, y = x[keep], y[keep]
        x_test, y_test = x_test[::20], y_test[::20]
    return x, y, counts, x_test, y_test


def lr_factor(epoch, warmup, milestones, gamma=0.1):
    """The reference's per-epoch LR factor for the 0-based `epoch`."""
    factor = gamma ** sum(epoch >= m for m in milestones)
    if epoch < warmup:
        factor *= (epoch + 1) / warmup
    return factor


def balpoe_loss(expert_logits, labels, adjust):
    """Mean over experts of CE(z_m + tau_m log prior); logits (B, M, C)."""
    num_experts = expert_logits.shape[1]
    return sum(F.cross_entropy(expert_logits[:, m] + adjust[m], labels)
               for m in range(num_experts)) / num_experts


def build(args, counts):
    lambdas = [float(v) for v in args.lambdas.split(",")]
    torch.manual_seed(args.seed)
    model = ReferenceResNet32(len(counts), len(lambdas),
                              blocks=args.blocks_per_stage).to(args.device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.learning_rate, momentum=0.9,
        weight_decay=args.weight_decay, nesterov=True)
    milestones = [int(m) for m in args.lr_step_epochs.split(",") if m]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, args.warmup_epochs, milestones))
    prior = torch.tensor(counts, dtype=torch.float64)
    log_prior = torch.log(prior / prior.sum() + 1e-9).float()
    taus = 1.0 - torch.tensor(lambdas)
    adjust = (taus[:, None] * log_prior[None, :]).to(args.device)
    return model, optimizer, scheduler, adjust


def train_epoch(model, step, x, y, args, augment):
    """One epoch; returns (mean loss, images/s)."""
    model.train()
    order = torch.randperm(len(y)).numpy()
    start, total, seen = time.time(), 0.0, 0
    for k in range(0, len(y), args.batch_size):
        idx = order[k:k + args.batch_size]
        images = augment(x[idx], args.device)
        labels = torch.from_numpy(y[idx]).to(args.device)
        total += float(step(images, labels)) * len(idx)
        seen += len(idx)
    return total / seen, seen / (time.time() - start)


def make_step(model, optimizer, adjust, args):
    forward = torch.compile(model) if args.compile else model

    def step(images, labels):
        if args.mixup_alpha > 0:
            lam = float(np.random.beta(args.mixup_alpha, args.mixup_alpha))
            perm = torch.randperm(len(labels)).to(args.device)
            images = lam * images + (1 - lam) * images[perm]
            out = forward(images)
            loss = (lam * balpoe_loss(out, labels, adjust)
                    + (1 - lam) * balpoe_loss(out, labels[perm], adjust))
        else:
            loss = balpoe_loss(forward(images), labels, adjust)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


@torch.no_grad()
def predict(model, x, device, batch_size=256):
    """Mean of the expert logits, `(N, C)` float64 NumPy."""
    model.eval()
    out = [model(reference_data.to_tensor(x[k:k + batch_size], device))
           .mean(dim=1).double().cpu() for k in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def per_class_accuracy(pred, labels, num_classes):
    """`(C,)` fraction of each class's test images whose predicted class
    `pred` (`(N,)` ids) is right (NaN for a class without test images)."""
    hit = (pred == labels).astype(np.float64)
    per_class = np.full(num_classes, np.nan)
    for c in range(num_classes):
        if (labels == c).any():
            per_class[c] = hit[labels == c].mean()
    return per_class


def scores(logits, labels, counts, num_bins=15):
    """Accuracy, balanced/group accuracy, ECE/MCE (fractions), NLL (nats) and
    the reliability diagram's bins (`edges` (B + 1,), per-bin mean
    `confidence` and `accuracy` (fractions, 0 where empty), `count`)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    pred, conf = probs.argmax(1), probs.max(1)
    hit = (pred == labels).astype(np.float64)
    per_class = per_class_accuracy(pred, labels, len(counts))
    counts = np.asarray(counts)
    groups = {"many": counts > 100, "medium": (counts >= 20) & (
        counts <= 100), "few": counts < 20}
    edges = np.linspace(0, 1, num_bins + 1)
    bins = {"edges": edges.tolist(), "confidence": [], "accuracy": [],
            "count": []}
    gaps, weights = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        weights.append(inside.mean())
        bins["count"].append(int(inside.sum()))
        bins["confidence"].append(float(conf[inside].mean())
                                  if inside.any() else 0.0)
        bins["accuracy"].append(float(hit[inside].mean())
                                if inside.any() else 0.0)
        gaps.append(abs(bins["confidence"][-1] - bins["accuracy"][-1]))
    nll = -np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-300))
    summary = {"test/accuracy": float(hit.mean()),
               "test/balanced_accuracy": float(np.nanmean(per_class))}
    for name, mask in groups.items():
        values = per_class[mask & ~np.isnan(per_class)]
        summary[f"test/acc_{name}"] = (float(values.mean()) if values.size
                                       else None)
    summary.update({"test/ece": float(np.dot(weights, gaps)),
                    "test/mce": float(max(gaps)), "test/nll": nll})
    return summary, bins


def save_checkpoint(path, epoch, model, optimizer, scheduler):
    state = {"epoch": epoch, "threads": torch.get_num_threads(),
             "model": model.state_dict(),
             "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(),
             "python_rng": random.getstate()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def restore(path, model, optimizer, scheduler):
    """Loads a checkpoint if there is one; returns the epochs done."""
    if not os.path.exists(path):
        return 0
    state = torch.load(path, weights_only=False)
    threads = torch.get_num_threads()
    if state.get("threads", threads) != threads:
        print(f"replica: {path} trained on {state['threads']} torch "
              f"threads, this run uses {threads}: the float sums take "
              "another order, so from here on the run differs from one "
              "that keeps the count (pass --threads="
              f"{state['threads']} to keep it).", flush=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"])


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    augment_kind = args.augment or ("tensor" if args.device.startswith(
        "cuda") else "torchvision")
    augment = (reference_data.TensorAugment(args.max_degrees)
               if augment_kind == "tensor"
               else reference_data.TorchvisionAugment(args.max_degrees))
    os.makedirs(args.out, exist_ok=True)
    random.seed(args.seed)
    x, y, counts, x_test, y_test = load(args)  # reseeds NumPy with 0
    if args.mixup_stream_seed is not None:
        np.random.seed(args.mixup_stream_seed)  # A checkpoint overrides it.
    model, optimizer, scheduler, adjust = build(args, counts)
    ckpt = os.path.join(args.out, CHECKPOINT)
    done = restore(ckpt, model, optimizer, scheduler)
    step = make_step(model, optimizer, adjust, args)
    log_path = os.path.join(args.out, "train_log.csv")
    eval_path = os.path.join(args.out, EVAL_LOG)
    _truncate_log(log_path, done)
    _truncate_log(eval_path, done)
    print(f"replica: {len(y)} train images (counts {counts}), "
          f"{len(y_test)} test; {args.device}, augment={augment_kind}, "
          f"compile={args.compile}, {torch.get_num_threads()} threads"
          + (f"; resuming after epoch {done}" if done else ""), flush=True)
    start = time.time()
    for epoch in range(done, args.epochs):
        lr = optimizer.param_groups[0]["lr"]
        loss, rate = train_epoch(model, step, x, y, args, augment)
        scheduler.step()
        if not math.isfinite(loss):
            raise SystemExit(f"non-finite loss {loss} in epoch {epoch + 1}")
        _append_row(log_path, epoch, lr, loss, rate)
        print(f"epoch {epoch + 1}/{args.epochs} lr {lr:.4g} loss "
              f"{loss:.4f} {rate:.0f} img/s", flush=True)
        if args.eval_every and (epoch + 1) % args.eval_every == 0:
            summary, _ = scores(predict(model, x_test, args.device), y_test,
                                counts)
            _append_eval_row(eval_path, epoch, summary)
            print(f"epoch {epoch + 1} test: balanced accuracy "
                  f"{summary['test/balanced_accuracy']:.2%}, ECE "
                  f"{summary['test/ece']:.2%}", flush=True)
        if (epoch + 1) % args.checkpoint_every == 0 or epoch + 1 == \
                args.epochs:
            save_checkpoint(ckpt, epoch + 1, model, optimizer, scheduler)
    summary, reliability = scores(predict(model, x_test, args.device),
                                  y_test, counts)
    report = {"summary": summary, "reliability": reliability,
              "class_counts": counts,
              "config": vars(args) | {"augment": augment_kind},
              "train_seconds_this_invocation": round(time.time() - start, 1),
              "versions": {"torch": torch.__version__}}
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(summary, indent=1))
    return report


def _truncate_log(path, done):
    """Drops log rows of epochs after the checkpoint (a crashed tail)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if int(r[0]) < done]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept if done else [])
    if not done:
        os.remove(path)


def _append_eval_row(path, epoch, summary):
    """One `eval_log.csv` row: the 0-based epoch and `EVAL_KEYS`."""
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["epoch", *EVAL_KEYS])
        writer.writerow([epoch, *(summary[f"test/{key}"]
                                  for key in EVAL_KEYS)])


def _append_row(path, epoch, lr, loss, rate):
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["epoch", "learning_rate", "loss",
                             "images_per_sec"])
        writer.writerow([epoch, lr, loss, round(rate, 1)])


if __name__ == "__main__":
    main()
