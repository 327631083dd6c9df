"""Test guards shared by the whole suite: no leaked threads, no stray warnings (pyproject)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from ocrwatch.emulator import Emulator, EmulatorConfig
from ocrwatch.model import Credentials


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread of its own running after its fixtures are torn down."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


# --- The emulator: a real Aspose.OCR Cloud v5 compatible server on 127.0.0.1 ---------------

TEST_CREDENTIALS_ID = "test-client"
TEST_CREDENTIALS_SECRET = "test-secret"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator with default settings that accepts the test credentials."""
    config = EmulatorConfig(credentials=Credentials(TEST_CREDENTIALS_ID, TEST_CREDENTIALS_SECRET))
    with Emulator(config) as running:
        yield running


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with ``EmulatorConfig`` field overrides; all are stopped at teardown.

    Credentials default to the test credentials; pass ``credentials=None`` to accept any.
    """
    started: list[Emulator] = []

    def make(**overrides: Any) -> Emulator:
        overrides.setdefault(
            "credentials", Credentials(TEST_CREDENTIALS_ID, TEST_CREDENTIALS_SECRET)
        )
        instance = Emulator(EmulatorConfig(**overrides))
        instance.start()
        started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()


class EmulatorApi:
    """A bare HTTP client of the emulator for its own tests (deliberately not ocrwatch.aspose)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            response = self.http.post(
                f"{self.base_url}/connect/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": TEST_CREDENTIALS_ID,
                    "client_secret": TEST_CREDENTIALS_SECRET,
                },
                timeout=10,
            )
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def post(
        self, resource: str, image: bytes, settings: dict[str, Any] | None = None
    ) -> requests.Response:
        body = {"image": base64.b64encode(image).decode("ascii"), "settings": settings or {}}
        return self.http.post(
            f"{self.base_url}/v5.0/ocr/{resource}", json=body, headers=self.headers(), timeout=30
        )

    def submit(self, resource: str, image: bytes, settings: dict[str, Any] | None = None) -> str:
        response = self.post(resource, image, settings)
        assert response.status_code == 200, response.text
        return response.text

    def get(self, resource: str, task_id: str) -> dict[str, Any]:
        response = self.http.get(
            f"{self.base_url}/v5.0/ocr/{resource}",
            params={"id": task_id},
            headers=self.headers(),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(self, resource: str, task_id: str, *, timeout_seconds: float = 20.0) -> dict[str, Any]:
        """Poll until the task is Completed, Error or NotExist; fail at the deadline."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            body = self.get(resource, task_id)
            if body["taskStatus"] in ("Completed", "Error", "NotExist"):
                return body
            assert time.monotonic() < deadline, f"task {task_id} still {body['taskStatus']}"
            time.sleep(0.01)

    def recognize(
        self, resource: str, image: bytes, settings: dict[str, Any] | None = None
    ) -> list[tuple[str, bytes]]:
        """Submit, wait for Completed, and return the decoded ``results`` as (type, data)."""
        body = self.wait(resource, self.submit(resource, image, settings))
        assert body["taskStatus"] == "Completed", body
        return [(item["type"], base64.b64decode(item["data"])) for item in body["results"]]


@pytest.fixture
def emulator_api() -> Iterator[Callable[[Emulator], EmulatorApi]]:
    """Make a test HTTP client for a running emulator (sessions closed at teardown)."""
    clients: list[EmulatorApi] = []

    def make(instance: Emulator) -> EmulatorApi:
        clients.append(EmulatorApi(instance.base_url))
        return clients[-1]

    yield make
    for client in clients:
        client.http.close()
