"""Streaming analysis of a session capture (issue 15): every packet is dissected once, and a
window sees what a from-scratch analysis of it (with the history of its streams) would see."""

from __future__ import annotations

from pathlib import Path

import yaml

from conformance.capture import analyze_records
from conformance.capture.stream import SessionAnalysis
from conformance.capture.synth import Capture, registration

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]


def _summary(items) -> list[tuple]:
    return [(round(i.t, 6), i.src_node, i.dst_node, i.summary(), i.decrypted) for i in items]


def _two_cases(tmp_path):
    """Two registrations one after the other, as two test cases of one session."""
    cap, keylog = Capture(), tmp_path / "k.log"
    registration(cap, keylog, port=40000)
    split = len(cap.frames)
    cap.wait(1.0)
    registration(cap, keylog, port=41000)
    records = cap.frames_records()
    return records[:split], records[split:], keylog


def test_windows_match_a_from_scratch_analysis_and_each_packet_is_dissected_once(tmp_path):
    first, second, keylog = _two_cases(tmp_path)
    s = SessionAnalysis(PIXIT, [keylog])
    s.feed(first)
    w1 = s.window(first[0][0], first[-1][0])
    s.feed(second)
    w2 = s.window(second[0][0], second[-1][0])
    assert s.scanner.stats.packets == len(first) + len(second)  # nothing dissected twice
    for recs, w in ((first, w1), (second, w2)):
        ref = analyze_records(recs, PIXIT, [keylog], t_window=(recs[0][0], recs[-1][0]))
        assert _summary(w.timeline.items) == _summary(ref.timeline.items)
        assert sum(1 for i in w.timeline.items if i.proto == "sip") == 6
        assert {k: (c.packets, c.tls_connections, c.decrypted_connections, c.undecryptable)
                for k, c in w.timeline.coverage.items()} == \
               {k: (c.packets, c.tls_connections, c.decrypted_connections, c.undecryptable)
                for k, c in ref.timeline.coverage.items()}
    assert [i.index for i in w2.timeline.items] == list(range(len(w2.timeline.items)))


def test_a_window_inside_a_connection_reads_it_with_the_earlier_handshake(tmp_path):
    first, _, keylog = _two_cases(tmp_path)
    s = SessionAnalysis(PIXIT, [keylog])
    s.feed(first)
    sip = [i for i in s.d.timeline.items if i.proto == "sip"]
    t0 = sip[2].t  # after the TLS handshakes and the first SIP messages
    w = s.window(t0, first[-1][0], pcapng_out=tmp_path / "w.pcapng")
    assert all(i.t >= t0 for i in w.timeline.items) and len([i for i in w.timeline.items if i.proto == "sip"]) == 4
    assert all(c.complete for c in w.timeline.coverage.values())
    # the pcapng of the window carries the handshakes of its streams, so it decrypts alone
    from conformance.capture import analyze_file

    alone = analyze_file(tmp_path / "w.pcapng", PIXIT, [])
    assert sum(1 for i in alone.timeline.items if i.proto == "sip") >= 4


def test_key_log_lines_written_later_are_read_incrementally(tmp_path):
    first, second, keylog = _two_cases(tmp_path)
    text = keylog.read_text()
    late = tmp_path / "late.log"
    late.write_text("")
    s = SessionAnalysis(PIXIT, [late])
    late.write_text(text)  # written after the analysis started, before the packets are fed
    s.feed(first)
    w = s.window(first[0][0], first[-1][0])
    assert all(c.complete for c in w.timeline.coverage.values())


def test_undecryptable_connection_counts_only_in_its_own_windows(tmp_path):
    first, second, keylog = _two_cases(tmp_path)
    s = SessionAnalysis(PIXIT, [tmp_path / "missing.log"])
    s.feed(first)
    w1 = s.window(first[0][0], first[-1][0])
    assert any(c.undecryptable for c in w1.timeline.coverage.values())
    assert any("missing.log" in p for p in w1.timeline.problems)
    w_empty = s.window(first[-1][0] + 0.5, first[-1][0] + 0.9)  # nothing of the first case in it
    assert not w_empty.timeline.coverage and not w_empty.timeline.items


def test_a_late_window_sees_exactly_its_own_packets_items_and_plaintext(tmp_path):
    """Windows find their first packet, item and plaintext event by bisection on running maxima:
    after many earlier cases (some fed out of time order, as two interfaces can be), a window
    still holds exactly what a from-scratch analysis of its own records holds, and its
    plaintext pcapng is byte for byte what the writer makes of the whole session's decrypted
    data cut to the window (nothing pruned or skipped that belongs in it)."""
    from conformance.capture.plaintext import write_plaintext_pcapng

    cap, keylog = Capture(), tmp_path / "k.log"
    cases = []
    for n in range(6):
        start = len(cap.frames)
        registration(cap, keylog, port=40000 + 1000 * n)
        cases.append((start, len(cap.frames)))
        cap.wait(2.0)
    records = cap.frames_records()
    # a batch whose first record arrives last, in every other case (a slower interface)
    batches = [[records[a + 1:b], records[a:a + 1]] if n % 2 else [records[a:b]] for n, (a, b) in enumerate(cases)]
    whole = SessionAnalysis(PIXIT, [keylog])  # the oracle: the same batches, nothing pruned
    for case in batches:
        for batch in case:
            whole.feed(batch)
    s = SessionAnalysis(PIXIT, [keylog])
    for n, (a, b) in enumerate(cases):
        recs = records[a:b]
        for batch in batches[n]:
            s.feed(batch)
        t0, t1 = recs[0][0], recs[-1][0]
        w = s.window(t0, t1)
        s.write(w, t0, t1, plaintext_out=tmp_path / f"s{n}.pcapng", interfaces=["lo"])
        ref = analyze_records(sorted(recs), PIXIT, [keylog], t_window=(t0, t1))
        write_plaintext_pcapng(tmp_path / f"r{n}.pcapng", whole.d.plaintext, None, ["lo"], (t0, t1))
        if n % 2 == 0:  # fed in order: the same as dissecting the case alone
            assert _summary(w.timeline.items) == _summary(ref.timeline.items)
        assert _summary(w.timeline.items) == _summary(i for i in whole.d.timeline.items if t0 <= i.t <= t1)
        assert w.stats["packets"] == len(recs)
        assert (tmp_path / f"s{n}.pcapng").read_bytes() == (tmp_path / f"r{n}.pcapng").read_bytes(), n
