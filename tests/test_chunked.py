"""HTTP/1.1 framing in Rust: response heads, chunked and Content-Length bodies fed to the
watch decoder (``reset(chunked=True)`` + ``feed_into``) and to ``BodyDecoder``.

The streams here are framed the way the real kube-apiserver frames a watch: one HTTP
chunk per event (measured in DESIGN.md), a terminating zero-size chunk, optional trailers.
"""

from __future__ import annotations

import contextlib
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_controller import WorkQueue, _native
from trio_controller.native import DecodeError, ListAccumulator, Store, WatchDecoder

BodyDecoder = _native.BodyDecoder
parse_response_head = _native.parse_response_head


def pod(name: str, rv: str, ns: str = "default") -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "labels": {"app": "web"},
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "message": "x" * 3000},
    }


def line(kind: str, obj: dict) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark(rv: str, end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": rv}
    if end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": meta})


GONE = line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"})


def frame(lines: list[bytes], *, trailers: bytes = b"", ext: bool = False) -> bytes:
    """One chunk per line, as the apiserver sends a watch."""
    out = b""
    for i, payload in enumerate(lines):
        extension = b";name=value" if ext and i % 2 else b""
        out += b"%x%s\r\n%s\r\n" % (len(payload), extension, payload)
    return out + b"0\r\n" + trailers + b"\r\n"


LINES = [
    line("ADDED", pod("a", "2")),
    line("ADDED", pod("b", "3")),
    bookmark("10", end=True),
    line("ADDED", pod("c", "11")),
    line("MODIFIED", pod("b", "12")),
    line("DELETED", pod("a", "13")),
    bookmark("14"),
]
STREAM = frame(LINES, trailers=b"X-Checksum: 1\r\n", ext=True)


def reflect(reads: list[bytes], *, chunked: bool = True) -> tuple:
    """Feeds reads like the reflector does a streaming list: initial events into an
    accumulator, replace at the end bookmark, then `feed_into(b"")` for the rest."""
    decoder = WatchDecoder()
    decoder.reset(chunked=chunked)
    store = Store()
    queue = WorkQueue()
    initial: ListAccumulator | None = ListAccumulator(strip_managed_fields=True)
    applied = bookmarks = 0
    for read in reads:
        data = read
        while True:
            result = decoder.feed_into(data, store, queue.native, 0.0, initial)
            applied += result.applied
            bookmarks += result.bookmarks
            if result.initial_events_end and initial is not None:
                store.replace(initial, result.resource_version)
                initial = None
                data = b""
                continue
            break
    keys = queue.native.get_many_nowait(100, 0.0)
    raw = {k: store.get_raw(k) for k in sorted(store.list_keys())}
    return (
        raw,
        keys,
        store.resource_version,
        applied,
        bookmarks,
        decoder.body_done,
        decoder.pending_bytes,
        decoder.counts(),
    )


def test_a_chunked_stream_applies_like_the_same_lines_unframed() -> None:
    whole = reflect([STREAM])
    raw, keys, rv, applied, bookmarks, done, pending, counts = whole
    assert list(raw) == ["default/b", "default/c"]
    assert keys == ["default/c", "default/b", "default/a"]
    assert (rv, applied, bookmarks, done, pending) == ("14", 5, 2, True, 0)
    assert counts == {"ADDED": 3, "MODIFIED": 1, "DELETED": 1, "BOOKMARK": 2, "ERROR": 0}
    unframed = reflect([b"".join(LINES)], chunked=False)
    assert unframed[:5] == whole[:5]
    assert unframed[5] is False  # a stream read until EOF is never done


def test_splitting_a_chunked_stream_at_every_byte_gives_the_same_state() -> None:
    whole = reflect([STREAM])
    for cut in range(len(STREAM) + 1):
        assert reflect([STREAM[:cut], STREAM[cut:]]) == whole, cut


def test_random_three_way_splits_and_tiny_reads_give_the_same_state() -> None:
    whole = reflect([STREAM])
    rng = random.Random(7)
    for _ in range(200):
        a, b = sorted(rng.randrange(len(STREAM) + 1) for _ in range(2))
        assert reflect([STREAM[:a], STREAM[a:b], STREAM[b:]]) == whole, (a, b)
    assert reflect([STREAM[i : i + 3] for i in range(0, len(STREAM), 3)]) == whole


def test_the_end_bookmark_keeps_the_other_chunks_of_the_same_read() -> None:
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    store = Store()
    acc = ListAccumulator()
    result = decoder.feed_into(STREAM, store, None, 0.0, acc)
    assert result.initial_events_end
    assert (result.applied, len(acc), len(store)) == (2, 2, 0)
    assert not result.body_done
    assert decoder.pending_bytes > 0
    store.replace(acc, result.resource_version)
    result = decoder.feed_into(b"", store, None, 0.0)
    assert (result.applied, result.bookmarks, result.body_done) == (3, 1, True)
    assert sorted(store.list_keys()) == ["default/b", "default/c"]


def test_feed_decodes_chunked_events_and_ignores_bytes_after_the_body() -> None:
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    events = decoder.feed(STREAM + b"HTTP/1.1 200 OK\r\n")
    assert [e.type for e in events] == [
        "ADDED",
        "ADDED",
        "BOOKMARK",
        "ADDED",
        "MODIFIED",
        "DELETED",
        "BOOKMARK",
    ]
    assert decoder.body_done
    assert decoder.feed(b"more") == []


def test_an_error_event_drops_the_rest_and_the_body_end_is_still_found() -> None:
    stream = frame([line("ADDED", pod("a", "2")), GONE, line("ADDED", pod("b", "3"))])
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    store = Store()
    result = decoder.feed_into(stream, store, None, 0.0)
    assert result.error is not None and result.error.code == 410
    assert (result.applied, result.body_done, store.list_keys()) == (1, True, ["default/a"])
    assert decoder.counts()["ERROR"] == 1


def test_a_body_that_ends_mid_chunk_is_not_done() -> None:
    for cut in (1, 3, len(STREAM) // 2, len(STREAM) - 3, len(STREAM) - 1):
        decoder = WatchDecoder()
        decoder.reset(chunked=True)
        decoder.feed_into(STREAM[:cut], Store(), None, 0.0, ListAccumulator())
        assert not decoder.body_done, cut


def test_a_content_length_body_is_exactly_that_long() -> None:
    body = line("ADDED", pod("a", "2")) + line("ADDED", pod("b", "3"))
    decoder = WatchDecoder()
    decoder.reset(content_length=len(body))
    store = Store()
    result = decoder.feed_into(body[:100], store, None, 0.0)
    assert (result.applied, result.body_done) == (0, False)
    result = decoder.feed_into(body[100:] + b"garbage", store, None, 0.0)
    assert (result.applied, result.body_done) == (2, True)
    decoder.reset(content_length=0)
    assert decoder.body_done
    with pytest.raises(ValueError):
        decoder.reset(chunked=True, content_length=3)


@pytest.mark.parametrize(
    ("body", "position", "what"),
    [
        (b"zz\r\n", 0, "not hexadecimal"),
        (b"\r\n", 0, "empty chunk size"),
        (b"-5\r\nhello\r\n", 0, "negative"),
        (b"1234567890abcdef\r\n", 0, "more than 15 hex digits"),
        (b"5\r\nhello\r\n5;" + b"e" * 5000, 10, "longer than 4096"),
        (b"5\r\nhelloXX", 8, "not followed by CRLF"),
        (b"5\r\nhello\r\n0\r\nno colon here\r\n\r\n", 13, "bad trailer line"),
    ],
)
def test_malformed_framing_is_a_decode_error_at_its_body_offset(
    body: bytes, position: int, what: str
) -> None:
    for reads in ([body], [body[i : i + 1] for i in range(len(body))]):
        decoder = WatchDecoder()
        decoder.reset(chunked=True)
        with pytest.raises(DecodeError) as info:
            for read in reads:
                decoder.feed_into(read, Store(), None, 0.0)
        assert str(info.value).startswith("chunked encoding:")
        assert what in str(info.value)
        assert info.value.position == position
        # Broken until reset; then usable again.
        with pytest.raises(DecodeError):
            decoder.feed_into(b"", Store(), None, 0.0)
        decoder.reset(chunked=True)
        store = Store()
        assert decoder.feed_into(frame(LINES[:1]), store, None, 0.0).applied == 1


def test_events_before_a_framing_error_are_applied_or_returned() -> None:
    broken = frame(LINES[:2])[:-5] + b"xyz\r\n"
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    store = Store()
    with pytest.raises(DecodeError, match=r"^chunked encoding:"):
        decoder.feed_into(broken, store, None, 0.0)
    assert sorted(store.list_keys()) == ["default/a", "default/b"]
    decoder.reset(chunked=True)
    with pytest.raises(DecodeError) as info:
        decoder.feed(broken)
    assert [e.key for e in info.value.events] == ["default/a", "default/b"]


def test_counts_add_up_over_feed_and_feed_into_and_survive_reset() -> None:
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    decoder.feed(frame(LINES))
    decoder.reset()
    decoder.feed_into(GONE, Store(), None, 0.0)
    assert decoder.counts() == {
        "ADDED": 3,
        "MODIFIED": 1,
        "DELETED": 1,
        "BOOKMARK": 2,
        "ERROR": 1,
    }


def test_a_body_decoder_gives_the_payload_of_an_error_status() -> None:
    status = b'{"kind":"Status","code":401,"reason":"Unauthorized"}'
    body = frame([status[:10], status[10:]], trailers=b"X-T: v\r\n")
    decoder = BodyDecoder(True, None)
    got = b"".join(decoder.feed(body[i : i + 4]) for i in range(0, len(body), 4))
    assert (got, decoder.done) == (status, True)
    decoder = BodyDecoder(False, len(status))
    assert decoder.feed(status + b"extra") == status and decoder.done
    decoder = BodyDecoder(False, None)
    assert decoder.feed(b"until eof") == b"until eof" and not decoder.done
    decoder = BodyDecoder(True, None)
    with pytest.raises(DecodeError, match=r"^chunked encoding: chunk size is not hex"):
        decoder.feed(b"nope\r\n")
    with pytest.raises(ValueError):
        BodyDecoder(True, 5)


# --- response heads ---------------------------------------------------------------------

WATCH_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Audit-Id: 1f2e\r\n"
    b"Cache-Control: no-cache, private\r\n"
    b"Content-Type: application/json\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)


def test_a_watch_head_is_chunked_and_says_where_the_body_starts() -> None:
    head = parse_response_head(WATCH_HEAD + STREAM[:10])
    assert head is not None
    assert (head.status, head.reason, head.length) == (200, "OK", len(WATCH_HEAD))
    assert (head.chunked, head.content_length) == (True, None)
    assert head.headers[0] == ("audit-id", "1f2e")
    assert [name for name, _ in head.headers] == [
        "audit-id",
        "cache-control",
        "content-type",
        "date",
        "transfer-encoding",
    ]
    assert head.header("Content-Type") == "application/json"
    assert head.header("retry-after") is None


@pytest.mark.parametrize(
    ("status", "reason", "extra"),
    [
        (401, "Unauthorized", b""),
        (410, "Gone", b""),
        (429, "Too Many Requests", b"Retry-After: 1\r\n"),
    ],
)
def test_error_heads_carry_status_and_content_length(
    status: int, reason: str, extra: bytes
) -> None:
    body = b'{"kind":"Status","code":%d}' % status
    raw = b"HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\n\r\n" % (
        status,
        reason.encode(),
        extra,
        len(body),
    )
    head = parse_response_head(raw + body)
    assert head is not None
    assert (head.status, head.reason) == (status, reason)
    assert (head.chunked, head.content_length) == (False, len(body))
    assert (raw + body)[head.length :] == body
    if status == 429:
        assert head.header("RETRY-AFTER") == "1"


def test_an_incomplete_head_is_none_at_every_length() -> None:
    for n in range(len(WATCH_HEAD)):
        assert parse_response_head(WATCH_HEAD[:n]) is None, n


def test_a_proxy_connect_reply_has_no_framing() -> None:
    head = parse_response_head(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03")
    assert head is not None
    assert (head.status, head.chunked, head.content_length, head.length) == (200, False, None, 39)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo Colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000,
    ],
)
def test_malformed_heads_are_decode_errors(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_response_head(raw)


# --- fuzz -------------------------------------------------------------------------------

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

framing_bytes = st.lists(
    st.sampled_from([b"0", b"5", b"a", b"F", b";", b"=", b" ", b":", b"\r\n", b"\r", b"\n", b"-"])
    | st.binary(max_size=6),
    max_size=60,
).map(b"".join)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def outcome(reads: list[bytes]) -> tuple:
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    store = Store()
    error = None
    try:
        for read in reads:
            decoder.feed_into(read, store, None, 0.0)
    except DecodeError as e:
        assert str(e).startswith(("chunked encoding:", "line "))
        error = (str(e), e.position)
    # Usable after reset.
    decoder.reset(chunked=True)
    assert decoder.feed_into(frame(LINES[:1]), Store(), None, 0.0).body_done
    return sorted(store.list_keys()), store.resource_version, error


@FAST
@given(
    st.sampled_from([b"", frame(LINES[:2])[:-5]]), framing_bytes, st.lists(st.integers(0, 10**6))
)
def test_random_framing_split_anywhere_raises_only_decode_error_and_agrees(
    prefix: bytes, noise: bytes, cuts: list[int]
) -> None:
    data = prefix + noise
    assert outcome(splits(data, cuts)) == outcome([data])


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 10**6), max_size=5))
def test_arbitrary_bytes_never_crash_the_body_decoder_or_head_parser(
    data: bytes, cuts: list[int]
) -> None:
    for chunked, length in ((True, None), (False, 7)):
        decoder = BodyDecoder(chunked, length)
        with contextlib.suppress(DecodeError):
            for read in splits(data, cuts):
                decoder.feed(read)
    with contextlib.suppress(DecodeError):
        parse_response_head(data)
    with contextlib.suppress(DecodeError):
        parse_response_head(b"HTTP/1.1 200 OK\r\n" + data)
