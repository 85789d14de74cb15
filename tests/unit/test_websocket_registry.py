"""The client registry on its own: prefix matching, each client once, clean removal."""

from __future__ import annotations

from fedmsg_websocket.registry import Registry


def test_matching_gives_each_client_once_whatever_overlaps() -> None:
    registry: Registry[str] = Registry()
    for client, prefixes in {"all": [""], "git": ["org.git", "org."], "other": ["com."], "none": []}.items():
        registry.add(client)
        for prefix in prefixes:
            registry.subscribe(client, prefix)
    assert sorted(registry.matching("org.git.receive")) == ["all", "git"]
    assert sorted(registry.matching("org.bodhi")) == ["all", "git"]
    assert sorted(registry.matching("com.x")) == ["all", "other"]
    assert sorted(registry.matching("c")) == ["all"]
    assert len(registry) == 4


def test_removal_forgets_the_client_and_its_prefixes() -> None:
    registry: Registry[str] = Registry()
    registry.add("a")
    registry.subscribe("a", "org.")
    registry.add("b")
    registry.subscribe("b", "org.")
    registry.remove("a")
    assert list(registry.matching("org.x")) == ["b"]
    registry.remove("b")
    registry.remove("b")  # a client closed as too slow is removed again when its handler ends
    assert not registry.matching("org.x")
    assert "b" not in registry
    # A removed client's late subscription is ignored: nothing is sent to it any more.
    registry.subscribe("b", "")
    assert not registry.matching("org.x")
    assert len(registry) == 0
