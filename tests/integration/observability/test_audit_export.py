"""Audit retention: `quantdesk audit export|purge` writes a verified export and a manifest, and
deletes exactly the exported rows only after the file verified; the table stays append-only for
every other statement.

The session's database is shared, so each test seeds rows in its own past era and compares
against what the database holds rather than against fixed counts.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from quantdesk.cli import app as quantdesk_app
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.observability import audit_export
from quantdesk.observability.audit import Actor, AuditLog, record
from quantdesk.observability.audit_cli import FormatName
from quantdesk.observability.audit_export import (
    SCHEMA,
    AuditExportError,
    ExportFormat,
    parse_cutoff,
    retention_cutoff,
)

Sessions = async_sessionmaker[AsyncSession]
JWT = "x" * 40


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(db_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def _changes(i: int) -> dict[str, Any] | None:
    # Awkward content for the formats: quotes, commas, newlines, non-ASCII, nesting, nulls.
    variants: list[dict[str, Any] | None] = [
        None,
        {"note": 'says "hi", then\nleaves', "amount": "100.50"},
        {"name": "Zoë ₹ नमस्ते", "nested": {"b": [1, 2.5, None], "a": True}},
        {},
    ]
    return variants[i % len(variants)]


async def seed(sessions: Sessions, start: datetime, n: int, *, step: timedelta) -> list[int]:
    """``n`` audit rows from ``start``, ``step`` apart; their ids."""
    async with sessions() as db:
        rows = [
            record(
                db,
                Actor(
                    i if i % 3 else None,
                    None if i % 5 == 0 else f"user{i}",
                    "" if i % 4 == 0 else f"10.0.0.{i}",
                    None,
                ),
                "test.export",
                target_type=None if i % 2 else "order",
                target_id="" if i % 6 == 0 else f"T-{i}, x",
                changes=_changes(i),
                outcome="success" if i % 7 else "failure",
                at=start + i * step,
            )
            for i in range(n)
        ]
        await db.commit()
        return [r.id for r in rows]


async def rows_before(sessions: Sessions, cutoff: datetime) -> list[AuditLog]:
    async with sessions() as db:
        q = sa.select(AuditLog).where(AuditLog.at < cutoff).order_by(AuditLog.id)
        return list((await db.execute(q)).scalars())


async def ids_of(sessions: Sessions, ids: list[int]) -> list[int]:
    async with sessions() as db:
        q = sa.select(AuditLog.id).where(AuditLog.id.in_(ids)).order_by(AuditLog.id)
        return list((await db.execute(q)).scalars())


async def latest(sessions: Sessions, action: str) -> AuditLog:
    async with sessions() as db:
        q = sa.select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id.desc())
        return (await db.execute(q.limit(1))).scalar_one()


def run_cli(db_url: str, data_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        quantdesk_app,
        ["audit", *args],
        env={
            "QUANTDESK_DATABASE_URL": db_url,
            "QUANTDESK_DATA_DIR": str(data_dir),
            "QUANTDESK_JWT_SECRET": JWT,
            **env,
        },
    )
    return result.exit_code, result.output


async def cli(db_url: str, data_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    # The command runs its own event loop: keep it off the test's.
    return await asyncio.to_thread(run_cli, db_url, data_dir, *args, **env)


def read_export(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The file as a reader would load it (independently of the export code)."""
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    options = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in SCHEMA},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    return pacsv.read_csv(path, convert_options=options).to_pylist()


def as_dict(row: AuditLog) -> dict[str, Any]:
    return {c: getattr(row, c) for c in audit_export.COLUMNS}


