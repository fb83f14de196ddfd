"""The hub mirror: every hub model and data set a grid needs, fetched once into one folder
(``mirror.dir``) where snakemake runs, and read from there, offline, by every compute job.

Layout (``<key>`` is the hub id with ``/`` -> ``--``, plus ``--<subset>`` for data sets)::

    <mirror>/models/<key>/       snapshot_download of the model (config, tokenizer, safetensors)
    <mirror>/models/<key>/MANIFEST.json
    <mirror>/datasets/<key>/     DatasetDict.save_to_disk of the data set (one folder per split)
    <mirror>/datasets/<key>/MANIFEST.json
    <mirror>/assets/<name>/      what lm-eval harness tasks load at run time (code_eval, punkt_tab)

A manifest records the requested and resolved revision, whether the entry is a stand-in,
and the SHA-256 of every file plus one content hash over them; tuning and evaluation copy it
into their provenance and the training fingerprint. Each entry is built in a temporary
sibling folder and renamed into place: a failed or killed fetch never leaves (or replaces)
an entry, so nothing fetched before is lost.

Stand-in mode (``mirror.standin: true``) fills the same layout without a network
(``itlab.standin``); ``itlab.mirror`` is what the fetch rules run (download or stand-in,
reuse, check, publish). This module needs no torch: every job that reads mirror paths imports it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import string
from pathlib import Path

import yaml

from itlab.errors import HubError  # noqa: F401 - raised here, caught by every job

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = "MANIFEST.json"  # written once the entry is fetched and checked (the rules' output)
FETCHED = "FETCHED.json"  # written with the data: a complete fetch, reused without downloading
# Only what from_pretrained needs: safetensors weights, configs, tokenizer files. Never
# pickled weights (*.bin, *.pth) and never remote code unless trust_remote_code is set.
MODEL_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.txt"]


# ---- names and paths ----------------------------------------------------------------------
def entry_key(hub_id: str, subset: str | None = None) -> str:
    key = hub_id.replace("/", "--")
    return f"{key}--{subset}" if subset else key


def model_path(mirror: str, hub_id: str) -> str:
    return f"{mirror}/models/{entry_key(hub_id)}"


def dataset_path(mirror: str, hub_id: str, subset: str | None = None) -> str:
    return f"{mirror}/datasets/{entry_key(hub_id, subset)}"


def offline() -> None:
    """Compute jobs read the mirror only: any attempt to reach the hub fails at once."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _token():
    return os.environ.get("HF_TOKEN") or None  # gated models: from the environment only


# ---- manifests ----------------------------------------------------------------------------
def file_hashes(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in (MANIFEST, FETCHED) and ".cache" not in p.parts:
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[str(p.relative_to(folder))] = h.hexdigest()
    return out


def _write_manifest(folder: Path, info: dict) -> dict:
    files = file_hashes(folder)
    content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    manifest = {**info, "files": files, "content_sha256": content}
    (folder / FETCHED).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: str | Path, standin: bool | None = None) -> dict:
    """The manifest of a mirror entry; with ``standin``, refuse an entry of the other kind
    (a stand-in must never be read as the real model, nor the reverse)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise HubError(str(folder), "not in the mirror (run the fetch rules first: snakemake fetch_all)")
    manifest = json.loads(path.read_text())
    if standin is not None and bool(manifest.get("standin")) != standin:
        kind = "a stand-in" if manifest.get("standin") else "a real download"
        raise HubError("mirror.standin", f"{folder} holds {kind}; use another mirror.dir for this mode")
    return manifest


def provenance(manifest: dict) -> dict:
    """What of a manifest enters a run's provenance and fingerprint."""
    return {k: manifest.get(k) for k in ("id", "subset", "revision", "commit", "standin", "content_sha256")}


def _atomic_dir(dest: Path):
    """A mirror entry is built in a sibling folder and swapped in whole (itlab.io.swap_in).
    Not a sole writer: two workflows sharing the mirror may fetch the same entry at once."""
    from itlab.io import atomic_path

    return atomic_path(dest, directory=True, prefix="partial.", sole_writer=False)


