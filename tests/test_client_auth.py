"""Tokens against the real emulator: one per lifetime, refreshed in time, failures not hammered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ocrwatch.aspose import OcrClient
from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.errors import ApiUnavailable, AuthenticationError
from ocrwatch.model import Credentials, Mode, RecognitionSettings, TaskStatus

CREDENTIALS = Credentials("test-client", "test-secret")
WRONG = Credentials("test-client", "not-the-secret")
UNKNOWN_TASK = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(credentials=CREDENTIALS)


@pytest.fixture
def client(emu: Emulator) -> Iterator[OcrClient]:
    with OcrClient(emu.base_url, credentials=CREDENTIALS, pool_size=8) as ocr:
        yield ocr


def test_eight_threads_share_one_token(client: OcrClient, emu: Emulator) -> None:
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def poll() -> None:
        try:
            start.wait()  # released together, so all eight race for the first token
            for _ in range(5):
                client.status(UNKNOWN_TASK, mode=Mode.IMAGE)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    stats = emu.stats()
    assert stats.status_probes == 40
    assert stats.token_requests == 1
    assert stats.unauthorized == 0


def test_a_token_is_renewed_before_it_expires(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(credentials=CREDENTIALS, token_lifetime_seconds=2.0)
    with OcrClient(emu.base_url, credentials=CREDENTIALS) as client:
        task_id = client.submit(Mode.IMAGE, make_png("renew"), RecognitionSettings())
        deadline = time.monotonic() + 10.0
        while emu.stats().token_requests < 2:
            assert time.monotonic() < deadline, "the token was never renewed"
            assert client.status(task_id, mode=Mode.IMAGE).task_status is not None
            time.sleep(0.05)
        result = client.fetch(task_id, mode=Mode.IMAGE)

    assert result.task_status is TaskStatus.COMPLETED
    assert emu.stats().token_requests == 2


def test_a_revoked_token_costs_one_401_and_one_refresh(client: OcrClient, emu: Emulator) -> None:
    task_id = client.submit(Mode.IMAGE, make_png("revoked"), RecognitionSettings())
    emu.expire_tokens()

    result = client.fetch(task_id, mode=Mode.IMAGE)

    assert result.task_status in (TaskStatus.COMPLETED, TaskStatus.PENDING, TaskStatus.PROCESSING)
    stats = emu.stats()
    assert stats.unauthorized == 1
    assert stats.token_requests == 2


def test_a_submit_is_repeated_once_after_a_401_and_creates_one_task(
    client: OcrClient, emu: Emulator
) -> None:
    client.status(UNKNOWN_TASK, mode=Mode.IMAGE)
    emu.expire_tokens()

    task_id = client.submit(Mode.IMAGE, make_png("after 401"), RecognitionSettings())

    assert client.fetch(task_id, mode=Mode.IMAGE).task_status is not TaskStatus.NOT_EXIST
    stats = emu.stats()
    assert stats.unauthorized == 1
    assert sum(stats.tasks_by_status.values()) == 1


def test_a_401_that_survives_a_fresh_token_is_an_authentication_error(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(credentials=CREDENTIALS, faults=Faults(token_lifetime_seconds=0.0))
    with (
        OcrClient(emu.base_url, credentials=CREDENTIALS) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.status(UNKNOWN_TASK, mode=Mode.IMAGE)

    assert caught.value.status_code == 401
    stats = emu.stats()
    assert stats.unauthorized == 2
    assert stats.token_requests == 2


def test_wrong_credentials_fail_clearly_without_hammering_the_token_endpoint(
    emu: Emulator,
) -> None:
    with OcrClient(emu.base_url, credentials=WRONG) as client:
        errors = []
        for _ in range(20):
            with pytest.raises(AuthenticationError) as caught:
                client.submit(Mode.IMAGE, make_png("nope"), RecognitionSettings())
            errors.append(caught.value)

    assert "check the client id and client secret" in str(errors[0])
    assert all(str(e) == str(errors[0]) for e in errors)
    stats = emu.stats()
    assert stats.token_failures == 1
    assert sum(stats.submits.values()) == 0


def test_a_locked_out_credential_is_unavailable_with_the_retry_after(emu: Emulator) -> None:
    # Each client remembers its own refusal, so a lockout takes several clients (restarts).
    for _ in range(5):
        with (
            OcrClient(emu.base_url, credentials=WRONG) as client,
            pytest.raises(AuthenticationError),
        ):
            client.status(UNKNOWN_TASK, mode=Mode.IMAGE)

    with OcrClient(emu.base_url, credentials=WRONG) as client:
        with pytest.raises(ApiUnavailable) as first:
            client.status(UNKNOWN_TASK, mode=Mode.IMAGE)
        requests_after_lockout = emu.stats().token_requests
        with pytest.raises(ApiUnavailable) as second:
            client.status(UNKNOWN_TASK, mode=Mode.IMAGE)

    assert first.value.status_code == 429
    assert first.value.retry_after_seconds is not None
    assert 590 <= first.value.retry_after_seconds <= 600
    assert second.value.retry_after_seconds is not None
    assert second.value.retry_after_seconds <= first.value.retry_after_seconds
    assert emu.stats().token_requests == requests_after_lockout
