"""The conformant-variation matrix, mirror image of the fault matrix: the catalog against the
reference network with one conformant variation switched on (refnet/variations.py) gives no fail
and no error.

    .venv/bin/python tests/integration/variation_matrix.py            # compute and print
    .venv/bin/python tests/integration/variation_matrix.py --write    # also rewrite docs/variation-matrix.md
    .venv/bin/python tests/integration/variation_matrix.py sip-compact-headers   # one variation

Each variation runs in one network of its own against the catalog subset it can affect (`SUBSET`,
justified in docs/variation-matrix.md), with the profile a vendor making that choice would write.
test_variation_matrix.py runs the same in `make test`, the independent ones together (TOGETHER).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_matrix import VARIANTS, catalog, run_cases  # noqa: E402

from refnet.config import SEED_USERS  # noqa: E402
from refnet.store import Store  # noqa: E402
from refnet.variations import BY_NAME, VARIATIONS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "variation-matrix.md"

# Verdicts that say a conformant choice was judged conformant.
ACCEPTED = {"pass", "pass with warnings", "not applicable"}

# Variations that would still fail only for a known catalog item being fixed (the make-test
# parametrization skips them with the reason). Empty: every variation must pass.
AWAITS_CATALOG_FIX: dict[str, str] = {}

# Inconclusive verdicts a variation may legitimately give, with the reason (documented in the doc).
INCONCLUSIVE_OK: dict[str, dict[str, str]] = {}

# The network options each variation runs under beyond its own (refnet Options).
EXTRA_OPTIONS = {
    # the JWKS path matters to a WSF that fetches the JWKS: local verification
    "as-jwks-elsewhere": {"verify": "local_jwt"},
}

POOL_SIZE = 8  # fixture users of the fixtures-only profile


def _sip_involved(tc) -> bool:
    return tc.touches_registrations()


def _ws_or_sip_involved(tc) -> bool:
    return _sip_involved(tc) or any(step.action in ("ws_connect", "ws_send") for step in tc.steps)


def _token_involved(tc) -> bool:
    return tc.sut != "pcscf" and tc.sut != "scscf"


def _mentions(tc, *words: str) -> bool:
    text = json.dumps([[dict(step) for step in tc.steps], tc.capture or {}], default=str)
    return any(w in text for w in words)


def _lifetime_involved(tc) -> bool:
    return tc.sut == "as" or (tc.sut == "wsf" and "TOK" in tc.id)


def _jwks_involved(tc) -> bool:
    return tc.sut == "wsf" or _mentions(tc, "jwks", '"signature"')


# Which test cases a variation can affect (everything else behaves exactly as on the default
# network, which test_fault_matrix already runs in full).
SUBSET = {
    "as-form-field-names": lambda tc: True,  # every login goes through the form
    "wsf-challenge-without-error": lambda tc: tc.sut in ("wsf", "3rdwws", "flow"),
    "size-limits-larger": _ws_or_sip_involved,
    "3rdwws-wsf-after-accept": lambda tc: tc.sut in ("3rdwws", "wsf", "flow"),
    "as-jwks-elsewhere": _jwks_involved,
    "token-lifetime-long": _lifetime_involved,
    "token-lifetime-short": _lifetime_involved,
    "as-opaque-tokens": _token_involved,
    "as-introspect-400-unauthenticated": lambda tc: tc.sut == "as",
    "fixtures-only": _sip_involved,  # registration state is what a shared identity carries
    "wsf-digest-param-order": lambda tc: tc.sut in ("wsf", "pcscf", "scscf", "flow"),
    "wsf-exp-leeway": lambda tc: tc.sut == "wsf",  # the WSF's token checks, expiry among them
    "sip-compact-headers": _sip_involved,
    "sip-branch-tag-formats": _sip_involved,
    "sip-unknown-headers": _sip_involved,
    "sip-header-order": _sip_involved,
    "sip-reason-phrases": _sip_involved,
}
SUBSET_WHY = {
    "as-form-field-names": "all: every case logs in through the form",
    "as-introspect-400-unauthenticated": "AS cases: only the AS's answer to an unauthenticated introspection changes",
    "wsf-challenge-without-error": "WSF, 3rdWWS and flow cases: only the WSF's 401 changes",
    "size-limits-larger": "cases with SIP or WebSocket traffic (steps or capture)",
    "3rdwws-wsf-after-accept": "3rdWWS, WSF and flow cases: the relay's connection order",
    "as-jwks-elsewhere": "WSF cases (in local_jwt mode, so the WSF fetches the JWKS) and the cases that fetch "
                         "the JWKS or check a signature against it",
    "token-lifetime-long": "AS cases and the WSF token cases: the issuer and the verifier of tokens (the "
                           "others use a token at once, its lifetime does not matter to them)",
    "token-lifetime-short": "AS cases and the WSF token cases (as above)",
    "as-opaque-tokens": "all but P-CSCF and S-CSCF cases",
    "fixtures-only": "cases that send, receive or capture SIP: a shared identity carries registrations "
                     "from case to case, which only they can see; the others only log in, which a leased "
                     "fixture user does like a provisioned one",
    "wsf-digest-param-order": "WSF, P-CSCF, S-CSCF and flow cases: the forwarded REGISTER",
    "wsf-exp-leeway": "WSF cases: only the WSF's expiry check changes (in local_jwt mode)",
}
for _name in SUBSET:
    SUBSET_WHY.setdefault(_name, "cases that send, receive or capture SIP messages")
assert set(SUBSET) == set(BY_NAME), "every variation needs its catalog subset"


def _pool(n: int) -> list[dict]:
    return [{"web_id": f"pool{i:02d}@web.operator.example", "password": f"pool{i:02d}-pw",
             "impi": f"pool{i:02d}@ims.example.net",
             "impus": [f"sip:pool{i:02d}@ims.example.net", f"tel:+1555020{i:02d}"],
             "tp_username": f"tp-pool{i:02d}", "tp_password": f"tp-pool{i:02d}-pw"} for i in range(1, n + 1)]


def _seed_pool(cfg) -> None:
    """A lab without a provisioning endpoint has its test subscribers created beforehand."""
    store = Store(cfg.db_path)
    for user in _pool(POOL_SIZE):
        store.create_user(**user)


def _set(doc: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


def profile_editor(name: str):
    variation = BY_NAME[name]

    def edit(doc: dict, net) -> None:
        for dotted, value in (variation.profile.get("pixit") or {}).items():
            _set(doc["pixit"], dotted, value)
        doc["pics"].update(variation.profile.get("pics") or {})
        extra = EXTRA_OPTIONS.get(name, {})
        if extra.get("verify"):
            doc["pics"]["wsf.verify"] = extra["verify"]
        if name == "fixtures-only":
            seeds = dict(zip(("alice", "bob"), SEED_USERS))
            fixtures = {k: {f: u[f] for f in ("web_id", "password", "impi", "impus", "tp_username", "tp_password")}
                        for k, u in seeds.items()}
            fixtures.update({u["web_id"].split("@")[0]: u for u in _pool(POOL_SIZE)})
            doc["pixit"]["users"]["fixtures"] = fixtures

    return edit


def run_variation(name: str, cases=None):
    cases = cases if cases is not None else catalog()
    variation = BY_NAME[name]
    # on top of the default network of the fault matrix (its short token lifetime lets the lifecycle
    # cases see a token expire), so a variation changes exactly one freedom
    options = {**VARIANTS["relay"], **variation.options, **EXTRA_OPTIONS.get(name, {})}
    chosen = [tc for tc in cases if SUBSET[name](tc)]
    return run_cases("relay", None, chosen, options=options, variations=(name,),
                     edit_profile=profile_editor(name),
                     before_start=_seed_pool if name == "fixtures-only" else None)


# Variations that take independent freedoms (wire style, form field names, limits, ordering): one
# network with all of them on judges the union of their subsets in one run. make test runs this
# group once instead of ten networks; a fail names the group, and `variation_matrix.py NAME` then
# tells which variation it was. The others change the same thing two ways (token lifetimes),
# change what the profile knows (opaque tokens, fixtures only, JWKS location) and run alone.
TOGETHER = ("as-form-field-names", "as-introspect-400-unauthenticated", "wsf-challenge-without-error", "size-limits-larger",
            "3rdwws-wsf-after-accept", "wsf-digest-param-order", "sip-compact-headers",
            "sip-branch-tag-formats", "sip-unknown-headers", "sip-header-order", "sip-reason-phrases")


def run_together(names=TOGETHER, cases=None):
    """The variations `names` on at once (see TOGETHER), against the union of their subsets."""
    cases = cases if cases is not None else catalog()
    options = dict(VARIANTS["relay"])
    for name in names:
        options.update({**BY_NAME[name].options, **EXTRA_OPTIONS.get(name, {})})
    editors = [profile_editor(name) for name in names]

    def edit(doc: dict, net) -> None:
        for editor in editors:
            editor(doc, net)

    chosen = [tc for tc in cases if any(SUBSET[name](tc) for name in names)]
    return run_cases("relay", None, chosen, options=options, variations=tuple(names), edit_profile=edit)


def unaccepted(name: str, run) -> dict[str, tuple[str, list[str]]]:
    allowed = INCONCLUSIVE_OK.get(name, {})
    return {k: (v, run.findings.get(k, [])) for k, v in run.verdicts.items()
            if v not in ACCEPTED and not (v == "inconclusive" and k in allowed)}


def compute(names=None) -> dict[str, dict]:
    cases = catalog()
    out = {}
    for name in names or [v.name for v in VARIATIONS]:
        run = run_variation(name, cases)
        bad = unaccepted(name, run)
        out[name] = {"counts": dict(Counter(run.verdicts.values())), "bad": {k: v[0] for k, v in bad.items()},
                     "findings": {k: v[1] for k, v in bad.items()}}
        print(f"{name}: {out[name]['counts']} bad={out[name]['bad']}", flush=True)
    return out


def render(matrix: dict[str, dict]) -> str:
    lines = [
        "# Conformant-variation matrix", "",
        "The mirror image of the [fault matrix](fault-matrix.md): each row is a *conformant* variation of the",
        "reference network (`refnet/variations.py`, listed by `ims-conformance reference variations`), a",
        "different choice where BINDING.md or a standard leaves freedom. The catalog subset the variation can",
        "affect runs against a network with that variation on, with the profile a vendor making that choice",
        "would write; every verdict must be pass, pass with warnings or not applicable (inconclusive only where",
        "listed below). Generated by `tests/integration/variation_matrix.py --write`; checked by",
        "`tests/integration/test_variation_matrix.py` in `make test`, which runs the variations marked *together*",
        "in one network with all of them on (they take independent freedoms) and the others alone.", "",
        "Subsets: a variation changes what some nodes do; the cases of other nodes behave exactly as on the",
        "default network (which the fault matrix's clean runs cover in full), so running them again would",
        "prove nothing and cost minutes. The subset of each variation is in the table.", "",
        "| variation | nodes | freedom taken | cases run | verdicts | not accepted |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in matrix.items():
        v = BY_NAME[name]
        counts = ", ".join(f"{k} {n}" for k, n in sorted(row["counts"].items()))
        if row["bad"]:
            bad = ", ".join(f"`{k}` ({verdict})" for k, verdict in sorted(row["bad"].items()))
        else:
            bad = "none"
        together = " (together)" if name in TOGETHER else ""
        lines.append(f"| `{name}`{together} | {', '.join(v.nodes) or 'profile'} | {v.freedom} | {SUBSET_WHY[name]} "
                     f"| {counts} | {bad} |")
    lines += ["", "## Awaiting catalog fixes", "",
              "Variations that still give a fail because of a known catalog assumption being removed;",
              "`make test` skips them with the reason below (`AWAITS_CATALOG_FIX` in",
              "`tests/integration/variation_matrix.py`). It must stay empty.", ""]
    lines += [f"- `{name}`: {why}" for name, why in AWAITS_CATALOG_FIX.items()] or ["- none"]
    lines += ["", "## Accepted inconclusive verdicts", ""]
    rows = [f"- `{name}` / `{case}`: {why}" for name, d in INCONCLUSIVE_OK.items() for case, why in d.items()]
    lines += rows or ["- none"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("names", nargs="*", help="variations to run (default all)")
    p.add_argument("--write", action="store_true")
    p.add_argument("--findings", action="store_true", help="print the findings of every case not accepted")
    a = p.parse_args()
    unknown = [n for n in a.names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown variation(s): {', '.join(unknown)}")
    matrix = compute(a.names or None)
    if a.findings:
        for name, row in matrix.items():
            for case, findings in row["findings"].items():
                print(f"{name} {case}:\n  " + "\n  ".join(findings))
    if a.write:
        if a.names:
            p.error("--write needs the whole matrix (no variation names)")
        DOC.write_text(render(matrix))
        print(f"wrote {DOC}")
    failing = [n for n, row in matrix.items() if row["bad"] and n not in AWAITS_CATALOG_FIX]
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
