"""The frozen values a config file resolves to: service, inboxes and the whole configuration.

An inbox's ``profile_hash`` names what changes its recognised output (mode, settings, result
formats), so a stored result is reused only for the same profile; output folders, templates and
the disposition do not count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ocrwatch.config.keys import DEFAULT_INCOMPLETE_AFTER_SECONDS, EMBEDDED_URL
from ocrwatch.formats import Target
from ocrwatch.model import (
    Credentials,
    Disposition,
    DuplicatePolicy,
    Mode,
    RecognitionSettings,
    ResultFormat,
    WatchMode,
)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How to reach the OCR service and how hard to push it."""

    url: str
    credentials: Credentials | None  # None: trial mode (RecognizeImageTrial only)
    credentials_source: str | None  # where the secret came from, for `ocrwatch check`
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 120.0
    max_in_flight: int = 16  # tasks submitted but not finished, across all inboxes
    upload_concurrency: int = 4
    poll_concurrency: int = 4
    max_attempts: int = 5  # submissions per file before it goes to the error folder
    task_deadline_seconds: float = 3600.0  # kept below retention_seconds
    retention_seconds: float = 86400.0  # how long the service keeps results
    breaker_threshold: int = 5  # consecutive transient failures that open the breaker
    breaker_probe_seconds: float = 1.5  # the longest wait between probes while it is down
    quota_probe_seconds: float = 300.0  # while the plan or quota refuses: one probe this often
    use_status_probe: bool = False  # poll GetTaskStatus first, fetch results once completed

    @property
    def is_embedded(self) -> bool:
        """The local engine behind a compatible server inside the daemon, not a remote API."""
        return self.url == EMBEDDED_URL

    @property
    def is_trial(self) -> bool:
        """No client id: the service's trial mode (a command that reads no secret still knows)."""
        return self.credentials is None and self.credentials_source is None and not self.is_embedded

    @property
    def target(self) -> Target:
        """Who reads the files: what it takes as it is decides what is converted first."""
        return Target.ENGINE if self.is_embedded else Target.CLOUD


@dataclass(frozen=True, slots=True)
class HookConfig:
    """What to run when one of an inbox's files is done or failed; nothing by default."""

    on_success: tuple[str, ...] = ()  # argv, run without a shell
    on_failure: tuple[str, ...] = ()
    webhook_url: str | None = None  # POSTed a JSON body on success and on failure
    timeout_seconds: float = 30.0

    @property
    def is_empty(self) -> bool:
        return not (self.on_success or self.on_failure or self.webhook_url)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where the Prometheus metrics go: a listener, a node-exporter textfile, both or neither."""

    listen: tuple[str, int] | None = None  # (host, port); port 0 picks a free one
    textfile: Path | None = None
    interval_seconds: float = 5.0  # how often gauges are refreshed and the textfile rewritten


@dataclass(frozen=True, slots=True)
class InboxConfig:
    """One watched folder and its recognition profile; every path is absolute and resolved."""

    name: str
    path: Path
    mode: Mode
    settings: RecognitionSettings
    result_formats: tuple[ResultFormat, ...]
    output_dir: Path | None  # None: sidecars beside the source
    output_template: str
    error_dir: Path
    on_success: Disposition
    done_dir: Path | None  # set exactly when on_success is move
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    recursive: bool = False
    watch: WatchMode = WatchMode.AUTO
    polling_interval_seconds: float = 5.0
    settle_seconds: float = 5.0
    max_settle_seconds: float = 3600.0
    # A file unchanged this long and still incomplete is broken, not slow: it fails.
    incomplete_after_seconds: float = DEFAULT_INCOMPLETE_AFTER_SECONDS
    duplicates: DuplicatePolicy = DuplicatePolicy.REUSE
    hooks: HookConfig = HookConfig()

    @property
    def profile_hash(self) -> str:
        """Identify what changes the recognised output; outputs and disposition do not count."""
        canonical = {
            "mode": self.mode.value,
            "settings": asdict(self.settings),
            "result_formats": [f.value for f in self.result_formats],
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig
    inboxes: tuple[InboxConfig, ...]
    state_path: Path
    keep_history_days: float = 90.0  # finished rows older than this are pruned (cache kept)
    rescan_interval_seconds: float = 300.0
    log_level: str = "info"
    log_format: str = "auto"
    source_path: Path | None = None
    warnings: tuple[str, ...] = ()  # non-fatal findings to log at start-up
    metrics: MetricsConfig = MetricsConfig()
    # Inbox keys set by OCRWATCH_* variables (config/environment.py), as `ocrwatch check` shows
    environment: tuple[str, ...] = ()

    def inbox(self, name: str) -> InboxConfig:
        for inbox in self.inboxes:
            if inbox.name == name:
                return inbox
        known = ", ".join(i.name for i in self.inboxes)
        raise KeyError(f"no inbox named {name!r}; configured: {known}")
