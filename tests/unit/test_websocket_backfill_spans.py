"""Back-fill's bookkeeping: the time a window misses, the part a peer can fill, bodies kept verbatim."""

from __future__ import annotations

import json

import pytest

from fedmsg_websocket.backfill import chunks, intersect, merge, subtract, total, verbatim_messages


def test_merge_joins_overlapping_and_touching_spans_and_drops_empty_ones() -> None:
    assert merge([(5, 7), (1, 3), (3, 4), (6, 9), (10, 10)]) == [(1, 4), (5, 9)]


@pytest.mark.parametrize(
    ("spans", "remove", "left"),
    [
        ([(0, 10)], [], [(0, 10)]),
        ([(0, 10)], [(2, 3), (5, 7)], [(0, 2), (3, 5), (7, 10)]),
        ([(0, 10)], [(-5, 3), (8, 20)], [(3, 8)]),
        ([(0, 10)], [(0, 10)], []),
        ([(0, 4), (6, 10)], [(3, 7)], [(0, 3), (7, 10)]),
    ],
)
def test_subtract(spans: list, remove: list, left: list) -> None:
    assert subtract(spans, remove) == left


def test_what_a_peer_can_fill_is_the_gap_where_the_peer_held_time() -> None:
    gaps = [(100, 200), (300, 400)]
    peer = [(150, 320), (390, 1000)]
    assert intersect(gaps, peer) == [(150, 200), (300, 320), (390, 400)]
    assert total(subtract(gaps, peer)) == 50 + 70


def test_chunks_cover_the_span_exactly() -> None:
    assert list(chunks((0, 25), 10)) == [(0, 10), (10, 20), (20, 25)]


def test_bodies_are_cut_out_of_the_answer_as_the_peer_sent_them() -> None:
    bodies = [
        '{"msg_id": "a", "timestamp": 1764640000, "msg": {"text": "z\\u00f6e \\" ]"}}',
        '{"timestamp":1764640001.0,"msg_id":"b","topic":"t"}',
    ]
    text = '{"raw_messages": [' + ", ".join(bodies) + '], "pages": 1, "count": 2, "total": 2}'
    parsed = json.loads(text)["raw_messages"]
    assert verbatim_messages(text, parsed) == bodies


def test_an_answer_laid_out_otherwise_falls_back_to_the_parsed_bodies() -> None:
    # raw_messages named first inside a body: no verbatim text, but nothing wrong either.
    text = '{"pages": 1, "note": "\\"raw_messages\\": [1]", "raw_messages": [{"a": 1}]}'
    parsed = json.loads(text)["raw_messages"]
    assert [json.loads(body) for body in verbatim_messages(text, parsed)] == parsed
