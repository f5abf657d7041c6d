"""The one exception hierarchy of trio-controller.

    TrioControllerError
    ├── KubeconfigError            the kubeconfig (or in-cluster config) cannot be used
    ├── ExecPluginError            an exec credential plugin failed
    ├── ApiError(status, reason, message)   the apiserver answered with an error
    │   ├── Unauthorized (401)   Forbidden (403)   NotFound (404)   Conflict (409)
    │   ├── Gone (410)           TooManyRequests (429, retry_after)
    │   └── ServerError (5xx)
    └── TransportError             no usable answer from the server
        ├── ConnectionFailed       unreachable, DNS, refused, dropped mid-stream
        ├── TLSError               TLS handshake or certificate verification failed
        └── Timeout                connect/read timeout, idle watch stream

`str(err)` is always one line, fit for the CLI, and never carries a credential.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import orjson

__all__ = [
    "ApiError",
    "Conflict",
    "ConnectionFailed",
    "ExecPluginError",
    "Forbidden",
    "Gone",
    "KubeconfigError",
    "NotFound",
    "ServerError",
    "TLSError",
    "Timeout",
    "TooManyRequests",
    "TransportError",
    "TrioControllerError",
    "Unauthorized",
    "api_error",
    "from_response",
    "from_watch_error",
    "parse_retry_after",
]


def _one_line(text: str) -> str:
    return " ".join(text.split())


class TrioControllerError(Exception):
    """Base class of every error trio-controller raises on purpose."""

    def __str__(self) -> str:
        return _one_line(super().__str__())


class KubeconfigError(TrioControllerError):
    """The kubeconfig (or in-cluster configuration) is missing, invalid or unusable."""


class ExecPluginError(TrioControllerError):
    """An exec credential plugin could not be run or returned no usable credential."""


class TransportError(TrioControllerError):
    """The request got no usable HTTP answer."""


class ConnectionFailed(TransportError):
    """The server is unreachable: DNS, refused, reset or closed mid-response."""


class ConnectionLost(ConnectionFailed):
    """The connection broke after the server answered or accepted it: reset, closed
    mid-response, mid-chunk or before the response head. Unlike an unreachable server,
    this heals by reconnecting (a restarting apiserver, a proxy dropping idle streams),
    so it is retried even before the first sync."""


class TLSError(TransportError):
    """The TLS handshake failed, usually certificate verification."""


class Timeout(TransportError):
    """Connecting, reading, or waiting for the next chunk of a stream took too long."""


class ApiError(TrioControllerError):
    """The apiserver answered with an error status.

    `status` is the HTTP code, `reason` the Kubernetes Status reason (`Forbidden`,
    `Expired`, ...) or the HTTP phrase, `message` the Status message.
    """

    default_status = 0

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(status, reason, message)

    def __str__(self) -> str:
        head = f"{self.status} {self.reason}".strip()
        if self.message:
            return _one_line(f"{head}: {self.message}")
        return _one_line(head)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.reason!r}, {self.message!r})"


class Unauthorized(ApiError):
    """401: the credentials were missing, wrong or expired."""


class Forbidden(ApiError):
    """403: authenticated, but not allowed."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: already exists, or a resourceVersion conflict."""


class Gone(ApiError):
    """410: too old resource version, or an expired continue token."""


class TooManyRequests(ApiError):
    """429: throttled; `retry_after` is the server's hint in seconds, if it gave one."""

    def __init__(
        self,
        status: int = 429,
        reason: str = "",
        message: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, reason, message)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    429: TooManyRequests,
}

_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def api_error(
    status: int, reason: str = "", message: str = "", retry_after: float | None = None
) -> ApiError:
    """The `ApiError` subclass for `status` (a 410 becomes `Gone`, and so on)."""
    reason = reason or _PHRASES.get(status, "")
    if status == 429:
        return TooManyRequests(status, reason, message, retry_after)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(status, reason, message)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds)


def from_response(status: int, body: bytes, retry_after_header: str | None = None) -> ApiError:
    """Build the error for an HTTP error response, from its Kubernetes Status body if any."""
    reason = ""
    message = ""
    retry_after = parse_retry_after(retry_after_header)
    status_obj: Any = None
    if body:
        try:
            status_obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            status_obj = None
    if isinstance(status_obj, dict) and status_obj.get("kind") == "Status":
        reason = str(status_obj.get("reason") or "")
        message = str(status_obj.get("message") or "")
        details = status_obj.get("details")
        if retry_after is None and isinstance(details, dict):
            seconds = details.get("retryAfterSeconds")
            if isinstance(seconds, int | float) and seconds > 0:
                retry_after = float(seconds)
    elif body:
        # Not a Status (a proxy, a load balancer): keep a short, single line of it.
        text = body[:200].decode("utf-8", "replace")
        message = _one_line(text)
    return api_error(status, reason, message, retry_after)


class _WatchErrorEvent(Protocol):
    code: int | None
    reason: str | None
    message: str | None


def from_watch_error(event: _WatchErrorEvent) -> ApiError:
    """The error for a watch ERROR event (its Status code, reason and message).

    A Status without a code is treated as 500, as client-go does for unknown errors;
    a 410 (too old resource version) becomes `Gone`, which means: relist.
    """
    code = event.code or 500
    return api_error(code, event.reason or "", event.message or "")
