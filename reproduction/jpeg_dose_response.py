r"""JPEG dose-response: BalPoE + Mixup on the archive re-encoded lower.

The offline CIFAR-10 archive is JPEG quality 75; the paper trains on the
lossless CIFAR-10. This measures how accuracy and calibration move with
the JPEG quality: the archive is re-encoded with Pillow at each
`--qualities` value below 75 (same chroma subsampling as the source, into a
cache folder, never into the repository), then the default path (the
experiment runner, TensorFlow backend, tf.data, BalPoE + Mixup 0.8, the
reference recipe scaled to `--epochs`; the same command as
`reproduction/paired.py`'s `tfdata` path) trains each `--seeds` on each
quality. Quality 75 is the archive as shipped.

    python reproduction/jpeg_dose_response.py --data_dir=../shared/data \
        --epochs=20 --seeds=1,2 --workdir=runs/jpeg_dose \
        --results_md=reproduction/RESULTS.md

Runs resume and finished ones are skipped, so rerunning continues. The
table (mean [min, max] over the seeds; PSNR of each re-encoding against the
quality-75 pixels) goes to stdout, `<workdir>/jpeg_dose.md` and, with
`--results_md`, between the `jpeg-dose` markers of that file.
Re-encoding an already compressed image is not the same as compressing the
original once: the slope says how sensitive the recipe is to JPEG loss,
not what the lossless data would give.
"""

import argparse
import io
import json
import math
import os
import sys
import tarfile
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "reproduction"))

import paired  # noqa: E402
from reproduce import update_markdown  # noqa: E402

from balpoe_keras.data.archive import CIFAR10_ARCHIVE  # noqa: E402
from balpoe_keras.data.archive import find_cifar10_archive  # noqa: E402
from balpoe_keras.data.source import default_cache_dir  # noqa: E402

SHIPPED_QUALITY = 75
MARKERS = ("<!-- jpeg-dose:start -->", "<!-- jpeg-dose:end -->")


def source_subsampling(archive):
    """Pillow's chroma subsampling code of the archive's first JPEG
    (0: 4:4:4, 1: 4:2:2, 2: 4:2:0)."""
    from PIL import Image
    from PIL import JpegImagePlugin

    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.lower().endswith(".jpg"):
                with Image.open(tar.extractfile(member)) as image:
                    return JpegImagePlugin.get_sampling(image)
    raise ValueError(f"{archive} holds no .jpg file.")


def reencode(archive, quality, folder):
    """Writes `folder/cifar10-jpeg.tar.gz`: every JPEG of `archive`
    decoded and saved again at `quality`, same subsampling, same names.

    Returns:
        `(path, psnr)`: the new archive and the peak signal-to-noise ratio
        (dB) of its pixels against the source's, over all images.
    """
    from PIL import Image

    path = os.path.join(folder, CIFAR10_ARCHIVE)
    stats_path = path + ".json"
    if os.path.exists(path) and os.path.exists(stats_path):
        with open(stats_path) as f:
            stats = json.load(f)
        # Made from this archive at this quality: reused; else made anew.
        if (stats.get("source") == archive
                and stats.get("quality") == quality):
            return path, stats["psnr"]
    os.makedirs(folder, exist_ok=True)
    subsampling = source_subsampling(archive)
    squared, count = 0.0, 0
    tmp = f"{path}.tmp"
    with tarfile.open(archive) as source, tarfile.open(tmp, "w:gz") as out:
        for member in source:
            data = source.extractfile(member).read() if member.isfile() \
                else None
            if data is not None and member.name.lower().endswith(".jpg"):
                with Image.open(io.BytesIO(data)) as image:
                    pixels = np.asarray(image.convert("RGB"), np.float64)
                    buffer = io.BytesIO()
                    image.save(buffer, "JPEG", quality=quality,
                               subsampling=subsampling)
                data = buffer.getvalue()
                with Image.open(io.BytesIO(data)) as again:
                    diff = np.asarray(again.convert("RGB"), np.float64)
                squared += float(((diff - pixels) ** 2).sum())
                count += pixels.size
                member = tarfile.TarInfo(member.name)
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None
                        else None)
    os.replace(tmp, path)
    psnr = 10 * math.log10(255.0 ** 2 / (squared / max(count, 1)))
    with open(stats_path, "w") as f:
        json.dump({"quality": quality, "psnr": psnr,
                   "subsampling": subsampling, "source": archive}, f)
    return path, psnr


def archives(args):
    """`{quality: (folder holding the archive, PSNR or None)}`."""
    shipped = find_cifar10_archive(args.data_dir)
    found = {SHIPPED_QUALITY: (os.path.dirname(shipped), None)}
    for quality in _qualities(args):
        if quality != SHIPPED_QUALITY:
            folder = os.path.join(args.cache_dir, f"q{quality}")
            path, psnr = reencode(shipped, quality, folder)
            found[quality] = (os.path.dirname(path), psnr)
    return found


