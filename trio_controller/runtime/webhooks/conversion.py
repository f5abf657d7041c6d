"""Conversion reviews (`apiextensions.k8s.io/v1` ConversionReview): converters between
versions of a kind, and the answer to one review.

    converters = Converters()
    converters.add("example.com", "Widget", "v1alpha1", "v1", alpha_to_v1)
    converters.add("example.com", "Widget", "v1", "v1alpha1", v1_to_alpha)
    answer = converters.review(body)    # the ConversionReview to send back

A converter gets one object (a dict it may change) and returns the converted object; the
server sets `apiVersion` to the desired one afterwards. Objects already in the desired
version pass unchanged. Without a direct converter a path through other versions is used
(v1beta1 -> v1 -> v2 with two converters). One object that cannot be converted (no path,
a converter that raises, a converter that changed `metadata.name`/`namespace`/`uid`) fails
the whole review with `result: {status: Failure, message}` naming the object, as the
apiserver expects; it then answers the client with that message.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from trio_controller.runtime.webhooks.admission import ReviewError, parse_review

__all__ = ["CONVERSION_API_VERSION", "ConversionFailed", "Converter", "Converters"]

log = logging.getLogger(__name__)

CONVERSION_API_VERSION = "apiextensions.k8s.io/v1"
CONVERSION_API_VERSIONS = (CONVERSION_API_VERSION, "apiextensions.k8s.io/v1beta1")

Converter = Callable[[dict[str, Any]], dict[str, Any]]


class ConversionFailed(Exception):
    """Raise from a converter to fail the review with this message (no traceback)."""


class Converters:
    """Converters by (group, kind, from version, to version)."""

    def __init__(self) -> None:
        self._edges: dict[tuple[str, str], dict[str, dict[str, Converter]]] = {}

    def add(self, group: str, kind: str, from_version: str, to_version: str, fn: Converter) -> None:
        """Register `fn` converting `kind` objects of `group` from one version to another."""
        self._edges.setdefault((group, kind), {}).setdefault(from_version, {})[to_version] = fn

    def __bool__(self) -> bool:
        return bool(self._edges)

    def convert(self, obj: dict[str, Any], desired_api_version: str) -> dict[str, Any]:
        """`obj` in `desired_api_version`; `ConversionFailed` with the reason when not."""
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise ConversionFailed("object has no apiVersion or kind")
        group, _, version = api_version.rpartition("/")
        desired_group, _, desired_version = desired_api_version.rpartition("/")
        if group != desired_group:
            raise ConversionFailed(
                f"cannot convert {api_version} to {desired_api_version}: different groups"
            )
        if version == desired_version:
            return obj
        path = self._path(group, kind, version, desired_version)
        if path is None:
            raise ConversionFailed(
                f"no conversion for {kind} from {api_version} to {desired_api_version}"
            )
        identity = _identity(obj)
        current = obj
        for step_to, fn in path:
            current = fn(current)
            if not isinstance(current, dict):
                raise ConversionFailed(f"the {kind} converter returned {type(current).__name__}")
            current["apiVersion"] = f"{group}/{step_to}" if group else step_to
        if _identity(current) != identity:
            raise ConversionFailed(f"the {kind} converter changed metadata name/namespace/uid")
        return current

    def _path(
        self, group: str, kind: str, source: str, target: str
    ) -> list[tuple[str, Converter]] | None:
        """The shortest chain of converters from `source` to `target` (breadth first)."""
        edges = self._edges.get((group, kind), {})
        previous: dict[str, tuple[str, Converter] | None] = {source: None}
        todo = deque([source])
        while todo:
            version = todo.popleft()
            if version == target:
                chain: list[tuple[str, Converter]] = []
                while (step := previous[version]) is not None:
                    chain.append((version, step[1]))
                    version = step[0]
                return chain[::-1]
            for next_version, fn in edges.get(version, {}).items():
                if next_version not in previous:
                    previous[next_version] = (version, fn)
                    todo.append(next_version)
        return None

    def review(self, body: bytes) -> dict[str, Any]:
        """The ConversionReview answering `body`; `ReviewError` when `body` is not one."""
        review = parse_review(body, "ConversionReview", CONVERSION_API_VERSIONS)
        version = review["apiVersion"]
        request = review["request"]
        uid = request["uid"]
        desired = request.get("desiredAPIVersion")
        objects = request.get("objects")
        if not isinstance(desired, str) or not desired:
            raise ReviewError("ConversionReview request.desiredAPIVersion is missing")
        if not isinstance(objects, list):
            raise ReviewError("ConversionReview request.objects is not a list")
        converted = []
        for index, obj in enumerate(objects):
            try:
                if not isinstance(obj, dict):
                    raise ConversionFailed("not an object")
                converted.append(self.convert(obj, desired))
            except ConversionFailed as exc:
                failure = f"{_describe(obj, index)}: {exc}"
                return conversion_response(uid, failure=failure, api_version=version)
            except Exception as exc:
                log.exception("Converting %s to %s failed", _describe(obj, index), desired)
                message = f"{_describe(obj, index)}: converter failed: {type(exc).__name__}: {exc}"
                return conversion_response(uid, failure=message, api_version=version)
        return conversion_response(uid, converted=converted, api_version=version)


def conversion_response(
    uid: str,
    *,
    converted: list[dict[str, Any]] | None = None,
    failure: str | None = None,
    api_version: str = CONVERSION_API_VERSION,
) -> dict[str, Any]:
    """A ConversionReview with the converted objects, or with a failure message."""
    if failure is not None:
        response: dict[str, Any] = {
            "uid": uid,
            "convertedObjects": [],
            "result": {"status": "Failure", "message": failure},
        }
    else:
        response = {
            "uid": uid,
            "convertedObjects": converted or [],
            "result": {"status": "Success"},
        }
    return {"apiVersion": api_version, "kind": "ConversionReview", "response": response}


def _identity(obj: dict[str, Any]) -> tuple[Any, Any, Any]:
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        return (None, None, None)
    return (metadata.get("name"), metadata.get("namespace"), metadata.get("uid"))


def _describe(obj: Any, index: int) -> str:
    if isinstance(obj, dict):
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = metadata.get("name") if metadata else None
        namespace = metadata.get("namespace") if metadata else None
        if name:
            where = f"{namespace}/{name}" if namespace else str(name)
            return f"{obj.get('kind', 'object')} {where}"
    return f"object {index}"
