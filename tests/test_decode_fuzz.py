"""A short hypothesis fuzz of the decoder: it never crashes, and agrees with orjson."""

from __future__ import annotations

import contextlib

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_controller.native import DecodeError, ListAccumulator, Store, WatchDecoder

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

objects = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.text(min_size=1, max_size=20)},
            optional={
                "namespace": st.text(max_size=10),
                "resourceVersion": st.text(max_size=10),
                "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
                "managedFields": st.lists(json_values, max_size=2),
            },
        )
    },
    optional={"spec": json_values, "status": json_values},
)

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(objects, st.sampled_from(["ADDED", "MODIFIED", "DELETED"]))
def test_well_formed_events_decode_like_orjson(obj: dict, kind: str) -> None:
    line = orjson.dumps({"type": kind, "object": obj}) + b"\n"
    (event,) = WatchDecoder().feed(line)
    assert event.type == kind
    assert event.object() == orjson.loads(orjson.dumps(obj))
    meta = obj["metadata"]
    assert event.name == meta["name"]
    assert event.namespace == meta.get("namespace")
    store = Store()
    key = store.upsert(event.raw)
    assert key == event.key
    stored = store.get(key)
    assert stored is not None
    expected = orjson.loads(orjson.dumps(obj))
    expected["metadata"].pop("managedFields", None)
    assert stored == expected
    assert store.labels(key) == meta.get("labels", {})


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    decoder = WatchDecoder()
    try:
        decoder.feed(data + b"\n")
    except DecodeError as e:
        assert e.line >= 1
    # Still usable afterwards.
    ok = b'{"type":"ADDED","object":{"metadata":{"name":"x"}}}\n'
    assert [e.key for e in decoder.feed(ok)] == ["x"]
    with contextlib.suppress(DecodeError):
        ListAccumulator().feed_page(data)
    with contextlib.suppress(DecodeError):
        Store().upsert(data)


@FAST
@given(objects, st.integers(0, 10_000), st.binary(min_size=1, max_size=3))
def test_corrupting_a_line_is_a_decode_error_or_matches_orjson(
    obj: dict, where: int, junk: bytes
) -> None:
    line = orjson.dumps({"type": "ADDED", "object": obj})
    where %= len(line) + 1
    corrupted = (line[:where] + junk + line[where:]).replace(b"\n", b" ")
    try:
        orjson_ok = orjson.loads(corrupted)
    except orjson.JSONDecodeError:
        orjson_ok = None
    try:
        events = WatchDecoder().feed(corrupted + b"\n")
    except DecodeError:
        events = None
    if orjson_ok is None:
        assert events is None, corrupted
    elif events is not None:
        assert events[0].object() == orjson_ok["object"]
