"""How the client fails, against the real emulator: every fault lands in the right class."""

from __future__ import annotations

import random
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.errors import (
    ApiRejected,
    ApiUnavailable,
    ConfigError,
    InvalidSetting,
    SubmitOutcomeUnknown,
)
from ocrwatch.model import Credentials, Mode, RecognitionSettings, TaskStatus

CREDENTIALS = Credentials("test-client", "test-secret")
UNKNOWN_TASK = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(credentials=CREDENTIALS)


@pytest.fixture
def client(emu: Emulator) -> Iterator[OcrClient]:
    with OcrClient(
        emu.base_url, credentials=CREDENTIALS, timeouts=Timeouts(read_seconds=0.5)
    ) as ocr:
        ocr.status(UNKNOWN_TASK, mode=Mode.IMAGE)  # holds a token before faults are switched on
        yield ocr


def submit_png(client: OcrClient, text: str = "hello") -> str:
    return client.submit(Mode.IMAGE, make_png(text), RecognitionSettings())


def test_server_errors_are_unavailable_for_polls_and_submits(
    client: OcrClient, emu: Emulator
) -> None:
    emu.set_faults(Faults(server_error=1.0))

    with pytest.raises(ApiUnavailable) as on_fetch:
        client.fetch(UNKNOWN_TASK, mode=Mode.IMAGE)
    with pytest.raises(ApiUnavailable) as on_submit:
        submit_png(client)

    # The server answered the POST, so the outcome is known: nothing was created.
    assert not isinstance(on_submit.value, SubmitOutcomeUnknown)
    assert on_fetch.value.status_code is not None
    assert on_fetch.value.status_code >= 500
    assert on_submit.value.status_code is not None
    assert on_submit.value.status_code >= 500
    assert sum(emu.stats().tasks_by_status.values()) == 0


def test_throttling_hands_the_retry_after_back_to_the_caller(
    client: OcrClient, emu: Emulator
) -> None:
    emu.set_faults(Faults(too_many_requests=1.0, retry_after_seconds=7.0))

    with pytest.raises(ApiUnavailable) as caught:
        submit_png(client)

    assert caught.value.status_code == 429
    assert caught.value.retry_after_seconds == 7.0


def test_a_reset_after_a_post_was_sent_is_an_unknown_outcome(
    client: OcrClient, emu: Emulator
) -> None:
    emu.set_faults(Faults(connection_reset=1.0))

    with pytest.raises(SubmitOutcomeUnknown):
        submit_png(client)

    assert sum(emu.stats().submits.values()) <= 1  # never repeated by the client


def test_a_reset_poll_is_retried_briefly_then_unavailable(client: OcrClient, emu: Emulator) -> None:
    emu.set_faults(Faults(connection_reset=1.0))

    with pytest.raises(ApiUnavailable):
        client.fetch(UNKNOWN_TASK, mode=Mode.IMAGE)

    assert emu.stats().faults.get("connection_reset", 0) == 3


def test_a_post_whose_answer_times_out_is_unknown_and_sent_once(
    client: OcrClient, emu: Emulator
) -> None:
    emu.set_faults(Faults(latency_seconds=(1.5, 1.5)))

    with pytest.raises(SubmitOutcomeUnknown) as caught:
        submit_png(client)

    assert "may exist" in str(caught.value)
    stats = emu.stats()
    assert sum(stats.submits.values()) == 1
    # The task really exists: resubmitting blindly would have billed it twice.
    assert sum(stats.tasks_by_status.values()) == 1


def test_a_poll_whose_answer_times_out_is_retried_then_unavailable(
    client: OcrClient, emu: Emulator
) -> None:
    emu.set_faults(Faults(latency_seconds=(1.0, 1.0)))
    probes_before = emu.stats().status_probes

    with pytest.raises(ApiUnavailable):
        client.status(UNKNOWN_TASK, mode=Mode.IMAGE)

    assert emu.stats().status_probes - probes_before == 3


