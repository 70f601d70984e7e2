"""From slices to probabilities at the native 256x256, per patient (post-processing into masks:
`tuning.postprocessing`).

    volumes = predict_patients(model, slices, data, settings.flip_average)   # per patient
    mask = settings.mask(volumes[patient].probability)                       # [slices, 256, 256] bool
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from tuning.postprocessing import flip_averaged

BATCH = 32


@dataclasses.dataclass
class PatientVolume:
    """One patient's slices in slice order: indices, FLAIR images, true masks (None if unknown),
    and tumor probabilities at 256x256 (float16)."""

    index: list[int] = dataclasses.field(default_factory=list)
    flair: list[np.ndarray] = dataclasses.field(default_factory=list)
    truth: list[np.ndarray | None] = dataclasses.field(default_factory=list)
    probability_slices: list[np.ndarray] = dataclasses.field(default_factory=list)

    @property
    def probability(self) -> np.ndarray:
        return np.stack(self.probability_slices).astype(np.float32)

    @property
    def has_truth(self) -> bool:
        return all(t is not None for t in self.truth)

    @property
    def truth_volume(self) -> np.ndarray:
        return np.stack(self.truth)


def load_trained(spec: str | Path, dataset: str | None = None, data_dir: str | None = None,
                 engine: str | None = None):
    """(the model ready to predict, its RunConfig) from any model `tuning.models.locate` finds: a
    model.keras with train.py's config.json beside it, a run folder, a packed file, a shipped
    model's name. `engine` (`predictor.ENGINES`): 'keras' loads model.keras in safe mode
    (`predictor.for_inference`), 'litert' the folder's model.tflite (`predictor.LiteRTPredictor`);
    default: litert where the folder has one and TensorFlow uses no GPU, or has no model.keras.
    `dataset` and `data_dir` override what config.json records. Raises ValueError (one line naming
    the file) for a missing, corrupt or foreign model, or one config.json does not fit."""
    from brainmri_tfds.runtime import tensorflow_sees_a_gpu
    from tuning.evaluation.predictor import ENGINES, LiteRTPredictor, for_inference
    from tuning.models import LITERT_FILE, MODEL_FILE, locate
    from tuning.runfolder import RunConfig

    if engine not in (None, *ENGINES):
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    folder = locate(spec)
    try:
        run = RunConfig.read(folder)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    overrides = {k: v for k, v in {"dataset": dataset, "data_dir": data_dir}.items() if v is not None}
    run = dataclasses.replace(run, data=dataclasses.replace(run.data, **overrides))
    has_keras, has_litert = (folder / MODEL_FILE).is_file(), (folder / LITERT_FILE).is_file()
    if engine is None:
        engine = "litert" if has_litert and (not has_keras or not tensorflow_sees_a_gpu()) else "keras"
    if engine == "litert":
        path = folder / LITERT_FILE
        if not path.is_file():
            raise ValueError(f"{folder}: no {LITERT_FILE} to run with LiteRT (python -m tuning.models --pack "
                             "writes one; or --engine keras)")
        model = LiteRTPredictor(path)
    else:
        path = folder / MODEL_FILE
        if not has_keras:
            raise ValueError(f"{folder}: holds {LITERT_FILE} alone, which computes with --engine litert on the CPU")
        model = _load_keras(path)
    data = run.data
    expected = (None, data.image_size, data.image_size, data.n_channels)
    if tuple(model.input_shape) != expected:
        raise ValueError(f"{path}: model takes inputs {tuple(model.input_shape)} but config.json says "
                         f"{data.image_size}px with {data.n_channels} channel(s) ({data.channels}, context {data.context})")
    mask_shape = (None, data.image_size, data.image_size, 1)
    if not isinstance(model.output_shape, tuple) or tuple(model.output_shape) != mask_shape:
        raise ValueError(f"{path}: not a brainmri U-Net (it outputs {model.output_shape}, a U-Net outputs {mask_shape})")
    return (model if engine == "litert" else for_inference(model)), run


def _load_keras(path: Path):
    """model.keras loaded in safe mode, without its optimizer; ValueError naming the file when Keras cannot."""
    import keras

    import tuning.unet  # noqa: F401  (registers the U-Net's own layers for loading)

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a corrupt or foreign file
        reason = " ".join(str(err).split())  # Keras' messages span lines; the error is one line
        raise ValueError(f"{path}: not a loadable brainmri model ({type(err).__name__}: {reason})") from err


def predict_probabilities(model, images: np.ndarray, data, flip_average: bool) -> np.ndarray:
    """Probabilities [N, 256, 256] for one patient's uint8 slices [N, 256, 256, 3] in slice order,
    prepared by the one preprocessing training uses (`brainmri_tfds.preprocessing`, from `data`'s
    settings: the whole volume sets the levels and the brain square, neighbours are stacked)."""
    from brainmri_tfds.preprocessing import Preprocessor, neighbour_positions

    preprocessor = Preprocessor.from_settings(data)
    slices, patient = preprocessor.volume_pass(images)
    positions = neighbour_positions([len(images)], data.context)
    probabilities = []
    for start in range(0, len(images), BATCH):
        batch = preprocessor.model_input(slices, positions[start:start + BATCH])
        probability = flip_averaged(model.predict_on_batch, batch) if flip_average else model.predict_on_batch(batch)
        probabilities.append(preprocessor.paste_back(np.asarray(probability)[..., 0], patient))
    return np.concatenate(probabilities)


def predict_patients(model, slices: Iterable, data, flip_average: bool,
                     progress: bool = True) -> dict[str, PatientVolume]:
    """Per patient, from (patient, slice index, image uint8 256x256x3, mask uint8 256x256x1 or None)
    items in any order. Each patient's slices are gathered and put in slice order first, so that
    with `data.normalization` 'patient' the whole volume sets its levels, with `data.crop` 'brain'
    its brain square, and with `data.context` each slice's neighbours are known, as in training."""
    volumes: dict[str, PatientVolume] = {}
    inputs: dict[str, list[np.ndarray]] = {}
    for patient, index, image, mask in slices:
        volume = volumes.setdefault(patient, PatientVolume())
        volume.index.append(index)
        volume.flair.append(image[..., 1])
        volume.truth.append(None if mask is None else mask[..., 0].astype(bool))
        inputs.setdefault(patient, []).append(image)
    total = 0
    for patient, volume in volumes.items():
        order = np.argsort(volume.index, kind="stable")
        for name in ("index", "flair", "truth"):
            setattr(volume, name, [getattr(volume, name)[i] for i in order])
        unordered = inputs.pop(patient)
        images = np.stack([unordered[i] for i in order])
        probabilities = predict_probabilities(model, images, data, flip_average)
        volume.probability_slices = list(probabilities.astype(np.float16))
        total += len(images)
        if progress:
            print(f"\rpredicted {total} slices", end="", flush=True)
    if progress:
        print(f"\rpredicted {total} slices of {len(volumes)} patients")
    return volumes


