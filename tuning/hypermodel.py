"""The Keras Tuner hypermodel: which U-Net settings the search tries, and how a trial trains.

Each trial's values become a `tuning.architecture.UNetArchitecture` and a `tuning.recipe.TrainingRecipe`,
built and trained as
`train.py` calls, so the winner in best_hparams.json rebuilds without a tuner.
"""

from __future__ import annotations

import keras
import keras_tuner

from brainmri_tfds import pipeline
from tuning.architecture import BASE_FILTERS, DEPTHS, UPSAMPLING, UNetArchitecture, check_structure
from tuning.patient_dice import PatientDice
from tuning.recipe import BATCH_SIZES, LOSS_NAMES, TrainingRecipe
from tuning.unet import build_unet, compile_unet, ema_callbacks


class UNetHyperModel(keras_tuner.HyperModel):
    """Searches depth, width, batch norm, dropout, up-sampling, learning rate, loss and batch size."""

    def __init__(self, image_size: int = 128, channels: int = 3, depths=DEPTHS, augment: bool = True, seed: int = 0,
                 precision: str = "float32", base_filters=BASE_FILTERS, slice_channels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_structure(image_size, channels, depths)
        if not base_filters or min(base_filters) < 1:
            raise ValueError(f"base_filters must be one or more positive filter counts, got {base_filters}")
        self.base_filters = tuple(sorted(set(base_filters)))
        self.precision = precision
        self.image_size = image_size
        self.channels = channels
        self.slice_channels = slice_channels  # of one slice, where `channels` stacks neighbouring slices
        self.depths = tuple(depths)
        self.augment = augment
        self.seed = seed

    def declare(self, hp: keras_tuner.HyperParameters) -> tuple[UNetArchitecture, TrainingRecipe]:
        """Declares every hyperparameter (flat, each with its default) and returns their values."""
        layers, defaults = UNetArchitecture(), TrainingRecipe()
        width = layers.base_filters if layers.base_filters in self.base_filters else self.base_filters[0]
        architecture = UNetArchitecture(
            depth=hp.Int("depth", min(self.depths), max(self.depths),
                         default=min(max(layers.depth, min(self.depths)), max(self.depths))),
            base_filters=hp.Choice("base_filters", self.base_filters, default=width),
            batch_norm=hp.Boolean("batch_norm", default=layers.batch_norm),
            dropout=hp.Float("dropout", 0.0, 0.3, step=0.1, default=layers.dropout),
            upsampling=hp.Choice("upsampling", UPSAMPLING, default=layers.upsampling),
        )
        return architecture, TrainingRecipe(
            learning_rate=hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=defaults.learning_rate),
            loss=hp.Choice("loss", LOSS_NAMES, default=defaults.loss),
            batch_size=hp.Choice("batch_size", BATCH_SIZES, default=defaults.batch_size),
            tumor_share=hp.Fixed("tumor_share", defaults.tumor_share),
            tumor_weighting=hp.Fixed("tumor_weighting", defaults.tumor_weighting),
            augment_strength=hp.Fixed("augment_strength", defaults.augment_strength),
            ema_momentum=hp.Fixed("ema_momentum", defaults.ema_momentum),
        )

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        architecture, recipe = self.declare(hp)
        model = build_unet(self.image_size, self.channels, **architecture.keywords(), precision=self.precision)
        return compile_unet(model, recipe.learning_rate, recipe.loss, recipe.ema_momentum)

    def fit(self, hp, model, x, *args, validation_data=None, validation_patients=None, **kwargs):
        """`x` and `validation_data` are unbatched datasets; batching here is how batch size is tuned
        (Keras ignores `fit(batch_size=...)` for a dataset). With `validation_patients` (the patient
        of each validation slice, in order), every epoch logs their mean per-patient Dice
        (`tuning.patient_dice`), the search's objective."""
        _, recipe = self.declare(hp)
        x = pipeline.batch(x, recipe.batch_size, augment=self.augment, seed=self.seed, tumor_share=recipe.tumor_share,
                           augment_strength=recipe.augment_strength, slice_channels=self.slice_channels,
                           tumor_weighting=recipe.tumor_weighting)
        scoring = []
        if validation_data is not None:
            if validation_patients is not None:
                scoring = [PatientDice(validation_data, validation_patients)]
            validation_data = pipeline.batch(validation_data, recipe.batch_size)
        kwargs["callbacks"] = ema_callbacks(recipe.ema_momentum) + scoring + list(kwargs.get("callbacks") or [])
        kwargs.setdefault("shuffle", False)  # the tf.data pipeline shuffles; Keras' own does not apply to a Dataset
        return model.fit(x, *args, validation_data=validation_data, **kwargs)
