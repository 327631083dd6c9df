"""The OCR client against the real emulator over HTTP: every mode, resource and result type."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import pytest

from ocrwatch.aspose import OcrApi, OcrClient
from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_jpeg, make_pdf, make_png, make_tiff
from ocrwatch.errors import ConfigError
from ocrwatch.model import (
    Credentials,
    Mode,
    RecognitionSettings,
    Rect,
    Region,
    ResponseStatus,
    ResultType,
    TaskResult,
    TaskStatus,
)

CREDENTIALS = Credentials("test-client", "test-secret")
TEXT = "The quick brown fox\njumps over the lazy dog"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(credentials=CREDENTIALS)


@pytest.fixture
def client(emu: Emulator) -> Iterator[OcrClient]:
    with OcrClient(emu.base_url, credentials=CREDENTIALS) as ocr:
        yield ocr


def wait_until_finished(
    client: OcrApi, task_id: str, *, mode: Mode, timeout_seconds: float = 15.0
) -> TaskResult:
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = client.fetch(task_id, mode=mode)
        if result.task_status.is_finished:
            return result
        assert time.monotonic() < deadline, f"task {task_id} still {result.task_status}"
        time.sleep(0.02)


def text_of(result: TaskResult) -> str:
    return "\n".join(f.data.decode("utf-8") for f in result.results if f.type == "Text")


def hocr_words(document: bytes) -> list[str]:
    words: list[str] = []

    class Collector(HTMLParser):
        def handle_data(self, data: str) -> None:
            words.extend(data.split())

    Collector().feed(document.decode("utf-8"))
    return words


def json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in json_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in json_strings(item)]
    return []


@pytest.mark.parametrize(
    ("mode", "document"),
    [
        (Mode.IMAGE, make_png(TEXT)),
        (Mode.IMAGE, make_jpeg(TEXT)),
        (Mode.IMAGE, make_tiff(TEXT)),
        (Mode.LABEL, make_png(TEXT)),
    ],
    ids=["image-png", "image-jpeg", "image-tiff", "label-png"],
)
def test_a_submitted_image_comes_back_as_its_text(
    client: OcrClient, emu: Emulator, mode: Mode, document: bytes
) -> None:
    task_id = client.submit(mode, document, RecognitionSettings())

    result = wait_until_finished(client, task_id, mode=mode)

    assert result.task_status is TaskStatus.COMPLETED
    assert result.response_status is ResponseStatus.OK
    assert result.task_id == task_id
    assert text_of(result) == TEXT
    resource = {Mode.IMAGE: "RecognizeImage", Mode.LABEL: "RecognizeLabel"}[mode]
    assert emu.stats().submits == {resource: 1}


def test_a_pdf_is_recognised_page_by_page(client: OcrClient, emu: Emulator) -> None:
    task_id = client.submit(
        Mode.PDF, make_pdf(["first page", "second page"]), RecognitionSettings()
    )

    result = wait_until_finished(client, task_id, mode=Mode.PDF)

    assert result.task_status is TaskStatus.COMPLETED
    text = text_of(result)
    assert text.index("first page") < text.index("second page")
    assert emu.stats().submits == {"RecognizePdf": 1}


def test_regions_come_back_one_result_each_in_their_order(client: OcrClient) -> None:
    page = make_png("alpha line\nbravo line\ncharlie line", width=600, height=300)
    settings = RecognitionSettings(
        regions=(
            Region(Rect(0, 0, 600, 100), order=2, name="top"),
            Region(Rect(0, 200, 600, 300), order=1, name="bottom"),
        )
    )

    task_id = client.submit(Mode.REGIONS, page, settings)
    result = wait_until_finished(client, task_id, mode=Mode.REGIONS)

    assert result.task_status is TaskStatus.COMPLETED
    assert [f.data.decode().strip() for f in result.results] == ["charlie line", "alpha line"]


def test_a_file_object_is_uploaded_from_its_current_position(client: OcrClient) -> None:
    source = io.BytesIO(b"junk" + make_png(TEXT))
    source.seek(4)

    task_id = client.submit(Mode.IMAGE, source, RecognitionSettings())

    assert text_of(wait_until_finished(client, task_id, mode=Mode.IMAGE)) == TEXT


def test_every_result_type_decodes_to_its_format(client: OcrClient) -> None:
    settings = RecognitionSettings(result_type=ResultType.TEXT_AND_PDF_AND_HOCR)

    task_id = client.submit(Mode.IMAGE, make_png(TEXT), settings)
    result = wait_until_finished(client, task_id, mode=Mode.IMAGE)

    files = {f.type: f.data for f in result.results}
    assert list(files) == ["Text", "Pdf", "Hocr"]
    assert files["Text"].decode() == TEXT
    assert files["Pdf"].startswith(b"%PDF")
    words = hocr_words(files["Hocr"])
    assert all(word in words for word in TEXT.split())


def test_json_result_parses_and_holds_the_text(client: OcrClient) -> None:
    settings = RecognitionSettings(result_type=ResultType.JSON)

    task_id = client.submit(Mode.IMAGE, make_png(TEXT), settings)
    result = wait_until_finished(client, task_id, mode=Mode.IMAGE)

    (only,) = result.results
    assert only.type == "JSON"
    strings = " ".join(json_strings(json.loads(only.data)))
    assert all(word in strings for word in TEXT.split())


def test_the_status_probe_reports_progress_without_results(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(credentials=CREDENTIALS, processing_seconds=(0.3, 0.3))
    with OcrClient(emu.base_url, credentials=CREDENTIALS) as client:
        task_id = client.submit(Mode.IMAGE, make_png(TEXT), RecognitionSettings())

        first = client.status(task_id, mode=Mode.IMAGE)
        deadline = time.monotonic() + 10.0
        seen = [first.task_status]
        while seen[-1] is not TaskStatus.COMPLETED:
            assert time.monotonic() < deadline, f"still {seen[-1]}"
            time.sleep(0.02)
            seen.append(client.status(task_id, mode=Mode.IMAGE).task_status)
        done = client.fetch(task_id, mode=Mode.IMAGE)

    assert first.task_status in (TaskStatus.PENDING, TaskStatus.PROCESSING)
    assert first.response_status is ResponseStatus.NOT_READY
    assert first.results == ()
    assert text_of(done) == TEXT
    assert emu.stats().status_probes == len(seen)


def test_an_unknown_task_reads_as_not_exist(client: OcrClient) -> None:
    result = client.fetch("00000000-0000-0000-0000-000000000000", mode=Mode.IMAGE)

    assert result.task_status is TaskStatus.NOT_EXIST
    assert result.response_status is ResponseStatus.TASK_NOT_FOUND


def test_a_task_reads_as_not_exist_after_retention(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(credentials=CREDENTIALS, retention_seconds=0.3)
    with OcrClient(emu.base_url, credentials=CREDENTIALS) as client:
        task_id = client.submit(Mode.IMAGE, make_png(TEXT), RecognitionSettings())
        assert wait_until_finished(client, task_id, mode=Mode.IMAGE).task_status in (
            TaskStatus.COMPLETED,
            TaskStatus.NOT_EXIST,
        )
        deadline = time.monotonic() + 10.0
        while (result := client.fetch(task_id, mode=Mode.IMAGE)).task_status is not (
            TaskStatus.NOT_EXIST
        ):
            assert time.monotonic() < deadline, f"still {result.task_status}"
            time.sleep(0.05)

    assert result.results == ()


def test_a_cancelled_task_is_gone(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(credentials=CREDENTIALS, processing_seconds=(30.0, 30.0), slots=1)
    with OcrClient(emu.base_url, credentials=CREDENTIALS) as client:
        task_id = client.submit(Mode.LABEL, make_png(TEXT), RecognitionSettings())

        client.cancel(task_id, mode=Mode.LABEL)

        result = client.fetch(task_id, mode=Mode.LABEL)
    assert result.task_status is TaskStatus.NOT_EXIST
    assert emu.stats().deletes == 1


def test_trial_mode_recognises_images_without_a_token(emu: Emulator) -> None:
    with OcrClient(emu.base_url, credentials=None) as client:
        assert client.is_trial
        task_id = client.submit(Mode.IMAGE, make_png(TEXT), RecognitionSettings())
        result = wait_until_finished(client, task_id, mode=Mode.IMAGE)
        probe = client.status(task_id, mode=Mode.IMAGE)

    words = text_of(result).split()
    assert len(words) == len(TEXT.split())
    # The trial service masks about one word in ten with asterisks; the rest are intact.
    assert all(
        w == original or set(w) == {"*"} for w, original in zip(words, TEXT.split(), strict=True)
    )
    assert probe.task_status is TaskStatus.COMPLETED
    stats = emu.stats()
    assert stats.submits == {"RecognizeImageTrial": 1}
    assert stats.token_requests == 0
    assert stats.unauthorized == 0


@pytest.mark.parametrize("mode", [Mode.LABEL, Mode.REGIONS, Mode.PDF])
def test_trial_mode_refuses_other_modes_before_any_request(emu: Emulator, mode: Mode) -> None:
    settings = RecognitionSettings(regions=(Region(Rect(0, 0, 10, 10)),))
    with (
        OcrClient(emu.base_url, credentials=None) as client,
        pytest.raises(ConfigError, match=r"trial mode .* can only use mode image"),
    ):
        client.submit(mode, make_png(TEXT), settings)

    assert sum(emu.stats().submits.values()) == 0
