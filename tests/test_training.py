"""Training (tuning/training.py): the kept model, the learning-rate schedule, resumed histories, one trace per fit."""

import json

import keras
import numpy as np
import pytest

from tuning.unet import build_unet


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_kept_model_is_the_one_validation_scored(tmp_path, ema_momentum):
    """With a moving average of the weights, validation, the kept model.keras and the final
    validation loss all use the average, not the raw weights."""
    from tuning.unet import compile_unet
    from tuning.training import read_history, training_callbacks

    rng = np.random.default_rng(0)
    x = rng.random((16, 16, 16, 1), np.float32)
    y = (x > 0.5).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = compile_unet(build_unet(16, 1, depth=1, base_filters=2, dropout=0.0), 1e-2, "bce_dice", ema_momentum)
    model.fit(x, y, batch_size=4, validation_data=(x, y), epochs=3, verbose=0,
              callbacks=training_callbacks(tmp_path, patience=5, ema_momentum=ema_momentum))
    best = json.loads((tmp_path / "model.best.json").read_text())
    assert best["score"] == min(read_history(tmp_path)["val_loss"])
    kept = keras.saving.load_model(tmp_path / "model.keras")
    assert kept.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)["loss"] == pytest.approx(best["score"], rel=1e-4)
    assert (kept.optimizer.use_ema is True) == (ema_momentum > 0)


def test_cosine_schedule_decays_the_learning_rate_over_the_run_and_resumes_on_it(tmp_path):
    """Epoch e trains at 1e-2 x (1 + cos(pi e / 4)) / 2, also after a kill: a rerun restarts from the
    last finished epoch at that epoch's rate."""
    from tuning.unet import compile_unet
    from tuning.training import learning_rate_schedule, read_history, training_callbacks

    x = np.random.default_rng(0).random((8, 16, 16, 1), np.float32)
    y = (x > 0.5).astype(np.float32)

    class KillAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    def fit(extra):
        model = compile_unet(build_unet(16, 1, depth=1, base_filters=2, dropout=0.0), 1e-2, "bce_dice")
        callbacks = training_callbacks(tmp_path, patience=5, schedule=learning_rate_schedule("cosine", 1e-2, 4, 5))
        model.fit(x, y, batch_size=4, validation_data=(x, y), epochs=4, verbose=0, callbacks=callbacks + extra)

    with pytest.raises(KeyboardInterrupt):
        fit([KillAfterSecondEpoch()])
    fit([])
    expected = [1e-2 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]
    assert read_history(tmp_path)["learning_rate"] == pytest.approx(expected, rel=1e-5)


def test_history_of_a_run_resumed_by_a_newer_version_keeps_its_columns(tmp_path):
    """A run begun without the learning-rate column and resumed with it: rows longer than the header."""
    from tuning.training import read_history

    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.6,0.001\n")
    assert read_history(tmp_path) == {"epoch": [0.0, 1.0], "loss": [0.9, 0.7], "val_loss": [0.8, 0.6]}


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_the_training_step_is_traced_once_per_fit(ema_momentum):
    # A training step that creates the optimizer's variables is traced twice: seconds per fit.
    import tensorflow as tf

    from tuning.unet import compile_unet

    model = compile_unet(build_unet(32, 1, depth=2, base_filters=4), 1e-3, "bce_dice", ema_momentum)
    traced, step = [], model.train_step
    model.train_step = lambda data: traced.append(1) or step(data)
    images = np.random.default_rng(0).random((8, 32, 32, 1), np.float32)
    model.fit(tf.data.Dataset.from_tensor_slices((images, images > 0.9)).batch(4), epochs=2, verbose=0)
    assert len(traced) == 1
