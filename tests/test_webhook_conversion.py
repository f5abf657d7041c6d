"""ConversionReviews: converters between versions, lists of objects, and a failed
conversion reported once per review with its message."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from trio_controller.runtime.webhooks import ConversionFailed, Converters
from trio_controller.runtime.webhooks.admission import ReviewError


def conversion_review(objects: list[Any], desired: str, *, uid: str = "c-1") -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
        }
    )


def widget(version: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"example.com/{version}",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": spec,
    }


def up(obj: dict[str, Any]) -> dict[str, Any]:
    obj["spec"]["message"] = obj["spec"].pop("text")
    return obj


def down(obj: dict[str, Any]) -> dict[str, Any]:
    obj["spec"]["text"] = obj["spec"].pop("message")
    return obj


def converters() -> Converters:
    c = Converters()
    c.add("example.com", "Widget", "v1alpha1", "v1", up)
    c.add("example.com", "Widget", "v1", "v1alpha1", down)
    return c


def test_a_list_of_mixed_versions_is_converted_to_the_desired_one_in_order() -> None:
    objects = [
        widget("v1alpha1", "a", {"text": "x", "replicas": 2}),
        widget("v1", "b", {"message": "y"}),
    ]
    answer = converters().review(conversion_review(objects, "example.com/v1"))
    assert answer["apiVersion"] == "apiextensions.k8s.io/v1"
    assert answer["kind"] == "ConversionReview"
    response = answer["response"]
    assert response["uid"] == "c-1"
    assert response["result"] == {"status": "Success"}
    assert response["convertedObjects"] == [
        widget("v1", "a", {"message": "x", "replicas": 2}),
        widget("v1", "b", {"message": "y"}),
    ]


def test_conversion_goes_both_ways_and_an_empty_list_succeeds() -> None:
    back = converters().review(
        conversion_review([widget("v1", "a", {"message": "m"})], "example.com/v1alpha1")
    )
    empty = converters().review(conversion_review([], "example.com/v1"))
    assert back["response"]["convertedObjects"] == [widget("v1alpha1", "a", {"text": "m"})]
    assert empty["response"] == {
        "uid": "c-1",
        "convertedObjects": [],
        "result": {"status": "Success"},
    }


def test_without_a_direct_converter_a_path_through_other_versions_is_taken() -> None:
    c = converters()
    c.add(
        "example.com",
        "Widget",
        "v1",
        "v2",
        lambda o: {**o, "spec": {"words": o["spec"]["message"]}},
    )
    answer = c.review(conversion_review([widget("v1alpha1", "a", {"text": "t"})], "example.com/v2"))
    assert answer["response"]["convertedObjects"] == [widget("v2", "a", {"words": "t"})]


@pytest.mark.parametrize(
    ("obj", "desired", "message"),
    [
        (widget("v2", "a", {}), "example.com/v1", "Widget default/a: no conversion for Widget"),
        (widget("v1", "a", {}), "other.io/v1", "cannot convert example.com/v1 to other.io/v1"),
        ({"kind": "Widget"}, "example.com/v1", "object 1: object has no apiVersion or kind"),
        ("text", "example.com/v1", "object 1: not an object"),
    ],
)
def test_one_object_that_cannot_be_converted_fails_the_review_with_its_message(
    obj: Any, desired: str, message: str
) -> None:
    objects = [widget("v1", "ok", {"message": "m"}), obj]
    answer = converters().review(conversion_review(objects, desired))
    response = answer["response"]
    assert response["uid"] == "c-1"
    assert response["result"]["status"] == "Failure"
    assert message in response["result"]["message"]
    assert response["convertedObjects"] == []


def test_a_converter_that_raises_fails_the_review_and_logs_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(obj: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("text")

    def refused(obj: dict[str, Any]) -> dict[str, Any]:
        raise ConversionFailed("spec.text is too long for v1")

    c = Converters()
    c.add("example.com", "Widget", "v1alpha1", "v1", broken)
    c.add("example.com", "Widget", "v1", "v1alpha1", refused)
    with caplog.at_level(logging.ERROR):
        failed = c.review(conversion_review([widget("v1alpha1", "a", {})], "example.com/v1"))
    assert len([r for r in caplog.records if r.exc_info]) == 1
    caplog.clear()
    declined = c.review(conversion_review([widget("v1", "b", {})], "example.com/v1alpha1"))
    assert failed["response"]["result"] == {
        "status": "Failure",
        "message": "Widget default/a: converter failed: KeyError: 'text'",
    }
    assert declined["response"]["result"]["message"] == (
        "Widget default/b: spec.text is too long for v1"
    )
    assert caplog.records == []  # a ConversionFailed is the converter's answer, not a bug


def test_a_converter_that_renames_the_object_fails_the_review() -> None:
    c = Converters()
    c.add("example.com", "Widget", "v1", "v2", lambda o: {**o, "metadata": {"name": "other"}})
    answer = c.review(conversion_review([widget("v1", "a", {})], "example.com/v2"))
    assert "changed metadata name/namespace/uid" in answer["response"]["result"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "request body is not JSON"),
        (orjson.dumps({"kind": "AdmissionReview"}), "not a ConversionReview"),
        (
            orjson.dumps({"apiVersion": "apiextensions.k8s.io/v2", "kind": "ConversionReview"}),
            "is not served",
        ),
        (conversion_review([], "example.com/v1", uid=""), "request.uid is missing"),
        (
            orjson.dumps(
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "ConversionReview",
                    "request": {"uid": "u", "objects": []},
                }
            ),
            "desiredAPIVersion is missing",
        ),
        (
            orjson.dumps(
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "ConversionReview",
                    "request": {"uid": "u", "desiredAPIVersion": "example.com/v1"},
                }
            ),
            "objects is not a list",
        ),
    ],
)
def test_a_body_that_is_not_a_conversion_review_is_a_review_error(
    body: bytes, message: str
) -> None:
    with pytest.raises(ReviewError, match=message):
        converters().review(body)


def test_a_v1beta1_conversion_review_is_answered_in_v1beta1() -> None:
    body = orjson.dumps(
        {
            "apiVersion": "apiextensions.k8s.io/v1beta1",
            "kind": "ConversionReview",
            "request": {
                "uid": "b",
                "desiredAPIVersion": "example.com/v1",
                "objects": [widget("v1alpha1", "a", {"text": "t"})],
            },
        }
    )
    answer = converters().review(body)
    assert answer["apiVersion"] == "apiextensions.k8s.io/v1beta1"
    assert answer["response"]["convertedObjects"] == [widget("v1", "a", {"message": "t"})]
