"""`GET /raw`: datagrepper's query over the window, for fedmsg consumers catching up after a restart.

What `fedmsg.consumers.FedmsgConsumer.get_datagrepper_results` sends and reads: `start`, `end` (epoch
seconds, both inclusive, compared with each body's own `timestamp`), `order` (`asc`|`desc`, default desc),
`rows_per_page` (1..100, default 25), `page` (1-based), `topic` (repeatable, exact). The answer is
`{"raw_messages": [...], "count": N, "pages": P, "total": T}` where each message is the body exactly as
published, spliced from the stored bytes (never parsed and re-serialised: an int timestamp stays an int,
signatures still verify). Messages without a numeric `timestamp` are not in /raw.

Bounded work: a page is at most 100 rows; every other parameter (datagrepper's `category`, `user`,
`delta`...) is refused with 400 rather than ignored; the database is read in a worker thread (reads.py),
each answer waiting at most QUEUE_WAIT seconds for its turn (else 503).
"""

from __future__ import annotations

import http
import math
import sqlite3
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fedmsg_websocket.compat import Answer
from fedmsg_websocket.reads import Reads
from fedmsg_websocket.window import RawQuery, raw_page

MAX_ROWS_PER_PAGE = 100
MAX_PAGE = 1_000_000
MAX_TOPICS = 100
QUEUE_WAIT = 5.0
_NO_STORE = (("Cache-Control", "no-store"),)
_KNOWN = {"start", "end", "order", "rows_per_page", "page", "topic"}


class ParameterError(ValueError):
    """str() is the one-line reason given with the 400."""


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{name}: expected epoch seconds, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ParameterError(f"{name}: expected a finite number, got {text[:40]!r}")
    return value


def _integer(name: str, text: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ParameterError(f"{name}: expected an integer {low}..{high}, got {text[:40]!r}")
    return int(text)


def parse_query(query: str) -> RawQuery:
    """The RawQuery for a query string; ParameterError naming the parameter when it is wrong."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_TOPICS + 10)
    except ValueError:
        raise ParameterError("too many parameters") from None
    single: dict[str, str] = {}
    topics: list[str] = []
    for name, value in pairs:
        if name not in _KNOWN:
            raise ParameterError(f"{name[:40]}: unknown parameter (known: {', '.join(sorted(_KNOWN))})")
        if name == "topic":
            topics.append(value)
        elif name in single:
            raise ParameterError(f"{name}: given more than once")
        else:
            single[name] = value
    if len(topics) > MAX_TOPICS:
        raise ParameterError(f"topic: at most {MAX_TOPICS}")
    order = single.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ParameterError(f"order: expected asc or desc, got {order[:40]!r}")
    start = _number("start", single["start"]) if "start" in single else -math.inf
    end = _number("end", single["end"]) if "end" in single else math.inf
    if start > end:
        raise ParameterError("start: after end")
    return RawQuery(
        start=start,
        end=end,
        topics=tuple(dict.fromkeys(topics)),
        descending=order == "desc",
        rows_per_page=_integer("rows_per_page", single.get("rows_per_page", "25"), 1, MAX_ROWS_PER_PAGE),
        page=_integer("page", single.get("page", "1"), 1, MAX_PAGE),
    )


def render(query: RawQuery, total: int, bodies: list[bytes]) -> bytes:
    """The JSON answer, bodies spliced in as stored."""
    pages = math.ceil(total / query.rows_per_page)
    return (
        b'{"raw_messages": ['
        + b", ".join(bodies)
        + f'], "count": {len(bodies)}, "pages": {pages}, "total": {total}}}'.encode()
    )


def _json(status: http.HTTPStatus, body: bytes) -> Answer:
    return Answer(status, "application/json", body, _NO_STORE)


def _error(status: http.HTTPStatus, reason: str) -> Answer:
    return Answer(
        status, "text/plain; charset=utf-8", f"{reason}\n".encode(), (("Cache-Control", "no-store"),)
    )


# eq=False: a part of the daemon, equal (and hashed) only as itself, not by its counters.
@dataclass(eq=False)
class Raw:
    """The /raw handler over the window."""

    reads: Reads
    #: Requests answered, refused as bad (400), and refused as busy or without window (503).
    served: int = field(default=0, init=False)
    bad: int = field(default=0, init=False)
    unavailable: int = field(default=0, init=False)

    async def answer(self, query_string: str) -> Answer:
        try:
            query = parse_query(query_string)
        except ParameterError as exc:
            self.bad += 1
            return _error(http.HTTPStatus.BAD_REQUEST, str(exc))
        if not self.reads.path:
            self.unavailable += 1
            return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, "no window: state_dir is not set")
        try:
            total, bodies = await self.reads.run(lambda conn: raw_page(conn, query), QUEUE_WAIT)
        except TimeoutError:
            self.unavailable += 1
            return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy: too many /raw requests")
        except sqlite3.Error as exc:
            self.unavailable += 1
            return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, f"window unavailable: {exc}")
        self.served += 1
        return _json(http.HTTPStatus.OK, render(query, total, bodies))
