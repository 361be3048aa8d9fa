"""Passive TLS 1.2 / 1.3 record decryption with NSS key logs (sans-IO).

Why our own record layer rather than Scapy's TLS session: a conformance capture must say exactly
*why* a leg could not be read (no key for this client random, handshake not captured, AEAD tag
wrong), and the offline analysis must run at 100,000 packets/s; Scapy's TLS layer dissects every
record into a packet tree (a few hundred records/s with crypto) and leaves undecryptable records
silently encrypted. What stays with maintained code: every cipher and KDF is `cryptography`'s;
this module only parses the record and handshake headers (RFC 8446 5.1, 4; RFC 5246 6.2, 7.4)
and derives keys as the RFCs say.

Key log format (NSS, `SSLKEYLOGFILE`): `<label> <client_random hex> <secret hex>` per line;
CLIENT_RANDOM carries the TLS 1.2 master secret, *_TRAFFIC_SECRET_* the TLS 1.3 secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_FINISHED, HS_KEY_UPDATE = 1, 2, 20, 24
# every secret a connection needs, whatever version the server picks: TLS 1.2's master secret,
# or TLS 1.3's four traffic secrets (handshake and first application secrets of both sides)
TLS12_LABELS = frozenset({"CLIENT_RANDOM"})
TLS13_LABELS = frozenset({"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"})
CLIENT_RANDOM_END = 43  # record header (5) + handshake header (4) + legacy_version (2) + random (32)


def client_random_of(first_bytes: bytes) -> bytes | None:
    """The random of the ClientHello the client's first bytes start with; b"" when they are no
    ClientHello (nothing to wait for); None while fewer than CLIENT_RANDOM_END bytes are in."""
    if len(first_bytes) < CLIENT_RANDOM_END:
        return None
    if first_bytes[0] != HANDSHAKE or first_bytes[5] != HS_CLIENT_HELLO:
        return b""
    return bytes(first_bytes[11:CLIENT_RANDOM_END])


def has_all_keys(keylog: KeyLog, client_random: bytes) -> bool:
    labels = keylog.get(client_random).keys()
    return TLS12_LABELS <= labels or TLS13_LABELS <= labels
MAX_RECORD = 2 ** 14 + 2048  # RFC 5246 6.2.3 (TLSCiphertext.length bound)
# RFC 8446 4.1.3: the random of a HelloRetryRequest
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def looks_like_tls(data: bytes) -> bool:
    """A TLS record header (RFC 8446 5.1): a known content type, major version 3, minor 0..4.
    Not only handshake records: a capture may start in the middle of a connection."""
    return len(data) >= 3 and 20 <= data[0] <= 23 and data[1] == 3 and data[2] <= 4


# -- key logs ---------------------------------------------------------------------------------

class KeyLog:
    """Secrets by client random, merged from any number of NSS key log files."""

    def __init__(self, paths: Iterable[str | Path] = ()):
        self.paths = [Path(p) for p in paths]
        self.secrets: dict[bytes, dict[str, bytes]] = {}
        self.problems: list[str] = []
        self.reload()

    def reload(self) -> None:
        """Key logs grow while a test runs: read them again before analysing."""
        for path in self.paths:
            try:
                text = path.read_text("ascii", "replace")
            except OSError as exc:
                self.problems.append(f"key log {path}: {exc.strerror or exc}")
                continue
            self.add_text(text)

    def add_text(self, text: str) -> None:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or line.startswith("#"):
                continue
            label, cr, secret = parts
            try:
                self.secrets.setdefault(bytes.fromhex(cr), {})[label] = bytes.fromhex(secret)
            except ValueError:
                continue

    def get(self, client_random: bytes) -> dict[str, bytes]:
        return self.secrets.get(client_random, {})

    def lines_for(self, client_randoms: Iterable[bytes] | None = None) -> str:
        """The key log text (all secrets, or only those of the given client randoms)."""
        wanted = None if client_randoms is None else set(client_randoms)
        out = []
        for cr, labels in self.secrets.items():
            if wanted is None or cr in wanted:
                out += [f"{label} {cr.hex()} {s.hex()}" for label, s in labels.items()]
        return "\n".join(out) + ("\n" if out else "")


# -- cipher suites ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Suite:
    name: str
    kind: str  # gcm | chacha | ccm | ccm8 | cbc
    key_len: int
    hash_name: str  # PRF / HKDF hash
    mac_len: int = 0  # CBC suites: HMAC length
    mac_hash: str = ""


_TLS13_SUITES = {
    0x1301: Suite("TLS_AES_128_GCM_SHA256", "gcm", 16, "sha256"),
    0x1302: Suite("TLS_AES_256_GCM_SHA384", "gcm", 32, "sha384"),
    0x1303: Suite("TLS_CHACHA20_POLY1305_SHA256", "chacha", 32, "sha256"),
    0x1304: Suite("TLS_AES_128_CCM_SHA256", "ccm", 16, "sha256"),
    0x1305: Suite("TLS_AES_128_CCM_8_SHA256", "ccm8", 16, "sha256"),
}


def _tls12_suites() -> dict[int, Suite]:
    s: dict[int, Suite] = {}
    for code, name, key_len, h in (
            (0xC02F, "ECDHE_RSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
            (0xC030, "ECDHE_RSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
            (0xC02B, "ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
            (0xC02C, "ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
            (0x009E, "DHE_RSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
            (0x009F, "DHE_RSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
            (0x009C, "RSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
            (0x009D, "RSA_WITH_AES_256_GCM_SHA384", 32, "sha384")):
        s[code] = Suite("TLS_" + name, "gcm", key_len, h)
    for code, name in ((0xCCA8, "ECDHE_RSA"), (0xCCA9, "ECDHE_ECDSA"), (0xCCAA, "DHE_RSA")):
        s[code] = Suite(f"TLS_{name}_WITH_CHACHA20_POLY1305_SHA256", "chacha", 32, "sha256")
    for code, name, key_len, mac in (
            (0xC013, "ECDHE_RSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
            (0xC014, "ECDHE_RSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
            (0xC009, "ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
            (0xC00A, "ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
            (0xC027, "ECDHE_RSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
            (0xC028, "ECDHE_RSA_WITH_AES_256_CBC_SHA384", 32, "sha384"),
            (0xC023, "ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
            (0xC024, "ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", 32, "sha384"),
            (0x002F, "RSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
            (0x0035, "RSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
            (0x003C, "RSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
            (0x003D, "RSA_WITH_AES_256_CBC_SHA256", 32, "sha256")):
        prf = "sha384" if mac == "sha384" else "sha256"  # RFC 5246 5: SHA-256 PRF unless the suite says
        s[code] = Suite("TLS_" + name, "cbc", key_len, prf, hashlib.new(mac).digest_size, mac)
    return s


_TLS12_SUITES = _tls12_suites()


def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int, hash_name: str) -> bytes:
    """RFC 8446 7.1: HKDF-Expand(Secret, HkdfLabel, Length), HkdfLabel = length || "tls13 "+label || context."""
    full = b"tls13 " + label.encode()
    info = struct.pack("!HB", length, len(full)) + full + struct.pack("!B", len(context)) + context
    return hkdf_expand(secret, info, length, hash_name)


_HASHES: dict[str, tuple] = {}  # hash name -> (constructor, block size)
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac_of(key: bytes, hash_name: str):
    """HMAC (RFC 2104) with this key as a function of the message, on the standard library's
    hash objects. OpenSSL 3 looks the algorithm up again in every `hmac.digest` call (about 5 us
    against 1.5 us for the two hashes themselves); the key schedule of one connection makes a
    dozen of them, half of the TLS key derivation time of an offline analysis (py-spy, issue 15).
    Checked against `hmac.digest` in tests/unit/test_capture_speed_equivalence.py."""
    known = _HASHES.get(hash_name)
    if known is None:
        ctor = getattr(hashlib, hash_name, None) or (lambda data=b"": hashlib.new(hash_name, data))
        known = _HASHES[hash_name] = (ctor, ctor().block_size)
    ctor, block = known
    if len(key) > block:
        key = ctor(key).digest()
    key = key.ljust(block, b"\0")
    inner, outer = key.translate(_IPAD), key.translate(_OPAD)
    return lambda msg: ctor(outer + ctor(inner + msg).digest()).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int, hash_name: str) -> bytes:
    """RFC 5869 2.3. Not a cryptography HKDFExpand object per label (about 5 % of an offline
    analysis, py-spy) nor one hmac.digest per block (see _hmac_of)."""
    mac = _hmac_of(prk, hash_name)
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = mac(block + info + bytes([counter]))
        out += block
        counter += 1
    return out[:length]


def prf12(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """RFC 5246 5: PRF(secret, label, seed) = P_<hash>(secret, label + seed)."""
    mac = _hmac_of(secret, hash_name)
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = mac(a)
        out += mac(a + seed)
    return out[:length]


def _aead(kind: str, key: bytes):
    if kind == "gcm":
        return AESGCM(key)
    if kind == "chacha":
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=8 if kind == "ccm8" else 16)


class DecryptError(Exception):
    pass


@dataclass
class _Keys:
    """Record protection state of one direction (RFC 8446 5.3 / RFC 5246 6.1)."""

    suite: Suite
    key: bytes
    iv: bytes
    mac_key: bytes = b""
    secret: bytes = b""  # TLS 1.3 traffic secret (for KeyUpdate)
    seq: int = 0
    etm: bool = False  # RFC 7366 encrypt-then-MAC (CBC only)

    def __post_init__(self):
        self._iv_int: int | None = None
        self._aead = None if self.suite.kind == "cbc" else _aead(self.suite.kind, self.key)

    def _nonce(self) -> bytes:
        iv = self._iv_int
        if iv is None:  # converted once per direction, not per record
            iv = self._iv_int = int.from_bytes(self.iv, "big")
        return (iv ^ self.seq).to_bytes(len(self.iv), "big")

    def open13(self, header: bytes, body: bytes) -> tuple[int, bytes]:
        """RFC 8446 5.2: TLSInnerPlaintext = content || ContentType type || zeros."""
        try:
            inner = self._aead.decrypt(self._nonce(), body, header)
        except InvalidTag as exc:
            raise DecryptError("authentication tag mismatch") from exc
        self.seq += 1
        end = len(inner.rstrip(b"\x00"))
        if end == 0:
            raise DecryptError("inner plaintext without a content type")
        return inner[end - 1], inner[:end - 1]

    def open12(self, ctype: int, version: bytes, body: bytes) -> bytes:
        seq = struct.pack("!Q", self.seq)
        kind = self.suite.kind
        if kind == "gcm":  # RFC 5288 3: nonce = salt(4) || explicit(8)
            if len(body) < 24:
                raise DecryptError("record too short for AES-GCM")
            nonce, ct = self.iv + body[:8], body[8:]
            aad = seq + bytes([ctype]) + version + struct.pack("!H", len(ct) - 16)
        elif kind == "chacha":  # RFC 7905 2: nonce = iv XOR seq
            nonce, ct = self._nonce(), body
            aad = seq + bytes([ctype]) + version + struct.pack("!H", len(ct) - 16)
        else:
            return self._cbc(ctype, version, body, seq)
        try:
            plain = self._aead.decrypt(nonce, ct, aad)
        except InvalidTag as exc:
            raise DecryptError("authentication tag mismatch") from exc
        self.seq += 1
        return plain

    def _cbc(self, ctype: int, version: bytes, body: bytes, seq: bytes) -> bytes:
        """RFC 5246 6.2.3.2 (MAC-then-encrypt) or RFC 7366 (encrypt-then-MAC)."""
        mac_len = self.suite.mac_len
        if self.etm:
            body, mac = body[:-mac_len], body[-mac_len:]
            want = hmac.new(self.mac_key, seq + bytes([ctype]) + version + struct.pack("!H", len(body)) + body,
                            self.suite.mac_hash).digest()
            if not hmac.compare_digest(mac, want):
                raise DecryptError("record MAC mismatch (encrypt-then-MAC)")
        if len(body) < 32 or len(body) % 16:
            raise DecryptError("CBC record of a bad length")
        dec = Cipher(algorithms.AES(self.key), modes.CBC(body[:16])).decryptor()
        plain = dec.update(body[16:]) + dec.finalize()
        pad = plain[-1] + 1
        if pad > len(plain):
            raise DecryptError("bad CBC padding")
        plain = plain[:-pad]
        if not self.etm:
            plain, mac = plain[:-mac_len], plain[-mac_len:]
            want = hmac.new(self.mac_key, seq + bytes([ctype]) + version + struct.pack("!H", len(plain)) + plain,
                            self.suite.mac_hash).digest()
            if not hmac.compare_digest(mac, want):
                raise DecryptError("record MAC mismatch")
        self.seq += 1
        return plain


_LABELS13: dict[int, tuple[bytes, bytes]] = {}  # key length -> HkdfLabel of "key" and of "iv", block 1


def _keys13(suite: Suite, secret: bytes) -> _Keys:
    """RFC 8446 7.3: key = HKDF-Expand-Label(secret, "key", "", key_length), iv = ...("iv", "", 12).
    Both fit in one HMAC block of every TLS 1.3 hash, and their HkdfLabels are constants: one
    HMAC key set-up and two HMACs per traffic secret (four secrets per connection)."""
    labels = _LABELS13.get(suite.key_len)
    if labels is None:
        labels = _LABELS13[suite.key_len] = tuple(
            struct.pack("!HB", n, len(b"tls13 " + label)) + b"tls13 " + label + b"\x00" + b"\x01"
            for label, n in ((b"key", suite.key_len), (b"iv", 12)))
    mac = _hmac_of(secret, suite.hash_name)
    return _Keys(suite, mac(labels[0])[:suite.key_len], mac(labels[1])[:12], secret=secret)


# -- the connection ---------------------------------------------------------------------------

@dataclass
class TlsEvent:
    """What the record layer of one direction produced."""

    kind: str  # data | alert | handshake | error
    from_client: bool
    data: bytes = b""
    detail: str = ""


@dataclass
class _Dir:
    buf: bytearray = field(default_factory=bytearray)
    hs_buf: bytearray = field(default_factory=bytearray)  # handshake messages may span records
    keys: _Keys | None = None
    encrypted: bool = False  # records of this direction are protected now
    waiting: list[tuple[bytes, bytes]] = field(default_factory=list)  # protected records before keys known
    app_secret_label: str = ""
    records: int = 0
    decrypted: int = 0


class TlsConnection:
    """Both directions of one TLS connection. Feed each direction's reassembled TCP bytes in
    capture order; plaintext application data and problems come out as `TlsEvent`s.

    `status` tells whether the connection could be read: "decrypted", or why not.
    """

    def __init__(self, keylog: KeyLog):
        self.keylog = keylog
        self.c, self.s = _Dir(), _Dir()
        self.client_random: bytes | None = None
        self.server_random: bytes | None = None
        self.version: int | None = None  # 0x0303 or 0x0304
        self.suite: Suite | None = None
        self.suite_code: int | None = None
        self.sni: str | None = None
        self.alpn: list[str] = []
        self.etm = False
        self.undecryptable: str | None = None  # reason the protected records cannot be read
        self.failed: str | None = None  # the byte stream is not TLS (any more)
        self._hello_done = False
        self._key_block: tuple[tuple, bytes] | None = None  # TLS 1.2: (inputs, key block)

    @property
    def status(self) -> str:
        if self.failed:
            return f"not decrypted: {self.failed}"
        if self.undecryptable:
            return f"not decrypted: {self.undecryptable}"
        return "decrypted"

    @property
    def decrypted_any(self) -> bool:
        return bool(self.c.decrypted or self.s.decrypted)

    def feed(self, from_client: bool, data: bytes) -> list[TlsEvent]:
        d = self.c if from_client else self.s
        if self.failed:
            return []
        # Records are cut from one bytes object by position and what is left kept once at the
        # end: deleting each record from the front of the bytearray moved the rest of the buffer
        # every time, and copied header and body again (offline analysis, issue 15).
        if d.buf:
            d.buf += data
            buf = bytes(d.buf)
        else:
            buf = bytes(data)  # no copy when it is bytes already
        out: list[TlsEvent] = []
        pos, end = 0, len(buf)
        while end - pos >= 5:
            ctype, length = buf[pos], (buf[pos + 3] << 8) | buf[pos + 4]
            if ctype not in (20, 21, 22, 23, 24) or buf[pos + 1] != 3 or length > MAX_RECORD:
                self.failed = f"invalid TLS record header {buf[pos:pos + 5].hex()}"
                out.append(TlsEvent("error", from_client, buf[pos:], self.failed))
                pos = end
                break
            if end - pos < 5 + length:
                break
            header, version, body = buf[pos:pos + 5], buf[pos + 1:pos + 3], buf[pos + 5:pos + 5 + length]
            pos += 5 + length
            d.records += 1
            out += self._record(from_client, d, ctype, version, header, body)
        if pos < end:
            d.buf = bytearray(buf[pos:])
        elif d.buf:
            d.buf.clear()
        return out

    # -- records ------------------------------------------------------------------------------
    def _record(self, fc: bool, d: _Dir, ctype: int, version: bytes, header: bytes, body: bytes) -> list[TlsEvent]:
        if ctype == CHANGE_CIPHER_SPEC:
            if self.version != 0x0304:
                d.encrypted = True  # RFC 5246 7.1: what follows is protected with the new keys
                self._install12(fc)
            return []  # TLS 1.3: a middlebox-compatibility record, ignored (RFC 8446 D.4)
        if ctype == APPLICATION_DATA and self.version is None and not d.encrypted:
            d.encrypted = True  # protected data of a connection whose handshake we did not see
            self.undecryptable = self.undecryptable or "handshake not captured"
            return [TlsEvent("error", fc, body, self.undecryptable)]
        if not d.encrypted and not (self.version == 0x0304 and ctype == APPLICATION_DATA):
            if ctype == HANDSHAKE:
                return self._handshake(fc, d, body)
            if ctype == ALERT:
                return [TlsEvent("alert", fc, body, _alert(body))]
            return [TlsEvent("error", fc, body, f"unprotected record of type {ctype}")]
        # protected record
        if self.version == 0x0304:
            d.encrypted = True
        if d.keys is None:
            if self.undecryptable:
                return []
            d.waiting.append((header, body))
            return []
        return self._open(fc, d, ctype, version, header, body)

    def _open(self, fc: bool, d: _Dir, ctype: int, version: bytes, header: bytes, body: bytes) -> list[TlsEvent]:
        try:
            if self.version == 0x0304:
                ctype, plain = d.keys.open13(header, body)
            else:
                plain = d.keys.open12(ctype, version, body)
        except DecryptError as exc:
            if self.version == 0x0304 and self._try_next_epoch(fc, d, header, body):
                ctype, plain = d.keys.open13(header, body)
            else:
                self.undecryptable = f"{'client' if fc else 'server'} record {d.records}: {exc}"
                d.keys = None  # record sequence lost: nothing after this decrypts either
                return [TlsEvent("error", fc, body, self.undecryptable)]
        d.decrypted += 1
        if ctype == APPLICATION_DATA:
            return [TlsEvent("data", fc, plain)]
        if ctype == ALERT:
            return [TlsEvent("alert", fc, plain, _alert(plain))]
        if ctype == HANDSHAKE:
            return self._handshake(fc, d, plain)
        return []

    def _try_next_epoch(self, fc: bool, d: _Dir, header: bytes, body: bytes) -> bool:
        """A Finished we could not see (e.g. split oddly) must not lose the connection: if the
        handshake keys fail, try the application keys before giving up."""
        label = "CLIENT_TRAFFIC_SECRET_0" if fc else "SERVER_TRAFFIC_SECRET_0"
        secret = self.keylog.get(self.client_random or b"").get(label)
        if secret is None or d.app_secret_label == label:
            return False
        keys = _keys13(self.suite, secret)
        try:
            keys.open13(header, body)
        except DecryptError:
            return False
        d.keys, d.app_secret_label = _keys13(self.suite, secret), label
        return True

    # -- handshake ----------------------------------------------------------------------------
    def _handshake(self, fc: bool, d: _Dir, data: bytes) -> list[TlsEvent]:
        d.hs_buf += data
        out: list[TlsEvent] = []
        while len(d.hs_buf) >= 4:
            mtype = d.hs_buf[0]
            mlen = int.from_bytes(d.hs_buf[1:4], "big")
            if len(d.hs_buf) < 4 + mlen:
                break
            msg = bytes(d.hs_buf[4:4 + mlen])
            del d.hs_buf[:4 + mlen]
            try:
                out += self._hs_message(fc, d, mtype, msg)
            except (struct.error, IndexError, ValueError) as exc:
                out.append(TlsEvent("error", fc, msg, f"malformed handshake message {mtype}: {exc}"))
        return out

    def _hs_message(self, fc: bool, d: _Dir, mtype: int, msg: bytes) -> list[TlsEvent]:
        if mtype == HS_CLIENT_HELLO and fc:
            self._client_hello(msg)
            return [TlsEvent("handshake", fc, b"", f"ClientHello sni={self.sni} alpn={self.alpn}")]
        if mtype == HS_SERVER_HELLO and not fc:
            return self._server_hello(msg)
        if mtype == HS_FINISHED and self.version == 0x0304:
            # RFC 8446 7.1: after its Finished, a side protects records with its application secret
            label = "CLIENT_TRAFFIC_SECRET_0" if fc else "SERVER_TRAFFIC_SECRET_0"
            secret = self.keylog.get(self.client_random or b"").get(label)
            if secret is None:
                self.undecryptable = f"no {label} in the key logs for client random {self.client_random.hex()}"
                d.keys = None
            else:
                d.keys, d.app_secret_label = _keys13(self.suite, secret), label
        elif mtype == HS_KEY_UPDATE and self.version == 0x0304 and d.keys is not None:
            # RFC 8446 7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)
            h = self.suite.hash_name
            d.keys = _keys13(self.suite, hkdf_expand_label(d.keys.secret, "traffic upd", b"",
                                                           hashlib.new(h).digest_size, h))
        return []

    def _client_hello(self, msg: bytes) -> None:
        """RFC 8446 4.1.2 ClientHello: legacy_version, random, session_id, cipher_suites, compression, extensions."""
        if self.client_random is not None and self._hello_done:
            return  # second ClientHello after a HelloRetryRequest: same random
        self.client_random = msg[2:34]
        pos = 34
        pos += 1 + msg[pos]  # legacy_session_id
        pos += 2 + struct.unpack_from("!H", msg, pos)[0]  # cipher_suites
        pos += 1 + msg[pos]  # legacy_compression_methods
        for etype, ext in _extensions(msg, pos):
            if etype == 0 and len(ext) > 5:  # server_name: list of (type, name)
                self.sni = ext[5:5 + struct.unpack_from("!H", ext, 3)[0]].decode("ascii", "replace")
            elif etype == 16 and len(ext) > 2:  # ALPN
                p, self.alpn = 2, []
                while p < len(ext):
                    n = ext[p]
                    self.alpn.append(ext[p + 1:p + 1 + n].decode("ascii", "replace"))
                    p += 1 + n
        self._hello_done = True

    def _server_hello(self, msg: bytes) -> list[TlsEvent]:
        """RFC 8446 4.1.3 ServerHello: legacy_version, random, session_id_echo, cipher_suite, compression, extensions."""
        version = struct.unpack_from("!H", msg, 0)[0]
        random = msg[2:34]
        pos = 34
        pos += 1 + msg[pos]
        (suite,) = struct.unpack_from("!H", msg, pos)
        pos += 3
        etm = False
        for etype, ext in _extensions(msg, pos):
            if etype == 43 and len(ext) == 2:  # supported_versions: the selected version
                (version,) = struct.unpack("!H", ext)
            elif etype == 22:
                etm = True
        if random == HRR_RANDOM:  # RFC 8446 4.1.4: TLS 1.3 only; the real ServerHello follows
            self.version = version
            return [TlsEvent("handshake", False, b"", "HelloRetryRequest")]
        self.server_random, self.version, self.suite_code, self.etm = random, version, suite, etm
        table = _TLS13_SUITES if version == 0x0304 else _TLS12_SUITES
        self.suite = table.get(suite)
        if self.client_random is None:
            self.undecryptable = "ClientHello not captured"
        elif self.suite is None:
            self.undecryptable = f"cipher suite 0x{suite:04x} not supported by the dissector"
        elif version == 0x0304:
            self._install13()
        elif version != 0x0303:
            self.undecryptable = f"TLS version 0x{version:04x} not supported by the dissector"
        elif "CLIENT_RANDOM" not in self.keylog.get(self.client_random):
            self.undecryptable = f"no CLIENT_RANDOM in the key logs for client random {self.client_random.hex()}"
        name = self.suite.name if self.suite else f"0x{suite:04x}"
        return [TlsEvent("handshake", False, b"", f"ServerHello version=0x{version:04x} suite={name}")]

    def _install13(self) -> None:
        secrets = self.keylog.get(self.client_random)
        for d, label in ((self.c, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"), (self.s, "SERVER_HANDSHAKE_TRAFFIC_SECRET")):
            if label not in secrets:
                self.undecryptable = f"no {label} in the key logs for client random {self.client_random.hex()}"
                return
            d.keys = _keys13(self.suite, secrets[label])
        self._flush_waiting()

    def _install12(self, fc: bool) -> None:
        if self.undecryptable or self.suite is None or self.client_random is None:
            if self.undecryptable is None:
                self.undecryptable = "ServerHello not captured"
            return
        master = self.keylog.get(self.client_random).get("CLIENT_RANDOM")
        if master is None:
            return
        s = self.suite
        sizes = (s.mac_len, s.mac_len, s.key_len, s.key_len)
        iv_len = {"gcm": 4, "chacha": 12}.get(s.kind, 0)
        # RFC 5246 6.3: one key block for both directions, derived at the first ChangeCipherSpec
        # and kept for the other's (a renegotiation's new randoms or master derive a new one)
        inputs = (master, self.server_random, self.client_random, s)
        if self._key_block is not None and self._key_block[0] == inputs:
            block = self._key_block[1]
        else:
            block = prf12(master, b"key expansion", self.server_random + self.client_random,
                          2 * (s.mac_len + s.key_len + iv_len), s.hash_name)
            self._key_block = (inputs, block)
        parts, pos = [], 0
        for n in sizes + (iv_len, iv_len):
            parts.append(block[pos:pos + n])
            pos += n
        cmac, smac, ckey, skey, civ, siv = parts
        d = self.c if fc else self.s
        d.keys = _Keys(s, ckey if fc else skey, civ if fc else siv, cmac if fc else smac, etm=self.etm)

    def _flush_waiting(self) -> None:
        for fc, d in ((True, self.c), (False, self.s)):
            waiting, d.waiting = d.waiting, []
            for header, body in waiting:
                self._open(fc, d, header[0], header[1:3], header, body)

    def finish(self) -> None:
        """End of the connection: protected records that never got keys make it undecryptable."""
        if (self.c.waiting or self.s.waiting) and not self.undecryptable:
            self.undecryptable = "handshake not captured" if self.client_random is None else "keys never derived"
        if self.client_random is None and (self.c.encrypted or self.s.encrypted) and not self.undecryptable:
            self.undecryptable = "handshake not captured"


def _extensions(msg: bytes, pos: int):
    if pos + 2 > len(msg):
        return
    (total,) = struct.unpack_from("!H", msg, pos)
    pos += 2
    end = min(pos + total, len(msg))
    while pos + 4 <= end:
        etype, elen = struct.unpack_from("!HH", msg, pos)
        yield etype, msg[pos + 4:pos + 4 + elen]
        pos += 4 + elen


_ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
           42: "bad_certificate", 46: "certificate_unknown", 48: "unknown_ca", 50: "decode_error",
           51: "decrypt_error", 70: "protocol_version", 80: "internal_error", 90: "user_canceled",
           109: "missing_extension", 112: "unrecognized_name", 116: "certificate_required",
           120: "no_application_protocol"}


def _alert(body: bytes) -> str:
    if len(body) != 2:
        return f"malformed alert {body.hex()}"
    level = {1: "warning", 2: "fatal"}.get(body[0], str(body[0]))
    return f"{level} {_ALERTS.get(body[1], body[1])}"
