"""The sharder's assignment webhook: a new object gets its shard label in its create request.

    SharderWebhook(sharder, is_leader).install(manager.webhooks, manager.factory)

One mutating endpoint per ControllerRing, `/webhooks/sharder/controllerring/<ring>` (the
original sharder's path), registered on the Manager's webhook server as the rings appear
(a ControllerRing informer on every replica). For a CREATE of an object of one of the
ring's resources without `shard.alpha.sharding.timebertt.dev/<ring>`, the answer is a
JSON patch adding that label with the shard the hash ring names (for a controlled
object: its controller owner's shard), the shard the metadata watch would pick.

Everything else is allowed unchanged: another operation, a subresource, an object
labelled already, a ring or resource not known (yet), a ring settling or without a
ready shard, an object without a name yet (`generateName`), and every request a
follower gets (only the leader knows the shards). The metadata watch still assigns
those, so a missed or failed webhook (`failurePolicy: Ignore`) never leaves an object
unowned; docs/sharding.md has the MutatingWebhookConfiguration to install.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from trio_controller.cache.sink import EventHandlers
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.runtime.sharding import shard_label

if TYPE_CHECKING:
    from trio_controller.cache.factory import SharedInformerFactory
    from trio_controller.runtime.webhooks import AdmissionRequest, WebhookServer

__all__ = ["PATH_PREFIX", "ShardFinder", "SharderWebhook", "webhook_path"]

log = logging.getLogger(__name__)

PATH_PREFIX = "/webhooks/sharder/controllerring/"


def webhook_path(ring: str) -> str:
    """The path of `ring`'s assignment webhook (the original sharder's)."""
    return PATH_PREFIX + ring


class ShardFinder(Protocol):
    """What the webhook asks the sharder (`Sharder.shard_for`)."""

    def shard_for(
        self, ring: str, group: str, resource: str, meta: dict[str, Any]
    ) -> str | None: ...


class SharderWebhook:
    """The assignment webhooks of every ring (see the module docstring).

    `is_leader()` says whether this replica leads; `counted(ring, group, resource)`, if
    given, is called for each assignment answered (not for a dry run)."""

    def __init__(
        self,
        sharder: ShardFinder,
        is_leader: Callable[[], bool],
        counted: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.sharder = sharder
        self.is_leader = is_leader
        self.counted = counted
        #: Objects given a shard label by the webhook since start.
        self.assigned = 0

    def install(self, server: WebhookServer, factory: SharedInformerFactory) -> None:
        """Serve each ring's webhook on `server` as `factory`'s ControllerRing informer
        finds the ring (on every replica: a follower answers too, unchanged)."""

        def found(ring: Mapping[str, Any]) -> None:
            name = (ring.get("metadata") or {}).get("name")
            if name:
                self.serve(server, str(name))

        informer = factory.informer(CONTROLLER_RINGS)
        informer.add_handlers(EventHandlers(on_add=found, on_update=lambda _, new: found(new)))

    def serve(self, server: WebhookServer, ring: str) -> str:
        """Serve `ring`'s webhook on `server` (once); returns its path."""
        path = webhook_path(ring)
        if path not in server.paths:

            def admit(request: AdmissionRequest) -> dict[str, Any] | None:
                return self.admit(ring, request)

            server.add_admission(path, admit, mutating=True)
            log.info("Serving ControllerRing %s's assignment webhook on %s", ring, path)
        return path

    def admit(self, ring: str, request: AdmissionRequest) -> dict[str, Any] | None:
        """The object with its shard label, or None (allowed unchanged)."""
        if request.operation != "CREATE" or request.sub_resource or not self.is_leader():
            return None
        obj = request.object
        if obj is None:
            return None
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return None
        label = shard_label(ring)
        labels = meta.get("labels") or {}
        if labels.get(label):
            return None
        # The namespace of a create may be only in the request (the URL's).
        keyed = meta if meta.get("namespace") else {**meta, "namespace": request.namespace}
        group = str(request.resource.get("group") or "")
        resource = str(request.resource.get("resource") or "")
        shard = self.sharder.shard_for(ring, group, resource, keyed)
        if not shard:
            return None
        meta["labels"] = {**labels, label: shard}
        if not request.dry_run:
            self.assigned += 1
            if self.counted is not None:
                self.counted(ring, group, resource)
        log.debug(
            "Assigned new %s %s/%s to shard %s",
            resource,
            keyed.get("namespace") or "",
            meta.get("name") or meta.get("generateName") or "",
            shard,
        )
        return obj
