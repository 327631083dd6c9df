"""The command line: argparse subcommands; maps exceptions to exit codes in one place.

This is the only module that prints. ``main(argv)`` returns an exit code so tests can call it
in-process; ``entry_point`` is the console script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, cast

import structlog

from ocrwatch import __version__, allocator, completion, doctor, examples, logsetup
from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.config import (
    ENV_CONFIG,
    SYSTEM_CONFIG,
    Config,
    describe,
    load_config,
    locate_config,
)
from ocrwatch.emulator import cli as emulator_cli
from ocrwatch.engine import missing_modules, supported_languages
from ocrwatch.errors import ConfigError, ExitCode, OcrwatchError
from ocrwatch.explain import explain
from ocrwatch.model import AccountPause, JobState
from ocrwatch.progress import Progress, ProgressView
from ocrwatch.requeue import requeue
from ocrwatch.service import Service
from ocrwatch.status import print_status, status_report
from ocrwatch.store import Store
from ocrwatch.systemd import SystemdNotifier, journal_writer, request_reload

Handler = Callable[[argparse.Namespace], int]
_log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrwatch", description="Watch folders and turn the files dropped there into text."
    )
    parser.add_argument("--version", action="version", version=f"ocrwatch {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="overrides logging.level of the config",
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "console", "json", "journal"],
        help="overrides logging.format",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"the YAML configuration (default: ${ENV_CONFIG}, else {SYSTEM_CONFIG})",
        )
        sub.set_defaults(handler=handler)
        return sub

    with_config("run", "watch the inboxes and process files until stopped", _run)
    with_config("once", "process what is in the inboxes now, wait for it, then exit", _once)
    with_config("check", "validate the configuration and print the resolved profiles", _check)
    status = with_config(
        "status", "show per-inbox counts, oldest waiting file, last errors", _status
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    retry = with_config("retry", "move files from the error folders back to their inbox", _retry)
    retry.add_argument("paths", nargs="*", type=Path, help="files in an error folder")
    retry.add_argument("--all", action="store_true", help="every file in every error folder")
    checkup = with_config(
        "doctor",
        "check folders, permissions, inotify limits, disk space and the service; "
        "exit 1 on any problem",
        _doctor,
    )
    checkup.add_argument(
        "--min-free-mb",
        type=int,
        default=doctor.DEFAULT_MIN_FREE_MB,
        help="free disk space below this is a problem (default %(default)s)",
    )
    checkup.add_argument("--offline", action="store_true", help="skip the service checks")
    checkup.add_argument("--json", action="store_true", help="machine-readable output")
    why = with_config(
        "explain",
        "say which inbox and rule apply to a file, its settle status and history",
        _explain,
    )
    why.add_argument("path", type=Path, help="a file in an inbox (or in an error folder)")
    why.add_argument("--json", action="store_true", help="machine-readable output")

    complete = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description='Print a completion script: eval "$(ocrwatch completion bash)" in '
        "~/.bashrc, or save it as /usr/share/bash-completion/completions/ocrwatch "
        '(zsh: eval "$(ocrwatch completion zsh)" in ~/.zshrc).',
    )
    complete.add_argument("shell", choices=completion.SHELLS)
    complete.set_defaults(handler=_completion)
    init = commands.add_parser(
        "init",
        help="write the example config and the systemd units into a folder",
        description="Write config.example.yaml and the systemd units shipped with this "
        "install into DIRECTORY (default: the current folder), or print one of them.",
    )
    init.add_argument("directory", nargs="?", type=Path, default=Path(), metavar="DIRECTORY")
    init.add_argument("--force", action="store_true", help="replace files that exist")
    init.add_argument("--print", dest="print_name", metavar="NAME", help="print one file")
    init.add_argument("--list", action="store_true", help="list the shipped files")
    init.set_defaults(handler=_init)
    reload = commands.add_parser(
        "reload",
        help="ExecReload= of the systemd unit: SIGHUP the daemon, exit 1 if it refuses the config",
        description="Send SIGHUP to the daemon (--pid, default $MAINPID) and wait until it has "
        "taken or refused its configuration; exit 0 if taken, 1 if refused. Needs the unit's "
        "RuntimeDirectory=, where the daemon writes each reload's outcome.",
    )
    reload.add_argument("--pid", type=int, help="the daemon's process id (default $MAINPID)")
    reload.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    reload.set_defaults(handler=_reload)

    serve = commands.add_parser(
        "serve",
        help="run the local Aspose.OCR Cloud v5 compatible server",
        description=emulator_cli.DESCRIPTION,
    )
    emulator_cli.add_arguments(serve)
    serve.set_defaults(handler=_serve)
    return parser


# ------------------------------------------------------------------------------ commands


def _completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion.script(build_parser(), args.shell))
    return int(ExitCode.OK)


def _reload(args: argparse.Namespace) -> int:
    pid = args.pid or int(os.environ.get("MAINPID", "0") or 0)
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    missing = [
        *([] if pid > 0 else ["$MAINPID (or --pid)"]),
        *([] if runtime else ["$RUNTIME_DIRECTORY"]),
    ]
    if missing:
        print(f"ocrwatch reload: needs {' and '.join(missing)} (run it as ExecReload=)",
              file=sys.stderr)  # fmt: skip
        return int(ExitCode.USAGE)
    try:
        outcome = request_reload(pid, Path(runtime), timeout_seconds=args.timeout)
    except (OSError, TimeoutError) as exc:
        print(f"ocrwatch reload: {exc}", file=sys.stderr)
        return 1
    if not outcome.ok:
        print("ocrwatch reload: the configuration was refused; the previous one stays in force:\n  "
              + "\n  ".join(outcome.problems), file=sys.stderr)  # fmt: skip
        return 1
    print("ocrwatch reload: configuration taken")
    return 0


def _serve(args: argparse.Namespace) -> int:
    return int(emulator_cli.run(args, out=sys.stdout))


def _init(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(examples.shipped_files()))
    elif args.print_name:
        sys.stdout.write(examples.read_example(args.print_name))
    else:
        for path in examples.write_examples(args.directory, force=args.force):
            print(f"wrote {path}")
    return int(ExitCode.OK)


_PROCESSING_COMMANDS = frozenset({"run", "once"})  # the ones whose log is a record of work


def _load(args: argparse.Namespace, *, quiet: bool = False, secrets: bool = True) -> Config:
    """Find and load the config, set up logging; ``quiet``: warnings and errors only, unless asked.

    A config not named with ``--config`` is announced on stderr, so nobody wonders which of
    the search path's files was read. ``secrets=False`` for commands that never call the
    service: no client secret needed.
    """
    location = locate_config(args.config, environ=os.environ)
    if location.origin != "--config":
        print(f"ocrwatch: using {location.path} (from {location.origin})", file=sys.stderr)
    config = load_config(location.path, secrets=secrets)
    level = args.log_level or ("warning" if quiet else config.log_level)
    fmt = logsetup.log_format(args.log_format or config.log_format)
    logsetup.configure(level, fmt, journal_send=journal_writer())
    # The daemon's log records which config it runs on; a one-shot command has said so above
    # (or was given --config), so its line would only repeat that: debug level there.
    log = _log.info if args.command in _PROCESSING_COMMANDS else _log.debug
    log("config_loaded", path=str(config.source_path), found_by=location.origin,
        state_path=str(config.state_path))  # fmt: skip
    return config


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    if config.service.is_embedded:
        _check_embedded(config)
    json.dump(describe(config), sys.stdout, indent=2, ensure_ascii=False, default=str)
    print()
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"configuration OK: {len(config.inboxes)} inbox(es)", file=sys.stderr)
    return int(ExitCode.OK)


def _run(args: argparse.Namespace) -> int:
    config = _load(args)
    allocator.keep_large_blocks_mapped()  # before the daemon's heap churn starts
    with _service(config) as service:
        service.run()
    return int(ExitCode.OK)


class _SharedTerminal(io.TextIOBase):
    """stderr shared by the progress bar and log lines, from any thread.

    Each log line erases the bar first and draws it again below itself, so the two never
    share a screen line.
    """

    def __init__(self, stream: TextIO, view: ProgressView) -> None:
        super().__init__()
        self._stream, self._view = stream, view
        self._lock = threading.Lock()

    def write(self, text: str) -> int:  # a log record, from logging's StreamHandler
        with self._lock:
            self._stream.write(self._view.clear() + text + self._view.redraw())
            self._stream.flush()
        return len(text)

    def show(self, text: str) -> None:  # the bar itself
        with self._lock:
            self._stream.write(text)
            self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def _once(args: argparse.Namespace) -> int:
    # On a terminal the progress bar replaces the info-level log lines (unless asked for).
    is_tty = sys.stderr.isatty()
    config = _load(args, quiet=is_tty)
    view = ProgressView(is_tty=is_tty)
    terminal = _SharedTerminal(sys.stderr, view)
    if is_tty:  # log lines are written around the bar, never glued to it
        logsetup.configure(
            args.log_level or "warning",
            logsetup.log_format(args.log_format or config.log_format),
            stream=cast(TextIO, terminal),
        )
    last: list[Progress] = []

    def show(progress: Progress) -> None:
        last[:] = [progress]
        text = view.update(progress, now=time.monotonic())
        if text:
            terminal.show(text)

    with _service(config, watch=False) as service:
        summary = service.run(until_idle=True, on_progress=show)
    if last:
        terminal.show(view.finish(last[0]))
    print(f"{summary.done} done, {summary.failed} failed", file=sys.stderr)
    if service.stopping:
        _print_unfinished(config, sys.stderr)
        return int(ExitCode.INTERRUPTED)
    if summary.held_by_account is not None:
        _print_held(config, summary.held_by_account, sys.stderr)
        return int(ExitCode.TEMPFAIL)
    return int(ExitCode.FAILURE if summary.failed else ExitCode.OK)


def _print_held(config: Config, pause: AccountPause, out: TextIO) -> None:
    """The account refuses calls: say so, and that the files wait where they are."""
    with Store.open(config.state_path, readonly=True) as store:
        count = sum(n for state, n in store.count_by_state().items() if state.is_active)
    print(
        f"stopped: {pause.reason}\n{count} file(s) wait in the inbox; nothing is lost: top up "
        "or change the plan (or wait for the quota to renew), then run `ocrwatch once` again",
        file=out,
    )


UNFINISHED_SHOWN = 5


def _print_unfinished(config: Config, out: TextIO) -> None:
    """After an interruption: which files are not finished, and that nothing is lost."""
    active = [state for state in JobState if state.is_active]
    with Store.open(config.state_path, readonly=True) as store:
        unfinished = store.jobs(active, limit=UNFINISHED_SHOWN)
        count = sum(n for state, n in store.count_by_state().items() if state.is_active)
    if not count:
        return
    print(
        f"interrupted: {count} file(s) unfinished; nothing is lost: the next `ocrwatch once` "
        "or `ocrwatch run` picks them up where they are",
        file=out,
    )
    for job in unfinished:
        print(f"  {job.path} ({job.state.value})", file=out)
    if count > len(unfinished):
        more = count - len(unfinished)
        print(f"  ... and {more} more (`ocrwatch status` counts them by state)", file=out)


@contextmanager
def _api_client(config: Config) -> Iterator[OcrClient]:
    """The API client: to Aspose Cloud, or to the embedded server with the local engine."""
    service_config = config.service
    with contextlib.ExitStack() as stack:
        base_url, credentials = service_config.url, service_config.credentials
        if service_config.is_embedded:
            _check_embedded(config)
            # The server and the engine's pool: loaded only for the embedded service.
            from ocrwatch.embedded import EmbeddedService  # noqa: PLC0415

            embedded = stack.enter_context(EmbeddedService())
            base_url, credentials = embedded.base_url, embedded.credentials
        yield stack.enter_context(
            OcrClient(
                base_url,
                credentials=credentials,
                timeouts=Timeouts(
                    connect_seconds=service_config.connect_timeout_seconds,
                    read_seconds=service_config.read_timeout_seconds,
                ),
                pool_size=service_config.upload_concurrency + service_config.poll_concurrency,
            )
        )


def _check_embedded(config: Config) -> None:
    """The local engine must be installed and read every inbox's language."""
    missing = missing_modules()
    if missing:
        raise ConfigError(
            "service.url is embedded, but the local OCR engine is not installed (missing: "
            f"{', '.join(missing)}): pip install 'ocrwatch[engine]'"
        )
    readable = supported_languages()
    problems = [
        f"inboxes ({inbox.name}).language: the local engine cannot read "
        f"{inbox.settings.language}; it reads {', '.join(sorted(readable))}"
        for inbox in config.inboxes
        if inbox.settings.language not in readable
    ]
    if problems:
        raise ConfigError(problems)


