"""The papers as recipes over scoring and selection."""

from ..data.errors import OptionError
from .alpagasus import ALPAGASUS
from .base import Method
from .cherry import CHERRY
from .lima import LIMA
from .ltd import LTD
from .superfiltering import SUPERFILTERING
from .superfiltering_d import SUPERFILTERING_D

METHODS: dict[str, Method] = {m.name: m for m in (CHERRY, SUPERFILTERING, ALPAGASUS, LIMA, LTD, SUPERFILTERING_D)}
ALIASES = {"ifd": "cherry"}


def get_method(name: str) -> Method:
    key = ALIASES.get(name, name)
    if key not in METHODS:
        raise OptionError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[key]


__all__ = ["METHODS", "Method", "get_method"]
