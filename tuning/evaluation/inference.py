"""From scans to masks: probabilities at the native 256x256, then threshold and 3D clean-up.

    settings = InferenceSettings()      # threshold 0.5, largest 3D component only, flip averaging
    volumes = predict_patients(model, slices, data, settings.flip_average)   # per patient
    mask = settings.mask(volumes[patient].probability)                       # [slices, 256, 256] bool

- `flip_average`: the model also sees each slice mirrored left-right; the two probability maps
  (the second mirrored back) are averaged.
- `threshold`: a pixel is tumor where the probability exceeds it.
- `keep_fraction`: the thresholded slices of a patient, stacked in slice order, form a volume;
  its 3D connected components (26-connectivity) smaller than `keep_fraction` times the largest
  one are removed. 0 keeps everything, 1 keeps the largest component only (as the dataset
  authors' PyTorch port does).

The defaults are fixed, not chosen per model: choosing among 40 settings on 8 validation patients
scored no higher on the test patients in any 80-patient cross-validation round, and lower in three
of four (docs/experiments.md). `score_settings`
still scores every candidate on the validation patients; train.py keeps the table in
inference.json beside the model, and evaluate.py reads the settings from it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

NATIVE = 256
BATCH = 32
THRESHOLDS = (0.5, 0.3, 0.4, 0.6, 0.7)  # the default first: ties keep it
KEEP_FRACTIONS = (0.0, 0.1, 0.3, 1.0)


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """How probabilities become a patient's mask; the defaults are what train.py writes."""

    threshold: float = 0.5
    keep_fraction: float = 1.0
    flip_average: bool = True

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if not 0.0 <= self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in [0, 1], got {self.keep_fraction}")

    def mask(self, probability: np.ndarray) -> np.ndarray:
        """Boolean mask [slices, H, W] of one patient from its probabilities [slices, H, W]."""
        return keep_components(probability > self.threshold, self.keep_fraction)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def keep_components(volume: np.ndarray, keep_fraction: float) -> np.ndarray:
    """`volume` [slices, H, W] bool without the 3D components smaller than keep_fraction x the largest."""
    if keep_fraction <= 0.0 or not volume.any():
        return volume
    from scipy import ndimage

    labels, count = ndimage.label(volume, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]  # voxels per component 1..count
    kept = np.flatnonzero(sizes >= keep_fraction * sizes.max()) + 1
    return np.isin(labels, kept)


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


def load_trained(path: str | Path, dataset: str | None = None, data_dir: str | None = None):
    """(model loaded in safe mode, ready to predict (`predictor.for_inference`); its RunConfig) from a model.keras
    with train.py's config.json beside it. `dataset` and `data_dir` override what config.json records. Raises ValueError (one
    line naming the file) for a missing, corrupt or foreign model, or one config.json does not fit."""
    import keras

    from tuning.evaluation.predictor import for_inference
    from tuning.runfolder import RunConfig
    import tuning.unet  # noqa: F401  (registers the U-Net's own layers for loading)

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    try:
        run = RunConfig.read(path.parent)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    overrides = {k: v for k, v in {"dataset": dataset, "data_dir": data_dir}.items() if v is not None}
    run = dataclasses.replace(run, data=dataclasses.replace(run.data, **overrides))
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a corrupt or foreign file
        reason = " ".join(str(err).split())  # Keras' messages span lines; the error is one line
        raise ValueError(f"{path}: not a loadable brainmri model ({type(err).__name__}: {reason})") from err
    data = run.data
    expected = (None, data.image_size, data.image_size, data.n_channels)
    if tuple(model.input_shape) != expected:
        raise ValueError(f"{path}: model takes inputs {tuple(model.input_shape)} but config.json says "
                         f"{data.image_size}px with {data.n_channels} channel(s) ({data.channels}, context {data.context})")
    mask_shape = (None, data.image_size, data.image_size, 1)
    if not isinstance(model.output_shape, tuple) or tuple(model.output_shape) != mask_shape:
        raise ValueError(f"{path}: not a brainmri U-Net (it outputs {model.output_shape}, a U-Net outputs {mask_shape})")
    return for_inference(model), run


def predict_probabilities(model, images: np.ndarray, data, flip_average: bool, box=None) -> np.ndarray:
    """Probabilities [N, 256, 256] for one patient's uint8 slices [N, 256, 256, 3] in slice order,
    already normalised as `data.normalization` says (`predict_patients` does that), cut to `box`
    [top, left, side] (None: the whole slice; see `brainmri_tfds.cropping`), resized, cut to
    `data`'s channels and, with `data.context`, stacked with their neighbours as in training."""
    import tensorflow as tf

    from brainmri_tfds.cropping import crop_to_box, paste_from_box
    from brainmri_tfds.pipeline import neighbour_positions, prepare_image, stack_neighbours

    box = np.array([0, 0, NATIVE]) if box is None else box
    slices = prepare_image(crop_to_box(images, box), data.image_size, data.channels)
    positions = neighbour_positions([len(images)], data.context)
    probabilities = []
    for start in range(0, len(images), BATCH):
        batch = stack_neighbours(slices, positions[start:start + BATCH])
        probability = model.predict_on_batch(batch)
        if flip_average:
            mirrored = model.predict_on_batch(tf.reverse(batch, axis=[2]))
            probability = (probability + tf.reverse(mirrored, axis=[2]).numpy()) / 2.0
        probabilities.append(paste_from_box(np.asarray(probability)[..., 0], box, NATIVE))
    return np.concatenate(probabilities)


