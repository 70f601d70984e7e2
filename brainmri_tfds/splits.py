"""Patient-level train/validation/test assignment from a stable hash of the patient id.

The split of a patient depends on its id alone: the same on any machine, in any file order, and
unchanged when patients are added. No patient can land in two splits.
"""

from __future__ import annotations

import hashlib

SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
SPLIT_NAMES = tuple(name for name, _ in SPLIT_FRACTIONS)


def split_of(patient_id: str) -> str:
    """'train', 'validation' or 'test' for a patient folder name such as TCGA_CS_4942_19970222."""
    digest = hashlib.sha256(patient_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    upper = 0.0
    for name, fraction in SPLIT_FRACTIONS:
        upper += fraction
        if position < upper:
            return name
    return SPLIT_FRACTIONS[-1][0]