def predict_ensemble(members: list[tuple], slices: Callable[[], Iterable], flip_average: bool,
                     progress: bool = True) -> dict[str, PatientVolume]:
    """`predict_patients` with each (model, data settings) of `members` on the same `slices()`,
    the probabilities averaged (an ensemble; one member is the model alone). Each model sees the
    slices prepared as it was trained (size, channels, normalisation)."""
    model, data = members[0]
    volumes = predict_patients(model, slices(), data, flip_average, progress)
    if len(members) == 1:
        return volumes
    totals = {p: [s.astype(np.float32) for s in v.probability_slices] for p, v in volumes.items()}
    for model, data in members[1:]:
        for patient, volume in predict_patients(model, slices(), data, flip_average, progress).items():
            for total, probability in zip(totals[patient], volume.probability_slices):
                total += probability
    for patient, volume in volumes.items():
        volume.probability_slices = [(total / len(members)).astype(np.float16) for total in totals[patient]]
    return volumes


def read_slices(data, split: str) -> Iterable:
    """(patient, slice index, image uint8 256x256x3, mask uint8 256x256x1) for every slice of a
    built TFDS split (`split`, any TFDS split string, of `data`'s dataset and data_dir)."""
    from brainmri_tfds import load_split

    for example in load_split(split, data.data_dir, data.config).as_numpy_iterator():
        yield example["patient_id"].decode(), int(example["slice_index"]), example["image"], example["mask"]


def flair_only(slices: Iterable) -> Iterable:
    """`read_slices`' items with pre- and post-contrast replaced by FLAIR, as a scan holding FLAIR
    alone is filled (`brainmri_tfds.readers.case.flair_everywhere`)."""
    from brainmri_tfds.readers.case import flair_everywhere

    for patient, index, image, mask in slices:
        yield patient, index, flair_everywhere(image), mask
