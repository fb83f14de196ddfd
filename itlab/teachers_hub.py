"""Study C's hub needs beyond the base models and the task data sets, as mirror entries
(fetched by the same rules ``fetch_model`` / ``fetch_dataset`` into ``mirror.dir``, stand-ins in
stand-in mode), and where its jobs read them:

- models: the fixed reference model of IFD/perplexity, generators of kind ``model``, reward
  models of kind ``classifier`` and a judge the judging job serves itself (``judge.serve``),
  whenever they name a hub id (not a base model id of the config and not an existing folder);
- data sets: the responses data set of generators of kind ``dataset`` and the judged
  benchmarks (AlpacaEval 2, Arena-Hard) with their subsets.
"""

from __future__ import annotations

import os

from itlab.grid import base_model_ids
from itlab.hub import dataset_entry, dataset_path, entry_key, model_entry, model_path


def is_hub_id(cfg: dict, name: str | None) -> bool:
    """A model name that is neither a base model id of this config nor an existing folder."""
    return bool(name) and name not in base_model_ids(cfg) and not os.path.exists(name)


def _study(cfg: dict) -> dict:
    return cfg["studies"].get("teachers", {})


def _judge(cfg: dict) -> dict:
    return _study(cfg).get("evaluation", {}).get("judge") or {}


def model_names(cfg: dict) -> dict[str, str]:
    """hub id -> the config key naming it."""
    s, out = _study(cfg), {}
    if not s:
        return out
    key = "studies.teachers"
    wanted = [(s.get("reference_model"), f"{key}.reference_model")]
    wanted += [(g.get("model"), f"{key}.generators.{n}.model") for n, g in sorted(s["generators"].items())
               if g["kind"] == "model"]
    wanted += [(r.get("model"), f"{key}.reward_models.{n}.model") for n, r in sorted(s["reward_models"].items())
               if r["kind"] == "classifier"]
    wanted.append((_judge(cfg).get("serve", {}).get("model"), f"{key}.evaluation.judge.serve.model"))
    for name, k in wanted:
        if is_hub_id(cfg, name):
            out.setdefault(name, k)
    return out


def mirror_models(cfg: dict) -> dict[str, dict]:
    """entry key -> {id, revision, key}, as itlab.hub.mirror_models."""
    return {entry_key(hid): model_entry(cfg, hid, k) for hid, k in model_names(cfg).items()}


def mirror_datasets(cfg: dict) -> dict[str, dict]:
    """entry key -> {id, subset, revision, key, tasks, data_dir}, as itlab.hub.mirror_datasets."""
    s, out = _study(cfg), {}
    if not s:
        return out
    wanted = [(g["dataset"], None, f"studies.teachers.generators.{n}.dataset")
              for n, g in sorted(s["generators"].items()) if g["kind"] == "dataset"]
    wanted += [(b["dataset"], b.get("subset"), f"studies.teachers.evaluation.judge.benchmarks.{n}.dataset")
               for n, b in sorted(_judge(cfg).get("benchmarks", {}).items())]
    for hid, subset, k in wanted:
        out.setdefault(entry_key(hid, subset), dataset_entry(cfg, hid, subset, k))
    return out


def model_dir(cfg: dict, name: str) -> str:
    """Where a job reads a model: the mirror entry of a hub id, else the name (a folder)."""
    return model_path(cfg["mirror"]["dir"], name) if is_hub_id(cfg, name) else name


def model_manifest(cfg: dict, name: str) -> list[str]:
    return [f"{model_dir(cfg, name)}/MANIFEST.json"] if is_hub_id(cfg, name) else []


def dataset_dir(cfg: dict, hub_id: str, subset: str | None = None) -> str:
    return dataset_path(cfg["mirror"]["dir"], hub_id, subset)
