"""Test identities: a fresh one per test case (so cases run in parallel without sharing a
registration), or a named fixture identity of the profile.

Fresh identities are created through the profile's provisioning endpoint
(`pixit.users.provisioning`). A vendor without one lists fixture identities instead
(`pixit.users.fixtures`, optionally `pixit.users.pool`: the fixture names a case needing a fresh
user may take; default all of them). A fixture is *leased*: one lock file per user in the run's
work directory (`identity-locks/NAME.lock`, an exclusive `flock`), so no two running cases hold
it, across pytest-xdist workers too. A leased fixture carries state from earlier cases
(registrations), so the engine brings it to a known state before the case and cleans up after
(`needs_reset`). When no suitable user becomes free within the lease deadline, the case is
inconclusive with that reason: an identity is never silently shared.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from conformance.run.clock import MONOTONIC, Clock, as_clock
from conformance.run.deadline import Deadline

_USERS_REF = re.compile(r"\$\{users\.([a-z][a-z0-9_]*)")
_IMPU_INDEX = re.compile(r"\$\{user\.impus\[(\d+)\]")
LEASE_DEADLINE_S = 20.0  # how long a case waits for a fixture user another case holds
POLL_S = 0.1


class ProvisioningError(Exception):
    """No identity could be provided: the case is inconclusive with this reason."""


def no_provisioning_warning(profile) -> str | None:
    """The session-start warning for a profile without a provisioning endpoint, or None."""
    users = profile.pixit.get("users") or {}
    if users.get("provisioning"):
        return None
    pool = pool_names(users)
    return (f"the profile has no users.provisioning: test cases that need a fresh identity take one of "
            f"{len(pool)} fixture user(s) ({', '.join(pool) or 'none'}), one case at a time, and reset its "
            "registrations before and after; when none is free they are inconclusive")


def pool_names(users: dict) -> list[str]:
    fixtures = users.get("fixtures") or {}
    pool = users.get("pool")
    return [n for n in pool if n in fixtures] if pool is not None else list(fixtures)


def named_users(tc) -> set[str]:
    """Fixture users a test case refers to by name (`${users.NAME...}`) in its steps or capture."""
    steps = [dict(step) for step in getattr(tc, "steps", [])]
    text = json.dumps([steps, getattr(tc, "capture", None) or {}], default=str)
    return set(_USERS_REF.findall(text))


def impus_needed(tc) -> int:
    """How many IMPUs the case's identity must have (`${user.impus[N]}` needs N + 1)."""
    steps = [dict(step) for step in getattr(tc, "steps", [])]
    text = json.dumps([steps, getattr(tc, "capture", None) or {}], default=str)
    return max([int(i) + 1 for i in _IMPU_INDEX.findall(text)] or [1])


@dataclass
class Lease:
    """The identity of one test case; `release()` when the case (and its postamble) is over."""

    user: dict
    fixture: str | None = None  # the fixture's name when it came from the profile's fixtures
    needs_reset: bool = False  # a shared fixture: bring it to a known state before and after
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


