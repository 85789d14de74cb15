"""Back-fill: on start, fetch the time this gateway's window misses from its peers' /raw.

Each gateway keeps its own window and holds only the time it was running (the store's coverage,
window.py). A gateway that was stopped (or is new) asks every peer which time it holds (`GET /window`,
answered by `Coverage` below), fetches the part of each gap that peer can fill through the peer's own
datagrepper-compatible `GET /raw` (in CHUNK_S slices, every page, oldest first), and hands each slice to
the store's writer thread (`Store.backfill`: deduplicated by msg_id, recorded as covered by that peer).
Time that no peer held, or that no peer answered for, stays a gap: it is logged and exported
(`unfilled_seconds`). No peers: the gateway answers with what it has.

It runs in a thread of its own from the start (Daemon.start_window): live messages go on meanwhile.

Gaps are in the time the window received messages; /raw selects by the bodies' own `timestamp` (whole
seconds in fedmsg): every request is widened by MARGIN_S on both sides, and duplicates are dropped.
A body is stored as the exact JSON text the peer served (its /raw splices stored bytes), cut out of its
answer; a body that cannot be cut out verbatim is re-serialised from the parsed JSON (signatures still
validate: fedmsg signs a canonical serialisation, not the wire bytes).
"""

from __future__ import annotations

import http
import json
import logging
import math
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from fedmsg_websocket.compat import Answer
from fedmsg_websocket.window import gaps, reader

if TYPE_CHECKING:
    from fedmsg_websocket.reads import Reads
    from fedmsg_websocket.writer import Writer

log = logging.getLogger(__name__)

#: A time range [start, end] in Unix seconds.
Span = tuple[float, float]

#: Seconds of window fetched per run of /raw pages: short enough that each page query stays cheap
#: (datagrepper's paging is an OFFSET) and within the range a peer's /raw accepts.
CHUNK_S = 600.0
#: /raw compares the bodies' timestamps (whole seconds, the publisher's clock) with start/end; the
#: window's gaps are in the receiver's clock: each request reaches this far beyond its gap.
MARGIN_S = 5.0
ROWS_PER_PAGE = 100
TIMEOUT_S = 10.0
#: Gaps shorter than this are not worth a request.
MIN_GAP_S = 0.5
#: Seconds back-fill may wait for a live peer's coverage to reach this daemon's start: longer than it
#: lags behind the peer's bus while that is quiet (writer.TOUCH_INTERVAL).
SETTLE_S = 7.0


class Window(Protocol):
    """What back-fill needs of the daemon's window."""

    def gaps(self, start: float, end: float) -> list[Span]:
        """The stretches of start..end the window does not hold, oldest first."""

    def first_held(self) -> float | None:
        """When the oldest time the window holds begins (None: it holds none)."""

    def fill(self, messages: list[tuple[str, bytes]], span: Span, source: str) -> int:
        """Add messages fetched for SPAN and record SPAN as held (from SOURCE); how many were new."""


