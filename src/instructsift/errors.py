"""User errors from steps and recipes: bad options, unknown steps, bad recipe keys, a missing optional
package. Part of the `data.errors.UserError` family, so the CLI prints them as one line (exit 2)."""

from __future__ import annotations

from .data.errors import MissingExtraError, OptionError, require

__all__ = ["MissingExtraError", "UsageError", "require"]


class UsageError(OptionError):
    """The user asked for something that cannot be done as asked (an unknown step, an option a step does
    not take, a bad recipe key). The message says what and where."""
