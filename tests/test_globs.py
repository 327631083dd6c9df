"""Include and exclude globs on real files: "**" is zero or more folders, as in gitignore.

The daemon watches a real folder tree; ``ocrwatch explain`` says, for each file left
alone, which rule ignored it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from daemon_harness import run_until, running_service, write_config
from structlog.testing import capture_logs

from ocrwatch.config import load_config
from ocrwatch.emulator import Emulator
from ocrwatch.emulator.samples import make_png
from ocrwatch.explain import explain


def test_globstar_matches_zero_folders_too(tmp_path: Path, emulator: Emulator) -> None:
    config_path = write_config(
        tmp_path,
        emulator.base_url,
        inboxes=[
            {
                "name": "scans",
                "path": "inbox",
                "error_dir": "errors",
                "recursive": True,
                "include": ["**/*.png"],
                "exclude": ["drafts/**/*.png"],
            }
        ],
    )
    inbox = tmp_path / "inbox"
    files = {
        "top.png": True,  # "**/" matches no folder at all
        "sub/deeper/nested.png": True,
        "drafts/first.png": False,  # "drafts/**/" matches "drafts/" itself
        "drafts/old/second.png": False,
        "notes.jpg": False,
    }
    for name in files:
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_bytes(make_png(f"text of {Path(name).stem}"))
    wanted = [inbox / f"{name}.txt" for name, taken in files.items() if taken]
    (inbox / "scan.ocrwatch-1a2b.tmp").write_bytes(b"our own temporary: not worth a line")
    with capture_logs() as events, running_service(config_path, watch=False) as (service, _, _):
        run_until(service, lambda: all(sidecar.exists() for sidecar in wanted))
        service.rescan(service.now())  # meets the ignored files again: no second line
    assert (inbox / "top.png.txt").read_text() == "text of top\n"
    config = load_config(config_path, environ={})
    verdicts = {name: explain(config, inbox / name).verdict for name in files if not files[name]}
    assert verdicts == {
        "drafts/first.png": "ignored: exclude pattern 'drafts/**/*.png'",
        "drafts/old/second.png": "ignored: exclude pattern 'drafts/**/*.png'",
        "notes.jpg": "ignored: matches none of the include patterns",
    }
    assert not [p for p in inbox.rglob("*.txt") if p not in wanted]
    logged = sorted(
        (str(Path(e["path"]).relative_to(inbox)), e["rule"])
        for e in events
        if e["event"] == "file_ignored"
    )
    assert logged == sorted(
        (name, verdict.removeprefix("ignored: ")) for name, verdict in verdicts.items()
    )
    status = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "status", "--json", "-c", str(config_path)],
        capture_output=True, text=True, check=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (report,) = json.loads(status.stdout)
    assert report["ignored_now"] == 3  # not the sidecars, not our own temporary
