"""One SIP client transaction's answer over a TCP stream, shared by the emulated nodes that send
requests on (the WSF to the P-CSCF, the P-CSCF to the S-CSCF). The caller bounds it by Timer F."""

from __future__ import annotations

import asyncio

from conformance.codec import sip

# RFC 3261 17.1.2.2: 64*T1, the longest an emulated node waits for a transaction's final answer
TIMER_F_S = 32.0


async def final_response(reader: asyncio.StreamReader, branch: str, peer: str) -> sip.Response:
    """The first final response (RFC 3261 17.1.1: 2xx-6xx) of the transaction `branch` on the
    stream; provisional responses and other messages are skipped."""
    parser = sip.StreamParser()
    while data := await reader.read(65536):
        for msg in parser.feed(data):
            if isinstance(msg, sip.Response) and msg.branch == branch and msg.status >= 200:
                return msg
    raise ConnectionError(f"the {peer} closed the connection")
