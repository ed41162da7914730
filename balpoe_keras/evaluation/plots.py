"""PNG plots of an evaluation report (matplotlib, imported lazily).

Every function takes parts of the JSON-ready report dict, so plots can also
be redrawn later from a saved `report.json`.
"""

import os

import numpy as np


class _Figures:
    """Figures made without pyplot: the caller's matplotlib backend and
    figure list (a notebook's) are left as they are; PNGs are written
    through Agg by `Figure.savefig`."""

    @staticmethod
    def subplots(nrows=1, ncols=1, *, figsize=None, **kwargs):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    @staticmethod
    def close(fig):
        del fig  # Not in pyplot's list: nothing to release.


def _pyplot():
    import matplotlib  # noqa: F401 - an ImportError names matplotlib.

    return _Figures


def plot_reliability_diagram(reliability, path, *, ece, mce, title=None):
    """Reliability diagram in the style of the paper's Fig. 7.

    Bars give the accuracy of each confidence bin, the shaded part the gap to
    the bin's mean confidence (the diagonal is perfect calibration).

    Args:
        reliability: dict with lists `edges` `(B + 1,)`, `accuracy`,
            `confidence`, `count` `(B,)` (fractions).
        path: output PNG path.
        ece: float, ECE; mce: float, MCE (fractions, shown in % in the
            title).
        title: optional title prefix.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    _draw_reliability(ax, reliability, ece=ece, mce=mce, title=title)
    _save(fig, path, plt)


def plot_reliability_grid(panels, path):
    """Reliability diagrams side by side, e.g. two implementations.

    Args:
        panels: rows of panels; each panel a dict with `reliability` (as in
            `plot_reliability_diagram`), `ece` and `mce` (fractions) and
            `title`, or None for an empty cell.
        path: output PNG path.
    """
    plt = _pyplot()
    rows, cols = len(panels), max(len(row) for row in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows),
                             squeeze=False)
    for r, row in enumerate(panels):
        for c in range(cols):
            panel = row[c] if c < len(row) else None
            if panel is None:
                axes[r][c].axis("off")
                continue
            _draw_reliability(axes[r][c], panel["reliability"],
                              ece=panel["ece"], mce=panel["mce"],
                              title=panel.get("title"))
    _save(fig, path, plt)


def _draw_reliability(ax, reliability, *, ece, mce, title=None):
    edges = np.asarray(reliability["edges"], np.float64)
    acc = np.asarray(reliability["accuracy"], np.float64)
    conf = np.asarray(reliability["confidence"], np.float64)
    count = np.asarray(reliability["count"], np.float64)
    left, width = edges[:-1], np.diff(edges)
    filled = count > 0
    ax.bar(left[filled], acc[filled], width=width[filled], align="edge",
           color="#1f77b4", edgecolor="black", label="Accuracy")
    ax.bar(left[filled], (conf - acc)[filled], bottom=acc[filled],
           width=width[filled], align="edge", color="#d62728", alpha=0.3,
           edgecolor="#d62728", hatch="//", label="Gap")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="Perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Confidence", ylabel="Accuracy")
    prefix = f"{title}\n" if title else ""
    ax.set_title(f"{prefix}ECE = {100 * ece:.2f}%, MCE = {100 * mce:.2f}%",
                 fontsize="medium")
    ax.legend(loc="upper left")


def plot_per_class_accuracy(per_class_accuracy, class_counts, path):
    """Per-class test accuracy (%) vs training count (log x axis).

    Args:
        per_class_accuracy: `C` fractions, None for classes without test
            images (not drawn).
        class_counts: `C` training counts.
        path: output PNG path.
    """
    plt = _pyplot()
    acc = np.array([np.nan if v is None else 100.0 * v
                    for v in per_class_accuracy])
    counts = np.asarray(class_counts, np.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(counts, acc, s=12, alpha=0.7)
    for edge in (20, 100):  # few < 20 <= medium <= 100 < many
        ax.axvline(edge, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set(xlabel="Training images per class (log scale)",
           ylabel="Test accuracy (%)", ylim=(-2, 102),
           title="Per-class accuracy vs training count")
    _save(fig, path, plt)


def plot_expert_priors(expert_prior, class_counts, path):
    """Paper Fig. 4: each expert's estimated vs expected test prior.

    One panel per expert (plus the ensemble); classes are sorted by training
    count, largest first. Estimated = mean softmax probability on the
    balanced test set; expected is proportional to `pi^lambda`.

    Args:
        expert_prior: dict with `experts` (list) and `ensemble`, each holding
            `lambda`, `estimated`, `expected` (`C` floats) and `kl`.
        class_counts: `C` training counts.
        path: output PNG path.
    """
    plt = _pyplot()
    order = np.argsort(-np.asarray(class_counts), kind="stable")
    panels = [(f"expert {m}", p) for m, p in enumerate(expert_prior["experts"])]
    panels.append(("ensemble", expert_prior["ensemble"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2),
                             squeeze=False, sharey=True)
    x = np.arange(order.size)
    for ax, (name, prior) in zip(axes[0], panels):
        ax.plot(x, np.asarray(prior["estimated"])[order], label="estimated")
        ax.plot(x, np.asarray(prior["expected"])[order], "--",
                label=r"expected $\propto \pi^\lambda$")
        ax.set_yscale("log")
        kl = prior["kl"]  # None where it is infinite (JSON has no inf).
        ax.set_title(f"{name}, λ={prior['lambda']:.2f}\n"
                     f"KL={'inf' if kl is None else f'{kl:.3f}'} nats",
                     fontsize=9)
        ax.set_xlabel("class (by training count)")
    axes[0][0].set_ylabel("prior probability")
    axes[0][0].legend(fontsize=8)
    _save(fig, path, plt)


def write_plots(report, out_dir):
    """Draws all three plots of a JSON-ready report; returns `name -> path`."""
    ensemble = report["balanced"]["ensemble"]
    paths = {
        "reliability": os.path.join(out_dir, "reliability.png"),
        "per_class_accuracy": os.path.join(out_dir, "per_class_accuracy.png"),
        "expert_prior": os.path.join(out_dir, "expert_prior.png"),
    }
    plot_reliability_diagram(
        ensemble["reliability"], paths["reliability"], ece=ensemble["ece"],
        mce=ensemble["mce"], title="BalPoE",
    )
    plot_per_class_accuracy(
        ensemble["per_class_accuracy"], report["class_counts"],
        paths["per_class_accuracy"],
    )
    plot_expert_priors(
        report["balanced"]["expert_prior"], report["class_counts"],
        paths["expert_prior"],
    )
    return paths


def _save(fig, path, plt):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
