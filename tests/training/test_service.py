"""The model choice of a training job (`parse_families`)."""

from __future__ import annotations

import pytest

from ovencast.errors import OvencastError
from ovencast.training.service import DEFAULT_FAMILIES, parse_families


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (None, ("auto",)),
        ([], ("auto",)),
        (["auto"], ("auto",)),
        (["prophet"], ("prophet",)),
        ([" mstl", "auto_ets ", "mstl"], ("mstl", "auto_ets")),
        (["mstl_weekly", "seasonal_naive"], ("mstl_weekly", "seasonal_naive")),
    ],
)
def test_model_choice(models: list[str] | None, expected: tuple[str, ...]) -> None:
    assert parse_families(models) == expected


def test_auto_is_the_default() -> None:
    assert DEFAULT_FAMILIES == ("auto",)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["crystal_ball"], "crystal_ball"),
        (["ensemble"], "built by selection"),
        (["auto", "prophet"], "cannot be combined"),
    ],
)
def test_refused_model_choice(models: list[str], message: str) -> None:
    with pytest.raises(OvencastError, match=message) as raised:
        parse_families(models)
    assert raised.value.status_code == 422
