"""A ControllerRing's namespaceSelector (programs/sharder/namespaces.py): which
namespaces' objects the sharder assigns and moves. The sharder applying it on the real
apiserver is in tests/e2e/test_sharder_namespace_selector_e2e.py."""

from __future__ import annotations

from typing import Any

import pytest

from trio_controller.programs.sharder.namespaces import NamespaceSelector


def test_no_selector_means_every_namespace_and_an_empty_one_matches_all() -> None:
    assert NamespaceSelector.parse(None) is None
    empty = NamespaceSelector.parse({})
    assert empty is not None and empty.matches({}) and empty.matches({"a": "b"})


def test_match_labels_and_every_expression_must_hold() -> None:
    selector = NamespaceSelector.parse(
        {
            "matchLabels": {"team": "a"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "tier", "operator": "NotIn", "values": ["system"]},
                {"key": "sharded", "operator": "Exists"},
                {"key": "frozen", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector is not None
    good = {"team": "a", "env": "prod", "sharded": "", "tier": "apps"}
    assert selector.matches(good)
    assert selector.matches({k: v for k, v in good.items() if k != "tier"})  # NotIn: absent
    assert not selector.matches({**good, "team": "b"})
    assert not selector.matches({**good, "env": "dev"})
    assert not selector.matches({k: v for k, v in good.items() if k != "env"})
    assert not selector.matches({**good, "tier": "system"})
    assert not selector.matches({k: v for k, v in good.items() if k != "sharded"})
    assert not selector.matches({**good, "frozen": "yes"})
    assert not selector.matches(None)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("team=a", "must be an object"),
        ({"matchLabels": {"team": 1}}, "matchLabels"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "needs a key"),
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, "'Gt'"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "In needs values"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "no values"),
    ],
)
def test_a_selector_the_apiserver_would_reject_is_one_clear_error(spec: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says) as info:
        NamespaceSelector.parse(spec)
    assert "\n" not in str(info.value)
