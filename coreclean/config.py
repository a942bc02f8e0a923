"""Where analyses live. Read at call time, in this one place, so tests and operators can change it per process."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CORECLEAN_CACHE"
DEFAULT_CACHE_NAME = ".coreclean-cache"


def cache_dir(override: str | Path | None = None) -> Path:
    """``override`` if given, else ``$CORECLEAN_CACHE``, else ``.coreclean-cache`` in the working directory."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_NAME)
