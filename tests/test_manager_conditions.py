"""Status conditions follow apimachinery's `meta.SetStatusCondition` rules."""

from __future__ import annotations

from typing import Any

import pytest

from trio_controller import find_condition, set_condition

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"


def test_a_new_condition_is_appended_with_its_transition_time() -> None:
    status: dict[str, Any] = {}
    assert set_condition(
        status, "Ready", "True", "Done", "all good", observed_generation=3,
        last_transition_time=T0,
    )  # fmt: skip
    assert status == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Done",
                "message": "all good",
                "lastTransitionTime": T0,
                "observedGeneration": 3,
            }
        ]
    }


def test_a_new_condition_without_a_time_gets_now_in_rfc3339() -> None:
    status: dict[str, Any] = {}
    set_condition(status, "Ready", True, "Done")
    time = status["conditions"][0]["lastTransitionTime"]
    assert len(time) == 20 and time.endswith("Z") and time[10] == "T"


def test_the_same_condition_again_changes_nothing() -> None:
    status: dict[str, Any] = {}
    set_condition(status, "Ready", "True", "Done", "ok", observed_generation=1,
                  last_transition_time=T0)  # fmt: skip
    before = [dict(c) for c in status["conditions"]]
    assert not set_condition(status, "Ready", "True", "Done", "ok", observed_generation=1)
    assert status["conditions"] == before


def test_reason_message_and_generation_change_without_moving_the_transition_time() -> None:
    status: dict[str, Any] = {}
    set_condition(status, "Ready", "True", "Done", "ok", observed_generation=1,
                  last_transition_time=T0)  # fmt: skip
    assert set_condition(status, "Ready", "True", "Still", "fine", observed_generation=2,
                         last_transition_time=T1)  # fmt: skip
    (ready,) = status["conditions"]
    assert ready["reason"] == "Still" and ready["message"] == "fine"
    assert ready["observedGeneration"] == 2
    assert ready["lastTransitionTime"] == T0


def test_a_status_change_moves_the_transition_time() -> None:
    status: dict[str, Any] = {}
    set_condition(status, "Ready", "True", "Done", last_transition_time=T0)
    assert set_condition(status, "Ready", False, "Broken", "no", last_transition_time=T1)
    ready = find_condition(status, "Ready")
    assert ready is not None
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", T1)


def test_other_conditions_are_left_alone_and_found_by_type() -> None:
    status: dict[str, Any] = {
        "conditions": [{"type": "Synced", "status": "True", "reason": "X", "message": ""}]
    }
    set_condition(status, "Ready", "Unknown", "Pending")
    assert [c["type"] for c in status["conditions"]] == ["Synced", "Ready"]
    assert find_condition(status, "Synced") == status["conditions"][0]
    assert find_condition(status, "Missing") is None
    assert find_condition(None, "Ready") is None


def test_a_status_that_is_not_true_false_or_unknown_is_refused() -> None:
    with pytest.raises(ValueError, match="True, False or Unknown"):
        set_condition({}, "Ready", "yes", "Done")
    with pytest.raises(ValueError, match="reason"):
        set_condition({}, "Ready", "True", "")
