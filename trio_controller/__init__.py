"""trio-controller: a Kubernetes controller runtime for Python on Trio, with a Rust core."""

from trio_controller._native import (
    BucketRateLimiter,
    DecodeError,
    ExponentialFailureRateLimiter,
    ListAccumulator,
    MaxOfRateLimiter,
    RateLimiter,
    ShutDown,
    Store,
    WatchDecoder,
    WatchEvent,
    __version__,
    default_controller_rate_limiter,
)
from trio_controller.cache.reflector import Reflector
from trio_controller.config import ClusterConfig, load_config
from trio_controller.controller import Controller
from trio_controller.errors import ApiError, KubeconfigError, TrioControllerError
from trio_controller.transport.client import Client
from trio_controller.workqueue import WorkQueue

__all__ = [
    "ApiError",
    "BucketRateLimiter",
    "Client",
    "ClusterConfig",
    "Controller",
    "DecodeError",
    "ExponentialFailureRateLimiter",
    "KubeconfigError",
    "ListAccumulator",
    "MaxOfRateLimiter",
    "RateLimiter",
    "Reflector",
    "ShutDown",
    "Store",
    "TrioControllerError",
    "WatchDecoder",
    "WatchEvent",
    "WorkQueue",
    "__version__",
    "default_controller_rate_limiter",
    "load_config",
]