def predict_patients(model, slices: Iterable, data, flip_average: bool,
                     progress: bool = True) -> dict[str, PatientVolume]:
    """Per patient, from (patient, slice index, image uint8 256x256x3, mask uint8 256x256x1 or None)
    items in any order. Each patient's slices are gathered and put in slice order first, so that
    with `data.normalization` 'patient' the whole volume sets its levels, with `data.crop` 'brain'
    its brain square, and with `data.context` each slice's neighbours are known, as in training."""
    from brainmri_tfds.cropping import brain_box
    from brainmri_tfds.normalization import apply_levels, patient_levels

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
        box = brain_box(images) if data.crop == "brain" else None  # on the raw values, as in training
        if data.normalization == "patient":
            images = apply_levels(images, patient_levels(images)).numpy()
        probabilities = predict_probabilities(model, images, data, flip_average, box)
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


def read_slices(data, split: str | None = None, folder: str | None = None) -> Iterable:
    """(patient, slice index, image uint8 256x256x3, mask uint8 256x256x1 or None) for every slice
    of a built TFDS split (`split`, any TFDS split string, of `data`'s dataset and data_dir) or of
    a Kaggle-layout folder or zip that never went through TFDS (`folder`; mask None if absent)."""
    if folder is not None:
        from brainmri_tfds import layout

        source = layout.open_source(folder)
        for item, image, mask in layout.read_slices(source, layout.list_slices(source, masks_required=False)):
            yield item.patient_id, item.slice_index, image, mask
        return
    from brainmri_tfds import load_split

    for example in load_split(split, data.data_dir, data.config).as_numpy_iterator():
        yield example["patient_id"].decode(), int(example["slice_index"]), example["image"], example["mask"]


def patient_dice(truths: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Each patient's Dice of all their slices pooled (tuning.evaluation.scoring's rules)."""
    from tuning.evaluation.scoring import confusion, dice

    return {p: float(dice(*confusion(truths[p], masks[p])[:3])) for p in truths}


def mean_patient_dice(truths: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> float:
    """Mean over patients of `patient_dice`."""
    return float(np.mean(list(patient_dice(truths, masks).values())))


def candidate_settings(flips=(False, True), thresholds=THRESHOLDS,
                       keep_fractions=KEEP_FRACTIONS) -> list[InferenceSettings]:
    """The settings `score_settings` scores, simplest first (no flip, threshold 0.5, keep everything)."""
    return [InferenceSettings(threshold, keep, flip) for flip in sorted(flips)
            for threshold, keep in itertools.product(thresholds, keep_fractions)]


def score_settings(truths: dict[str, np.ndarray], probabilities: dict[bool, dict[str, np.ndarray]],
                   thresholds=THRESHOLDS, keep_fractions=KEEP_FRACTIONS) -> list[dict]:
    """Every candidate setting with its mean per-patient Dice, in `candidate_settings`' order.

    `probabilities[flip_average][patient]` holds [slices, H, W] probabilities with and without flip
    averaging."""
    table = []
    for settings in candidate_settings(tuple(probabilities), thresholds, keep_fractions):
        flip = probabilities[settings.flip_average]
        score = mean_patient_dice(truths, {p: settings.mask(flip[p]) for p in truths})
        table.append({**settings.to_json(), "mean_patient_dice": score})
    return table


def first_best(table: list[dict]) -> dict:
    """The first row of a scored candidate table with the highest mean_patient_dice (candidates
    are tried simplest first, so a tie keeps the simpler)."""
    best = max(row["mean_patient_dice"] for row in table)
    return next(row for row in table if row["mean_patient_dice"] == best)


def predict_both_ways(model, data, split: str) -> tuple[dict[str, np.ndarray], dict[bool, dict[str, np.ndarray]]]:
    """(true masks, probabilities without and with flip averaging) of each patient of `split`."""
    probabilities, truths = {}, {}
    for flip in (False, True):
        volumes = predict_patients(model, read_slices(data, split), data, flip, progress=False)
        probabilities[flip] = {p: v.probability for p, v in volumes.items()}
        truths = {p: v.truth_volume for p, v in volumes.items()}
    return truths, probabilities


def score_on(model, data, split: str) -> list[dict]:
    """`score_settings` on the patients of `split` (the validation split), predicted both ways."""
    return score_settings(*predict_both_ways(model, data, split))