def test_a_stopped_service_is_unavailable_and_work_resumes_after_it_returns(
    client: OcrClient, emu: Emulator
) -> None:
    task_id = submit_png(client, "outage")
    emu.stop()
    try:
        with pytest.raises(ApiUnavailable):
            client.status(task_id, mode=Mode.IMAGE)
        # Connection refused provably sent nothing, so this is not an unknown outcome.
        with pytest.raises(ApiUnavailable) as on_submit:
            submit_png(client)
        assert not isinstance(on_submit.value, SubmitOutcomeUnknown)
    finally:
        emu.start()

    deadline = time.monotonic() + 10.0
    while (result := client.fetch(task_id, mode=Mode.IMAGE)).task_status is not (
        TaskStatus.COMPLETED
    ):
        assert time.monotonic() < deadline, f"still {result.task_status}"
        time.sleep(0.02)
    assert result.results[0].data.decode() == "outage"


def test_a_request_the_service_refuses_is_rejected_with_its_detail(client: OcrClient) -> None:
    settings = RecognitionSettings(rotate=2**40)  # beyond the API's int32

    with pytest.raises(ApiRejected) as caught:
        client.submit(Mode.IMAGE, make_png("x"), settings)

    assert caught.value.status_code == 400
    assert "Rotate" in caught.value.detail or "rotate" in caught.value.detail


@pytest.mark.parametrize(
    "base_url",
    ["http://10.1.2.3:8080", "http://ocr.internal", "ftp://127.0.0.1", "https://", "127.0.0.1"],
)
def test_unsafe_or_malformed_base_urls_are_config_errors(base_url: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        OcrClient(base_url, credentials=CREDENTIALS)


@pytest.mark.parametrize(
    "base_url",
    ["https://ocr.internal", "http://localhost:8080/", "http://127.0.0.9:1", "http://[::1]:8080"],
)
def test_https_anywhere_and_http_on_loopback_are_accepted(base_url: str) -> None:
    with OcrClient(base_url, credentials=CREDENTIALS) as client:
        assert not client.is_trial


def test_bad_settings_fail_before_any_request(emu: Emulator) -> None:
    with OcrClient(emu.base_url, credentials=CREDENTIALS) as client:
        with pytest.raises(InvalidSetting) as no_regions:
            client.submit(Mode.REGIONS, make_png("x"), RecognitionSettings())
        with pytest.raises(InvalidSetting) as bad_mode:
            client.submit("table", make_png("x"), RecognitionSettings())  # type: ignore[arg-type]

    assert no_regions.value.field_name == "regions"
    assert bad_mode.value.field_name == "mode"
    stats = emu.stats()
    assert stats.token_requests == 0
    assert sum(stats.submits.values()) == 0


def big_png(text: str, *, padding_bytes: int) -> bytes:
    """A valid PNG made large by a private ancillary chunk, which decoders skip."""
    png = make_png(text)
    payload = random.Random(1).randbytes(padding_bytes)
    crc = zlib.crc32(b"ruBb" + payload) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(payload)) + b"ruBb" + payload + struct.pack(">I", crc)
    return png[:-12] + chunk + png[-12:]  # before IEND


def test_a_20_mb_file_uploads_from_disk_and_is_recognised(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(big_png("a very large scan", padding_bytes=20 * 1024 * 1024))

    with (
        OcrClient(emu.base_url, credentials=CREDENTIALS) as client,
        path.open("rb") as source,
    ):
        task_id = client.submit(Mode.IMAGE, source, RecognitionSettings())
        deadline = time.monotonic() + 30.0
        while not (result := client.fetch(task_id, mode=Mode.IMAGE)).task_status.is_finished:
            assert time.monotonic() < deadline, f"still {result.task_status}"
            time.sleep(0.05)

    assert result.task_status is TaskStatus.COMPLETED
    assert result.results[0].data.decode() == "a very large scan"
