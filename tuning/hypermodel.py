"""A U-Net built from explicit values, and the Keras Tuner hypermodel that searches over them.

`build_unet(**values)` needs no tuner, so a saved `best_hparams.json` rebuilds its model:

    model = build_unet(image_size=128, channels=3, depth=4, base_filters=16)
    compile_unet(model, learning_rate=1e-3, loss="bce_dice")
"""

from __future__ import annotations

import dataclasses

import keras
import keras_tuner

from brainmri_tfds import pipeline

from tuning.losses import LOSS_NAMES, make_loss, training_metrics

DEPTHS = (2, 3, 4, 5)
# Widths searched by default (first-layer filters; `search.py --base-filters` widens them). On 2 CPUs
# at 128x128 (benchmarks/RESULTS.md, issue 5 budget): 64 trains at 20 images/s, 250 s an epoch of
# Kaggle's ~3,200 training slices, so its training alone overruns the 2-hour budget; 8 is slower
# than 16 in bfloat16 (32 against 120 images/s) with a quarter of the weights.
BASE_FILTERS = (16, 32)
UPSAMPLING = ("transpose", "bilinear")
BATCH_SIZES = (8, 16, 32)


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Everything that fixes a U-Net's architecture and training recipe."""

    depth: int = 4
    base_filters: int = 16
    batch_norm: bool = True
    dropout: float = 0.1
    upsampling: str = "transpose"
    learning_rate: float = 1e-3
    loss: str = "bce_dice"
    batch_size: int = 16
    # Oversample tumour slices to this share of each epoch (0: as the split has them, 1/3 in the dev data).
    # 0.5 raised cross-validated per-patient Dice from 0.636 to 0.713 (benchmarks/RESULTS.md).
    tumour_share: float = 0.5
    augment_strength: float = 1.0  # scales the augmentation's rotation, zoom and intensity ranges
    # Validate, keep and predict with an exponential moving average of the weights (Polyak
    # averaging) with this momentum; 0: the raw weights.
    ema_momentum: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1), got {self.ema_momentum}")

    def architecture(self) -> dict:
        """The keyword arguments of `build_unet` besides the input shape."""
        return {k: getattr(self, k) for k in ("depth", "base_filters", "batch_norm", "dropout", "upsampling")}

    @classmethod
    def from_values(cls, values: dict) -> "UNetConfig":
        """From a dict such as `best_hparams.json`'s "hyperparameters"; unknown keys are an error."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown}; known: {sorted(names)}")
        return cls(**values)


def check_structure(image_size: int, channels: int, depths=DEPTHS) -> None:
    """Raises ValueError unless a U-Net of every depth in `depths` fits `image_size` x `channels`."""
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    for depth in depths:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if image_size < 2**depth or image_size % 2**depth:
            raise ValueError(
                f"image_size {image_size} must be divisible by 2**depth = {2**depth} (depth {depth}); "
                f"use a multiple of {2 ** max(depths)}"
            )


@keras.saving.register_keras_serializable(package="brainmri")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization computed by TensorFlow's fused kernel, in the layer's compute dtype.

    Keras' own layer casts bfloat16 inputs to float32 and normalises with separate element-wise
    ops, each of whose float32 results is kept for the backward pass; the fused kernel takes
    bfloat16 in and out (statistics in float32) and keeps only its input. Same weights, same
    results up to rounding (the moving variance uses the unbiased batch variance, as tf.keras did);
    training at 256x256x3 with 32 filters needs about a quarter less memory. Falls back to Keras'
    implementation off the TensorFlow backend and for masks, renorm or a channel axis not last.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        inputs = tf.cast(inputs, self.compute_dtype)
        if training and self.trainable:
            outputs, moving_mean, moving_variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance, epsilon=self.epsilon,
                is_training=True, exponential_avg_factor=1.0 - self.momentum)
            self.moving_mean.assign(moving_mean)
            self.moving_variance.assign(moving_variance)
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance, epsilon=self.epsilon,
            is_training=False)
        return outputs


def _conv_block(x, filters: int, batch_norm: bool, prefix: str, dtype: str):
    for n in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{prefix}_conv{n}",
                                dtype=dtype)(x)
        if batch_norm:
            # momentum 0.9: the moving statistics settle within tens of steps (the default 0.99
            # leaves them far off after the few hundred steps a CPU run takes, ruining inference).
            x = FusedBatchNormalization(momentum=0.9, name=f"{prefix}_bn{n}", dtype=dtype)(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{n}", dtype=dtype)(x)
    return x


def build_unet(
    image_size: int = 128,
    channels: int = 3,
    depth: int = 4,
    base_filters: int = 16,
    batch_norm: bool = True,
    dropout: float = 0.1,
    upsampling: str = "transpose",
    precision: str = "float32",
) -> keras.Model:
    """U-Net with `depth` down-sampling levels, filters doubling per level, one sigmoid output.

    Input `[batch, image_size, image_size, channels]` float in [0, 1]; output
    `[batch, image_size, image_size, 1]` float32, the probability of tumour per pixel.
    `precision` is a Keras dtype policy for every layer but the output: `float32` or
    `mixed_bfloat16` (see tuning/precision.py).
    """
    check_structure(image_size, channels, (depth,))
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"enc{level}", precision)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool", dtype=precision)(x)
    x = _conv_block(x, base_filters * 2**depth, batch_norm, "bottleneck", precision)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout", dtype=precision)(x)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        if upsampling == "transpose":
            x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"dec{level}_up", dtype=precision)(x)
        else:
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_resize", dtype=precision)(x)
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"dec{level}_up", dtype=precision)(x)
        x = keras.layers.Concatenate(name=f"dec{level}_concat", dtype=precision)([x, skips[level]])
        x = _conv_block(x, filters, batch_norm, f"dec{level}", precision)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(inputs, outputs, name=f"unet_d{depth}_f{base_filters}")


def compile_unet(model: keras.Model, learning_rate: float, loss: str, ema_momentum: float = 0.0) -> keras.Model:
    """Compiles with Adam, the named loss, and Dice and IoU metrics.

    With `ema_momentum` in (0, 1) Adam also keeps a moving average of the weights; fit with
    `ema_callbacks` to validate and save that average.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, use_ema=ema_momentum > 0, ema_momentum=ema_momentum),
        loss=make_loss(loss),
        metrics=training_metrics(),
    )
    return model


