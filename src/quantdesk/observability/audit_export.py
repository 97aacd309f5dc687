"""Audit retention: export audit rows older than a cut-off to Parquet or CSV, verify the file
against the database, and only then (when asked) delete exactly the exported rows.

The audit table is append-only (migration 0001: triggers refuse UPDATE and DELETE). The one way
rows leave it is :func:`purge_exported`, in a single transaction that first locks out every other
writer of the table (``LOCK TABLE ... SHARE ROW EXCLUSIVE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), re-checks the rows against the export's digest, records the purge, lifts the DELETE
guard, deletes them, restores the guard and checks it is back. DDL is transactional on both
backends and no other writer runs meanwhile, so no other statement ever sees the table unguarded;
any failure rolls the whole transaction back, guard included.

Times are UTC: a bare date ``2026-01-01`` means 00:00 UTC that day; other zones need an explicit
offset (``2026-01-01T00:00+05:30`` is midnight IST).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import CursorResult, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.errors import AppError
from quantdesk.observability.audit import Actor, AuditLog, record

TABLE = "audit_log"
COLUMNS = (
    "id",
    "at",
    "actor_id",
    "actor_username",
    "action",
    "target_type",
    "target_id",
    "ip",
    "request_id",
    "outcome",
    "changes",
)
# ``changes`` travels as canonical JSON text (sorted keys): the file holds what the digest hashed.
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("actor_id", pa.int64()),
        pa.field("actor_username", pa.string()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("target_type", pa.string()),
        pa.field("target_id", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("changes", pa.string()),
    ]
)
DIGEST_METHOD = (
    "sha256 over one compact JSON array per row, in id order, each followed by a newline: "
    "[id, at (ISO 8601 UTC, microseconds), actor_id, actor_username, action, target_type, "
    "target_id, ip, request_id, outcome, changes (JSON text with sorted keys, or null)]"
)
CHUNK_ROWS = 5000
# The migration 0001 triggers that refuse DELETE on the table.
_PG_GUARD = "audit_log_append_only"
_SQLITE_GUARD = "audit_log_no_delete"

CanonicalRow = tuple[Any, ...]
ProgressFn = Callable[[str, int, int], None]


class AuditExportError(AppError):
    """A refused or failed export or purge; ``exit_code`` is 2 for bad input, 1 for a failure."""

    def __init__(self, message: str, *, code: str, exit_code: int = 1) -> None:
        super().__init__(message, code=code)
        self.exit_code = exit_code


def _bad_input(code: str, message: str) -> AuditExportError:
    return AuditExportError(message, code=code, exit_code=2)


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


# --- input: the cut-off and the output path --------------------------------------------------


def parse_cutoff(value: str, *, now: datetime) -> datetime:
    """``--before``: a date (00:00 UTC) or an ISO datetime with an offset; never in the future."""
    raw = value.strip()
    try:
        if len(raw) == 10:
            cutoff = datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        else:
            cutoff = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise _bad_input(
            "AUDIT_BAD_DATE",
            f"--before {value!r} is not a date: use YYYY-MM-DD (00:00 UTC) or an ISO datetime "
            "with an offset, e.g. 2026-01-01T00:00:00+05:30.",
        ) from exc
    if cutoff.tzinfo is None:
        raise _bad_input(
            "AUDIT_BAD_DATE",
            f"--before {value!r} has a time but no time zone: add Z or an offset such as +05:30.",
        )
    cutoff = cutoff.astimezone(UTC)
    if cutoff > now:
        raise _bad_input(
            "AUDIT_FUTURE_DATE",
            f"--before {cutoff.isoformat()} is in the future (now {now.isoformat()}): rows "
            "still being written cannot be archived.",
        )
    return cutoff


def retention_cutoff(days: int, *, now: datetime) -> datetime | None:
    """00:00 UTC of (today - ``days``), UTC days; None when retention is off (0 keeps all)."""
    if days <= 0:
        return None
    day = (now.astimezone(UTC) - timedelta(days=days)).date()
    return datetime.combine(day, datetime.min.time(), UTC)


def default_filename(cutoff: datetime, fmt: ExportFormat) -> str:
    return f"audit-before-{cutoff.strftime('%Y%m%dT%H%M%SZ')}.{fmt.value}"


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def resolve_output(
    out: Path | None, *, default_dir: Path, cutoff: datetime, fmt: ExportFormat
) -> Path:
    """The export's path: ``out`` (a file, or an existing directory for the default name), else
    ``default_dir``. Refuses an existing export and a directory it cannot write to."""
    name = default_filename(cutoff, fmt)
    if out is None:
        path = default_dir / name
    elif out.is_dir():
        path = out / name
    else:
        path = out
    path = path.expanduser().absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _bad_input(
            "AUDIT_BAD_PATH", f"cannot create the directory {path.parent}: {exc.strerror or exc}"
        ) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise _bad_input("AUDIT_BAD_PATH", f"cannot write to the directory {path.parent}.")
    for target in (path, manifest_path(path)):
        if target.exists():
            raise _bad_input(
                "AUDIT_EXPORT_EXISTS",
                f"{target} already exists: an export is never overwritten; choose another --out.",
            )
    return path


# --- canonical rows and the digest -----------------------------------------------------------


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class Digest:
    """SHA-256 over canonical rows (``DIGEST_METHOD``), and their count."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.rows = 0

    def add(self, row: CanonicalRow) -> None:
        self._h.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        self._h.update(b"\n")
        self.rows += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """The rows an export covers: ``at < before`` and ``first_id <= id <= last_id``."""

    before: datetime
    rows: int
    first_id: int
    last_id: int


