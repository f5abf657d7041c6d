"""trio-controller: a Kubernetes controller runtime for Python on Trio, with a Rust core.

    from trio_controller import CONFIGMAPS, Client, Controller, Resource, load_config

The names here are what a controller needs: the client and its configuration, resources
and their verbs (`Api`, `Discovery`), informers (`Informer`, `SharedInformerFactory`,
`EventHandlers`, `InformerOptions`), `Controller`, `ControllerOptions` and `Requeue`, predicates
(`generation_changed`, ...), `LeaderElector`, events and finalizers, and the error
classes. The Rust building blocks (store, decoders, the native queue and rate limiters)
live in `trio_controller.native`.

`Manager` is the runner: flags, signals, logging, leader election, metrics and probes
around any number of controllers (see docs/guide.md). Every built-in kind of the pinned
Kubernetes version has a `Resource` constant, generated from its discovery into
`trio_controller.api.builtin` and importable from here too
(`from trio_controller import RESOURCE_QUOTAS, STATEFUL_SETS`).

Names are imported when first used (PEP 562), so `import trio_controller` and a
program's `--version` load only what they need.
"""

from typing import TYPE_CHECKING, Any

from trio_controller._native import __version__

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
    "AlreadyOwned",
    "Api",
    "ApiError",
    "CacheSyncTimeout",
    "Client",
    "ClusterConfig",
    "ConditionTimeout",
    "Conflict",
    "ConnectionFailed",
    "Controller",
    "ControllerOptions",
    "Discovery",
    "EventHandlers",
    "EventRecorder",
    "ExecPluginError",
    "Forbidden",
    "Gone",
    "Informer",
    "InformerOptions",
    "KubeconfigError",
    "LeaderElection",
    "LeaderElector",
    "LeadershipLost",
    "ListFailed",
    "Manager",
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
    "controller_reference",
    "finalizer",
    "find_condition",
    "generation_changed",
    "is_deleting",
    "labels_changed",
    "load_config",
    "resource_version_changed",
    "set_condition",
    "set_controller_reference",
    "wait_for",
]

