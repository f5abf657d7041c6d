"""The Rust building blocks, for code that assembles its own pipeline (benchmarks,
custom reflectors): the work queue and rate limiters, the store, the watch and list
decoders. Most controllers need none of them directly: `trio_controller` gives the
Trio-level pieces built on them (`Controller`, `Informer`, `WorkQueue`).

The extension module itself is private (`trio_controller._native`, typed by its
`.pyi` stub, documented in docs/native-api.md); these are its public classes.
"""

from trio_controller._native import (
    BodyDecoder,
    BucketRateLimiter,
    DecodeError,
    ExponentialFailureRateLimiter,
    FeedResult,
    InformerCore,
    LazyObject,
    ListAccumulator,
    MaxOfRateLimiter,
    OwnerMapping,
    PageInfo,
    RateLimiter,
    ReplaceResult,
    ResponseHead,
    ShutDown,
    Store,
    StoreReader,
    WatchDecoder,
    WatchEvent,
    default_controller_rate_limiter,
    parse_response_head,
)
from trio_controller._native import WorkQueue as NativeWorkQueue

__all__ = [
    "BodyDecoder",
    "BucketRateLimiter",
    "DecodeError",
    "ExponentialFailureRateLimiter",
    "FeedResult",
    "InformerCore",
    "LazyObject",
    "ListAccumulator",
    "MaxOfRateLimiter",
    "NativeWorkQueue",
    "OwnerMapping",
    "PageInfo",
    "RateLimiter",
    "ReplaceResult",
    "ResponseHead",
    "ShutDown",
    "Store",
    "StoreReader",
    "WatchDecoder",
    "WatchEvent",
    "default_controller_rate_limiter",
    "parse_response_head",
]
