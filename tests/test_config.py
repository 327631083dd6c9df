"""Loading the YAML config: resolved values, credentials, and every refusal with its key path."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from ocrwatch.config import (
    DEFAULT_INCLUDE,
    Config,
    HookConfig,
    InboxConfig,
    ServiceConfig,
    default_state_path,
    describe,
    load_config,
    locate_config,
)
from ocrwatch.errors import ConfigError, ExitCode
from ocrwatch.model import (
    Credentials,
    Disposition,
    DsrConfidence,
    DsrMode,
    DuplicatePolicy,
    Mode,
    RecognitionSettings,
    Rect,
    Region,
    ResultFormat,
    ResultType,
    WatchMode,
)

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-value-never-shown"
BOX = "{top_left_x: 0, top_left_y: 0, bottom_right_x: 5, bottom_right_y: 5}"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no credentials, and a HOME whose default state path is in tmp."""
    return {"HOME": str(tmp_path / "home")}


def write(tmp_path: Path, text: str, *, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(0o600)
    return path


def make_inbox(tmp_path: Path, name: str = "inbox") -> Path:
    path = tmp_path / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def problems(path: Path, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    assert caught.value.exit_code is ExitCode.CONFIG
    return list(caught.value.problems)


def minimal(tmp_path: Path, extra: str = "", *, service: str = "") -> Path:
    """A one-inbox config at tmp_path/config.yaml with ``extra`` lines added to the inbox."""
    make_inbox(tmp_path)
    inbox_lines = textwrap.indent(textwrap.dedent(extra).rstrip("\n") + "\n", "    ")
    service_block = textwrap.indent(textwrap.dedent(service).rstrip("\n") + "\n", "  ")
    service_lines = f"service:\n{service_block}" if service else ""
    text = f"{service_lines}inboxes:\n  - name: scans\n    path: ./inbox\n{inbox_lines}"
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# --- resolved values -------------------------------------------------------------------------


def test_full_config_resolves_to_the_expected_dataclasses(
    tmp_path: Path, env: dict[str, str]
) -> None:
    for folder in ("inbox", "out", "errors", "done"):
        make_inbox(tmp_path, folder)
    secret_file = tmp_path / "client_secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    path = write(
        tmp_path,
        """\
        service:
          url: http://127.0.0.1:8080/
          client_id: my-app
          client_secret_file: client_secret
          connect_timeout_seconds: 3
          read_timeout_seconds: 30.5
          max_in_flight: 8
          upload_concurrency: 2
          poll_concurrency: 3
          max_attempts: 7
          task_deadline_seconds: 600
          retention_seconds: 7200
          breaker_threshold: 9
          breaker_probe_seconds: 12
          use_status_probe: false
        state:
          path: ./state/ocrwatch.db
        rescan_interval_seconds: 60
        logging: {level: debug, format: json}
        inboxes:
          - name: forms
            path: ./inbox
            mode: regions
            language: Ukrainan
            make_skew_correct: false
            rotate: 90
            make_binarization: true
            make_contrast_correction: true
            make_upsampling: true
            make_spell_check: true
            dsr_mode: NoDsrNoFilter
            dsr_confidence: High
            result_types: [json]
            regions:
              - {rect: {top_left_x: 0, top_left_y: 0, bottom_right_x: 100, bottom_right_y: 50},
                 order: 1, name: Header}
            output_dir: ./out
            output_template: "{inbox}-{stem}.{suffix}.{ext}"
            error_dir: ./errors
            on_success: move
            done_dir: ./done
            include: ["*.PNG", "scans/*.tif"]
            exclude: ["draft-*"]
            recursive: true
            watch: polling
            polling_interval_seconds: 2
            settle_seconds: 1.5
            max_settle_seconds: 60
            duplicates: reprocess
        """,
    )

    config = load_config(path, environ=env)

    assert config == Config(
        service=ServiceConfig(
            url="http://127.0.0.1:8080",
            credentials=Credentials(client_id="my-app", client_secret=SECRET),
            credentials_source=f"file {secret_file}",
            connect_timeout_seconds=3.0,
            read_timeout_seconds=30.5,
            max_in_flight=8,
            upload_concurrency=2,
            poll_concurrency=3,
            max_attempts=7,
            task_deadline_seconds=600.0,
            retention_seconds=7200.0,
            breaker_threshold=9,
            breaker_probe_seconds=12.0,
            use_status_probe=False,
        ),
        inboxes=(
            InboxConfig(
                name="forms",
                path=tmp_path / "inbox",
                mode=Mode.REGIONS,
                settings=RecognitionSettings(
                    language="Ukrainan",
                    make_skew_correct=False,
                    rotate=90,
                    make_binarization=True,
                    make_contrast_correction=True,
                    make_upsampling=True,
                    make_spell_check=True,
                    dsr_mode=DsrMode.NO_DSR_NO_FILTER,
                    dsr_confidence=DsrConfidence.HIGH,
                    result_type=ResultType.JSON,
                    regions=(Region(rect=Rect(0, 0, 100, 50), order=1, name="Header"),),
                ),
                result_formats=(ResultFormat.JSON,),
                output_dir=tmp_path / "out",
                output_template="{inbox}-{stem}.{suffix}.{ext}",
                error_dir=tmp_path / "errors",
                on_success=Disposition.MOVE,
                done_dir=tmp_path / "done",
                include=("*.PNG", "scans/*.tif"),
                exclude=("draft-*",),
                recursive=True,
                watch=WatchMode.POLLING,
                polling_interval_seconds=2.0,
                settle_seconds=1.5,
                max_settle_seconds=60.0,
                duplicates=DuplicatePolicy.REPROCESS,
            ),
        ),
        state_path=tmp_path / "state" / "ocrwatch.db",
        rescan_interval_seconds=60.0,
        log_level="debug",
        log_format="json",
        source_path=path,
        warnings=(),
    )
    assert config.inbox("forms") is config.inboxes[0]


def test_a_minimal_inbox_gets_every_default(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_config(minimal(tmp_path), environ=env)

    assert config.service == ServiceConfig(
        url="https://api.aspose.cloud", credentials=None, credentials_source=None
    )
    assert config.state_path == tmp_path / "home/.local/state/ocrwatch/state.db"
    assert (config.rescan_interval_seconds, config.log_level, config.log_format) == (
        300.0,
        "info",
        "auto",
    )
    assert config.inboxes == (
        InboxConfig(
            name="scans",
            path=tmp_path / "inbox",
            mode=Mode.IMAGE,
            settings=RecognitionSettings(),
            result_formats=(ResultFormat.TEXT,),
            output_dir=None,
            output_template="{name}.{ext}",
            error_dir=tmp_path / "inbox.errors",
            on_success=Disposition.KEEP,
            done_dir=None,
            include=DEFAULT_INCLUDE,
            exclude=(),
        ),
    )
    assert DEFAULT_INCLUDE == (
        "*.pdf", "*.png", "*.jpg", "*.jpeg", "*.jpe", "*.tif", "*.tiff", "*.bmp", "*.gif",
        "*.webp", "*.avif", "*.jp2", "*.j2k", "*.jpf", "*.jpx", "*.pnm", "*.pbm", "*.pgm",
        "*.ppm", "*.heic", "*.heif",
    )  # fmt: skip


def test_defaults_merge_under_each_inbox_the_inbox_wins_and_lists_replace(
    tmp_path: Path, env: dict[str, str]
) -> None:
    make_inbox(tmp_path, "a")
    make_inbox(tmp_path, "b")
    path = write(
        tmp_path,
        """\
        defaults:
          language: German
          settle_seconds: 9
          include: ["*.tif", "*.png"]
          result_types: [text, hocr]
        inboxes:
          - {name: a, path: ./a}
          - {name: b, path: ./b, settle_seconds: 2, include: ["*.jpg"], result_types: [json]}
        """,
    )

    a, b = load_config(path, environ=env).inboxes

    assert (a.settings.language, a.settle_seconds, a.include) == ("German", 9.0, ("*.tif", "*.png"))
    assert a.result_formats == (ResultFormat.TEXT, ResultFormat.HOCR)
    assert (b.settings.language, b.settle_seconds, b.include) == ("German", 2.0, ("*.jpg",))
    assert (b.result_formats, b.settings.result_type) == ((ResultFormat.JSON,), ResultType.JSON)


def test_relative_paths_resolve_against_the_config_directory_and_tilde_expands(
    tmp_path: Path, env: dict[str, str]
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    make_inbox(config_dir, "inbox")
    make_inbox(tmp_path / "home", "scans")
    path = write(
        config_dir,
        """\
        state: {path: ../var/state.db}
        inboxes:
          - {name: local, path: inbox, error_dir: ../errs/local}
          - {name: home, path: ~/scans}
        """,
    )

    config = load_config(path, environ=env)

    assert config.inbox("local").path == config_dir / "inbox"
    assert config.inbox("local").error_dir == tmp_path / "errs" / "local"
    assert config.inbox("home").path == tmp_path / "home" / "scans"
    assert config.inbox("home").error_dir == tmp_path / "home" / "scans.errors"
    assert config.state_path == tmp_path / "var" / "state.db"
    with pytest.raises(KeyError, match="no inbox named 'nope'; configured: local, home"):
        config.inbox("nope")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/ocrwatch:/var/lib/other"}, "/var/lib/ocrwatch/state.db"),
        ({"XDG_STATE_HOME": "/xdg/state", "HOME": "/h"}, "/xdg/state/ocrwatch/state.db"),
        ({"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/ocrwatch/state.db"),
        ({"HOME": "/h"}, "/h/.local/state/ocrwatch/state.db"),
    ],
)
def test_default_state_path_prefers_systemd_then_xdg_then_home(
    environ: dict[str, str], expected: str
) -> None:
    assert default_state_path(environ) == Path(expected)


@pytest.mark.parametrize(
    ("config_path", "environ", "expected"),
    [  # the shipped units: ocrwatch.service and ocrwatch@NAME.service
        ("/etc/ocrwatch/config.yaml", {"HOME": "/h"}, "/var/lib/ocrwatch/state.db"),
        ("/etc/ocrwatch/scans.yaml", {"HOME": "/h"}, "/var/lib/ocrwatch/scans/state.db"),
        ("/etc/ocrwatch/config.yaml", {"STATE_DIRECTORY": "/run/x"}, "/run/x/state.db"),
        ("/home/u/config.yaml", {"HOME": "/h"}, "/h/.local/state/ocrwatch/state.db"),
    ],
)
def test_a_config_in_etc_ocrwatch_uses_the_services_state_file(
    config_path: str, environ: dict[str, str], expected: str
) -> None:
    """``ocrwatch status`` run by hand reads the file the unit's StateDirectory= holds."""
    assert default_state_path(environ, config_path=Path(config_path)) == Path(expected)


def test_the_config_search_path_is_flag_then_environment_then_etc(tmp_path: Path) -> None:
    system = tmp_path / "etc" / "config.yaml"
    flag, env = Path("flag.yaml"), {"OCRWATCH_CONFIG": "/from/env.yaml"}
    assert locate_config(flag, environ=env, system_config=system).path == flag
    found = locate_config(None, environ=env, system_config=system)
    assert (found.path, found.origin) == (Path("/from/env.yaml"), "$OCRWATCH_CONFIG")
    with pytest.raises(ConfigError) as refused:
        locate_config(None, environ={}, system_config=system)
    (problem,) = refused.value.problems
    assert "--config" in problem and "$OCRWATCH_CONFIG (not set)" in problem
    assert str(system) in problem
    system.parent.mkdir()
    system.write_text("inboxes: []\n")
    found = locate_config(None, environ={}, system_config=system)
    assert (found.path, found.origin) == (system, "the default")


@pytest.mark.parametrize(
    "url",
    ["https://api.aspose.cloud", "http://localhost:5000", "http://127.0.0.2", "http://[::1]:8"],
)
def test_https_or_loopback_http_urls_are_accepted(
    tmp_path: Path, env: dict[str, str], url: str
) -> None:
    config = load_config(minimal(tmp_path, service=f"url: '{url}'"), environ=env)
    assert config.service.url == url


def test_the_example_config_loads_once_its_inbox_exists(
    tmp_path: Path, env: dict[str, str]
) -> None:
    copy = tmp_path / "config.yaml"
    shutil.copyfile(REPO / "config.example.yaml", copy)
    copy.chmod(0o600)
    make_inbox(tmp_path)

    config = load_config(copy, environ=env)

    (inbox,) = config.inboxes
    assert (inbox.name, inbox.path, inbox.error_dir) == (
        "scans",
        tmp_path / "inbox",
        tmp_path / "errors",
    )
    assert config.service.is_embedded, "the example runs offline on the local engine"
    assert config.service.credentials is None
    assert config.state_path == tmp_path / "home/.local/state/ocrwatch/state.db"
    assert config.warnings == ()


def test_the_example_config_documents_every_key() -> None:
    from ocrwatch.config import _HOOK_KEYS, _INBOX_KEYS, _METRICS_KEYS, _SERVICE_KEYS, _TOP_KEYS

    text = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    keys = (*_TOP_KEYS, *_SERVICE_KEYS, *_INBOX_KEYS, *_METRICS_KEYS, *_HOOK_KEYS)
    for key in (*keys, "level:", "format:"):
        assert f"{key.rstrip(':')}:" in text, key


# --- credentials ------------------------------------------------------------------------------


def secret_file(folder: Path, *, mode: int = 0o600, text: str = SECRET + "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "client_secret"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_credentials_from_the_environment(tmp_path: Path, env: dict[str, str]) -> None:
    env |= {"OCRWATCH_CLIENT_ID": "env-id", "OCRWATCH_CLIENT_SECRET": SECRET}
    service = load_config(minimal(tmp_path, service="client_id: yaml-id"), environ=env).service

    assert service.credentials == Credentials(client_id="env-id", client_secret=SECRET)
    assert service.credentials_source == "env OCRWATCH_CLIENT_SECRET"


def test_the_environment_secret_wins_over_the_secret_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    secret_file(tmp_path, text="from-file")
    env["OCRWATCH_CLIENT_SECRET"] = "from-env"
    path = minimal(tmp_path, service="client_id: id\nclient_secret_file: client_secret")

    credentials = load_config(path, environ=env).service.credentials

    assert credentials == Credentials(client_id="id", client_secret="from-env")


def test_a_systemd_credential_is_used_and_exempt_from_the_mode_check(
    tmp_path: Path, env: dict[str, str]
) -> None:
    secret_file(tmp_path / "creds", mode=0o640)  # systemd manages that directory's modes
    env |= {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds"), "OCRWATCH_CLIENT_ID": "id"}

    service = load_config(minimal(tmp_path), environ=env).service

    assert service.credentials == Credentials(client_id="id", client_secret=SECRET)
    assert service.credentials_source == "systemd credential client_secret"


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    path = secret_file(tmp_path, mode=0o644)
    config = minimal(tmp_path, service="client_id: id\nclient_secret_file: client_secret")

    assert problems(config, env) == [
        f"service.client_secret_file: {path} can be read or changed by group or others "
        f"(mode 0644); run: chmod 600 {path}"
    ]


def test_a_missing_secret_file_is_named(tmp_path: Path, env: dict[str, str]) -> None:
    config = minimal(tmp_path, service="client_id: id\nclient_secret_file: /nonexistent/secret")

    assert problems(config, env) == [
        "service.client_secret_file: cannot read the client secret from /nonexistent/secret: "
        "No such file or directory"
    ]


def test_half_the_credentials_is_an_error(tmp_path: Path, env: dict[str, str]) -> None:
    assert problems(minimal(tmp_path, service="client_id: id"), env) == [
        "service.client_id: a client id is set but no client secret: set "
        "service.client_secret_file, OCRWATCH_CLIENT_SECRET or systemd "
        "LoadCredential=client_secret:<file> (or remove the id to run in trial mode)"
    ]
    env["OCRWATCH_CLIENT_SECRET"] = SECRET
    assert problems(minimal(tmp_path), env) == [
        "service.client_id: a client secret is set (env OCRWATCH_CLIENT_SECRET) but no client "
        "id: set service.client_id or OCRWATCH_CLIENT_ID"
    ]


def test_a_secret_in_the_config_file_points_to_the_safe_places(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (problem,) = problems(minimal(tmp_path, service=f"client_secret: {SECRET}"), env)

    assert problem.startswith("service.client_secret: a secret does not belong in the config")
    for hint in ("client_secret_file", "OCRWATCH_CLIENT_SECRET", "LoadCredential=client_secret:"):
        assert hint in problem
    assert SECRET not in problem


def test_describe_shows_where_the_secret_came_from_but_never_its_value(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = secret_file(tmp_path)
    config_path = minimal(tmp_path, service="client_id: id\nclient_secret_file: client_secret")
    config = load_config(config_path, environ=env)

    view = describe(config)
    text = json.dumps(view)

    assert SECRET not in text
    assert SECRET not in repr(config)
    assert view["service"]["credentials"] == {
        "client_id": "id",
        "client_secret": f"(set, from file {path})",
    }
    (inbox,) = view["inboxes"]
    assert inbox["error_dir"] == str(tmp_path / "inbox.errors")
    assert inbox["result_types"] == ["text"]
    assert inbox["example_outputs"] == ["scan.png.txt"]
    assert inbox["settings"]["language"] == "English"
    assert inbox["profile_hash"] == config.inboxes[0].profile_hash


# --- warnings ---------------------------------------------------------------------------------


def test_trial_mode_warns_about_files_bound_to_fail(tmp_path: Path, env: dict[str, str]) -> None:
    for name in ("photos", "labels", "forms", "pngs", "braces"):
        make_inbox(tmp_path, name)
    path = write(
        tmp_path,
        """\
        inboxes:
          - {name: photos, path: ./photos}
          - {name: labels, path: ./labels, mode: label}
          - name: forms
            path: ./forms
            mode: regions
            regions: [{rect: {top_left_x: 0, top_left_y: 0, bottom_right_x: 9, bottom_right_y: 9}}]
          - {name: pngs, path: ./pngs, include: ["*.png"]}
          - {name: braces, path: ./braces, include: ["in/**/*.{png,PDF}"]}
        """,
    )

    assert load_config(path, environ=env).warnings == (
        "inbox photos: PDFs need credentials (RecognizePdf has no trial); "
        "PDFs dropped here will go to the error folder",
        "inbox labels: mode label needs credentials; trial mode (no credentials) can only use "
        "mode image — files will go to the error folder",
        "inbox forms: mode regions needs credentials; trial mode (no credentials) can only use "
        "mode image — files will go to the error folder",
        "inbox braces: PDFs need credentials (RecognizePdf has no trial); "
        "PDFs dropped here will go to the error folder",
    )
    env |= {"OCRWATCH_CLIENT_ID": "id", "OCRWATCH_CLIENT_SECRET": SECRET}
    assert load_config(path, environ=env).warnings == ()


def test_a_label_inbox_in_another_language_is_a_warning(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env |= {"OCRWATCH_CLIENT_ID": "id", "OCRWATCH_CLIENT_SECRET": SECRET}
    path = minimal(tmp_path, "mode: label\nlanguage: German\nregions: []\n")

    assert load_config(path, environ=env).warnings == (
        "inbox scans: mode label is documented for English only, not German",
    )


def test_a_config_file_writable_by_others_is_a_warning(tmp_path: Path, env: dict[str, str]) -> None:
    path = minimal(tmp_path, "include: ['*.png']")
    path.chmod(0o666)

    assert load_config(path, environ=env).warnings == (
        f"config file {path} is writable by group or others: chmod go-w it",
    )


# --- refusals, each with its key path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("inbox_lines", "expected"),
    [
        (
            "language: Englsh",
            "inboxes[0] (scans).language: 'Englsh' is not allowed; allowed: English, German, "
            "French, Italian, Spanish, Portuguese, Polish, Slovene, Slovak, Netherlands, "
            "Lithuanian, Latvian, ... (154 values in all)",
        ),
        (
            "dsr_mode: regions",
            "inboxes[0] (scans).dsr_mode: 'regions' is not allowed; allowed: Regions, "
            "DsrNoFilter, DsrAndFilter, NoDsrNoFilter, TextDetector, DsrPlusDetector, "
            "PolygonalTextDetector, LineDetector",
        ),
        (
            "mode: pdf",
            "inboxes[0] (scans).mode: 'pdf' is not allowed; allowed: image, label, regions",
        ),
        (
            "on_success: archive",
            "inboxes[0] (scans).on_success: 'archive' is not allowed; allowed: keep, move, delete",
        ),
        (
            "make_spell_check: 'yes'",
            "inboxes[0] (scans).make_spell_check: expected true or false, got 'yes' (str)",
        ),
        ("rotate: 1.5", "inboxes[0] (scans).rotate: expected an integer, got 1.5 (float)"),
        (
            "settle_seconds: -1",
            "inboxes[0] (scans).settle_seconds: expected a number >= 0, got -1 (int)",
        ),
        (
            "polling_interval_seconds: 'ten'",
            "inboxes[0] (scans).polling_interval_seconds: expected a number > 0, got 'ten' (str)",
        ),
        (
            "settle_seconds: 100\nmax_settle_seconds: 50",
            "inboxes[0] (scans).settle_seconds: 100 is more than max_settle_seconds (50)",
        ),
        (
            "on_success: move",
            "inboxes[0] (scans).done_dir: required when on_success is move: where the sources go",
        ),
        (
            "done_dir: ../done",
            "inboxes[0] (scans).done_dir: only used when on_success is move (it is keep)",
        ),
        (
            "result_types: []",
            "inboxes[0] (scans).result_types: expected a list such as [text, pdf], got [] (list)",
        ),
        (
            "result_types: [text, docx]",
            "inboxes[0] (scans).result_types[1]: 'docx' is not allowed; "
            "allowed: text, pdf, hocr, json",
        ),
        (
            "result_types: [text, json]",
            "inboxes[0] (scans).result_types: json cannot be combined with other result types: "
            "the API has no combined JSON result type (use a second inbox for json)",
        ),
        (
            "mode: regions",
            "inboxes[0] (scans).regions: mode regions needs at least one region",
        ),
        (
            f"mode: regions\nresult_types: [text, pdf]\nregions: [{{rect: {BOX}}}]",
            "inboxes[0] (scans).result_types: mode regions writes text or json: the service "
            "answers one PDF or hOCR per region, which cannot be joined into one sidecar",
        ),
        (
            f"regions: [{{rect: {BOX}}}]",
            "inboxes[0] (scans).regions: only used with mode regions (mode is image)",
        ),
        (
            "mode: regions\nregions: [{rect: {top_left_x: 9, top_left_y: 0, "
            "bottom_right_x: 5, bottom_right_y: 5}}]",
            "inboxes[0] (scans).regions[0].rect: (9, 0, 5, 5) is not allowed; allowed: "
            "bottom-right corner right of and below the top-left corner",
        ),
        (
            "output_template: '{stem}.{ext}'",
            "inboxes[0] (scans).output_template: '{stem}.{ext}' must contain {name} while outputs "
            "are written into the inbox (output_dir unset): that is how ocrwatch recognises its "
            "own outputs and never reads them back in",
        ),
        (
            "output_template: '{name}.txt'",
            "inboxes[0] (scans).output_template: '{name}.txt' must contain {ext} so each result "
            "type gets its own file",
        ),
        (
            "output_template: 'txt/{name}.{ext}'",
            "inboxes[0] (scans).output_template: 'txt/{name}.{ext}' must be a plain file name "
            "(no '/', no '..')",
        ),
        (
            "output_template: '{name}.{date}.{ext}'",
            "inboxes[0] (scans).output_template: '{name}.{date}.{ext}' unknown placeholder {date}",
        ),
        (
            "watch: inotify",
            "inboxes[0] (scans).watch: 'inotify' is not allowed; allowed: auto, events, polling",
        ),
        (
            "include: '*.png'",
            "inboxes[0] (scans).include: expected a list of glob patterns, got '*.png' (str)",
        ),
        (
            "incomplete_after_seconds: 0",
            "inboxes[0] (scans).incomplete_after_seconds: expected a number > 0, got 0 (int)",
        ),
        (
            "settle_seconds: 20\nincomplete_after_seconds: 10",
            "inboxes[0] (scans).settle_seconds: 20 is more than incomplete_after_seconds (10)",
        ),
        (
            "colour: true",
            "inboxes[0] (scans).colour: unknown key; allowed: name, path, mode, language, "
            "make_skew_correct, make_binarization, make_contrast_correction, make_upsampling, "
            "make_spell_check, rotate, dsr_mode, dsr_confidence, result_types, regions, "
            "output_dir, output_template, error_dir, on_success, done_dir, include, exclude, "
            "recursive, watch, polling_interval_seconds, settle_seconds, max_settle_seconds, "
            "incomplete_after_seconds, duplicates, hooks",
        ),
    ],
)
def test_a_bad_inbox_value_is_refused_with_its_key_path(
    tmp_path: Path, env: dict[str, str], inbox_lines: str, expected: str
) -> None:
    assert problems(minimal(tmp_path, inbox_lines + "\n"), env) == [expected]


@pytest.mark.parametrize(
    ("service_lines", "expected"),
    [
        ("max_in_flight: 0", "service.max_in_flight: expected an integer >= 1, got 0 (int)"),
        (
            "upload_concurrency: 0",
            "service.upload_concurrency: expected an integer >= 1, got 0 (int)",
        ),
        (
            "poll_concurrency: '4'",
            "service.poll_concurrency: expected an integer >= 1, got '4' (str)",
        ),
        (
            "read_timeout_seconds: -5",
            "service.read_timeout_seconds: expected a number > 0, got -5 (int)",
        ),
        ("use_status_probe: 1", "service.use_status_probe: expected true or false, got 1 (int)"),
        (
            "task_deadline_seconds: 86400",
            "service.task_deadline_seconds: 86400 must be less than service.retention_seconds "
            "(86400): the service forgets a task's result after that",
        ),
        (
            "url: http://ocr.example.com",
            "service.url: 'http://ocr.example.com' must be an https:// URL (http:// only for "
            "localhost, 127.0.0.0/8 or ::1): the credentials and the documents travel over it",
        ),
        (
            "timeout: 5",
            "service.timeout: unknown key; allowed: url, client_id, client_secret_file, "
            "connect_timeout_seconds, read_timeout_seconds, max_in_flight, upload_concurrency, "
            "poll_concurrency, max_attempts, task_deadline_seconds, retention_seconds, "
            "breaker_threshold, breaker_probe_seconds, quota_probe_seconds, use_status_probe, "
            "client_secret",
        ),
    ],
)
def test_a_bad_service_value_is_refused_with_its_key_path(
    tmp_path: Path, env: dict[str, str], service_lines: str, expected: str
) -> None:
    assert problems(minimal(tmp_path, service=service_lines + "\n"), env) == [expected]


def test_a_bad_default_is_reported_once_under_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    make_inbox(tmp_path, "a")
    make_inbox(tmp_path, "b")
    path = write(
        tmp_path,
        """\
        defaults: {language: Klingon, name: x}
        inboxes: [{name: a, path: ./a}, {name: b, path: ./b}]
        """,
    )

    found = problems(path, env)

    assert found[0].startswith("defaults.name: unknown key; allowed: mode, language, ")
    assert found[1].startswith("defaults.language: 'Klingon' is not allowed; allowed: English,")
    assert len(found) == 2


def test_inbox_paths_must_exist_be_folders_be_unique_and_not_overlap(
    tmp_path: Path, env: dict[str, str]
) -> None:
    make_inbox(tmp_path, "inbox/sub")
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    (tmp_path / "alias").symlink_to(tmp_path / "inbox")
    path = write(
        tmp_path,
        """\
        inboxes:
          - {name: outer, path: ./inbox}
          - {name: inner, path: ./inbox/sub, error_dir: ./inner.errors}
          - {name: outer, path: ./alias, error_dir: ./alias.errors}
          - {name: missing, path: ./missing}
          - {name: plain, path: ./file.txt}
          - {name: "bad/name", path: ./inbox/sub}
          - {name: nopath}
        """,
    )
    inbox, sub = tmp_path / "inbox", tmp_path / "inbox" / "sub"

    found = problems(path, env)

    assert found == [
        f"inboxes[3] (missing).path: {tmp_path}/missing does not exist",
        f"inboxes[4] (plain).path: {tmp_path}/file.txt is not a directory",
        "inboxes[5] (bad/name).name: expected a name of letters, digits, '.', '_' or '-', "
        "got 'bad/name' (str)",
        "inboxes[6] (nopath).path: required: the folder to watch",
        f"inboxes[1] (inner).path: {sub} overlaps inboxes[0] (outer).path {inbox}; "
        "an inbox must not be inside another",
        "inboxes[2] (outer).name: 'outer' is already used by inboxes[0] (outer)",
        f"inboxes[2] (outer).path: {inbox} overlaps inboxes[0] (outer).path {inbox}; "
        "an inbox must not be inside another",
        f"inboxes[2] (outer).path: {inbox} overlaps inboxes[1] (inner).path {sub}; "
        "an inbox must not be inside another",
        f"inboxes[5] (bad/name).path: {sub} overlaps inboxes[0] (outer).path {inbox}; "
        "an inbox must not be inside another",
        f"inboxes[5] (bad/name).path: {sub} overlaps inboxes[1] (inner).path {sub}; "
        "an inbox must not be inside another",
        f"inboxes[5] (bad/name).path: {sub} overlaps inboxes[2] (outer).path {inbox}; "
        "an inbox must not be inside another",
        f"inboxes[5] (bad/name).error_dir: {sub}.errors is inside inboxes[0] (outer).path "
        f"{inbox}; files put there would be picked up again",
        f"inboxes[5] (bad/name).error_dir: {sub}.errors is inside inboxes[2] (outer).path "
        f"{inbox}; files put there would be picked up again",
    ]


def test_folders_ocrwatch_writes_to_must_stay_out_of_every_inbox(
    tmp_path: Path, env: dict[str, str]
) -> None:
    a, b = make_inbox(tmp_path, "a"), make_inbox(tmp_path, "b")
    (tmp_path / "b-alias").symlink_to(b)
    path = write(
        tmp_path,
        """\
        state: {path: ./a/state.db}
        inboxes:
          - name: a
            path: ./a
            error_dir: ./b-alias/errors
            output_dir: ./b/out
            on_success: move
            done_dir: ./a/done
          - {name: b, path: ./b, error_dir: .}
        """,
    )

    assert problems(path, env) == [
        f"inboxes[0] (a).error_dir: {b}/errors is inside inboxes[1] (b).path {b}; "
        "files put there would be picked up again",
        f"inboxes[0] (a).done_dir: {a}/done is inside inboxes[0] (a).path {a}; "
        "files put there would be picked up again",
        f"inboxes[0] (a).output_dir: {b}/out is inside inboxes[1] (b).path {b}; "
        "files put there would be picked up again",
        f"state.path: {a}/state.db is inside inboxes[0] (a).path {a}; "
        "keep the state file out of watched folders",
        f"inboxes[1] (b).error_dir: {tmp_path} contains inboxes[0] (a).path {a}; "
        "keep the inbox out of folders ocrwatch writes to",
        f"inboxes[1] (b).error_dir: {tmp_path} contains inboxes[1] (b).path {b}; "
        "keep the inbox out of folders ocrwatch writes to",
    ]


def test_an_output_dir_outside_the_inbox_may_drop_the_source_name(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = minimal(tmp_path, "output_dir: ./text\noutput_template: '{stem}.{ext}'\n")

    inbox = load_config(path, environ=env).inboxes[0]

    assert (inbox.output_dir, inbox.output_template) == (tmp_path / "text", "{stem}.{ext}")


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    make_inbox(tmp_path)
    path = write(
        tmp_path,
        """\
        service:
          max_in_flight: 0
          task_deadline_seconds: 90000
        logging: {level: verbose}
        colour: blue
        inboxes:
          - name: scans
            path: ./inbox
            language: Englsh
            result_types: []
            settle_seconds: fast
            error_dir: ./inbox/failed
          - {name: later, path: ./nowhere}
        """,
    )

    found = problems(path, env)

    assert [line.split(":")[0] for line in found] == [
        "colour",
        "service.max_in_flight",
        "service.task_deadline_seconds",
        "logging.level",
        "inboxes[0] (scans).result_types",
        "inboxes[0] (scans).language",
        "inboxes[0] (scans).settle_seconds",
        "inboxes[1] (later).path",
        "inboxes[0] (scans).error_dir",
    ]
    assert str(ConfigError(found)) == "\n".join(found)


# --- the file itself --------------------------------------------------------------------------


def test_invalid_yaml_is_one_problem_with_its_line(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "inboxes:\n  - name: scans\n    path: [./inbox\n")

    (problem,) = problems(path, env)

    assert problem.startswith(f"{path}, line 4: not valid YAML: ")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "inboxes: []\nlogging: {}\ninboxes: []\n")

    assert problems(path, env) == [f"{path}, line 3: not valid YAML: duplicate key 'inboxes'"]


def test_yaml_merge_keys_still_work(tmp_path: Path, env: dict[str, str]) -> None:
    make_inbox(tmp_path)
    path = write(
        tmp_path,
        """\
        defaults: &base {settle_seconds: 7, language: German}
        inboxes:
          - {<<: *base, name: scans, path: ./inbox, settle_seconds: 3}
        """,
    )

    (inbox,) = load_config(path, environ=env).inboxes

    assert (inbox.settle_seconds, inbox.settings.language) == (3.0, "German")


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "inboxes: []\n"])
def test_a_config_without_inboxes_says_so(tmp_path: Path, env: dict[str, str], text: str) -> None:
    (problem,) = problems(write(tmp_path, text), env)

    assert "no inboxes" in problem


def test_a_missing_config_file_is_named(tmp_path: Path, env: dict[str, str]) -> None:
    (problem,) = problems(tmp_path / "absent.yaml", env)

    assert problem.startswith(f"{tmp_path}/absent.yaml: cannot read the configuration file")


# --- profile hash -----------------------------------------------------------------------------


def profile_hash(tmp_path: Path, env: dict[str, str], inbox_lines: str) -> str:
    return load_config(minimal(tmp_path, inbox_lines), environ=env).inboxes[0].profile_hash


def test_the_profile_hash_is_stable_across_runs_and_key_order(
    tmp_path: Path, env: dict[str, str]
) -> None:
    one = profile_hash(tmp_path, env, "language: German\nrotate: 90\n")
    other = profile_hash(tmp_path, env, "rotate: 90\nlanguage: German\n")

    assert one == other
    # Pinned: a change here makes every stored duplicate-cache entry miss after an upgrade.
    assert profile_hash(tmp_path, env, "") == (
        "ccb322c8820fe84f6d19f3b771882265630f663bfc55855144dc4e4781465548"
    )


@pytest.mark.parametrize(
    "inbox_lines",
    [
        "language: German",
        "make_spell_check: true",
        "rotate: 180",
        "dsr_confidence: Low",
        "result_types: [text, pdf]",
        "mode: label",
    ],
)
def test_the_profile_hash_changes_with_what_changes_the_recognised_text(
    tmp_path: Path, env: dict[str, str], inbox_lines: str
) -> None:
    assert profile_hash(tmp_path, env, inbox_lines) != profile_hash(tmp_path, env, "")


def test_the_profile_hash_covers_region_names(tmp_path: Path, env: dict[str, str]) -> None:
    region = "{rect: {top_left_x: 0, top_left_y: 0, bottom_right_x: 9, bottom_right_y: 9}"
    named = profile_hash(tmp_path, env, f"mode: regions\nregions: [{region}, name: A}}]")
    renamed = profile_hash(tmp_path, env, f"mode: regions\nregions: [{region}, name: B}}]")

    assert named != renamed


@pytest.mark.parametrize(
    "inbox_lines",
    [
        "output_dir: ../out\noutput_template: '{stem}.{ext}'",
        "on_success: delete",
        "error_dir: ../failed",
        "settle_seconds: 1",
        "include: ['*.png']",
        "duplicates: skip",
        "watch: polling",
    ],
)
def test_the_profile_hash_ignores_outputs_disposition_and_watching(
    tmp_path: Path, env: dict[str, str], inbox_lines: str
) -> None:
    assert profile_hash(tmp_path, env, inbox_lines) == profile_hash(tmp_path, env, "")


def test_the_embedded_service_needs_no_credentials_and_ignores_given_ones(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = minimal(tmp_path, "mode: label\n", service="url: embedded")
    config = load_config(path, environ=env)
    assert config.service.is_embedded
    assert config.service.credentials is None
    assert config.warnings == (), "no trial warnings: the embedded server has every mode"

    with_credentials = dict(env, OCRWATCH_CLIENT_ID="id", OCRWATCH_CLIENT_SECRET="secret")
    config = load_config(path, environ=with_credentials)
    assert any("credentials are not used" in warning for warning in config.warnings)


# --- metrics and hooks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("'127.0.0.1:9464'", ("127.0.0.1", 9464)),
        ("':9464'", ("127.0.0.1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
        ("'[::1]:0'", ("::1", 0)),
        ("'localhost:9100'", ("localhost", 9100)),
    ],
)
def test_the_metrics_listener_defaults_to_loopback(
    tmp_path: Path, env: dict[str, str], listen: str, expected: tuple[str, int]
) -> None:
    path = minimal(tmp_path)
    path.write_text(f"metrics:\n  listen: {listen}\n" + path.read_text())
    config = load_config(path, environ=env)
    assert config.metrics.listen == expected
    assert not [w for w in config.warnings if w.startswith("metrics")]
    assert describe(config)["metrics"]["listen"] == f"{expected[0]}:{expected[1]}"


def test_a_metrics_listener_on_the_network_is_a_warning(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = minimal(tmp_path)
    path.write_text("metrics: {listen: '0.0.0.0:9464'}\n" + path.read_text())
    config = load_config(path, environ=env)
    assert config.metrics.listen == ("0.0.0.0", 9464)
    assert any("metrics.listen: 0.0.0.0 is reachable" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{listen: 'ocr.example.com:9464'}", "metrics.listen: 'ocr.example.com' is not an IP"),
        ("{listen: 'port'}", "metrics.listen: 'port': expected host:port"),
        ("{listen: '1.2.3.4:70000'}", "metrics.listen: '1.2.3.4:70000': expected host:port"),
        ("{textfile: ./missing/ocrwatch.prom}", "metrics.textfile: the folder"),
        ("{interval_seconds: 0}", "metrics.interval_seconds: expected a number > 0"),
        ("{port: 1}", "metrics.port: unknown key; allowed: listen, textfile, interval_seconds"),
    ],
)
def test_bad_metrics_settings_are_refused_with_their_key_path(
    tmp_path: Path, env: dict[str, str], section: str, expected: str
) -> None:
    path = minimal(tmp_path)
    path.write_text(f"metrics: {section}\n" + path.read_text())
    (problem,) = problems(path, env)
    assert problem.startswith(expected), problem


def test_a_metrics_textfile_resolves_and_should_end_in_prom(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = minimal(tmp_path)
    path.write_text("metrics: {textfile: ocrwatch.txt}\n" + path.read_text())
    config = load_config(path, environ=env)
    assert config.metrics.textfile == tmp_path / "ocrwatch.txt"
    assert any("only reads *.prom" in w for w in config.warnings)


def test_hooks_are_argv_lists_paths_resolve_and_defaults_apply(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script = tmp_path / "bin" / "notify"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    make_inbox(tmp_path, "other")
    path = write(
        tmp_path,
        """\
        defaults:
          hooks: {on_failure: [logger, -t, ocrwatch], timeout_seconds: 5}
        inboxes:
          - {name: plain, path: ./inbox}
          - name: own
            path: ./other
            hooks:
              on_success: [bin/notify, --ok]
              webhook: https://hooks.example.org/x
        """,
    )
    make_inbox(tmp_path)
    plain, own = load_config(path, environ=env).inboxes
    assert plain.hooks == HookConfig(on_failure=("logger", "-t", "ocrwatch"), timeout_seconds=5.0)
    assert own.hooks == HookConfig(
        on_success=(str(script), "--ok"), webhook_url="https://hooks.example.org/x"
    )
    assert plain.profile_hash == own.profile_hash, "hooks do not change the recognised text"


@pytest.mark.parametrize(
    ("hooks", "expected"),
    [
        ("{on_success: 'notify-send done'}", "hooks.on_success: expected a command as a list"),
        ("{on_success: []}", "hooks.on_success: expected a command as a list"),
        ("{on_failure: [./missing.sh]}", "hooks.on_failure: "),
        ("{webhook: 'http://hooks.example.org/x'}", "hooks.webhook: 'http://hooks.example.org"),
        ("{timeout_seconds: -1}", "hooks.timeout_seconds: expected a number > 0"),
        ("{on_done: [true]}", "hooks.on_done: unknown key; allowed: on_success, on_failure"),
    ],
)
def test_bad_hooks_are_refused_with_their_key_path(
    tmp_path: Path, env: dict[str, str], hooks: str, expected: str
) -> None:
    (problem,) = problems(minimal(tmp_path, f"hooks: {hooks}"), env)
    assert problem.startswith("inboxes[0] (scans)." + expected), problem


def test_a_hook_script_that_is_not_executable_is_refused(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "hook.sh").write_text("#!/bin/sh\n")
    (problem,) = problems(minimal(tmp_path, "hooks: {on_success: [./hook.sh]}"), env)
    assert problem.endswith("is not executable: chmod +x it")


def test_a_loopback_http_webhook_is_accepted(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_config(
        minimal(tmp_path, "hooks: {webhook: 'http://127.0.0.1:8080/hook'}"), environ=env
    )
    assert config.inboxes[0].hooks.webhook_url == "http://127.0.0.1:8080/hook"


def test_check_never_calls_the_embedded_service_trial_mode(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    embedded = load_config(minimal(tmp_path, service="url: embedded"), environ=env)
    assert "trial" not in json.dumps(describe(embedded)["service"]["credentials"])
    cloud = load_config(minimal(tmp_path), environ=env)  # no credentials: trial mode for real
    assert "trial" in describe(cloud)["service"]["credentials"]


# Ports people already run: Prometheus, its Pushgateway and Alertmanager, node-exporter,
# the OpenTelemetry Prometheus exporter, Grafana, and the usual web and development ports.
_COMMON_PORTS = {80, 443, 3000, 5000, 8000, 8008, 8080, 8081, 8443, 8888, 9000, 9090, 9091,
                 9093, 9100, 9464}  # fmt: skip


def test_the_documented_metrics_port_collides_with_nothing_common() -> None:
    documents = (REPO / "README.md").read_text() + (REPO / "config.example.yaml").read_text()
    ports = {int(p) for p in re.findall(r"listen: \"(?:127\.0\.0\.1)?:(\d+)\"", documents)}
    ports |= {int(p) for p in re.findall(r"a bare port \(\"?`?:(\d+)", documents)}
    (port,) = ports  # one example port, the same everywhere
    assert port not in _COMMON_PORTS
    assert not 9100 <= port <= 9999, "the exporter range: every port there is someone's"
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if ephemeral.exists():
        assert port < int(ephemeral.read_text().split()[0])
    services = Path("/etc/services")
    if services.exists():
        assert not re.search(rf"\s{port}/(tcp|udp)", services.read_text())
