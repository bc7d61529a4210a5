"""app.auth: one credential per call, keys read from either header, and each protocol's rule applied."""

from __future__ import annotations

import pytest

from app.auth import Access, check, one_credential, presented_key
from app.errors import BadRequest, Forbidden, Unauthorized
from app.settings import Settings


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer k1"}, "k1"),
        ({"authorization": "bearer  k1 "}, "k1"),
        ({"x-api-key": "k2"}, "k2"),
        ({"authorization": "Basic abc"}, None),
        ({}, None),
    ],
)
def test_the_key_is_read_from_a_bearer_token_or_x_api_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key


def test_one_credential_at_most_whatever_the_case_of_the_header() -> None:
    one_credential([("Authorization", "Bearer a"), ("accept", "*/*")])
    with pytest.raises(BadRequest, match="authorization, X-Api-Key"):
        one_credential([("authorization", "Bearer a"), ("X-Api-Key", "a")])


def test_without_keys_everything_is_open_except_model_control() -> None:
    settings = Settings()
    for access in (Access.API_KEY, Access.ADMIN, Access.METRICS, Access.OPEN):
        check(access, {}, settings)
    with pytest.raises(Forbidden, match="GATECAST_MODEL_CONTROL=true"):
        check(Access.CONTROL, {}, settings)
    check(Access.CONTROL, {}, Settings(model_control=True))


def test_with_keys_an_api_key_does_not_open_admin_routes() -> None:
    settings = Settings(api_keys=["user"], admin_keys=["admin"], model_control=True, metrics_need_key=True)
    user, admin = {"x-api-key": "user"}, {"x-api-key": "admin"}
    check(Access.API_KEY, user, settings)
    check(Access.API_KEY, admin, settings)  # an admin key is an API key too
    check(Access.METRICS, user, settings)
    for access in (Access.ADMIN, Access.CONTROL):
        with pytest.raises(Unauthorized, match="admin key"):
            check(access, user, settings)
        check(access, admin, settings)
    with pytest.raises(Unauthorized, match="missing or invalid API key"):
        check(Access.METRICS, {}, settings)
    with pytest.raises(Unauthorized):
        check(Access.API_KEY, {"x-api-key": "user "}, settings)  # a near miss is a miss