class IdentityProvider:
    def __init__(self, profile, workdir: Path | None = None, *, clock: Clock = MONOTONIC,
                 lease_deadline_s: float = LEASE_DEADLINE_S):
        self.profile = profile
        self.clock = as_clock(clock)  # every wait here (provisioning, a free pool user) is bounded on it
        users = profile.pixit.get("users") or {}
        self.fixtures: dict = dict(users.get("fixtures") or {})
        self.pool = pool_names(users)
        self.reset_registrations = not users.get("provisioning") and users.get("reset_registrations", True)
        self.provisioning: dict | None = users.get("provisioning")
        self.home_domain = profile.pixit.get("home_domain", "ims.example.net")
        self.lock_dir = Path(workdir or ".ims-conformance") / "identity-locks"
        self.lease_deadline_s = lease_deadline_s

    def for_case(self, tc) -> dict:
        """The identity without a lease (offline analysis, where nothing is sent)."""
        wanted = getattr(tc, "user", None) or "fresh"
        if wanted != "fresh":
            self._check_named(wanted)
            return dict(self.fixtures[wanted])
        if self.provisioning:
            return self._provision(tc.id)
        if not self.pool:
            raise ProvisioningError("the profile has neither users.provisioning nor users.fixtures")
        return dict(self.fixtures[self.pool[0]])

    def lease(self, tc) -> Lease:
        wanted = getattr(tc, "user", None) or "fresh"
        if wanted != "fresh":
            self._check_named(wanted)
            return self._take([wanted], f"fixture user {wanted!r}")
        if self.provisioning:
            return Lease(self._provision(tc.id))
        if not self.pool:
            raise ProvisioningError("the profile has neither users.provisioning nor fixture users for a fresh "
                                    "identity (users.fixtures / users.pool)")
        # a case that names another user (${users.bob...}) cannot be that user itself
        # ... nor a user with fewer IMPUs than the case uses (${user.impus[1]})
        others, impus = named_users(tc), impus_needed(tc)
        suitable = [n for n in self.pool
                    if n not in others and len(self.fixtures[n].get("impus") or []) >= impus]
        if not suitable:
            raise ProvisioningError(f"no suitable fixture user for a fresh identity in the pool ({', '.join(self.pool)}): "
                                    f"the case names {', '.join(sorted(others)) or 'no other user'} as other users "
                                    f"and needs {impus} IMPU(s)")
        return self._take(suitable, f"a fresh identity: every suitable fixture user of the pool "
                                    f"({', '.join(suitable)})")

    def _check_named(self, name: str) -> None:
        if name not in self.fixtures:
            raise ProvisioningError(f"test case asks for user {name!r}; the profile's fixtures are "
                                    f"{', '.join(self.fixtures) or 'none'}")

    def _take(self, names: list[str], what: str) -> Lease:
        """Lock the first free user of `names` (bounded wait); named fixtures and pool users
        share the same locks, so `user: alice` and a fresh case never hold alice together."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = self.clock.now() + self.lease_deadline_s
        start = secrets.randbelow(len(names))  # parallel workers spread over the pool
        order = names[start:] + names[:start]
        while True:
            for name in order:
                fd = os.open(self.lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                return Lease(dict(self.fixtures[name]), fixture=name, needs_reset=self.reset_registrations, _fd=fd)
            if self.clock.now() >= deadline:
                raise ProvisioningError(f"no free identity for {what} is held by other running test cases "
                                        f"(waited {self.lease_deadline_s:.0f} s); an identity is never shared")
            self.clock.sleep(POLL_S)

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
        from conformance.events import Garbage
        from conformance.run import provisioning_pool

        url = self.provisioning["url"]
        headers = {"Authorization": f"Bearer {self.provisioning.get('token', '')}"}
        # bounded like a step: timeouts.connect_ms for connect + TLS, timeouts.step_ms in total
        bound = Deadline(self.profile.step_timeout_ms / 1000.0, self.clock,
                         connect_s=self.profile.connect_timeout_ms / 1000.0)
        for attempt in (1, 2):
            pooled = provisioning_pool.client(url, ca)
            # A kept-alive connection may be closed by the server at any moment (its idle
            # timeout); urllib3 notices most closes before reusing it, and a request lost to the
            # rest is sent once more on a new connection. Provisioning a fresh, randomly named
            # user is ours to retry: a duplicate would be refused, never silently shared.
            may_be_stale = pooled.requests > 0 and attempt == 1
            try:
                with pooled.lock, bound.active():
                    r = pooled.driver.request("POST", url, json_body=user, send_cookies=False, headers=headers)
            except ConnectionError as exc:
                provisioning_pool.discard(url, ca)
                if may_be_stale:
                    continue
                raise ProvisioningError(f"{url}: {exc}") from exc
            if isinstance(r, Garbage):
                provisioning_pool.discard(url, ca)
                if may_be_stale and not r.raw:
                    continue
                raise ProvisioningError(f"{url}: {r.reason}")
            pooled.requests += 1
            break
        if r.status not in (200, 201):
            raise ProvisioningError(f"{url} answered {r.status}: {r.text[:200]}")
        return user

    def table(self, user: dict) -> dict:
        """web_id -> {impi, impus}: the mapping the identity matchers check against."""
        out = {u["web_id"]: {"impi": u["impi"], "impus": list(u["impus"])} for u in self.fixtures.values()}
        out[user["web_id"]] = {"impi": user["impi"], "impus": list(user["impus"])}
        return out
