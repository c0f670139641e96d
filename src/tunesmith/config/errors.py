"""The one exception type users see for bad input: printed as a message, never as a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A problem with the user's configuration or data that the user can fix.

    The CLI prints ``str(err)`` and exits with status 2. Messages name the file, key, row or column and
    say how to fix the problem.
    """