def _hub_error(key: str, what: str, err: Exception) -> HubError:
    from huggingface_hub import errors

    name = type(err).__name__
    if isinstance(err, errors.GatedRepoError):
        hint = "is gated: accept its licence on the hub and export HF_TOKEN" if not _token() else \
            "is gated and HF_TOKEN has no access to it"
        return HubError(key, f"{what} {hint}")
    if isinstance(err, errors.RevisionNotFoundError):
        return HubError(key, f"revision of {what} does not exist on the hub")
    if isinstance(err, errors.RepositoryNotFoundError):
        return HubError(key, f"{what} does not exist on the hub (or is private: export HF_TOKEN)")
    if isinstance(err, errors.LocalEntryNotFoundError) or "offline" in str(err).lower():
        return HubError(key, f"{what} cannot be fetched: no network (HF_HUB_OFFLINE is set or the hub is unreachable)")
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return HubError(key, f"fetching {what} failed: {name}: {first}")


# ---- real fetches ---------------------------------------------------------------------------
def fetch_model(hub_id: str, revision: str, dest: str | Path, key: str = "model") -> dict:
    """snapshot_download one model revision into ``dest`` (safetensors and configs only)."""
    from huggingface_hub import HfApi, snapshot_download

    dest = Path(dest)
    try:
        info = HfApi().model_info(hub_id, revision=revision, token=_token())
        with _atomic_dir(dest) as tmp:
            snapshot_download(hub_id, revision=info.sha, local_dir=tmp, allow_patterns=MODEL_PATTERNS,
                              token=_token())
            if not any(tmp.glob("*.safetensors")):
                raise HubError(key, f"{hub_id}@{revision} has no safetensors weights (pickled weights are not loaded)")
            return _write_manifest(tmp, {"id": hub_id, "revision": revision, "commit": info.sha,
                                         "kind": "model", "standin": False})
    except HubError:
        raise
    except Exception as err:  # noqa: BLE001 - translated into one line naming the key
        raise _hub_error(key, f"model {hub_id}@{revision}", err) from None


def fetch_dataset(hub_id: str, subset: str | None, revision: str, dest: str | Path, key: str = "dataset",
                  data_dir: str | None = None) -> dict:
    """load_dataset one data set (all splits) and save_to_disk into ``dest``."""
    from datasets import load_dataset
    from huggingface_hub import HfApi

    dest = Path(dest)
    try:
        info = HfApi().dataset_info(hub_id, revision=revision, token=_token())
        ds = load_dataset(hub_id, subset, revision=info.sha, token=_token(), data_dir=data_dir)
    except Exception as err:  # noqa: BLE001
        raise _hub_error(key, f"data set {hub_id}" + (f" ({subset})" if subset else "") + f"@{revision}", err) from None
    with _atomic_dir(dest) as tmp:
        ds.save_to_disk(str(tmp))
        return _write_manifest(tmp, {"id": hub_id, "subset": subset, "revision": revision, "commit": info.sha,
                                     "kind": "dataset", "standin": False, "splits": _splits_info(ds)})


def _splits_info(ds) -> dict:
    return {s: {"num_rows": d.num_rows, "features": d.features.to_dict()} for s, d in ds.items()}


def load_split(folder: str | Path, split: str, key: str):
    """One split of a mirrored data set (offline)."""
    from datasets import load_from_disk

    ds = load_from_disk(str(folder))
    if split not in ds:
        raise HubError(key, f"split {split!r} is not in {read_manifest(folder).get('id')} (has: {', '.join(ds)})")
    return ds[split]


