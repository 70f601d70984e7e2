"""Which file channel is which sequence, as the user names them.

nnU-Net fixes no channel order; which channel is which sequence comes, first found, from
`--channel-names 0000=T1,0001=T1ce,0002=T2,0003=FLAIR`, from an nnU-Net `dataset.json` in or
beside the input folder (its "channel_names"), or else from this project's own rule: `_0000`
pre-contrast, `_0001` FLAIR, `_0002` post-contrast (`DEFAULT_CHANNELS`). The usual names map to
the model's sequences (`SEQUENCE_NAMES`: FLAIR; T1/T1w/T1n/pre-contrast; T1ce/T1c/T1Gd/
post-contrast); T2 is left out with a note; any other name is an error naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from brainmri_tfds.readers.case import FLAIR, POST, PRE, SEQUENCE_LABELS, ScanError

DEFAULT_CHANNELS = {PRE: PRE, FLAIR: FLAIR, POST: POST}  # this project's rule: file channel -> sequence
DEFAULT_RULE = "this project's rule (_0000 pre-contrast, _0001 FLAIR, _0002 post-contrast)"
# Channel names as people write them (lower case, without spaces, '-', '_' or '+') -> the model's
# sequence, or None: a sequence the model does not take (left out with a note).
SEQUENCE_NAMES = {
    **dict.fromkeys(("flair", "t2flair"), FLAIR),
    **dict.fromkeys(("t1", "t1w", "t1n", "t1pre", "pre", "precontrast", "t1native"), PRE),
    **dict.fromkeys(("t1ce", "t1c", "t1gd", "t1gad", "t1post", "post", "postcontrast", "t1contrast"), POST),
    **dict.fromkeys(("t2", "t2w"), None),
}


def sequence_of(name: str, where: str) -> str | None:
    """The model's sequence a channel name means (None: one it does not take); ScanError naming
    `where` for a name it does not know."""
    key = re.sub(r"[\s_+\-]", "", str(name).lower())
    if key not in SEQUENCE_NAMES:
        raise ScanError(f"{where}: channel name {name!r} is none the model knows; use FLAIR, T1 (pre-contrast), "
                        "T1ce (post-contrast) or T2 (left out)")
    return SEQUENCE_NAMES[key]


def channel_map(names: dict, where: str) -> dict[str, str | None]:
    """{file channel '0000'..: name} (dataset.json's keys '0', '1', ... too) -> {file channel: the
    model's sequence or None}; ScanError naming `where` for an unknown name, a sequence named
    twice, or no FLAIR."""
    mapping = {}
    for key, name in names.items():
        if not str(key).isdigit():
            raise ScanError(f"{where}: channel {key!r} is not a number (expected 0000=FLAIR or 0=FLAIR)")
        mapping[f"{int(key):04d}"] = sequence_of(name, where)
    taken = [s for s in mapping.values() if s is not None]
    twice = sorted({SEQUENCE_LABELS[s] for s in taken if taken.count(s) > 1})
    if twice:
        raise ScanError(f"{where}: more than one channel is {', '.join(twice)}")
    if FLAIR not in taken:
        raise ScanError(f"{where}: no channel is FLAIR ({names}); the model needs FLAIR")
    return mapping


def parse_channel_names(text: str) -> dict[str, str]:
    """'0000=T1,0001=T1ce,0003=FLAIR' -> {'0000': 'T1', ...} (an argparse type: a malformed item is
    argparse.ArgumentTypeError)."""
    import argparse

    names = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, name = item.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not CHANNEL=NAME (e.g. 0003=FLAIR)")
        names[key.strip()] = name.strip()
    if not names:
        raise argparse.ArgumentTypeError("no CHANNEL=NAME given")
    return names


def add_channel_names_argument(parser) -> None:
    """--channel-names, as brainmri-predict and evaluate.py take it."""
    parser.add_argument("--channel-names", type=parse_channel_names, metavar="CHANNEL=NAME,...",
                        help="NIfTI input: which file channel is which sequence, e.g. 0000=T1,0001=T1ce,0002=T2,"
                             "0003=FLAIR (default: dataset.json in or beside the input, else this project's rule: "
                             "_0000 pre-contrast, _0001 FLAIR, _0002 post-contrast)")


def find_channel_map(path: Path, names: dict | None = None) -> tuple[dict[str, str | None], str | None]:
    """(file channel -> the model's sequence, where the names came from): `names` if given, else an
    nnU-Net dataset.json in or beside `path` (its folder, for a file); else DEFAULT_CHANNELS, and
    None for where (no one named the channels)."""
    if names:
        return channel_map(names, "--channel-names"), "--channel-names"
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            try:
                described = json.loads(candidate.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ScanError(f"{candidate}: not valid JSON ({err})") from None
            listed = described.get("channel_names", described.get("modality")) if isinstance(described, dict) else None
            if not isinstance(listed, dict):
                raise ScanError(f"{candidate}: no \"channel_names\" (an nnU-Net dataset.json names its channels there)")
            return channel_map(listed, str(candidate)), str(candidate)
    return dict(DEFAULT_CHANNELS), None
