"""The U-Net: a builder of explicit values (the architecture's: `tuning.architecture`) and how it
is compiled. Nothing here knows the dataset; how a U-Net is trained is `tuning.recipe`.

`build_unet(**values)` needs no tuner, so a saved `best_hparams.json` rebuilds its model:

    model = build_unet(image_size=128, channels=3, depth=4, base_filters=16)
    model = build_unet(128, 3, **run.architecture.keywords())
    compile_unet(model, learning_rate=1e-3, loss="bce_dice")
"""

from __future__ import annotations

import functools

import keras

from tuning.architecture import UNetArchitecture, check_structure
from tuning.losses import make_loss, training_metrics

BATCH_NORM_IMPLEMENTATIONS = ("auto", "fused", "parts")


@functools.cache
def onednn_batch_norm_is_slow() -> bool:
    """Whether oneDNN's batch norm is the slow one here: below AVX-512 (AVX2 CPUs) its kernel is slower
    than a 1x1 depthwise convolution at normalising the U-Net's channels-last tensors, so `parts`
    trains faster there, and slower with AVX-512 (measured: docs/experiments.md). Not where a GPU
    computes."""
    import tensorflow as tf

    from brainmri_tfds import runtime

    return runtime.onednn_enabled() and runtime.onednn_below_avx512() and not tf.config.list_physical_devices("GPU")


def resolve_batch_norm(implementation: str, compute_dtype: str) -> str:
    """`fused` or `parts`: what FusedBatchNormalization's `implementation` means on this machine."""
    if implementation == "auto":
        return "parts" if compute_dtype == "float32" and onednn_batch_norm_is_slow() else "fused"
    return implementation


def add_batch_norm_argument(parser) -> None:
    """`--batch-norm`, as the speed benchmarks take it (default auto, as train.py builds)."""
    parser.add_argument("--batch-norm", choices=BATCH_NORM_IMPLEMENTATIONS, default="auto",
                        help="how the batch norms compute (default auto: parts where oneDNN runs below AVX-512, "
                             "in float32, fused elsewhere; tuning/unet.py)")


def batch_norm_in_use(model: keras.Model) -> str:
    """How `model`'s batch norms compute on this machine: `fused`, `parts`, or `none` without any."""
    for layer in model.layers:
        if isinstance(layer, FusedBatchNormalization):
            return layer.resolved_implementation
    return "none"


def _batch_norm_in_parts(inputs, gamma, beta, epsilon: float):
    """Batch norm over a float32 NHWC batch, computed in parts: the statistics as two sums (the
    variance as the mean of squares less the squared mean), the normalization as a 1x1 depthwise
    convolution plus a bias, and the gradient by TensorFlow's fused batch-norm gradient kernel.
    Returns the output, the batch mean and the unbiased batch variance (for the moving averages)."""
    import tensorflow as tf

    channels = inputs.shape[-1]

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        rows = tf.reshape(x, [-1, channels])
        count = tf.cast(tf.shape(rows)[0], tf.float32)
        mean = tf.reduce_sum(rows, 0) / count
        variance = tf.maximum(tf.reduce_sum(tf.square(rows), 0) / count - tf.square(mean), 0.0)
        scale = gamma * tf.math.rsqrt(variance + epsilon)
        outputs = _scale_and_shift(x, scale, beta - mean * scale)

        def gradient(upstream, *unused_statistics_gradients):
            dx, dgamma, dbeta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
                y_backprop=upstream, x=x, scale=gamma, reserve_space_1=mean, reserve_space_2=variance,
                reserve_space_3=tf.zeros([0]), epsilon=epsilon, data_format="NHWC", is_training=True)
            return dx, dgamma, dbeta

        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        return (outputs, tf.stop_gradient(mean), tf.stop_gradient(unbiased)), gradient

    # Tensors, not the variables: the tape outside reads them, and custom_gradient takes no variables.
    return normalize(inputs, tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta))


