"""Read the YAML configuration into frozen dataclasses; the only code that parses YAML.

Every problem is collected with its key path (``inboxes[1] (scans).language: ...``) and raised
once as a ``ConfigError``, so one run of ``ocrwatch check`` shows them all. Relative paths
resolve against the config file's directory and every path is compared after
``Path.resolve()``, so a symlinked alias cannot slip past the overlap checks.

Hazards guarded here rather than at run time: a folder the daemon writes to (error, done or
output folder, the state file) inside a watched inbox would make it re-ingest its own files,
and a secret file readable by others leaks the Aspose client secret. The secret is held only
in ``Credentials`` (no repr) and ``describe`` shows where it came from, never its value.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import math
import os
import re
import stat
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from ocrwatch.errors import ConfigError, InvalidSetting
from ocrwatch.model import (
    SIDECAR_EXTENSIONS,
    Credentials,
    Disposition,
    DsrConfidence,
    DsrMode,
    DuplicatePolicy,
    Mode,
    RecognitionSettings,
    Region,
    ResultFormat,
    ResultType,
    WatchMode,
    parse_language,
    parse_regions,
)

DEFAULT_URL = "https://api.aspose.cloud"
DEFAULT_INCLUDE = (
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.jpe",
    "*.tif",
    "*.tiff",
    "*.bmp",
    "*.gif",
    "*.pdf",
)
DEFAULT_OUTPUT_TEMPLATE = "{name}.{ext}"
ENV_CLIENT_ID = "OCRWATCH_CLIENT_ID"
ENV_CLIENT_SECRET = "OCRWATCH_CLIENT_SECRET"
SYSTEMD_CREDENTIAL = "client_secret"  # LoadCredential=client_secret:/path in the unit file
RESULT_TYPE_NAMES: dict[str, ResultFormat] = {
    "text": ResultFormat.TEXT,
    "pdf": ResultFormat.PDF,
    "hocr": ResultFormat.HOCR,
    "json": ResultFormat.JSON,
}
TEMPLATE_PLACEHOLDERS = ("name", "stem", "suffix", "ext", "inbox")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "json")
INBOX_MODES = (Mode.IMAGE, Mode.LABEL, Mode.REGIONS)  # PDFs in an image inbox go to RecognizePdf

_TOP_KEYS = ("service", "state", "rescan_interval_seconds", "logging", "defaults", "inboxes")
_SERVICE_KEYS = (
    "url", "client_id", "client_secret_file", "connect_timeout_seconds", "read_timeout_seconds",
    "max_in_flight", "upload_concurrency", "poll_concurrency", "max_attempts",
    "task_deadline_seconds", "retention_seconds", "breaker_threshold", "breaker_probe_seconds",
    "use_status_probe",
)  # fmt: skip
_BOOLEAN_SETTINGS = (
    "make_skew_correct", "make_binarization", "make_contrast_correction", "make_upsampling",
    "make_spell_check",
)  # fmt: skip
_INBOX_KEYS = (
    "name", "path", "mode", "language", *_BOOLEAN_SETTINGS, "rotate", "dsr_mode",
    "dsr_confidence", "result_types", "regions", "output_dir", "output_template", "error_dir",
    "on_success", "done_dir", "include", "exclude", "recursive", "watch",
    "polling_interval_seconds", "settle_seconds", "max_settle_seconds", "duplicates",
)  # fmt: skip
_DEFAULTS_KEYS = tuple(k for k in _INBOX_KEYS if k not in ("name", "path"))
# Inbox names appear in logs, the state store, file names ({inbox}) and the CLI.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_MISSING: Any = object()
E = TypeVar("E", bound=enum.StrEnum)


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
    breaker_probe_seconds: float = 30.0
    use_status_probe: bool = False  # poll GetTaskStatus first, fetch results once completed


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
    duplicates: DuplicatePolicy = DuplicatePolicy.REUSE

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
    rescan_interval_seconds: float = 300.0
    log_level: str = "info"
    log_format: str = "auto"
    source_path: Path | None = None
    warnings: tuple[str, ...] = ()  # non-fatal findings to log at start-up

    def inbox(self, name: str) -> InboxConfig:
        for inbox in self.inboxes:
            if inbox.name == name:
                return inbox
        known = ", ".join(i.name for i in self.inboxes)
        raise KeyError(f"no inbox named {name!r}; configured: {known}")


def default_state_path(environ: Mapping[str, str]) -> Path:
    """Where the state database lives when the config does not say: systemd's, then XDG's."""
    state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory) / "state.db"
    xdg_state_home = environ.get("XDG_STATE_HOME", "")
    if xdg_state_home and Path(xdg_state_home).is_absolute():  # XDG says ignore relative ones
        return Path(xdg_state_home) / "ocrwatch" / "state.db"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".local" / "state" / "ocrwatch" / "state.db"


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve the config file; raise one ConfigError listing every problem."""
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
    config = _read(top, source)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # a bad default repeats per inbox
    return config


