"""xdist workers forked from the run's fork server behave as the interpreter execnet would have
started (conformance/run/worker_zygote.py and its shim)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance import plugin
from conformance.run.worker_zygote import SHIM, WorkerZygote

BOUND_S = 30  # every wait below; the server imports for about a second first


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = WorkerZygote(tmp_path_factory.mktemp("wz") / "worker-zygote.log")
    yield z
    z.stop()


def _shim(zygote_or_path, code: str, *, stdin: str = "", env=None, cwd=None, flags=("-u",)):
    path = zygote_or_path.socket if isinstance(zygote_or_path, WorkerZygote) else zygote_or_path
    return subprocess.run([sys.executable, "-S", "-I", str(SHIM), str(path), *flags, "-c", code], input=stdin,
                          capture_output=True, text=True, timeout=BOUND_S, env=env, cwd=cwd)


REPORT = ("import os, sys; print(os.getppid(), os.getcwd(), os.environ.get('WZ_PROBE'), "
          "'conformance.plugin' in sys.modules, sys.argv, repr(sys.stdin.readline()))")


def test_a_forked_worker_runs_the_code_with_the_shims_streams_directory_and_environment(zygote, tmp_path):
    done = _shim(zygote, REPORT + "; sys.exit(3)", stdin="first line\n", env=dict(os.environ, WZ_PROBE="yes"),
                 cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    ppid, cwd, probe, preloaded, argv, line = done.stdout.split(" ", 5)
    assert int(ppid) == zygote.proc.pid  # forked by the server, not a new interpreter
    assert (cwd, probe, preloaded, argv) == (str(tmp_path), "yes", "True", "['-c']")
    assert line.strip() == "'first line\\n'"


def test_a_worker_ends_as_an_interpreter_ends(zygote):
    done = _shim(zygote, "import atexit; atexit.register(lambda: print('atexit ran'))")
    assert (done.returncode, done.stdout) == (0, "atexit ran\n")
    failed = _shim(zygote, "raise ValueError('from the worker')")
    assert failed.returncode == 1
    assert "ValueError: from the worker" in failed.stderr


def test_each_worker_has_its_own_random_state(zygote):
    draws = {_shim(zygote, "import random; print(random.random())").stdout for _ in range(3)}
    assert len(draws) == 3


def test_without_a_server_the_shim_becomes_the_real_interpreter(tmp_path):
    done = _shim(tmp_path / "no-server", "import os, sys; print(os.getpid() > 0, 'conformance.plugin' in sys.modules)")
    assert (done.returncode, done.stdout) == (0, "True False\n")


def test_arguments_other_than_execnets_go_to_the_real_interpreter(zygote):
    done = _shim(zygote, "import os; print(os.getppid())", flags=("-u", "-E"))
    assert done.returncode == 0
    assert int(done.stdout) != zygote.proc.pid


def test_killing_the_shim_kills_its_worker(zygote, tmp_path):
    pidfile = tmp_path / "pid"
    shim = subprocess.Popen([sys.executable, "-S", "-I", str(SHIM), str(zygote.socket), "-u", "-c",
                             f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"])
    try:
        deadline = time.monotonic() + BOUND_S
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = int(pidfile.read_text())
        shim.send_signal(signal.SIGKILL)
        shim.wait(BOUND_S)
        while time.monotonic() < deadline and Path(f"/proc/{worker}").exists() and \
                Path(f"/proc/{worker}/stat").read_text().split()[2] != "Z":
            time.sleep(0.05)
        assert not Path(f"/proc/{worker}").exists() or Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z"
    finally:
        shim.kill()
        shim.wait(BOUND_S)


def test_the_server_ends_when_the_run_does(tmp_path):
    z = WorkerZygote(tmp_path / "log")
    assert _shim(z, "print('ok')").stdout == "ok\n"
    z.stop()
    assert z.proc.returncode == 0
    assert not z.dir.exists()  # its socket and private directory are gone


def test_the_spec_xdist_gets_runs_the_shim(zygote):
    spec = zygote.python_spec()
    assert "//" not in spec  # execnet splits specs there
    assert shlex.split(spec) == [sys.executable, "-S", "-I", str(SHIM), str(zygote.socket)]


def _controller(tx, zygote_spec, worker=False):
    options = {"--profile": None, "--ims-worker-zygote": zygote_spec}
    config = SimpleNamespace(stash=pytest.Stash(), getoption=lambda name, default=None: options.get(name, default),
                             option=SimpleNamespace(tx=list(tx)), addinivalue_line=lambda *a: None)
    if worker:
        config.workerinput = {}
    return config


def test_the_plugin_hands_xdist_the_shim_for_every_plain_worker():
    config = _controller(["popen", "popen"], "/py -S -I shim /s")
    plugin.pytest_configure(config)
    assert config.option.tx == ["popen//python=/py -S -I shim /s"] * 2


@pytest.mark.parametrize("tx, spec, worker", [
    (["popen", "popen"], None, False),  # no server: new interpreters as before
    (["ssh=host", "popen"], "/py shim /s", False),  # the user's own specs are left alone
    (["popen"], "/py shim /s", True),  # a worker starts no workers
])
def test_the_plugin_leaves_other_specs_alone(tx, spec, worker):
    config = _controller(tx, spec, worker)
    plugin.pytest_configure(config)
    assert config.option.tx == tx


def test_the_shim_and_the_server_frame_a_request_alike():
    from conformance.run import worker_zygote_server, worker_zygote_shim

    assert worker_zygote_shim.HEADER.format == worker_zygote_server.HEADER.format
