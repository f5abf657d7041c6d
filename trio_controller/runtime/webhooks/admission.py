"""Admission reviews (`admission.k8s.io/v1`): the request a handler sees and its verdict.

    def validate(request: AdmissionRequest) -> Verdict | None:
        if request.operation == "DELETE":
            return allow()
        if not request.object["spec"].get("message"):
            return deny("spec.message: must not be empty")
        return allow(warnings=["spec.replicas: unset, defaulting to 1"])

    def default(request: AdmissionRequest) -> dict | Verdict | None:
        obj = request.object                     # change it freely
        obj["spec"].setdefault("replicas", 1)
        return obj                               # the server computes the JSON patch

A validating handler returns `allow(...)`, `deny(message, ...)` or None (allowed). A
mutating handler returns the changed object (or `patched(obj, warnings=...)`), None (no
change) or a `deny(...)`. Handlers may be `async def`. The review is decoded in one
orjson pass; a mutating handler may change `request.object` in place and return it: the
patch's base is decoded again from the review's bytes, only when a handler returned an
object.

`review_response(...)` builds the AdmissionReview the apiserver gets back; `errored(...)`
the one for a request that could not be handled (bad input: 400, a failed handler: 500).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from trio_controller.runtime.webhooks.patch import json_patch

__all__ = [
    "ADMISSION_API_VERSION",
    "AdmissionRequest",
    "ReviewError",
    "Verdict",
    "allow",
    "deny",
    "errored",
    "parse_admission_review",
    "parse_review",
    "patched",
    "review_response",
]

ADMISSION_API_VERSION = "admission.k8s.io/v1"
# v1beta1 has the same fields; the answer has the version of the question, as
# controller-runtime does.
ADMISSION_API_VERSIONS = (ADMISSION_API_VERSION, "admission.k8s.io/v1beta1")


class ReviewError(ValueError):
    """A request body that is not a usable review (the message says what is wrong)."""


@dataclass
class Verdict:
    """A handler's answer: allowed or not, why, warnings, and (mutating) the new object."""

    allowed: bool
    message: str = ""
    code: int = 200
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    object: dict[str, Any] | None = None


def allow(*, warnings: Sequence[str] = ()) -> Verdict:
    """Allowed, with optional warnings shown to the client (kubectl prints them)."""
    return Verdict(True, warnings=list(warnings))


def deny(
    message: str, *, code: int = 403, reason: str = "Forbidden", warnings: Sequence[str] = ()
) -> Verdict:
    """Denied: the apiserver answers the client `admission webhook ... denied the
    request: <message>`."""
    return Verdict(False, message=message, code=code, reason=reason, warnings=list(warnings))


def patched(obj: Mapping[str, Any], *, warnings: Sequence[str] = ()) -> Verdict:
    """Allowed with `obj` as the new object (a mutating handler's answer)."""
    return Verdict(True, warnings=list(warnings), object=dict(obj))


class AdmissionRequest:
    """One AdmissionReview's `request`; `object`/`old_object` decoded when first read."""

    def __init__(self, request: dict[str, Any], body: bytes) -> None:
        self.raw = request
        self._body = body

    uid = property(lambda self: str(self.raw["uid"]), doc="The review's uid, echoed back.")
    operation = property(
        lambda self: str(self.raw.get("operation", "")), doc="CREATE, UPDATE, DELETE, CONNECT."
    )
    kind = property(lambda self: self.raw.get("kind") or {}, doc="{group, version, kind}.")
    resource = property(
        lambda self: self.raw.get("resource") or {}, doc="{group, version, resource}."
    )
    sub_resource = property(lambda self: self.raw.get("subResource", ""), doc="e.g. status.")
    name = property(lambda self: self.raw.get("name", ""), doc="The object's name, if known.")
    namespace = property(lambda self: self.raw.get("namespace", ""), doc="Its namespace.")
    user_info = property(lambda self: self.raw.get("userInfo") or {}, doc="Who asked.")
    dry_run = property(lambda self: bool(self.raw.get("dryRun")), doc="A dry run: no effects.")

    @property
    def object(self) -> dict[str, Any] | None:
        """The object as it would be stored (None for DELETE)."""
        value = self.raw.get("object")
        return value if isinstance(value, dict) else None

    @property
    def old_object(self) -> dict[str, Any] | None:
        """The object before the change (UPDATE and DELETE), else None."""
        value = self.raw.get("oldObject")
        return value if isinstance(value, dict) else None

    def original_object(self) -> dict[str, Any] | None:
        """The object as the apiserver sent it, decoded anew from the body (the base of a
        mutating handler's patch, whatever the handler did to `object`)."""
        value = orjson.loads(self._body)["request"].get("object")
        return value if isinstance(value, dict) else None


def parse_admission_review(body: bytes) -> tuple[dict[str, Any], str]:
    """The review's `request` and apiVersion (one orjson pass over the body); `ReviewError`
    when the body is not JSON, not an AdmissionReview, or has no `request.uid`."""
    review = parse_review(body, "AdmissionReview", ADMISSION_API_VERSIONS)
    request: dict[str, Any] = review["request"]
    return request, review["apiVersion"]


def parse_review(body: bytes, kind: str, api_versions: tuple[str, ...]) -> dict[str, Any]:
    """The decoded review, checked to be `kind` in one of `api_versions` with a `request.uid`;
    `ReviewError` with one line saying what is wrong otherwise."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"request body is not JSON: {exc}") from None
    if not isinstance(review, dict) or review.get("kind") != kind:
        got = review.get("kind") if isinstance(review, dict) else type(review).__name__
        article = "an" if kind[0] in "AEIOU" else "a"
        raise ReviewError(f"request body is not {article} {kind} (kind {got!r})")
    if review.get("apiVersion") not in api_versions:
        raise ReviewError(
            f"{kind} apiVersion {review.get('apiVersion')!r} is not served, "
            f"expected {' or '.join(api_versions)}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError(f"{kind} has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError(f"{kind} request.uid is missing")
    return review


def review_response(
    uid: str,
    verdict: Verdict,
    *,
    original: dict[str, Any] | None = None,
    api_version: str = ADMISSION_API_VERSION,
) -> dict[str, Any]:
    """The AdmissionReview answering `uid` with `verdict` (a JSON patch from `original`
    to `verdict.object` when the handler returned one)."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed or verdict.message:
        status: dict[str, Any] = {"code": verdict.code}
        if verdict.message:
            status["message"] = verdict.message
        if verdict.reason:
            status["reason"] = verdict.reason
        if not verdict.allowed:
            status["status"] = "Failure"
        response["status"] = status
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    if verdict.allowed and verdict.object is not None:
        ops = json_patch(original or {}, verdict.object)
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(orjson.dumps(ops)).decode("ascii")
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def errored(
    uid: str, code: int, message: str, *, api_version: str = ADMISSION_API_VERSION
) -> dict[str, Any]:
    """An AdmissionReview refusing `uid` because it could not be handled."""
    reason = {400: "BadRequest", 413: "RequestEntityTooLarge", 500: "InternalError"}.get(code, "")
    verdict = Verdict(False, message=message, code=code, reason=reason)
    return review_response(uid, verdict, api_version=api_version)