def describe(config: Config) -> dict[str, Any]:
    """A JSON-able view of the resolved config for `ocrwatch check`; the secret never appears."""
    service = config.service
    credentials: dict[str, str] | str = "none (trial mode)"
    if service.credentials is not None:
        credentials = {
            "client_id": service.credentials.client_id,
            "client_secret": f"(set, from {service.credentials_source})",
        }
    service_view = {k: getattr(service, k) for k in ServiceConfig.__dataclass_fields__}
    service_view.update(credentials=credentials)
    del service_view["credentials_source"]
    return {
        "source_path": _show(config.source_path),
        "service": service_view,
        "state_path": str(config.state_path),
        "rescan_interval_seconds": config.rescan_interval_seconds,
        "logging": {"level": config.log_level, "format": config.log_format},
        "inboxes": [_describe_inbox(inbox) for inbox in config.inboxes],
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
    view["profile_hash"] = inbox.profile_hash
    return view


def _show(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _kind(value: object) -> str:
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


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


@dataclass(slots=True)
class _Section:
    """One YAML mapping being read; each bad value becomes a problem naming its key path.

    Accessors return the default when a value is missing or wrong, so the checks that follow
    still run and the user sees every problem in one go.
    """

    values: Mapping[str, Any]
    problems: list[str]
    base_dir: Path
    environ: Mapping[str, str]
    key_path: Callable[[str], str]

    def report(self, key: str, message: str) -> None:
        self.problems.append(f"{self.key_path(key)}: {message}")

    def reject_unknown(self, allowed: Sequence[str], *, prefix: str) -> None:
        for key in self.values:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else str(key)
                self.problems.append(f"{where}: unknown key; allowed: {', '.join(allowed)}")

    def number(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and math.isfinite(value) and (value > 0 or (allow_zero and value == 0)):
            return float(value)
        self.report(key, f"expected a number {'>= 0' if allow_zero else '> 0'}, got {_kind(value)}")
        return default

    def integer(self, key: str, default: int, *, minimum: int | None = 1) -> int:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        if is_integer and (minimum is None or value >= minimum):
            return int(value)
        wanted = "an integer" if minimum is None else f"an integer >= {minimum}"
        self.report(key, f"expected {wanted}, got {_kind(value)}")
        return default

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if isinstance(value, bool):
            return value
        self.report(key, f"expected true or false, got {_kind(value)}")
        return default

    def choice(self, key: str, allowed: Sequence[E], default: E) -> E:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        for member in allowed:
            if isinstance(value, str) and value == member.value:
                return member
        error = InvalidSetting(self.key_path(key), value, allowed=[m.value for m in allowed])
        self.problems.append(str(error))
        return default

    def word(self, key: str, allowed: Sequence[str], default: str) -> str:
        value = self.values.get(key, default)
        if value in allowed:
            return str(value)
        self.problems.append(str(InvalidSetting(self.key_path(key), value, allowed=allowed)))
        return default

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None or (isinstance(value, str) and value):
            return value
        self.report(key, f"expected a non-empty string, got {_kind(value)}")
        return None

    def path(self, key: str) -> Path | None:
        """An absolute, resolved path: ``~`` expands, relative means the config's directory."""
        raw = self.text(key)
        if raw is None:
            return None
        if (raw == "~" or raw.startswith("~/")) and self.environ.get("HOME"):
            raw = self.environ["HOME"] + raw[1:]
        return (self.base_dir / Path(raw).expanduser()).resolve()

    def patterns(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.values.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
            self.report(key, f"expected a list of glob patterns, got {_kind(value)}")
            return default
        for pattern in value:
            if pattern.startswith("/"):
                self.report(key, f"{pattern!r} must be relative to the inbox (no leading /)")
        return tuple(value)


def _section(
    parent: _Section, key: str, *, allowed: Sequence[str], prefix: str | None = None
) -> _Section:
    """The mapping under ``key`` (empty when absent), with its unknown keys reported."""
    value = parent.values.get(key)
    value = {} if value is None else value
    prefix = prefix or parent.key_path(key)
    if not isinstance(value, Mapping):
        parent.report(key, f"expected a mapping, got {_kind(value)}")
        value = {}
    section = _Section(
        value, parent.problems, parent.base_dir, parent.environ, lambda k: f"{prefix}.{k}"
    )
    section.reject_unknown(allowed, prefix=prefix)
    return section


def _read(top: _Section, source: Path) -> Config:
    top.reject_unknown(_TOP_KEYS, prefix="")
    service = _read_service(top)
    state = _section(top, "state", allowed=("path",))
    state_path = state.path("path") or default_state_path(top.environ).expanduser().resolve()
    rescan_interval_seconds = top.number("rescan_interval_seconds", 300.0)
    logging = _section(top, "logging", allowed=("level", "format"))
    log_level = logging.word("level", LOG_LEVELS, "info")
    log_format = logging.word("format", LOG_FORMATS, "auto")
    defaults = _section(top, "defaults", allowed=_DEFAULTS_KEYS).values
    raw_inboxes = top.values.get("inboxes")
    labelled: list[tuple[str, InboxConfig]] = []
    if not raw_inboxes:
        top.report("inboxes", "no inboxes are configured; add at least one {name, path}")
    elif not isinstance(raw_inboxes, list):
        top.report("inboxes", f"expected a list of inboxes, got {_kind(raw_inboxes)}")
    else:
        for index, raw in enumerate(raw_inboxes):
            read = _read_inbox(top, index, raw, defaults)
            if read is not None:
                labelled.append(read)
    _check_layout(labelled, state_path=state_path, problems=top.problems)
    warnings = _trial_warnings([i for _, i in labelled]) if service.credentials is None else []
    warnings += [
        f"inbox {i.name}: mode label is documented for English only, not {i.settings.language}"
        for _, i in labelled
        if i.mode is Mode.LABEL and i.settings.language != "English"
    ]
    if source.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        warnings.append(f"config file {source} is writable by group or others: chmod go-w it")
    return Config(
        service=service,
        inboxes=tuple(i for _, i in labelled),
        state_path=state_path,
        rescan_interval_seconds=rescan_interval_seconds,
        log_level=log_level,
        log_format=log_format,
        source_path=source,
        warnings=tuple(warnings),
    )


def _read_service(top: _Section) -> ServiceConfig:
    allowed = (*_SERVICE_KEYS, "client_secret")  # client_secret gets its own message below
    service = _section(top, "service", allowed=allowed, prefix="service")
    if "client_secret" in service.values:
        service.report(
            "client_secret",
            "a secret does not belong in the config file; put it in a file only ocrwatch can "
            "read and set service.client_secret_file, or set the OCRWATCH_CLIENT_SECRET "
            "environment variable, or use systemd LoadCredential=client_secret:<file>",
        )
    credentials, credentials_source = _read_credentials(service)
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
        breaker_probe_seconds=service.number("breaker_probe_seconds", 30.0),
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


def _read_credentials(service: _Section) -> tuple[Credentials | None, str | None]:
    """Find the client id and secret; the secret's source wins in the order env, file, systemd."""
    environ = service.environ
    client_id = environ.get(ENV_CLIENT_ID) or service.text("client_id")  # env overrides
    secret: str | None = None
    source: str | None = None
    secret_file = service.path("client_secret_file")
    credentials_dir = environ.get("CREDENTIALS_DIRECTORY")
    if environ.get(ENV_CLIENT_SECRET):
        secret, source = environ[ENV_CLIENT_SECRET], f"env {ENV_CLIENT_SECRET}"
    elif secret_file is not None:
        source = f"file {secret_file}"
        secret = _read_secret(service, secret_file, key="client_secret_file", check_mode=True)
    elif credentials_dir and (Path(credentials_dir) / SYSTEMD_CREDENTIAL).exists():
        source = f"systemd credential {SYSTEMD_CREDENTIAL}"
        # systemd owns the credentials directory and its modes; no check needed there.
        path = Path(credentials_dir) / SYSTEMD_CREDENTIAL
        secret = _read_secret(service, path, key="(systemd credential)", check_mode=False)
    if client_id and source is None:
        service.report(
            "client_id",
            "a client id is set but no client secret: set service.client_secret_file, "
            f"{ENV_CLIENT_SECRET} or systemd LoadCredential={SYSTEMD_CREDENTIAL}:<file> "
            "(or remove the id to run in trial mode)",
        )
    elif source is not None and not client_id:
        service.report(
            "client_id",
            f"a client secret is set ({source}) but no client id: set service.client_id "
            f"or {ENV_CLIENT_ID}",
        )
    if client_id and secret:
        return Credentials(client_id=client_id, client_secret=secret), source
    return None, None


def _read_secret(service: _Section, path: Path, *, key: str, check_mode: bool) -> str | None:
    try:
        mode = path.stat().st_mode
        if check_mode and mode & 0o077:
            service.report(
                key,
                f"{path} can be read or changed by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
            )
            return None
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        service.report(key, f"cannot read the client secret from {path}: {reason}")
        return None
    if not secret:
        service.report(key, f"{path} is empty")
        return None
    return secret


def _read_inbox(
    top: _Section, index: int, raw: object, defaults: Mapping[str, Any]
) -> tuple[str, InboxConfig] | None:
    """Read one inbox with ``defaults`` merged under it; None if too broken to check further."""
    label = f"inboxes[{index}]"
    if not isinstance(raw, Mapping):
        top.problems.append(f"{label}: expected a mapping with name and path, got {_kind(raw)}")
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        label = f"{label} ({name})"
    values = {**defaults, **raw}  # shallow: an inbox's list replaces the default list
    inbox = _Section(
        values,
        top.problems,
        top.base_dir,
        top.environ,
        lambda k: f"{label}.{k}" if k in raw or k not in defaults else f"defaults.{k}",
    )
    for key in raw:  # the defaults' own unknown keys were reported under defaults
        if key not in _INBOX_KEYS:
            top.problems.append(f"{label}.{key}: unknown key; allowed: {', '.join(_INBOX_KEYS)}")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        inbox.report(
            "name", f"expected a name of letters, digits, '.', '_' or '-', got {_kind(name)}"
        )
        name = f"inboxes[{index}]"
    path = inbox.path("path")
    if path is None:
        inbox.report("path", "required: the folder to watch")
        path = top.base_dir  # a stand-in so the remaining keys are still checked
    elif not path.is_dir():
        inbox.report(
            "path", f"{path} {'is not a directory' if path.exists() else 'does not exist'}"
        )
    mode = inbox.choice("mode", INBOX_MODES, Mode.IMAGE)
    result_formats = _read_result_formats(inbox)
    settings = _read_settings(inbox, mode=mode, result_formats=result_formats)
    on_success = inbox.choice("on_success", list(Disposition), Disposition.KEEP)
    done_dir = inbox.path("done_dir")
    if on_success is Disposition.MOVE and done_dir is None:
        inbox.report("done_dir", "required when on_success is move: where the sources go")
    elif on_success is not Disposition.MOVE and done_dir is not None:
        inbox.report("done_dir", f"only used when on_success is move (it is {on_success})")
    output_dir = inbox.path("output_dir")
    output_template = _read_template(inbox, beside_source=output_dir is None)
    settle = inbox.number("settle_seconds", 5.0, allow_zero=True)
    max_settle = inbox.number("max_settle_seconds", 3600.0)
    if settle > max_settle:
        inbox.report(
            "settle_seconds", f"{settle:g} is more than max_settle_seconds ({max_settle:g})"
        )
    config = InboxConfig(
        name=name,
        path=path,
        mode=mode,
        settings=settings,
        result_formats=result_formats,
        output_dir=output_dir,
        output_template=output_template,
        error_dir=inbox.path("error_dir") or path.parent / f"{path.name}.errors",
        on_success=on_success,
        done_dir=done_dir,
        include=inbox.patterns("include", DEFAULT_INCLUDE),
        exclude=inbox.patterns("exclude", ()),
        recursive=inbox.flag("recursive", False),
        watch=inbox.choice("watch", list(WatchMode), WatchMode.AUTO),
        polling_interval_seconds=inbox.number("polling_interval_seconds", 5.0),
        settle_seconds=settle,
        max_settle_seconds=max_settle,
        duplicates=inbox.choice("duplicates", list(DuplicatePolicy), DuplicatePolicy.REUSE),
    )
    return (label, config) if "path" in values else None


def _read_result_formats(inbox: _Section) -> tuple[ResultFormat, ...]:
    value = inbox.values.get("result_types", ["text"])
    if not isinstance(value, list) or not value:
        inbox.report("result_types", f"expected a list such as [text, pdf], got {_kind(value)}")
        return (ResultFormat.TEXT,)
    wanted: set[ResultFormat] = set()
    for position, name in enumerate(value):
        if isinstance(name, str) and name in RESULT_TYPE_NAMES:
            wanted.add(RESULT_TYPE_NAMES[name])
        else:
            where = f"{inbox.key_path('result_types')}[{position}]"
            inbox.problems.append(str(InvalidSetting(where, name, allowed=list(RESULT_TYPE_NAMES))))
    if ResultFormat.JSON in wanted and len(wanted) > 1:
        inbox.report(
            "result_types",
            "json cannot be combined with other result types: the API has no combined JSON "
            "result type (use a second inbox for json)",
        )
        wanted = {ResultFormat.JSON}
    for result_type in ResultType:  # the API's result order, e.g. TextAndPdf
        if wanted and set(result_type.formats) == wanted:
            return result_type.formats
    return (ResultFormat.TEXT,)


def _read_settings(
    inbox: _Section, *, mode: Mode, result_formats: tuple[ResultFormat, ...]
) -> RecognitionSettings:
    language = inbox.values.get("language", "English")
    try:
        parse_language(language, field_name=inbox.key_path("language"))
    except InvalidSetting as error:
        inbox.problems.append(str(error))
        language = "English"
    regions = _read_regions(inbox)
    if mode is Mode.REGIONS and not inbox.values.get("regions"):
        inbox.report("regions", "mode regions needs at least one region")
    elif mode is not Mode.REGIONS and inbox.values.get("regions"):
        inbox.report("regions", f"only used with mode regions (mode is {mode})")
    result_type = next(t for t in ResultType if t.formats == result_formats)
    return RecognitionSettings(
        language=language,
        rotate=inbox.integer("rotate", 0, minimum=None),
        dsr_mode=inbox.choice("dsr_mode", list(DsrMode), DsrMode.REGIONS),
        dsr_confidence=inbox.choice("dsr_confidence", list(DsrConfidence), DsrConfidence.DEFAULT),
        result_type=result_type,
        regions=regions,
        **{key: inbox.flag(key, key == "make_skew_correct") for key in _BOOLEAN_SETTINGS},
    )


def _read_regions(inbox: _Section) -> tuple[Region, ...]:
    value = inbox.values.get("regions") or []
    if not isinstance(value, list):
        inbox.report("regions", f"expected a list of {{rect, order, name}}, got {_kind(value)}")
        return ()
    regions: list[Region] = []
    for position, item in enumerate(value):
        where = f"{inbox.key_path('regions')}[{position}]"
        if isinstance(item, Mapping):
            for key in set(item) - {"rect", "order", "name"}:
                inbox.problems.append(f"{where}.{key}: unknown key; allowed: rect, order, name")
        try:
            regions.extend(parse_regions([item]))
        except InvalidSetting as error:  # model names the item regions[0]; give it its place
            field_name = error.field_name.removeprefix("regions[0]").lstrip(".")
            full = f"{where}.{field_name}" if field_name else where
            inbox.problems.append(str(InvalidSetting(full, error.value, allowed=error.allowed)))
    return tuple(regions)


def _read_template(inbox: _Section, *, beside_source: bool) -> str:
    template = inbox.text("output_template") or DEFAULT_OUTPUT_TEMPLATE
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as error:
        inbox.report("output_template", f"{template!r} is not a valid template: {error}")
        return DEFAULT_OUTPUT_TEMPLATE
    problems = [f"unknown placeholder {{{f}}}" for f in sorted(fields - set(TEMPLATE_PLACEHOLDERS))]
    if "ext" not in fields:
        problems.append("must contain {ext} so each result type gets its own file")
    if "/" in template or "\\" in template or template in (".", ".."):
        problems.append("must be a plain file name (no '/', no '..')")
    if beside_source and "name" not in fields:
        problems.append(
            "must contain {name} while outputs are written into the inbox (output_dir unset): "
            "that is how ocrwatch recognises its own outputs and never reads them back in"
        )
    for problem in problems:
        inbox.report("output_template", f"{template!r} {problem}")
    return DEFAULT_OUTPUT_TEMPLATE if problems else template


def _check_layout(
    labelled: Sequence[tuple[str, InboxConfig]], *, state_path: Path, problems: list[str]
) -> None:
    """Refuse layouts that would loop (re-ingest outputs) or collide (two owners of a folder)."""
    for position, (label, inbox) in enumerate(labelled):
        for other_label, other in labelled[:position]:
            if inbox.name == other.name:
                problems.append(f"{label}.name: {inbox.name!r} is already used by {other_label}")
            if _is_within(inbox.path, other.path) or _is_within(other.path, inbox.path):
                problems.append(
                    f"{label}.path: {inbox.path} overlaps {other_label}.path {other.path}; "
                    "an inbox must not be inside another"
                )
        written = {"error_dir": inbox.error_dir, "done_dir": inbox.done_dir}
        written["output_dir"] = inbox.output_dir  # None (beside the source) is safe: {name}
        for key, folder in written.items():
            if folder is None:
                continue
            for other_label, other in labelled:
                if _is_within(folder, other.path):
                    problems.append(
                        f"{label}.{key}: {folder} is inside {other_label}.path {other.path}; "
                        "files put there would be picked up again"
                    )
                elif _is_within(other.path, folder):
                    problems.append(
                        f"{label}.{key}: {folder} contains {other_label}.path {other.path}; "
                        "keep the inbox out of folders ocrwatch writes to"
                    )
        if _is_within(state_path, inbox.path):
            problems.append(
                f"state.path: {state_path} is inside {label}.path {inbox.path}; "
                "keep the state file out of watched folders"
            )


def _trial_warnings(inboxes: Sequence[InboxConfig]) -> list[str]:
    """Trial mode reaches RecognizeImageTrial only; say which files are bound to fail."""
    warnings = []
    for inbox in inboxes:
        if inbox.mode is not Mode.IMAGE:
            warnings.append(
                f"inbox {inbox.name}: mode {inbox.mode} needs credentials; trial mode "
                "(no credentials) can only use mode image — files will go to the error folder"
            )
        elif any(fnmatchcase("scan.pdf", p.lower().rsplit("/", 1)[-1]) for p in inbox.include):
            warnings.append(
                f"inbox {inbox.name}: PDFs need credentials (RecognizePdf has no trial); "
                "PDFs dropped here will go to the error folder"
            )
    return warnings