# ---- templates against schemas -----------------------------------------------------------------
def template_fields(template: str) -> list[tuple[str, list[str]]]:
    """(column, [keys...]) of each replacement field of a format string: '{a[b][0]}' -> ('a', ['b', '0'])."""
    out = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        head, rest = field.split("[", 1) if "[" in field else (field, "")
        keys = [k.rstrip("]") for k in rest.split("[")] if rest else []
        out.append((head.split(".")[0], keys))
    return out


def _resolve(feature, keys):
    """The feature reached by indexing with ``keys`` (a list index or a dict key), or None."""
    for k in keys:
        if isinstance(feature, dict):
            if k not in feature:
                return None
            feature = feature[k]
        elif isinstance(feature, list) or type(feature).__name__ in ("List", "Sequence", "LargeList"):
            if not k.isdigit():
                return None
            feature = feature[0] if isinstance(feature, list) else feature.feature
        else:
            return None
    return feature


def check_task(task: str, spec: dict, splits: dict, key_prefix: str = "data.hub_tasks") -> None:
    """Raise HubError (naming the task and the column) when a task's splits, templates or
    choices do not fit the data set's schema. ``splits``: split -> datasets.Features."""
    from datasets import ClassLabel, Value

    key = f"{key_prefix}.{task}"
    needed = [("train_split", spec["train_split"])]
    if not spec.get("test_from_train"):
        needed.append(("test_split", spec["test_split"]))
    for k, split in needed:
        if split not in splits:
            raise HubError(f"{key}.{k}", f"split {split!r} is not in {spec['dataset']} (has: {', '.join(splits)}); "
                                         "set test_from_train to carve a test split from the training split")
    features = splits[spec["train_split"]]
    columns = dict(features)
    if spec.get("choices"):
        columns["label_text"] = Value("string")
        label = spec.get("label_field", "label")
        if label not in features:
            raise HubError(f"{key}.label_field", f"task {task}: column {label!r} is not in {spec['dataset']} "
                                                 f"(columns: {', '.join(features)})")
        lf = features[label]
        if isinstance(lf, ClassLabel) and lf.num_classes != len(spec["choices"]):
            raise HubError(f"{key}.choices", f"task {task}: {len(spec['choices'])} choices {spec['choices']} but column "
                                             f"{label!r} has {lf.num_classes} labels {lf.names}")
        if isinstance(lf, Value) and lf.dtype == "bool" and len(spec["choices"]) != 2:
            raise HubError(f"{key}.choices", f"task {task}: column {label!r} is a bool but {len(spec['choices'])} "
                                             f"choices are given {spec['choices']}")
        if not isinstance(lf, ClassLabel) and not (isinstance(lf, Value) and ("int" in lf.dtype or lf.dtype == "bool")):
            raise HubError(f"{key}.choices", f"task {task}: column {label!r} is not a class label or integer")
    if spec.get("options_field"):  # rendered as the lettered {options} (itlab.templates.render_row)
        if spec["options_field"] not in features:
            raise HubError(f"{key}.options_field", f"task {task}: column {spec['options_field']!r} is not in "
                                                   f"{spec['dataset']} (columns: {', '.join(features)})")
        columns["options"] = Value("string")
    for tkey in ("input_template", "target_template"):
        for column, keys in template_fields(spec[tkey]):
            if column not in columns:
                raise HubError(f"{key}.{tkey}", f"task {task}: column {column!r} is not in {spec['dataset']} "
                                                f"(columns: {', '.join(features)})")
            if keys and _resolve(columns[column], keys) is None:
                raise HubError(f"{key}.{tkey}", f"task {task}: field {column}[{']['.join(keys)}] does not exist in "
                                                f"{spec['dataset']}")


def manifest_features(manifest: dict) -> dict:
    from datasets import Features

    return {s: Features.from_dict(v["features"]) for s, v in manifest.get("splits", {}).items()}


# ---- what a config needs from the hub ----------------------------------------------------------
@functools.lru_cache(maxsize=1)
def harness_table() -> dict:
    """lm-eval task -> the hub data set it reads (checked against lm-eval's own task configs).
    Read once per process (the DAG asks once per evaluation job); callers must not modify it."""
    return yaml.safe_load((FIXTURES / "harness.yaml").read_text())["tasks"]


