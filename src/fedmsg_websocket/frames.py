"""The text frames of the moksha livesocket protocol (both ways), and the Server-Sent Events form.

Out: `{"topic": T, "body": B, "id": "C"}` where B is the bus body's own JSON text, embedded unchanged: it is
parsed once to prove it is JSON (a browser's JSON.parse must accept the frame) but never re-serialised, so
bodies reach clients byte for byte as published (fedmsg signs them) and each message is encoded once for all
clients. C is the message's cursor (see window.py): an extra top-level key, which moksha pages ignore (they
read `topic` and `body`), and what a client sends back in a resume frame.
In: `{"topic": "__topic_subscribe__", "body": "<topic>"}`; a trailing `*` is stripped to make a prefix;
`{"topic": "__resume__", "body": {"cursor": "C"}}` or `{"body": {"since": EPOCH_SECONDS}}`: see catchup.py.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import NamedTuple

SUBSCRIBE = "__topic_subscribe__"
RESUME = "__resume__"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class Outgoing(NamedTuple):
    """One bus message as every reader needs it: clients (WebSocket and SSE) and the window."""

    topic: str
    #: The WebSocket text frame (with the cursor).
    frame: str
    #: The frame's length in bytes (UTF-8), for the sent-bytes counter.
    size: int
    #: The window's cursor: strictly increasing, microseconds since the epoch when received (window.py).
    cursor: int
    #: Epoch seconds when received.
    received: float
    #: The body as published, and its `timestamp` (a number) and `msg_id` (a string) when it has them.
    body: bytes
    timestamp: float | None
    msg_id: str | None
    #: The Server-Sent Events event, `id:` and `data:` lines.
    event: bytes


def _reject_constant(name: str) -> None:
    # NaN and Infinity are Python's extension, not JSON: JSON.parse would reject the whole frame.
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> tuple[str, object]:
    """(the body as text, the parsed JSON); ValueError when it is not UTF-8 JSON."""
    text = body.decode()  # UnicodeDecodeError is a ValueError
    return text, json.loads(text, parse_constant=_reject_constant)


def body_fields(parsed: object) -> tuple[float | None, str | None]:
    """The body's own `timestamp` (a finite number) and `msg_id` (a string), None where absent."""
    if not isinstance(parsed, dict):
        return None, None
    stamp = parsed.get("timestamp")
    msg_id = parsed.get("msg_id")
    number = isinstance(stamp, int | float) and not isinstance(stamp, bool) and math.isfinite(stamp)
    return (float(stamp) if number else None), (msg_id if isinstance(msg_id, str) else None)


def message_json(topic: str, body: str) -> str:
    return '{"topic": ' + json.dumps(topic) + ', "body": ' + body + "}"


def websocket_frame(topic: str, body: str, cursor: int) -> str:
    return '{"topic": ' + json.dumps(topic) + ', "body": ' + body + ', "id": "' + str(cursor) + '"}'


def sse_event(topic: str, body: str, cursor: int) -> bytes:
    """`id: C` and the data as `data:` lines: a line break in the JSON (whitespace) starts a new line, which
    EventSource joins back with a line feed."""
    lines = _LINE_BREAK.split(message_json(topic, body))
    return (f"id: {cursor}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def build(topic: str, text: str, parsed: object, body: bytes, *, cursor: int, received: float) -> Outgoing:
    frame = websocket_frame(topic, text, cursor)
    stamp, msg_id = body_fields(parsed)
    event = sse_event(topic, text, cursor)
    return Outgoing(topic, frame, len(frame.encode()), cursor, received, body, stamp, msg_id, event)


class Cursors:
    """Strictly increasing cursors: microseconds since the epoch, or the last one plus one when the clock
    stands still or steps back. One thread calls next()."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self, now: float) -> int:
        self.last = max(self.last + 1, int(now * 1_000_000))
        return self.last


def outgoing(frames: list[bytes], cursors: Cursors) -> Outgoing | None:
    """What to send and store for one bus message `[topic, body]`, or None when it is not fedmsg JSON."""
    if len(frames) != 2:
        return None
    try:
        topic = frames[0].decode()
        text, parsed = parse_body(frames[1])
    except ValueError:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        return None
    now = time.time()
    return build(topic, text, parsed, frames[1], cursor=cursors.next(now), received=now)


def _request(message: str | bytes) -> dict[str, object] | None:
    if not isinstance(message, str):
        return None
    try:
        request = json.loads(message)
    except ValueError:
        return None
    return request if isinstance(request, dict) else None


def subscription(message: str | bytes) -> str | None:
    """The topic prefix a client frame subscribes to ("" is everything), or None if it is anything else."""
    request = _request(message)
    if request is None or request.get("topic") != SUBSCRIBE:
        return None
    topic = request.get("body")
    if not isinstance(topic, str):
        return None
    # moksha removed every `*`; only a trailing one means "prefix" here, so `a*b` stays a literal prefix.
    return topic.rstrip("*")


def resume_point(message: str | bytes) -> int | None:
    """The cursor a resume frame asks to resume after, or None if the frame is not a valid resume frame.

    `{"cursor": "C"}` (a cursor from a frame's `id`) or `{"since": T}` (epoch seconds: everything received
    from T on, since cursors are receive times).
    """
    request = _request(message)
    if request is None or request.get("topic") != RESUME or not isinstance(request.get("body"), dict):
        return None
    body: dict[str, object] = request["body"]  # type: ignore[assignment]
    cursor = body.get("cursor")
    since = body.get("since")
    if isinstance(cursor, str):
        return parse_cursor(cursor)
    if isinstance(since, int | float) and not isinstance(since, bool) and 0 <= since < 1e11:
        return max(0, int(since * 1_000_000) - 1)
    return None


def parse_cursor(text: str) -> int | None:
    """A cursor from text (a Last-Event-ID header, a query parameter), None if it is not one."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
