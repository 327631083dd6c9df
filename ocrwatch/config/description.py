"""Describe a resolved config as JSON-able data for ``ocrwatch check``; the secret never appears.

Credentials show the client id and where the secret came from, never the secret itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ocrwatch import formats
from ocrwatch.config.keys import RESULT_TYPE_NAMES
from ocrwatch.config.profiles import Config, InboxConfig, ServiceConfig
from ocrwatch.model import SIDECAR_EXTENSIONS


def describe(config: Config) -> dict[str, Any]:
    """A JSON-able view of the resolved config for `ocrwatch check`; the secret never appears."""
    service = config.service
    credentials: dict[str, str] | str = "none (trial mode)"
    if service.is_embedded:  # the in-process server makes its own; it has no trial mode
        credentials = "made by the embedded server at each start"
    elif service.credentials is not None:
        credentials = {
            "client_id": service.credentials.client_id,
            "client_secret": f"(set, from {service.credentials_source})",
        }
    service_view = {k: getattr(service, k) for k in ServiceConfig.__dataclass_fields__}
    service_view.update(credentials=credentials)
    listen = config.metrics.listen
    del service_view["credentials_source"]
    return {
        "source_path": _show(config.source_path),
        "service": service_view,
        "state_path": str(config.state_path),
        "rescan_interval_seconds": config.rescan_interval_seconds,
        "logging": {"level": config.log_level, "format": config.log_format},
        "metrics": {
            "listen": None if listen is None else f"{listen[0]}:{listen[1]}",
            "textfile": _show(config.metrics.textfile),
            "interval_seconds": config.metrics.interval_seconds,
        },
        "inboxes": [_describe_inbox(inbox) for inbox in config.inboxes],
        "environment": list(config.environment),
        # What each format gets from this service: as it is, converted first, or refused.
        "formats": formats.table(service.target),
        "warnings": list(config.warnings),
    }


def _describe_inbox(inbox: InboxConfig) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for key in InboxConfig.__dataclass_fields__:
        value = getattr(inbox, key)
        view[key] = _show(value) if isinstance(value, Path | None) else value
    names = {fmt: name for name, fmt in RESULT_TYPE_NAMES.items()}
    view["settings"] = json.loads(json.dumps(asdict(inbox.settings)))
    del view["result_formats"]
    view["result_types"] = [names[f] for f in inbox.result_formats]  # as spelt in the YAML
    view["include"], view["exclude"] = list(inbox.include), list(inbox.exclude)
    view["example_outputs"] = [  # what `scan.png` would produce, to check the template by eye
        inbox.output_template.format(
            name="scan.png", stem="scan", suffix="png", ext=SIDECAR_EXTENSIONS[f], inbox=inbox.name
        )
        for f in inbox.result_formats
    ]
    view["hooks"] = {
        "on_success": list(inbox.hooks.on_success),
        "on_failure": list(inbox.hooks.on_failure),
        "webhook": inbox.hooks.webhook_url,
        "timeout_seconds": inbox.hooks.timeout_seconds,
    }
    view["profile_hash"] = inbox.profile_hash
    return view


def _show(path: Path | None) -> str | None:
    return None if path is None else str(path)
