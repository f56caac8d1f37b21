"""Instruction data in and out: one `Example` shape, many formats."""

from .errors import InputError, Reject
from .example import Example, Message
from .io import Dataset, read, write, write_rejects

__all__ = ["Dataset", "Example", "InputError", "Message", "Reject", "read", "write", "write_rejects"]
