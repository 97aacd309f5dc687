"""Finding strategies: the built-in examples plus user files in ``QUANTDESK_STRATEGY_DIR``.

Every ``*.py`` file in the strategy directory is imported on its own; each :class:`Strategy`
subclass it defines with a ``name`` is registered. A file that fails to import is reported with
its file and line (``LoadError``) and skipped: a broken user file never stops the server. A user
strategy cannot take a built-in's name.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantdesk.strategy.base import Strategy

__all__ = ["LoadError", "Registry", "UnknownStrategy", "describe"]


class UnknownStrategy(KeyError):
    code = "STRATEGY_NOT_FOUND"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown strategy {self.name!r}; known: {', '.join(self.known) or 'none'}"


@dataclass(frozen=True, slots=True)
class LoadError:
    file: str
    line: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}


def _builtin() -> dict[str, type[Strategy]]:
    from quantdesk.strategy.builtin import BUILTIN

    return {cls.name: cls for cls in BUILTIN}


def _error_line(exc: BaseException, path: Path) -> int | None:
    if isinstance(exc, SyntaxError):
        return exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return frames[-1].lineno if frames else None


def _load_file(path: Path) -> tuple[list[type[Strategy]], LoadError | None]:
    module_name = f"quantdesk_user_strategies.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        return [], LoadError(str(path), None, "not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # a user file may raise anything, even SystemExit
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = f"{type(exc).__name__}: {exc}"
        return [], LoadError(str(path), _error_line(exc, path), message)
    found = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Strategy) and obj.__module__ == module_name and obj.name
    ]
    return found, None


class Registry:
    """Built-in and user strategies by name; ``errors`` lists user files that failed."""

    def __init__(self, strategy_dir: Path | None = None) -> None:
        self.strategy_dir = strategy_dir
        self.strategies: dict[str, type[Strategy]] = _builtin()
        self.sources: dict[str, str] = {name: "builtin" for name in self.strategies}
        self.files: dict[str, str] = {}
        self.errors: list[LoadError] = []
        if strategy_dir is not None and strategy_dir.is_dir():
            for path in sorted(strategy_dir.glob("*.py")):
                classes, error = _load_file(path.resolve())
                if error is not None:
                    self.errors.append(error)
                for cls in classes:
                    if cls.name in self.strategies:
                        self.errors.append(
                            LoadError(
                                str(path),
                                inspect.getsourcelines(cls)[1],
                                f"strategy name {cls.name!r} is already taken",
                            )
                        )
                        continue
                    self.strategies[cls.name] = cls
                    self.sources[cls.name] = "user"
                    self.files[cls.name] = str(path)

    def get(self, name: str) -> type[Strategy]:
        try:
            return self.strategies[name]
        except KeyError:
            raise UnknownStrategy(name, sorted(self.strategies)) from None

    def names(self) -> list[str]:
        return sorted(self.strategies)

    def describe_all(self) -> list[dict[str, Any]]:
        return [
            describe(self.strategies[n], self.sources[n], self.files.get(n)) for n in self.names()
        ]


def describe(
    cls: type[Strategy], source: str = "builtin", file: str | None = None
) -> dict[str, Any]:
    """What the API and ``strategies list --json`` show of a strategy."""
    return {
        "name": cls.name,
        "description": cls.description or (inspect.getdoc(cls) or "").split("\n")[0],
        "source": source,
        "file": None if file is None else Path(file).name,
        "default_interval": cls.default_interval,
        "vectorized": cls.signals.__func__ is not Strategy.signals.__func__,  # type: ignore[attr-defined]
        "params_schema": cls.params_schema(),
    }
