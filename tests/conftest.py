"""Test guards shared by the whole suite: no leaked threads, no stray warnings (pyproject)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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
