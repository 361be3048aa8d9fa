"""SIP messages from the templates in fixtures/sip/, with per-test header overrides.

A template is rendered with the test-case templating plus `${vars.*}` defaults chosen here
(the AOR the UE names per PICS sip.client_aor, a random `.invalid` host per RFC 7118 5.2, the
Bearer credential per PICS sip.bearer_syntax), then parsed with the codec so that overrides edit
headers, never text.
"""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

from conformance.codec import sip
from conformance.run.templating import render

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sip"
_cseq = itertools.count(1)


class TemplateNotFound(LookupError):
    pass


def template_text(name: str, base: Path = FIXTURES) -> str:
    path = base / f"{name}.sip"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in base.glob("*.sip")))
        raise TemplateNotFound(f"SIP template {name!r} not found in {base} (known: {known})")
    return path.read_text()


def bearer_value(token: str, syntax: str) -> str:
    """RFC 8898 2.1 `Bearer <token68>`; TS 24.371 A.3.2 `Bearer access_token="<token>"`."""
    return f'Bearer access_token="{token}"' if syntax == "ts24371" else f"Bearer {token}"


def default_vars(state, profile) -> dict:
    pics = profile.pics
    user = state.user
    aor = f"sip:{user['web_id']}" if pics.get("sip.client_aor", "web_id") == "web_id" else user["impus"][0]
    token = state.saved.get("access_token")
    return {
        "aor": aor,
        "ws_host": f"{secrets.token_hex(6)}.invalid",
        "cseq": next(_cseq),
        "expires": 600,
        "bearer": bearer_value(token, pics.get("sip.bearer_syntax", "rfc8898")) if token else "",
    }


def build(spec: dict, state, env, transport_vars: dict | None = None) -> bytes:
    from conformance.run.actions import StepError

    try:
        text = template_text(spec.get("template", "register"))
    except TemplateNotFound as exc:
        raise StepError(str(exc)) from exc
    variables = default_vars(state, env.profile) | dict(transport_vars or {}) | dict(spec.get("vars") or {})
    rendered = render(text, env.template_context({"vars": variables}))
    msg = sip.parse(rendered.replace("\r\n", "\n").replace("\n", "\r\n").encode())
    dialog = state.dialogs.get(spec.get("dialog")) if spec.get("dialog") else None
    if dialog is not None:  # within the dialog (RFC 3261 12.2.1.1); the overrides below still apply
        dialog.apply(msg)
    for name, value in (spec.get("headers") or {}).items():
        if value is None:
            msg.headers.remove(name)
        else:
            msg.headers.set(name, str(value))
    # before add_headers, so a case can add a second Authorization next to the Bearer one
    if spec.get("bearer") is not None:  # the credential in the syntax the profile's PICS chose
        msg.headers.set("Authorization", bearer_value(str(spec["bearer"]), env.profile.pics.get(
            "sip.bearer_syntax", "rfc8898")))
    for name, value in (spec.get("add_headers") or {}).items():
        msg.headers.add(name, str(value))
    if spec.get("body") is not None:
        msg.body = str(spec["body"]).encode()
    if spec.get("body_over_limit") is not None:  # a message larger than the limit the profile declares
        from conformance.run.actions import _over_limit

        msg.body = b"x" * _over_limit(spec["body_over_limit"])
        msg.headers.set("Content-Type", "text/plain")
    return msg.serialize()
