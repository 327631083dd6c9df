"""The emulator in its own process, so its CPU never counts against the client being measured.

Run as ``python -m bench.server --slots 16 --processing-seconds 1``: it prints
``listening on URL`` and then answers one command per line on stdin with one line on
stdout: ``stats`` (the ``EmulatorStats`` counters as JSON), ``reset`` (zero them) and
``quit`` (or end of input) to stop. Any client id and secret get a token. The server's own
log (warnings only) goes to stderr, which the harness sends to a file.

``ServerProcess`` is the harness's side: it starts the child, talks to it with a deadline on
every answer, and always kills and reaps it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_ANSWER_TIMEOUT_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    from ocrwatch import logsetup
    from ocrwatch.emulator import Emulator, EmulatorConfig

    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--processing-seconds", type=float, default=1.0)
    parser.add_argument("--token-lifetime", type=float, default=3600.0)
    args = parser.parse_args(argv)
    logsetup.configure("warning", "json", stream=sys.stderr)
    config = EmulatorConfig(
        credentials=None,
        slots=args.slots,
        processing_seconds=(args.processing_seconds, args.processing_seconds),
        token_lifetime_seconds=args.token_lifetime,
    )
    with Emulator(config) as emulator:
        print(f"listening on {emulator.base_url}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(dataclasses.asdict(emulator.stats())), flush=True)
            elif command == "reset":
                emulator.reset_stats()
                print("ok", flush=True)
            elif command == "quit":
                break
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    return 0


class ServerProcess:
    """A running ``bench.server`` child; use it as a context manager."""

    def __init__(
        self,
        *,
        slots: int,
        processing_seconds: float,
        log_path: Path,
        token_lifetime_seconds: float = 3600.0,
    ) -> None:
        self.slots = slots
        self.processing_seconds = processing_seconds
        self.token_lifetime_seconds = token_lifetime_seconds
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def capacity_per_second(self) -> float:
        return self.slots / self.processing_seconds

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.server",
                    "--slots",
                    str(self.slots),
                    "--processing-seconds",
                    str(self.processing_seconds),
                    "--token-lifetime",
                    str(self.token_lifetime_seconds),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO_ROOT,
            )
        try:
            first = self._answer()
        except BaseException:
            self.close()
            raise
        if not first.startswith("listening on "):
            self.close()
            raise RuntimeError(f"bench.server said {first!r}")
        self.base_url = first.removeprefix("listening on ").strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        self._send("stats")
        stats: dict[str, Any] = json.loads(self._answer())
        return stats

    def reset(self) -> None:
        self._send("reset")
        self._answer()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None and process.stdin is not None:
                process.stdin.write("quit\n")
                process.stdin.flush()
            process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=15)
        finally:
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()

    def _send(self, command: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()

    def _answer(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        stdout: IO[str] = self._process.stdout
        deadline = time.monotonic() + _ANSWER_TIMEOUT_SECONDS
        while True:
            ready, _, _ = select.select([stdout], [], [], 0.5)
            if ready:
                line = stdout.readline()
                if not line:
                    raise RuntimeError("bench.server exited")
                return line
            if self._process.poll() is not None:
                raise RuntimeError(f"bench.server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("bench.server did not answer")


if __name__ == "__main__":
    raise SystemExit(main())
