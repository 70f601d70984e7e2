"""How a U-Net is trained: the training recipe, apart from its architecture (`tuning.unet`).

A run's hyperparameters are the two together: `config.json` and `best_hparams.json` store them as
one flat "hyperparameters" object, as Keras Tuner names them (`tuning.runfolder` splits it).

    recipe = TrainingRecipe(tumor_share=0.7)
    changes_from_defaults(UNetArchitecture(depth=3), recipe)   # {'depth': (3, 4), 'tumor_share': (0.7, 0.5)}
"""

from __future__ import annotations

import dataclasses

from brainmri_tfds.settings import TUMOR_WEIGHTINGS

LOSS_NAMES = ("bce", "dice", "bce_dice", "bce_tversky")  # built by `tuning.losses.make_loss`
LR_SCHEDULES = ("plateau", "cosine")
BATCH_SIZES = (8, 16, 32)  # searched by `tuning/search.py` unless --batch-size fixes one


@dataclasses.dataclass(frozen=True)
class TrainingRecipe:
    """What fixes how a U-Net learns: optimiser, loss, batches, sampling, augmentation, schedule."""

    learning_rate: float = 1e-3
    loss: str = "bce_dice"
    batch_size: int = 16
    # Oversample tumor slices to this share of each epoch (0: as the split has them).
    tumor_share: float = 0.5
    # Which tumor slices fill that share (`brainmri_tfds.pipeline.oversample_tumor`): uniform, or
    # in proportion to tumor area (large tumors more often).
    tumor_weighting: str = "uniform"
    augment_strength: float = 1.0  # scales the augmentation's rotation, zoom and intensity ranges
    # Validate, keep and predict with an exponential moving average of the weights (Polyak
    # averaging) with this momentum; 0: the raw weights.
    ema_momentum: float = 0.0
    # How train.py moves the learning rate (`tuning.training.learning_rate_schedule`): plateau halves
    # it when the validation loss stalls; cosine decays it to 0 over the run's epochs.
    lr_schedule: str = "plateau"

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1), got {self.ema_momentum}")
        if self.tumor_weighting not in TUMOR_WEIGHTINGS:
            raise ValueError(f"tumor_weighting must be one of {TUMOR_WEIGHTINGS}, got {self.tumor_weighting!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")


def changes_from_defaults(*parts) -> dict[str, tuple]:
    """{field: (value, default)} for each field of the given records (an architecture, a recipe)
    set otherwise than in their defaults, the configuration train.py trains without --best."""
    changes = {}
    for part in parts:
        defaults = type(part)()
        changes.update({f.name: (getattr(part, f.name), getattr(defaults, f.name)) for f in dataclasses.fields(part)
                        if getattr(part, f.name) != getattr(defaults, f.name)})
    return changes
