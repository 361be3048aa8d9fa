"""Named conformant variations of the reference network: the mirror image of `faults.py`.

Each variation is a different choice where ../shared/BINDING.md or a standard leaves freedom; a
network with any of them switched on is still conformant, so the catalog must give no fail
against it (docs/variation-matrix.md, tests/integration/test_variation_matrix.py). A node asks
`cfg.varies("name")`; `options` are network options the variation sets, `profile` says what a
vendor with this choice would write differently in its profile (PICS and PIXIT).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variation:
    name: str
    nodes: tuple[str, ...]  # the nodes whose behaviour changes
    freedom: str  # what it does differently, and the clause that allows it
    options: dict = field(default_factory=dict)  # refnet.config.Options overrides
    profile: dict = field(default_factory=dict)  # profile changes: {"pics": {...}, "pixit": {...}}


SIP_NODES = ("wsf", "pcscf", "scscf")

VARIATIONS: tuple[Variation, ...] = (
    Variation("as-form-field-names", ("as",),
              "the sign-in form names its hidden transaction field `txn_ref` and its consent choices "
              "`allow`/`refuse` (BINDING step 5: \"a hidden transaction field, a consent choice\", names open)"),
    Variation("wsf-challenge-without-error", ("wsf",),
              "the 401 Bearer challenge carries realm and authz_server only, never `error` "
              "(RFC 6750 3.1: error SHOULD; BINDING's own challenge has none)"),
    Variation("size-limits-larger", ("wsf", "pcscf", "scscf", "3rdwws"),
              "accepts SIP and WebSocket messages up to 1 MiB (no requirement sets a size limit)"),
    Variation("3rdwws-wsf-after-accept", ("3rdwws",),
              "relay mode: the 3rdWWS accepts the UE's WebSocket first and opens the one to the WSF "
              "afterwards (the order of steps 12 and 13 is not fixed by TR 23.701 or BINDING)"),
    Variation("as-jwks-elsewhere", ("as", "wsf"),
              "the JWKS is served at /.well-known/keys and found through the RFC 8414 metadata "
              "`jwks_uri` (RFC 8414 2: the path is the AS's choice); the profile names no jwks_uri",
              profile={"pixit": {"nodes.as.jwks_uri": None}}),
    Variation("token-lifetime-long", ("as",),
              "access tokens live one hour (RFC 6749 4.2.2 / RFC 9068: lifetime is the AS's choice)",
              options={"token_lifetime_s": 3600}),
    Variation("token-lifetime-short", ("as",),
              "access tokens live 90 s (lifetime is the AS's choice)",
              options={"token_lifetime_s": 90}),
    Variation("as-opaque-tokens", ("as",),
              "opaque access tokens (random strings), verified only by introspection "
              "(BINDING [PICS token.format = opaque]; RFC 6749 1.4: tokens are opaque to the client)",
              options={"token_format": "opaque"}, profile={"pics": {"token.format": "opaque"}}),
    Variation("as-introspect-400-unauthenticated", ("as",),
              "an introspection request with no client authentication at all gets 400 invalid_client "
              "without a challenge (RFC 6749 5.2: 401 is a MAY unless the client used the Authorization "
              "header; RFC 7662 2.3 refers to it)"),
    Variation("fixtures-only", (),
              "no provisioning endpoint: the profile lists a pool of fixture users (BINDING: how test "
              "users are created is profile data)",
              profile={"pixit": {"users.provisioning": None}}),
    Variation("wsf-exp-leeway", ("wsf",),
              "the WSF verifies JWTs locally and accepts a token for 3 s of clock skew past its exp "
              "(RFC 7519 4.1.4: MAY, \"usually no more than a few minutes\"); the profile says so in PIXIT "
              "oauth.exp_leeway_s",
              options={"verify": "local_jwt"},
              profile={"pics": {"wsf.verify": "local_jwt"}, "pixit": {"oauth.exp_leeway_s": 3}}),
    Variation("wsf-digest-param-order", ("wsf",),
              "the trusted-node Digest credential lists its parameters in another order "
              "(RFC 3261 25.1 / RFC 7616: auth-params are an unordered list)"),
    Variation("sip-compact-headers", SIP_NODES,
              "SIP headers in their compact forms (i, f, t, v, m, l, k, c) (RFC 3261 7.3.3)"),
    Variation("sip-branch-tag-formats", SIP_NODES,
              "Via branches and To tags of another length and alphabet (RFC 3261 8.1.1.7, 19.3: any token)"),
    Variation("sip-unknown-headers", SIP_NODES,
              "extra extension headers and an unknown Via parameter on every message "
              "(RFC 3261 7.3.1 / 8.2.2: unknown headers and parameters are ignored)"),
    Variation("sip-header-order", SIP_NODES,
              "header fields of different names in another order (RFC 3261 7.3.1: not significant)"),
    Variation("sip-reason-phrases", SIP_NODES,
              "other reason phrases (RFC 3261 21: the reason phrase is for humans, the status code decides)"),
)

BY_NAME = {v.name: v for v in VARIATIONS}


class UnknownVariation(ValueError):
    pass


def validate(names: list[str] | tuple[str, ...]) -> list[str]:
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UnknownVariation(f"unknown variation(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return list(names)


def format_variations() -> str:
    width = max(len(v.name) for v in VARIATIONS)
    nodes = max(len(",".join(v.nodes)) for v in VARIATIONS)
    return "\n".join(f"{v.name:<{width}}  {','.join(v.nodes) or '-':<{nodes}}  {v.freedom}" for v in VARIATIONS)
