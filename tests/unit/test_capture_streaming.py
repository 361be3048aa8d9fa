"""Dissecting while the test case runs (capture.stream with `final=False`, the CaptureFactory's
feeder): a TLS connection seen before its secrets are logged is held, not misread, and every
window sees what dissecting the whole capture at its end would show (issue 15)."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from conformance.capture.stream import SessionAnalysis
from conformance.capture.synth import Capture, registration
from conformance.capture.tls import client_random_of
from conformance.run.capture_hook import Feeder

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]


def _registration(tmp_path):
    cap, keylog = Capture(), tmp_path / "made.keylog"
    registration(cap, keylog)
    return cap.frames_records(), keylog.read_text()


def _items(result):
    return [(i.t, i.src_node, i.dst_node, i.proto, i.summary()) for i in result.timeline.items]


def _coverage(result):
    return {k: (c.decrypted_connections, sorted(c.undecryptable)) for k, c in result.timeline.coverage.items()}


def _at_once(tmp_path, records, keys: str):
    """The reference: the whole capture dissected at the window's end, as without streaming."""
    log = tmp_path / "once.keylog"
    log.write_text(keys)
    a = SessionAnalysis(PIXIT, [log])
    a.feed(records, final=True)
    return a.window(records[0][0] - 1, records[-1][0] + 1)


def test_a_connection_seen_before_its_secrets_is_held_then_dissected_as_a_whole(tmp_path):
    records, keys = _registration(tmp_path)
    log = tmp_path / "late.keylog"
    log.write_text("")  # the endpoints have not written their secrets yet
    a = SessionAnalysis(PIXIT, [log])
    half = len(records) // 2
    for i in range(0, half, 7):  # the feeder's chunks while the case runs
        a.feed(records[i:min(i + 7, half)], final=False)
    assert a.d.held, "TLS connections without their secrets are held"
    assert not [t for t in a.d.tls if t.undecryptable]  # nothing was judged undecryptable meanwhile
    log.write_text(keys)  # now they are logged
    a.feed(records[half:], final=False)
    assert not a.d.held
    result = a.window(records[0][0] - 1, records[-1][0] + 1)
    reference = _at_once(tmp_path, records, keys)
    assert _items(result) == _items(reference)  # same messages, same capture times
    assert _coverage(result) == _coverage(reference)
    assert any(i.decrypted for i in result.timeline.items)


def test_secrets_never_logged_end_as_undecryptable_at_the_window_as_before(tmp_path):
    records, _keys = _registration(tmp_path)
    log = tmp_path / "none.keylog"
    log.write_text("")
    a = SessionAnalysis(PIXIT, [log])
    for i in range(0, len(records), 5):
        a.feed(records[i:i + 5], final=False)
    assert a.d.held
    a.feed([], final=True)  # the window ends: nothing is held any longer
    assert not a.d.held
    result = a.window(records[0][0] - 1, records[-1][0] + 1)
    reference = _at_once(tmp_path, records, "")
    assert _items(result) == _items(reference)
    assert _coverage(result) == _coverage(reference)
    assert any(c.undecryptable for c in result.timeline.coverage.values())


def test_offline_analysis_holds_nothing(tmp_path):
    records, keys = _registration(tmp_path)
    log = tmp_path / "k.keylog"
    log.write_text("")
    a = SessionAnalysis(PIXIT, [log])
    a.feed(records)  # final by default: analyse_records and the window's own feed
    assert not a.d.held


def test_the_client_random_is_read_from_the_first_client_bytes():
    hello = bytes([22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]) + bytes(range(32)) + b"rest"
    assert client_random_of(hello) == bytes(range(32))
    assert client_random_of(hello[:42]) is None  # not all in yet
    assert client_random_of(b"GET / HTTP/1.1\r\n" * 3) == b""  # no ClientHello: nothing to wait for


def test_the_feeder_dissects_in_chunks_and_hands_its_error_to_the_case():
    fed = []

    def feed_some():
        fed.append(1)
        if len(fed) == 3:
            raise ValueError("dissector bug")
        return len(fed) < 5

    feeder = Feeder(feed_some, every_s=0.001)
    deadline = time.monotonic() + 5
    while len(fed) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    feeder.stop()
    assert len(fed) == 3  # it stopped at the error
    try:
        feeder.raise_error()
    except ValueError as exc:
        assert "dissector bug" in str(exc)
    else:
        raise AssertionError("the feeder's error was lost")
    feeder.raise_error()  # raised once


def test_a_held_connection_is_bounded(tmp_path, monkeypatch):
    from conformance.capture import dissect

    records, _keys = _registration(tmp_path)
    monkeypatch.setattr(dissect, "MAX_HELD_BYTES", 100)  # a peer that never logs and sends a lot
    log = tmp_path / "none.keylog"
    log.write_text("")
    a = SessionAnalysis(PIXIT, [log])
    a.feed(records, final=False)
    assert not a.d.held  # each was dissected once it held more than the bound
    assert all(t.undecryptable for t in a.d.tls if t.client_random)


