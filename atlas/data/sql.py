"""Quoting for the SQL atlas writes (names and literals from config and data)."""

from __future__ import annotations

def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