async def plan_export(db: AsyncSession, before: datetime) -> ExportPlan:
    """Fix the id range up front, so rows written while the export runs are never part of it."""
    q = select(func.count(), func.min(AuditLog.id), func.max(AuditLog.id)).where(
        AuditLog.at < before
    )
    n, lo, hi = (await db.execute(q)).one()
    return ExportPlan(before, int(n), int(lo or 0), int(hi or 0))


async def _db_chunks(
    db: AsyncSession, plan: ExportPlan, chunk_rows: int
) -> AsyncIterator[list[CanonicalRow]]:
    """The plan's rows in id order, a chunk at a time (keyset pages: no long server cursor)."""
    cols = [getattr(AuditLog, c) for c in COLUMNS]
    after = plan.first_id - 1
    while True:
        q = (
            select(*cols)
            .where(AuditLog.id > after, AuditLog.id <= plan.last_id, AuditLog.at < plan.before)
            .order_by(AuditLog.id)
            .limit(chunk_rows)
        )
        rows = (await db.execute(q)).all()
        if not rows:
            return
        yield [
            (
                r.id,
                _iso(r.at),
                r.actor_id,
                r.actor_username,
                r.action,
                r.target_type,
                r.target_id,
                r.ip,
                r.request_id,
                r.outcome,
                _json_text(r.changes),
            )
            for r in rows
        ]
        after = rows[-1].id


def _to_batch(rows: list[CanonicalRow]) -> pa.RecordBatch:
    columns = [[r[i] for r in rows] for i in range(len(COLUMNS))]
    columns[1] = [datetime.fromisoformat(v) for v in columns[1]]
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )


def _from_batch(batch: pa.RecordBatch) -> list[CanonicalRow]:
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    columns[1] = [_iso(v) for v in columns[1]]
    return list(zip(*columns, strict=True))


# --- the file: write, read back ----------------------------------------------------------------


class _Writer(Protocol):
    def write_batch(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


def _open_writer(path: Path, fmt: ExportFormat) -> _Writer:
    if fmt is ExportFormat.PARQUET:
        return cast(_Writer, pq.ParquetWriter(str(path), SCHEMA, compression="zstd"))
    return cast(_Writer, pacsv.CSVWriter(str(path), SCHEMA))


def _read_chunks(path: Path, fmt: ExportFormat, chunk_rows: int) -> Iterator[list[CanonicalRow]]:
    expected = [(f.name, f.type) for f in SCHEMA]
    if fmt is ExportFormat.PARQUET:
        pf = pq.ParquetFile(str(path))
        found = [(f.name, f.type) for f in pf.schema_arrow]
        if found != expected:
            raise ValueError(f"columns {found} are not {expected}")
        for batch in pf.iter_batches(batch_size=chunk_rows):
            yield _from_batch(batch)
        return
    # Unquoted empty fields are nulls, quoted ones empty strings: what the writer produced.
    options = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in SCHEMA},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    reader = pacsv.open_csv(str(path), convert_options=options)
    if reader.schema.names != list(COLUMNS):
        raise ValueError(f"the header {reader.schema.names} is not {list(COLUMNS)}")
    for batch in reader:
        yield _from_batch(batch)


def _verify_file(
    path: Path,
    fmt: ExportFormat,
    expected: Digest,
    chunk_rows: int,
    progress: ProgressFn | None,
) -> None:
    """Read the file back and compare its canonical rows with what the database gave."""
    got = Digest()
    try:
        for rows in _read_chunks(path, fmt, chunk_rows):
            for row in rows:
                got.add(row)
            if progress:
                progress("verify", got.rows, expected.rows)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise AuditExportError(
            f"the export could not be read back: {exc}", code="AUDIT_VERIFY_FAILED"
        ) from exc
    if got.rows != expected.rows:
        raise AuditExportError(
            f"the export holds {got.rows} rows, the database gave {expected.rows}",
            code="AUDIT_VERIFY_FAILED",
        )
    if got.hexdigest() != expected.hexdigest():
        raise AuditExportError(
            "the export's content digest differs from the database rows "
            f"({got.hexdigest()[:12]}... != {expected.hexdigest()[:12]}...)",
            code="AUDIT_VERIFY_FAILED",
        )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # directories cannot be fsynced on every platform
        pass
    finally:
        os.close(fd)


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)  # mode 0600: audit rows name people and addresses
    return Path(name)


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = _temp_beside(path)
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent)