def model_entry(cfg: dict, hub_id: str, key: str, revision: str | None = None) -> dict:
    """A mirror entry of a hub model: its pinned revision (the one given, else
    ``mirror.revisions``, else main) and the config key that names it (for error messages)."""
    return {"id": hub_id, "revision": revision or cfg["mirror"]["revisions"].get(hub_id, "main"), "key": key}


def dataset_entry(cfg: dict, hub_id: str, subset: str | None, key: str, data_dir: str | None = None) -> dict:
    """A mirror entry of a hub data set (one subset), its pinned revision and the config key that names it;
    ``tasks`` collects the itlab tasks read from it (their templates are checked against its schema)."""
    return {"id": hub_id, "subset": subset, "key": key, "tasks": {},
            "revision": cfg["mirror"]["revisions"].get(hub_id, "main"), "data_dir": data_dir}


def mirror_models(cfg: dict) -> dict[str, dict]:
    """entry key -> {id, revision, key (config key naming it)} of every hub base model used."""
    out = {}
    # study D's hub pairs (base and tuned) first: their pinned revisions are the ones fetched
    for name, pair in sorted(cfg.get("studies", {}).get("behavior_shift", {}).get("pairs", {}).items()):
        for side in ("base", "tuned"):
            hid = pair[side]["hub"]
            out.setdefault(entry_key(hid), model_entry(cfg, hid, f"studies.behavior_shift.pairs.{name}.{side}",
                                                       pair[side].get("revision")))
    for fam, sizes in cfg["base_models"].items():
        hub = cfg["families"][fam].get("hub", {})
        for size in sizes:
            if size in hub:
                out.setdefault(entry_key(hub[size]), model_entry(cfg, hub[size], f"families.{fam}.hub.{size}"))
    return out


def mirror_datasets(cfg: dict) -> dict[str, dict]:
    """entry key -> {id, subset, revision, key, tasks, data_dir} of every hub data set used,
    including the data sets of lm-eval harness tasks."""
    out: dict[str, dict] = {}
    harness = harness_table()
    for name, spec in sorted(cfg["data"]["hub_tasks"].items()):
        if "dataset" in spec:
            hid, subset, tkey = spec["dataset"], spec.get("subset"), f"data.hub_tasks.{name}.dataset"
        elif spec.get("lm_eval_task") in harness:
            h = harness[spec["lm_eval_task"]]
            hid, subset, tkey = h["dataset"], h.get("subset"), f"data.hub_tasks.{name}.lm_eval_task"
        else:
            continue
        e = out.setdefault(entry_key(hid, subset), dataset_entry(cfg, hid, subset, tkey, spec.get("data_dir")))
        if "dataset" in spec:
            e["tasks"][name] = spec
        if spec.get("lm_eval_task") in harness and "dataset" in spec:  # also the harness task's data
            h = harness[spec["lm_eval_task"]]
            out.setdefault(entry_key(h["dataset"], h.get("subset")),
                           dataset_entry(cfg, h["dataset"], h.get("subset"), f"data.hub_tasks.{name}.lm_eval_task"))
    return out


def task_dataset_dir(cfg: dict, task: str) -> str:
    spec = cfg["data"]["hub_tasks"][task]
    return dataset_path(cfg["mirror"]["dir"], spec["dataset"], spec.get("subset"))


def harness_dataset_dir(cfg: dict, lm_eval_task: str) -> str | None:
    h = harness_table().get(lm_eval_task)
    return dataset_path(cfg["mirror"]["dir"], h["dataset"], h.get("subset")) if h else None


