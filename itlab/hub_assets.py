"""Harness assets of the hub mirror (rule fetch_asset): lm-eval's ``code_eval`` metric script
and nltk's ``punkt_tab``, fetched or built as stand-ins. Apart from itlab.hub because it needs
``evaluate`` and ``nltk`` (the eval env), which the other envs that read mirror paths lack."""

from __future__ import annotations

from pathlib import Path

from itlab.hub import ASSETS, FIXTURES, HubError, _atomic_dir, _hub_error, _token, _write_manifest
from itlab.mirror import _publish, _reusable
from itlab.standin import STANDIN_TEXT, standin_version


def _fetch_code_eval(tmp: Path, revision: str, key: str) -> dict:
    from evaluate.loading import evaluation_module_factory, init_dynamic_modules
    from huggingface_hub import HfApi

    try:
        info = HfApi().space_info(ASSETS["code_eval"], revision=revision, token=_token())
        dyn = init_dynamic_modules(hf_modules_cache=str(tmp / "modules"))
        evaluation_module_factory("code_eval", module_type="metric", revision=info.sha, dynamic_modules_path=dyn)
    except Exception as err:  # noqa: BLE001
        raise _hub_error(key, f"metric {ASSETS['code_eval']}@{revision}", err) from None
    return {"commit": info.sha}


def _fetch_punkt_tab(tmp: Path, key: str) -> dict:
    import nltk

    try:
        pkg = nltk.downloader.Downloader().info("punkt_tab")
        if not nltk.download("punkt_tab", download_dir=str(tmp / "nltk_data"), quiet=True, raise_on_error=True):
            raise OSError("nltk.download returned False")
    except Exception as err:  # noqa: BLE001
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubError(key, f"fetching nltk data punkt_tab failed (no network?): {first}") from None
    return {"commit": f"md5:{pkg.checksum}"}


def _install_metric_script(script: Path, tmp: Path, hub_name: str) -> None:
    """Install a metric script into an HF modules cache the way evaluate installs one fetched
    from the hub, so that ``evaluate.load(<name>)`` finds it offline."""
    from evaluate.loading import _create_importable_file, init_dynamic_modules

    dyn = init_dynamic_modules(hf_modules_cache=str(tmp / "modules"))
    _create_importable_file(local_path=str(script), local_imports=[], additional_files=[],
                            dynamic_modules_path=dyn, module_namespace="metrics", name=hub_name,
                            download_mode=None)


def _standin_punkt_tab(tmp: Path, seed: int) -> None:
    """A Punkt sentence model trained by nltk's own PunktTrainer on generated sentences and
    written in the punkt_tab format (tokenizers/punkt_tab/english)."""
    import random

    from nltk.tabdata import TabEncoder
    from nltk.tokenize.punkt import PunktTrainer

    rng = random.Random(seed)
    words = [w for w in STANDIN_TEXT if w.isalpha()]
    text = " ".join(" ".join([rng.choice(words).capitalize()] + [rng.choice(words) for _ in range(rng.randint(3, 12))])
                    + rng.choice([".", ".", "?", "!"]) for _ in range(2000))
    trainer = PunktTrainer()
    trainer.train(text, finalize=True)
    params = trainer.get_params()
    out = tmp / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    out.mkdir(parents=True)
    enc = TabEncoder()
    (out / "collocations.tab").write_text(enc.tups2tab(params.collocations), newline="")
    (out / "sent_starters.txt").write_text(enc.set2txt(params.sent_starters), newline="")
    (out / "abbrev_types.txt").write_text(enc.set2txt(params.abbrev_types), newline="")
    (out / "ortho_context.tab").write_text(enc.ivdict2tab(params.ortho_context), newline="")


def ensure_asset(entry: dict, dest: str | Path, standin: bool, seed: int = 0) -> dict:
    """Rule fetch_asset: one harness asset into the mirror, real (fetched from the hub / the
    nltk index) or a stand-in (itlab's code_eval script, a Punkt model trained here); reused
    when a complete fetch of the same kind is already there."""
    import shutil

    dest = Path(dest)
    name = entry["name"]
    if name not in ASSETS:
        raise HubError(entry["key"], f"unknown harness asset {name!r} (known: {', '.join(ASSETS)})")
    rec = _reusable(dest, entry["id"], entry["revision"], standin, ("asset", name, seed))
    if rec is None:
        with _atomic_dir(dest) as tmp:
            if standin:
                if name == "code_eval":
                    _install_metric_script(FIXTURES / "assets" / "code_eval.py", tmp, ASSETS[name])
                else:
                    _standin_punkt_tab(tmp, seed)
                info = {"revision": "standin", "commit": standin_version("asset", name, seed)}
            else:
                info = {"revision": entry["revision"], **(_fetch_code_eval(tmp, entry["revision"], entry["key"])
                                                          if name == "code_eval" else _fetch_punkt_tab(tmp, entry["key"]))}
            for junk in [*tmp.rglob("__pycache__"), *tmp.rglob("*.lock")]:  # the fetch process's, not content
                shutil.rmtree(junk, ignore_errors=True) if junk.is_dir() else junk.unlink()
            rec = _write_manifest(tmp, {"id": entry["id"], "kind": "asset", "name": name, "standin": standin, **info})
        rec["fetched_now"] = True
    return _publish(dest, rec)
