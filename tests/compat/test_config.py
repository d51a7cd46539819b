"""The configuration file (docs/operations.md, "Configuration"): `serve --config` (or
TASKYARD_CONFIG) reads a TOML file of the flags' settings; the environment and flags win over
it; `taskyard config check` reports every setting with its source and refuses bad ones."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import TaskyardServer, taskyard_binary


@pytest.fixture
def tmp():
    d = Path(tempfile.mkdtemp(prefix="taskyard-config-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def check(*args, env=None):
    return subprocess.run([str(taskyard_binary()), "config", "check", *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_a_server_started_from_a_file_takes_its_settings_but_the_environment_wins(tmp):
    cfg = tmp / "taskyard.toml"
    # `listen` is also set in the environment by the test harness: that one must win.
    cfg.write_text('listen = "127.0.0.1:1"\nmax_form_fields = 3\nmetrics = false\n')
    srv = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log", env={"TASKYARD_CONFIG": str(cfg)})
    srv.start()
    try:
        auth = (srv.account_sid, srv.auth_token)
        url = f"{srv.base_url}/v1/Workspaces"
        resp = requests.post(url, data={"FriendlyName": "x", "A": "1", "B": "2", "C": "3"}, auth=auth)
        assert resp.status_code == 400 and resp.json()["code"] == 20001, resp.text
        assert "at most 3" in resp.json()["message"]
        assert requests.post(url, data={"FriendlyName": "x"}, auth=auth).status_code == 201
        assert requests.get(f"{srv.base_url}/metrics", auth=auth).status_code == 404
    finally:
        srv.kill()


def test_config_check_reports_sources_and_hides_secrets(tmp):
    cfg = tmp / "taskyard.toml"
    cfg.write_text(
        'max_connections = 500\nrate-limit = 20\naccount_sid = "AC' + "1" * 32 + '"\n'
        'auth_token = "do-not-print-me"\ncallback_deny = ["10.0.0.0/8"]\n'
    )
    env = {"PATH": "/usr/bin:/bin", "TASKYARD_RATE_LIMIT": "7"}
    out = check("--config", str(cfg), "--max-connections", "9", env=env)
    assert out.returncode == 0, out.stderr
    lines = {line.split("=")[0].strip(): line for line in out.stdout.splitlines() if "=" in line}
    assert "max_connections = 9" in lines["max_connections"] and "# command line" in lines["max_connections"]
    assert "rate_limit = 7" in lines["rate_limit"] and "# environment" in lines["rate_limit"]
    assert "# file" in lines["account_sid"] and "# default" in lines["header_timeout"]
    assert "do-not-print-me" not in out.stdout + out.stderr
    assert "the configuration is valid" in out.stdout


@pytest.mark.parametrize(
    "text, status, message",
    [
        ("max_conections = 5", 2, "unknown setting `max_conections` (did you mean `max_connections`?)"),
        ("lease_seconds = 0.01", 1, "--lease-seconds must be between 0.3 and 600"),
        ('listen = "nope"', 2, "invalid value 'nope' for '--listen"),
        ("listen = [", 2, "is not valid TOML"),
        ('account_sid = "AC' + "1" * 32 + '"', 1, "set both --account-sid and --auth-token"),
    ],
    ids=["unknown-key", "out-of-range", "unparsable-value", "not-toml", "half-credentials"],
)
def test_config_check_refuses_bad_settings(tmp, text, status, message):
    cfg = tmp / "taskyard.toml"
    cfg.write_text(text + "\n")
    out = check("--config", str(cfg), env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == status, (out.stdout, out.stderr)
    assert message in out.stderr, out.stderr
    # And `serve` refuses the same file before opening anything.
    serve = subprocess.run([str(taskyard_binary()), "serve", "--config", str(cfg), "--data-dir", str(tmp / "d")],
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert serve.returncode != 0 and message in serve.stderr, serve.stderr
    assert not (tmp / "d").exists(), "serve created its data directory despite a bad configuration"


def test_a_missing_file_is_an_error(tmp):
    out = check("--config", str(tmp / "missing.toml"), env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "missing.toml" in out.stderr
