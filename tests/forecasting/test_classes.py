from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.classes import (
    TRIAL_BUDGET,
    ClassThresholds,
    ProductClass,
    SearchClassRule,
    average_demand_interval,
    trials_for,
)
from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.frame import CLOSED, PRODUCT, Y

HIGH, MEDIUM, LOW, INTERMITTENT = (
    ProductClass.HIGH_VOLUME,
    ProductClass.MEDIUM_VOLUME,
    ProductClass.LOW_VOLUME,
    ProductClass.INTERMITTENT,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([120.0] * 28, HIGH, id="high"),
        pytest.param([100.0] * 28, HIGH, id="high-at-threshold"),
        pytest.param([99.9] * 28, MEDIUM, id="just-below-high"),
        pytest.param([10.0] * 28, MEDIUM, id="medium-at-threshold"),
        pytest.param([9.9] * 28, LOW, id="low"),
        pytest.param([3.0, 0.0, 4.0, 5.0, 6.0, 7.0, 2.0] * 4, LOW, id="low-few-zeros"),
        pytest.param([10.0, 0.0] * 14, INTERMITTENT, id="adi-2"),
        # ADI 1.5 with a zero share of 1/3: the ADI rule alone makes it intermittent.
        pytest.param([0.0, 50.0, 50.0] * 10, INTERMITTENT, id="adi-1.5"),
        # ADI 1 (no zero between sales) but sales stopped: the zero-share rule catches it.
        pytest.param([150.0] * 10 + [0.0] * 20, INTERMITTENT, id="trailing-zeros"),
        pytest.param([150.0] * 20 + [0.0] * 10, HIGH, id="a-third-zeros-at-end"),
        pytest.param([], INTERMITTENT, id="empty"),
        pytest.param([0.0] * 30, INTERMITTENT, id="all-zero"),
        pytest.param([float("nan")] + [50.0] * 27, MEDIUM, id="nan-ignored"),
    ],
)
def test_classify(values: list[float], expected: ProductClass) -> None:
    assert ClassThresholds().classify(np.array(values)) is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 1.0, 1.0], 1.0),
        ([0.0, 1.0, 0.0, 1.0], 2.0),
        ([0.0, 0.0, 5.0], 3.0),
        ([5.0, 0.0, 0.0, 5.0], 2.0),  # intervals 1 and 3
        ([0.0, 0.0], math.inf),
    ],
)
def test_average_demand_interval(values: list[float], expected: float) -> None:
    assert average_demand_interval(np.array(values)) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high_volume_mean": 5.0, "medium_volume_mean": 10.0},
        {"medium_volume_mean": -1.0},
        {"adi_intermittent": 0.9},
        {"max_zero_share": 0.0},
    ],
)
def test_thresholds_reject_inconsistent_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ClassThresholds(**kwargs)


def test_custom_thresholds_move_the_boundary() -> None:
    assert ClassThresholds(high_volume_mean=1000.0).classify(np.array([400.0] * 10)) is MEDIUM


@pytest.mark.parametrize(
    ("product_class", "trials"),
    [(HIGH, 30), (MEDIUM, 25), (LOW, 20), (INTERMITTENT, 15)],
)
def test_trial_budget_matches_spec(product_class: ProductClass, trials: int) -> None:
    assert TRIAL_BUDGET[product_class] == trials
    assert trials_for(product_class) == trials
    assert trials_for(product_class.value) == trials


def test_every_class_has_a_budget() -> None:
    assert set(TRIAL_BUDGET) == set(ProductClass)


def _classes(tenant: pd.DataFrame) -> dict[str, ProductClass]:
    open_days = tenant.loc[~tenant[CLOSED]]
    return {
        str(name): ClassThresholds().classify(rows[Y].to_numpy())
        for name, rows in open_days.groupby(PRODUCT)
    }


def test_kiel_classes_as_documented(kiel_tenant: tuple[pd.DataFrame, AlignmentReport]) -> None:
    assert _classes(kiel_tenant[0]) == {
        "bread": HIGH,
        "cake": HIGH,
        "croissant": HIGH,
        "rolls": HIGH,
        "confectionery": MEDIUM,
        "seasonal_bread": MEDIUM,
    }


def test_northsea_classes_as_documented(
    northsea_tenant: tuple[pd.DataFrame, AlignmentReport],
) -> None:
    classes = _classes(northsea_tenant[0])
    slow_movers = {"item_103", "item_104", "item_116", "item_133", "item_145", "item_51"}
    slow_movers |= {"item_54", "item_95"}
    assert {p for p, c in classes.items() if c is INTERMITTENT} == slow_movers
    assert {p for p, c in classes.items() if c is HIGH} == {"item_10"}
    assert LOW not in classes.values()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([60.0] * 28, HIGH, id="high"),
        pytest.param([50.0] * 28, HIGH, id="high-at-threshold"),
        pytest.param([49.9] * 28, MEDIUM, id="just-below-high"),
        pytest.param([10.0] * 28, MEDIUM, id="medium-at-threshold"),
        pytest.param([9.9] * 28, LOW, id="low"),
        pytest.param([1.0] * 28, LOW, id="mean-at-one"),
        pytest.param([0.9] * 28, INTERMITTENT, id="mean-below-one"),
        # Zero share exactly one half is not above it: regular, by the mean of 30.
        pytest.param([60.0, 0.0] * 14, MEDIUM, id="half-zeros"),
        pytest.param([60.0, 0.0, 0.0] * 10, INTERMITTENT, id="two-thirds-zeros"),
        # No ADI rule: sales every other day but under half zeros is regular.
        pytest.param([0.0, 50.0, 50.0] * 10, MEDIUM, id="adi-1.5-regular"),
        pytest.param([], INTERMITTENT, id="empty"),
        pytest.param([float("nan")] * 3 + [50.0] * 25, HIGH, id="missing-dates-ignored"),
    ],
)
def test_search_class_rule(values: list[float], expected: ProductClass) -> None:
    rule = SearchClassRule()
    assert rule.classify(np.array(values)) is expected
    assert rule.trials(np.array(values)) == TRIAL_BUDGET[expected]


def test_search_class_rule_counts_closed_days_as_zeros(
    northsea_tenant: tuple[pd.DataFrame, AlignmentReport],
) -> None:
    """The original approach judges all training values, closed days' zeros included:
    a seller whose open days are regular but whose shop is closed most of the time is
    intermittent there, and the closures lower the mean."""
    rule = SearchClassRule()
    tenant = northsea_tenant[0]
    budgets = {str(p): rule.trials(rows[Y].to_numpy()) for p, rows in tenant.groupby(PRODUCT)}
    open_budgets = {
        str(p): rule.trials(rows.loc[~rows[CLOSED], Y].to_numpy())
        for p, rows in tenant.groupby(PRODUCT)
    }
    assert budgets["item_10"] == 30  # the best seller stays high volume
    assert set(budgets.values()) <= {30, 25, 20, 15}
    assert all(budgets[p] <= open_budgets[p] for p in budgets)
    assert any(budgets[p] < open_budgets[p] for p in budgets)


@pytest.mark.parametrize(
    "kwargs",
    [{"high_volume_mean": 10.0, "medium_volume_mean": 10.0}, {"max_zero_share": 0.0}],
)
def test_search_class_rule_rejects_inconsistent_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SearchClassRule(**kwargs)
