"""``coreclean dashboard``: start the Streamlit app from wherever coreclean is installed, as ``streamlit run
dashboard.py`` does from a checkout, with the same settings (the app's ``.streamlit/config.toml``: localhost only).

The app is run by its own interpreter process (``python -m streamlit``): the compute layer never imports Streamlit.
"""
from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
import tomllib
from pathlib import Path

from ..config import CACHE_ENV

DEFAULT_PORT = 8501
READONLY_ENV = "CORECLEAN_READONLY"


def app_directory() -> Path:
    """The folder holding ``dashboard.py``, ``pages/`` and ``.streamlit/config.toml``: the checkout this coreclean
    was imported from (also an editable install), else the installed ``coreclean_dashboard`` package data."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "dashboard.py").is_file():
        return checkout
    spec = importlib.util.find_spec("coreclean_dashboard")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "dashboard.py").is_file():
            return Path(location)
    raise ValueError("the dashboard's files (dashboard.py, pages/) are not installed with this coreclean; "
                     "reinstall it from a wheel or checkout (pip install .).")


def config_flags(config_file: Path) -> list[str]:
    """The app's config file as ``--section.option=value`` flags: Streamlit reads ``.streamlit/config.toml`` from
    the working folder only, and the installed command runs from any folder."""
    if not config_file.is_file():
        return []
    flags = []
    for section, options in tomllib.loads(config_file.read_text(encoding="utf-8")).items():
        for option, value in options.items():
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{option}={shown}")
    return flags


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def streamlit_command(args, app: Path) -> tuple[list[str], dict[str, str]]:
    """The ``python -m streamlit run`` command line and the environment additions for ``args``."""
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: choose a port between 1 and 65535.")
    read_only = args.read_only or os.environ.get(READONLY_ENV, "") not in ("", "0", "false")  # as ui/state.py
    if not _is_loopback(args.address) and not read_only:
        raise ValueError(f"--address {args.address}: serving the dashboard to other machines is the read-only "
                         "hosting mode; add --read-only (README 'Share a dashboard').")
    env = {}
    if args.cache is not None:
        if not args.cache.is_dir():
            raise ValueError(f"--cache {args.cache}: no such folder; build into it first "
                             f"(coreclean build SOURCE --cache {args.cache}).")
        env[CACHE_ENV] = str(args.cache.resolve())
    if read_only:
        env[READONLY_ENV] = "1"
    chosen = [f"--server.port={args.port}", f"--server.address={args.address}"]
    settings = [flag for flag in config_flags(app / ".streamlit" / "config.toml")
                if flag.partition("=")[0] not in {c.partition("=")[0] for c in chosen}]
    command = [sys.executable, "-m", "streamlit", "run", str(app / "dashboard.py"), *settings, *chosen]
    return command, env


def run(args) -> int:
    command, env = streamlit_command(args, app_directory())
    print(f"coreclean dashboard: http://{args.address}:{args.port}" + (" (read-only)" if args.read_only else ""),
          flush=True)
    # Replace this process: Ctrl-C and a service manager's SIGTERM reach Streamlit directly.
    os.execve(command[0], command, {**os.environ, **env})
    return 0  # not reached


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``dashboard`` on the command's subparsers."""
    parser = sub.add_parser("dashboard", help="start the dashboard (Streamlit) on this machine")
    parser.add_argument("--cache", type=Path, default=None,
                        help=f"analyses to open (default: ${CACHE_ENV} or .coreclean-cache in this folder)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--address", default="localhost",
                        help="listen address (default localhost: this machine only); any other address needs "
                             "--read-only")
    parser.add_argument("--read-only", action="store_true",
                        help="hosting mode: only the analyses under the cache, nothing is built "
                             f"(${READONLY_ENV}=1)")
    parser.set_defaults(run=run)
