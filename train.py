"""Train a U-Net on lgg_mri's train split: `python train.py --help` (the code: tuning/commands/train.py)."""

import sys

from tuning.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