# --- the manifest and the result ---------------------------------------------------------------


@dataclass
class Manifest:
    table: str
    format: str
    file: str
    file_bytes: int
    file_sha256: str
    before: str
    rows: int
    first_id: int
    last_id: int
    digest: str
    digest_method: str
    columns: list[str]
    exported_at: str
    exported_by: str | None
    deleted_rows: int | None = None
    deleted_at: str | None = None


@dataclass
class ExportResult:
    plan: ExportPlan
    path: Path | None = None
    manifest: Manifest | None = None
    deleted: int = 0
    warnings: list[str] | None = None


def _audit_changes(path: Path, manifest: Manifest) -> dict[str, Any]:
    return {
        "before": manifest.before,
        "rows": manifest.rows,
        "first_id": manifest.first_id,
        "last_id": manifest.last_id,
        "format": manifest.format,
        "file": str(path),
        "file_sha256": manifest.file_sha256,
        "digest": manifest.digest,
    }


# --- the use case ------------------------------------------------------------------------------


async def export_audit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    before: datetime,
    fmt: ExportFormat,
    path: Path,
    actor: Actor,
    delete_rows: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn | None = None,
    after_write: Callable[[Path], None] | None = None,
) -> ExportResult:
    """Export every audit row with ``at < before`` to ``path``, verify it, write the manifest,
    then delete the rows (``delete_rows``) and record what was done as an audit row.

    ``after_write`` runs between writing the file and verifying it: tests corrupt it there.
    Nothing is deleted unless the file verified and the rows still match it at deletion time.
    """
    async with sessions() as db:
        plan = await plan_export(db, before)
        if plan.rows == 0:
            return ExportResult(plan)
        tmp = _temp_beside(path)
        try:
            digest = await _write(db, plan, tmp, fmt, chunk_rows, progress)
            if after_write is not None:
                after_write(tmp)
            _verify_file(tmp, fmt, digest, chunk_rows, progress)
            file_sha = _sha256_file(tmp)
            size = tmp.stat().st_size
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    _fsync(path.parent)
    manifest = Manifest(
        table=TABLE,
        format=fmt.value,
        file=path.name,
        file_bytes=size,
        file_sha256=file_sha,
        before=_iso(before),
        rows=plan.rows,
        first_id=plan.first_id,
        last_id=plan.last_id,
        digest=f"sha256:{digest.hexdigest()}",
        digest_method=DIGEST_METHOD,
        columns=list(COLUMNS),
        exported_at=_iso(now()),
        exported_by=actor.username,
    )
    _write_json_atomically(manifest_path(path), asdict(manifest))
    result = ExportResult(plan, path, manifest)
    if not delete_rows:
        async with sessions() as db:
            record(
                db,
                actor,
                "audit.export",
                target_type=TABLE,
                target_id=f"{plan.first_id}-{plan.last_id}",
                changes=_audit_changes(path, manifest),
            )
            await db.commit()
        return result
    result.deleted = await purge_exported(
        sessions, plan, manifest, actor=actor, path=path, chunk_rows=chunk_rows, progress=progress
    )
    manifest.deleted_rows = result.deleted
    manifest.deleted_at = _iso(now())
    try:
        _write_json_atomically(manifest_path(path), asdict(manifest))
    except OSError as exc:
        result.warnings = [f"the rows were deleted but the manifest was not updated: {exc}"]
    return result


async def _write(
    db: AsyncSession,
    plan: ExportPlan,
    tmp: Path,
    fmt: ExportFormat,
    chunk_rows: int,
    progress: ProgressFn | None,
) -> Digest:
    digest = Digest()
    try:
        writer = _open_writer(tmp, fmt)
        try:
            async for rows in _db_chunks(db, plan, chunk_rows):
                for row in rows:
                    digest.add(row)
                writer.write_batch(_to_batch(rows))
                if progress:
                    progress("export", digest.rows, plan.rows)
        finally:
            writer.close()
        _fsync(tmp)
    except (OSError, pa.ArrowException) as exc:
        raise AuditExportError(f"writing {tmp} failed: {exc}", code="AUDIT_WRITE_FAILED") from exc
    if digest.rows != plan.rows:
        raise AuditExportError(
            f"the database gave {digest.rows} rows, {plan.rows} were counted",
            code="AUDIT_VERIFY_FAILED",
        )
    return digest


