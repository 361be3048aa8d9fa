"""The stated waits of a parallel run's test cases, handed from the workers to the controller.

The controller's scheduler (conformance.run.long_first) deals the cases that wait a stated time
to one worker. It learns which cases those are when the first worker's collection is in, while
both workers wait for their first case. Working them out itself, it unpickled the whole validated
catalog for the few cases at the head of the collection: 0.13 s of CPU on the path to the first
case, measured under `-n 2` on a machine whose two cores are busy starting two networks and two
workers (issue 15; benchmarks/README.md). Each worker has just worked out every case's stated
wait to sort its collection: it writes the ones that are not zero here, before it tells the
controller its collection, and the controller reads a few hundred bytes instead.

The file is `<workdir>/stated-waits/<worker>.json`: `{"run": TOKEN, "waits": {nodeid: ms}}`. The
token is the controller's, handed to each worker with its input, so a file an earlier run left
is never taken for this run's. Whatever is missing, stale or malformed, the controller works the
waits out itself, as before: the order of the cases may then differ, never a verdict.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path

FOLDER = "stated-waits"
WORKERINPUT_KEY = "ims_stated_waits_run"  # the controller's token, in each worker's workerinput
MAX_BYTES = 1 << 20  # a catalog's waits are a few hundred bytes; a bigger file is not read


class ControllerSide:
    """The controller's end for one run: its token (made, and an earlier run's files removed,
    before any worker receives its input), what each worker is handed, and the waits the workers
    wrote (read once, when the scheduler first asks)."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir).resolve()
        clear(self.dir)
        self.token = secrets.token_hex(8)
        self._waits: dict[str, float] | None = None
        self._read = False

    def workerinput(self) -> dict[str, str]:
        return {"token": self.token, "dir": str(self.dir)}

    def waits(self) -> dict[str, float] | None:
        if not self._read:
            self._waits, self._read = read(self.dir, self.token), True
        return self._waits


def hand_over(workerinput: dict, waits: dict[str, float]) -> bool:
    """In a worker: write `waits` where and under the token its input names (nothing when the
    controller asked for none)."""
    handover = workerinput.get(WORKERINPUT_KEY)
    if not isinstance(handover, dict):
        return False
    return write(Path(handover["dir"]), str(workerinput.get("workerid", "gw")), handover["token"], waits)


def _file(workdir: Path, worker: str) -> Path:
    return Path(workdir) / FOLDER / f"{worker}.json"


def clear(workdir: Path) -> None:
    """The controller, before any worker starts: no file of an earlier run stays to be read."""
    for old in (Path(workdir) / FOLDER).glob("*.json"):
        old.unlink(missing_ok=True)


def write(workdir: Path, worker: str, token: str, waits: dict[str, float]) -> bool:
    """In worker `worker`: its non-zero stated waits, whole or not at all. False when the file
    could not be written (the controller then works the waits out itself)."""
    target = _file(workdir, worker)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    doc = {"run": token, "waits": {nodeid: ms for nodeid, ms in waits.items() if ms > 0}}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc))
        tmp.replace(target)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return True


def read(workdir: Path, token: str) -> dict[str, float] | None:
    """The waits a worker of the run `token` wrote (every worker writes the same: xdist gives a
    worker whose collection differs no case); None when none did."""
    folder = Path(workdir) / FOLDER
    try:
        names = sorted(folder.glob("*.json"))
    except OSError:
        return None
    for path in names:
        waits = _parse(path, token)
        if waits is not None:
            return waits
    return None


def _parse(path: Path, token: str) -> dict[str, float] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        doc = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("run") != token or not isinstance(doc.get("waits"), dict):
        return None
    out: dict[str, float] = {}
    for nodeid, ms in doc["waits"].items():
        if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not math.isfinite(ms) or ms < 0:
            return None
        out[str(nodeid)] = float(ms)
    return out
