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


def test_a_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    """SIGKILL runs no ``finally``: the temporary file or folder of a killed write stays beside
    its output (a killed model export: model-sized). The next write of the same path removes
    it; other paths' temporaries and look-alike names stay."""
    import tempfile

    dest = tmp_path / "model"
    stale_dir = Path(tempfile.mkdtemp(prefix=".model.", dir=tmp_path))
    (stale_dir / "model.safetensors").write_bytes(b"x" * 1000)
    stale_file = Path(tempfile.mktemp(prefix=".model.", dir=tmp_path))
    stale_file.write_text("half")
    other = Path(tempfile.mkdtemp(prefix=".model2.", dir=tmp_path))  # another output's temporary
    lookalike = tmp_path / ".model.old-notes"  # not tempfile's 8 characters
    lookalike.write_text("keep")
    with atomic_path(dest, directory=True) as tmp:
        (tmp / "config.json").write_text("{}")
    assert not stale_dir.exists() and not stale_file.exists()
    assert other.exists() and lookalike.exists()
    assert sorted(p.name for p in dest.iterdir()) == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".model.old-notes", "model", other.name])
