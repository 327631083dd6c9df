"""Load a config file: parse the YAML, read its top-level and service sections, build ``Config``.

This is the only code that parses YAML, and only into plain data (a ``SafeLoader`` that also
refuses a key given twice). Every problem found by the readers is raised once, as one
``ConfigError`` listing them all; a bad default repeated per inbox is listed once. The
``OCRWATCH_*`` inbox variables (``environment``) win over the file for every inbox.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ocrwatch.config.credentials import _client_id_only, _read_credentials, _trial_warnings
from ocrwatch.config.environment import read_inbox_overrides
from ocrwatch.config.inboxes import _read_inbox
from ocrwatch.config.keys import (
    _DEFAULTS_KEYS,
    _SERVICE_KEYS,
    _TOP_KEYS,
    DEFAULT_URL,
    EMBEDDED_URL,
    LOG_FORMATS,
    LOG_LEVELS,
)
from ocrwatch.config.layout import _check_layout
from ocrwatch.config.operability import _read_metrics
from ocrwatch.config.profiles import Config, InboxConfig, ServiceConfig
from ocrwatch.config.reader import _kind, _Section, _section
from ocrwatch.errors import ConfigError
from ocrwatch.model import Mode

SYSTEM_CONFIG_DIR = Path("/etc/ocrwatch")
SYSTEM_CONFIG = SYSTEM_CONFIG_DIR / "config.yaml"
SERVICE_STATE_DIR = Path("/var/lib/ocrwatch")  # StateDirectory=ocrwatch of systemd/*.service
ENV_CONFIG = "OCRWATCH_CONFIG"


@dataclass(frozen=True, slots=True)
class ConfigLocation:
    """The config file to read, and how it was found (for the line that says which one)."""

    path: Path
    origin: str  # "--config", "$OCRWATCH_CONFIG" or "the default"


def locate_config(
    explicit: Path | None, *, environ: Mapping[str, str], system_config: Path = SYSTEM_CONFIG
) -> ConfigLocation:
    """``--config``, else ``$OCRWATCH_CONFIG``, else ``/etc/ocrwatch/config.yaml``.

    An explicit choice is taken as is (a missing file is then reported by ``load_config``);
    when nothing was chosen and the default does not exist, the error lists every place looked.
    """
    if explicit is not None:
        return ConfigLocation(explicit, "--config")
    from_env = environ.get(ENV_CONFIG, "")
    if from_env:
        return ConfigLocation(Path(from_env), f"${ENV_CONFIG}")
    if system_config.is_file():
        return ConfigLocation(system_config, "the default")
    raise ConfigError(
        "no configuration file: looked for --config FILE (not given), "
        f"${ENV_CONFIG} (not set) and {system_config} (does not exist); "
        "to start, `ocrwatch init DIR` writes config.example.yaml into DIR; edit it, then "
        f"name it with -c FILE or export {ENV_CONFIG}=FILE"
    )


def default_state_path(environ: Mapping[str, str], *, config_path: Path | None = None) -> Path:
    """Where the state database lives when the config does not say.

    systemd's ``$STATE_DIRECTORY`` first. Then, for a config in ``/etc/ocrwatch``, the state
    file the shipped units give it (``config.yaml``: ``/var/lib/ocrwatch/state.db``,
    ``NAME.yaml`` of ``ocrwatch@NAME``: ``/var/lib/ocrwatch/NAME/state.db``), so that
    ``ocrwatch status`` or ``explain`` run by hand read the service's file. Else XDG's.
    """
    state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory) / "state.db"
    if config_path is not None and config_path.parent == SYSTEM_CONFIG_DIR:
        if config_path.name == SYSTEM_CONFIG.name:
            return SERVICE_STATE_DIR / "state.db"
        return SERVICE_STATE_DIR / config_path.stem / "state.db"
    xdg_state_home = environ.get("XDG_STATE_HOME", "")
    if xdg_state_home and Path(xdg_state_home).is_absolute():  # XDG says ignore relative ones
        return Path(xdg_state_home) / "ocrwatch" / "state.db"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".local" / "state" / "ocrwatch" / "state.db"


def load_config(
    path: Path, *, environ: Mapping[str, str] | None = None, secrets: bool = True
) -> Config:
    """Read, validate and resolve the config file; raise one ConfigError listing every problem.

    ``secrets=False`` is for commands that never call the service (``status``, ``explain``,
    ``retry``): the client secret is neither looked for nor required, so the service's user
    can run them from a shell, where systemd's credentials directory does not exist.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    source = Path(path).expanduser().absolute()
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot read the configuration file: {error}") from error
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # SafeLoader subclass: plain data only
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else str(source)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from error
    if data is None:
        raise ConfigError(f"{source}: the file is empty: no inboxes are configured")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of settings, got {_kind(data)}")
    problems: list[str] = []
    top = _Section(data, problems, source.parent, env, lambda key: key)
    config = _read(top, source, secrets=secrets)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # a bad default repeats per inbox
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice; plain PyYAML silently keeps the last one."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden below it
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}",
                key_node.start_mark,
            )  # fmt: skip
        if isinstance(key, str | int | float | bool):
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _read(top: _Section, source: Path, *, secrets: bool) -> Config:
    top.reject_unknown(_TOP_KEYS, prefix="")
    service = _read_service(top, secrets=secrets)
    state = _section(top, "state", allowed=("path", "keep_history_days"))
    state_path = (
        state.path("path")
        or default_state_path(top.environ, config_path=source).expanduser().resolve()
    )
    keep_history_days = state.number("keep_history_days", 90.0)
    rescan_interval_seconds = top.number("rescan_interval_seconds", 300.0)
    logging = _section(top, "logging", allowed=("level", "format"))
    log_level = logging.word("level", LOG_LEVELS, "info")
    log_format = logging.word("format", LOG_FORMATS, "auto")
    metrics_warnings: list[str] = []
    metrics = _read_metrics(top, metrics_warnings)
    defaults = _section(top, "defaults", allowed=_DEFAULTS_KEYS).values
    overrides = read_inbox_overrides(top.environ, top.problems)  # OCRWATCH_RECURSIVE, ...
    raw_inboxes = top.values.get("inboxes")
    labelled: list[tuple[str, InboxConfig]] = []
    if not raw_inboxes:
        top.report("inboxes", "no inboxes are configured; add at least one {name, path}")
    elif not isinstance(raw_inboxes, list):
        top.report("inboxes", f"expected a list of inboxes, got {_kind(raw_inboxes)}")
    else:
        for index, raw in enumerate(raw_inboxes):
            entry = overrides.applied_to(raw) if isinstance(raw, Mapping) else raw
            read = _read_inbox(top, index, entry, defaults)
            if read is not None:
                labelled.append(read)
    _check_layout(labelled, state_path=state_path, problems=top.problems)
    warnings: list[str] = []
    if service.is_embedded:
        if service.credentials is not None:
            warnings.append(
                "service.url is embedded: the configured credentials are not used (the "
                "embedded server makes its own)"
            )
    elif service.is_trial:
        warnings += _trial_warnings([i for _, i in labelled])
    warnings += [
        f"inbox {i.name}: mode label is documented for English only, not {i.settings.language}"
        for _, i in labelled
        if i.mode is Mode.LABEL and i.settings.language != "English"
    ]
    warnings += metrics_warnings
    if source.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        warnings.append(f"config file {source} is writable by group or others: chmod go-w it")
    return Config(
        service=service,
        inboxes=tuple(i for _, i in labelled),
        state_path=state_path,
        keep_history_days=keep_history_days,
        rescan_interval_seconds=rescan_interval_seconds,
        log_level=log_level,
        log_format=log_format,
        source_path=source,
        warnings=tuple(warnings),
        metrics=metrics,
        environment=tuple(overrides.describe()),
    )


