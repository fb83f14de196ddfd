"""Filling the hub mirror (rules ``fetch_model`` and ``fetch_dataset``): one entry is downloaded
(``itlab.hub``) or built as a stand-in (``itlab.standin``), reused when a complete fetch of the
same revision (or stand-in version) is already there, checked, and published by writing its
manifest."""

from __future__ import annotations

import json
from pathlib import Path

from itlab.hub import FETCHED, MANIFEST, HubError, check_task, fetch_dataset, fetch_model, manifest_features
from itlab.standin import dataset_fixture, standin_dataset, standin_model, standin_version


def _reusable(dest: Path, hub_id: str, revision: str, standin: bool, version_args=()) -> dict | None:
    """The record of a complete earlier fetch of the same id, revision and kind, if any."""
    path = dest / FETCHED
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    if rec.get("id") != hub_id or bool(rec.get("standin")) != standin:
        return None
    if standin:  # the same fixture and generator
        return rec if rec.get("commit") == standin_version(*version_args) else None
    return rec if rec.get("revision") == revision else None


def _publish(dest: Path, rec: dict) -> dict:
    from itlab.io import write_json

    write_json(dest / MANIFEST, rec)
    return rec


def ensure_model(entry: dict, dest: str | Path, standin: bool, seed: int = 0) -> dict:
    """Rule fetch_model: the mirror entry of one hub model (downloaded or a stand-in), reused
    when a complete fetch of the same revision is already there."""
    dest = Path(dest)
    rec = _reusable(dest, entry["id"], entry["revision"], standin, ("model", entry["id"], seed))
    if rec is None:
        rec = standin_model(entry["id"], dest, entry["key"], seed) if standin else \
            fetch_model(entry["id"], entry["revision"], dest, entry["key"])
        rec["fetched_now"] = True
    return _publish(dest, rec)


def ensure_dataset(entry: dict, dest: str | Path, standin: bool, rows: int = 40, seed: int = 0) -> dict:
    """Rule fetch_dataset: the mirror entry of one data set, then every task that reads it is
    checked against its schema (splits, template columns, choices vs label names). A failed
    check keeps the fetched data: after fixing the config nothing is downloaded again."""
    dest = Path(dest)
    rec = _reusable(dest, entry["id"], entry["revision"], standin,
                    ("dataset", entry["id"], entry["subset"], rows, seed))
    if rec is None:
        if standin:
            rec = standin_dataset(entry["id"], entry["subset"], dest, rows, entry["key"], seed)
        else:
            manual = dataset_fixture(entry["id"]).get("manual_download")
            if manual and not entry.get("data_dir"):
                raise HubError(entry["key"].rsplit(".", 1)[0] + ".data_dir",
                               f"{entry['id']} needs a manual download: {manual}")
            rec = fetch_dataset(entry["id"], entry["subset"], entry["revision"], dest, entry["key"],
                                data_dir=entry.get("data_dir"))
        rec["fetched_now"] = True
    splits = manifest_features(rec)
    for task, spec in sorted(entry["tasks"].items()):
        check_task(task, spec, splits)
    return _publish(dest, rec)
