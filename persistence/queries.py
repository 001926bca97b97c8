"""Named SQL blocks, kept in ``persistence/sql/<aggregate>.sql``.

A block starts with a ``-- name: <name>`` line and runs until the next one, so the
SQL stays plain SQL that can be pasted into psql.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def queries(aggregate: str) -> dict[str, str]:
    text = resources.files("persistence").joinpath("sql", f"{aggregate}.sql").read_text()
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
