"""A stand-in for an xdist worker as the controller's scheduler sees it (not a test module)."""

from __future__ import annotations

from types import SimpleNamespace


class FakeWorker:
    """What a scheduler and the plugin's controller hooks use of an xdist WorkerController: its
    id, the cases sent to it, its shutdown, and (for pytest_configure_node) its config and input."""

    def __init__(self, name: str, config=None):
        self.gateway = SimpleNamespace(id=name)
        self.config = config
        self.workerinput = {"workerid": name}
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True
