"""Reading a TOML file a user wrote (atlas.toml, prompts.toml, gender-words.toml), with one wording
for each way it can fail: not TOML (the line), not UTF-8, not readable."""

from __future__ import annotations

import tomllib
from pathlib import Path

from atlas.core.errors import AtlasError


def read_toml(path: Path, error: type[AtlasError], where: str | None = None) -> dict:
    """The parsed file, or ``error`` (a ConfigError, a ContentError) naming the file and what to do.
    ``where`` names the file in the message (default: its path)."""
    where = where or str(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as problem:
        raise error(f"not valid TOML: {problem}", where=where, hint="Fix the syntax at that line.") from None
    except UnicodeDecodeError:
        raise error("not UTF-8 text", where=where, hint="Save it as UTF-8.") from None
    except IsADirectoryError:
        raise error("a folder, not a file", where=where, hint="Replace it with a TOML text file.") from None
    except OSError as problem:
        raise error(f"cannot be read: {problem.strerror or problem}", where=where,
                    hint="Check that the file exists (a link must point to a file) and is readable.") from None
