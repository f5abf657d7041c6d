"""The finalizer helper: when apply and cleanup run, what is written, and conflicts.

These talk to `tests/streamserver.py` with a small stand-in for one ConfigMap that
enforces what the apiserver does (resourceVersion preconditions on merge patches, `test`
operations of JSON patches, deletion once the last finalizer goes): fault injection, to
make a concurrent writer win at the exact moment a test needs. The same flow runs
against the real apiserver in tests/e2e/test_events_finalizers_e2e.py.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from streamserver import Reply, Request, StreamServer, open_stream_server

from trio_controller import errors
from trio_controller.api.resource import CONFIGMAPS
from trio_controller.config import ClusterConfig
from trio_controller.runtime.finalizers import finalizer, is_deleting
from trio_controller.transport.client import Client

OURS = "example.com/cleanup"
PATH = "/api/v1/namespaces/shop/configmaps/web"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class FakeConfigMap:
    """One ConfigMap, shop/web, as the apiserver keeps it."""

    def __init__(self, finalizers: list[str] | None = None, deleting: bool = False) -> None:
        metadata: dict[str, Any] = {
            "name": "web",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "1",
        }
        if finalizers:
            metadata["finalizers"] = list(finalizers)
        if deleting:
            metadata["deletionTimestamp"] = "2026-01-02T03:04:05Z"
        self.stored: dict[str, Any] | None = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
        }
        self.log: list[str] = []  # requests and handler calls, in order

    def read(self) -> dict[str, Any]:
        assert self.stored is not None
        return copy.deepcopy(self.stored)

    def write(self, **metadata: Any) -> None:
        """Another writer changes the object (a new resourceVersion)."""
        assert self.stored is not None
        self.stored["metadata"].update(metadata)
        self._bump()

    def _bump(self) -> None:
        assert self.stored is not None
        meta = self.stored["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.stored = None  # the apiserver lets it go

    def __call__(self, request: Request) -> Reply:
        self.log.append(request.method)
        if request.path != PATH:
            return Reply.failure(404, "NotFound", "wrong path")
        if self.stored is None:
            return Reply.failure(404, "NotFound", 'configmaps "web" not found')
        meta = self.stored["metadata"]
        if request.method == "GET":
            return Reply.json(self.stored)
        assert request.method == "PATCH"
        body = orjson.loads(request.body)
        if request.headers["content-type"] == MERGE:
            patch_meta = body["metadata"]
            if (
                patch_meta.get("resourceVersion", meta["resourceVersion"])
                != meta["resourceVersion"]
            ):
                return Reply.failure(409, "Conflict", "the object has been modified")
            if meta.get("deletionTimestamp") and set(patch_meta["finalizers"]) - set(
                meta.get("finalizers", [])
            ):
                return Reply.failure(422, "Invalid", "no new finalizers can be added")
            meta["finalizers"] = patch_meta["finalizers"]
        elif request.headers["content-type"] == JSON_PATCH:
            finalizers = meta.setdefault("finalizers", [])
            for op in body:
                index = int(op["path"].rsplit("/", 1)[1])
                if op["op"] == "test":
                    if index >= len(finalizers) or finalizers[index] != op["value"]:
                        return Reply.failure(422, "Invalid", "the server rejected our request")
                elif op["op"] == "remove":
                    del finalizers[index]
                else:
                    return Reply.failure(422, "Invalid", f"unexpected op {op}")
        else:
            return Reply.failure(415, "UnsupportedMediaType")
        answer = copy.deepcopy(self.stored)
        self._bump()
        return Reply.json(answer if self.stored is None else self.stored)


class Handlers:
    """apply and cleanup that record their calls in the fake's log."""

    def __init__(self, fake: FakeConfigMap) -> None:
        self.fake = fake
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def apply(self, obj: dict[str, Any]) -> str:
        self.fake.log.append("apply")
        self.seen.append(("apply", obj))
        return "applied"

    async def cleanup(self, obj: dict[str, Any]) -> str:
        self.fake.log.append("cleanup")
        self.seen.append(("cleanup", obj))
        return "cleaned"


