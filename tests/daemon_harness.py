"""Shared set-up for the daemon tests: a config on disk, a real client, store and service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.config import Config, load_config
from ocrwatch.emulator import Emulator
from ocrwatch.service import Notifier, Service
from ocrwatch.store import Store

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"


def write_config(
    tmp_path: Path,
    base_url: str,
    *,
    inboxes: list[dict[str, Any]] | None = None,
    service: dict[str, Any] | None = None,
    credentials: bool = True,
    **top: Any,
) -> Path:
    """Write a config with one inbox ``inbox`` (unless given) and return its path."""
    (tmp_path / "inbox").mkdir(exist_ok=True)
    secret = tmp_path / "client_secret"
    secret.write_text(CLIENT_SECRET)
    secret.chmod(0o600)
    service_section: dict[str, Any] = {
        "url": base_url,
        "connect_timeout_seconds": 2,
        "read_timeout_seconds": 10,
        "breaker_probe_seconds": 0.5,
        "use_status_probe": False,
    }
    if credentials:
        service_section.update(client_id=CLIENT_ID, client_secret_file=str(secret))
    service_section.update(service or {})
    # None removes a key, so the setting's default applies.
    service_section = {key: value for key, value in service_section.items() if value is not None}
    document: dict[str, Any] = {
        "service": service_section,
        "state": {"path": str(tmp_path / "state" / "state.db")},
        "defaults": {"settle_seconds": 0.2, "max_settle_seconds": 30},
        "inboxes": inboxes or [{"name": "scans", "path": "inbox", "error_dir": "errors"}],
        **top,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextmanager
def running_service(
    config_path: Path,
    *,
    watch: bool = True,
    clock: Callable[[], float] = time.time,
    notifier: Notifier | None = None,
    start: bool = True,
    base_url: str | None = None,
) -> Iterator[tuple[Service, Store, Config]]:
    """A service on the real client and store; started (unless ``start`` is False).

    ``base_url`` overrides the config's URL: an emulator standing in for the embedded
    service (which is the emulator with the engine as its recogniser) of a config whose
    ``service.url`` is ``embedded``.
    """
    config = load_config(config_path, environ={})
    with (
        Store.open(config.state_path) as store,
        OcrClient(
            base_url or config.service.url,
            credentials=config.service.credentials,
            timeouts=Timeouts(connect_seconds=2.0, read_seconds=10.0),
        ) as client,
    ):
        service = Service(
            config, api=client, store=store, watch=watch, clock=clock, notifier=notifier
        )
        if not start:
            yield service, store, config
            return
        service.start()
        try:
            yield service, store, config
        finally:
            service.shutdown()


def run_until(
    service: Service, condition: Callable[[], bool], *, timeout_seconds: float = 30.0
) -> None:
    """Tick the service on the real clock until ``condition`` holds (or fail at the deadline)."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_seconds} s: {service.status_line()}")
        service.tick(service.now())
        time.sleep(0.02)


def sidecar_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def emulator_submits(emulator: Emulator) -> int:
    return sum(emulator.stats().submits.values())


class FakeClock:
    """A clock that moves only when the test says so: ``Service(clock=...)`` and ``tick(now)``."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def tick_settled(service: Service, now: float, *, timeout_seconds: float = 30.0) -> None:
    """Tick at ``now``, wait (real time) for the calls it started, and tick again to apply them.

    The service's clock stays at ``now``: what the workers brought back is applied at the same
    moment, so a scenario's times are exact whatever the machine's load.
    """
    service.tick(now)
    deadline = time.monotonic() + timeout_seconds
    while service.calls_running:
        if time.monotonic() > deadline:
            raise AssertionError(f"calls still running after {timeout_seconds} s")
        time.sleep(0.01)
    service.tick(now)


def drop(path: Path, data: bytes) -> Path:
    """Put a file in an inbox the way a careful writer does: renamed in from ``.part``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    temp.write_bytes(data)
    temp.rename(path)
    return path