# ---- harness assets: what lm-eval tasks load at run time besides their data set --------------
# name -> where the real one comes from. lm-eval 0.4.13 builds humaneval(_plus)/mbpp with
# ``evaluate.load("code_eval")`` (a script fetched from the hub into HF_MODULES_CACHE) and
# ifeval's checkers with nltk's ``punkt_tab`` (nltk.download into NLTK_DATA): both would
# reach the network on an offline compute node. Layout:
#   <mirror>/assets/code_eval/modules/evaluate_modules/metrics/evaluate-metric--code_eval/<sha256>/code_eval.py
#   <mirror>/assets/punkt_tab/nltk_data/tokenizers/punkt_tab/english/{collocations.tab, ...}
ASSETS = {"code_eval": "evaluate-metric/code_eval", "punkt_tab": "nltk_data/punkt_tab"}


def harness_assets(lm_eval_task: str | None) -> list[str]:
    return list(harness_table().get(lm_eval_task, {}).get("assets", [])) if lm_eval_task else []


def asset_path(mirror: str, name: str) -> str:
    return f"{mirror}/assets/{name}"


def mirror_assets(cfg: dict) -> dict[str, dict]:
    """asset name -> {id, revision, key} of every asset an lm-eval harness task of the config loads."""
    out: dict[str, dict] = {}
    for name, spec in sorted(cfg["data"]["hub_tasks"].items()):
        for a in harness_assets(spec.get("lm_eval_task")):
            out.setdefault(a, {**model_entry(cfg, ASSETS[a], f"data.hub_tasks.{name}.lm_eval_task"), "name": a})
    return out


def harness_asset_dirs(cfg: dict, lm_eval_tasks) -> dict[str, str]:
    """asset name -> its mirror folder, for the given lm-eval tasks."""
    return {a: asset_path(cfg["mirror"]["dir"], a) for t in sorted(lm_eval_tasks) for a in harness_assets(t)}


def use_assets(folders: dict[str, str], standin: bool | None = None) -> dict[str, str]:
    """Point lm-eval's run-time loads at the mirrored assets (call before the tasks are built):
    ``code_eval`` through HF_MODULES_CACHE (a private copy per job: evaluate writes into it)
    with HF_EVALUATE_OFFLINE, ``punkt_tab`` through NLTK_DATA. Returns the variables set."""
    import atexit
    import shutil
    import sys
    import tempfile

    env = {}
    for name, folder in sorted(folders.items()):
        read_manifest(folder, standin)
        if name == "code_eval":
            cache = tempfile.mkdtemp(prefix="itlab-hf-modules.")
            atexit.register(shutil.rmtree, cache, True)
            shutil.copytree(Path(folder) / "modules", cache, dirs_exist_ok=True)
            env.update(HF_MODULES_CACHE=cache, HF_EVALUATE_OFFLINE="1")
            if "evaluate.config" in sys.modules:  # imported already: its constants were read at import
                sys.modules["evaluate.config"].HF_MODULES_CACHE = Path(cache)
                sys.modules["evaluate.config"].HF_EVALUATE_OFFLINE = True
        elif name == "punkt_tab":
            data = str(Path(folder).resolve() / "nltk_data")
            env["NLTK_DATA"] = os.pathsep.join([data] + [p for p in [os.environ.get("NLTK_DATA")] if p])
            if "nltk.data" in sys.modules:
                sys.modules["nltk.data"].path.insert(0, data)
        else:
            raise HubError(f"assets.{name}", f"unknown harness asset {name!r} (known: {', '.join(ASSETS)})")
    os.environ.update(env)
    return env


def check_mirrored_templates(cfg: dict) -> None:  # noqa: D401
    """Before any job: every task's splits and templates against the schemas of the data sets
    already in the mirror (what is not fetched yet is checked by fetch_dataset)."""
    for entry_name, e in mirror_datasets(cfg).items():
        path = Path(cfg["mirror"]["dir"]) / "datasets" / entry_name / FETCHED
        if not e["tasks"] or not path.exists():
            continue
        splits = manifest_features(json.loads(path.read_text()))
        for task, spec in e["tasks"].items():
            check_task(task, spec, splits)
