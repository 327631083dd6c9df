"""No secret and no token ever shows in an exception, a repr or a log line, on any path."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import structlog.testing

from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.emulator import Emulator, Faults
from ocrwatch.emulator.samples import make_png
from ocrwatch.errors import OcrwatchError
from ocrwatch.model import Credentials, Mode, RecognitionSettings

SECRET = "Sentinel-Secret-5f9c2b"  # recognisable anywhere it might leak
CREDENTIALS = Credentials("leak-test-client", SECRET)
UNKNOWN_TASK = "00000000-0000-0000-0000-000000000000"


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def held_token(client: OcrClient) -> str | None:
    """The access token the client holds right now (read only to search for it)."""
    token = client._tokens._token if client._tokens else None
    return token.authorization.split(" ", 1)[1] if token else None


def test_no_failure_path_leaks_the_secret_or_the_token(
    make_emulator: Callable[..., Emulator],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3's connection and request lines too
    emu = make_emulator(credentials=CREDENTIALS)
    failures: list[BaseException] = []
    tokens: set[str] = set()

    def attempt(call: Callable[[], object]) -> None:
        try:
            call()
        except OcrwatchError as exc:
            failures.append(exc)

    texts: list[str] = []
    with structlog.testing.capture_logs() as events:
        client = OcrClient(
            emu.base_url, credentials=CREDENTIALS, timeouts=Timeouts(read_seconds=0.5)
        )

        def submit() -> object:
            return client.submit(Mode.IMAGE, make_png("leak"), RecognitionSettings())

        def probe() -> object:
            return client.status(UNKNOWN_TASK, mode=Mode.IMAGE)

        submit()
        tokens.add(held_token(client) or "")
        for faults in (
            Faults(server_error=1.0),
            Faults(too_many_requests=1.0),
            Faults(connection_reset=1.0),
            Faults(latency_seconds=(1.0, 1.0)),
        ):
            emu.set_faults(faults)
            attempt(submit)
            attempt(probe)
        emu.set_faults(Faults())
        emu.expire_tokens()
        probe()  # a 401, then a refresh
        tokens.add(held_token(client) or "")
        emu.set_faults(Faults(token_lifetime_seconds=0.0))
        attempt(probe)  # a 401 that survives the refresh
        emu.set_faults(Faults())
        emu.stop()
        attempt(submit)
        emu.start()
        texts.append(repr(client))
        client.close()
        wrong_credentials = Credentials("leak-test-client", SECRET + "-wrong")
        for _ in range(6):  # refused five times, then locked out
            with OcrClient(emu.base_url, credentials=wrong_credentials) as wrong:
                texts.append(repr(wrong))
                attempt(lambda: wrong.status(UNKNOWN_TASK, mode=Mode.IMAGE))

    tokens.discard("")
    assert len(tokens) >= 2
    assert len(failures) >= 12
    texts += [text for exc in failures for e in chain(exc) for text in (str(e), repr(e))]
    texts += [repr(event) for event in events]
    texts += [caplog.text]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    everything = "\n".join(texts)
    assert "GET /v5.0/ocr/Utilities/GetTaskStatus" in caplog.text  # urllib3 really logged
    assert SECRET not in everything
    for token in tokens:
        assert token not in everything
