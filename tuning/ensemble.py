"""One Keras model that averages the tumor probabilities of several U-Nets (an ensemble).

    ensemble = average_models([keras.saving.load_model(p, compile=False) for p in paths])
    ensemble.save("model.keras")   # evaluate.py and predictions use it as they use one U-Net

Single models trained with other seeds disagree on the same patient; their average is steadier.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from tuning.runfolder import atomic_path


def average_models(members: list[keras.Model], name: str | None = None) -> keras.Model:
    """A model whose output is the mean of `members`' outputs on the same input.

    Every member must take the same input shape and give one output. The members are renamed
    member0, member1, ... (a model's layers need unique names) and keep their weights.
    """
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(members)}")
    shapes = {tuple(m.input_shape) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"the models take different inputs: {sorted(shapes, key=str)}")
    for index, member in enumerate(members):
        member.name = f"member{index}"
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    outputs = keras.layers.Average(name="mask", dtype="float32")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=name or f"ensemble{len(members)}")


def save_ensemble(folders: list[Path], path: str | os.PathLike) -> None:
    """The ensemble of the model.keras in each of `folders`, saved to `path` whole."""
    members = [keras.saving.load_model(Path(folder) / "model.keras", compile=False) for folder in folders]
    ensemble = average_models(members, name=f"ensemble{len(members)}_{members[0].name}")
    with atomic_path(path) as partial:
        ensemble.save(partial)
