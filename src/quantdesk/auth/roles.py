"""The roles, kept free of database imports so the CLI and settings can use them cheaply."""

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"
