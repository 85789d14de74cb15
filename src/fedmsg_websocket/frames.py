"""The text frames of the moksha livesocket protocol, both ways.

Out: `{"topic": T, "body": B}` where B is the bus body's own JSON text, embedded unchanged: it is parsed once
to prove it is JSON (a browser's JSON.parse must accept the frame) but never re-serialised, so bodies
reach clients byte for byte as published (fedmsg signs them) and each message is encoded once for all clients.
In: `{"topic": "__topic_subscribe__", "body": "<topic>"}`; a trailing `*` is stripped to make a prefix.
"""

from __future__ import annotations

import json
from typing import NamedTuple

SUBSCRIBE = "__topic_subscribe__"


class Outgoing(NamedTuple):
    topic: str
    frame: str
    #: The frame's length in bytes (UTF-8), for the sent-bytes counter.
    size: int


def _reject_constant(name: str) -> None:
    # NaN and Infinity are Python's extension, not JSON: JSON.parse would reject the whole frame.
    raise ValueError(f"{name} is not JSON")


def outgoing(frames: list[bytes]) -> Outgoing | None:
    """The frame to send for one bus message `[topic, body]`, or None when it is not fedmsg JSON."""
    if len(frames) != 2:
        return None
    try:
        topic = frames[0].decode()
        body = frames[1].decode()
        json.loads(body, parse_constant=_reject_constant)
    except ValueError:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        return None
    frame = '{"topic": ' + json.dumps(topic) + ', "body": ' + body + "}"
    return Outgoing(topic, frame, len(frame.encode()))


def subscription(message: str | bytes) -> str | None:
    """The topic prefix a client frame subscribes to ("" is everything), or None if it is anything else."""
    if not isinstance(message, str):
        return None
    try:
        request = json.loads(message)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("topic") != SUBSCRIBE:
        return None
    topic = request.get("body")
    if not isinstance(topic, str):
        return None
    # moksha removed every `*`; only a trailing one means "prefix" here, so `a*b` stays a literal prefix.
    return topic.rstrip("*")
