"""The statistics an evaluation reports, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from medcot_ui.evaluate.stats import cohen_kappa, mcnemar_exact, wilson


def test_the_wilson_interval_of_8_out_of_10_matches_the_hand_computed_one() -> None:
    # p = 0.8, z^2 = 3.8415: centre = (0.8 + 0.19207) / 1.38415 = 0.71674,
    # half = 1.95996 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658  ->  0.49016 to 0.94332
    interval = wilson(8, 10)
    assert interval.value == 0.8
    assert interval.low == pytest.approx(0.49016, abs=5e-5)
    assert interval.high == pytest.approx(0.94332, abs=5e-5)


def test_the_wilson_interval_stays_inside_0_and_1_and_is_empty_without_data() -> None:
    none_right = wilson(0, 20)
    assert none_right.low == 0.0 and none_right.high == pytest.approx(0.16113, abs=5e-5)  # z^2 / (n + z^2)
    assert wilson(0, 0).low is None and wilson(0, 0).describe() == "n/a (none)"
    with pytest.raises(ValueError, match="k <= n"):
        wilson(11, 10)


def test_exact_mcnemar_on_a_known_table() -> None:
    # 8 discordant pairs split 1 / 7: P(X <= 1) = (1 + 8) / 256, two-sided p = 18 / 256
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_cohens_kappa_on_a_known_table() -> None:
    # 50 items: both yes 20, first yes / second no 5, first no / second yes 10, both no 15.
    # observed 35/50 = 0.7; expected 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement is certain: kappa undefined
    with pytest.raises(ValueError, match="pair them"):
        cohen_kappa(["a"], ["a", "b"])
