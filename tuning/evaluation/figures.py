"""Figures: training curves, the per-patient Dice distribution, and overlays of masks on a slice."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history: dict[str, list[float]], path: str | os.PathLike) -> None:
    """Loss and Dice per epoch, train vs validation (and the validation patients' mean Dice)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "dice")):
        epochs = np.arange(1, len(history.get(key, [])) + 1)
        columns = ((key, "train"), ("val_" + key, "validation"), ("val_patient_" + key, "validation, per patient"))
        for column, label in columns:
            if column in history:
                ax.plot(epochs, history[column], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dice_distribution(dice_per_patient: dict[str, float], path: str | os.PathLike) -> None:
    """Histogram of per-patient Dice with the mean and median marked."""
    values = np.array([v for v in dice_per_patient.values() if not np.isnan(v)])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(values, bins=np.linspace(0, 1, 21), color="tab:blue", alpha=0.7, edgecolor="white")
    if values.size:
        ax.axvline(values.mean(), color="tab:red", label=f"mean {values.mean():.3f}")
        ax.axvline(np.median(values), color="tab:green", linestyle="--", label=f"median {np.median(values):.3f}")
        ax.legend()
    ax.set_xlabel("Dice per patient (all slices of the patient)")
    ax.set_ylabel("patients")
    ax.set_title(f"{values.size} patients")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def overlay(flair: np.ndarray, truth: np.ndarray | None, predicted: np.ndarray, title: str,
            path: str | os.PathLike) -> None:
    """Panels: FLAIR, true mask (when known), predicted mask, and the contours over FLAIR
    (truth green, prediction red)."""
    panels = [(flair, "FLAIR"), (truth, "true mask"), (predicted, "predicted mask"), (flair, "contours")]
    panels = [(image, name) for image, name in panels if image is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6))
    for ax, (image, name) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image is flair else 1)
        ax.set_title(name)
        ax.axis("off")
    for mask, color in ((truth, "lime"), (predicted, "red")):
        if mask is not None and mask.any():
            axes[-1].contour(mask, levels=[0.5], colors=color, linewidths=1.2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