def cached_archives(args):
    """`archives` for the table alone: no archive is read or re-encoded;
    the PSNR of each re-encoded quality comes from its cache (None when
    that cache is gone)."""
    found = {SHIPPED_QUALITY: (args.data_dir or "", None)}
    for quality in _qualities(args):
        if quality != SHIPPED_QUALITY:
            folder = os.path.join(args.cache_dir, f"q{quality}")
            stats = os.path.join(folder, CIFAR10_ARCHIVE + ".json")
            psnr = None
            if os.path.exists(stats):
                with open(stats) as f:
                    psnr = json.load(f)["psnr"]
            found[quality] = (folder, psnr)
    return found


def _qualities(args):
    return [int(q) for q in args.qualities.split(",")]


def _seeds(args):
    return [int(s) for s in args.seeds.split(",")]


def run_args(args, quality):
    """The arguments `paired.command` reads, for one quality."""
    return types.SimpleNamespace(
        epochs=args.epochs, workdir=os.path.join(args.workdir, f"q{quality}"))


def commands(args, found):
    """`[(quality, seed, report path, argv)]` of every planned run."""
    plan = []
    for quality in _qualities(args):
        sub = run_args(args, quality)
        for seed in _seeds(args):
            argv = paired.command(sub, "tfdata", "balpoe_mixup", seed,
                                  found[quality][0])
            plan.append((quality, seed, paired.report_path(
                sub, "tfdata", "balpoe_mixup", seed), argv))
    return plan


def collect(args, found):
    """`{quality: {seed: summary}}` of the finished runs, accuracies and
    ECE in % (`paired.collect`'s units)."""
    results = {}
    for quality, seed, report, _ in commands(args, found):
        if os.path.exists(report):
            with open(report) as f:
                results.setdefault(quality, {})[seed] = paired._percent(
                    json.load(f)["summary"])
    return results


def slope(results, key):
    """Least-squares change of the seed mean of `key` per 10 quality
    steps, or None with fewer than two qualities."""
    points = [(q, np.mean([s[f"test/{key}"] for s in runs.values()]))
              for q, runs in sorted(results.items()) if runs]
    if len(points) < 2:
        return None
    q, v = np.array(points, np.float64).T
    return float(np.polyfit(q, v, 1)[0] * 10)


def format_table(results, found):
    """Markdown: one row per quality (highest first)."""
    lines = ["| JPEG quality | PSNR vs q75 (dB) | seeds | bal. acc | ECE |",
             "|---|---|---|---|---|"]
    for quality in sorted(results, reverse=True):
        runs = results[quality]
        psnr = found.get(quality, (None, None))[1]
        cells = [paired._cell([s[f"test/{k}"] for s in runs.values()])
                 for k in ("balanced_accuracy", "ece")]
        shipped = " (as shipped)" if quality == SHIPPED_QUALITY else ""
        lines.append(f"| {quality}{shipped}"
                     f" | {'–' if psnr is None else f'{psnr:.1f}'} | "
                     f"{','.join(str(s) for s in sorted(runs))} | "
                     + " | ".join(cells) + " |")
    seed_sets = {q: sorted(runs) for q, runs in results.items() if runs}
    if len({tuple(seeds) for seeds in seed_sets.values()}) > 1:
        lines.append("\nThe qualities have different seeds (" + "; ".join(
            f"{q}: {','.join(map(str, seeds))}"
            for q, seeds in sorted(seed_sets.items(), reverse=True))
            + "): the slopes below mix seed noise into the quality's "
            "effect.")
    for key, label in (("balanced_accuracy", "balanced accuracy"),
                       ("ece", "ECE")):
        value = slope(results, key)
        if value is not None:
            lines.append(f"\nSlope of the {label}: {value:+.2f} points per "
                         "10 JPEG quality steps (least squares over the "
                         "seed means).")
    return "\n".join(lines)


def run_all(args, found):
    import subprocess

    for quality, seed, report, argv in commands(args, found):
        if os.path.exists(report):
            continue
        print(f"quality {quality}, seed {seed}: {' '.join(argv)}",
              flush=True)
        subprocess.run(argv, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=None,
                        help="Folder holding cifar10-jpeg.tar.gz.")
    parser.add_argument("--cache_dir", default=os.path.join(
        default_cache_dir(), "jpeg_dose"), help="Where the re-encoded "
        "archives go (outside the repository).")
    parser.add_argument("--qualities", default="75,50,30")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workdir", default="runs/jpeg_dose")
    parser.add_argument("--table_only", action="store_true")
    parser.add_argument("--results_md", default=None)
    args = parser.parse_args(argv)
    found = cached_archives(args) if args.table_only else archives(args)
    if not args.table_only:
        run_all(args, found)
    table = format_table(collect(args, found), found)
    os.makedirs(args.workdir, exist_ok=True)
    with open(os.path.join(args.workdir, "jpeg_dose.md"), "w") as f:
        f.write(table + "\n")
    if args.results_md:
        update_markdown(args.results_md, table, MARKERS)
    print(table)
    return table


if __name__ == "__main__":
    main()
