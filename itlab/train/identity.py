"""What a training run's fingerprint hashes instead of file paths: the content of its data
files and the resolved revision of its starting model. Moving a results folder keeps every
run complete; changing a training file's content or the model's weights retrains."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MIRROR_MANIFEST = "MANIFEST.json"  # a hub mirror entry (itlab.hub): id, commit, content_sha256
_CHUNK = 1 << 20


def _update_with_file(h, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)


def content_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, sorted;
    hidden files and folders such as .cache left out). "" for no path."""
    if not path:
        return ""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            rel = f.relative_to(p)
            if any(part.startswith(".") for part in rel.parts):
                continue
            h.update(f"{rel.as_posix()}\0{f.stat().st_size}\0".encode())
            _update_with_file(h, f)
    else:
        _update_with_file(h, p)
    return h.hexdigest()


def model_revision(location: str) -> str:
    """The resolved revision of a model: a hub mirror entry's commit and content hash, the
    content hash of any other local folder, or the commit a hub id resolves to (the local
    cache's snapshot, else the hub's answer). Never the path or a moving branch name."""
    if not location:
        return ""
    p = Path(location)
    if p.is_dir():
        manifest = p / MIRROR_MANIFEST
        if manifest.is_file():
            m = json.loads(manifest.read_text())
            if m.get("content_sha256"):
                return f"{m.get('id')}@{m.get('commit')}:{m['content_sha256']}"
        return f"sha256:{content_digest(p)}"
    from huggingface_hub import snapshot_download

    try:  # the commit a cached download resolved to (offline compute nodes)
        return f"{location}@{Path(snapshot_download(location, local_files_only=True)).name}"
    except Exception:  # noqa: BLE001 - not cached: ask the hub
        pass
    try:
        from huggingface_hub import HfApi

        return f"{location}@{HfApi().model_info(location).sha}"
    except Exception as err:  # noqa: BLE001
        raise RuntimeError(f"cannot resolve the revision of model {location!r} (not a folder, not in the hub "
                           f"cache, hub unreachable: {err}); mirror it first") from err