async def run(server: StreamServer, obj: dict[str, Any], handlers: Handlers, **kw: Any) -> Any:
    async with Client(ClusterConfig(server=server.url)) as client:
        return await finalizer(
            client, CONFIGMAPS, obj, OURS, handlers.apply, handlers.cleanup, **kw
        )


def patches(server: StreamServer) -> list[tuple[str, Any]]:
    return [
        (r.headers["content-type"], orjson.loads(r.body))
        for r in server.requests
        if r.method == "PATCH"
    ]


async def test_the_finalizer_is_added_before_the_first_apply() -> None:
    fake = FakeConfigMap()
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, fake.read(), handlers) == "applied"
    assert fake.log == ["PATCH", "apply"]
    assert patches(server) == [
        (MERGE, {"metadata": {"resourceVersion": "1", "finalizers": [OURS]}})
    ]
    ((_, applied),) = handlers.seen
    assert applied["metadata"]["finalizers"] == [OURS]
    assert applied["metadata"]["resourceVersion"] == "2"  # the answer to the patch
    assert fake.read()["metadata"]["finalizers"] == [OURS]


async def test_the_finalizer_is_appended_to_those_already_there() -> None:
    fake = FakeConfigMap(finalizers=["other.io/keep"])
    async with open_stream_server(handler=fake) as server:
        await run(server, fake.read(), Handlers(fake))
    assert fake.read()["metadata"]["finalizers"] == ["other.io/keep", OURS]


async def test_apply_runs_without_a_write_when_the_finalizer_is_there() -> None:
    fake = FakeConfigMap(finalizers=[OURS])
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, fake.read(), handlers) == "applied"
    assert fake.log == ["apply"]


async def test_on_deletion_cleanup_runs_then_only_our_finalizer_is_removed() -> None:
    fake = FakeConfigMap(finalizers=["other.io/keep", OURS, "z.io/last"], deleting=True)
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, fake.read(), handlers) == "cleaned"
    assert fake.log == ["cleanup", "PATCH"]
    assert patches(server) == [
        (
            JSON_PATCH,
            [
                {"op": "test", "path": "/metadata/finalizers/1", "value": OURS},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ],
        )
    ]
    assert fake.read()["metadata"]["finalizers"] == ["other.io/keep", "z.io/last"]


async def test_removing_the_last_finalizer_lets_the_object_go() -> None:
    fake = FakeConfigMap(finalizers=[OURS], deleting=True)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, fake.read(), Handlers(fake)) == "cleaned"
    assert fake.stored is None


async def test_nothing_happens_when_deleting_without_our_finalizer() -> None:
    fake = FakeConfigMap(finalizers=["other.io/keep"], deleting=True)
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, fake.read(), handlers) is None
    assert fake.log == [] and server.requests == []
    assert is_deleting(fake.read())


async def test_a_failing_cleanup_keeps_the_finalizer() -> None:
    fake = FakeConfigMap(finalizers=[OURS], deleting=True)

    async def cleanup(obj: dict[str, Any]) -> None:
        raise RuntimeError("the bucket would not go")

    async with (
        open_stream_server(handler=fake) as server,
        Client(ClusterConfig(server=server.url)) as client,
    ):
        with pytest.raises(RuntimeError, match="bucket"):
            await finalizer(client, CONFIGMAPS, fake.read(), OURS, Handlers(fake).apply, cleanup)
    assert server.requests == []
    assert fake.read()["metadata"]["finalizers"] == [OURS]


# -- conflicts ------------------------------------------------------------------------


async def test_a_conflict_when_adding_is_retried_on_the_object_read_again() -> None:
    fake = FakeConfigMap()
    stale = fake.read()
    fake.write(finalizers=["other.io/keep"])  # someone wrote since our read
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, stale, handlers) == "applied"
    assert fake.log == ["PATCH", "GET", "PATCH", "apply"]
    assert [body for _, body in patches(server)] == [
        {"metadata": {"resourceVersion": "1", "finalizers": [OURS]}},
        {"metadata": {"resourceVersion": "2", "finalizers": ["other.io/keep", OURS]}},
    ]
    assert fake.read()["metadata"]["finalizers"] == ["other.io/keep", OURS]  # not clobbered


