"""python -m tuning.crossval run|compare|worst|settings|epochs: see each command's --help."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tuning.crossval import compare, epochs, rounds, settings, worst  # noqa: E402

COMMANDS = {"run": rounds, "compare": compare, "worst": worst, "settings": settings, "epochs": epochs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuning.crossval", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, description=module.__doc__, help=module.__doc__.split(": ", 1)[1].split(".")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
    args = parser.parse_args(argv)
    if args.command == "run":
        rounds.check_arguments(commands.choices["run"], args)
    return COMMANDS[args.command].main(args)


if __name__ == "__main__":
    sys.exit(main())
