"""Count the public socket's connected subscribers from its monitor events."""

from __future__ import annotations

import zmq
from zmq.utils.monitor import recv_monitor_message

from fedmsg_gateway.worker import Worker

# How often the thread looks at its stop flag while no event arrives.
_POLL_MS = 100


class SubscriberTracker(Worker):
    """A thread reading EVENT_ACCEPTED/EVENT_DISCONNECTED; count is the number of open connections.

    Events carry the connection's file descriptor, so a set of fds stays right even if a
    disconnect is reported for a connection we never saw accepted.
    """

    def __init__(self, monitor: zmq.Socket) -> None:
        self._monitor = monitor
        self._fds: set[int] = set()
        super().__init__("subscribers")

    @property
    def count(self) -> int:
        return len(self._fds)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if not self._monitor.poll(_POLL_MS):
                    continue
                event = recv_monitor_message(self._monitor)
                if event["event"] == zmq.EVENT_ACCEPTED:
                    self._fds.add(event["value"])
                elif event["event"] == zmq.EVENT_DISCONNECTED:
                    self._fds.discard(event["value"])
        finally:
            self._monitor.close(linger=0)