async def purge_exported(
    sessions: async_sessionmaker[AsyncSession],
    plan: ExportPlan,
    manifest: Manifest,
    *,
    actor: Actor,
    path: Path,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn | None = None,
) -> int:
    """Delete exactly the rows of a verified export, in one transaction, and audit it.

    The only code that deletes audit rows (see the module docstring). Refuses (deleting nothing)
    when the rows no longer match the manifest's count and digest.
    """
    async with sessions() as db:
        dialect = db.get_bind().dialect.name
        await _lock_table(db, dialect)
        now = Digest()
        async for rows in _db_chunks(db, plan, chunk_rows):
            for row in rows:
                now.add(row)
            if progress:
                progress("re-check", now.rows, plan.rows)
        if now.rows != manifest.rows or f"sha256:{now.hexdigest()}" != manifest.digest:
            raise AuditExportError(
                f"the database now holds {now.rows} rows in the exported range with a different "
                f"content than the export ({manifest.rows} rows): nothing deleted",
                code="AUDIT_PURGE_REFUSED",
            )
        # The purge's own record goes in first, in the same transaction: its id is above the
        # range and its time after the cut-off, so it is never in the range it describes, and
        # SQLite (which numbers a new row after the highest one left) never reuses a purged id.
        event = record(
            db,
            actor,
            "audit.purge",
            target_type=TABLE,
            target_id=f"{plan.first_id}-{plan.last_id}",
            changes=_audit_changes(path, manifest),
        )
        await db.flush()
        if event.id <= plan.last_id:
            raise AuditExportError(
                f"the purge's audit row got id {event.id}, inside the purged range",
                code="AUDIT_PURGE_REFUSED",
            )
        async with _delete_guard_lifted(db, dialect):
            stmt = (
                delete(AuditLog)
                .where(
                    AuditLog.id >= plan.first_id,
                    AuditLog.id <= plan.last_id,
                    AuditLog.at < plan.before,
                )
                .execution_options(synchronize_session=False)
            )
            deleted = cast(CursorResult[Any], await db.execute(stmt)).rowcount
            if deleted != manifest.rows:
                raise AuditExportError(
                    f"{deleted} rows matched the delete, {manifest.rows} were exported: "
                    "rolled back, nothing deleted",
                    code="AUDIT_PURGE_REFUSED",
                )
        await db.commit()
    if progress:
        progress("delete", deleted, deleted)
    return deleted


async def _lock_table(db: AsyncSession, dialect: str) -> None:
    """Keep every other writer out until commit (readers are not blocked)."""
    if dialect == "sqlite":
        # The first statement of the transaction; pysqlite would otherwise start a deferred
        # one only at the DELETE, after the guard's DROP had already been committed on its own.
        await db.execute(text("BEGIN IMMEDIATE"))
        return
    # A purge queued behind a long transaction would hold up every audited write behind it.
    await db.execute(text("SET LOCAL lock_timeout = '10s'"))
    await db.execute(text(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE"))


@asynccontextmanager
async def _delete_guard_lifted(db: AsyncSession, dialect: str) -> AsyncIterator[None]:
    """Lift the table's DELETE guard inside the caller's locked transaction, and put it back."""
    conn = await db.connection()
    if dialect == "sqlite":
        found = await conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ? AND tbl_name = ?",
            (_SQLITE_GUARD, TABLE),
        )
        ddl = found.scalar_one_or_none()
        if ddl is None:
            raise AuditExportError(
                f"the {TABLE} delete guard ({_SQLITE_GUARD}) is missing: migrate the database",
                code="AUDIT_GUARD_MISSING",
            )
        await conn.exec_driver_sql(f"DROP TRIGGER {_SQLITE_GUARD}")
        yield
        await conn.exec_driver_sql(ddl)
        restored = await conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (_SQLITE_GUARD,)
        )
        if restored.scalar_one_or_none() != ddl:
            raise AuditExportError("the delete guard was not restored", code="AUDIT_GUARD_MISSING")
        return
    state = text(
        "SELECT CAST(tgenabled AS text) FROM pg_trigger "
        "WHERE tgrelid = CAST(:t AS regclass) AND tgname = :g"
    ).bindparams(t=TABLE, g=_PG_GUARD)
    if (await db.execute(state)).scalar_one_or_none() != "O":
        raise AuditExportError(
            f"the {TABLE} guard trigger {_PG_GUARD} is missing or disabled: migrate the database",
            code="AUDIT_GUARD_MISSING",
        )
    await db.execute(text(f"ALTER TABLE {TABLE} DISABLE TRIGGER {_PG_GUARD}"))
    yield
    await db.execute(text(f"ALTER TABLE {TABLE} ENABLE TRIGGER {_PG_GUARD}"))
    if (await db.execute(state)).scalar_one_or_none() != "O":
        raise AuditExportError("the delete guard was not restored", code="AUDIT_GUARD_MISSING")
