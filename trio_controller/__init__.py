"""trio-controller: a Kubernetes controller runtime for Python on Trio, with a Rust core.

    from trio_controller import CONFIGMAPS, Client, Controller, Resource, load_config

The names here are what a controller needs: the client and its configuration, resources
and their verbs (`Api`, `Discovery`), informers (`Informer`, `SharedInformerFactory`,
`EventHandlers`), `Controller` and `Requeue`, predicates (`generation_changed`, ...),
`LeaderElector`, events and finalizers, and the error classes. The Rust building blocks
(store, decoders, the native queue and rate limiters) live in `trio_controller.native`.
"""

from trio_controller._native import __version__
from trio_controller.api import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICES,
    Api,
    Discovery,
    PatchType,
    PropagationPolicy,
    Resource,
    ResourceNotFound,
)
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.informer import Informer
from trio_controller.cache.mappers import controller_owner
from trio_controller.cache.options import InformerOptions
from trio_controller.cache.reflector import ListFailed
from trio_controller.cache.sink import EventHandlers
from trio_controller.config import ClusterConfig, load_config
from trio_controller.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    ExecPluginError,
    Forbidden,
    Gone,
    KubeconfigError,
    NotFound,
    ServerError,
    Timeout,
    TLSError,
    TooManyRequests,
    TransportError,
    TrioControllerError,
    Unauthorized,
)
from trio_controller.runtime.controller import CacheSyncTimeout, Controller, Requeue
from trio_controller.runtime.events import EventRecorder
from trio_controller.runtime.finalizers import finalizer, is_deleting
from trio_controller.runtime.leaderelection import LeaderElector, LeadershipLost
from trio_controller.runtime.predicates import (
    Predicate,
    annotations_changed,
    generation_changed,
    labels_changed,
    resource_version_changed,
)
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport.client import Client

__all__ = [
    "CONFIGMAPS",
    "CUSTOM_RESOURCE_DEFINITIONS",
    "DEPLOYMENTS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "PODS",
    "SECRETS",
    "SERVICES",
    "Api",
    "ApiError",
    "CacheSyncTimeout",
    "Client",
    "ClusterConfig",
    "Conflict",
    "ConnectionFailed",
    "Controller",
    "Discovery",
    "EventHandlers",
    "EventRecorder",
    "ExecPluginError",
    "Forbidden",
    "Gone",
    "Informer",
    "InformerOptions",
    "KubeconfigError",
    "LeaderElector",
    "LeadershipLost",
    "ListFailed",
    "NotFound",
    "PatchType",
    "Predicate",
    "PropagationPolicy",
    "Requeue",
    "Resource",
    "ResourceNotFound",
    "ServerError",
    "SharedInformerFactory",
    "TLSError",
    "Timeout",
    "TooManyRequests",
    "TransportError",
    "TrioControllerError",
    "Unauthorized",
    "WorkQueue",
    "__version__",
    "annotations_changed",
    "controller_owner",
    "finalizer",
    "generation_changed",
    "is_deleting",
    "labels_changed",
    "load_config",
    "resource_version_changed",
]
