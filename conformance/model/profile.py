"""Profiles: what the implementation under test is (sut), where it is (PIXIT), which options it
implements (PICS), and its expected deviations.

`${env:NAME}` may appear in any value; a variable that is not set is a ProfileError naming the
file:line and the variable. Nothing else is templated in a profile (`$${` is a literal `${`).

Secrets, replaced by `<redacted:NAME>` in every report and log (conformance.redact):
- every value whose key names a credential (ends in secret, password, passwd, token, api_key,
  private_key), named by its dotted path, e.g. pixit.oauth.client_secret (PICS answers never);
- every value that came from an environment variable, named by the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.model import schema
from conformance.model.deviations import Deviation, DeviationsError, load_deviations, parse_deviations
from conformance.model.yaml_marks import Mark, MarkedDict, MarkedList, ModelError, Problem, load_file
from conformance.redact import Redactor
from conformance.run.templating import KEEP, TemplateContext, TemplateError, substitute

# A key that names a credential: client_secret, password, tp_password, token, api_key (not token_endpoint).
SECRET_KEY = re.compile(r"(^|[_-])(secret|password|passwd|token|api_?key|private_key)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProfileError(ModelError):
    """A profile that cannot be used; `.problems` lists every problem with file:line:column."""


@dataclass
class Profile:
    path: Path
    name: str
    sut: dict[str, Any]
    pixit: MarkedDict
    pics: dict[str, Any]  # flat, dotted keys: {"signalling.path": "relay", ...}
    reference_network: dict[str, Any] | None = None
    deviations: list[Deviation] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> value
    raw: MarkedDict = field(default_factory=MarkedDict, repr=False)
    # Relative paths in pixit and reference_network (tls.ca_bundle, sut_keylogs, state_dir) are
    # relative to this: the working directory when the profile was loaded, the way
    # `python -m refnet up` and the Makefile see `.refnet`.
    base_dir: Path = field(default_factory=Path.cwd)
    _redactor: Redactor | None = field(default=None, init=False, repr=False)

    def deviation(self, case_id: str) -> Deviation | None:
        """The expected deviation listed for a test case, if any."""
        return next((d for d in self.deviations if d.id == case_id), None)

    def resolve_path(self, value: str | Path) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path

    def node(self, name: str) -> MarkedDict:
        """PIXIT of one node: profile.node("wsf")["url"]."""
        nodes = self.pixit.get("nodes", {})
        if name not in nodes:
            raise KeyError(f"no node '{name}' in {self.path} (nodes: {', '.join(nodes)})")
        return nodes[name]

    @property
    def fixtures(self) -> dict[str, dict[str, Any]]:
        """Named identities (alice, bob, ...)."""
        return dict(self.pixit.get("users", {}).get("fixtures", {}) or {})

    @property
    def step_timeout_ms(self) -> int:
        return int(self.pixit.get("timeouts", {}).get("step_ms", 5000))

    @property
    def connect_timeout_ms(self) -> int:
        return int(self.pixit.get("timeouts", {}).get("connect_ms", 3000))

    @property
    def redactor(self) -> Redactor:
        """One Redactor for the profile's secrets (add run-time secrets to it with .add)."""
        if self._redactor is None:
            self._redactor = Redactor(self.secrets)
        return self._redactor

    def template_context(self, user: Mapping[str, Any] | None = None) -> TemplateContext:
        """A fresh run-time context for one test case."""
        return TemplateContext(pixit=self.pixit, pics=self.pics, user=user, users=self.fixtures)


