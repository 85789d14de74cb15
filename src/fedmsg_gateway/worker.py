"""A background thread that runs until asked to stop: the shape of the metrics poller and the tracker."""

from __future__ import annotations

import threading


class Worker:
    """Runs _run() in a daemon thread; _run() returns once _stopping is set."""

    def __init__(self, name: str) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
