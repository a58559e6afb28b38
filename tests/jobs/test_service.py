"""The model choice of a training job (`jobs.service.parse_families`)."""

from __future__ import annotations

import pytest

from ovencast.errors import InvalidRequest
from ovencast.jobs.service import DEFAULT_FAMILIES, parse_families


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
    with pytest.raises(InvalidRequest, match=message):
        parse_families(models)
