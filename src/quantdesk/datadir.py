"""The data dir is private: the directory and its folders 0700, databases and secrets 0600.

Created that way on the first start; an existing data dir with looser modes (an older
installation, a copy) is tightened at start, and every change is logged.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from quantdesk.settings import Settings

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PROCESS_UMASK = 0o077
"""`quantdesk serve` runs with this umask: whatever it (or a worker it starts) creates later
is private too."""

# The files that hold secrets or whole databases, relative to the data dir.
_SECRET_FILES = ("jwt_secret", "secrets_key", "mlflow/mlflow.db")
# What SQLite writes beside a database file.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

log = structlog.get_logger("quantdesk.datadir")


@dataclass(frozen=True)
class Tightened:
    path: Path
    old_mode: int
    new_mode: int


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700; an existing directory is left as it is."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    path.chmod(PRIVATE_DIR)  # mkdir's mode is filtered by the umask; make it exact


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL (None for another backend or an in-memory one)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):  # a URI filename: not ours to create
        return None
    return Path(url.database)


def prepare_data_dir(settings: Settings) -> list[Tightened]:
    """Create the data dir (0700) and the SQLite database file (0600, empty: SQLite takes an
    empty file as a new database and gives its -wal/-shm files the same mode), then tighten
    what an earlier start left looser. Returns what was tightened.

    Run before anything opens the database: `serve` calls it before migrating, the app's
    lifespan again before connecting.
    """
    data_dir = settings.data_dir
    ensure_private_dir(data_dir)
    changed = _tighten_tree(data_dir)
    database = sqlite_path(settings.resolved_database_url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        _create_private_file(database)
        for candidate in (database, *(Path(f"{database}{s}") for s in _SQLITE_SIDE_FILES)):
            changed.extend(_tighten(candidate, PRIVATE_FILE))
    for name in _SECRET_FILES:
        changed.extend(_tighten(data_dir / name, PRIVATE_FILE))
    for item in changed:
        log.warning(
            "data_dir_mode_tightened",
            path=str(item.path),
            old_mode=oct(item.old_mode),
            new_mode=oct(item.new_mode),
        )
    return changed


def _tighten_tree(data_dir: Path) -> list[Tightened]:
    """The data dir and the folders directly in it (bars, backtests, mlflow, ...): the Parquet
    store's and the artifacts' own subfolders are out of reach once their parent is 0700, so
    a large store is not walked on every start."""
    changed = _tighten(data_dir, PRIVATE_DIR)
    for child in sorted(data_dir.iterdir()):
        if child.is_dir() and not child.is_symlink():
            changed.extend(_tighten(child, PRIVATE_DIR))
    return changed


def _tighten(path: Path, limit: int) -> list[Tightened]:
    """Drop the permission bits ``limit`` does not allow (group and others); never add any."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        return []
    old = stat.S_IMODE(st.st_mode)
    new = old & limit
    if new == old:
        return []
    try:
        path.chmod(new)
    except PermissionError:  # not the owner: say so, the start goes on
        log.error(
            "data_dir_mode_not_tightened",
            path=str(path),
            mode=oct(old),
            hint=f"chmod {oct(new)[2:]} {path}",
        )
        return []
    return [Tightened(path, old, new)]


def _create_private_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)
