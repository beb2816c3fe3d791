"""grid.png (degraded input | naive baseline | teacher | each stage | ground truth) and pareto.png (latency vs
PSNR), drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from edgeir.report.markdown import rows


def shown_input(degraded: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The degraded input at output size (nearest neighbour, so low resolution stays visible)."""
    ry, rx = size[0] // degraded.shape[0], size[1] // degraded.shape[1]
    return np.repeat(np.repeat(degraded, ry, 0), rx, 1)


def grid(columns: list[tuple[str, list[np.ndarray]]], path: Path) -> None:
    n_rows = len(columns[0][1])
    fig, axes = plt.subplots(n_rows, len(columns), figsize=(2.2 * len(columns), 2.3 * n_rows), squeeze=False)
    for c, (title, images) in enumerate(columns):
        for r, img in enumerate(images):
            ax = axes[r][c]
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pareto(report: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, m in rows(report):
        if m.get("latency_ms") is None:
            continue
        marker = "s" if label in ("naive baseline", "teacher") else "o"
        ax.scatter(m["latency_ms"], m["psnr"], marker=marker, s=50)
        ax.annotate(f"{label}\n(detail {m['detail']:.2f})", (m["latency_ms"], m["psnr"]), fontsize=7,
                    xytext=(5, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("latency per image, ms (log scale)")
    ax.set_ylabel("PSNR vs ground truth, dB (Y)")
    ax.set_title("latency vs fidelity; detail in brackets")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
