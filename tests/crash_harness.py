"""Pieces of the crash-consistency harness: a corpus with known text, an auditor, kill triggers.

The corpus is made from a seed: every document carries its own unique text (embedded where
the emulator's fixture recognizer reads it), so a sidecar can be checked byte for byte. The
auditor is a thread that lists the output folder every few milliseconds and reads every new
or replaced sidecar at once: a partial or empty file that ever sat under a final name is
seen there. Triggers decide when the next SIGKILL lands.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ocrwatch.emulator.samples import make_jpeg, make_pdf, make_png
from ocrwatch.outputs.moves import TEMP_PATTERN

AUDIT_INTERVAL_SECONDS = 0.002


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    data: bytes
    text: str | None  # None: junk that must end in the error folder

    @property
    def sidecar_name(self) -> str:
        return self.name + ".txt"


def make_corpus(rng: random.Random, count: int, *, junk_every: int = 20) -> list[Document]:
    """``count`` documents: PNG, JPEG and PDF in turn, and every ``junk_every``-th not an image."""
    documents = []
    for number in range(count):
        text = f"crash {number:03d} {rng.getrandbits(32):08x}"
        width, height = rng.randrange(160, 321), rng.randrange(48, 97)
        stem = f"doc{number:03d}"
        if number % junk_every == junk_every - 1:
            document = Document(f"junk{number:03d}.png", f"{text}\n".encode() * 20, None)
        elif number % 3 == 0:
            document = Document(f"{stem}.png", make_png(text, width=width, height=height), text)
        elif number % 3 == 1:
            document = Document(f"{stem}.jpg", make_jpeg(text, width=width, height=height), text)
        else:
            document = Document(f"{stem}.pdf", make_pdf([text], width=width, height=height), text)
        documents.append(document)
    return documents


def drop(folder: Path, document: Document, *, atomically: bool) -> None:
    """Put a document in the inbox: renamed in from a ``.part`` name, or written in place."""
    target = folder / document.name
    if atomically:
        temp = folder / (document.name + ".part")
        temp.write_bytes(document.data)
        temp.rename(target)
    else:
        with target.open("wb") as file:
            half = len(document.data) // 2
            file.write(document.data[:half])
            file.flush()
            file.write(document.data[half:])


def listing(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder)]
    except FileNotFoundError:
        return []


def final_names(folder: Path) -> list[str]:
    return [name for name in listing(folder) if not TEMP_PATTERN.fullmatch(name)]


def temp_names(folder: Path) -> list[str]:
    return [name for name in listing(folder) if TEMP_PATTERN.fullmatch(name)]


@dataclass
class SidecarAuditor:
    """Polls ``folder``; reads every sidecar whose (inode, size, mtime) is new, at once."""

    folder: Path
    expected: dict[str, str]  # sidecar name -> its text
    violations: list[str] = field(default_factory=list)
    reads: int = 0
    temp_sightings: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sidecar-auditor")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        seen: dict[str, tuple[int, int, int]] = {}
        seen_temps: set[str] = set()
        while not self._stop.is_set():
            try:
                entries = list(os.scandir(self.folder))
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if TEMP_PATTERN.fullmatch(entry.name):
                    if entry.name not in seen_temps:
                        seen_temps.add(entry.name)
                        self.temp_sightings += 1
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    identity = (st.st_ino, st.st_size, st.st_mtime_ns)
                    if seen.get(entry.name) == identity:
                        continue
                    content = Path(entry.path).read_bytes()
                except FileNotFoundError:
                    continue
                seen[entry.name] = identity
                self.reads += 1
                self._check(entry.name, content)
            time.sleep(AUDIT_INTERVAL_SECONDS)

    def _check(self, name: str, content: bytes) -> None:
        wanted = self.expected.get(name)
        if wanted is None:
            self.violations.append(f"unexpected file {name!r} in the output folder")
        elif content != (wanted + "\n").encode("utf-8"):  # text sidecars end with a newline
            self.violations.append(f"{name}: {len(content)} bytes {content[:60]!r}, not the text")


@dataclass
class KillPlan:
    """When the SIGKILL of one run lands.

    The trigger is armed ``armed_after_seconds`` after the daemon started (so each run gets
    some work done first); once it fires, ``delay_seconds`` pass before the kill. A random
    kill lands ``armed_after_seconds`` after the start, whatever is happening.
    """

    trigger: str  # post | tempfile | sidecar | move | random
    armed_after_seconds: float
    delay_seconds: float


TRIGGERS = ("post", "post", "tempfile", "sidecar", "sidecar", "move", "random", "random")


def plan_kill(rng: random.Random) -> KillPlan:
    trigger = rng.choice(TRIGGERS)
    if trigger == "random":
        return KillPlan(trigger, rng.uniform(0.3, 5.0), 0.0)
    delay = rng.uniform(0.0, 0.02) if trigger == "sidecar" else 0.0
    return KillPlan(trigger, rng.uniform(0.5, 3.5), delay)


def wait_for_trigger(
    plan: KillPlan,
    *,
    started_at: float,
    submits: Callable[[], int],
    out: Path,
    done: Path,
    timeout_seconds: float,
) -> str:
    """Return once the plan's moment has come (or at the timeout): what actually fired."""
    time.sleep(max(0.0, started_at + plan.armed_after_seconds - time.monotonic()))
    if plan.trigger == "random":
        return "random"
    deadline = time.monotonic() + timeout_seconds
    submits_before = submits()
    sidecars_before = len(final_names(out))
    done_before = len(listing(done))
    while time.monotonic() < deadline:
        fired = (
            (plan.trigger == "post" and submits() > submits_before)
            or (plan.trigger == "tempfile" and bool(temp_names(out)))
            or (plan.trigger == "sidecar" and len(final_names(out)) > sidecars_before)
            or (plan.trigger == "move" and len(listing(done)) > done_before)
        )
        if fired:
            if plan.delay_seconds:
                time.sleep(plan.delay_seconds)
            return plan.trigger
        time.sleep(0.0005)
    return f"{plan.trigger}-timeout"
