"""Cutting a TCP byte stream into SIP messages (RFC 3261 18.3): the header ends at the first empty
line, the body is Content-Length octets long. Without a usable Content-Length the stream cannot be
framed any more; an oversize message is skipped by its Content-Length, so the stream stays in step."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LENGTH_LINE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


@dataclass
class FramingFailure:
    """What could not be framed; `head` is the header part (for a 400 or 513 copying it)."""

    reason: str
    head: bytes


class StreamFramer:
    def __init__(self, max_size: int = 65536):
        self.max_size = max_size
        self._buffer = bytearray()
        self._skip = 0  # body octets of an oversize message still to discard

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | FramingFailure]:
        """Complete messages (raw bytes) and failures, in stream order."""
        self._buffer += data
        out: list[bytes | FramingFailure] = []
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return out
            while self._buffer[:2] == b"\r\n":  # 7.5 / RFC 5626 keep-alives between messages
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_size:
                    out.append(FramingFailure(f"no end of header within {self.max_size} octets",
                                              bytes(self._buffer[:4096])))
                    self._buffer.clear()
                return out
            head = bytes(self._buffer[:end + 4])
            lengths = {m.group(1) for m in _LENGTH_LINE.finditer(head)}
            if len(lengths) != 1:
                why = "no Content-Length" if not lengths else "conflicting Content-Length values"
                out.append(FramingFailure(f"{why} on a stream (RFC 3261 18.3)", head))
                self._buffer.clear()
                return out
            value = lengths.pop()
            if not (value.isdigit() and len(value) < 10):
                out.append(FramingFailure(f"Content-Length {value[:20].decode(errors='replace')!r} "
                                          "is not a usable number", head))
                self._buffer.clear()
                return out
            total = len(head) + int(value)
            if total > self.max_size:
                out.append(FramingFailure(f"message of {total} octets exceeds the limit of {self.max_size}", head))
                del self._buffer[:len(head)]
                self._skip = int(value)
                continue
            if len(self._buffer) < total:
                return out
            out.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
