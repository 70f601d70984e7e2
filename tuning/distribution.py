"""tf.distribute for train.py.

    default   one device (TensorFlow's default strategy)
    mirrored  MirroredStrategy over every visible GPU, or over the logical CPUs when there is no GPU

The batch size a configuration names is per replica; the global batch is that times the replicas.
With more than one replica, train.py leaves out each epoch's last partial batch (training and
validation): tf.distribute would give a later replica an empty share, which batch norm fails on.
Multi-worker training (MultiWorkerMirroredStrategy) is not offered: Keras 3's `fit` fails under it
(keras-team/keras#20585, tensorflow/tensorflow#72388); see the README's "Speed and scale".
"""

from __future__ import annotations

STRATEGIES = ("default", "mirrored")


def make_strategy(name: str):
    """The tf.distribute strategy of that name."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
