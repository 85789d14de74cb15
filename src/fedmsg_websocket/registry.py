"""Which clients want which topics: prefix subscriptions, looked up once per bus message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable
from typing import Generic, TypeVar

Client = TypeVar("Client", bound=Hashable)


class Registry(Generic[Client]):
    """Clients and their topic prefixes; matching() gives each matching client once.

    Lookup costs one dict probe per distinct prefix length in use (not per client, not per prefix):
    the bus has a handful of popular prefixes, and many clients share each.
    """

    def __init__(self) -> None:
        self._prefixes: dict[Client, set[str]] = {}
        self._clients: dict[str, set[Client]] = {}
        self._lengths: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self._prefixes)

    def __contains__(self, client: object) -> bool:
        return client in self._prefixes

    def add(self, client: Client) -> None:
        self._prefixes.setdefault(client, set())

    def subscriptions(self, client: Client) -> int:
        return len(self._prefixes.get(client, ()))

    def subscribe(self, client: Client, prefix: str) -> None:
        prefixes = self._prefixes.get(client)
        if prefixes is None or prefix in prefixes:
            return
        prefixes.add(prefix)
        self._clients.setdefault(prefix, set()).add(client)
        self._lengths[len(prefix)] += 1

    def remove(self, client: Client) -> None:
        for prefix in self._prefixes.pop(client, ()):
            clients = self._clients[prefix]
            clients.discard(client)
            if not clients:
                del self._clients[prefix]
            self._lengths[len(prefix)] -= 1
            if not self._lengths[len(prefix)]:
                del self._lengths[len(prefix)]

    def matching(self, topic: str) -> Collection[Client]:
        """Every client with a prefix of `topic`, once even if several of its prefixes match.

        The result may be the registry's own set: use it before the next add/remove.
        """
        found: list[set[Client]] = []
        for length in self._lengths:
            if length <= len(topic):
                clients = self._clients.get(topic[:length])
                if clients:
                    found.append(clients)
        if len(found) == 1:
            return found[0]
        # Overlapping prefixes (moksha delivered such a message once per matching subscription).
        return set().union(*found)