class WriterWindow:
    """The daemon's window for back-fill: read on connections of its own, filled through the writer
    thread (the one connection that writes), one peer's slice per transaction."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def _read(self, query: Callable[[sqlite3.Connection], object]) -> object:
        conn = reader(self._writer.path)
        try:
            return query(conn)
        finally:
            conn.close()

    def gaps(self, start: float, end: float) -> list[Span]:
        return self._read(lambda conn: gaps(conn, start, end))  # type: ignore[return-value]

    def first_held(self) -> float | None:
        first = self._read(lambda conn: conn.execute("SELECT min(start) FROM coverage").fetchone()[0])
        return None if first is None else float(first)  # type: ignore[arg-type]

    def fill(self, messages: list[tuple[str, bytes]], span: Span, source: str) -> int:
        return self._writer.call(lambda store: store.backfill(messages, span[0], span[1], source)).result()


def held_spans(conn: sqlite3.Connection) -> list[Span]:
    """The time ranges a window holds (its coverage), merged."""
    return merge(conn.execute('SELECT start, "end" FROM coverage').fetchall())


class Coverage:
    """GET /window: `{"held": [[start, end], ...]}`, the time this window holds, for its peers' back-fill."""

    def __init__(self, reads: Reads) -> None:
        self._reads = reads

    async def answer(self) -> Answer:
        headers = (("Cache-Control", "no-store"),)
        if not self._reads.path:
            reason = b"no window: state_dir is not set\n"
            return Answer(http.HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", reason, headers)
        try:
            held = await self._reads.run(held_spans, wait=5.0)
        except (sqlite3.Error, TimeoutError) as exc:
            reason = f"window unavailable: {exc}\n".encode()
            return Answer(http.HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", reason, headers)
        body = json.dumps({"held": held}).encode()
        return Answer(http.HTTPStatus.OK, "application/json", body, headers)


# -- span arithmetic (sorted lists of non-overlapping [start, end]) ----------------------------------


def merge(spans: Sequence[Span]) -> list[Span]:
    """The union of SPANS, sorted, touching spans joined."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(spans: Sequence[Span], remove: Sequence[Span]) -> list[Span]:
    """SPANS minus REMOVE."""
    result: list[Span] = []
    cuts = merge(remove)
    for start, end in merge(spans):
        position = start
        for cut_start, cut_end in cuts:
            if cut_end <= position or cut_start >= end:
                continue
            if cut_start > position:
                result.append((position, cut_start))
            position = max(position, cut_end)
        if position < end:
            result.append((position, end))
    return result


def intersect(spans: Sequence[Span], other: Sequence[Span]) -> list[Span]:
    return subtract(spans, subtract(spans, other))


def total(spans: Sequence[Span]) -> float:
    return sum(end - start for start, end in merge(spans))


def chunks(span: Span, size: float = CHUNK_S) -> Iterator[Span]:
    start, end = span
    while start < end:
        yield start, min(start + size, end)
        start += size


# -- a peer, over HTTP ---------------------------------------------------------------------------------


class PeerError(Exception):
    """A peer did not answer, or not as a fedmsg-websocket does; str() is the reason."""


def _get_json(url: str) -> tuple[dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (http(s) only: validated)
            text = response.read().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise PeerError(f"{url}: {exc}") from exc
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PeerError(f"{url}: not JSON ({exc})") from exc
    if not isinstance(answer, dict):
        raise PeerError(f"{url}: not a JSON object")
    return answer, text


def peer_held(peer: str) -> list[Span]:
    """The time ranges PEER's window holds (its GET /window)."""
    answer, _ = _get_json(f"{peer.rstrip('/')}/window")
    try:
        return merge([(float(start), float(end)) for start, end in answer["held"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise PeerError(f"{peer}/window: no list of [start, end] under 'held'") from exc


def verbatim_messages(text: str, parsed: list) -> list[str]:
    """The JSON text of every element of the answer's raw_messages, as the peer sent it.

    Found by decoding from the array's opening bracket element by element; an element whose text does
    not decode to what the full parse gave (or an answer laid out otherwise) is re-serialised instead.
    """
    decoder = json.JSONDecoder()
    texts: list[str] = []
    key = text.find('"raw_messages"')
    position = text.find("[", key) + 1 if key >= 0 else -1
    for element in parsed:
        found = None
        if position > 0:
            while position < len(text) and text[position] in " \t\r\n,":
                position += 1
            try:
                value, end = decoder.raw_decode(text, position)
            except json.JSONDecodeError:
                position = -1
            else:
                if value == element:
                    found = text[position:end]
                position = end if found is not None else -1
        texts.append(found if found is not None else json.dumps(element))
    return texts


def raw_pages(peer: str, span: Span) -> Iterator[list[tuple[str, bytes]]]:
    """Every page of PEER's /raw for SPAN (widened by MARGIN_S), oldest first: (topic, body as served)."""
    page, pages = 1, 1
    while page <= pages:
        query = {
            "start": math.floor(span[0] - MARGIN_S),
            "end": math.ceil(span[1] + MARGIN_S),
            "order": "asc",
            "rows_per_page": ROWS_PER_PAGE,
            "page": page,
        }
        url = f"{peer.rstrip('/')}/raw?{urllib.parse.urlencode(query)}"
        answer, text = _get_json(url)
        messages = answer.get("raw_messages")
        if not isinstance(messages, list) or not isinstance(answer.get("pages"), int):
            raise PeerError(f"{url}: no raw_messages and pages")
        pages = answer["pages"]
        # The wire topic is the body's own (fedmsg puts it there); a body without one cannot be replayed.
        yield [
            (body["topic"], body_text.encode())
            for body, body_text in zip(messages, verbatim_messages(text, messages), strict=True)
            if isinstance(body, dict) and isinstance(body.get("topic"), str)
        ]
        page += 1


# -- the back-fill run ---------------------------------------------------------------------------------


class Backfill:
    """Fills the window's gaps from PEERS once, in a thread; counters for the metrics."""

    def __init__(
        self,
        window: Window,
        peers: Sequence[str],
        max_age: float,
        clock: Callable[[], float] = time.time,
        settle: float = SETTLE_S,
    ) -> None:
        self._window = window
        self._peers = list(peers)
        self._max_age = max_age
        self._clock = clock
        self._settle = settle
        self._thread = threading.Thread(target=self.run, name="backfill", daemon=True)
        #: Seconds of the window no peer could fill, at the end of the last run (metric).
        self.unfilled_seconds = 0.0
        #: Messages added from peers (metric); 1 while the run goes on (metric); set when it has ended.
        self.added = 0
        self.running = 1  # from construction: a start that has not begun yet is still to come
        self.done = threading.Event()
        #: This run of the daemon began about now (its window opened just before): what it missed lies
        #: before. (After it, its own coverage lags its writes by a few seconds: no gap to look for.)
        self._started = clock()

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # never the live stream's problem
            log.exception("back-fill failed")
        finally:
            self.running = 0
            self.done.set()

    def _peer_held(self, peer: str, deadline: float) -> list[Span] | None:
        """What PEER holds (None: it does not answer). A live peer's coverage ends at its last write, or
        its last touch while the bus is quiet (every few seconds): asked again until it reaches this
        start, until DEADLINE, or the end of the gap would look unfilled."""
        while True:
            try:
                spans = peer_held(peer)
            except PeerError as exc:
                log.warning("back-fill: peer %s: %s", peer, exc)
                return None
            if (spans and spans[-1][1] >= self._started) or time.monotonic() > deadline:
                return spans
            time.sleep(0.5)

    def _run(self) -> None:
        deadline = time.monotonic() + self._settle
        held: dict[str, list[Span]] = {}
        for peer in self._peers:
            spans = self._peer_held(peer, deadline)
            if spans is not None:
                held[peer] = spans
        # Before any gateway (this one or an answering peer) listened, nobody could have the bus: that is
        # not a gap. What this one missed since is.
        starts = [spans[0][0] for spans in held.values() if spans]
        first = self._window.first_held()
        if first is not None:
            starts.append(first)
        if not starts:
            return
        now = self._started
        since = max(now - self._max_age, min(starts))
        missing = [gap for gap in self._window.gaps(since, now) if gap[1] - gap[0] >= MIN_GAP_S]
        if missing and not self._peers:
            log.warning(
                "window misses %.0f s and no peers are configured: answering with what it has", total(missing)
            )
        for peer, spans in held.items():
            if not missing:
                break
            missing = self._fill_from(peer, missing, spans)
        self.unfilled_seconds = total(missing)
        for start, end in missing:
            log.warning(
                "window gap %s to %s (%.0f s) could not be filled from any peer",
                _iso(start),
                _iso(end),
                end - start,
            )
        log.info(
            "back-fill: %d message(s) added from peers, %.1f s unfilled", self.added, self.unfilled_seconds
        )

    def _fill_from(self, peer: str, missing: list[Span], held: list[Span]) -> list[Span]:
        """Fetch what PEER holds (HELD) of MISSING; return what is still missing."""
        filled: list[Span] = []
        for span in intersect(missing, held):
            for chunk in chunks(span):
                try:
                    messages = [row for rows in raw_pages(peer, chunk) for row in rows]
                except PeerError as exc:
                    log.warning("back-fill: peer %s: %s", peer, exc)
                    return subtract(missing, filled)
                self.added += self._window.fill(messages, chunk, f"peer {peer}")
                filled.append(chunk)
        return subtract(missing, filled)


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def metric_samples(backfill: Backfill | None) -> list[tuple[str, str, str, float]]:
    """(name, type, help, value) for the daemon's metrics (all 0 without a window)."""
    return [
        (
            "window_unfilled_seconds",
            "gauge",
            "Seconds of the window this daemon missed that no peer could fill at its last start.",
            round(backfill.unfilled_seconds, 3) if backfill else 0,
        ),
        (
            "backfilled_messages_total",
            "counter",
            "Messages fetched from peers into the window.",
            backfill.added if backfill else 0,
        ),
        (
            "backfill_running",
            "gauge",
            "1 while the start's back-fill from peers runs.",
            backfill.running if backfill else 0,
        ),
    ]
