"""The tutorial client: token, then submit / wait 2 s / fetch until done / write, per file.

It follows the tutorials step by step and adds nothing of its own: the whole file is read and
Base64-encoded in memory, the wait before each fetch is the tutorials' "a couple of seconds",
and files are processed sequentially in name order. To take part in a watch-folder workload it
looks at the folder again after each pass (and once a second when idle) for images without a
``.txt`` beside them, until ``--max-seconds`` or SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import time
from pathlib import Path
from types import FrameType

import requests

WAIT_SECONDS = 2.0  # "try fetching the result in a couple of seconds"
IDLE_SECONDS = 1.0
SETTINGS = {
    "language": "English",
    "makeSkewCorrect": True,
    "makeContrastCorrection": True,
    "resultType": "Text",
}
_stop = False


def get_token(session: requests.Session, url: str, client_id: str, secret: str) -> str:
    response = session.post(
        f"{url}/connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        headers={"Accept": "application/json"},
        timeout=(10, 60),
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def recognize(session: requests.Session, url: str, token: str, image: Path) -> str:
    """Submit one image, wait, fetch until finished; the recognised text (or an error text)."""
    headers = {"Authorization": f"Bearer {token}"}
    encoded = base64.b64encode(image.read_bytes()).decode("ascii")
    response = session.post(
        f"{url}/v5.0/ocr/RecognizeImage",
        json={"image": encoded, "settings": SETTINGS},
        headers={**headers, "Accept": "text/plain"},
        timeout=(10, 120),
    )
    response.raise_for_status()
    task_id = response.text.strip().strip('"')
    while True:
        time.sleep(WAIT_SECONDS)
        result = session.get(
            f"{url}/v5.0/ocr/RecognizeImage",
            params={"id": task_id},
            headers={**headers, "Accept": "application/json"},
            timeout=(10, 120),
        )
        result.raise_for_status()
        body = result.json()
        status = body.get("taskStatus")
        if status == "Completed":
            return "".join(base64.b64decode(r["data"]).decode("utf-8") for r in body["results"])
        if status in ("Error", "NotExist"):
            return f"ERROR: {status}: {json.dumps(body.get('error'))}"


def pending(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() == ".png" and not path.with_name(path.name + ".txt").exists()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret-file", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args(argv)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        global _stop  # noqa: PLW0603 - a signal handler only sets a flag
        _stop = True

    signal.signal(signal.SIGTERM, request_stop)
    deadline = time.monotonic() + args.max_seconds
    secret = args.client_secret_file.read_text().strip()
    with requests.Session() as session:
        token = get_token(session, args.url, args.client_id, secret)
        while not _stop and time.monotonic() < deadline:
            todo = pending(args.folder)
            if not todo:
                time.sleep(IDLE_SECONDS)
                continue
            for image in todo:
                if _stop or time.monotonic() >= deadline:
                    break
                text = recognize(session, args.url, token, image)
                image.with_name(image.name + ".txt").write_text(text, encoding="utf-8")
    return 0
