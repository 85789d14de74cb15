"""Reading a whole datagrepper-style /raw answer, page after page (unit tests and Molecule verifiers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def every_page(fetch: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every message of a /raw query: fetch(page) returns the parsed answer of that page (1-based)."""
    bodies: list[dict[str, Any]] = []
    page, pages = 1, 1
    while page <= pages:
        answer = fetch(page)
        pages = answer["pages"]
        bodies += answer["raw_messages"]
        page += 1
    return bodies