@contextmanager
def _service(config: Config, *, watch: bool = True) -> Iterator[Service]:
    with (
        Store.open(config.state_path, holder=config.source_path) as store,
        _api_client(config) as client,
    ):
        service = Service(
            config,
            api=client,
            store=store,
            notifier=SystemdNotifier(),
            watch=watch,
            validate=_check_embedded if config.service.is_embedded else None,
        )

        def stop(signum: int, frame: object) -> None:
            service.request_stop()  # only sets a flag and wakes the loop

        def reload(signum: int, frame: object) -> None:
            service.request_reload()  # only sets a flag and wakes the loop

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield service
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _status(args: argparse.Namespace) -> int:
    config = _load(args, secrets=False)
    if not config.state_path.exists():
        print(f"no state file yet at {config.state_path}: the daemon has not run", file=sys.stderr)
        return int(ExitCode.OK)
    report = status_report(config, now=time.time())
    if args.json:
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(f"state file: {config.state_path}")
        print_status(report, sys.stdout)
    return int(ExitCode.OK)


def _doctor(args: argparse.Namespace) -> int:
    config = _load(args, quiet=True)
    findings = doctor.examine(
        config, min_free_bytes=max(0, args.min_free_mb) << 20, check_service=not args.offline
    )
    problems = [f for f in findings if f.level is doctor.Level.PROBLEM]
    warnings = [f for f in findings if f.level is doctor.Level.WARNING]
    if args.json:
        json.dump(
            [{"subject": f.subject, "level": f.level.value, "text": f.text, "fix": f.fix}
             for f in findings],
            sys.stdout, indent=2, ensure_ascii=False,
        )  # fmt: skip
        print()
    else:
        for finding in findings:
            label = (
                finding.level.value.upper()
                if finding.level is doctor.Level.PROBLEM
                else (finding.level.value)
            )
            print(f"{label:<8} {finding.subject}: {finding.text}")
            if finding.fix and finding.level in (doctor.Level.PROBLEM, doctor.Level.WARNING):
                print(f"{'':<8} fix: {finding.fix}")
        print(f"{len(problems)} problem(s), {len(warnings)} warning(s)")
    return int(ExitCode.FAILURE if problems else ExitCode.OK)


