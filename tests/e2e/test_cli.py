"""The command line and a real `quantdesk serve` process, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

QD = [sys.executable, "-m", "quantdesk.cli"]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK_")}
    e.update(
        QUANTDESK_DATA_DIR=str(tmp_path / "var"),
        QUANTDESK_BCRYPT_ROUNDS="4",
        QUANTDESK_FEED="none",
        COLUMNS="200",
    )
    return e


def test_db_upgrade_then_users_create_and_list(env: dict[str, str], tmp_path: Path) -> None:
    r = run(["db", "upgrade"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "revision" in r.stdout
    r = run(
        ["users", "create", "carol", "--role", "viewer"],
        {**env, "QUANTDESK_PASSWORD": "viewer-pass-long-9"},
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    r = run(["users", "list"], env, tmp_path)
    assert "carol" in r.stdout and "viewer" in r.stdout
    assert "viewer-pass-long-9" not in r.stdout + r.stderr


def test_users_create_rejects_a_weak_password_with_nonzero_exit(
    env: dict[str, str], tmp_path: Path
) -> None:
    run(["db", "upgrade"], env, tmp_path)
    r = run(["users", "create", "dave"], {**env, "QUANTDESK_PASSWORD": "short"}, tmp_path)
    assert r.returncode == 1
    assert "PASSWORD_POLICY" in r.stderr
    assert "dave" not in run(["users", "list"], env, tmp_path).stdout


def test_users_create_without_password_or_terminal_exits_2(
    env: dict[str, str], tmp_path: Path
) -> None:
    run(["db", "upgrade"], env, tmp_path)
    r = run(["users", "create", "erin"], env, tmp_path)
    assert r.returncode == 2
    assert "QUANTDESK_PASSWORD" in r.stderr


def test_serve_refuses_a_production_database_without_jwt_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    r = run(
        ["serve"],
        {**env, "QUANTDESK_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/postgres"},
        tmp_path,
    )
    assert r.returncode == 2
    assert "QUANTDESK_JWT_SECRET" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], cwd: Path) -> tuple[str, subprocess.Popen[str], Path]:
    port = _free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [*QD, "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return base, proc, log
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not start:\n" + log.read_text())


@pytest.fixture
def server(
    env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    base, proc, log = start_server(env, tmp_path)
    yield base, proc, log
    proc.terminate()
    proc.wait(timeout=20)


def test_first_start_creates_demo_users_prints_them_once_and_they_can_log_in(
    server: tuple[str, subprocess.Popen[str], Path], env: dict[str, str], tmp_path: Path
) -> None:
    base, proc, log = server
    out = log.read_text()
    creds = dict(re.findall(r"│ (?:admin|trader)\s+(\w+)\s+(\S+)", out))
    assert set(creds) == {"admin", "trader"}
    r = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "admin", "password": creds["admin"]}
    )
    assert r.status_code == 200
    token = r.json()["access_token"]
    users = httpx.get(
        f"{base}/api/v1/admin/users", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert {u["username"] for u in users["items"]} == {"admin", "trader"}
    # The demo trader has paper cash and a demo backtest that runs to a report.
    r = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "trader", "password": creds["trader"]}
    )
    trader = {"Authorization": f"Bearer {r.json()['access_token']}"}
    wallet = httpx.get(f"{base}/api/v1/wallet", headers=trader).json()
    assert wallet["balances"]["INR"]["total"] == "1000000.00"
    deadline = time.monotonic() + 60
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        runs = httpx.get(f"{base}/api/v1/backtests", headers=trader).json()["items"]
        if runs and runs[0]["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert [(r["status"], r["request"]["strategy"]) for r in runs] == [  # type: ignore[index]
        ("succeeded", "sma_cross")
    ]
    report = httpx.get(f"{base}/api/v1/backtests/{runs[0]['id']}/report", headers=trader)
    assert report.status_code == 200 and "sma_cross" in report.text
    # Logs are JSON lines with request ids; the password never appears in them.
    json_lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert json_lines
    proc.terminate()
    proc.wait(timeout=20)
    after = log.read_text()
    assert after.count(creds["admin"]) == 1  # printed once, in the panel, never logged
    # A second start on the same data prints no credentials.
    again = subprocess.run(
        [*QD, "users", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "admin" in again.stdout


def test_demo_passwords_can_come_from_the_environment(env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **env,
        "QUANTDESK_DEMO_ADMIN_PASSWORD": "boss-from-env-1",
        "QUANTDESK_DEMO_TRADER_PASSWORD": "desk-from-env-1",
    }
    base, proc, log = start_server(env, tmp_path)
    try:
        r = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "trader", "password": "desk-from-env-1"}
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "boss-from-env-1" not in log.read_text()  # given passwords are not echoed


def test_serve_with_a_weak_demo_password_exits_with_the_reason(
    env: dict[str, str], tmp_path: Path
) -> None:
    r = run(
        ["serve", "--port", str(_free_port())],
        {**env, "QUANTDESK_DEMO_ADMIN_PASSWORD": "weak"},
        tmp_path,
    )
    assert r.returncode == 2
    assert "PASSWORD_POLICY" in r.stderr


def test_openapi_prints_the_schema_the_web_ui_is_generated_from(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run(["openapi"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["info"]["title"] == "QuantDesk API"
    assert {"/api/v1/orders", "/api/v1/risk/kill-switch"} <= set(schema["paths"])
    snapshot = Path(__file__).resolve().parents[2] / "frontend" / "openapi.json"
    assert json.loads(snapshot.read_text(encoding="utf-8")) == schema
