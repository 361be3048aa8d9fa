"""Process entry of one node: `python -m refnet.node NODE --state-dir DIR`.

Loads `DIR/network.json`, switches on the configured faults and runs the node's `serve()`, which
prints `listening NODE host:port` once bound and blocks until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time

from . import wire_style
from .config import NODES, NetworkConfig
from .faults import ActiveFaults

# node -> (module, function); imported lazily so a node only loads what it runs
ENTRY_POINTS = {
    "as": ("refnet.authz", "serve"),
    "3rdwws": ("refnet.thirdparty", "serve"),
    "wsf": ("refnet.wsf", "serve"),
    "pcscf": ("refnet.cscf", "serve_pcscf"),
    "scscf": ("refnet.cscf", "serve_scscf"),
}


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """Stop (SIGTERM to self) when the launching process dies, so no node outlives its network."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["zygote"]:  # the fork server of one network's nodes (refnet/zygote.py)
        zp = argparse.ArgumentParser(prog="python -m refnet.node zygote")
        zp.add_argument("--state-dir", required=True, action="append", help="a network it forks nodes for (repeated)")
        from .zygote import serve as serve_forks

        serve_forks(zp.parse_args(args[1:]).state_dir)  # ends the process
    parser = argparse.ArgumentParser(prog="python -m refnet.node", description=__doc__.splitlines()[0])
    parser.add_argument("node", choices=NODES)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--no-parent-watch", action="store_true", help="keep running if the launcher dies")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {args.node} %(levelname)s %(name)s: %(message)s")
    cfg = NetworkConfig.load(args.state_dir)
    faults = ActiveFaults(cfg.faults)
    wire_style.configure(cfg.variations)
    module, func = ENTRY_POINTS[args.node]
    serve = getattr(importlib.import_module(module), func)
    if not args.no_parent_watch:
        _exit_with_parent()
    serve(cfg, faults)
    return 0


if __name__ == "__main__":
    sys.exit(main())
