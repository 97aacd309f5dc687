"""The data dir is private: a first `quantdesk serve` creates it 0700 with the SQLite database
and the generated JWT secret 0600; an existing data dir with looser modes is tightened at start
and the change logged."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import structlog

from quantdesk.api.security import HSTS
from quantdesk.datadir import prepare_data_dir
from quantdesk.settings import Settings

QUANTDESK = Path(sys.executable).parent / "quantdesk"
START_TIMEOUT = 90.0  # migrations and imports on a loaded 2-core machine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_a_first_serve_creates_a_private_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "var"  # does not exist yet: the first start makes it
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK_")}
    env.update(
        QUANTDESK_DATA_DIR=str(data),
        QUANTDESK_FEED="none",
        QUANTDESK_UI_DIR=str(tmp_path / "no-ui"),
        QUANTDESK_BCRYPT_ROUNDS="4",
        QUANTDESK_LOG_LEVEL="WARNING",
        QUANTDESK_PUBLIC_URL="https://desk.example.com",
    )
    # A permissive umask, as a shell's usually is: the modes must not depend on it.
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(QUANTDESK), "serve", "--no-demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.umask(0o022),
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        # A login writes to the database (session rows, audit) through the running server.
        r = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"username": "nobody", "password": "not-a-password-1"},
            timeout=10,
        )
        assert r.status_code == 401
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["strict-transport-security"] == HSTS  # the public URL is https

        assert mode(data) == 0o700
        db = data / "quantdesk.db"
        assert mode(db) == 0o600
        for side in ("quantdesk.db-wal", "quantdesk.db-shm"):
            if (data / side).exists():
                assert mode(data / side) == 0o600, side
        assert mode(data / "jwt_secret") == 0o600
        # Whatever the server created in its data dir is private (its umask is 077).
        for path in data.rglob("*"):
            limit = 0o700 if path.is_dir() else 0o600
            assert mode(path) & ~limit == 0, (path, oct(mode(path)))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_a_loose_data_dir_is_tightened_at_start_and_logged(tmp_path: Path) -> None:
    data = tmp_path / "var"
    (data / "bars" / "NSE_INFY").mkdir(parents=True)
    (data / "mlflow").mkdir()
    files = {
        data / "quantdesk.db": 0o644,
        data / "quantdesk.db-wal": 0o664,
        data / "jwt_secret": 0o644,
        data / "mlflow" / "mlflow.db": 0o666,
    }
    for path, m in files.items():
        path.write_bytes(b"")
        path.chmod(m)
    for folder in (data, data / "bars", data / "mlflow"):
        folder.chmod(0o755)
    (data / "bars" / "NSE_INFY").chmod(0o755)  # below the top level: unreachable, left alone
    keep = data / "readonly.txt"
    keep.write_text("x")
    keep.chmod(0o400)

    settings = Settings(data_dir=data, jwt_secret="x" * 40)
    with structlog.testing.capture_logs() as logs:
        changed = prepare_data_dir(settings)

    assert mode(data) == 0o700
    assert mode(data / "bars") == 0o700
    assert mode(data / "mlflow") == 0o700
    assert mode(data / "bars" / "NSE_INFY") == 0o755
    for path in files:
        assert mode(path) == 0o600, path
    assert mode(keep) == 0o400  # bits are only ever taken away
    assert {c.path for c in changed} == {data, data / "bars", data / "mlflow", *files}
    logged = {e["path"]: (e["old_mode"], e["new_mode"]) for e in logs}
    assert logged[str(data / "jwt_secret")] == ("0o644", "0o600")
    assert logged[str(data)] == ("0o755", "0o700")
    assert all(e["event"] == "data_dir_mode_tightened" for e in logs)

    # A second start finds nothing to change and says nothing.
    with structlog.testing.capture_logs() as logs:
        assert prepare_data_dir(settings) == []
    assert logs == []


def test_the_database_file_is_created_private_before_sqlite_opens_it(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        settings = Settings(data_dir=tmp_path / "new" / "var", jwt_secret="x" * 40)
        prepare_data_dir(settings)
    finally:
        os.umask(old)
    assert mode(tmp_path / "new" / "var") == 0o700
    db = tmp_path / "new" / "var" / "quantdesk.db"
    assert db.stat().st_size == 0 and mode(db) == 0o600
    # A PostgreSQL installation gets the private data dir and no database file.
    pg = Settings(
        data_dir=tmp_path / "pg",
        database_url="postgresql+asyncpg://u:p@127.0.0.1/db",
        jwt_secret="x" * 40,
    )
    prepare_data_dir(pg)
    assert mode(tmp_path / "pg") == 0o700
    assert list((tmp_path / "pg").iterdir()) == []
