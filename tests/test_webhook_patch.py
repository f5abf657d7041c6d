"""The JSON patch a mutating webhook answers with: applied to the object the apiserver
sent, it gives exactly the object the handler returned (on random JSON documents)."""

from __future__ import annotations

from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_controller.runtime.webhooks.patch import json_patch

keys = st.text(alphabet="ab/~0 ", min_size=0, max_size=3)
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(keys, documents, max_size=5)


@settings(max_examples=300, deadline=None)
@given(objects, objects)
def test_applying_the_patch_to_the_original_gives_the_returned_object(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    ops = json_patch(old, new)
    assert jsonpatch.apply_patch(old, ops) == new
    assert (ops == []) == (old == new)


def test_a_key_with_a_slash_or_tilde_is_escaped_as_rfc_6901_says() -> None:
    ops = json_patch({"metadata": {}}, {"metadata": {"labels": {"a/b~c": "x"}}})
    assert ops == [{"op": "add", "path": "/metadata/labels", "value": {"a/b~c": "x"}}]
    ops = json_patch({"l": {}}, {"l": {"a/b~c": "x"}})
    assert ops == [{"op": "add", "path": "/l/a~1b~0c", "value": "x"}]