def load_profile(path: str | Path, environ: Mapping[str, str] | None = None) -> Profile:
    """Load, resolve ${env:NAME}, validate; raises ProfileError listing every problem."""
    path = Path(path)
    file = str(path)
    environ = os.environ if environ is None else environ
    doc, problems = load_file(path)
    if doc is None:
        raise ProfileError(problems or [Problem(file, 1, 1, "empty profile")])
    env_secrets: dict[str, str] = {}
    whole: set[tuple] = set()  # paths whose whole value was one ${env:...}
    _resolve_env(doc, (), file, environ, env_secrets, whole, problems)
    if problems:
        raise ProfileError(problems)
    _coerce_env_types(doc, whole)
    problems += schema.validate(doc, "profile", file)
    if problems:
        raise ProfileError(problems)

    _apply_pixit_defaults(doc["pixit"])

    deviations: list[Deviation] = []
    spec = doc.get("expected_deviations")
    if isinstance(spec, str):
        dev_path = (path.parent / spec) if not Path(spec).is_absolute() else Path(spec)
        if not dev_path.is_file():
            line, col = doc.mark_of("expected_deviations")
            raise ProfileError([Problem(file, line, col, f"expected_deviations: no file {dev_path}")])
        try:
            deviations = load_deviations(dev_path)
        except DeviationsError as exc:
            raise ProfileError(exc.problems) from None
    elif isinstance(spec, list):
        deviations, dev_problems = parse_deviations(spec, file)
        if dev_problems:
            raise ProfileError(dev_problems)

    secrets: dict[str, str] = {}
    _collect_secrets({k: v for k, v in doc.items() if k != "pics"}, "", secrets)
    for var, value in env_secrets.items():
        if value not in secrets.values():
            secrets[var] = value
    return Profile(path=path, name=doc["profile"], sut=dict(doc["sut"]), pixit=doc["pixit"],
                   pics=dict(doc["pics"]), reference_network=doc.get("reference_network"),
                   deviations=deviations, secrets=secrets, raw=doc)


def _resolve_env(node: Any, path: tuple, file: str, environ: Mapping[str, str], env_secrets: dict[str, str],
                 whole: set[tuple], problems: list[Problem]) -> None:
    """Replace ${env:NAME} in every string value, in place."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        if isinstance(value, dict | list):
            _resolve_env(value, (*path, key), file, environ, env_secrets, whole, problems)
            continue
        if not isinstance(value, str) or "${" not in value:
            continue
        mark: Mark = node.mark_of(key) if isinstance(node, MarkedDict | MarkedList) else (1, 1)

        def resolve(expr: str, mark: Mark = mark) -> Any:
            if not expr.startswith("env:"):
                problems.append(Problem(file, *mark, f"${{{expr}}}: only ${{env:NAME}} can be used in a profile "
                                                      "(write $${ for a literal ${)"))
                return KEEP
            var = expr[4:]
            if not _ENV_NAME.match(var):
                problems.append(Problem(file, *mark, f"${{{expr}}}: '{var}' is not an environment variable name"))
                return KEEP
            if var not in environ:
                problems.append(Problem(file, *mark, f"environment variable {var} is not set (${{env:{var}}})"))
                return KEEP
            env_secrets[var] = environ[var]
            return environ[var]

        try:
            new = substitute(value, resolve)
        except TemplateError as exc:
            problems.append(Problem(file, *mark, str(exc)))
            continue
        if re.fullmatch(r"\$\{\s*env:[^{}]*\}", value):
            whole.add((*path, key))
        node[key] = new


def _coerce_env_types(doc: MarkedDict, whole: set[tuple]) -> None:
    """An environment variable is text; where the schema wants a number or a boolean and the value
    was exactly one ${env:...}, convert it (port: ${env:WSF_PORT})."""
    if not whole:
        return
    for error in schema.validator("profile").iter_errors(doc):
        target = tuple(error.absolute_path)
        if error.validator != "type" or target not in whole:
            continue
        want = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        container = doc
        for p in target[:-1]:
            container = container[p]
        text = str(container[target[-1]]).strip()
        if "integer" in want and re.fullmatch(r"[+-]?\d+", text):
            container[target[-1]] = int(text)
        elif "number" in want and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            container[target[-1]] = float(text)
        elif "boolean" in want and text.lower() in ("true", "false"):
            container[target[-1]] = text.lower() == "true"


# PIXIT values with a default, so a test case can always name them (${pixit.authorization_ui.*}).
PIXIT_DEFAULTS: dict[str, dict[str, Any]] = {
    "authorization_ui": {"identity_field": "web_id", "password_field": "password"},
}


def _apply_pixit_defaults(pixit: dict) -> None:
    for section, defaults in PIXIT_DEFAULTS.items():
        target = pixit.get(section)
        if target is None:
            pixit[section] = target = {}
        for key, value in defaults.items():
            target.setdefault(key, value)


def _collect_secrets(node: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if SECRET_KEY.search(str(key)) and isinstance(value, str | int) and not isinstance(value, bool):
                out[name] = str(value)
            else:
                _collect_secrets(value, name, out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _collect_secrets(value, f"{prefix}[{i}]", out)