def _scale_and_shift(x, scale, shift):
    """x * scale + shift per channel, as a 1x1 depthwise convolution and a bias (oneDNN's fast kernels)."""
    import tensorflow as tf

    kernel = tf.reshape(scale, [1, 1, -1, 1])
    return tf.nn.bias_add(tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID"), shift)


@keras.saving.register_keras_serializable(package="brainmri")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization computed by TensorFlow's fused kernel, in the layer's compute dtype.

    Keras' own layer casts bfloat16 inputs to float32 and normalises with separate element-wise
    ops, each of whose float32 results is kept for the backward pass; the fused kernel takes
    bfloat16 in and out (statistics in float32) and keeps only its input. Same weights, same
    results up to rounding (the moving variance uses the unbiased batch variance, as tf.keras did);
    training at 256x256x3 with 32 filters needs about a quarter less memory. Falls back to Keras'
    implementation off the TensorFlow backend and for masks, renorm or a channel axis not last.

    `implementation`: `fused`; `parts` (float32 only: the statistics as two sums, the normalization as a
    1x1 depthwise convolution, the gradient by the fused gradient kernel; same results up to
    rounding); or `auto` (the default): `parts` in float32 where oneDNN's fused kernel is slow
    (`onednn_batch_norm_is_slow`: CPUs without AVX-512), `fused` everywhere else.
    """

    def __init__(self, implementation: str = "auto", **kwargs):
        if implementation not in BATCH_NORM_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {BATCH_NORM_IMPLEMENTATIONS}, got {implementation!r}")
        super().__init__(**kwargs)
        if implementation == "parts" and self.compute_dtype != "float32":
            raise ValueError(f"implementation='parts' computes in float32 only, not {self.compute_dtype}")
        self.implementation = implementation

    def get_config(self):
        return {**super().get_config(), "implementation": self.implementation}

    @property
    def resolved_implementation(self) -> str:
        """`fused` or `parts`: what `implementation` means on this machine for this layer's dtype."""
        return resolve_batch_norm(self.implementation, self.compute_dtype)

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
        if self.resolved_implementation == "parts":
            return self._call_in_parts(inputs, gamma, beta, training and self.trainable)
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

    def _call_in_parts(self, inputs, gamma, beta, training: bool):
        import tensorflow as tf

        if training:
            outputs, mean, variance = _batch_norm_in_parts(inputs, gamma, beta, self.epsilon)
            self.moving_mean.assign(self.momentum * self.moving_mean + (1.0 - self.momentum) * mean)
            self.moving_variance.assign(self.momentum * self.moving_variance + (1.0 - self.momentum) * variance)
            return outputs
        scale = gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
        return _scale_and_shift(inputs, scale, beta - self.moving_mean * scale)


def _conv_block(x, filters: int, batch_norm: bool, prefix: str, dtype: str, batch_norm_implementation: str):
    for n in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{prefix}_conv{n}",
                                dtype=dtype)(x)
        if batch_norm:
            # momentum 0.9: the moving statistics settle within tens of steps (the default 0.99
            # leaves them far off after the few hundred steps a CPU run takes, ruining inference).
            x = FusedBatchNormalization(momentum=0.9, implementation=batch_norm_implementation, name=f"{prefix}_bn{n}",
                                        dtype=dtype)(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu{n}", dtype=dtype)(x)
    return x


def build_unet(
    image_size: int = 128,
    channels: int = 3,
    depth: int = UNetArchitecture.depth,
    base_filters: int = UNetArchitecture.base_filters,
    batch_norm: bool = UNetArchitecture.batch_norm,
    dropout: float = UNetArchitecture.dropout,
    upsampling: str = UNetArchitecture.upsampling,
    precision: str = "float32",
    batch_norm_implementation: str = "auto",
) -> keras.Model:
    """U-Net with `depth` down-sampling levels, filters doubling per level, one sigmoid output.

    Input `[batch, image_size, image_size, channels]` float in [0, 1]; output
    `[batch, image_size, image_size, 1]` float32, the probability of tumor per pixel.
    `precision` is a Keras dtype policy for every layer but the output: `float32` or
    `mixed_bfloat16` (see tuning/precision.py). `batch_norm_implementation`: how the batch norms
    compute (FusedBatchNormalization; `auto`, the default, picks the faster for this machine).
    """
    check_structure(image_size, channels, (depth,))
    UNetArchitecture(depth, base_filters, batch_norm, dropout, upsampling)  # the same checks as a saved one's
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"enc{level}", precision, batch_norm_implementation)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool", dtype=precision)(x)
    x = _conv_block(x, base_filters * 2**depth, batch_norm, "bottleneck", precision, batch_norm_implementation)
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
        x = _conv_block(x, filters, batch_norm, f"dec{level}", precision, batch_norm_implementation)
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
    # Adam's moments made now, not inside the first traced training step: a tf.function that
    # creates variables is traced a second time, which costs seconds per `fit`.
    model.optimizer.build(model.trainable_variables)
    return model


def ema_callbacks(ema_momentum: float) -> list[keras.callbacks.Callback]:
    """What `fit` needs so that validation, early stopping and saved models use the weights' moving
    average (none for `ema_momentum` 0). Put it before the callbacks that save models."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema_momentum else []


@keras.saving.register_keras_serializable(package="brainmri")
class FoldedBatchNorm(keras.layers.Layer):
    """What is left of a batch norm folded into the convolution before it: nothing to compute."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """The same network for inference with each batch norm folded into the convolution before it:
    that convolution's kernel scaled by gamma / sqrt(variance + epsilon) per output channel and a
    bias of beta - mean x that scale; the batch norm becomes an identity. Exact at inference up to
    float rounding, and one operation less per block for the kernels to run. Nested models (the
    members of an ensemble) are folded too."""
    import numpy as np

    folded_from = {}  # convolution name -> its batch norm
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            source = layer.input._keras_history.operation  # the layer that feeds it
            if isinstance(source, keras.layers.Conv2D):
                folded_from[source.name] = layer

    def clone(layer):
        if isinstance(layer, keras.Model):
            return fold_batch_norm(layer)
        if isinstance(layer, keras.layers.BatchNormalization) and layer in folded_from.values():
            return FoldedBatchNorm(name=layer.name, dtype=layer.dtype_policy.name)
        if layer.name in folded_from:
            return layer.__class__.from_config({**layer.get_config(), "use_bias": True})
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = folded.get_layer(layer.name)
        if isinstance(layer, keras.Model) or isinstance(target, FoldedBatchNorm):
            continue
        if layer.name in folded_from:
            norm = folded_from[layer.name]
            scale = np.asarray(norm.gamma) / np.sqrt(np.asarray(norm.moving_variance) + norm.epsilon)
            kernel = np.asarray(layer.kernel) * scale
            bias = (np.asarray(layer.bias) if layer.use_bias else 0.0) - np.asarray(norm.moving_mean)
            target.set_weights([kernel, bias * scale + np.asarray(norm.beta)])
        else:
            target.set_weights(layer.get_weights())
    return folded
