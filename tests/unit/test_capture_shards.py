"""Offline analysis split over processes (capture.shards, issue 15): whatever way the flows are
split, and whether the shards run in forked processes or here, the timeline is the one a single
Dissector makes: every item, in the same order with the same stream names, every packet, every
leg's coverage (its gaps and undecryptable connections in order), the TLS connections."""

from __future__ import annotations

import dataclasses
import os
import random
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import capture
from conformance.capture import analyze_file, analyze_records, shards
from conformance.capture.dissect import Dissector
from conformance.capture.packets import Scanner
from conformance.capture.synth import Capture, registration, write_pcap
from conformance.capture.tls import KeyLog

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]


def _plain(value, depth: int = 0):
    """A structural copy of a result for comparison: objects as (type, fields), no identities."""
    assert depth < 40, "unexpectedly deep (a cycle?)"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return tuple((_plain(k, depth + 1), _plain(v, depth + 1)) for k, v in value.items())
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(repr(v) for v in value))
    if dataclasses.is_dataclass(value):
        return (type(value).__name__,) + tuple(_plain(getattr(value, f.name), depth + 1)
                                                for f in dataclasses.fields(value))
    state = getattr(value, "__dict__", None)
    if state is None and hasattr(value, "__slots__"):
        state = {s: getattr(value, s) for s in value.__slots__ if hasattr(value, s)}
    assert state is not None, f"cannot compare a {type(value).__name__}"
    return (type(value).__name__, _plain(state, depth + 1))


def _timeline(tl) -> tuple:
    return (_plain(tl.items), _plain(tl.packets), _plain(tl.coverage), tl.t_start, tl.t_end,
            tuple(tl.problems), tuple(sorted(tl.observable_nodes)))


def _rich_capture(tmp_path: Path, *, coarse_clock: bool = False) -> tuple[list, Path]:
    """Registrations over TLS 1.3 and 1.2, in small segments, reordered and retransmitted; one
    whose secrets are not in the key log given (undecryptable); one with a segment lost (a gap);
    a 4-tuple used again by a new connection. `coarse_clock`: all packets of a 10 ms tick share
    one time stamp, so the order of same-time items is all that tells them apart."""
    keylog, hidden = tmp_path / "k.log", tmp_path / "hidden.log"
    cap = Capture()
    registration(cap, keylog, port=40000)
    registration(cap, keylog, port=41000, tls_version="1.2")
    steps = registration(cap, keylog, port=42000, mss=100)
    registration(cap, hidden, port=43000)
    lost = registration(cap, keylog, port=44000, mss=200)[14][1]
    registration(cap, keylog, port=45000)
    registration(cap, keylog, port=45000)  # the same client ports again: new connections
    registration(cap, hidden, port=46000)  # and so for undecryptable ones, closed at the end of
    registration(cap, hidden, port=47000)  # the capture in the order their 4-tuples first appeared
    registration(cap, hidden, port=46000)
    frames = [f for i, f in enumerate(cap.frames) if i != lost]
    rng = random.Random(5)
    window = steps[14]
    order = [frames[i] for i in window]
    rng.shuffle(order)
    for i, f in zip(window, order):
        frames[i] = f
    frames += [frames[i] for i in window[:3] if frames[i][1][23] == 6]  # retransmissions, late
    frames.sort(key=lambda f: f[0])
    if coarse_clock:
        frames = [(round(ts, 2), f) for ts, f in frames]
    return [(ts, 1, f, 0) for ts, f in frames], keylog


def _serial(records, keylog):
    d = Dissector(PIXIT, KeyLog([keylog]))
    packets = list(Scanner(d.packet_filter()).scan(records))
    for p in packets:
        d.packet(p)
    return d.finish(), d, packets


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    out = {}
    for coarse in (False, True):
        records, keylog = _rich_capture(tmp_path_factory.mktemp(f"shards{coarse}"), coarse_clock=coarse)
        tl, d, packets = _serial(records, keylog)
        out[coarse] = (records, keylog, packets, _timeline(tl), d.client_randoms(), len(d.tls))
    return out


