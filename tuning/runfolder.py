"""The run folder: the JSON files that travel beside a model, as typed records, and how every file
there is written.

    <search>/best_hparams.json        tuning/search.py -> train.py --best       BestHparams
    <run>/config.json                 train.py -> evaluate.py                   RunConfig
    <run>/inference.json              train.py -> evaluate.py                   InferenceChoice
    <run>/eval-<split>/report.json    evaluate.py -> tuning.crossval            write_report / read_report

One writer: `atomic_path` (write a temporary file beside the target, then rename it over), so a
reader finds the old file or the new one, never half of one; JSON, models and Keras Tuner's state
all go through it. One policy for unknown keys (`from_fields`): a key a record does not know is an
error naming the file, so a typo in a hand-edited file is never silently ignored. Keys that older
versions did not write take their documented old meaning (`LEGACY_DEFAULTS`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

from brainmri_tfds.settings import DataSettings
from tuning.postprocessing import InferenceSettings
from tuning.recipe import TrainingRecipe
from tuning.architecture import UNetArchitecture

# What a file written before a key existed meant by leaving it out.
LEGACY_DEFAULTS = {
    # trained on raw values before per-patient normalisation, on single slices before 2.5D input, and on
    # whole slices before the brain crop
    DataSettings: {"normalization": "none", "context": 0, "crop": "none", "data_dir": None},
}
LEGACY_NAMES = {"tumour_share": "tumor_share"}  # renamed keys: old -> new


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path beside `path` (same suffix) to write to; when the block ends without
    an error, it replaces `path` whole, with the permissions `open` would give it (the umask's).
    On an error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.partial-", suffix=path.suffix or ".tmp")
    os.close(handle)
    umask = os.umask(0)  # read it (the only way), then put it back
    os.umask(umask)
    os.chmod(partial, 0o666 & ~umask)  # mkstemp's file is the owner's alone; a written file is as open() makes it
    try:
        yield Path(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text)


def write_json(path: str | os.PathLike, values: dict) -> None:
    """Writes `values` as JSON (NaN as null: JSON has no NaN), atomically."""
    write_text(path, json.dumps(_without_nan(values), indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike, what: str) -> dict:
    """Reads a JSON file, with a one-line error naming it when it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err})") from err


def _without_nan(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(v) for v in value]
    return value


def from_fields(cls, values: dict, where: str, **given):
    """`cls(**values, **given)` for a dataclass, after the one policy: unknown keys are an error
    naming `where`; renamed keys are read under their new name; keys older files lack take their
    old meaning (LEGACY_DEFAULTS)."""
    values = {LEGACY_NAMES.get(k, k): v for k, v in values.items()}
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(names - set(given))}")
    try:
        return cls(**{**LEGACY_DEFAULTS.get(cls, {}), **values, **given})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def read_hyperparameters(values: dict, where: str) -> tuple[UNetArchitecture, TrainingRecipe]:
    """A flat "hyperparameters" object (as Keras Tuner names them) -> (architecture, recipe), under
    `from_fields`' policy: a key neither knows is an error naming `where`."""
    values = {LEGACY_NAMES.get(k, k): v for k, v in values.items()}
    layers = {f.name for f in dataclasses.fields(UNetArchitecture)}
    known = layers | {f.name for f in dataclasses.fields(TrainingRecipe)}
    if set(values) - known:
        raise ValueError(f"{where}: unknown keys {sorted(set(values) - known)}; known: {sorted(known)}")
    architecture = from_fields(UNetArchitecture, {k: v for k, v in values.items() if k in layers}, where)
    return architecture, from_fields(TrainingRecipe, {k: v for k, v in values.items() if k not in layers}, where)


def hyperparameters_json(architecture: UNetArchitecture, recipe: TrainingRecipe) -> dict:
    """The flat "hyperparameters" object `read_hyperparameters` reads."""
    return {**dataclasses.asdict(architecture), **dataclasses.asdict(recipe)}


