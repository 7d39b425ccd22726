"""Small plotting helpers for the demos: figures as uint8 RGB arrays.

matplotlib is imported lazily, only when a plot is drawn; without it :func:`line_plot` falls
back to a plain Pillow drawing (lines, axes box, legend text), so the gallery still writes
every PNG.

Example:
    >>> import numpy as np
    >>> img = line_plot({'sin': (np.arange(10), np.sin(np.arange(10)))}, title='demo')
    >>> img.dtype, img.ndim
    (dtype('uint8'), 3)
"""
from __future__ import annotations

import numpy as np

__all__ = ["have_matplotlib", "pyplot", "figure_to_array", "line_plot", "bar_plot", "panel_figure"]

_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def have_matplotlib() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (ImportError if matplotlib is missing)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def figure_to_array(fig, dpi: int = 100, close: bool = True) -> np.ndarray:
    """Render a matplotlib figure to a uint8 (H, W, 3) array (and close it)."""
    fig.set_dpi(dpi)
    fig.canvas.draw()
    arr = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
    if close:
        pyplot().close(fig)
    return arr


def line_plot(series: dict, title: str = "", xlabel: str = "", ylabel: str = "", size=(7.0, 3.6),
              styles: dict | None = None, logy: bool = False, dpi: int = 100) -> np.ndarray:
    """Plot ``{label: (x, y)}`` as lines; returns the picture as uint8 (H, W, 3).

    Args:
        series: label -> (x, y) arrays, drawn in order.
        styles: label -> dict of matplotlib keyword arguments (e.g. ``{'marker': 'o'}``).
        logy: logarithmic y axis.
        size: figure size in inches (matplotlib) ; the Pillow fallback uses size * dpi pixels.
    """
    styles = styles or {}
    if have_matplotlib():
        plt = pyplot()
        fig, ax = plt.subplots(figsize=size)
        for label, (x, y) in series.items():
            ax.plot(x, y, label=label, **styles.get(label, {}))
        if logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return figure_to_array(fig, dpi)
    return _pillow_lines(series, title, (int(size[0] * dpi), int(size[1] * dpi)), logy)


def _pillow_lines(series, title, size, logy, margin=40) -> np.ndarray:
    from PIL import Image, ImageDraw
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()])
    if logy:
        ys = np.log10(np.maximum(ys, 1e-12))
    x0, x1 = xs.min(), xs.max() if xs.max() > xs.min() else xs.min() + 1
    y0, y1 = ys.min(), ys.max() if ys.max() > ys.min() else ys.min() + 1
    w, h = size[0] - 2 * margin, size[1] - 2 * margin
    draw.rectangle([margin, margin, margin + w, margin + h], outline="black")
    for k, (label, (x, y)) in enumerate(series.items()):
        y = np.log10(np.maximum(np.asarray(y, float), 1e-12)) if logy else np.asarray(y, float)
        pts = [(margin + w * (a - x0) / (x1 - x0), margin + h * (1 - (b - y0) / (y1 - y0))) for a, b in zip(x, y)]
        color = _PALETTE[k % len(_PALETTE)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        draw.text((margin + 8, margin + 6 + 12 * k), label, fill=color)
    draw.text((margin, 10), f"{title}  (x {x0:.3g}..{x1:.3g}, y {y0:.3g}..{y1:.3g}{' log10' if logy else ''})",
              fill="black")
    return np.asarray(img)


def bar_plot(values: dict, title: str = "", ylabel: str = "", size=(4.5, 3.2), ylim=None, dpi: int = 100) -> np.ndarray:
    """Bars ``{label: value}`` with the values written on them; uint8 (H, W, 3)."""
    labels, vals = list(values), [float(v) for v in values.values()]
    if have_matplotlib():
        plt = pyplot()
        fig, ax = plt.subplots(figsize=size)
        bars = ax.bar(labels, vals, color=[np.array(c) / 255 for c in _PALETTE[:len(vals)]])
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.2f}", ha="center", va="bottom")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        fig.tight_layout()
        return figure_to_array(fig, dpi)
    from PIL import Image, ImageDraw
    W, H = int(size[0] * dpi), int(size[1] * dpi)
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    top = max(max(vals), 1e-12) if ylim is None else ylim[1]
    bw = (W - 40) // max(len(vals), 1)
    for k, (lab, v) in enumerate(zip(labels, vals)):
        x = 20 + k * bw
        hgt = int((H - 70) * v / top)
        draw.rectangle([x + 8, H - 30 - hgt, x + bw - 8, H - 30], fill=_PALETTE[k % len(_PALETTE)])
        draw.text((x + 8, H - 25), lab, fill="black")
        draw.text((x + 8, H - 45 - hgt), f"{v:.2f}", fill="black")
    draw.text((10, 8), title, fill="black")
    return np.asarray(img)


def panel_figure(items, ncols: int | None = None, title: str = "", cell: float = 2.6, dpi: int = 100,
                 fontsize: int = 9) -> np.ndarray:
    """Show images side by side, each with a title; returns uint8 (H, W, 3).

    Args:
        items: sequence of ``(title, image)`` with uint8 images (H, W) or (H, W, 3), shown
            pixel for pixel (nearest, no smoothing).
        ncols: columns (default: all in one row, up to 6).
        title: a title over the whole figure.
        cell: inches per panel.

    Without matplotlib the titles are dropped and the images tiled by
    :func:`fastconv.io.image_grid`.
    """
    items = list(items)
    n = len(items)
    ncols = min(n, 6) if ncols is None else int(ncols)
    nrows = -(-n // ncols)
    if not have_matplotlib():
        from fastconv.io import image_grid
        return image_grid([im for _, im in items], ncols=ncols)
    plt = pyplot()
    aspect = max(im.shape[0] / im.shape[1] for _, im in items)
    lines = max(t.count("\n") + 1 for t, _ in items)
    height = nrows * (cell * aspect + 0.2 * lines * fontsize / 9) + (0.45 if title else 0.1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, height), squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (t, im) in zip(axes.ravel(), items):
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, interpolation="nearest",
                  vmin=0 if im.ndim == 2 else None, vmax=255 if im.ndim == 2 else None)
        ax.set_title(t, fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    return figure_to_array(fig, dpi)
