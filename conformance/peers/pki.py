"""Certificates of the emulated TLS peers: issued by the CA the profile names (peers.tls.ca_cert
and ca_key, e.g. the vendor's own test CA) or by the harness's test CA, generated once in the work
directory (`peers-pki/ca.pem`: the file the vendor makes its node trust)."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


def _ca(profile, workdir: Path) -> tuple[trustme.CA, Path]:
    tls = (profile.raw.get("peers") or {}).get("tls") or {}
    if tls.get("ca_cert") and tls.get("ca_key"):
        cert, key = profile.resolve_path(tls["ca_cert"]), profile.resolve_path(tls["ca_key"])
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes()), cert
    directory = workdir / "peers-pki"
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca.key"
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes()), cert
    ca = trustme.CA(organization_name="ims-conformance harness test CA", key_type=trustme.KeyType.ECDSA)
    ca.cert_pem.write_to_path(str(cert))
    ca.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return ca, cert


def server_context(profile, workdir: Path, node: dict, keylog: Path) -> tuple[ssl.SSLContext, Path]:
    """TLS server context for one emulated node (its certificate names tls_name and address);
    returns it with the CA file that verifies it. Keys are logged so its legs decrypt."""
    ca, ca_file = _ca(profile, workdir)
    names = [n for n in (node.get("tls_name"), node.get("address")) if n]
    leaf = ca.issue_cert(*names, common_name=names[0], key_type=trustme.KeyType.ECDSA)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(ctx)
    keylog.parent.mkdir(parents=True, exist_ok=True)
    ctx.keylog_filename = str(keylog)
    return ctx, ca_file


def ca_file(profile, workdir: Path) -> Path:
    """The CA file that verifies the emulated peers' certificates."""
    return _ca(profile, workdir)[1]


def client_context(profile, workdir: Path) -> ssl.SSLContext:
    """TLS client context of an emulated peer calling another node: trusts the CA of the SUT's
    certificates (pixit.tls.ca_bundle) and the CA of the emulated peers."""
    ctx = ssl.create_default_context()
    bundle = (profile.pixit.get("tls") or {}).get("ca_bundle")
    if bundle:
        ctx.load_verify_locations(str(profile.resolve_path(bundle)))
    ctx.load_verify_locations(str(ca_file(profile, workdir)))
    return ctx
