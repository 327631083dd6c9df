"""``ocrwatch doctor``: check what a config depends on, and say how to fix each problem.

The local checks (folders, permissions, inotify limits, the state file, free disk) are in
``checkup``. The service checks here make one real request: the status of a task id that
cannot exist, which needs a token (so the credentials are really tried) and answers
"NotExist" when all is well. For the embedded service, the local engine and the languages it
reads are checked instead. The client does not expose the server's Date header, so clock
skew is reported as not checked rather than guessed. A pause the daemon recorded because the
account's plan or quota refused its calls is read from the state file (also with --offline).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.checkup import INOTIFY, Finding, Level, local_findings
from ocrwatch.config import Config
from ocrwatch.engine import missing_modules, supported_languages
from ocrwatch.errors import (
    ApiRejected,
    ApiUnavailable,
    AuthenticationError,
    ConfigError,
    QuotaExhausted,
    StateStoreError,
    TransientError,
)
from ocrwatch.model import Mode
from ocrwatch.store import Store

__all__ = ["DEFAULT_MIN_FREE_MB", "Finding", "Level", "examine"]

NO_SUCH_TASK = "00000000-0000-0000-0000-000000000000"
QUOTA_FIX = (
    "top up or change the plan in the Aspose Cloud dashboard, or wait for the quota to renew; "
    "the daemon resumes by itself (service.quota_probe_seconds), or at once on a reload"
)
DEFAULT_MIN_FREE_MB = 256


def examine(
    config: Config,
    *,
    min_free_bytes: int = DEFAULT_MIN_FREE_MB << 20,
    check_service: bool = True,
    inotify: Path = INOTIFY,
) -> list[Finding]:
    """Every finding: inboxes first, then the state file, the disks and the service."""
    findings = local_findings(config, min_free_bytes=min_free_bytes, inotify=inotify)
    findings += _pause_findings(config, now=time.time())
    if check_service:
        findings += _service_findings(config)
    return findings


# ---------------------------------------------------------------------- the service


def _pause_findings(config: Config, *, now: float) -> list[Finding]:
    """The pause the daemon recorded when the account's plan or quota refused its calls."""
    if not config.state_path.exists():
        return []
    try:
        with Store.open(config.state_path, readonly=True) as store:
            pause = store.account_pause()
    except StateStoreError:
        return []  # the state file's own check says what is wrong with it
    if pause is None:
        return []
    return [
        Finding(
            "service",
            Level.PROBLEM,
            f"the daemon has paused submissions for {now - pause.since:.0f} s: {pause.reason}; "
            f"files wait in the inbox, next probe in {max(0.0, pause.probe_at - now):.0f} s",
            QUOTA_FIX,
        )
    ]


def _service_findings(config: Config) -> Iterator[Finding]:
    service = config.service
    if service.is_embedded:
        yield from _engine_findings(config)
        return
    if service.credentials is None:
        yield Finding(
            "service",
            Level.WARNING,
            "no credentials: trial mode (mode image only, about 10 % of words masked)",
            "set service.client_id and client_secret_file (or OCRWATCH_CLIENT_SECRET)",
        )
    else:
        yield Finding(
            "service",
            Level.OK,
            f"credentials: client id {service.credentials.client_id}, secret from "
            f"{service.credentials_source}",
        )
    yield from _probe_service(config)
    yield Finding(
        "service",
        Level.SKIPPED,
        "clock skew not checked: the API client does not expose the server's Date header",
    )


def _engine_findings(config: Config) -> Iterator[Finding]:
    missing = missing_modules()
    if missing:
        yield Finding(
            "service",
            Level.PROBLEM,
            f"the embedded local engine is not installed (missing: {', '.join(missing)})",
            "pip install 'ocrwatch[engine]' (or set service.url to the Aspose Cloud API)",
        )
        return
    yield Finding(
        "service", Level.OK, "embedded local engine installed: no credentials or network needed"
    )
    readable = supported_languages()
    for inbox in config.inboxes:
        if inbox.settings.language not in readable:
            yield Finding(
                f"inbox {inbox.name}",
                Level.PROBLEM,
                f"the local engine cannot read {inbox.settings.language}",
                f"set language to one of: {', '.join(sorted(readable))}",
            )


def _probe_service(config: Config) -> Iterator[Finding]:
    service = config.service
    token = "trial mode: no token needed" if service.credentials is None else "token obtained"
    try:
        with OcrClient(
            service.url,
            credentials=service.credentials,
            timeouts=Timeouts(
                connect_seconds=service.connect_timeout_seconds,
                read_seconds=min(service.read_timeout_seconds, 30.0),
            ),
            pool_size=1,
        ) as client:
            client.status(NO_SUCH_TASK, mode=Mode.IMAGE)
    except QuotaExhausted as exc:
        yield Finding("service", Level.OK, f"{service.url} answers; {token}")
        yield Finding("service", Level.PROBLEM, f"the account is refused: {exc}", QUOTA_FIX)
    except AuthenticationError as exc:
        yield Finding("service", Level.OK, f"{service.url} answers")
        yield Finding(
            "service",
            Level.PROBLEM,
            f"no token: {exc}",
            "check the client id and secret in the Aspose Cloud dashboard",
        )
    except ApiUnavailable as exc:
        yield Finding(
            "service",
            Level.PROBLEM,
            f"{service.url} is not reachable: {exc}",
            "check service.url, DNS, the proxy and the firewall (outgoing HTTPS)",
        )
    except ApiRejected as exc:
        yield Finding("service", Level.OK, f"{service.url} answers; {token}")
        yield Finding("service", Level.WARNING, f"the status request was refused: {exc}")
    except TransientError as exc:
        yield Finding(
            "service",
            Level.PROBLEM,
            f"{service.url} does not answer like the OCR API: {exc}",
            "check service.url; a proxy or captive portal may be answering instead",
        )
    except ConfigError as exc:
        yield Finding("service", Level.PROBLEM, str(exc), "fix service.url")
    else:
        yield Finding("service", Level.OK, f"{service.url} answers; {token}")
