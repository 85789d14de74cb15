"""Plain HTTP on the WebSocket port: the live page and its assets, /healthz for haproxy, the window's /raw
and /stream, 404 for the rest."""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from importlib import resources

from fedmsg_websocket.compat import Answer
from fedmsg_websocket.front import Exchange, Handler
from fedmsg_websocket.raw import Raw

# The page talks only to the address it came from; bus content is shown as text, never as markup.
_PAGE_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-cache"),
)
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}


def _text(status: http.HTTPStatus, text: str) -> Answer:
    return Answer(status, "text/plain; charset=utf-8", text.encode(), (("Cache-Control", "no-store"),))


def make_router(
    health: Callable[[], str | None],
    raw: Raw,
    stream: Callable[[Exchange], Awaitable[None]],
    window: Callable[[], Awaitable[Answer]] | None = None,
) -> Handler:
    """The plain-HTTP handler for front.diverting; health() returns None when healthy, else why not."""
    folder = resources.files("fedmsg_websocket") / "static"
    # Read once at start: a page request costs no disk access and a broken package fails at start.
    pages = {
        path: Answer(http.HTTPStatus.OK, kind, (folder / name).read_bytes(), _PAGE_HEADERS)
        for path, (name, kind) in _STATIC.items()
    }
    not_found = _text(http.HTTPStatus.NOT_FOUND, "not found\n")

    async def route(exchange: Exchange) -> None:
        path = exchange.request.path
        if path == "/stream":
            await stream(exchange)
        elif path == "/raw":
            exchange.respond(await raw.answer(exchange.request.query))
        elif path == "/window" and window is not None:
            # The time this window holds, for the peers' back-fill (backfill.Coverage).
            exchange.respond(await window())
        elif path == "/healthz":
            problem = health()
            if problem is None:
                exchange.respond(_text(http.HTTPStatus.OK, "ok\n"))
            else:
                exchange.respond(_text(http.HTTPStatus.SERVICE_UNAVAILABLE, f"{problem}\n"))
        else:
            exchange.respond(pages.get(path, not_found))

    return route
