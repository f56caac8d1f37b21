"""User errors: bad options, unknown steps, bad recipes. The CLI prints them as one line (exit 2);
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class UsageError(ValueError):
    """The user asked for something that cannot be done as asked (an unknown step, an option a step does
    not take, a bad recipe key). The message says what and where."""
