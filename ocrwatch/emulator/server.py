"""The ``Emulator``: one local Aspose.OCR Cloud v5 server, started and stopped as a unit.

``start()`` binds (port 0 picks a free port, remembered for later starts), starts the slot
workers and the accept thread. ``stop()`` stops listening, cuts open connections, joins every
thread it started and keeps the tasks and tokens, so a later ``start()`` on the same port
resumes them: that is how a full outage is simulated. Use it as a context manager to start and
stop it around a block.
"""

from __future__ import annotations

import threading
from types import TracebackType

import structlog

from ocrwatch.emulator.api import Api
from ocrwatch.emulator.auth import TokenAuthority
from ocrwatch.emulator.config import EmulatorConfig, Faults
from ocrwatch.emulator.faults import FaultInjector
from ocrwatch.emulator.processing import Outcome, process
from ocrwatch.emulator.recognizer import FixtureRecognizer, Recognizer
from ocrwatch.emulator.stats import Counters, EmulatorStats
from ocrwatch.emulator.tasks import TaskTable
from ocrwatch.emulator.transport import HttpServer
from ocrwatch.emulator.wire import Submission

log = structlog.get_logger(__name__)


class Emulator:
    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._recognizer: Recognizer = self.config.recognizer or FixtureRecognizer()
        self._port = self.config.port
        self._counters = Counters()
        self._injector = FaultInjector(self.config.faults, seed=self.config.seed)
        self._authority = TokenAuthority(
            credentials=self.config.credentials,
            lifetime_seconds=self.config.token_lifetime_seconds,
            issuer="ocrwatch-emulator",
        )
        self._tasks = TaskTable(
            processor=self._process,
            slots=self.config.slots,
            retention_seconds=self.config.retention_seconds,
        )
        self._api = Api(
            tasks=self._tasks,
            authority=self._authority,
            injector=self._injector,
            counters=self._counters,
            processing_seconds=self.config.processing_seconds,
            max_upload_bytes=self.config.max_upload_bytes,
            forbidden_content=self.config.forbidden_content,
        )
        self._lifecycle = threading.Lock()
        self._server: HttpServer | None = None
        self._accept_thread: threading.Thread | None = None

    def _process(self, submission: Submission) -> Outcome:
        return process(
            submission,
            recognizer=self._recognizer,
            max_pixels=self.config.max_pixels,
            shape=self.config.result_shape,
            target=self.config.target,
        )

    @property
    def port(self) -> int:
        """The bound port (after the first ``start()``; 0 before it when configured as 0)."""
        return self._port

    @property
    def base_url(self) -> str:
        if self._port == 0:
            raise RuntimeError("the emulator has no port yet; call start() first")
        return f"http://{self.config.host}:{self._port}"

    @property
    def is_running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        with self._lifecycle:
            if self._server is not None:
                return
            server = HttpServer((self.config.host, self._port), self._api)
            self._port = server.server_address[1]
            self._tasks.start()
            self._accept_thread = threading.Thread(
                target=server.serve_until_closed,
                name="emulator-http-accept",
                daemon=True,
            )
            self._accept_thread.start()
            self._server = server
        log.info("emulator_started", host=self.config.host, port=self._port)

    def stop(self) -> None:
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.stop_accepting()
            if self._accept_thread is not None:
                self._accept_thread.join()
                self._accept_thread = None
            server.close()
            self._tasks.stop()
        log.info("emulator_stopped", port=self._port)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def set_faults(self, faults: Faults) -> None:
        self._injector.set_faults(faults)

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    def stats(self) -> EmulatorStats:
        return self._counters.snapshot(tasks_by_status=self._tasks.counts_by_status())

    def reset_stats(self) -> None:
        self._counters.reset()

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid, so clients must fetch a new one."""
        self._authority.expire_all()
