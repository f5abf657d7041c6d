"""`trio_controller.testing.eventually`: poll until a check holds, on a mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_controller.testing import eventually


async def test_the_first_truthy_value_is_returned_after_polling_at_the_given_pace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[float] = []

    async def check() -> list[str]:
        calls.append(trio.current_time())
        return ["ready"] if len(calls) == 4 else []

    assert await eventually(check, "readiness", every=0.5) == ["ready"]
    assert calls == [0.0, 0.5, 1.0, 1.5]


async def test_a_check_that_never_holds_fails_after_within_naming_what(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"^timed out after 3s waiting for the Lease$"):
        await eventually(never, "the Lease", within=3)
    assert trio.current_time() == pytest.approx(3.0)


async def test_an_error_in_the_check_goes_through_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken() -> bool:
        raise ConnectionError("apiserver gone")

    with pytest.raises(ConnectionError, match="apiserver gone"):
        await eventually(broken, "anything")
    assert trio.current_time() == 0.0