def _explain(args: argparse.Namespace) -> int:
    config = _load(args, quiet=True, secrets=False)
    report = explain(config, args.path)
    if args.json:
        json.dump(
            {"path": report.path, "verdict": report.verdict, "facts": dict(report.facts),
             "history": report.history},
            sys.stdout, indent=2, ensure_ascii=False,
        )  # fmt: skip
        print()
        return int(ExitCode.OK)
    print(report.path)
    print(f"  verdict: {report.verdict}")
    for topic, text in report.facts:
        print(f"  {topic}: {text}")
    for job in report.history:
        error = f" [{job['error_class']}] {job['last_error']}" if job["error_class"] else ""
        task = f", task {job['task_id']}" if job["task_id"] else ""
        print(
            f"  job {job['job_id']}: {job['state']} (seen {job['first_seen']}, updated "
            f"{job['updated']}, {job['attempts']} attempt(s){task}){error}"
        )
    return int(ExitCode.OK)


def _retry(args: argparse.Namespace) -> int:
    if not args.paths and not args.all:
        raise ConfigError("retry: name files from an error folder, or use --all")
    config = _load(args, secrets=False)
    results = requeue(config, None if args.all else args.paths)
    failed = 0
    for item in results:
        if item.target is not None:
            print(f"requeued {item.source} -> {item.target}")
        else:
            failed += 1
            print(f"not requeued {item.source}: {item.problem}", file=sys.stderr)
    if not results:
        print("nothing in the error folders", file=sys.stderr)
    return int(ExitCode.FAILURE if failed else ExitCode.OK)


# ------------------------------------------------------------------------------ entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = logsetup.log_format(args.log_format or "auto")
    logsetup.configure(args.log_level or "info", fmt, journal_send=journal_writer())
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, so a reader that went away is seen below, not at exit
    except BrokenPipeError:
        # `ocrwatch status | head -1`: the reader has what it wanted; not a bug. Python would
        # otherwise complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except ConfigError as exc:
        print("ocrwatch: configuration error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return int(exc.exit_code)
    except OcrwatchError as exc:
        print(f"ocrwatch: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001  (the one place a bug ends the process: EX_SOFTWARE)
        _log.critical("crashed", **crash_fields(exc))
        return int(ExitCode.SOFTWARE)
    return code


def crash_fields(exc: BaseException) -> dict[str, str]:
    """What one log line says about a bug: the exception and the innermost frame of ours."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/ocrwatch/" in f.filename] or frames
    where = f"{ours[-1].filename}:{ours[-1].lineno} in {ours[-1].name}" if ours else "unknown"
    return {"error_type": type(exc).__qualname__, "error": str(exc)[:500], "where": where}


def entry_point() -> None:
    raise SystemExit(main())
