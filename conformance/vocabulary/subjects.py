"""What an expectation or a save selector looks at (docs/format.md "Expectations"), defined once.

SUBJECTS (status, header, ...), the QUALIFIERS that refine them (index, param, claim, ...) and
the META keys every item may carry (ref, level, note, name). The schema's `expectation`
definition, the loader's Expectation and the matcher (conformance/match/subjects.py resolvers,
chosen through `implemented_by`) all read these; the shorthand without an operator is
conformance/vocabulary/shorthand.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.vocabulary.definition import Registry, Word

_RESOLVE = "conformance.match.subjects"
_TEMPLATE = {"$ref": "#/$defs/template"}

# How a subject takes an operator (the schema rule generated for it):
REQUIRED = "required"  # always an operator (header: X, body: true + contains ...)
WHEN_TRUE = "when_true"  # a value compares by itself; `true` + an operator instead (status)
OPTIONAL_WHEN_TRUE = "optional_when_true"  # like WHEN_TRUE, and `true` alone is a check too (request_uri)
FREE = "free"  # nothing: true|false is the whole check, no operator


@dataclass(frozen=True)
class SubjectDef(Word):
    operator: str = REQUIRED
    accepts: tuple[str, ...] = ()  # qualifiers it takes, in the order the schema lists them
    target: bool = False  # its value names what to look at (header name, JSON path), not a value to compare
    rules: tuple[dict[str, Any], ...] | None = None  # schema rules instead of the ones `operator` implies
    selectable: bool = True  # a `save:` selector may name it ($defs/selector, written by hand, is checked)


@dataclass(frozen=True)
class QualifierDef(Word):
    excludes: tuple[str, ...] = ()  # qualifiers it cannot be combined with


_REFINE = ("param", "uri_param", "query", "fragment")  # each reads one text value: one at most
_JWT_PARTS = ("claim", "jwt_header", "signature")

# jwt: one part, and `signature` is the whole check (no operator) while the others need one
_JWT_RULES = (
    {"anyOf": [{"required": [p]} for p in _JWT_PARTS], "x-errors": {"anyOf": "jwt needs claim, jwt_header or signature"}},
    {"if": {"required": ["signature"]},
     "then": {"not": {"$ref": "#/$defs/any_operator"},
              "x-errors": {"not": "signature: valid|invalid is the whole check; no operator"}},
     "else": {"$ref": "#/$defs/any_operator"}},
)

SUBJECTS: Registry[SubjectDef] = Registry("subject", [
    SubjectDef("status", "HTTP, WebSocket handshake or SIP status: a code, a list of accepted codes, or true with an "
               "operator",
               {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 699},
                          {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 699},
                           "minItems": 1},
                          _TEMPLATE, {"const": True}],
                "x-errors": {"anyOf": "status is a code 100-699, a list of codes, or true with an operator; "
                                      "got {instance}"}},
               f"{_RESOLVE}:_status", operator=WHEN_TRUE),
    SubjectDef("header", "an HTTP or SIP header (SIP: case-insensitive, compact forms)",
               {"type": "string", "pattern": "^([!#$%&'*+.^_`|~0-9A-Za-z-]+|\\$\\{[^{}]+\\})$"},
               f"{_RESOLVE}:_header", accepts=("index", *_REFINE), target=True),
    SubjectDef("json", "a JSON member of the body: $.a.b[0]", {"type": "string", "pattern": "^(\\$|\\$\\{)"},
               f"{_RESOLVE}:_json", accepts=("index", *_REFINE), target=True),
    SubjectDef("jwt", "a JWT: usually ${saved.NAME}, or a selector of what was received ({json: $.access_token})",
               {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/selector"}],
                "x-errors": {"anyOf": "jwt is a token (${saved.NAME}) or a selector such as "
                                      "{json: $.access_token}, got {instance}"}},
               f"{_RESOLVE}:_jwt", accepts=(*_JWT_PARTS, "index"), target=True, rules=_JWT_RULES),
    SubjectDef("body", "the body as text (write body: true and an operator)", {"const": True},
               f"{_RESOLVE}:_body"),
    SubjectDef("html_form", "HTML form selector: #id, a form name or a substring of its action; true = the first form",
               {"type": ["string", "boolean"]}, f"{_RESOLVE}:_html_form", accepts=("field", "index", *_REFINE),
               target=True),
    SubjectDef("cookie", "a Set-Cookie of the response, by cookie name", {"type": "string"},
               f"{_RESOLVE}:_cookie", accepts=("attribute", "index"), target=True),
    SubjectDef("method", "method of a received SIP request (a value = equals; null = absent)",
               {"type": ["string", "boolean", "null"]}, f"{_RESOLVE}:_method", operator=WHEN_TRUE),
    SubjectDef("request_uri", "Request-URI of a received request (a value = uri_equals; true alone = present)",
               {"type": ["string", "boolean"]}, f"{_RESOLVE}:_request_uri", operator=OPTIONAL_WHEN_TRUE,
               accepts=("uri_param",)),
    SubjectDef("ws_closed", "true: the connection was closed (any code); a code or a list: closed with it; false: "
               "still open",
               {"anyOf": [{"type": ["integer", "boolean"]},
                          {"type": "array", "items": {"type": "integer"}, "minItems": 1}],
                "x-errors": {"anyOf": "ws_closed is true, false, a close code or a list of codes; got {instance}"}},
               f"{_RESOLVE}:_ws_closed", operator=OPTIONAL_WHEN_TRUE, selectable=False),
    SubjectDef("subprotocol", "the negotiated WebSocket subprotocol (a value = equals; null: none)",
               {"type": ["string", "boolean", "null"]}, f"{_RESOLVE}:_subprotocol", operator=WHEN_TRUE),
    SubjectDef("nothing", "true: no SIP message arrived within the step timeout; false: one did",
               {"type": "boolean"}, f"{_RESOLVE}:_nothing", operator=FREE, selectable=False),
    SubjectDef("reason", "the reason phrase of a SIP or HTTP response (write reason: true and an operator)",
               {"const": True}, f"{_RESOLVE}:_reason", selectable=False),
])

QUALIFIERS: Registry[QualifierDef] = Registry("qualifier", [
    QualifierDef("index", "which occurrence: 0 = first, -1 = last, all = every one must hold, any = one of them must",
                 {"anyOf": [{"type": "integer"}, {"enum": ["all", "any"]}],
                  "x-errors": {"anyOf": "index is an integer, all or any, got {instance}"}}),
    QualifierDef("param", "a parameter of the value (;p=v, or auth-param p=\"v\")", {"type": "string"},
                 excludes=("uri_param", "query", "fragment")),
    QualifierDef("uri_param", "a parameter of the URI inside the value", {"type": "string"},
                 excludes=("param", "query", "fragment")),
    QualifierDef("query", "a query parameter of the URL in the value (Location)", {"type": "string"},
                 excludes=("param", "uri_param", "fragment")),
    QualifierDef("fragment", "a parameter of the fragment (#a=b) of the URL in the value", {"type": "string"},
                 excludes=("param", "uri_param", "query")),
    QualifierDef("claim", "a JWT claim", {"type": "string"}, excludes=("jwt_header", "signature")),
    QualifierDef("jwt_header", "a JOSE header member", {"type": "string"}, excludes=("claim", "signature")),
    QualifierDef("signature", "the signature verifies (valid) or not (invalid) against the AS JWKS; the whole check",
                 {"enum": ["valid", "invalid"]}, excludes=("claim", "jwt_header")),
    QualifierDef("field", "an HTML form field name (without: the form's action URL)", {"type": "string"}),
    QualifierDef("attribute", "a cookie attribute (HttpOnly, Secure, SameSite, Path, Max-Age...)", {"type": "string"}),
])

META: Registry[Word] = Registry("key", [
    Word("ref", "the requirement this check enforces, e.g. 'RFC 8898 2.2'", {"type": "string"}),
    Word("level", "MUST (default), SHOULD or MAY: a violated SHOULD or MAY only warns", {"$ref": "#/$defs/level"}),
    Word("note", "free text shown with the result", {"type": "string"}),
    Word("name", "a label for the report", {"type": "string"}),
    # RFC 9110 15.5.2: a 401 MUST carry WWW-Authenticate, yet RFC 6749 5.2 leaves 400 or 401 to
    # the AS when no client authentication was sent: the check holds only for the 401 branch.
    Word("when", "the check applies only when this condition (a subject and an operator, e.g. {status: 401}) "
                 "holds on the same message; otherwise it is not applicable",
         {"$ref": "#/$defs/condition"}),
])
