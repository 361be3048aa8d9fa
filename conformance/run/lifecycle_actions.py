"""Actions of the registration lifecycle (docs/lifecycle.md, docs/format.md).

- `sip_serve`: wait (bounded) for the next SIP request on an open WebSocket (or take the one that
  arrived while the harness awaited the answer to its own request, RFC 6665 4.1.2.4), answer it
  (200 by default, RFC 3261 8.2.6) and return it, so the expectations check what the network sent
  the UE (a reg-event NOTIFY routed back over the flow, RFC 5626 5.3 / RFC 7118 5).
- `reginfo`: check a registration information document (RFC 3680 5.1) against the RFC 3680 XML
  schema (conformance/schema/reginfo.xsd, validated by libxml2 through lxml) and return it as
  data for `json:` expectations: `$.valid`, `$.errors`, `$.version`, `$.state`,
  `$.registration[n].state`, `$.registration[n].contact[m].event`, and
  `$.contacts_by_instance['<urn:uuid:...>'].state` (every contact of every registration by its
  +sip.instance, since a document lists contacts in no particular order; a contact without the
  optional <unknown-param> is matched by its <uri> to the Contact the harness registered).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from conformance.codec import sip
from conformance.events import Nothing, SipReceived

XSD = Path(__file__).resolve().parents[1] / "schema" / "reginfo.xsd"
NS = "{urn:ietf:params:xml:ns:reginfo}"
MAX_ERRORS = 5


def sip_serve(spec: dict, state, env):
    from conformance.run.actions import StepError, _conn

    name = spec.get("name", "ws")
    conn = _conn(state, name)
    held = state.held.get(name)
    if held:  # it came while the harness awaited an answer (actions._receive), already reported
        event = held.pop(0)
    else:
        event = _next_request(conn, env)
        if not isinstance(event, SipReceived):
            return event
    req = event.message
    for dialog in state.dialogs.values():  # a NOTIFY refreshes its dialog's remote target
        dialog.refresh_target(req)
    status = int(spec.get("status", 200))
    if req.method != "ACK":
        resp = sip.make_response(req, status, spec.get("reason"), to_tag=sip.new_tag())
        data = resp.serialize()
        env.reporter.attach_sip("sent", data)
        try:
            conn.send_text(data.decode("utf-8", "surrogateescape"))
        except ConnectionError as exc:
            raise StepError(f"sip_serve: the connection {name!r} closed before the answer: {exc}") from exc
    return event


def _next_request(conn, env):
    """The next SIP request on `conn` within the step's timeout, or what came instead."""
    from conformance.run.actions import _receive

    deadline = time.monotonic() + env.timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return Nothing(env.timeout_s * 1000.0, peer_alive=getattr(conn, "alive", None), awaited_request=True)
        event = _receive(conn, _Bounded(env, left), "ws")
        if isinstance(event, Nothing):  # the node's own request never came
            return Nothing(event.waited_ms, peer_alive=event.peer_alive, awaited_request=True)
        if not isinstance(event, SipReceived):
            return event  # a close or garbage: the expectations judge it
        if event.message.is_request:
            return event
        # a stray response (e.g. a late answer to an earlier request) is not what we wait for


class _Bounded:
    """The action environment with a shorter timeout (what is left of the step's)."""

    def __init__(self, env, timeout_s: float):
        self._env, self.timeout_s = env, timeout_s

    def __getattr__(self, item):
        return getattr(self._env, item)


@functools.lru_cache(maxsize=1)
def _schema():
    # lxml (libxml2) rather than the pure-Python xmlschema: importing xmlschema and building this
    # schema took 0.35-0.5 s of CPU in every process that ran a reginfo case (each -n worker),
    # lxml about 20 ms
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XSD)))


def _parse_and_validate(data: bytes):
    """(the document's root element or None, what the RFC 3680 schema says of it: nothing when
    valid). One parse serves the schema and the reading of the document."""
    from lxml import etree

    # the SUT wrote the document: no entity expansion, no DTD or network fetch
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return None, [f"not well-formed XML: {exc}"]
    schema = _schema()
    if schema.validate(root):
        return root, []
    return root, [e.message for e in schema.error_log] or ["not valid against the RFC 3680 schema"]


def reginfo(spec: dict, state, env) -> dict:
    text = spec.get("body") or ""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    env.reporter.attach_bytes("reginfo document", data)
    result: dict = {"valid": False, "errors": [], "version": None, "state": None, "registration": [],
                    "contacts_by_instance": {}}
    root, errors = _parse_and_validate(data)
    if root is None:
        result["errors"] = errors
        return result
    result["errors"] = errors[:MAX_ERRORS]
    result["valid"] = not errors and root.tag == f"{NS}reginfo"
    result["version"] = _int(root.get("version"))
    result["state"] = root.get("state")
    for reg in root.findall(f"{NS}registration"):
        entry = {"aor": reg.get("aor"), "id": reg.get("id"), "state": reg.get("state"), "contact": []}
        for c in reg.findall(f"{NS}contact"):
            uri = c.find(f"{NS}uri")
            instance = next((p.text for p in c.findall(f"{NS}unknown-param") if p.get("name") == "+sip.instance"),
                            None)
            contact = {"id": c.get("id"), "state": c.get("state"), "event": c.get("event"),
                       "expires": _int(c.get("expires")), "uri": uri.text if uri is not None else None,
                       "instance": instance}
            entry["contact"].append(contact)
            if not instance and contact["uri"]:
                # RFC 3680 5.1: the <uri> is the contact; <unknown-param> +sip.instance is optional
                instance = _instance_of(contact["uri"], getattr(state, "registered_contacts", {}))
            if instance:
                result["contacts_by_instance"][instance.strip('"')] = contact
        result["registration"].append(entry)
    return result


def _instance_of(uri: str, registered: dict) -> str | None:
    """The +sip.instance the harness registered `uri` with (RFC 3261 19.1.4 URI comparison)."""
    from conformance.codec.sip_uri import UriError, uri_equal

    for instance, contacts in registered.items():
        for contact in contacts:
            try:
                if uri_equal(uri.strip(), contact):
                    return instance
            except (UriError, ValueError):
                continue
    return None


def _int(text):
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
