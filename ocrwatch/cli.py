"""The command line: argparse subcommands; maps exceptions to exit codes in one place.

This is the only module that prints. ``main(argv)`` returns an exit code so tests can call it
in-process; ``entry_point`` is the console script.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ocrwatch import __version__, logsetup
from ocrwatch.emulator import cli as emulator_cli
from ocrwatch.errors import ConfigError, ExitCode, OcrwatchError

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrwatch", description="Watch folders and turn the files dropped there into text."
    )
    parser.add_argument("--version", action="version", version=f"ocrwatch {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="auto", choices=["auto", "console", "json"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the local Aspose.OCR Cloud v5 compatible server",
        description=emulator_cli.DESCRIPTION,
    )
    emulator_cli.add_arguments(serve)
    serve.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    return emulator_cli.run(args, out=sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logsetup.configure(args.log_level, args.log_format)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print("ocrwatch: configuration error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return int(exc.exit_code)
    except OcrwatchError as exc:
        print(f"ocrwatch: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)


def entry_point() -> None:
    raise SystemExit(main())