# Where each public name lives; imported on first access.
_LAZY = {
    "CONFIGMAPS": "trio_controller.api",
    "CUSTOM_RESOURCE_DEFINITIONS": "trio_controller.api",
    "DEPLOYMENTS": "trio_controller.api",
    "EVENTS": "trio_controller.api",
    "LEASES": "trio_controller.api",
    "NAMESPACES": "trio_controller.api",
    "PODS": "trio_controller.api",
    "SECRETS": "trio_controller.api",
    "SERVICES": "trio_controller.api",
    "Api": "trio_controller.api",
    "Discovery": "trio_controller.api",
    "PatchType": "trio_controller.api",
    "PropagationPolicy": "trio_controller.api",
    "Resource": "trio_controller.api",
    "ResourceNotFound": "trio_controller.api",
    "SharedInformerFactory": "trio_controller.cache.factory",
    "Informer": "trio_controller.cache.informer",
    "controller_owner": "trio_controller.cache.mappers",
    "ListFailed": "trio_controller.cache.reflector",
    "EventHandlers": "trio_controller.cache.sink",
    "InformerOptions": "trio_controller.cache.options",
    "ClusterConfig": "trio_controller.config",
    "load_config": "trio_controller.config",
    "ApiError": "trio_controller.errors",
    "Conflict": "trio_controller.errors",
    "ConnectionFailed": "trio_controller.errors",
    "ExecPluginError": "trio_controller.errors",
    "Forbidden": "trio_controller.errors",
    "Gone": "trio_controller.errors",
    "KubeconfigError": "trio_controller.errors",
    "NotFound": "trio_controller.errors",
    "ServerError": "trio_controller.errors",
    "Timeout": "trio_controller.errors",
    "TLSError": "trio_controller.errors",
    "TooManyRequests": "trio_controller.errors",
    "TransportError": "trio_controller.errors",
    "TrioControllerError": "trio_controller.errors",
    "Unauthorized": "trio_controller.errors",
    "ConditionTimeout": "trio_controller.runtime.conditions",
    "find_condition": "trio_controller.runtime.conditions",
    "set_condition": "trio_controller.runtime.conditions",
    "wait_for": "trio_controller.runtime.conditions",
    "CacheSyncTimeout": "trio_controller.runtime.controller",
    "Controller": "trio_controller.runtime.controller",
    "ControllerOptions": "trio_controller.runtime.controller",
    "Requeue": "trio_controller.runtime.controller",
    "EventRecorder": "trio_controller.runtime.events",
    "finalizer": "trio_controller.runtime.finalizers",
    "is_deleting": "trio_controller.runtime.finalizers",
    "LeaderElector": "trio_controller.runtime.leaderelection",
    "LeadershipLost": "trio_controller.runtime.leaderelection",
    "LeaderElection": "trio_controller.runtime.manager",
    "Manager": "trio_controller.runtime.manager",
    "AlreadyOwned": "trio_controller.runtime.owners",
    "controller_reference": "trio_controller.runtime.owners",
    "set_controller_reference": "trio_controller.runtime.owners",
    "Predicate": "trio_controller.runtime.predicates",
    "annotations_changed": "trio_controller.runtime.predicates",
    "generation_changed": "trio_controller.runtime.predicates",
    "labels_changed": "trio_controller.runtime.predicates",
    "resource_version_changed": "trio_controller.runtime.predicates",
    "WorkQueue": "trio_controller.runtime.workqueue",
    "Client": "trio_controller.transport.client",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from trio_controller.api import CONFIGMAPS as CONFIGMAPS
    from trio_controller.api import CUSTOM_RESOURCE_DEFINITIONS as CUSTOM_RESOURCE_DEFINITIONS
    from trio_controller.api import DEPLOYMENTS as DEPLOYMENTS
    from trio_controller.api import EVENTS as EVENTS
    from trio_controller.api import LEASES as LEASES
    from trio_controller.api import NAMESPACES as NAMESPACES
    from trio_controller.api import PODS as PODS
    from trio_controller.api import SECRETS as SECRETS
    from trio_controller.api import SERVICES as SERVICES
    from trio_controller.api import Api as Api
    from trio_controller.api import Discovery as Discovery
    from trio_controller.api import PatchType as PatchType
    from trio_controller.api import PropagationPolicy as PropagationPolicy
    from trio_controller.api import Resource as Resource
    from trio_controller.api import ResourceNotFound as ResourceNotFound
    from trio_controller.cache.factory import SharedInformerFactory as SharedInformerFactory
    from trio_controller.cache.informer import Informer as Informer
    from trio_controller.cache.mappers import controller_owner as controller_owner
    from trio_controller.cache.options import InformerOptions as InformerOptions
    from trio_controller.cache.reflector import ListFailed as ListFailed
    from trio_controller.cache.sink import EventHandlers as EventHandlers
    from trio_controller.config import ClusterConfig as ClusterConfig
    from trio_controller.config import load_config as load_config
    from trio_controller.errors import ApiError as ApiError
    from trio_controller.errors import Conflict as Conflict
    from trio_controller.errors import ConnectionFailed as ConnectionFailed
    from trio_controller.errors import ExecPluginError as ExecPluginError
    from trio_controller.errors import Forbidden as Forbidden
    from trio_controller.errors import Gone as Gone
    from trio_controller.errors import KubeconfigError as KubeconfigError
    from trio_controller.errors import NotFound as NotFound
    from trio_controller.errors import ServerError as ServerError
    from trio_controller.errors import Timeout as Timeout
    from trio_controller.errors import TLSError as TLSError
    from trio_controller.errors import TooManyRequests as TooManyRequests
    from trio_controller.errors import TransportError as TransportError
    from trio_controller.errors import TrioControllerError as TrioControllerError
    from trio_controller.errors import Unauthorized as Unauthorized
    from trio_controller.runtime.conditions import ConditionTimeout as ConditionTimeout
    from trio_controller.runtime.conditions import find_condition as find_condition
    from trio_controller.runtime.conditions import set_condition as set_condition
    from trio_controller.runtime.conditions import wait_for as wait_for
    from trio_controller.runtime.controller import CacheSyncTimeout as CacheSyncTimeout
    from trio_controller.runtime.controller import Controller as Controller
    from trio_controller.runtime.controller import ControllerOptions as ControllerOptions
    from trio_controller.runtime.controller import Requeue as Requeue
    from trio_controller.runtime.events import EventRecorder as EventRecorder
    from trio_controller.runtime.finalizers import finalizer as finalizer
    from trio_controller.runtime.finalizers import is_deleting as is_deleting
    from trio_controller.runtime.leaderelection import LeaderElector as LeaderElector
    from trio_controller.runtime.leaderelection import LeadershipLost as LeadershipLost
    from trio_controller.runtime.manager import LeaderElection as LeaderElection
    from trio_controller.runtime.manager import Manager as Manager
    from trio_controller.runtime.owners import AlreadyOwned as AlreadyOwned
    from trio_controller.runtime.owners import controller_reference as controller_reference
    from trio_controller.runtime.owners import (
        set_controller_reference as set_controller_reference,
    )
    from trio_controller.runtime.predicates import Predicate as Predicate
    from trio_controller.runtime.predicates import annotations_changed as annotations_changed
    from trio_controller.runtime.predicates import generation_changed as generation_changed
    from trio_controller.runtime.predicates import labels_changed as labels_changed
    from trio_controller.runtime.predicates import (
        resource_version_changed as resource_version_changed,
    )
    from trio_controller.runtime.workqueue import WorkQueue as WorkQueue
    from trio_controller.transport.client import Client as Client


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    if name.isupper():  # a built-in kind's Resource (generated: api/builtin.py)
        from trio_controller.api import builtin

        if name in builtin.__all__:
            value = getattr(builtin, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'trio_controller' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
