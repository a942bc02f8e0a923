"""Google-Drive source: ``gdrive:FOLDER_URL`` downloads a shared folder in the seed notebook's layout.

Uses gdown (resumable downloads) into ``<cache>/gdrive/<hash of URL>/``, unpacks image tar archives safely (no
entry may escape the target directory; links and devices are refused), verifies the ``.npy`` files, and then
loads the folder like any embeddings directory. Offline it fails within seconds with a clear message.
"""
from __future__ import annotations

import hashlib
import socket
import tarfile
from pathlib import Path, PurePosixPath

from .files import inside
from .dataset import Dataset
from .embeddings_dir import REQUIRED, load_embeddings_dir, load_npy

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def check_online(host: str = "drive.google.com", port: int = 443, timeout: float = 5.0) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"gdrive: cannot reach {host} ({err}). You seem to be offline: download the folder on a "
                         "connected machine and pass its local directory instead.") from err


def safe_extract(archive: Path, target: Path) -> list[str]:
    """Extract a tar archive into ``target``; refuses the whole archive if any entry is unsafe."""
    target = target.resolve()
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as err:
        raise ValueError(f"{archive}: not a readable tar archive ({err}).") from err
    with tar:
        members = tar.getmembers()
        for member in members:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"{archive}: entry '{member.name}' would escape the target directory; refused.")
            if member.issym() or member.islnk():
                raise ValueError(f"{archive}: entry '{member.name}' is a link; links are refused.")
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"{archive}: entry '{member.name}' is not a regular file or directory; refused.")
            if not inside(target, target / member.name):
                raise ValueError(f"{archive}: entry '{member.name}' resolves outside the target directory.")
        tar.extractall(target, filter="data")
    return [m.name for m in members if m.isfile()]


def verify_layout(directory: Path) -> None:
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"{directory}: the Drive folder lacks {', '.join(missing)}; expected the seed layout "
                         f"({', '.join(REQUIRED)}).")
    for name in REQUIRED:
        load_npy(directory / name, mmap=True)  # raises a clear error for truncated or pickled files


def load_gdrive(url: str, cache_dir: Path, *, downloader=None) -> Dataset:
    """Download (resuming) and load ``url``. ``downloader(url, output_dir)`` defaults to gdown."""
    target = Path(cache_dir) / "gdrive" / hashlib.sha256(url.encode()).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    if downloader is None:
        check_online()
        import gdown

        def downloader(link: str, out: Path) -> None:
            if gdown.download_folder(link, output=str(out), quiet=False, resume=True) is None:
                raise ValueError(f"gdrive: could not list {link}; is the folder shared with 'anyone with the link'?")

    downloader(url, target)
    archives = sorted(p for p in target.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES))
    for archive in archives:
        marker = archive.with_name(f".{archive.name}.extracted")
        if not marker.exists():
            safe_extract(archive, target / "images")
            marker.touch()
    verify_layout(target)
    return load_embeddings_dir(target)