def test_a_feeder_wake_up_with_nothing_new_reads_no_key_log():
    from types import SimpleNamespace

    from conformance.run.capture_hook import CaptureFactory

    fed = []
    factory = CaptureFactory.__new__(CaptureFactory)  # only what _feed_new uses
    factory.session = SimpleNamespace(records=[(1.0, 1, b"frame", 0)])
    factory._scanned = 0
    factory._analysis = SimpleNamespace(feed=lambda new, final: fed.append((len(new), final)))
    assert factory._feed_new(final=False, limit=16) == 1
    assert factory._feed_new(final=False, limit=16) == 0  # idle: every 10 ms during a long wait
    assert fed == [(1, False)]
    factory._feed_new(final=True)  # a window always feeds: it releases what is held
    assert fed == [(1, False), (0, True)]


def test_while_the_case_runs_key_logs_are_read_only_for_a_connection_waiting_for_its_secrets(tmp_path, monkeypatch):
    records, keys = _registration(tmp_path)
    log = tmp_path / "k.keylog"
    log.write_text(keys)  # logged before the feeder sees the handshakes, as the endpoints do
    a = SessionAnalysis(PIXIT, [log])
    reads = []
    read_keys = a._read_keys
    monkeypatch.setattr(a, "_read_keys", lambda: (reads.append(1), read_keys())[1])
    a.feed([], final=False)  # a feed with nothing held looks at no key log
    assert reads == []
    for i in range(0, len(records), 7):
        a.feed(records[i:i + 7], final=False)
        assert not a.d.held  # a connection whose secrets are logged waits no longer than its feed
    assert reads, "the handshakes had the key log read"
    assert len(reads) < len(range(0, len(records), 7))  # not at every feed
    result = a.window(records[0][0] - 1, records[-1][0] + 1)
    reference = _at_once(tmp_path, records, keys)
    assert _items(result) == _items(reference)
    assert _coverage(result) == _coverage(reference)


def test_key_log_lines_from_before_the_session_are_never_read(tmp_path):
    """The session starts reading each key log where it ended when the sniffer started: old
    secrets (a log the SUT appends to across runs) are neither parsed nor kept, and the
    connections of the session decrypt as before."""
    from conformance.capture.stream import keylog_ends

    records, keys = _registration(tmp_path)
    log = tmp_path / "sut.keylog"
    old = "".join(f"CLIENT_RANDOM {i:064x} {'ab' * 48}\n" for i in range(2000))
    log.write_text(old)
    a = SessionAnalysis(PIXIT, [log], keylog_ends([log]))
    with log.open("a") as fh:  # the session's handshakes log their secrets after the mark
        fh.write(keys)
    a.feed(records, final=True)
    result = a.window(records[0][0] - 1, records[-1][0] + 1)
    assert not any(int(cr.hex(), 16) < 2000 for cr in a.keylog.secrets)  # none of the old lines
    assert len(a.keylog.secrets) == len({line.split()[1] for line in keys.splitlines()
                                         if len(line.split()) == 3 and not line.startswith("#")})
    reference = _at_once(tmp_path, records, keys)
    assert _items(result) == _items(reference) and _coverage(result) == _coverage(reference)
    assert any(i.decrypted for i in result.timeline.items)


def test_a_key_log_line_being_written_at_the_mark_is_skipped_whole(tmp_path):
    from conformance.capture.stream import keylog_ends

    records, keys = _registration(tmp_path)
    log = tmp_path / "sut.keylog"
    half_line = "CLIENT_"  # its writer is half-way through: what follows would parse on its own
    log.write_text(f"CLIENT_RANDOM {'22' * 32} {'cd' * 48}\n" + half_line)
    marks = keylog_ends([log, tmp_path / "not-yet.keylog"])
    assert marks == {log: (log.stat().st_size, True)}  # a log not there yet is read from its start
    a = SessionAnalysis(PIXIT, [log], marks)
    a.feed(records[:3], final=False)
    a._read_keys()
    assert a.keylog.secrets == {}  # the line is not finished: nothing read, nothing misread
    with log.open("a") as fh:
        fh.write(f"RANDOM {'11' * 32} {'ab' * 48}\n" + keys)
    a.feed(records[3:], final=True)
    result = a.window(records[0][0] - 1, records[-1][0] + 1)
    assert bytes.fromhex("11" * 32) not in a.keylog.secrets and bytes.fromhex("22" * 32) not in a.keylog.secrets
    assert _items(result) == _items(_at_once(tmp_path, records, keys))


def test_a_key_log_started_anew_is_read_from_its_start(tmp_path):
    """An endpoint that restarts and opens its key log for writing (not appending) starts it
    anew: shorter than what was read, every line of it is new."""
    from conformance.capture.stream import keylog_ends

    records, keys = _registration(tmp_path)
    log = tmp_path / "sut.keylog"
    log.write_text("".join(f"CLIENT_RANDOM {i:064x} {'ab' * 48}\n" for i in range(500)))
    a = SessionAnalysis(PIXIT, [log], keylog_ends([log]))
    log.write_text(keys)  # truncated and rewritten: far shorter than the mark
    a.feed(records, final=True)
    result = a.window(records[0][0] - 1, records[-1][0] + 1)
    assert _items(result) == _items(_at_once(tmp_path, records, keys))
    assert any(i.decrypted for i in result.timeline.items)