@dataclasses.dataclass(frozen=True)
class BestHparams:
    """best_hparams.json: the search's winner and the data it was found on."""

    architecture: UNetArchitecture
    recipe: TrainingRecipe
    data: DataSettings
    score: float | None = None
    objective: str = "val_dice"
    trial_id: str | None = None
    tuner: str | None = None

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, {"hyperparameters": hyperparameters_json(self.architecture, self.recipe),
                          "data": self.data.to_json(),
                          "score": self.score, "objective": self.objective, "trial_id": self.trial_id,
                          "tuner": self.tuner})

    @classmethod
    def read(cls, path: str | os.PathLike) -> "BestHparams":
        values = dict(read_json(path, "best_hparams.json"))
        where = str(path)
        try:
            architecture, recipe = read_hyperparameters(values.pop("hyperparameters"), f"{where} hyperparameters")
            data = from_fields(DataSettings, values.pop("data"), f"{where} data")
        except KeyError as err:
            raise ValueError(f"{where}: no {err} entry") from None
        return from_fields(cls, values, where, architecture=architecture, recipe=recipe, data=data)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """config.json: everything it takes to reproduce a training run and to evaluate its model."""

    data: DataSettings
    architecture: UNetArchitecture = dataclasses.field(default_factory=UNetArchitecture)
    recipe: TrainingRecipe = dataclasses.field(default_factory=TrainingRecipe)
    splits: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    epochs: int | None = None
    patience: int | None = None
    augment: bool = True
    precision: str = "float32"
    source: str = "default"
    strategy: str = "default"
    replicas: int = 1
    global_batch_size: int | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    command: str = ""
    # the outcome, once training has ended
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_val_dice: float | None = None  # every validation pixel pooled
    best_val_patient_dice: float | None = None  # the validation patients' mean Dice (`tuning.patient_dice`)
    members: list | None = None  # of an ensemble: each member's folder, seed and outcome

    # Two runs with the same settings may differ in these and still train the same model.
    UNCOMPARED = ("command", "versions", "best_epoch", "best_val_loss", "best_val_dice", "best_val_patient_dice",
                  "members")

    @property
    def finished(self) -> bool:
        return self.best_epoch is not None

    @property
    def test_split(self) -> str:
        return self.splits.get("test", "test")

    def settings(self) -> dict:
        """What fixes the trained model: every field but UNCOMPARED."""
        return {k: v for k, v in self.to_json().items() if k not in self.UNCOMPARED}

    def to_json(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(hyperparameters=hyperparameters_json(values.pop("architecture"), values.pop("recipe")),
                      data=self.data.to_json())
        return {k: v for k, v in values.items() if v is not None}

    def write(self, folder: str | os.PathLike) -> None:
        write_json(Path(folder) / "config.json", self.to_json())

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "RunConfig":
        path = Path(folder) / "config.json"
        values = dict(read_json(path, "config.json (written by train.py beside the model)"))
        if "data" not in values:
            raise ValueError(f"{path}: no 'data' entry")
        architecture, recipe = read_hyperparameters(values.pop("hyperparameters", {}), f"{path} hyperparameters")
        data = from_fields(DataSettings, values.pop("data"), f"{path} data")
        return from_fields(cls, values, str(path), architecture=architecture, recipe=recipe, data=data)


def package_versions() -> dict[str, str]:
    """Python's and the main packages' versions, as config.json records them."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "keras-tuner", "tensorflow-datasets", "numpy", "opencv-python-headless"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def finished_training(folder: str | os.PathLike, run: RunConfig) -> RunConfig | None:
    """The record of a model in `folder` that finished training with `run`'s settings, else None
    (no model, unfinished, other settings, or an unreadable config.json)."""
    folder = Path(folder)
    if not (folder / "model.keras").is_file():
        return None
    try:
        saved = RunConfig.read(folder)
    except (FileNotFoundError, ValueError):
        return None
    return saved if saved.finished and saved.settings() == run.settings() else None


@dataclasses.dataclass(frozen=True)
class InferenceChoice:
    """inference.json: how probabilities become masks and what they scored on the `split` patients
    (files written before 2026-12-07 also hold every candidate setting's score there)."""

    settings: InferenceSettings
    split: str
    mean_patient_dice: float
    candidates: list = dataclasses.field(default_factory=list)

    def write(self, folder: str | os.PathLike) -> None:
        write_json(Path(folder) / "inference.json", {**dataclasses.asdict(self), "settings": self.settings.to_json()})

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "InferenceChoice | None":
        """inference.json in `folder`, or None where train.py wrote none."""
        path = Path(folder) / "inference.json"
        if not path.is_file():
            return None
        values = dict(read_json(path, "inference.json"))
        settings = from_fields(InferenceSettings, values.pop("settings", {}), f"{path} settings")
        return from_fields(cls, values, str(path), settings=settings)


def write_report(folder: str | os.PathLike, report: dict) -> Path:
    """report.json in `folder` (evaluate.py's scores; see tuning.evaluation.scoring.summarize)."""
    path = Path(folder) / "report.json"
    write_json(path, report)
    return path


def read_report(folder: str | os.PathLike) -> dict:
    return read_json(Path(folder) / "report.json", "report.json (written by evaluate.py)")
