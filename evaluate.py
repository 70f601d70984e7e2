"""Score a trained U-Net per patient, or predict masks for new scans: `python evaluate.py --help`
(the code: tuning/commands/evaluate.py)."""

import sys

from tuning.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
