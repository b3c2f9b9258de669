"""The diagnosis of a wrong answer and the margins of claims say what they should."""
import math

import pytest
import torch

from minimind.course.claims import Check, ClaimFailed, ClaimRecord
from minimind.course.diagnosis import WrongAnswer, check_equal, describe_difference, diagnose


def test_diagnosis_names_shape_dtype_nan_and_the_largest_difference():
    """A wrong tensor is described by shape, dtype, NaN count and where it differs most."""
    expected = torch.ones(2, 3)
    assert "shape found (3, 2) vs expected (2, 3)" in diagnose(torch.ones(3, 2), expected,
                                                                atol=0, rtol=0)
    assert "dtype found torch.float16" in diagnose(expected.half(), expected, atol=0, rtol=0)
    nan = expected.clone()
    nan[1, 2] = math.nan
    msg = diagnose(nan, expected, atol=0, rtol=0)
    assert "NaN count found 1 vs expected 0" in msg and "(1, 2)" in msg
    assert diagnose(expected, expected, atol=0, rtol=0) is None



def test_plain_results_are_compared_exactly_and_described_where_they_first_differ():
    """Token ids, merge lists, counts and strings: equal, or the first difference named."""
    assert describe_difference([(1, 2), (3, 4)], [[1, 2], [3, 4]]) is None  # tuple or list
    assert "first difference at index 2" in describe_difference([1, 2, 9, 4], [1, 2, 3, 4])
    assert "length found 3 vs expected 4" in describe_difference([1, 2, 3], [1, 2, 3, 4])
    msg = describe_difference({(1, 2): 2, (5, 5): 1}, {(1, 2): 3, (2, 1): 1})
    assert "missing keys" in msg and "unexpected keys" in msg and "at (1, 2)" in msg
    assert "expected a str, got list" in describe_difference([104], "h")
    with pytest.raises(WrongAnswer, match="the text is wrong"):
        check_equal("hé", "he", what="text")

@pytest.mark.parametrize("value, op, threshold, margin", [
    (2.0, "<", 4.0, 0.5), (5.0, "<", 4.0, -0.25), (3.0, ">", 2.0, 0.5), (0.5, ">", 0.0, 0.5),
    (math.inf, ">", 100.0, math.inf),
])
def test_a_check_margin_is_the_room_left_as_a_fraction_of_the_threshold(value, op, threshold,
                                                                         margin):
    """Margins are relative to the threshold (to 1 at a zero threshold); negative means failed."""
    check = Check("x", value, op, threshold)
    assert check.margin == pytest.approx(margin)
    assert check.holds == (margin > 0)


def test_a_claim_check_records_and_fails_on_the_wrong_side():
    """claim.check keeps every measurement and raises with the value, threshold and margin."""
    record = ClaimRecord("t", None, 0, None)
    record.check("loss", 1.0, "<", 2.0)
    with pytest.raises(ClaimFailed, match=r"loss gap: measured 0.1, the claim needs > 0.4"):
        record.check("loss gap", 0.1, ">", 0.4)
    assert [c.label for c in record.checks] == ["loss", "loss gap"]
