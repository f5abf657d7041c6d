"""The watch decoder: chunking, malformed input, feed_into semantics."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import orjson
import pytest

from trio_controller import WorkQueue, _native
from trio_controller.native import DecodeError, ListAccumulator, Store, WatchDecoder


def pod(name: str, ns: str = "default", rv: str = "1", **spec: object) -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "labels": {"app": "web", "é": "ü"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
        "status": {"phase": "Running", "message": 'smile 😀 "quoted"\n'},
    }


def line(kind: str, obj: dict) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark(rv: str, end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": rv}
    if end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": meta})


GONE = line(
    "ERROR",
    {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 1 (5)",
        "reason": "Expired",
        "code": 410,
    },
)

STREAM = b"".join(
    [
        line("ADDED", pod("a", rv="2")),
        line("ADDED", pod("b", ns="other", rv="3")),
        bookmark("4"),
        line("MODIFIED", pod("a", rv="5")),
        line("DELETED", pod("b", ns="other", rv="6")),
        GONE,
    ]
)


def summary(events: list[_native.WatchEvent]) -> list[tuple]:
    return [
        (
            e.type,
            e.key,
            e.namespace,
            e.name,
            e.uid,
            e.resource_version,
            e.raw,
            e.code,
            e.reason,
            e.message,
            e.initial_events_end,
        )
        for e in events
    ]


def test_a_stream_decodes_into_typed_events() -> None:
    events = WatchDecoder().feed(STREAM)
    assert [e.type for e in events] == [
        "ADDED",
        "ADDED",
        "BOOKMARK",
        "MODIFIED",
        "DELETED",
        "ERROR",
    ]
    a = events[0]
    assert (a.key, a.namespace, a.name, a.uid, a.resource_version) == (
        "default/a",
        "default",
        "a",
        "uid-a",
        "2",
    )
    assert a.object() == pod("a", rv="2")
    assert a.raw == orjson.dumps(pod("a", rv="2"))
    assert events[2].key is None and events[2].resource_version == "4"
    gone = events[5]
    assert (gone.code, gone.reason, gone.message) == (
        410,
        "Expired",
        "too old resource version: 1 (5)",
    )


def test_splitting_the_stream_at_every_byte_gives_the_same_events() -> None:
    whole = summary(WatchDecoder().feed(STREAM))
    for cut in range(len(STREAM) + 1):
        decoder = WatchDecoder()
        events = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert summary(events) == whole, cut
        assert decoder.pending_bytes == 0


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    decoder = WatchDecoder()
    events = []
    for i in range(len(STREAM)):
        events += decoder.feed(STREAM[i : i + 1])
    assert summary(events) == summary(WatchDecoder().feed(STREAM))


def test_a_partial_line_waits_for_its_end() -> None:
    decoder = WatchDecoder()
    first = line("ADDED", pod("a"))
    assert decoder.feed(first[:-10]) == []
    assert decoder.pending_bytes == len(first) - 10
    assert len(decoder.feed(first[-10:])) == 1


def test_a_malformed_line_names_its_position_and_keeps_the_good_events() -> None:
    good = line("ADDED", pod("a"))
    bad = b'{"type":"ADDED","object":{"metadata":{"name":tru}}}\n'
    after = line("ADDED", pod("b"))
    decoder = WatchDecoder()
    with pytest.raises(DecodeError) as info:
        decoder.feed(good + bad + after)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == len(good)
    assert err.line == 2
    assert [e.key for e in err.events] == ["default/a", "default/b"]
    # The decoder stays usable.
    assert [e.key for e in decoder.feed(line("ADDED", pod("c")))] == ["default/c"]


def test_truncated_and_non_utf8_lines_are_decode_errors() -> None:
    good = line("ADDED", pod("a"))
    bad_inputs = [
        good[: len(good) // 2] + b"\n",
        b"\xff\xfe" + good,
        good[:-3].replace(b'"a"', b'"\xc3\x28"') + b"}}\n",
        b"not json\n",
        b'{"type":"ADDED"}\n',
        b'{"type":"WHAT","object":{"metadata":{"name":"a"}}}\n',
    ]
    for bad in bad_inputs:
        with pytest.raises(DecodeError):
            WatchDecoder().feed(bad)


def test_reset_drops_a_partial_line() -> None:
    decoder = WatchDecoder()
    decoder.feed(b'{"type":"ADD')
    decoder.reset()
    assert decoder.pending_bytes == 0
    assert len(decoder.feed(line("ADDED", pod("a")))) == 1


def test_a_huge_object_decodes() -> None:
    big = pod("big", blob="x" * 5_000_000, items=list(range(100_000)))
    data = line("ADDED", big)
    decoder = WatchDecoder()
    events = []
    for i in range(0, len(data), 65536):
        events += decoder.feed(data[i : i + 65536])
    assert len(events) == 1
    assert events[0].object() == big


def test_feed_into_applies_events_and_enqueues_keys() -> None:
    store = Store()
    queue = WorkQueue()
    result = WatchDecoder().feed_into(STREAM, store, queue.native, 0.0)
    assert result.applied == 4
    assert result.bookmarks == 1
    assert result.resource_version == "6"
    assert result.error is not None and result.error.code == 410
    assert not result.initial_events_end
    assert store.resource_version == "6"
    assert store.list_keys() == ["default/a"]
    assert store.object_resource_version("default/a") == "5"
    assert b"managedFields" not in (store.get_raw("default/a") or b"")
    keys = queue.native.get_many_nowait(10, 0.0)
    assert keys == ["default/a", "other/b"]


def test_feed_into_drops_the_rest_of_the_chunk_after_an_error() -> None:
    store = Store()
    decoder = WatchDecoder()
    result = decoder.feed_into(GONE + line("ADDED", pod("a"))[:-5], store, None, 0.0)
    assert result.error is not None
    assert decoder.pending_bytes == 0
    assert len(store) == 0


def test_a_bookmark_only_moves_the_resource_version() -> None:
    store = Store()
    result = WatchDecoder().feed_into(bookmark("42"), store, None, 0.0)
    assert (result.applied, result.bookmarks, result.resource_version) == (0, 1, "42")
    assert store.resource_version == "42"
    assert len(store) == 0


def test_feed_into_applies_nothing_after_a_malformed_line() -> None:
    store = Store()
    decoder = WatchDecoder()
    good = line("ADDED", pod("a", rv="3"))
    with pytest.raises(DecodeError) as info:
        decoder.feed_into(good + b"{oops}\n" + line("ADDED", pod("b")) + b'{"par', store, None, 0.0)
    assert info.value.position == len(good)
    assert store.list_keys() == ["default/a"]
    assert store.resource_version == "3"
    assert decoder.pending_bytes == 0


def test_streaming_list_collects_initial_events_until_the_end_bookmark() -> None:
    store = Store()
    store.upsert(orjson.dumps(pod("stale")))
    queue = WorkQueue()
    acc = ListAccumulator()
    decoder = WatchDecoder()
    chunk = (
        line("ADDED", pod("a", rv="2"))
        + line("ADDED", pod("b", rv="3"))
        + bookmark("10", end=True)
        + line("MODIFIED", pod("a", rv="11"))
    )
    result = decoder.feed_into(chunk, store, queue.native, 0.0, acc)
    assert result.initial_events_end
    assert (result.applied, result.bookmarks, result.resource_version) == (2, 1, "10")
    assert len(acc) == 2
    assert store.list_keys() == ["default/stale"]
    assert store.resource_version is None
    assert len(queue) == 0
    assert decoder.pending_bytes > 0
    replaced = store.replace(acc, result.resource_version)
    assert replaced.deleted == ["default/stale"]
    result = decoder.feed_into(b"", store, queue.native, 0.0)
    assert result.applied == 1
    assert store.object_resource_version("default/a") == "11"
    assert store.resource_version == "11"


def test_a_stripping_accumulator_strips_initial_events() -> None:
    store = Store(strip_managed_fields=False)
    acc = ListAccumulator(strip_managed_fields=True)
    decoder = WatchDecoder()
    chunk = line("ADDED", pod("a", rv="2")) + bookmark("10", end=True)
    result = decoder.feed_into(chunk, store, None, 0.0, acc)
    assert result.initial_events_end and len(acc) == 1
    store.replace(acc, result.resource_version)
    obj = store.get("default/a")
    assert obj is not None and "managedFields" not in obj["metadata"]
    assert obj["metadata"]["labels"] == {"app": "web", "é": "ü"}
    assert obj["status"] == pod("a")["status"]


def test_positions_count_bytes_across_chunks_until_reset() -> None:
    good = line("ADDED", pod("a"))
    decoder = WatchDecoder()
    decoder.feed(good + good[:7])
    with pytest.raises(DecodeError) as info:
        decoder.feed(good[7:] + b"{bad}\n")
    assert (info.value.position, info.value.line) == (2 * len(good), 3)
    assert [e.key for e in info.value.events] == ["default/a"]
    decoder.reset()
    with pytest.raises(DecodeError) as info:
        decoder.feed(b"\n{bad}\n")
    assert (info.value.position, info.value.line) == (1, 2)


def test_crlf_line_endings_and_blank_lines_are_accepted() -> None:
    data = line("ADDED", pod("a")).replace(b"\n", b"\r\n") + b"\r\n\n" + line("ADDED", pod("b"))
    assert [e.key for e in WatchDecoder().feed(data)] == ["default/a", "default/b"]


def _stream_like_the_reflector(chunks: list[bytes]) -> tuple[list[str], list[str], str | None]:
    """Feed chunks as the reflector does: a streaming list, then watch events."""
    store = Store()
    store.upsert(orjson.dumps(pod("stale")))
    queue = WorkQueue()
    decoder = WatchDecoder()
    initial: ListAccumulator | None = ListAccumulator()
    for chunk in chunks:
        data = chunk
        while True:
            result = decoder.feed_into(data, store, queue.native, 0.0, initial)
            if result.initial_events_end and initial is not None:
                store.replace(initial, result.resource_version)
                initial = None
                data = b""
                continue
            break
    keys = queue.native.get_many_nowait(100, 0.0)
    return sorted(store.list_keys()), keys, store.resource_version


def test_a_streaming_list_split_anywhere_ends_in_the_same_state() -> None:
    stream = (
        line("ADDED", pod("a", rv="2"))
        + line("ADDED", pod("b", rv="3"))
        + bookmark("10", end=True)
        + line("ADDED", pod("c", rv="11"))
        + line("DELETED", pod("a", rv="12"))
        + bookmark("13")
    )
    whole = _stream_like_the_reflector([stream])
    assert whole == (["default/b", "default/c"], ["default/c", "default/a"], "13")
    for cut in range(len(stream) + 1):
        assert _stream_like_the_reflector([stream[:cut], stream[cut:]]) == whole, cut
    step = 97
    pieces = [stream[i : i + step] for i in range(0, len(stream), step)]
    assert _stream_like_the_reflector(pieces) == whole


def _stub_docstrings() -> list[tuple[str, object, str]]:
    """(name, runtime object, stub docstring) for every class, method, property and
    function the stub documents (dunders and setters excepted)."""
    stub = ast.parse(Path(_native.__file__).with_name("_native.pyi").read_text())
    out: list[tuple[str, object, str]] = []
    for node in stub.body:
        if isinstance(node, ast.ClassDef):
            cls = getattr(_native, node.name)
            out.append((node.name, cls, ast.get_docstring(node) or ""))
            for item in node.body:
                setter = isinstance(item, ast.FunctionDef) and any(
                    isinstance(d, ast.Attribute) and d.attr == "setter" for d in item.decorator_list
                )
                if (
                    isinstance(item, ast.FunctionDef)
                    and not item.name.startswith("__")
                    and not setter
                ):
                    name = f"{node.name}.{item.name}"
                    doc = ast.get_docstring(item) or ""
                    out.append((name, getattr(cls, item.name), doc))
        elif isinstance(node, ast.FunctionDef):
            out.append((node.name, getattr(_native, node.name), ast.get_docstring(node) or ""))
    return out


def test_every_native_class_method_and_function_shows_the_stub_docstring_in_help() -> None:
    documented = _stub_docstrings()
    assert len(documented) > 100
    for name, obj, doc in documented:
        assert doc, f"{name} has no docstring in the stub"
        runtime = inspect.cleandoc(obj.__doc__ or "")
        assert runtime == doc, name
