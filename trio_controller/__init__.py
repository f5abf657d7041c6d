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
from trio_controller.workqueue import WorkQueue

__all__ = [
    "BucketRateLimiter",
    "DecodeError",
    "ExponentialFailureRateLimiter",
    "ListAccumulator",
    "MaxOfRateLimiter",
    "RateLimiter",
    "ShutDown",
    "Store",
    "WatchDecoder",
    "WatchEvent",
    "WorkQueue",
    "__version__",
    "default_controller_rate_limiter",
]
