"""PNG pictures of an evaluation: the embedding scatter with class centers, the confusion matrix.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): nothing touches the global
backend or needs a display, and nothing is left open. A PNG is `figsize · dpi` pixels (saved
without a tight bounding box) and is written under a temporary name, then renamed, so a viewer
never reads half a file.

The embedding scatter is the center-loss paper's figure (Wen et al. 2016, Fig. 3/6): the 2-D
features of each evaluated example coloured by class, the class centers marked. Wider
embeddings are shown by their PCA projection (`pca_project_2d`).
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tfmodels.model_dir import files

# Enough points to show every class's shape; more only slows drawing (and the PCA fit).
MAX_POINTS = 10000


def pca_project_2d(embeddings, centers=None):
    """Projects embeddings (and centers, with the same map) onto their top 2 principal axes.

    z = (x − μ) Vᵀ, with μ the mean of `embeddings` and V the top two eigenvectors of the
    scatter matrix S = X̃ᵀX̃ of the centered embeddings X̃ (the right singular vectors of X̃), each
    flipped so its largest-magnitude entry is positive, for a deterministic picture. When there
    are fewer points than dimensions the N×N Gram matrix X̃X̃ᵀ = U Λ Uᵀ is decomposed instead
    (V = X̃ᵀU Λ^(−1/2)): the cost is O(N·D·min(N, D) + min(N, D)³). A 2-D input is returned
    unchanged; a 1-D one gets a zero y.

    Args:
      embeddings: float [N, D].
      centers: optional float [K, D] (NaN rows stay NaN).

    Returns:
      (points [N, 2], centers [K, 2] or None, axis labels (x, y)).
    """
    embeddings = np.asarray(embeddings, np.float64)
    centers = None if centers is None else np.asarray(centers, np.float64)
    num_points, dim = embeddings.shape
    if dim == 2:
        return embeddings, centers, ("embedding[0]", "embedding[1]")
    if dim == 1:
        pad = lambda a: None if a is None else np.concatenate([a, np.zeros_like(a)], axis=1)
        return pad(embeddings), pad(centers), ("embedding[0]", "")
    mean = embeddings.mean(axis=0)
    centered = embeddings - mean
    if dim <= num_points:
        eigenvalues, vectors = np.linalg.eigh(centered.T @ centered)  # ascending
        components = vectors[:, ::-1][:, :2].T
    else:
        eigenvalues, vectors = np.linalg.eigh(centered @ centered.T)
        top = vectors[:, ::-1][:, :2]
        components = (centered.T @ top).T
        components /= np.maximum(np.linalg.norm(components, axis=1, keepdims=True),
                                 np.finfo(float).tiny)
    variance = np.maximum(eigenvalues[::-1][:2], 0.0)
    signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    explained = variance / max(float(np.sum(centered ** 2)), np.finfo(float).tiny)
    project = lambda a: None if a is None else (a - mean) @ components.T
    labels = tuple(f"PC{i + 1} ({100 * e:.0f}% of variance)" for i, e in enumerate(explained))
    return project(embeddings), project(centers), labels


def plot_embeddings(path, embeddings, labels, centers=None, *, title="", class_names=None,
                    figsize=(6.0, 6.0), dpi=100, max_points=MAX_POINTS, seed=0):
    """Scatter of the (PCA-projected) embeddings coloured by class, centers as black-edged X.

    Args:
      path: the PNG to write (folders are created).
      embeddings: float [N, D].
      labels: int [N] in [0, K).
      centers: optional float [K, D] class centers (NaN rows are not drawn).
      title: figure title.
      class_names: optional K names for the legend (default the class indices).
      figsize, dpi: the PNG is figsize[0]·dpi × figsize[1]·dpi pixels.
      max_points: at most this many points, a seeded uniform sample (the PCA is fitted on
        it too, which bounds its cost).
      seed: seed of that sample.

    Returns:
      `path`.
    """
    labels = np.asarray(labels, np.int64)
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise ValueError(f"embeddings {embeddings.shape} and labels {labels.shape} must be "
                         "[N, D] and [N]")
    num_classes = len(centers) if centers is not None else int(labels.max(initial=-1)) + 1
    if len(embeddings) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(embeddings), max_points,
                                                          replace=False))
        embeddings, labels = embeddings[keep], labels[keep]
    points, center_points, axis_labels = pca_project_2d(embeddings, centers)
    colors = _class_colors(num_classes)
    figure, axes = _figure(figsize, dpi)
    size = 12.0 if len(points) <= 2000 else 4.0  # small sets: visible dots; large: less overlap
    for j in range(num_classes):
        mine = labels == j
        if mine.any():
            axes.scatter(points[mine, 0], points[mine, 1], s=size, alpha=0.6, color=colors[j],
                         linewidths=0, rasterized=True)
    if center_points is not None:
        drawn = np.isfinite(center_points).all(axis=1)
        axes.scatter(center_points[drawn, 0], center_points[drawn, 1], s=120, marker="X",
                     color=colors[drawn], edgecolors="black", linewidths=1.2, zorder=3)
    if num_classes <= 20:
        # Proxy handles: legend markers of one readable size, whatever the scatter sizes.
        names = class_names if class_names is not None else [str(j) for j in range(num_classes)]
        handles = [Line2D([], [], linestyle="", marker="o", markersize=6, color=colors[j],
                          label=names[j]) for j in range(num_classes)]
        if center_points is not None:
            handles.append(Line2D([], [], linestyle="", marker="X", markersize=9,
                                  color="lightgray", markeredgecolor="black", label="centers"))
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                    fontsize="small", frameon=False)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, path, dpi)


def plot_confusion_matrix(path, confusion, *, title="", class_names=None, figsize=(6.0, 6.0),
                          dpi=100):
    """The confusion matrix, coloured by row-normalised rate, counts written in the cells.

    Cell (i, j): examples of true class i predicted as j; colour = count / row total (the
    recall of class i on the diagonal). Counts are written when K <= 20.

    Args:
      path: the PNG to write.
      confusion: int [K, K] (rows: true class, columns: predicted).
      title, class_names, figsize, dpi: as `plot_embeddings`.

    Returns:
      `path`.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion of shape {confusion.shape} must be square [K, K]")
    num_classes = len(confusion)
    totals = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    figure, axes = _figure(figsize, dpi)
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    if num_classes <= 30:
        names = class_names if class_names is not None else [str(j) for j in range(num_classes)]
        axes.set_xticks(range(num_classes), names, rotation=90 if num_classes > 10 else 0)
        axes.set_yticks(range(num_classes), names)
    if num_classes <= 20:
        for i in range(num_classes):
            for j in range(num_classes):
                axes.text(j, i, str(int(confusion[i, j])), ha="center", va="center",
                          fontsize="x-small", color="white" if rates[i, j] > 0.5 else "black")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, path, dpi)


