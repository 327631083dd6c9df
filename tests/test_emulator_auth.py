"""The emulator's token endpoint and bearer-token checks, over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
import requests
from conftest import TEST_CREDENTIALS_ID, TEST_CREDENTIALS_SECRET, EmulatorApi

from ocrwatch.emulator import Emulator, Faults, samples

TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": TEST_CREDENTIALS_ID,
    "client_secret": TEST_CREDENTIALS_SECRET,
}


def _token_response(emulator: Emulator, **kwargs: Any) -> requests.Response:
    return requests.post(f"{emulator.base_url}/connect/token", timeout=10, **kwargs)


def _assert_token(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    parts = body["access_token"].split(".")
    assert len(parts) == 3
    for part in parts:  # JWT-like: every part is base64url
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    token: str = body["access_token"]
    return token


def _recognize_image(emulator: Emulator, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = {"image": base64.b64encode(samples.make_png("hi")).decode(), "settings": {}}
    return requests.post(
        f"{emulator.base_url}/v5.0/ocr/RecognizeImage", json=body, headers=headers, timeout=10
    )


def test_form_urlencoded_token_works_for_the_api(emulator: Emulator) -> None:
    token = _assert_token(_token_response(emulator, data=TOKEN_FORM))
    assert _recognize_image(emulator, token).status_code == 200


def test_multipart_token_request(emulator: Emulator) -> None:
    files = {name: (None, value) for name, value in TOKEN_FORM.items()}
    response = _token_response(emulator, files=files)
    assert response.request.headers["Content-Type"].startswith("multipart/form-data")
    _assert_token(response)


def test_basic_client_authentication(emulator: Emulator) -> None:
    raw = (
        f"{urllib.parse.quote_plus(TEST_CREDENTIALS_ID)}:"
        f"{urllib.parse.quote_plus(TEST_CREDENTIALS_SECRET)}"
    )
    headers = {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
    response = _token_response(emulator, data={"grant_type": "client_credentials"}, headers=headers)
    _assert_token(response)


def test_bad_credentials_get_invalid_client(emulator: Emulator) -> None:
    response = _token_response(emulator, data={**TOKEN_FORM, "client_secret": "wrong"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": "invalid_client"}
    assert emulator.stats().token_failures == 1


def test_unsupported_grant_type(emulator: Emulator) -> None:
    response = _token_response(emulator, data={**TOKEN_FORM, "grant_type": "password"})
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_five_failures_lock_the_pair_out_but_other_credentials_still_work(
    emulator: Emulator,
) -> None:
    wrong = {**TOKEN_FORM, "client_secret": "wrong"}
    statuses = [_token_response(emulator, data=wrong).status_code for _ in range(5)]
    assert statuses == [400] * 5
    locked = _token_response(emulator, data=wrong)
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "600"
    # Changing either credential is a different pair: it is judged on its own merits.
    assert _token_response(emulator, data={**wrong, "client_secret": "other"}).status_code == 400
    _assert_token(_token_response(emulator, data=TOKEN_FORM))


def test_any_credentials_get_a_token_when_none_are_configured(
    make_emulator: Callable[..., Emulator],
) -> None:
    emulator = make_emulator(credentials=None)
    form = {**TOKEN_FORM, "client_id": "someone", "client_secret": "anything"}
    token = _assert_token(_token_response(emulator, data=form))
    assert _recognize_image(emulator, token).status_code == 200
    assert _recognize_image(emulator, None).status_code == 401  # a token is still required


def _assert_unauthorized(response: requests.Response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    assert body["status"] == 401


@pytest.mark.parametrize("token", [None, "not-a-token", "a.b.c"])
def test_missing_or_unknown_token_is_401_problem(emulator: Emulator, token: str | None) -> None:
    _assert_unauthorized(_recognize_image(emulator, token))


def test_every_authenticated_method_needs_a_token(emulator: Emulator) -> None:
    url = f"{emulator.base_url}/v5.0/ocr/RecognizeImage"
    _assert_unauthorized(requests.get(url, params={"id": "x"}, timeout=10))
    _assert_unauthorized(requests.delete(url, params={"id": "x"}, timeout=10))
    probe = f"{emulator.base_url}/v5.0/ocr/Utilities/GetTaskStatus"
    _assert_unauthorized(requests.get(probe, params={"id": "x"}, timeout=10))
    assert emulator.stats().unauthorized == 3


def test_trial_route_needs_no_token(
    emulator: Emulator, emulator_api: Callable[[Emulator], EmulatorApi]
) -> None:
    body = {"image": base64.b64encode(samples.make_png("free trial")).decode(), "settings": {}}
    url = f"{emulator.base_url}/v5.0/ocr/RecognizeImageTrial"
    task_id = requests.post(url, json=body, timeout=10).text
    deadline = time.monotonic() + 10
    while (result := requests.get(url, params={"id": task_id}, timeout=10).json())[
        "taskStatus"
    ] != "Completed":
        assert time.monotonic() < deadline
    assert base64.b64decode(result["results"][0]["data"]) == b"free trial"
    assert emulator_api(emulator).get("RecognizeImage", task_id)["taskStatus"] == "Completed"


def test_expire_tokens_forces_a_refresh(emulator: Emulator) -> None:
    token = _assert_token(_token_response(emulator, data=TOKEN_FORM))
    emulator.expire_tokens()
    _assert_unauthorized(_recognize_image(emulator, token))
    fresh = _assert_token(_token_response(emulator, data=TOKEN_FORM))
    assert _recognize_image(emulator, fresh).status_code == 200


def test_token_lifetime_fault_revokes_tokens_early_but_expires_in_is_unchanged(
    emulator: Emulator,
) -> None:
    emulator.set_faults(Faults(token_lifetime_seconds=0.0))
    response = _token_response(emulator, data=TOKEN_FORM)
    token = _assert_token(response)  # still says expires_in 3600
    _assert_unauthorized(_recognize_image(emulator, token))
    assert emulator.stats().faults["token_revoked_early"] == 1
    emulator.set_faults(Faults())
    assert _recognize_image(emulator, token).status_code == 200


def test_tokens_really_expire_after_their_lifetime(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(token_lifetime_seconds=0.2)
    response = _token_response(emulator, data=TOKEN_FORM)
    assert response.json()["expires_in"] == 0  # rounded: 0.2 s
    token = response.json()["access_token"]
    deadline = time.monotonic() + 5
    while _recognize_image(emulator, token).status_code != 401:
        assert time.monotonic() < deadline, "the token never expired"


def test_token_endpoint_refuses_get(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.base_url}/connect/token", timeout=10)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_secret_never_appears_in_the_token(emulator: Emulator) -> None:
    token = _assert_token(_token_response(emulator, data=TOKEN_FORM))
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert TEST_CREDENTIALS_SECRET not in json.dumps(claims)
    assert claims["client_id"] == TEST_CREDENTIALS_ID
