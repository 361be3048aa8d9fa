"""No cyclic garbage collection while a run starts up (issue 15).

Start-up builds a heap that lives as long as the run: imported modules, the profile, the parsed
catalog (a few hundred TestCases with their marked YAML), pytest's items. Nearly all of it is
acyclic or immortal, yet the cyclic collector runs hundreds of times while it is built and each
older-generation pass walks more of it. Measured on the 2-core benchmark machine (one case under
`-n 2`, process CPU at the first case, two runs each): a worker 1.07-1.25 s with the collector,
0.82-0.96 s without; the first case started 0.3-0.4 s earlier. Unpickling the validated catalog
alone: 0.10-0.13 s with it, 0.04 s without.

`pause()` is called where a process starts a catalog run (the CLI, an xdist worker's configure);
`resume()` where its test loop begins, and again at unconfigure for a session that never reaches
the loop. Reference counting frees what start-up drops in the meantime; the cycles it leaves
(tracebacks of import probes and the like) are found by the first full collection after
resume(). Nothing the system under test sends is processed while paused: the test loop has not
begun (the sniffer may already queue frames; they are read under the normal regime).

A collector the process had disabled before is left disabled.
"""

from __future__ import annotations

import gc

_paused = False  # whether pause() turned the collector off (and resume() must turn it on)


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Turn the collector back on if pause() turned it off. What start-up built is moved to the
    oldest generation first (freeze + unfreeze, no traversal): the young collection the next
    allocations start would otherwise walk all of it once."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.unfreeze()
    gc.enable()