def test_the_rich_capture_has_what_the_merge_must_order(captures):
    """The comparisons below mean something only if the capture has gaps, undecryptable
    connections, reused 4-tuples and same-time items."""
    records, keylog, _, _, _, _ = captures[True]
    tl, d, _ = _serial(records, keylog)
    assert any(c.gaps for c in tl.coverage.values())
    assert any(c.undecryptable for c in tl.coverage.values())
    assert len(d.tcp.all) > len({(c.client, c.server) for c in d.tcp.all})  # a 4-tuple reused
    times = [i.t for i in tl.items]
    assert len(set(times)) < len(times) / 2
    assert len({i.stream for i in tl.items if i.stream.startswith("tcp/")}) > 10


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(coarse=st.booleans(), n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_any_split_of_the_flows_merges_into_the_single_dissectors_timeline(captures, coarse, n, seed):
    records, keylog, packets, want, randoms, tls = captures[coarse]
    rng = random.Random(seed)
    owner: dict[tuple, int] = {}
    parts: list[list[int]] = [[] for _ in range(n)]
    for pos, p in enumerate(packets):
        key = tuple(sorted([(p.src, p.sport), (p.dst, p.dport)])) + (p.proto,)
        parts[owner.setdefault(key, rng.randrange(n))].append(pos)
    keylog_obj = KeyLog([keylog])
    results = [shards.dissect_shard([packets[i] for i in part], PIXIT, keylog_obj) for part in parts]
    merged = shards.merge(results, parts)
    assert _timeline(merged.timeline) == want
    assert merged.client_randoms == randoms
    assert merged.tls_connections == tls


def test_split_keeps_flows_whole_in_capture_order_and_balances(captures):
    _, _, packets, _, _, _ = captures[False]
    for n in (2, 3):
        parts = shards.split(packets, n)
        assert sorted(i for part in parts for i in part) == list(range(len(packets)))
        assert all(part == sorted(part) for part in parts)
        where = {}
        for s, part in enumerate(parts):
            for i in part:
                p = packets[i]
                key = tuple(sorted([(p.src, p.sport), (p.dst, p.dport)])) + (p.proto,)
                assert where.setdefault(key, s) == s, f"flow {key} split over two shards"
        flows = {}
        for p in packets:
            key = tuple(sorted([(p.src, p.sport), (p.dst, p.dport)])) + (p.proto,)
            flows[key] = flows.get(key, 0) + 1
        loads = [len(part) for part in parts]
        assert max(loads) - min(loads) <= max(flows.values())


def test_one_process_per_core_unless_told(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert shards.processes_for(None) == 3
    assert shards.processes_for(2) == 2
    assert shards.processes_for(1) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert shards.processes_for(None) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert shards.processes_for(None) == 1


def _file(tmp_path, captures, coarse=False) -> tuple[Path, Path]:
    records, keylog, *_ = captures[coarse]
    return write_pcap(tmp_path / "c.pcap", [(ts, f) for ts, _, f, _ in records]), keylog


@pytest.mark.parametrize("coarse", [False, True])
def test_forked_shards_give_the_serial_result_and_capture_file(tmp_path, captures, coarse):
    path, keylog = _file(tmp_path, captures, coarse)
    one = analyze_file(path, PIXIT, [keylog], workers=1, pcapng_out=tmp_path / "one.pcapng")
    two = analyze_file(path, PIXIT, [keylog], workers=2, pcapng_out=tmp_path / "two.pcapng")
    assert (one.stats["shards"], two.stats["shards"]) == (1, 2)
    assert _timeline(two.timeline) == _timeline(one.timeline)
    assert len(two.timeline.items) == len(captures[coarse][3][0])  # the file's clock is in microseconds
    assert two.stats["tls_connections"] == one.stats["tls_connections"]
    # the kept packets and the key log lines of the decrypted connections, in the same order
    assert (tmp_path / "two.pcapng").read_bytes() == (tmp_path / "one.pcapng").read_bytes()


def test_a_large_capture_is_split_by_default_a_small_one_not(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(shards, "MIN_PACKETS", 50)
    cap, keylog = Capture(), tmp_path / "k.log"
    for k in range(14):
        registration(cap, keylog, port=40000 + 10 * k)
    path = cap.write(tmp_path / "c.pcap")
    assert path.stat().st_size >= capture.MIN_SPLIT_FILE_BYTES
    forked = _count_forks(monkeypatch)
    one = analyze_file(path, PIXIT, [keylog], workers=1)
    assert len(forked) == 0
    split = analyze_file(path, PIXIT, [keylog])
    assert split.stats["shards"] == 2 and len(forked) == 1
    # too few relevant packets, found once read: the other process stops, this one dissects alone
    monkeypatch.setattr(shards, "MIN_PACKETS", 10**6)
    alone = analyze_file(path, PIXIT, [keylog])
    assert alone.stats["shards"] == 1 and len(forked) == 2
    assert _timeline(split.timeline) == _timeline(alone.timeline) == _timeline(one.timeline)
    _all_reaped(forked)
    # a file too small to hold enough packets: no process at all
    monkeypatch.setattr(capture, "MIN_SPLIT_FILE_BYTES", path.stat().st_size + 1)
    assert analyze_file(path, PIXIT, [keylog]).stats["shards"] == 1 and len(forked) == 2


def _count_forks(monkeypatch) -> list[tuple]:
    forked, fork = [], shards._fork
    monkeypatch.setattr(shards, "_fork", lambda *a: forked.append(fork(*a)) or forked[-1])
    return forked


def _all_reaped(forked) -> None:
    for pid, _ in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_process_that_scanned_other_packets_is_not_merged(tmp_path, captures, monkeypatch):
    """Records that are not the same when iterated again: the other process's shard is not the
    one this process would make, so this process dissects it."""
    records, keylog, *_ = captures[False]
    parent = os.getpid()

    def grows():  # the other process reads more packets than this one
        return iter(records if os.getpid() != parent else records[:-40])

    class Growing:
        def __iter__(self):
            return grows()

    forked = _count_forks(monkeypatch)
    split = analyze_records(Growing(), PIXIT, [keylog], workers=2)
    assert split.stats["shards"] == 2 and len(forked) == 1
    assert _timeline(split.timeline) == _timeline(analyze_records(records[:-40], PIXIT, [keylog]).timeline)
    _all_reaped(forked)


def test_the_live_and_plaintext_paths_stay_in_one_process(tmp_path, captures):
    records, keylog, *_ = captures[False]
    assert analyze_records(records, PIXIT, [keylog]).stats["shards"] == 1  # workers=1 by default
    plain = analyze_records(records, PIXIT, [keylog], workers=2, plaintext_out=tmp_path / "p.pcapng")
    assert plain.stats["shards"] == 1 and plain.plaintext_path is not None


_REAL_CHILD = shards._child


def _dies(writer, *args):
    os._exit(3)


def _raises(writer, *args):
    _REAL_CHILD(writer, 1, 2, lambda: 1 / 0, PIXIT, 0)  # the capture cannot be read there


def _hangs(writer, *args):
    time.sleep(3600)


@pytest.mark.parametrize("child", [_dies, _raises, _hangs])
def test_a_shard_whose_process_fails_is_dissected_here(tmp_path, captures, monkeypatch, child):
    """A child that dies, fails or never answers costs time, not the result; none is left."""
    path, keylog = _file(tmp_path, captures)
    monkeypatch.setattr(shards, "_child", child)
    forked = _count_forks(monkeypatch)
    if child is _hangs:  # its deadline is over as soon as this process has done its own shard
        monkeypatch.setattr(shards, "MIN_WAIT_S", 0.0)
        monkeypatch.setattr(shards, "WAIT_FACTOR", 0.0)
    result = analyze_file(path, PIXIT, [keylog], workers=2)
    assert result.stats["shards"] == 2
    assert _timeline(result.timeline) == _timeline(analyze_file(path, PIXIT, [keylog], workers=1).timeline)
    assert len(forked) == 1
    _all_reaped(forked)


def test_a_capture_that_cannot_be_read_leaves_no_process(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture" * 10_000)
    forked = _count_forks(monkeypatch)
    with pytest.raises(Exception, match="not a pcap or pcapng file"):
        analyze_file(bad, PIXIT, [], prefilter=False, workers=2)
    assert len(forked) == 1
    _all_reaped(forked)
