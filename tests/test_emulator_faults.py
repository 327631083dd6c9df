"""Injected faults: seeded, counted, and never corrupting the emulator's state."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable

import pytest
import requests
from conftest import TEST_CREDENTIALS_ID, TEST_CREDENTIALS_SECRET, EmulatorApi

from ocrwatch.emulator import Emulator, Faults, samples

ApiFactory = Callable[[Emulator], EmulatorApi]
PNG = samples.make_png("fault tolerant")
SERVER_ERRORS = {500, 502, 503, 504}


def _ready_api(emulator: Emulator, emulator_api: ApiFactory) -> EmulatorApi:
    api = emulator_api(emulator)
    api.token()  # fetched before faults are switched on
    return api


def test_server_errors_create_no_task_and_are_counted(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = _ready_api(emulator, emulator_api)
    emulator.set_faults(Faults(server_error=1.0))
    statuses = {api.post("RecognizeImage", PNG).status_code for _ in range(12)}
    assert statuses <= SERVER_ERRORS
    assert len(statuses) > 1  # a mix of 500, 502, 503 and 504
    stats = emulator.stats()
    assert stats.faults["server_error"] == 12
    assert stats.submits == {}
    assert stats.tasks_by_status == {}


def test_token_endpoint_gets_server_errors_too(emulator: Emulator) -> None:
    emulator.set_faults(Faults(server_error=1.0))
    response = requests.post(
        f"{emulator.base_url}/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": TEST_CREDENTIALS_ID,
            "client_secret": TEST_CREDENTIALS_SECRET,
        },
        timeout=10,
    )
    assert response.status_code in SERVER_ERRORS


def test_too_many_requests_carries_retry_after_and_spares_the_token_endpoint(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    emulator.set_faults(Faults(too_many_requests=1.0, retry_after_seconds=2.5))
    api = emulator_api(emulator)
    api.token()  # the token endpoint's only 429 is the real lockout
    response = api.post("RecognizeImage", PNG)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"  # whole seconds, rounded up
    stats = emulator.stats()
    assert stats.faults == {"too_many_requests": 1}
    assert stats.submits == {}


def test_connection_reset_sends_rst_and_creates_no_task(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = _ready_api(emulator, emulator_api)
    emulator.set_faults(Faults(connection_reset=1.0))
    body = json.dumps({"image": base64.b64encode(PNG).decode(), "settings": {}}).encode()
    request = (
        b"POST /v5.0/ocr/RecognizeImage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api.token()}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as connection:
        connection.sendall(request)
        with pytest.raises(ConnectionResetError):
            while connection.recv(65536):
                pass  # any bytes would be a response; there must be none
    with pytest.raises(requests.ConnectionError):
        api.post("RecognizeImage", PNG)
    stats = emulator.stats()
    assert stats.faults["connection_reset"] == 2
    assert stats.submits == {}


def test_task_error_fault_ends_the_task_in_error(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = _ready_api(emulator, emulator_api)
    emulator.set_faults(Faults(task_error=1.0))
    body = api.wait("RecognizeImage", api.submit("RecognizeImage", PNG))
    assert body["taskStatus"] == "Error"
    assert body["error"]["messages"]
    assert emulator.stats().faults == {"task_error": 1}


def test_stuck_task_stays_processing_without_holding_its_slot(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(slots=1)
    api = _ready_api(emulator, emulator_api)
    emulator.set_faults(Faults(task_stuck=1.0))
    stuck = api.submit("RecognizeImage", PNG)
    deadline = time.monotonic() + 10
    while api.get("RecognizeImage", stuck)["taskStatus"] != "Processing":
        assert time.monotonic() < deadline
    emulator.set_faults(Faults())
    healthy = api.submit("RecognizeImage", PNG)
    assert api.wait("RecognizeImage", healthy)["taskStatus"] == "Completed"
    assert api.get("RecognizeImage", stuck)["taskStatus"] == "Processing"
    assert emulator.stats().faults == {"task_stuck": 1}


def test_latency_delays_answers_and_a_timed_out_post_still_created_its_task(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = _ready_api(emulator, emulator_api)
    emulator.set_faults(Faults(latency_seconds=(0.3, 0.3)))
    with pytest.raises(requests.Timeout):
        api.http.post(
            f"{emulator.base_url}/v5.0/ocr/RecognizeImage",
            json={"image": base64.b64encode(PNG).decode(), "settings": {}},
            headers=api.headers(),
            timeout=(5, 0.05),
        )
    stats = emulator.stats()
    assert stats.submits == {"RecognizeImage": 1}  # the outcome the client never learned
    assert stats.faults["latency"] >= 1
    started = time.monotonic()
    api.get("RecognizeImage", "any-id")
    assert time.monotonic() - started >= 0.3


def test_latency_never_delays_the_token_endpoint(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    emulator.set_faults(Faults(latency_seconds=(30.0, 30.0)))
    api = emulator_api(emulator)
    api.token()  # would time out after 10 s if it were delayed
    with pytest.raises(requests.Timeout):
        api.http.get(
            f"{emulator.base_url}/v5.0/ocr/RecognizeImage",
            params={"id": "x"},
            headers=api.headers(),
            timeout=(5, 0.05),
        )


def _statuses(emulator: Emulator, api: EmulatorApi, count: int) -> list[int]:
    url = f"{emulator.base_url}/v5.0/ocr/RecognizeImage"
    return [
        api.http.get(url, params={"id": "x"}, headers=api.headers(), timeout=10).status_code
        for _ in range(count)
    ]


def test_faults_are_reproducible_from_the_seed(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    faults = Faults(server_error=0.3, too_many_requests=0.2)
    runs = []
    for _ in range(2):
        emulator = make_emulator(seed=42)
        api = _ready_api(emulator, emulator_api)
        emulator.set_faults(faults)
        runs.append(_statuses(emulator, api, 40))
    assert runs[0] == runs[1]
    assert {200, 429} <= set(runs[0])
    assert set(runs[0]) & SERVER_ERRORS
    other = make_emulator(seed=7)
    other_api = _ready_api(other, emulator_api)
    other.set_faults(faults)
    assert _statuses(other, other_api, 40) != runs[0]


def test_partial_faults_count_exactly_and_tasks_match_successful_posts(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(seed=3)
    api = _ready_api(emulator, emulator_api)
    emulator.set_faults(Faults(server_error=0.3, too_many_requests=0.3))
    statuses = [api.post("RecognizeImage", PNG).status_code for _ in range(30)]
    stats = emulator.stats()
    assert stats.submits.get("RecognizeImage", 0) == statuses.count(200)
    assert sum(stats.tasks_by_status.values()) == statuses.count(200)
    assert stats.faults.get("too_many_requests", 0) == statuses.count(429)
    assert stats.faults.get("server_error", 0) == sum(s in SERVER_ERRORS for s in statuses)
