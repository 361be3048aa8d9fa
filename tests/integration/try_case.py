"""Run test cases against a throwaway reference network (free ports, temporary state), for
catalog authors: does my case pass on the conformant network and fail with the fault it targets?

    .venv/bin/python tests/integration/try_case.py testcases/wsf/TP_WSF_TOK_001.yaml [...] \
        [--fault wsf-skip-verification] [--signalling direct] [--verify local_jwt] \
        [--bearer-syntax ts24371] [--core-transport tcp] [--pics sip.client_aor=impu] [--no-capture] \
        [--variation sip-compact-headers]

Prints each case's verdict, its steps and every finding that is not a pass.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance.model.profile import load_profile  # noqa: E402
from conformance.model.testcase import load_testcase  # noqa: E402
from conformance.run.capture_hook import CaptureFactory  # noqa: E402
from conformance.run.engine import Engine  # noqa: E402
from conformance.run.reporter import NullReporter  # noqa: E402
from profiles import write_profile  # noqa: E402
from refnet.config import NetworkConfig, Options  # noqa: E402
from refnet.launcher import free_endpoints, start  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("cases", nargs="+")
    p.add_argument("--fault", action="append", default=[])
    p.add_argument("--variation", action="append", default=[], help="a conformant variation (refnet/variations.py)")
    p.add_argument("--signalling", default="relay")
    p.add_argument("--verify", default="introspection")
    p.add_argument("--bearer-syntax", default="rfc8898")
    p.add_argument("--core-transport", default="udp")
    p.add_argument("--token-lifetime", type=int, default=300, help="access token lifetime (s) of the AS")
    p.add_argument("--pics", action="append", default=[], help="extra PICS answer NAME=VALUE")
    p.add_argument("--opt", action="append", default=[],
                   help="another network option NAME=VALUE of refnet.config.Options (e.g. ws_close=expire)")
    p.add_argument("--no-capture", action="store_true")
    a = p.parse_args()
    more = {}
    for kv in a.opt:
        k, v = kv.split("=", 1)
        more[k] = int(v) if v.isdigit() else v
    d = Path(tempfile.mkdtemp(prefix="try-case-"))
    cfg = NetworkConfig(str(d / "state"), endpoints=free_endpoints(prefer_defaults=False), faults=a.fault,
                        variations=a.variation,
                        options=Options(signalling=a.signalling, verify=a.verify, bearer_syntax=a.bearer_syntax,
                                        core_transport=a.core_transport, token_lifetime_s=a.token_lifetime,
                                        **more))
    net = start(cfg)
    worst = 0
    factory = None
    try:
        extra = {}
        for kv in a.pics:
            k, v = kv.split("=", 1)
            extra[k] = {"true": True, "false": False}.get(v, v)
        profile = load_profile(write_profile(net, d, **extra))
        for case in a.cases:
            tc = load_testcase(case)
            if not tc.applicable(profile.pics, profile.pixit):
                print(f"{tc.id}: not applicable ({tc.pics.expr if tc.pics else ''} "
                      f"{' '.join(tc.missing_pixit(profile.pixit))})")
                continue
            rep = NullReporter()
            if factory is None and not a.no_capture:
                factory = CaptureFactory(profile, d / "work")
                factory.ensure_started(d / "work" / "harness.keylog")
            res = Engine(profile, reporter=rep, workdir=d / "work", capture_factory=factory).run(tc)
            print(res.summary())
            for title, h in rep.steps:
                print(f"    {getattr(h, 'verdict', '?')!s:14} {title}")
            worst = max(worst, {"pass": 0, "pass with warnings": 0, "not applicable": 0}.get(res.verdict.value, 1))
    finally:
        if factory is not None:
            factory.close()
        net.stop_all()
    return worst


if __name__ == "__main__":
    sys.exit(main())