def documented_digest(rows: list[dict[str, Any]]) -> str:
    """The digest as DIGEST_METHOD describes it, recomputed from the file's rows."""
    h = hashlib.sha256()
    for r in rows:
        line = [
            r["id"],
            r["at"].astimezone(UTC).isoformat(timespec="microseconds"),
            *(r[c] for c in audit_export.COLUMNS[2:]),
        ]
        h.update(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
    return f"sha256:{h.hexdigest()}"


async def assert_append_only(sessions: Sessions, row_id: int) -> None:
    """Ordinary statements are still refused, whoever runs them."""
    for statement in (
        sa.delete(AuditLog).where(AuditLog.id == row_id),
        sa.update(AuditLog).where(AuditLog.id == row_id).values(action="tampered"),
    ):
        async with sessions() as db:
            with pytest.raises(DBAPIError, match="append-only"):
                await db.execute(statement.execution_options(synchronize_session=False))
    assert await ids_of(sessions, [row_id]) == [row_id]


# --- export: round trip, manifest, audit record -------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
async def test_export_round_trips_the_rows_before_the_cutoff_and_keeps_them(
    db_url: str, sessions: Sessions, tmp_path: Path, fmt: str
) -> None:
    start = datetime(1981 if fmt == "csv" else 1982, 1, 1, 9, 15, 0, 123456, tzinfo=UTC)
    ids = await seed(sessions, start, 12, step=timedelta(hours=7))
    cutoff = start + timedelta(days=2)  # splits the seeded rows
    later = [i for i in ids if i not in {r.id for r in await rows_before(sessions, cutoff)}]
    assert later, "the cut-off should leave some seeded rows after it"
    expected = [as_dict(r) for r in await rows_before(sessions, cutoff)]

    path = tmp_path / f"audit.{fmt}"
    code, out = await cli(
        db_url,
        tmp_path,
        "export",
        "--before",
        cutoff.isoformat(),
        "--format",
        fmt,
        "--out",
        str(path),
    )

    assert code == 0, out
    got = read_export(path, fmt)
    for row in got:
        row["changes"] = None if row["changes"] is None else json.loads(row["changes"])
    assert got == expected
    assert f"Exported {len(expected)} audit rows" in out and "Verified" in out
    # Without --delete nothing leaves the database, and the export itself is audited.
    assert len(await rows_before(sessions, cutoff)) == len(expected)
    assert await ids_of(sessions, ids) == ids
    event = await latest(sessions, "audit.export")
    assert event.actor_username is not None and event.actor_username.startswith("cli:")
    assert event.changes is not None and event.changes["rows"] == len(expected)
    assert event.changes["file"] == str(path)
    assert event.changes["before"] == cutoff.isoformat(timespec="microseconds")


async def test_manifest_names_the_range_the_count_and_both_digests(
    db_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    start = datetime(1983, 5, 1, tzinfo=UTC)
    await seed(sessions, start, 9, step=timedelta(hours=1))
    cutoff = start + timedelta(days=1)
    expected = await rows_before(sessions, cutoff)

    code, out = await cli(db_url, tmp_path, "export", "--before", "1983-05-02", "--format", "csv")

    assert code == 0, out
    path = tmp_path / "audit-exports" / "audit-before-19830502T000000Z.csv"  # the default place
    manifest = json.loads((path.parent / (path.name + ".manifest.json")).read_text())
    assert manifest["table"] == "audit_log" and manifest["format"] == "csv"
    assert manifest["file"] == path.name
    assert manifest["before"] == "1983-05-02T00:00:00.000000+00:00"  # a bare date is 00:00 UTC
    assert manifest["rows"] == len(expected)
    assert (manifest["first_id"], manifest["last_id"]) == (expected[0].id, expected[-1].id)
    assert manifest["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["file_bytes"] == path.stat().st_size
    assert manifest["digest"] == documented_digest(read_export(path, "csv"))
    assert manifest["columns"] == list(audit_export.COLUMNS)
    assert manifest["deleted_rows"] is None
    assert path.stat().st_mode & 0o077 == 0  # audit rows name people: owner-only
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_export_streams_in_chunks_with_progress(sessions: Sessions, tmp_path: Path) -> None:
    start = datetime(1984, 1, 1, tzinfo=UTC)
    await seed(sessions, start, 10, step=timedelta(minutes=1))
    cutoff = start + timedelta(hours=1)
    n = len(await rows_before(sessions, cutoff))
    seen: list[tuple[str, int, int]] = []

    result = await audit_export.export_audit(
        sessions,
        before=cutoff,
        fmt=ExportFormat.PARQUET,
        path=tmp_path / "chunks.parquet",
        actor=Actor(None, "test", None, None),
        chunk_rows=3,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )

    assert result.manifest is not None and result.manifest.rows == n
    exported = [done for stage, done, _ in seen if stage == "export"]
    assert exported == sorted(exported) and len(exported) == -(-n // 3) and exported[-1] == n
    assert [done for stage, done, _ in seen if stage == "verify"][-1] == n
    assert pq.ParquetFile(tmp_path / "chunks.parquet").metadata.num_rows == n


async def test_nothing_before_the_cutoff_exports_nothing(db_url: str, tmp_path: Path) -> None:
    code, out = await cli(db_url, tmp_path, "export", "--before", "1901-01-01")
    assert code == 0, out
    assert "nothing exported" in out
    assert not (tmp_path / "audit-exports").exists() or not any(
        (tmp_path / "audit-exports").iterdir()
    )


# --- delete: exactly the exported rows ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
async def test_delete_removes_exactly_the_rows_before_the_cutoff_and_keeps_later_ones(
    db_url: str, backend: str, sessions: Sessions, tmp_path: Path, fmt: str
) -> None:
    start = datetime(1985 if fmt == "csv" else 1986, 3, 1, tzinfo=UTC)
    ids = await seed(sessions, start, 20, step=timedelta(hours=5))
    cutoff = start + timedelta(days=2)
    before = [r.id for r in await rows_before(sessions, cutoff)]
    kept = [i for i in ids if i not in set(before)]
    assert before and kept

    code, out = await cli(
        db_url, tmp_path, "export", "--before", cutoff.isoformat(), "--format", fmt, "--delete"
    )

    assert code == 0, out
    assert f"Deleted {len(before)} audit rows" in out
    assert await rows_before(sessions, cutoff) == []
    assert await ids_of(sessions, before) == []
    assert await ids_of(sessions, kept) == kept
    path = tmp_path / "audit-exports" / audit_export.default_filename(cutoff, ExportFormat(fmt))
    assert [r["id"] for r in read_export(path, fmt)] == before
    manifest = json.loads(audit_export.manifest_path(path).read_text())
    assert manifest["deleted_rows"] == len(before) and manifest["deleted_at"]
    # The purge is audited with a current time and an id above the range: never itself purged.
    event = await latest(sessions, "audit.purge")
    assert event.at > datetime.now(UTC) - timedelta(minutes=5)
    assert event.id > max(before)
    assert event.changes is not None
    assert (event.changes["rows"], event.changes["first_id"], event.changes["last_id"]) == (
        len(before),
        before[0],
        before[-1],
    )
    assert event.target_id == f"{before[0]}-{before[-1]}"
    # The guard is back: ordinary statements are refused as before.
    await assert_append_only(sessions, kept[0])
    if backend == "postgres":
        async with sessions() as db:
            state = await db.execute(
                sa.text(
                    "SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass "
                    "AND tgname = 'audit_log_append_only'"
                )
            )
            assert state.scalar_one() == "O"


async def test_purging_the_newest_ids_never_lets_an_id_be_reused(
    db_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    # Old-dated rows inserted last hold the highest ids: purging them empties the id tail.
    purged = await seed(sessions, datetime(1979, 1, 1, tzinfo=UTC), 3, step=timedelta(hours=1))

    code, out = await cli(db_url, tmp_path, "export", "--before", "1980-01-01", "--delete")

    assert code == 0, out
    assert await ids_of(sessions, purged) == []
    event = await latest(sessions, "audit.purge")
    assert event.id > max(purged)
    [after] = await seed(sessions, datetime.now(UTC), 1, step=timedelta(0))
    assert after > event.id


# --- a bad export deletes nothing -----------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")


def _alter_a_value(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert '"test.export"' in text
    path.write_text(text.replace('"test.export"', '"test.exporT"', 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("fmt", "corrupt"),
    [("parquet", _truncate), ("csv", _drop_last_line), ("csv", _alter_a_value)],
    ids=["parquet-truncated", "csv-row-lost", "csv-value-changed"],
)
async def test_an_export_that_fails_verification_deletes_nothing(
    db_url: str,
    sessions: Sessions,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    corrupt: Callable[[Path], None],
) -> None:
    start = datetime(1987, 1, 1, tzinfo=UTC)
    await seed(sessions, start, 8, step=timedelta(hours=1))
    cutoff = start + timedelta(days=1)
    before = [r.id for r in await rows_before(sessions, cutoff)]
    purges = await _count(sessions, "audit.purge")
    # The file is corrupted between being written and being verified.
    monkeypatch.setattr(
        audit_export,
        "export_audit",
        functools.partial(audit_export.export_audit, after_write=corrupt),
    )

    code, out = await cli(
        db_url, tmp_path, "export", "--before", cutoff.isoformat(), "--format", fmt, "--delete"
    )

    assert code == 1, out
    assert "AUDIT_VERIFY_FAILED" in out and "Nothing was deleted" in out
    assert [r.id for r in await rows_before(sessions, cutoff)] == before
    assert await _count(sessions, "audit.purge") == purges
    # No file that could pass for a good export: no export, no manifest, no temp file.
    assert list((tmp_path / "audit-exports").iterdir()) == []


async def _count(sessions: Sessions, action: str) -> int:
    async with sessions() as db:
        q = sa.select(sa.func.count()).where(AuditLog.action == action)
        return int((await db.execute(q)).scalar_one())


async def test_purge_refuses_rows_that_no_longer_match_the_export(
    sessions: Sessions, tmp_path: Path
) -> None:
    start = datetime(1988, 1, 1, tzinfo=UTC)
    await seed(sessions, start, 6, step=timedelta(hours=1))
    cutoff = start + timedelta(days=1)
    actor = Actor(None, "test", None, None)
    path = tmp_path / "a.parquet"
    result = await audit_export.export_audit(
        sessions, before=cutoff, fmt=ExportFormat.PARQUET, path=path, actor=actor
    )
    assert result.manifest is not None
    before = [r.id for r in await rows_before(sessions, cutoff)]
    # A manifest that does not describe the rows the database holds (another export's).
    other = audit_export.Manifest(**{**vars(result.manifest), "digest": "sha256:" + "0" * 64})

    with pytest.raises(AuditExportError) as caught:
        await audit_export.purge_exported(sessions, result.plan, other, actor=actor, path=path)

    assert caught.value.code == "AUDIT_PURGE_REFUSED"
    assert [r.id for r in await rows_before(sessions, cutoff)] == before
    await assert_append_only(sessions, before[0])


async def test_a_purge_failing_after_the_guard_was_lifted_rolls_back_guard_and_rows(
    sessions: Sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(1988, 6, 1, tzinfo=UTC)
    await seed(sessions, start, 4, step=timedelta(hours=1))
    cutoff = start + timedelta(days=1)
    before = [r.id for r in await rows_before(sessions, cutoff)]
    # The DELETE (run while the guard is lifted) matches no row, so the count check fails there.
    monkeypatch.setattr(audit_export, "delete", lambda model: sa.delete(model).where(sa.false()))

    with pytest.raises(AuditExportError) as caught:
        await audit_export.export_audit(
            sessions,
            before=cutoff,
            fmt=ExportFormat.PARQUET,
            path=tmp_path / "a.parquet",
            actor=Actor(None, "test", None, None),
            delete_rows=True,
        )

    assert caught.value.code == "AUDIT_PURGE_REFUSED"
    assert [r.id for r in await rows_before(sessions, cutoff)] == before
    # The guard's removal was part of the rolled-back transaction: it is still in force.
    await assert_append_only(sessions, before[0])


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--before", "2026-13-01"], "AUDIT_BAD_DATE"),
        (["--before", "last tuesday"], "AUDIT_BAD_DATE"),
        (["--before", "1989-06-01T10:00:00"], "no time zone"),
        (["--before", "2999-01-01"], "AUDIT_FUTURE_DATE"),
        (["--before", "1989-06-01", "--format", "xml"], "'xml' is not one of"),
        (["--before", "1989-06-01", "--out", "{file}/x.parquet"], "AUDIT_BAD_PATH"),
    ],
    ids=["bad-date", "not-a-date", "naive-time", "future", "unknown-format", "unwritable"],
)
async def test_bad_input_exits_2_with_a_clear_message_and_deletes_nothing(
    db_url: str, sessions: Sessions, tmp_path: Path, args: list[str], message: str
) -> None:
    start = datetime(1989, 5, 1, tzinfo=UTC)
    await seed(sessions, start, 3, step=timedelta(hours=1))
    cutoff = datetime(1989, 6, 1, tzinfo=UTC)
    before = [r.id for r in await rows_before(sessions, cutoff)]
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    args = [a.replace("{file}", str(a_file)) for a in args]

    code, out = await cli(db_url, tmp_path, "export", *args, "--delete")

    assert code == 2, out
    assert message in " ".join(out.split()), out
    assert [r.id for r in await rows_before(sessions, cutoff)] == before
    assert not (tmp_path / "audit-exports").exists()


async def test_an_existing_export_is_never_overwritten(
    db_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    await seed(sessions, datetime(1990, 1, 1, tzinfo=UTC), 2, step=timedelta(hours=1))
    target = tmp_path / "audit.parquet"
    target.write_bytes(b"an earlier archive")

    code, out = await cli(
        db_url, tmp_path, "export", "--before", "1990-02-01", "--out", str(target), "--delete"
    )

    assert code == 2, out
    assert "AUDIT_EXPORT_EXISTS" in out
    assert target.read_bytes() == b"an earlier archive"
    assert await rows_before(sessions, datetime(1990, 2, 1, tzinfo=UTC))


# --- retention ------------------------------------------------------------------------------------


async def test_purge_with_retention_off_keeps_everything(
    db_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    await seed(sessions, datetime(1991, 1, 1, tzinfo=UTC), 2, step=timedelta(hours=1))
    cutoff = datetime(1992, 1, 1, tzinfo=UTC)
    before = [r.id for r in await rows_before(sessions, cutoff)]

    code, out = await cli(db_url, tmp_path, "purge")

    assert code == 0, out
    assert "retention is off" in out
    assert [r.id for r in await rows_before(sessions, cutoff)] == before


async def test_purge_applies_the_retention_setting(
    db_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    days = 3650
    cutoff = retention_cutoff(days, now=datetime.now(UTC))
    assert cutoff is not None
    old = await seed(sessions, cutoff - timedelta(days=1), 3, step=timedelta(hours=1))
    recent = await seed(sessions, cutoff + timedelta(hours=1), 3, step=timedelta(hours=1))

    code, out = await cli(
        db_url, tmp_path, "purge", "--format", "csv", QUANTDESK_AUDIT_RETENTION_DAYS=str(days)
    )

    assert code == 0, out
    assert await ids_of(sessions, old) == []
    assert await ids_of(sessions, recent) == recent
    assert await rows_before(sessions, cutoff) == []
    path = tmp_path / "audit-exports" / audit_export.default_filename(cutoff, ExportFormat.CSV)
    assert set(old) <= {r["id"] for r in read_export(path, "csv")}


def test_retention_counts_whole_utc_days() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    assert retention_cutoff(0, now=now) is None
    assert retention_cutoff(30, now=now) == datetime(2026, 2, 8, tzinfo=UTC)
    # 02:00 IST on 11 March is still 10 March in UTC: days are UTC days.
    ist = datetime(2026, 3, 11, 2, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert retention_cutoff(1, now=ist) == datetime(2026, 3, 9, tzinfo=UTC)


def test_cutoff_is_utc_unless_an_offset_says_otherwise() -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    assert parse_cutoff("2026-01-01", now=now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_cutoff("2026-01-01T00:00:00+05:30", now=now) == datetime(
        2025, 12, 31, 18, 30, tzinfo=UTC
    )
    assert parse_cutoff("2026-01-01T10:00:00Z", now=now) == datetime(2026, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(AuditExportError) as caught:
        parse_cutoff("2026-03-11", now=now)
    assert caught.value.code == "AUDIT_FUTURE_DATE" and caught.value.exit_code == 2


def test_the_cli_offers_exactly_the_export_formats() -> None:
    assert set(get_args(FormatName)) == {f.value for f in ExportFormat}
