"""Test identities: a fresh one per test case (so cases run in parallel without sharing a
registration), or a named fixture identity of the profile.

Fresh identities are created through the profile's provisioning endpoint
(`pixit.users.provisioning`); a vendor without one lists fixture identities instead.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from conformance.run.clock import MONOTONIC
from conformance.run.deadline import Deadline


class ProvisioningError(Exception):
    pass


class IdentityProvider:
    def __init__(self, profile, clock=MONOTONIC):
        self.profile = profile
        self.clock = clock
        users = profile.pixit.get("users") or {}
        self.fixtures: dict = dict(users.get("fixtures") or {})
        self.provisioning: dict | None = users.get("provisioning")
        self.home_domain = profile.pixit.get("home_domain", "ims.example.net")

    def for_case(self, tc) -> dict:
        wanted = getattr(tc, "user", None) or "fresh"
        if wanted != "fresh":
            if wanted not in self.fixtures:
                raise ProvisioningError(f"test case asks for user {wanted!r}; the profile's fixtures are "
                                        f"{', '.join(self.fixtures) or 'none'}")
            return dict(self.fixtures[wanted])
        if not self.provisioning:
            if not self.fixtures:
                raise ProvisioningError("the profile has neither users.provisioning nor users.fixtures")
            return dict(next(iter(self.fixtures.values())))
        return self._provision(tc.id)

    def _provision(self, case_id: str) -> dict:
        tag = secrets.token_hex(4)
        local = f"{case_id.lower().replace('_', '-')}-{tag}"
        web_domain = self.provisioning.get("web_id_domain", "web.operator.example")
        user = {
            "web_id": f"{local}@{web_domain}",
            "password": secrets.token_urlsafe(12),
            "impi": f"{local}@{self.home_domain}",
            "impus": [f"sip:{local}@{self.home_domain}", f"tel:+1555{secrets.randbelow(10**7):07d}"],
            "tp_username": f"tp-{local}",
            "tp_password": secrets.token_urlsafe(12),
        }
        ca = (self.profile.pixit.get("tls") or {}).get("ca_bundle")
        if ca and not Path(ca).is_absolute():
            ca = str(Path(self.profile.base_dir) / ca)
        redactor = getattr(self.profile, "redactor", None)
        if redactor is not None:  # provisioned passwords are secrets like the profile's
            redactor.add("user.password", user["password"])
            redactor.add("user.tp_password", user["tp_password"])
        from conformance.drivers.http import HttpDriver
        from conformance.events import Garbage

        url = self.provisioning["url"]
        # bounded like a step: timeouts.connect_ms for connect + TLS, timeouts.step_ms in total
        bound = Deadline(self.profile.step_timeout_ms / 1000.0, self.clock,
                         connect_s=self.profile.connect_timeout_ms / 1000.0)
        driver = HttpDriver(ca_bundle=ca)
        try:
            with bound.active():
                r = driver.request("POST", url, json_body=user, send_cookies=False,
                                   headers={"Authorization": f"Bearer {self.provisioning.get('token', '')}"})
        except ConnectionError as exc:
            raise ProvisioningError(f"{url}: {exc}") from exc
        finally:
            driver.close()
        if isinstance(r, Garbage):
            raise ProvisioningError(f"{url}: {r.reason}")
        if r.status not in (200, 201):
            raise ProvisioningError(f"{url} answered {r.status}: {r.text[:200]}")
        return user

    def table(self, user: dict) -> dict:
        """web_id -> {impi, impus}: the mapping the identity matchers check against."""
        out = {u["web_id"]: {"impi": u["impi"], "impus": list(u["impus"])} for u in self.fixtures.values()}
        out[user["web_id"]] = {"impi": user["impi"], "impus": list(user["impus"])}
        return out
