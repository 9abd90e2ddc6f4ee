"""The shared number checks: every absurd value becomes a sentence naming the control."""

import math

import pytest

from demos.errors import UserError, number, whole_number


@pytest.mark.parametrize("value, message", [
    ("abc", "Speed must be a number, not 'abc'"), (None, "must be a number"), (math.nan, "finite"),
    (math.inf, "finite"), (-1, "at least 0; got -1"), (11, "at most 10; got 11"),
])
def test_number_refuses_with_the_control_name(value, message):
    with pytest.raises(UserError, match=message):
        number("Speed", value, minimum=0, maximum=10)


def test_number_and_whole_number_accept_good_values():
    assert number("Speed", "2.5") == 2.5 and number("Speed", 0, minimum=0) == 0.0
    assert whole_number("Frames", 16.0, minimum=1) == 16 and isinstance(whole_number("Frames", 3), int)
    with pytest.raises(UserError, match="Frames must be a whole number; got 2.5"):
        whole_number("Frames", 2.5)
