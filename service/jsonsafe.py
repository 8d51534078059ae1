"""One cleaner for writing results as strict JSON, which has no NaN or infinity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """NaN and infinities become null, tuples lists, paths strings and keys strings; recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
