"""One slice as an lgg_mri example (the feature dict), read here or by Apache Beam workers.

This module is importable wherever `brainmri_tfds` is installed, so Beam workers (which do not
see the builder's own module when `tfds build` loads it from a path) can unpickle the reader.
"""

from __future__ import annotations

import numpy as np

from brainmri_tfds import layout


def example(item: layout.SliceFiles, image: np.ndarray, mask: np.ndarray) -> tuple[str, dict]:
    """(key, features) for one slice, as the builder's FeaturesDict expects them."""
    tumor_pixels = int(mask.sum())
    return item.key, {
        "image": image,
        "mask": mask,
        "patient_id": item.patient_id,
        "slice_index": item.slice_index,
        "has_tumor": tumor_pixels > 0,
        "tumor_pixels": tumor_pixels,
    }


def beam_examples(location: str, slices: list[layout.SliceFiles]):
    """The same examples as the builder's plain generator, as a Beam transform: each worker opens
    the source at `location` (a path every worker can read) once and reads its share of slices."""
    import apache_beam as beam  # only Beam builds need it

    class ReadSlice(beam.DoFn):
        def setup(self):
            self.source = layout.open_source(location)

        def process(self, item: layout.SliceFiles):
            for read in layout.read_slices(self.source, [item]):
                yield example(*read)

    return beam.Create(slices) | beam.Reshuffle() | beam.ParDo(ReadSlice())
