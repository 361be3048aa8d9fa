"""`python -m refnet up [...]` runs a reference network in the foreground; `python -m refnet faults`
lists the named faults (name, node, the requirement it breaks); `python -m refnet variations` the
named conformant variations (name, nodes, the freedom it takes)."""

from __future__ import annotations

import argparse
import os
import sys

from .config import NODES
from .faults import UnknownFault
from .launcher import NodeFailed, add_up_arguments, config_from_args, format_faults, run_foreground
from .variations import format_variations


def main(argv: list[str] | None = None) -> int:
    # `ims-conformance reference` runs this module; it names itself so usage messages read right
    prog = os.environ.get("REFNET_PROG", "python -m refnet")
    parser = argparse.ArgumentParser(prog=prog, description="TR 23.701 reference network")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start all nodes in the foreground; Ctrl-C stops them")
    add_up_arguments(up)
    sub.add_parser("faults", help="list the named faults")
    sub.add_parser("variations", help="list the named conformant variations")
    args = parser.parse_args(argv)

    if args.command == "faults":
        print(format_faults())
        return 0
    if args.command == "variations":
        print(format_variations())
        return 0
    try:
        cfg = config_from_args(args)
        return run_foreground(cfg, args.node or NODES)
    except (UnknownFault, ValueError, NodeFailed, OSError) as exc:
        print(f"refnet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
