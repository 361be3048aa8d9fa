"""Test PKI of the reference network: one CA, one leaf certificate per TLS node.

Generated on first start with trustme (ECDSA P-256) into `cfg.pki_dir` and reused afterwards.
Each leaf names the node's DNS name (BINDING.md table) AND its IP address, so a client can verify
the server whether it dials the name or the loopback address. Every SSL context writes the node's
NSS key log (`SSLKEYLOGFILE` format) so captures of all its legs, server and client side, decrypt.
"""

from __future__ import annotations

import fcntl
import json
import os
import ssl
from contextlib import contextmanager
from pathlib import Path

import trustme

from .config import NetworkConfig

TLS_NODES = ("3rdwws", "as", "wsf")


@contextmanager
def _locked(directory: Path):
    """Serialise generation between processes (nodes may be started on their own)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load_or_create_ca(cfg: NetworkConfig) -> trustme.CA:
    key_file = cfg.pki_dir / "ca.key"
    if cfg.ca_file.exists() and key_file.exists():
        return trustme.CA.from_pem(cfg.ca_file.read_bytes(), key_file.read_bytes())
    ca = trustme.CA(organization_name="refnet test CA", key_type=trustme.KeyType.ECDSA)
    ca.cert_pem.write_to_path(str(cfg.ca_file))
    ca.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    return ca


def ensure(cfg: NetworkConfig) -> None:
    """Create the CA and the leaf certificates that are missing or name another host. Idempotent."""
    with _locked(cfg.pki_dir):
        ca = _load_or_create_ca(cfg)
        meta_file = cfg.pki_dir / "leaves.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        for node in TLS_NODES:
            ep = cfg.endpoints[node]
            identities = [ep.tls_name, ep.host] if ep.tls_name else [ep.host]
            cert_file, key_file = cfg.cert_files(node)
            if meta.get(node) == identities and cert_file.exists() and key_file.exists():
                continue
            leaf = ca.issue_cert(*identities, common_name=identities[0], key_type=trustme.KeyType.ECDSA)
            cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
            leaf.private_key_pem.write_to_path(str(key_file))
            key_file.chmod(0o600)
            meta[node] = identities
        meta_file.write_text(json.dumps(meta, indent=2))


def _keylog(ctx: ssl.SSLContext, cfg: NetworkConfig, node: str) -> ssl.SSLContext:
    path = cfg.keylog(node)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # TLS secrets: owner only
    os.fchmod(fd, 0o600)
    os.close(fd)
    ctx.keylog_filename = str(path)  # appended to; one file per node, all its legs
    return ctx


def server_ssl_context(cfg: NetworkConfig, node: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert_file, key_file = cfg.cert_files(node)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return _keylog(ctx, cfg, node)


def client_ssl_context(cfg: NetworkConfig, node: str) -> ssl.SSLContext:
    """Context for a client leg of `node` (e.g. 3rdWWS -> AS): trusts the test CA, logs keys as `node`."""
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return _keylog(ctx, cfg, node)
