"""Conformant variations of the reference network: listed, validated, applied to the options."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from refnet.config import NetworkConfig
from refnet.launcher import add_up_arguments, config_from_args
from refnet.variations import VARIATIONS, UnknownVariation


def test_listed_by_the_command_line():
    out = subprocess.run([sys.executable, "-m", "refnet", "variations"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert [line.split()[0] for line in out.splitlines()] == [v.name for v in VARIATIONS]


def args(*argv):
    p = argparse.ArgumentParser()
    add_up_arguments(p)
    return p.parse_args(list(argv))


def test_options_of_a_variation_are_applied(tmp_path):
    cfg = config_from_args(args("--state-dir", str(tmp_path), "--variation", "as-opaque-tokens",
                                "--variation", "token-lifetime-long"))
    assert cfg.variations == ["as-opaque-tokens", "token-lifetime-long"]
    assert cfg.options.token_format == "opaque" and cfg.options.token_lifetime_s == 3600
    assert cfg.varies("as-opaque-tokens") and not cfg.varies("sip-compact-headers")


def test_unknown_names_are_refused(tmp_path):
    with pytest.raises(UnknownVariation, match="known: "):
        config_from_args(args("--state-dir", str(tmp_path), "--variation", "nope"))
    with pytest.raises(KeyError):
        NetworkConfig(str(tmp_path)).varies("nope")  # a typo in a node must not disable a variation


def test_opaque_tokens_cannot_be_verified_locally(tmp_path):
    cfg = config_from_args(args("--state-dir", str(tmp_path), "--verify", "local_jwt", "--variation",
                                "as-opaque-tokens"))
    with pytest.raises(ValueError, match="introspection"):
        cfg.options.check()


def test_token_lifetime_from_the_command_line_and_a_variation_wins(tmp_path):
    # interop/kamailio/start.sh asks the reference AS for 8 s tokens (the expiry cases wait seconds)
    assert config_from_args(args("--state-dir", str(tmp_path), "--token-lifetime-s", "8")).options.token_lifetime_s == 8
    assert config_from_args(args("--state-dir", str(tmp_path))).options.token_lifetime_s == 300
    cfg = config_from_args(args("--state-dir", str(tmp_path), "--token-lifetime-s", "8",
                                "--variation", "token-lifetime-long"))
    assert cfg.options.token_lifetime_s == 3600
