"""itlab.io: atomic files and the one folder swap (used by model export, atomic_path folders
and the hub mirror)."""

from pathlib import Path

import pytest

from itlab.io import atomic_path


def test_atomic_folder_replaces_the_old_one_in_one_exchange(tmp_path, monkeypatch):
    """A folder written with atomic_path replaces the old one by swap_in (renameat2 exchange:
    no rename of the old folder away first), and a failure leaves the old folder as it was."""
    dest = tmp_path / "entry"
    dest.mkdir()
    (dest / "f").write_text("old")
    renames = []
    real_rename = Path.rename
    monkeypatch.setattr(Path, "rename", lambda self, target: renames.append(self) or real_rename(self, target))
    with atomic_path(dest, directory=True) as tmp:
        (tmp / "f").write_text("new")
    assert (dest / "f").read_text() == "new" and renames == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]  # the old folder is gone
    with pytest.raises(RuntimeError), atomic_path(dest, directory=True) as tmp:
        (tmp / "f").write_text("half")
        raise RuntimeError("killed")
    assert (dest / "f").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_hub_mirror_entries_use_the_same_swap(tmp_path, monkeypatch):
    from itlab import hub

    calls = []
    import itlab.io

    real = itlab.io.swap_in
    monkeypatch.setattr(itlab.io, "swap_in", lambda new, path, sync=True: calls.append(Path(path)) or real(new, path, sync))
    with hub._atomic_dir(tmp_path / "models" / "m") as tmp:
        (tmp / "MANIFEST.json").write_text("{}")
    assert calls == [tmp_path / "models" / "m"] and (tmp_path / "models/m/MANIFEST.json").exists()
