"""Patient-level splits: train/validation/test from a stable hash, or equal folds for cross-validation.

The split of a patient depends on its id alone: the same on any machine, in any file order, and
unchanged when patients are added. No patient can land in two splits.

Folds (`fold0`, `fold1`, ...) deal the patients, ordered by the same hash, round-robin: fold sizes
differ by at most one patient. `cross_validation_splits` rotates them into (train, validation,
test) TFDS split strings so that every patient is tested exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
SPLIT_NAMES = tuple(name for name, _ in SPLIT_FRACTIONS)


def _position(patient_id: str) -> float:
    """A uniform number in [0, 1) fixed by the patient id."""
    digest = hashlib.sha256(patient_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(patient_id: str) -> str:
    """'train', 'validation' or 'test' for a patient folder name such as TCGA_CS_4942_19970222."""
    position = _position(patient_id)
    upper = 0.0
    for name, fraction in SPLIT_FRACTIONS:
        upper += fraction
        if position < upper:
            return name
    return SPLIT_FRACTIONS[-1][0]


def fold_name(fold: int) -> str:
    return f"fold{fold}"


def folds_of(patient_ids: Iterable[str], folds: int) -> dict[str, str]:
    """Patient id -> 'fold<k>': patients in hash order dealt round-robin into `folds` folds."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    ordered = sorted(set(patient_ids), key=lambda p: (_position(p), p))
    return {patient: fold_name(rank % folds) for rank, patient in enumerate(ordered)}


@dataclasses.dataclass(frozen=True)
class Rotation:
    """One round of cross-validation: TFDS split strings such as 'fold2+fold3'."""

    index: int
    train: str
    validation: str
    test: str


def cross_validation_splits(folds: int, test_folds: int = 2, validation_folds: int = 1,
                            train_folds: int | None = None) -> list[Rotation]:
    """Rotations that test every fold once: round r tests folds [r*t, r*t + t), validates on the
    next `validation_folds` folds (wrapping around) and trains on the rest, or, with
    `train_folds`, on only the next `train_folds` of them (a learning curve: the same test and
    validation patients, fewer training patients)."""
    if test_folds < 1 or validation_folds < 1 or folds % test_folds or test_folds + validation_folds >= folds:
        raise ValueError(
            f"cannot rotate {folds} folds with {test_folds} test and {validation_folds} validation folds: "
            "test_folds must divide folds and leave at least one fold to train on"
        )
    available = folds - test_folds - validation_folds
    if train_folds is None:
        train_folds = available
    if not 1 <= train_folds <= available:
        raise ValueError(f"train_folds must be 1..{available} (the folds left after test and validation), "
                         f"got {train_folds}")
    rotations = []
    for r in range(folds // test_folds):
        order = [(r * test_folds + k) % folds for k in range(folds)]
        held = test_folds + validation_folds
        test, validation = order[:test_folds], order[test_folds:held]
        train = sorted(order[held:held + train_folds])
        rotations.append(Rotation(
            index=r,
            train="+".join(map(fold_name, train)),
            validation="+".join(map(fold_name, validation)),
            test="+".join(map(fold_name, test)),
        ))
    return rotations
