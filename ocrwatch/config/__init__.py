"""Read the YAML configuration into frozen dataclasses; the only code that parses YAML.

Every problem is collected with its key path (``inboxes[1] (scans).language: ...``) and raised
once as a ``ConfigError``, so one run of ``ocrwatch check`` shows them all. Relative paths
resolve against the config file's directory and every path is compared after
``Path.resolve()``, so a symlinked alias cannot slip past the overlap checks.

One concept per module: ``keys`` (what the file may say), ``profiles`` (the frozen values),
``reader`` (a YAML mapping read key by key), ``inboxes`` (one inbox entry), ``credentials``
(the secret and its file's mode), ``operability`` (metrics and hooks), ``layout`` (folders
that would loop or collide), ``loader`` (the file, top level and service section) and
``description`` (the view ``ocrwatch check`` prints). The hazards each guards are described
where the code is.
"""

from __future__ import annotations

from ocrwatch.config.description import describe
from ocrwatch.config.keys import _HOOK_KEYS as _HOOK_KEYS
from ocrwatch.config.keys import _INBOX_KEYS as _INBOX_KEYS
from ocrwatch.config.keys import _METRICS_KEYS as _METRICS_KEYS
from ocrwatch.config.keys import _SERVICE_KEYS as _SERVICE_KEYS
from ocrwatch.config.keys import _TOP_KEYS as _TOP_KEYS
from ocrwatch.config.keys import (
    DEFAULT_INCLUDE,
    DEFAULT_OUTPUT_TEMPLATE,
    DEFAULT_URL,
    EMBEDDED_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    INBOX_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    RESULT_TYPE_NAMES,
    SYSTEMD_CREDENTIAL,
    TEMPLATE_PLACEHOLDERS,
)
from ocrwatch.config.loader import (
    ENV_CONFIG,
    SYSTEM_CONFIG,
    ConfigLocation,
    default_state_path,
    load_config,
    locate_config,
)
from ocrwatch.config.operability import is_loopback_host
from ocrwatch.config.profiles import Config, HookConfig, InboxConfig, MetricsConfig, ServiceConfig

__all__ = [
    "DEFAULT_INCLUDE",
    "DEFAULT_OUTPUT_TEMPLATE",
    "DEFAULT_URL",
    "EMBEDDED_URL",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_CONFIG",
    "INBOX_MODES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "RESULT_TYPE_NAMES",
    "SYSTEMD_CREDENTIAL",
    "SYSTEM_CONFIG",
    "TEMPLATE_PLACEHOLDERS",
    "Config",
    "ConfigLocation",
    "HookConfig",
    "InboxConfig",
    "MetricsConfig",
    "ServiceConfig",
    "default_state_path",
    "describe",
    "is_loopback_host",
    "load_config",
    "locate_config",
]