def _read_service(top: _Section, *, secrets: bool) -> ServiceConfig:
    allowed = (*_SERVICE_KEYS, "client_secret")  # client_secret gets its own message below
    service = _section(top, "service", allowed=allowed, prefix="service")
    if "client_secret" in service.values:
        service.report(
            "client_secret",
            "a secret does not belong in the config file; put it in a file only ocrwatch can "
            "read and set service.client_secret_file, or set the OCRWATCH_CLIENT_SECRET "
            "environment variable, or use systemd LoadCredential=client_secret:<file>",
        )
    credentials, credentials_source = (
        _read_credentials(service) if secrets else _client_id_only(service)
    )
    config = ServiceConfig(
        url=_read_url(service),
        credentials=credentials,
        credentials_source=credentials_source,
        connect_timeout_seconds=service.number("connect_timeout_seconds", 10.0),
        read_timeout_seconds=service.number("read_timeout_seconds", 120.0),
        max_in_flight=service.integer("max_in_flight", 16),
        upload_concurrency=service.integer("upload_concurrency", 4),
        poll_concurrency=service.integer("poll_concurrency", 4),
        max_attempts=service.integer("max_attempts", 5),
        task_deadline_seconds=service.number("task_deadline_seconds", 3600.0),
        retention_seconds=service.number("retention_seconds", 86400.0),
        breaker_threshold=service.integer("breaker_threshold", 5),
        breaker_probe_seconds=service.number("breaker_probe_seconds", 1.5),
        quota_probe_seconds=service.number("quota_probe_seconds", 300.0),
        use_status_probe=service.flag("use_status_probe", False),
    )
    if config.task_deadline_seconds >= config.retention_seconds:
        service.report(
            "task_deadline_seconds",
            f"{config.task_deadline_seconds:g} must be less than service.retention_seconds "
            f"({config.retention_seconds:g}): the service forgets a task's result after that",
        )
    return config


def _read_url(service: _Section) -> str:
    url = service.text("url") or DEFAULT_URL
    if url == EMBEDDED_URL:
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        is_loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback:
        return url.rstrip("/")
    service.report(
        "url",
        f"{url!r} must be an https:// URL (http:// only for localhost, 127.0.0.0/8 or ::1): "
        "the credentials and the documents travel over it",
    )
    return DEFAULT_URL
