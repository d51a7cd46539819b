"""Fixtures for the Taskyard compatibility suite.

The suite drives a real ``taskyard serve`` process through Twilio's official
helper library (``twilio`` on PyPI).  The only thing a user changes compared to
talking to Twilio itself is the base URL of the TaskRouter domain:

    client = Client(account_sid, auth_token)
    client.taskrouter.base_url = "http://127.0.0.1:<port>"

Binary: ``$TASKYARD_BIN`` or ``<repo>/target/release/taskyard``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callbacks import CallbackReceiver  # noqa: E402
from helpers import activities_by_name, build_quickstart, unique_name  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT = 20.0

# Requests to 127.0.0.1 must never go through a proxy, and the helper library
# must not rewrite the host for an edge/region.
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
for _var in ("TWILIO_EDGE", "TWILIO_REGION"):
    os.environ.pop(_var, None)


def taskyard_binary() -> Path:
    return Path(os.environ.get("TASKYARD_BIN") or REPO_ROOT / "target" / "release" / "taskyard")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Rust's TcpListener::bind sets SO_REUSEADDR on Unix, so TIME_WAIT
        # leftovers from the previous process do not block a restart.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def new_account_sid() -> str:
    return "AC" + secrets.token_hex(16)


def new_auth_token() -> str:
    return secrets.token_hex(16)


class TaskyardServer:
    """One ``taskyard serve`` process bound to a data directory.

    ``start`` / ``stop`` (SIGTERM) / ``kill`` (SIGKILL) / ``restart`` can be
    called repeatedly; the data directory and credentials stay the same, and the
    server is restarted on the same port when that port can be bound again.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        account_sid: Optional[str] = None,
        auth_token: Optional[str] = None,
        binary: Optional[Path] = None,
        log_path: Optional[Path] = None,
        env: Optional[Dict[str, str]] = None,
    ):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.account_sid = account_sid or new_account_sid()
        self.auth_token = auth_token or new_auth_token()
        self.binary = Path(binary or taskyard_binary())
        self.log_path = Path(log_path or self.data_dir.parent / f"{self.data_dir.name}-taskyard.log")
        # extra environment for the server process (e.g. TASKYARD_MEDIA_CONNECTOR_URL)
        self.env: Dict[str, str] = dict(env or {})
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        # With TASKYARD_COMPAT_DATABASE_URL the server keeps its data in PostgreSQL, in a
        # schema of this server's own (kept across its restarts, dropped by ``drop_schema``).
        self.database_url = os.environ.get("TASKYARD_COMPAT_DATABASE_URL") or None
        self.schema = f"compat_{os.getpid()}_{secrets.token_hex(6)}" if self.database_url else None
        if self.database_url:
            _SCHEMAS.append((self.database_url, self.schema))

    # -- process control -------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.port is not None, "server was never started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _choose_port(self) -> int:
        if self.port is None:
            return free_port()
        # Prefer the previous port so that absolute URLs stay identical across a
        # restart; after a SIGKILL the port may linger in TIME_WAIT for a moment.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if port_is_free(self.port):
                return self.port
            time.sleep(0.1)
        return free_port()

    def start(self, timeout: float = HEALTH_TIMEOUT) -> "TaskyardServer":
        if not self.binary.exists():
            raise RuntimeError(
                f"taskyard binary not found at {self.binary} "
                "(build it with `cargo build --release` or set TASKYARD_BIN)"
            )
        assert not self.is_running(), "server already running"
        previous_port = self.port
        self.port = self._choose_port()
        try:
            self._spawn(timeout)
        except RuntimeError:
            if previous_port is None or self.port != previous_port:
                raise
            # could not take the old port back: start on a fresh one instead
            self.port = free_port()
            self._spawn(timeout)
        return self

    def _spawn(self, timeout: float) -> None:
        env = dict(os.environ)
        for var in ("TASKYARD_PUBLIC_URL", "TASKYARD_MEDIA_CONNECTOR_URL", "TASKYARD_ASSIGNMENT_CALLBACK_TIMEOUT",
                    "TASKYARD_EVENT_CALLBACK_MAX_BACKOFF"):
            env.pop(var, None)  # defaults unless the test asks (``env=``)
        env.update(
            {
                "TASKYARD_LISTEN": f"127.0.0.1:{self.port}",
                "TASKYARD_DATA_DIR": str(self.data_dir),
                "TASKYARD_ACCOUNT_SID": self.account_sid,
                "TASKYARD_AUTH_TOKEN": self.auth_token,
            }
        )
        if self.database_url:
            env["TASKYARD_DATABASE_URL"] = self.database_url
            env["TASKYARD_DATABASE_SCHEMA"] = self.schema
        else:
            env.pop("TASKYARD_DATABASE_URL", None)
        env.update(self.env)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
        log.flush()
        try:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"taskyard exited with status {self.proc.returncode} during startup\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1.0) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as e:
                last_error = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                last_error = repr(e)
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"taskyard did not answer GET /healthz with 200 within {timeout}s "
            f"(last: {last_error})\n" + self.log_tail()
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: SIGTERM, then SIGKILL if it does not exit in time."""
        if not self.is_running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Crash the server: SIGKILL, no chance to flush anything."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def restart(self, *, hard: bool = False) -> "TaskyardServer":
        self.kill() if hard else self.stop()
        return self.start()

    # -- clients -----------------------------------------------------------
    def client(
        self,
        account_sid: Optional[str] = None,
        auth_token: Optional[str] = None,
        *,
        timeout: float = 30.0,
    ) -> Client:
        return make_client(
            self.base_url,
            account_sid or self.account_sid,
            auth_token or self.auth_token,
            timeout=timeout,
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no server log: {e})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- tail of {self.log_path} ---\n{tail}"


def make_client(base_url: str, account_sid: str, auth_token: str, *, timeout: float = 30.0) -> Client:
    """A stock helper-library client pointed at Taskyard.

    Only ``taskrouter.base_url`` is changed (``api.base_url`` as well, for the
    2010 Accounts endpoint used by the multi-account tests).
    """
    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
    client.taskrouter.base_url = base_url
    client.api.base_url = base_url
    return client


# ---------------------------------------------------------------------------
# Session server
# ---------------------------------------------------------------------------

_SESSION_SERVER: Optional[TaskyardServer] = None

# (database URL, schema) of every server started on PostgreSQL, dropped after the run.
_SCHEMAS: List[Tuple[str, str]] = []


def pytest_sessionfinish(session, exitstatus):
    """Drops the PostgreSQL schemas the run made (with ``psql``), so runs leave nothing."""
    if os.environ.get("TASKYARD_KEEP_DATA"):
        return
    for url, schema in _SCHEMAS:
        subprocess.run(
            ["psql", url, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


@pytest.fixture(scope="session")
def server():
    global _SESSION_SERVER
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-compat-"))
    srv = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log")
    srv.start()  # raises RuntimeError with the log tail; pytest caches it per session
    _SESSION_SERVER = srv
    yield srv
    _SESSION_SERVER = None
    srv.stop()
    if os.environ.get("TASKYARD_KEEP_DATA"):
        print(f"\nkept taskyard data in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.base_url


@pytest.fixture(scope="session")
def client(server) -> Client:
    return server.client()


@pytest.fixture(scope="session")
def tr(client):
    """``client.taskrouter.v1``"""
    return client.taskrouter.v1


@pytest.fixture
def workspace(tr):
    """A fresh workspace (template NONE) per test, deleted afterwards."""
    ws = tr.workspaces.create(friendly_name=unique_name("compat"))
    yield ws
    try:
        tr.workspaces(ws.sid).delete()
    except Exception:
        pass


@pytest.fixture
def ws(tr, workspace):
    """WorkspaceContext of the per-test workspace (``tr.workspaces(sid)``)."""
    return tr.workspaces(workspace.sid)


@pytest.fixture
def ws_url(base_url, workspace) -> str:
    return f"{base_url}/v1/Workspaces/{workspace.sid}"


@pytest.fixture
def receiver():
    """A real HTTP endpoint on 127.0.0.1 that records the server's callbacks
    and answers them as the test programs it (``callbacks.CallbackReceiver``)."""
    r = CallbackReceiver().start()
    yield r
    r.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    servers = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, TaskyardServer)]
    if not servers and _SESSION_SERVER is not None:
        servers = [_SESSION_SERVER]
    for srv in servers:
        report.sections.append((f"taskyard server log ({srv.log_path})", srv.log_tail(40)))
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, CallbackReceiver):
            report.sections.append(("callback receiver", value.summary()))


@pytest.fixture
def quickstart(tr):
    """The quickstart's Part 1 set-up (workspace, Alice and Bob, the Spanish and English
    queues, the workflow), with ``acts``: the workspace's activities by name."""
    setup = build_quickstart(tr)
    setup.acts = activities_by_name(setup.ws)
    yield setup
    try:
        setup.ws.delete()
    except Exception:
        pass