async def test_a_conflict_that_reveals_a_deletion_runs_neither_handler() -> None:
    fake = FakeConfigMap()
    stale = fake.read()
    fake.write(deletionTimestamp="2026-01-02T03:04:05Z", finalizers=["other.io/keep"])
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, stale, handlers) is None
    assert fake.log == ["PATCH", "GET"]


async def test_removal_retries_at_the_new_index_when_the_list_moved() -> None:
    fake = FakeConfigMap(finalizers=["other.io/first", OURS], deleting=True)
    stale = fake.read()
    fake.write(finalizers=[OURS])  # the other finalizer went meanwhile
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, stale, handlers) == "cleaned"
    assert fake.log == ["cleanup", "PATCH", "GET", "PATCH"]  # cleanup ran once
    assert [body[0]["path"] for _, body in patches(server)] == [
        "/metadata/finalizers/1",
        "/metadata/finalizers/0",
    ]
    assert fake.stored is None


async def test_removal_ends_when_the_finalizer_is_already_gone() -> None:
    fake = FakeConfigMap(finalizers=["other.io/first", OURS], deleting=True)
    stale = fake.read()
    fake.write(finalizers=["other.io/first"])
    async with open_stream_server(handler=fake) as server:
        assert await run(server, stale, Handlers(fake)) == "cleaned"
    assert fake.log == ["cleanup", "PATCH", "GET"]


async def test_conflicts_that_outlast_the_retries_are_raised_for_a_requeue() -> None:
    fake = FakeConfigMap()
    handlers = Handlers(fake)

    def always_conflicting(request: Request) -> Reply:
        fake.log.append(request.method)
        if request.method == "GET":
            return Reply.json(fake.read())
        return Reply.failure(409, "Conflict", "the object has been modified")

    async with open_stream_server(handler=always_conflicting) as server:
        with pytest.raises(errors.Conflict):
            await run(server, fake.read(), handlers, conflict_retries=2)
    assert fake.log == ["PATCH", "GET", "PATCH", "GET", "PATCH"]
    assert handlers.seen == []


async def test_other_errors_are_raised_at_once() -> None:
    fake = FakeConfigMap(finalizers=[OURS], deleting=True)
    handlers = Handlers(fake)
    async with open_stream_server(Reply.failure(403, "Forbidden", "no patch")) as server:
        with pytest.raises(errors.Forbidden):
            await run(server, fake.read(), handlers)
    assert len(server.requests) == 1


async def test_an_object_gone_before_the_finalizer_is_added_runs_nothing() -> None:
    fake = FakeConfigMap()
    obj = fake.read()
    fake.stored = None
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        assert await run(server, obj, handlers) is None
    assert fake.log == ["PATCH"]


async def test_an_object_without_a_resource_version_is_read_first() -> None:
    fake = FakeConfigMap()
    handlers = Handlers(fake)
    async with open_stream_server(handler=fake) as server:
        await run(server, {"metadata": {"name": "web", "namespace": "shop"}}, handlers)
    assert fake.log == ["GET", "PATCH", "apply"]


@pytest.mark.parametrize(
    "name", ["", "cleanup!", "Example.com/cleanup", "example.com/", "a/b/c", "x" * 64]
)
async def test_an_invalid_finalizer_name_is_refused_before_any_request(name: str) -> None:
    fake = FakeConfigMap()
    async with (
        open_stream_server(handler=fake) as server,
        Client(ClusterConfig(server=server.url)) as client,
    ):
        with pytest.raises(ValueError, match="not a valid finalizer name"):
            await finalizer(
                client, CONFIGMAPS, fake.read(), name, Handlers(fake).apply, Handlers(fake).cleanup
            )
    assert server.requests == []
