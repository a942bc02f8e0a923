"""Where analyses live. Read at call time, in this one place, so tests and operators can change it per process."""
from __future__ import annotations

import os
from pathlib import Path

VERSION = "0.1.0"  # the one place (pyproject.toml reads it; coreclean.__version__, coreclean --version)
CACHE_ENV = "CORECLEAN_CACHE"
DEFAULT_CACHE_NAME = ".coreclean-cache"


def cache_dir(override: str | Path | None = None) -> Path:
    """``override`` if given, else ``$CORECLEAN_CACHE``, else ``.coreclean-cache`` in the working directory."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_NAME)


def writable_cache_dir(override: str | Path | None = None) -> Path:
    """:func:`cache_dir`, created if needed; ``ValueError`` naming it when it cannot be created or written."""
    import tempfile

    directory = cache_dir(override)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as err:
        raise ValueError(f"cache {directory}: cannot create or write it ({err.strerror or err}); pass --cache DIR "
                         f"(or set {CACHE_ENV}) to a writable folder.") from err
    return directory


CLUSTER_ENV = "CORECLEAN_CLUSTER"


def cluster_address(override: str | None = None) -> str | None:
    """Where builds run: ``override`` if given, else ``$CORECLEAN_CLUSTER``; None (or empty): in this process.
    Parsed by :func:`coreclean.build.cluster.parse_cluster` (``local:N`` or ``tcp://HOST:PORT``)."""
    value = override if override is not None else os.environ.get(CLUSTER_ENV, "")
    return value.strip() or None


WEIGHTS_ENV = "CORECLEAN_WEIGHTS"


def weights_setting(override: str | None = None) -> str | None:
    """The one weights policy for ResNet builds (CLI and dashboard): ``override`` if given, else
    ``$CORECLEAN_WEIGHTS`` (an operator's state_dict file for offline use), else ``"imagenet"`` (torchvision's enum,
    downloaded once on an online machine); ``"none"`` means random init (tests)."""
    value = (override if override is not None else os.environ.get(WEIGHTS_ENV, "")).strip() or "imagenet"
    return None if value.lower() == "none" else value
