"""One error family for every mistake a user can make.

The command line prints an :class:`AtlasError` as one paragraph (what went wrong, where, and
what to do) and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


class AtlasError(Exception):
    """A problem the user can fix. ``where`` names the file/key/column, ``hint`` what to do."""

    title = "error"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: {self.message}")
        else:
            parts.append(self.message)
        if self.hint:
            # The hint is its own sentence: end the message first, so the two never run together.
            if not parts[-1].rstrip().endswith((".", "?", "!", ":")):
                parts[-1] = parts[-1].rstrip() + "."
            parts.append(self.hint)
        return " ".join(p.rstrip() for p in parts)


class ConfigError(AtlasError):
    title = "configuration error"


class DataError(AtlasError):
    title = "data error"


class ContentError(AtlasError):
    title = "content error"


class ThemeError(ContentError):
    """A theme template that cannot be compiled or rendered (``where``: the template and line)."""

    title = "theme error"


class ModelError(AtlasError):
    title = "model error"


class PluginError(AtlasError):
    """An installed plugin (an ``atlas.site.widgets`` or ``atlas.stages`` entry point) that cannot be
    used: the message names the entry point and its distribution, so the fix (update or uninstall
    that package) is clear without a traceback."""

    title = "plugin error"
