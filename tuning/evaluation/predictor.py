"""A trained U-Net made ready to predict, by one of two engines with one method.

    predictor = for_inference(model)               # Keras: batch norm folded, each batch computed in streams
    predictor = LiteRTPredictor("model.tflite")    # LiteRT: a shipped or packed model's copy, on the CPU
    probabilities = predictor.predict_on_batch(images)   # [N, H, W, 1], the same as the model's own

evaluate.py and brainmri-predict take either (`--engine`; `tuning.evaluation.inference.load_trained`
chooses); train.py predicts with Keras.

On a CPU one batch of the default U-Net (16 images of 128 px) leaves cores idle between and
inside its small operations; cut into two halves, TensorFlow computes the halves at the same
time (independent branches of one graph run side by side on its inter-op threads) and the idle
time of one is work for the other. Inference treats every image on its own, so the result is the
model's own prediction (tests/test_predictor.py: to 1e-6).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ENGINES = ("keras", "litert")


def add_engine_argument(parser) -> None:
    """The --engine flag of the commands that predict (brainmri-predict, evaluate.py)."""
    parser.add_argument("--engine", choices=ENGINES,
                        help="what computes the model: litert (LiteRT's CPU kernels, from the model.tflite a shipped "
                             "or packed model carries: nothing to build or trace, so it starts seconds sooner) or "
                             "keras (TensorFlow, on a GPU where it sees one). Default: litert where the model has "
                             "a model.tflite and TensorFlow uses no GPU, else keras")


def prediction_streams() -> int:
    """How many parts a batch is cut into on this machine: 2 on a CPU, 1 where a GPU computes.
    Two halves predict faster than one on every CPU measured, four no faster than two
    (`python -m benchmarks.analyses.prediction_streams`; figures in benchmarks/RESULTS.md)."""
    import tensorflow as tf

    return 1 if tf.config.list_physical_devices("GPU") else 2


class StreamedPredictor:
    """`model.predict_on_batch`, with each batch cut into `streams` parts of nearly equal size
    that TensorFlow computes at the same time. Batches of any size share one traced graph."""

    def __init__(self, model, streams: int):
        import tensorflow as tf

        if streams < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        self.model, self.streams = model, streams
        signature = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        self._predict = tf.function(self._predict_in_streams, input_signature=[signature])

    def _predict_in_streams(self, batch):
        import tensorflow as tf

        size = tf.shape(batch)[0]
        # A batch smaller than `streams` is padded with copies of its last image: no part is empty.
        batch = tf.concat([batch, tf.repeat(batch[-1:], tf.maximum(self.streams - size, 0), axis=0)], axis=0)
        padded = tf.shape(batch)[0]
        bounds = [padded * part // self.streams for part in range(self.streams + 1)]
        parts = [self.model(batch[start:end], training=False) for start, end in zip(bounds, bounds[1:])]
        return tf.concat(parts, axis=0)[:size]

    def predict_on_batch(self, batch) -> np.ndarray:
        """Probabilities for `batch` [N, H, W, C] (numpy or tensor, N >= 1)."""
        return self._predict(batch).numpy()


def for_inference(model, streams: int | None = None) -> StreamedPredictor:
    """`model` as it predicts: batch norm folded into the convolutions (`tuning.unet.fold_batch_norm`),
    batches computed in `streams` parts (default: `prediction_streams()` for this machine)."""
    from tuning.unet import fold_batch_norm

    return StreamedPredictor(fold_batch_norm(model), prediction_streams() if streams is None else streams)


class LiteRTPredictor:
    """A model's LiteRT copy (`tuning.export.write_litert`: batch norm folded, float32 compute)
    computed by LiteRT's CPU kernels (XNNPACK) on `threads` cores (default: all this process may
    use). Probabilities agree with the Keras model's to float rounding (tests/test_predictor.py)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        if threads is None:  # the cores this process may use (Linux), else all the machine's (macOS has no affinity)
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as err:  # LiteRT's errors for a file that is no flat buffer
            reason = " ".join(str(err).split())
            raise ValueError(f"{path}: not a loadable LiteRT model ({reason})") from None
        (given,), (taken,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        self._input, self._output, self._shape = given["index"], taken["index"], None
        self.input_shape = (None, *map(int, given["shape_signature"][1:]))
        self.output_shape = (None, *map(int, taken["shape_signature"][1:]))

    def predict_on_batch(self, batch) -> np.ndarray:
        """Probabilities for `batch` [N, H, W, C] (N >= 1); a new N re-plans the kernels once."""
        batch = np.ascontiguousarray(batch, np.float32)
        if batch.shape != self._shape:
            self.interpreter.resize_tensor_input(self._input, batch.shape)
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        self.interpreter.set_tensor(self._input, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()