def plot_roc(path, far, tar, *, title="", figsize=(5.0, 5.0), dpi=100):
    """The verification ROC: true accept rate against false accept rate (log scale, the
    points with FAR > 0), with the chance diagonal.

    Args:
      path: the PNG to write.
      far, tar: the curve's points (`verification.roc`), ascending FAR.
      title, figsize, dpi: as `plot_embeddings`.

    Returns:
      `path`.
    """
    far, tar = np.asarray(far, np.float64), np.asarray(tar, np.float64)
    if far.shape != tar.shape or far.ndim != 1:
        raise ValueError(f"far {far.shape} and tar {tar.shape} must be equal-length vectors")
    shown = far > 0
    figure, axes = _figure(figsize, dpi)
    axes.plot(far[shown], tar[shown], lw=1.5, label="model")
    low = far[shown].min() if shown.any() else 1e-4
    chance = np.logspace(np.log10(low), 0, 50)
    axes.plot(chance, chance, ls="--", color="grey", lw=1, label="chance")
    axes.set_xscale("log")
    axes.set_xlim(low, 1.0)
    axes.set_ylim(0.0, 1.01)
    axes.set_xlabel("false accept rate (different pairs accepted)")
    axes.set_ylabel("true accept rate (same pairs accepted)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, path, dpi)


def _class_colors(num_classes):
    from matplotlib import colormaps

    # Qualitative maps keep neighbouring classes distinguishable; beyond 20 classes use a
    # continuous map sampled evenly.
    if num_classes <= 10:
        return np.asarray(colormaps["tab10"].colors)[:num_classes]
    if num_classes <= 20:
        return np.asarray(colormaps["tab20"].colors)[:num_classes]
    return colormaps["turbo"](np.linspace(0.0, 1.0, num_classes))


def _figure(figsize, dpi):
    if len(figsize) != 2 or min(figsize) <= 0 or dpi <= 0:
        raise ValueError(f"figsize={figsize!r} and dpi={dpi!r} must be positive")
    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, path, dpi):
    """Write the PNG under a temporary name and rename it in (`model_dir.files`: the umask's
    mode, no folder left behind when the first write fails)."""
    return files.write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi),
                              suffix=".png")
