"""Named faults of the reference network.

Each fault breaks exactly one requirement. A node asks `faults.on("name")`; nothing else changes.
The one-line descriptions are what `ims-conformance reference faults` prints and what
docs/fault-matrix.md lists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    name: str
    node: str  # 3rdwws, as, wsf, pcscf, scscf
    breaks: str  # the requirement it violates, one line


FAULTS: tuple[Fault, ...] = (
    Fault("as-code-reusable", "as", "RFC 6749 4.1.2 / RFC 9700 2.1.1: authorization code is single use"),
    Fault("as-code-any-client", "as",
          "RFC 6749 4.1.3: a code is redeemed only by the client it was issued to (fault: any client allowed the grant)"),
    Fault("as-redirect-uri-loose", "as",
          "RFC 9700 2.1: exact redirect URI matching (accepts the registered URI with an extra query parameter)"),
    Fault("as-pkce-ignored", "as", "RFC 7636 4.6: code_verifier must match the code_challenge"),
    Fault("as-state-dropped", "as", "RFC 6749 4.1.2: state must be echoed in the authorization response"),
    Fault("as-token-alg-none", "as", "RFC 9068 2.1: access token must be signed (never alg none)"),
    Fault("as-token-wrong-aud", "as", "RFC 9068 2.2 / BINDING: aud must be wsf.operator.example"),
    Fault("as-token-no-exp", "as", "RFC 9068 2.2: exp claim is required"),
    Fault("as-introspect-unauthenticated", "as", "RFC 7662 2.1: introspection requires caller authentication"),
    Fault("as-introspect-wrong-impi", "as", "BINDING step 16: impi must be the user's mapped IMPI"),
    Fault("as-introspect-expired-active", "as",
          "RFC 7662 2.2: an expired token must be reported inactive at introspection"),
    Fault("as-token-in-redirect", "as", "RFC 9700 2.1.2: no access token in the authorization response URL"),
    Fault("as-introspect-any-client", "as",
          "RFC 7662 2.1 / 4: only the token's resource server learns its IMS identities (fault: any authenticated client)"),
    Fault("as-revoke-any-client", "as",
          "RFC 7009 2.1: a client revokes only its own tokens (fault: any authenticated client revokes any token)"),
    Fault("3rdwws-no-pkce", "3rdwws", "RFC 9700 2.1.1 / RFC 7636: the client must send a S256 code_challenge"),
    Fault("3rdwws-state-unchecked", "3rdwws", "RFC 6749 10.12: the client must check state on the callback"),
    # error paths only an emulated AS produces (caught with the harness playing the AS)
    Fault("3rdwws-iss-unchecked", "3rdwws", "RFC 9207 2.4: the client compares iss with its AS's issuer (fault: not looked at)"),
    Fault("3rdwws-ignore-authz-error", "3rdwws",
          "RFC 6749 4.1.2.1: an error response ends the authorization (fault: the application opens anyway)"),
    Fault("3rdwws-token-error-ignored", "3rdwws",
          "RFC 6749 5.1 / 5.2: no access token, no access (fault: a failed token request opens the application)"),
    Fault("wsf-skip-verification", "wsf", "TR 23.701 steps 15-16: the WSF must verify the token before forwarding"),
    Fault("wsf-accept-expired", "wsf", "RFC 9068 4 (local_jwt mode): an expired token must be rejected"),
    Fault("wsf-ignore-audience", "wsf",
          "RFC 9068 4 / RFC 7662 (introspection mode): a token for another audience must be rejected"),
    Fault("wsf-forward-bearer", "wsf", "BINDING step 17: the Bearer credential must not enter the IMS core"),
    Fault("wsf-keep-web-id", "wsf", "BINDING step 17: To/From must carry the default IMPU, not the Web ID"),
    Fault("wsf-no-auth-done", "wsf", "TS 24.229 5.2.2 / BINDING step 17: integrity-protected=\"auth-done\""),
    Fault("wsf-no-challenge", "wsf",
          "RFC 8898 2.2: a missing token gets 401 with a Bearer challenge (fault answers 403 without one)"),
    Fault("wsf-accept-no-subprotocol", "wsf", "RFC 7118 4: the handshake must negotiate the sip subprotocol"),
    Fault("wsf-no-path", "wsf", "RFC 7118 5 / RFC 5626: the WSF must add a Path header with ob"),
    # error paths only an emulated peer produces (caught with the harness playing AS and core)
    Fault("wsf-accept-inactive", "wsf", "RFC 7662 2.2: a token introspected active: false must be rejected"),
    Fault("wsf-register-without-impu", "wsf",
          "BINDING step 17: no IMPU mapped at introspection, nothing to register (fault forwards the Web ID)"),
    Fault("wsf-fail-open", "wsf",
          "TR 23.701 steps 15-17: a token that could not be verified (AS error, silence) is never forwarded"),
    Fault("wsf-introspect-no-auth", "wsf", "RFC 7662 2.1: the WSF authenticates itself at introspection"),
    Fault("wsf-core-error-as-480", "wsf",
          "RFC 3261 16.7: the core's final response is relayed (fault turns every core error into 480)"),
    Fault("pcscf-no-path", "pcscf", "RFC 3327 / TS 24.229 5.2.2: the P-CSCF must add its Path"),
    Fault("pcscf-no-visited-network-id", "pcscf", "TS 24.229 5.2.2: P-Visited-Network-ID must be added"),
    Fault("pcscf-core-error-as-480", "pcscf",
          "RFC 3261 16.7 / 16.11: the S-CSCF's final response is relayed (fault turns every core error into 480)"),
    Fault("scscf-no-service-route", "scscf", "RFC 3608 / TS 24.229 5.4.1.2: 200 OK carries Service-Route"),
    Fault("scscf-no-associated-uri", "scscf", "RFC 7315 4.1 / TS 24.229: 200 OK carries P-Associated-URI"),
    Fault("scscf-register-untrusted", "scscf",
          "TS 24.229 5.4.1.2.2: register without challenge only from the trusted P-CSCF with auth-done"),
    # -- registration lifecycle after step 22 (docs/lifecycle.md) --
    Fault("wsf-reregister-unverified", "wsf",
          "RFC 8898 2.1 / RFC 6750 3.1: a re-REGISTER's token is verified again (fault: the flow's first identity is reused)"),
    Fault("wsf-reregister-tokenless", "wsf",
          "RFC 8898 2.2 (PICS wsf.reregister_token = every): a re-REGISTER without a token gets 401"),
    Fault("wsf-flow-identity-lost", "wsf",
          "PICS wsf.reregister_token = first: the flow keeps its registered identity (fault: a tokenless refresh gets 401)"),
    Fault("wsf-keep-binding-on-close", "wsf",
          "RFC 5626 5.2 / TS 24.229 5.2.2 (PICS wsf.on_ws_close = deregister): the binding goes with its WebSocket"),
    Fault("wsf-accept-foreign-origin", "wsf",
          "RFC 6455 10.2: a handshake from a foreign (or, PICS wsf.origin_missing = reject, no) Origin gets 403"),
    Fault("3rdwws-accept-foreign-origin", "3rdwws",
          "RFC 6455 10.2: the cookie-authenticated SIP WebSocket refuses a foreign Origin (403)"),
    Fault("scscf-no-min-expires", "scscf", "RFC 3261 10.3 step 7: an expiry below Min-Expires gets 423 with Min-Expires"),
    Fault("scscf-expires-longer", "scscf", "RFC 3261 10.3 step 7: the granted expiry is never longer than requested"),
    Fault("scscf-ignore-deregister", "scscf",
          "RFC 3261 10.3 steps 6-7: expires=0 and Contact: * remove the bindings (fault: kept)"),
    Fault("scscf-single-binding", "scscf",
          "RFC 5626 6 / RFC 3261 10.3: each +sip.instance/reg-id is a binding of its own (fault: the last replaces all)"),
    Fault("scscf-keep-expired", "scscf", "RFC 3261 10.3 step 7: an expired binding is no longer listed"),
    Fault("wsf-notify-not-routed", "wsf",
          "RFC 5626 5.3 / RFC 7118 5: a request for a flow (reg-event NOTIFY) goes over its WebSocket (fault: 501)"),
    Fault("scscf-regevent-any-subscriber", "scscf",
          "TS 24.229 5.4.2.1.1 / RFC 6665 4.2.1.3: only the user may subscribe to its registration state"),
    Fault("scscf-regevent-no-change-notify", "scscf",
          "RFC 3680 4.7 / TS 24.229 5.4.2.1.2: a registration change is notified to the subscribers"),
    Fault("scscf-netdereg-not-notified", "scscf",
          "TS 24.229 5.4.1.5: a network-initiated de-registration is notified to the subscribed UE (fault: silent)"),
    Fault("scscf-netdereg-keeps-binding", "scscf",
          "TS 24.229 5.4.1.5: a network-initiated de-registration removes the bindings (fault: kept)"),
    Fault("scscf-fixed-to-tag", "scscf", "RFC 3261 8.2.6.2 / 19.3: a To tag unique per response (fault: one tag for all)"),
)

BY_NAME = {f.name: f for f in FAULTS}


class UnknownFault(ValueError):
    pass


def validate(names: list[str] | tuple[str, ...]) -> list[str]:
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UnknownFault(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return list(names)


class ActiveFaults:
    """The faults switched on for one node process (from REFNET_FAULTS or the command line)."""

    def __init__(self, names: list[str] | tuple[str, ...] = ()):
        self.names = frozenset(validate(list(names)))

    @classmethod
    def from_env(cls) -> ActiveFaults:
        raw = os.environ.get("REFNET_FAULTS", "")
        return cls([n for n in raw.split(",") if n])

    def on(self, name: str) -> bool:
        if name not in BY_NAME:  # a typo in a node must not silently disable a fault
            raise UnknownFault(name)
        return name in self.names
