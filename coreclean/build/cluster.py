"""Where a build runs: in this process (default), on a ``LocalCluster`` of N worker processes (``local:N``), or on
an existing Dask scheduler (``tcp://HOST:PORT``: Kubernetes, SLURM/PBS via dask-jobqueue, Coiled, ...).

``python -m coreclean build SOURCE --cluster SPEC`` or ``CORECLEAN_CLUSTER=SPEC`` (read by
:func:`coreclean.config.cluster_address`) choose it; docs/scale-out.md says how to run a real cluster.
"""
from __future__ import annotations

import asyncio
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

from ..config import CLUSTER_ENV

MAX_LOCAL_WORKERS = 512
CONNECT_TIMEOUT_S = 30
_TCP = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed cluster spec: ``workers`` for a LocalCluster, or the ``address`` of a running scheduler."""

    spec: str
    workers: int | None = None
    address: str | None = None


def parse_cluster(spec: str) -> ClusterSpec:
    """``local:N`` (1 <= N <= 512) or ``tcp://HOST:PORT`` / ``tls://HOST:PORT``; ValueError saying what fits."""
    text = spec.strip()
    hint = (f"use local:N (N worker processes on this machine, e.g. local:4) or tcp://HOST:PORT (a running Dask "
            f"scheduler), via --cluster or {CLUSTER_ENV}.")
    if text.startswith("local:"):
        count = text.partition(":")[2]
        if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= MAX_LOCAL_WORKERS:
            raise ValueError(f"cluster {spec!r}: the worker count must be an integer from 1 to "
                             f"{MAX_LOCAL_WORKERS}; {hint}")
        return ClusterSpec(text, workers=int(count))
    match = _TCP.match(text)
    if match is None:
        raise ValueError(f"cluster {spec!r}: not a cluster spec; {hint}")
    if not 1 <= int(match.group(3)) <= 65535:
        raise ValueError(f"cluster {spec!r}: port {match.group(3)} is out of range 1-65535; {hint}")
    return ClusterSpec(text, address=text)


_START_HINT = "start one (dask scheduler / dask-jobqueue / Kubernetes, see docs/scale-out.md) or use local:N."


async def _identity(address: str, timeout: float):
    """The reply of whatever listens at ``address`` to Dask's comm handshake and an ``identity`` request."""
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def check_scheduler(spec: ClusterSpec, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """``ValueError`` (one line, within ``timeout`` seconds) unless a Dask scheduler answers at ``spec.address``.

    Whatever else may listen on the port is told apart by the handshake: a server that speaks first (an SSH or
    mail banner) sends bytes Dask would read as a frame length (an exabyte allocation), a silent one (HTTP) never
    answers; both become this one error instead of a traceback or a hang."""
    try:
        reply = asyncio.run(asyncio.wait_for(_identity(spec.address, timeout), timeout))
    except (asyncio.TimeoutError, TimeoutError) as err:
        raise ValueError(f"cluster {spec.spec}: nothing answered as a Dask scheduler within {timeout:g} s; is "
                         f"something else listening on that port? {_START_HINT}") from err
    except OSError as err:
        raise ValueError(f"cluster {spec.spec}: cannot connect ({err}); {_START_HINT}") from err
    except Exception as err:  # MemoryError too: garbage read as Dask frames: any error here means "not Dask"
        raise ValueError(f"cluster {spec.spec}: something answered that is not a Dask scheduler "
                         f"({type(err).__name__}); check the host and port. {_START_HINT}") from err
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise ValueError(f"cluster {spec.spec}: a Dask {kind!s:.40} answered, not a scheduler; give the "
                         f"scheduler's address. {_START_HINT}")


@contextmanager
def open_cluster(spec: ClusterSpec):
    """A ``distributed.Client`` for ``spec`` for the length of the block; a LocalCluster it started is closed after.

    LocalCluster workers are processes with one thread each (torch and numpy run their own threads; separate
    processes keep the GIL out of the way), without the diagnostics dashboard.
    """
    from distributed import Client, LocalCluster

    if spec.workers is not None:
        with LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as local, Client(local) as client:
            yield client
        return
    started = time.monotonic()
    check_scheduler(spec, CONNECT_TIMEOUT_S)
    left = max(CONNECT_TIMEOUT_S - (time.monotonic() - started), 5)
    try:
        client = Client(spec.address, timeout=left)
    except (OSError, TimeoutError) as err:
        raise ValueError(f"cluster {spec.spec}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s ({err}); "
                         f"{_START_HINT}") from err
    with client:
        yield client
