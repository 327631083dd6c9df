"""The emulator's task life cycle, routing and response shapes, over real HTTP."""

from __future__ import annotations

import base64
import http.client
import time
import uuid
from collections.abc import Callable

import pytest
import requests
from conftest import EmulatorApi

from ocrwatch.emulator import Emulator, samples

ApiFactory = Callable[[Emulator], EmulatorApi]
OCR_RESPONSE_FIELDS = {"id", "responseStatusCode", "taskStatus", "results", "error"}
PNG = samples.make_png("Hello world\nsecond line")


def test_post_returns_a_bare_guid_as_plain_text(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    response = emulator_api(emulator).post("RecognizeImage", PNG)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == str(uuid.UUID(response.text))  # no quotes, no newline


def test_completed_response_has_exactly_the_documented_fields(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = emulator_api(emulator)
    task_id = api.submit("RecognizeImage", PNG)
    body = api.wait("RecognizeImage", task_id)
    assert set(body) == OCR_RESPONSE_FIELDS
    assert body["id"] == task_id
    assert (body["taskStatus"], body["responseStatusCode"], body["error"]) == (
        "Completed",
        "Ok",
        None,
    )
    assert [set(item) for item in body["results"]] == [{"type", "data"}]
    assert base64.b64decode(body["results"][0]["data"]) == b"Hello world\nsecond line"
    response = api.http.get(
        f"{emulator.base_url}/v5.0/ocr/RecognizeImage",
        params={"id": task_id},
        headers=api.headers(),
        timeout=10,
    )
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_task_goes_pending_processing_completed_over_time(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(processing_seconds=(0.3, 0.3), slots=1)
    api = emulator_api(emulator)
    first = api.submit("RecognizeImage", PNG)
    second = api.submit("RecognizeImage", PNG)
    seen: dict[str, list[str]] = {first: [], second: []}
    deadline = time.monotonic() + 10
    while not all(statuses[-1:] == ["Completed"] for statuses in seen.values()):
        assert time.monotonic() < deadline
        for task_id, statuses in seen.items():
            body = api.get("RecognizeImage", task_id)
            if not statuses or statuses[-1] != body["taskStatus"]:
                statuses.append(body["taskStatus"])
            if body["taskStatus"] != "Completed":
                assert body["responseStatusCode"] == "NotReady"
                assert body["results"] is None
    # The slot may not have picked the first task up yet when it is first read (a loaded
    # machine): it is then Pending, but it always goes through Processing to Completed.
    assert seen[first] in (["Processing", "Completed"], ["Pending", "Processing", "Completed"])
    # With one slot the second task waits for the first: it is seen Pending first.
    assert seen[second] == ["Pending", "Processing", "Completed"]


def test_one_slot_never_processes_two_tasks_at_once(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(processing_seconds=(0.15, 0.15), slots=1)
    api = emulator_api(emulator)
    task_ids = [api.submit("RecognizeImage", PNG) for _ in range(3)]
    deadline = time.monotonic() + 10
    while True:
        by_status = emulator.stats().tasks_by_status  # one consistent snapshot of the table
        assert by_status.get("Processing", 0) <= 1, by_status
        if by_status == {"Completed": 3}:
            break
        assert time.monotonic() < deadline
    for task_id in task_ids:
        assert api.get("RecognizeImage", task_id)["taskStatus"] == "Completed"


def test_several_slots_process_in_parallel(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(processing_seconds=(0.5, 0.5), slots=3)
    api = emulator_api(emulator)
    task_ids = [api.submit("RecognizeImage", PNG) for _ in range(3)]
    deadline = time.monotonic() + 10
    while emulator.stats().tasks_by_status.get("Processing", 0) < 3:
        assert time.monotonic() < deadline, emulator.stats().tasks_by_status
    for task_id in task_ids:
        assert api.wait("RecognizeImage", task_id)["taskStatus"] == "Completed"


@pytest.mark.parametrize(
    ("path", "probe"),
    [
        ("/v5.0/ocr/RecognizeImage", "/v5.0/ocr/Utilities/GetTaskStatus"),
        ("/v5.0/RecognizeImage", "/v5.0/Utilities/GetTaskStatus"),
        ("/v5.0/ocr/recognizeimage", "/v5.0/ocr/utilities/gettaskstatus"),
        ("/v5.0/recognizeimage", "/v5.0/utilities/gettaskstatus"),
        ("/V5.0/OCR/RECOGNIZEIMAGE", "/V5.0/OCR/UTILITIES/GETTASKSTATUS"),
    ],
)
def test_route_spellings(
    emulator: Emulator, emulator_api: ApiFactory, path: str, probe: str
) -> None:
    api = emulator_api(emulator)
    body = {"image": base64.b64encode(PNG).decode(), "settings": {}}
    url = emulator.base_url + path
    task_id = api.http.post(url, json=body, headers=api.headers(), timeout=10).text
    deadline = time.monotonic() + 10
    while (
        got := api.http.get(url, params={"id": task_id}, headers=api.headers(), timeout=10)
    ).json()["taskStatus"] != "Completed":
        assert time.monotonic() < deadline
    assert got.status_code == 200
    status = api.http.get(
        emulator.base_url + probe, params={"id": task_id}, headers=api.headers(), timeout=10
    )
    assert status.json()["taskStatus"] == "Completed"


@pytest.mark.parametrize("path", ["/v5.0/ocr/RecognizeReceipt", "/v4.0/ocr/RecognizeImage", "/"])
def test_unknown_routes_are_404(emulator: Emulator, emulator_api: ApiFactory, path: str) -> None:
    api = emulator_api(emulator)
    response = api.http.post(emulator.base_url + path, json={}, headers=api.headers(), timeout=10)
    assert response.status_code == 404


def test_status_probe_never_carries_results(emulator: Emulator, emulator_api: ApiFactory) -> None:
    api = emulator_api(emulator)
    task_id = api.submit("RecognizeImage", PNG)
    api.wait("RecognizeImage", task_id)
    response = api.http.get(
        f"{emulator.base_url}/v5.0/ocr/Utilities/GetTaskStatus",
        params={"id": task_id},
        headers=api.headers(),
        timeout=10,
    )
    body = response.json()
    assert set(body) == OCR_RESPONSE_FIELDS
    assert (body["taskStatus"], body["responseStatusCode"], body["results"]) == (
        "Completed",
        "Ok",
        None,
    )
    stats = emulator.stats()
    assert stats.status_probes == 1
    assert stats.fetches >= 1


def test_tasks_are_global_by_id_across_resources(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = emulator_api(emulator)
    task_id = api.submit("RecognizeImage", PNG)
    assert api.wait("RecognizeLabel", task_id)["taskStatus"] == "Completed"


def test_unknown_id_reads_not_exist(emulator: Emulator, emulator_api: ApiFactory) -> None:
    body = emulator_api(emulator).get("RecognizeImage", str(uuid.uuid4()))
    assert set(body) == OCR_RESPONSE_FIELDS
    assert (body["taskStatus"], body["responseStatusCode"], body["results"], body["error"]) == (
        "NotExist",
        "TaskNotFound",
        None,
        None,
    )


def test_get_without_id_is_400(emulator: Emulator, emulator_api: ApiFactory) -> None:
    api = emulator_api(emulator)
    url = f"{emulator.base_url}/v5.0/ocr/RecognizeImage"
    response = api.http.get(url, headers=api.headers(), timeout=10)
    assert response.status_code == 400
    assert "id" in response.json()["errors"]


def test_delete_cancels_and_later_reads_are_not_exist(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(processing_seconds=(5.0, 5.0), slots=1)
    api = emulator_api(emulator)
    task_id = api.submit("RecognizeImage", PNG)
    response = api.http.delete(
        f"{emulator.base_url}/v5.0/ocr/RecognizeImage",
        params={"id": task_id},
        headers=api.headers(),
        timeout=10,
    )
    assert (response.status_code, response.content) == (200, b"")
    assert api.get("RecognizeImage", task_id)["taskStatus"] == "NotExist"
    assert emulator.stats().deletes == 1


def test_retention_expires_tasks(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(retention_seconds=0.3)
    api = emulator_api(emulator)
    task_id = api.submit("RecognizeImage", PNG)
    deadline = time.monotonic() + 10
    while api.get("RecognizeImage", task_id)["taskStatus"] != "NotExist":
        assert time.monotonic() < deadline
    assert emulator.stats().tasks_by_status == {}


def test_stop_and_start_keep_tasks_on_the_same_port(
    make_emulator: Callable[..., Emulator], emulator_api: ApiFactory
) -> None:
    emulator = make_emulator(processing_seconds=(0.2, 0.2), slots=1)
    api = emulator_api(emulator)
    done = api.submit("RecognizeImage", PNG)
    api.wait("RecognizeImage", done)
    waiting = api.submit("RecognizeImage", samples.make_png("after the outage"))
    url, port = emulator.base_url, emulator.port
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        api.http.get(f"{url}/v5.0/ocr/RecognizeImage", params={"id": done}, timeout=5)
    emulator.start()
    assert emulator.port == port
    assert api.get("RecognizeImage", done)["taskStatus"] == "Completed"
    body = api.wait("RecognizeImage", waiting)
    assert base64.b64decode(body["results"][0]["data"]) == b"after the outage"


def test_stop_cuts_keep_alive_connections(emulator: Emulator, emulator_api: ApiFactory) -> None:
    api = emulator_api(emulator)
    token = api.token()
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    connection.request(
        "GET", "/v5.0/ocr/RecognizeImage?id=x", headers={"Authorization": f"Bearer {token}"}
    )
    assert connection.getresponse().read()
    emulator.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        connection.request(
            "GET", "/v5.0/ocr/RecognizeImage?id=x", headers={"Authorization": f"Bearer {token}"}
        )
        connection.getresponse().read()
    connection.close()


def test_chunked_request_body(emulator: Emulator, emulator_api: ApiFactory) -> None:
    api = emulator_api(emulator)
    payload = b'{"image": "' + base64.b64encode(PNG) + b'", "settings": {"resultType": "Text"}}'

    def chunks() -> object:
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    response = api.http.post(
        f"{emulator.base_url}/v5.0/ocr/RecognizeImage",
        data=chunks(),
        headers={**api.headers(), "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200, response.text
    body = api.wait("RecognizeImage", response.text)
    assert base64.b64decode(body["results"][0]["data"]) == b"Hello world\nsecond line"


def test_keep_alive_connection_serves_many_requests(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = emulator_api(emulator)
    task_id = api.submit("RecognizeImage", PNG)
    api.wait("RecognizeImage", task_id)
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    headers = {"Authorization": f"Bearer {api.token()}"}
    for _ in range(20):
        connection.request("GET", f"/v5.0/ocr/RecognizeImage?id={task_id}", headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert response.read().startswith(b'{"id"')
    connection.close()
    assert emulator.stats().fetches >= 20


def test_stats_count_submits_per_resource_and_reset(
    emulator: Emulator, emulator_api: ApiFactory
) -> None:
    api = emulator_api(emulator)
    api.submit("RecognizeImage", PNG)
    api.submit("RecognizeLabel", PNG)
    api.submit("RecognizeLabel", PNG)
    assert emulator.stats().submits == {"RecognizeImage": 1, "RecognizeLabel": 2}
    emulator.reset_stats()
    stats = emulator.stats()
    assert stats.submits == {}
    assert sum(stats.tasks_by_status.values()) == 3  # tasks are state, not counters
