"""Atomic outputs: write to a temporary sibling, then rename, so a killed job never leaves
a file (or folder) that looks finished. Folders are swapped in with no window (``swap_in``):
the one folder swap of the package (exported models, built models, the hub mirror)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

RENAME_EXCHANGE = 2  # linux/fs.h


def fsync_tree(path: str | Path) -> None:
    """fsync every file under ``path`` (or the file itself), then the folders that name them."""
    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for d in {f.parent for f in files} | ({path} if path.is_dir() else set()) | {path.parent}:
        _fsync_dir(d)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` and fsync it (a marker that must not outlive a crash half-written)."""
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    AT_FDCWD = -100
    return libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def swap_in(new: str | Path, path: str | Path, sync: bool = True) -> None:
    """Put folder ``new`` at ``path`` with no moment where ``path`` is missing or partial:
    ``new`` is fsynced (``sync``), then swapped with the old folder in one step (Linux
    renameat2 with RENAME_EXCHANGE), the parent fsynced, and the old folder, now at ``new``,
    removed. Without an old folder, or where the file system cannot exchange, a plain rename
    (with an old folder: renamed away first, the shortest window a rename pair allows)."""
    new, path = Path(new), Path(path)
    if sync:
        fsync_tree(new)
    exchanged = path.exists() and _exchange(new, path)
    if not exchanged:
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            new.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            new.rename(path)
    if sync:
        _fsync_dir(path.parent)
    if exchanged:
        shutil.rmtree(new, ignore_errors=True)  # the old folder, swapped out


def remove_stale_temporaries(folder: str | Path, stem: str) -> list[Path]:
    """Remove what a hard-killed writer left in ``folder``: entries named ``stem`` plus the 8
    characters ``tempfile`` adds (a SIGKILL or a lost node runs no ``finally``; a model export
    left behind can be the size of the model). Only one writer per path may exist (Snakemake
    runs one job per output), so any such entry found before writing is stale."""
    pattern = re.compile(re.escape(stem) + r"[a-z0-9_]{8}")
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for entry in folder.iterdir():
            if pattern.fullmatch(entry.name):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() \
                    else entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, directory: bool = False, prefix: str = "", sync: bool = True,
                sole_writer: bool = True):
    """Yield a temporary path next to ``path`` (named ``.<name>.<prefix>...``); on success move
    it into place: a file by rename, a folder by ``swap_in`` (fsynced when ``sync``). With
    ``sole_writer`` (one job owns ``path``), temporaries of ``path`` left by a killed earlier
    writer are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = f".{path.name}.{prefix}"
    if sole_writer:
        remove_stale_temporaries(path.parent, stem)
    tmp = Path(tempfile.mkdtemp(prefix=stem, dir=path.parent)) if directory else \
        Path(tempfile.mktemp(prefix=stem, dir=path.parent))
    try:
        yield tmp
        if directory:
            swap_in(tmp, path, sync=sync)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path, records) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
            n += 1
    return n


def read_jsonl(path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_table(path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