def ema_callbacks(ema_momentum: float) -> list[keras.callbacks.Callback]:
    """What `fit` needs so that validation, early stopping and saved models use the weights' moving
    average (none for `ema_momentum` 0). Put it before the callbacks that save models."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema_momentum else []


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

    def declare(self, hp: keras_tuner.HyperParameters) -> UNetConfig:
        """Declares every hyperparameter (flat, each with its default) and returns their values."""
        defaults = UNetConfig()
        width = defaults.base_filters if defaults.base_filters in self.base_filters else self.base_filters[0]
        return UNetConfig(
            depth=hp.Int("depth", min(self.depths), max(self.depths), default=defaults.depth),
            base_filters=hp.Choice("base_filters", self.base_filters, default=width),
            batch_norm=hp.Boolean("batch_norm", default=defaults.batch_norm),
            dropout=hp.Float("dropout", 0.0, 0.3, step=0.1, default=defaults.dropout),
            upsampling=hp.Choice("upsampling", UPSAMPLING, default=defaults.upsampling),
            learning_rate=hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=defaults.learning_rate),
            loss=hp.Choice("loss", LOSS_NAMES, default=defaults.loss),
            batch_size=hp.Choice("batch_size", BATCH_SIZES, default=defaults.batch_size),
            tumour_share=hp.Fixed("tumour_share", defaults.tumour_share),
            augment_strength=hp.Fixed("augment_strength", defaults.augment_strength),
            ema_momentum=hp.Fixed("ema_momentum", defaults.ema_momentum),
        )

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = self.declare(hp)
        model = build_unet(self.image_size, self.channels, **config.architecture(), precision=self.precision)
        return compile_unet(model, config.learning_rate, config.loss, config.ema_momentum)

    def fit(self, hp, model, x, *args, validation_data=None, **kwargs):
        """`x` and `validation_data` are unbatched datasets; batching here is how batch size is tuned
        (Keras ignores `fit(batch_size=...)` for a dataset)."""
        config = self.declare(hp)
        x = pipeline.batch(x, config.batch_size, augment=self.augment, seed=self.seed, tumour_share=config.tumour_share,
                           augment_strength=config.augment_strength, slice_channels=self.slice_channels)
        if validation_data is not None:
            validation_data = pipeline.batch(validation_data, config.batch_size)
        kwargs["callbacks"] = ema_callbacks(config.ema_momentum) + list(kwargs.get("callbacks") or [])
        return model.fit(x, *args, validation_data=validation_data, **kwargs)
