"""A real Label Studio server on a loopback port, for tests; and its SDK, driven in its own venv.

Label Studio and ``label-studio-sdk`` live in their own virtualenv (``make labelstudio-venv``
makes ``.venv-labelstudio``; NEUROONCO_LABEL_STUDIO_VENV points elsewhere): their pins clash with
ours, so the server runs as that venv's ``label-studio start`` and the SDK through
``scripts/label_studio_sync.py`` under that venv's Python. Without the venv the tests skip (and
fail under CI, where ``make test`` has made it).

    with LabelStudioServer(tmp_path) as ls:
        ls.sync("push", "tasks.json", "labeling_config.xml")   # -> the script's JSON answer
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SYNC_SCRIPT = REPO / "scripts" / "label_studio_sync.py"
VENV_TARGET = "make labelstudio-venv"
USER = "reviewer@example.org"
PASSWORD = "neuroonco-test-pass"
TOKEN = "neuroonco0test0token0123456789abcdef0000"  # a legacy token, accepted with the flag below
START_TIMEOUT_S = 240.0  # first start applies Django migrations: ~45 s alone, more on a busy box


def venv_dir() -> Path:
    return Path(os.environ.get("NEUROONCO_LABEL_STUDIO_VENV") or REPO / ".venv-labelstudio")


def require_venv() -> Path:
    """The Label Studio venv, or a skip that says how to make it (a failure under CI)."""
    venv = venv_dir()
    if (venv / "bin" / "label-studio").exists() and (venv / "bin" / "python").exists():
        return venv
    message = (
        f"no Label Studio venv at {venv}; run `{VENV_TARGET}` (or set NEUROONCO_LABEL_STUDIO_VENV)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioServer:
    """``label-studio start`` on 127.0.0.1 with its data, log and document root under ``base``."""

    def __init__(self, base: Path) -> None:
        self.venv = require_venv()
        self.base = base
        self.data_dir = base / "ls-data"
        self.document_root = base / "ls-root"  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
        self.log_path = base / "label-studio.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self.user = USER
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO"))}
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
                # Nothing leaves the machine: no version check, no analytics, no Sentry.
                "LATEST_VERSION_CHECK": "false",
                "COLLECT_ANALYTICS": "false",
                "SENTRY_DSN": "",
                "FRONTEND_SENTRY_DSN": "",
                "SECRET_KEY": "neuroonco-test-only",
                # It keeps an install id in the user's config folder: a tmp one instead.
                "XDG_CONFIG_HOME": str(self.base / "config"),
                "LOG_LEVEL": "WARNING",
            }
        )
        return env

    def start(self) -> LabelStudioServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.document_root.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [
                str(self.venv / "bin" / "label-studio"),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--username",
                self.user,
                "--password",
                PASSWORD,
                "--user-token",
                self.token,
                "--enable-legacy-api-token",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.base,
            start_new_session=True,  # its own process group, so teardown ends all of it
        )
        log.close()
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self._proc is not None
        while time.monotonic() - t0 < START_TIMEOUT_S:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"label-studio exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            try:
                ok = httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
                # /health answers before the user exists only if the start order changes:
                # the token must work too.
                ok = ok and self.api("GET", "/api/projects/").status_code == 200
                if ok:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(
            f"label-studio did not answer on {self.url} in {START_TIMEOUT_S:.0f} s:\n"
            + self.log_tail()
        )

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        pgid = proc.pid  # start_new_session made the server the leader of its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST call with the test user's token."""
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30.0, **kwargs)

    def venv_python(self, code: str, stdin: str = "") -> str:
        """Run ``code`` with the Label Studio venv's Python (its SDK importable); its stdout."""
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            input=stdin,
            capture_output=True,
            encoding="utf-8",
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def sync(self, *args: str | Path) -> dict[str, Any]:
        """Run scripts/label_studio_sync.py in the Label Studio venv; its JSON answer."""
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), str(SYNC_SCRIPT), *map(str, args)],
            capture_output=True,
            encoding="utf-8",
            timeout=180,
            env={**os.environ, "LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": self.token},
        )
        if done.returncode != 0:
            raise AssertionError(
                f"label_studio_sync.py {' '.join(map(str, args))} failed "
                f"({done.returncode}):\n{done.stderr}\n--- server log ---\n{self.log_tail()}"
            )
        return json.loads(done.stdout.strip().splitlines()[-1])
