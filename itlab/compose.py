"""Composition: several study configs in one config, hence one DAG (``compose:`` key).

A composing file lists configs (``compose: [experiments/inherent-limits.yaml, ...]``) and may
set any key itself. Each listed config is validated on its own first (defaults filled, errors
named with the file), then merged:

- ``studies``: the union; a study in two configs is an error.
- named things (``sizes``, ``recipes``, ``data.mixtures``): identical definitions are shared
  (one entry, hence one set of jobs); a name defined differently by a later config is renamed
  ``<name>-<study>`` and every reference of that config follows (base model ids, recipes,
  mixtures). A hub model is mirrored once per hub id whatever its size name.
- ``data.hub_tasks`` and ``data.scoring`` merge by name; two different definitions are an error.
- ``data.tasks`` and ``data.heldout_tasks``: the union. A mixture over ``clusters: all`` is
  first pinned to its own config's clusters, a study's ``base_models: all`` to its own
  config's base models, and a ``data.corpus`` block to its own config's tasks
  (``data.corpus.tasks``), so that none grows with the union.
- ``evaluation``: each config's block becomes ``evaluation_by_study.<study>`` (an evaluation
  job uses its study's), and each hub task keeps its own config's ``max_items``.
  ``resources.evaluate`` moves into the config's sizes as ``evaluate_resources``.
- every other key (seed, device, tokenizer, data.corpus, mirror, ...): configs that set it
  must agree; where they do not, the composing file must set it (else a ConfigError naming the
  key and the files).

Keys set in the composing file itself win over the merged result (dicts merge key by key; a key
set to null there is removed, e.g. a generator the composition leaves out).

``compose_share`` (a list of dotted key paths, ``*`` for any name) makes the later configs take
those keys from the first composed config before they are validated: every composed config then
runs on the first one's data, tokenizer and sizes (one corpus, one pretrained ladder) and the
first config's changes flow into the others. A path is replaced only in a config that sets it
itself; ``sizes.*`` replaces each size both configs define, whole (its tune settings too).
"""

from __future__ import annotations

import copy
from pathlib import Path

from itlab.config import ConfigError

# keys merged by their own rule (not compared leaf by leaf)
_SPECIAL = {("results_dir",), ("studies",), ("families",), ("sizes",), ("base_models",), ("recipes",),
            ("evaluation",), ("data", "hub_tasks"), ("data", "scoring"), ("data", "mixtures"), ("data", "tasks"),
            ("data", "heldout_tasks"), ("resources", "evaluate"), ("mirror", "revisions")}


def _leaves(d: dict, prefix=()):
    for k, v in d.items():
        path = (*prefix, k)
        if path in _SPECIAL:
            continue
        if isinstance(v, dict) and v:
            yield from _leaves(v, path)
        else:
            yield path, v


def _set(d: dict, path, value):
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = value


def _deep_merge(base: dict, over: dict) -> dict:
    """``over`` on ``base``, dicts key by key; a key ``over`` sets to null is removed (the schema has no null
    value), e.g. a generator a composition leaves out."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        else:
            both = isinstance(v, dict) and isinstance(out.get(k), dict)
            out[k] = _deep_merge(out[k], v) if both else copy.deepcopy(v)
    return out


def _shared_paths(first: dict, raw: dict, pattern: str, prefix=()):
    """Key paths of ``pattern`` (dotted, ``*`` for any key) set both in ``first`` and ``raw``."""
    head, _, rest = pattern.partition(".")
    names = [k for k in raw if k in first] if head == "*" else [head] if head in raw and head in first else []
    for name in names:
        if not rest:
            yield (*prefix, name)
        elif isinstance(raw[name], dict) and isinstance(first[name], dict):
            yield from _shared_paths(first[name], raw[name], rest, (*prefix, name))


def _share(first: dict, raw: dict, patterns: list[str]) -> dict:
    """``raw`` with the keys of ``patterns`` replaced by the first config's values."""
    raw = copy.deepcopy(raw)
    for pattern in patterns:
        for path in list(_shared_paths(first, raw, pattern)):
            src, dst = first, raw
            for k in path[:-1]:
                src, dst = src[k], dst[k]
            dst[path[-1]] = copy.deepcopy(src[path[-1]])
    return raw


def _tag(raw: dict, path: str) -> str:
    studies = list(raw.get("studies", {}))
    return studies[0] if len(studies) == 1 else Path(path).stem


class _Union:
    def __init__(self):
        self.cfg: dict = {"studies": {}, "families": {}, "sizes": {}, "base_models": {}, "recipes": {},
                          "data": {"hub_tasks": {}, "scoring": {}, "mixtures": {}, "tasks": [], "heldout_tasks": []},
                          "mirror": {"revisions": {}}, "evaluation_by_study": {}}
        self.leaves: dict[tuple, tuple] = {}  # key path -> (value, file)
        self.conflicts: dict[tuple, list] = {}
        self.max_items: list[int] = []
        self.spare_mixtures: dict = {}
        self.trained: set[tuple[str, str]] = set()  # (task in a used mixture, config)

    def named(self, section: dict, name: str, spec, tag: str, key: str) -> str:
        """Add a named definition; return the name it has in the union."""
        for candidate in (name, f"{name}-{tag}"):
            if candidate not in section:
                section[candidate] = spec
                return candidate
            if section[candidate] == spec:
                return candidate
        raise ConfigError(key, f"{name!r} is defined differently by several configs, also as {name}-{tag}")


def _pin_corpus(raw: dict) -> dict:
    """A config that sets its corpus, with the corpus's tasks pinned to the config's own."""
    corpus = raw.get("data", {}).get("corpus")
    if corpus is None or "tasks" in corpus:
        return raw
    from itlab.grid import task_selection

    raw = copy.deepcopy(raw)
    raw["data"]["corpus"]["tasks"] = task_selection(raw["data"].get("tasks", "all"))
    return raw


def _pin_all(val: dict) -> None:
    """A config's 'all' selections, pinned to its own tasks' clusters and base models."""
    from itlab.grid import all_tasks, base_model_ids, heldout_tasks, task_cluster

    clusters = sorted({task_cluster(val, t) for t in all_tasks(val)})
    for mix in val["data"]["mixtures"].values():
        if mix.get("clusters") == "all":
            mix["clusters"] = clusters
    bases = base_model_ids(val)
    s = val["studies"]
    blocks = [s.get("inherent_limits"), s.get("scaling"), (s.get("behavior_shift") or {}).get("tune")]
    blocks += (s.get("inherent_limits") or {}).get("additional_grids", [])
    for block in blocks:
        if block and block.get("base_models") == "all":
            block["base_models"] = list(bases)
    if "inherent_limits" in s and s["inherent_limits"]["tasks"] == "all":
        s["inherent_limits"]["tasks"] = all_tasks(val)
    if "teachers" in s and s["teachers"]["instructions"]["tasks"] == "all":
        s["teachers"]["instructions"]["tasks"] = sorted(t for t in all_tasks(val) if t not in heldout_tasks(val))


def _used_mixtures(s: dict) -> set[str]:
    used = set()
    if "inherent_limits" in s:
        used.update(s["inherent_limits"]["mixtures"])
        for block in s["inherent_limits"]["additional_grids"]:
            used.update(block["mixtures"])
    used.update(s.get("diversity", {}).get("code_arm", {}).get("mixtures", []))
    used.update(g["mixture"] for g in s.get("teachers", {}).get("generators", {}).values() if g["kind"] == "tuned")
    if "tune" in s.get("behavior_shift", {}):
        used.add(s["behavior_shift"]["tune"]["mixture"])
    return used


def _rename_refs(s: dict, base: dict, recipe: dict, mixture: dict, size: dict) -> None:
    """Rewrite one config's study blocks after renames (base ids, recipes, mixtures)."""
    b = lambda x: base.get(x, x)  # noqa: E731
    r = lambda x: recipe.get(x, x)  # noqa: E731
    m = lambda x: mixture.get(x, x)  # noqa: E731
    for key in ("inherent_limits", "scaling"):
        if key in s:
            st = s[key]
            st["base_models"] = [b(x) for x in st["base_models"]]
            st["recipe"] = r(st["recipe"])
    if "inherent_limits" in s:
        st = s["inherent_limits"]
        st["mixtures"] = [m(x) for x in st["mixtures"]]
        for block in st["additional_grids"]:
            block["base_models"] = [b(x) for x in block["base_models"]]
            block["mixtures"] = [m(x) for x in block["mixtures"]]
    if "scaling" in s:
        s["scaling"]["recipe_by_size"] = {size.get(k, k): r(v) for k, v in s["scaling"]["recipe_by_size"].items()}
    if "diversity" in s:
        st = s["diversity"]
        st["base_model"], st["recipe"] = b(st["base_model"]), r(st["recipe"])
        if "code_arm" in st:
            c = st["code_arm"]
            c["base_models"], c["recipe"] = [b(x) for x in c["base_models"]], r(c["recipe"])
            c["mixtures"] = [m(x) for x in c["mixtures"]]
    if "teachers" in s:
        st = s["teachers"]
        st["students"] = [b(x) for x in st["students"]]
        st["reference_model"] = b(st["reference_model"])
        for k in ("recipe", "teacher_recipe"):
            if k in st:
                st[k] = r(st[k])
        for g in st["generators"].values():
            if g["kind"] == "tuned":
                g["base"], g["mixture"] = b(g["base"]), m(g["mixture"])
            elif g["kind"] == "model":
                g["model"] = b(g["model"])
    if "behavior_shift" in s and "tune" in s["behavior_shift"]:
        t = s["behavior_shift"]["tune"]
        t["base_models"], t["recipe"], t["mixture"] = [b(x) for x in t["base_models"]], r(t["recipe"]), m(t["mixture"])


def _add(u: _Union, raw: dict, val: dict, path: str) -> None:
    tag = _tag(raw, path)
    _pin_all(val)
    for study, block in val["studies"].items():
        if study in u.cfg["studies"]:
            raise ConfigError(f"studies.{study}", f"is in two composed configs (the second: {path})")
    # sizes (with the config's evaluation resources where a size has none of its own)
    size_map = {}
    for name, spec in val["sizes"].items():
        spec = copy.deepcopy(spec)
        spec.setdefault("evaluate_resources", val["resources"]["evaluate"])
        new = u.named(u.cfg["sizes"], name, spec, tag, f"sizes.{name}")
        if new != name:
            size_map[name] = new
    base_map = {}
    for fam, spec in val["families"].items():
        fam_spec = u.cfg["families"].setdefault(fam, {})
        for k, v in spec.items():
            if k in ("hub", "local"):
                for size, loc in v.items():
                    new = size_map.get(size, size)
                    old = fam_spec.setdefault(k, {}).setdefault(new, loc)
                    if old != loc:
                        raise ConfigError(f"families.{fam}.{k}.{size}", f"{loc!r} in {path}, {old!r} before")
            elif fam_spec.setdefault(k, v) != v:
                raise ConfigError(f"families.{fam}.{k}", f"{v!r} in {path}, {fam_spec[k]!r} before")
    for fam, sizes in val["base_models"].items():
        listed = u.cfg["base_models"].setdefault(fam, [])
        for size in sizes:
            new = size_map.get(size, size)
            if new != size:
                base_map[f"{fam}-{size}"] = f"{fam}-{new}"
            if new not in listed:
                listed.append(new)
    recipe_map = {n: new for n, spec in val["recipes"].items()
                  if (new := u.named(u.cfg["recipes"], n, spec, tag, f"recipes.{n}")) != n}
    data = u.cfg["data"]
    used = _used_mixtures(val["studies"])  # a config's unused filler mixtures are left out
    from itlab.data import mixture_tasks
    from itlab.grid import all_tasks, heldout_tasks, task_cluster

    clusters = {t: task_cluster(val, t) for t in all_tasks(val)}
    for n in used:
        u.trained.update((t, path) for t in mixture_tasks(val["data"]["mixtures"][n], clusters, heldout_tasks(val)))
    u.spare_mixtures.update({n: spec for n, spec in val["data"]["mixtures"].items() if n not in used})
    mix_map = {n: new for n, spec in val["data"]["mixtures"].items() if n in used
               if (new := u.named(data["mixtures"], n, spec, tag, f"data.mixtures.{n}")) != n}
    for section in ("hub_tasks", "scoring"):
        for name, spec in val["data"][section].items():
            spec = copy.deepcopy(spec)
            if section == "hub_tasks":
                spec.setdefault("max_items", val["evaluation"]["max_items_per_task"])
            if data[section].setdefault(name, spec) != spec:
                raise ConfigError(f"data.{section}.{name}", f"is defined differently in {path} and an earlier config")
    tasks = val["data"]["tasks"]
    data["tasks"] = "all" if "all" in (tasks, data["tasks"]) else data["tasks"] + [t for t in tasks if t not in data["tasks"]]
    data["heldout_tasks"] += [t for t in val["data"]["heldout_tasks"] if t not in data["heldout_tasks"]]
    for hid, rev in val["mirror"]["revisions"].items():
        if u.cfg["mirror"]["revisions"].setdefault(hid, rev) != rev:
            raise ConfigError(f"mirror.revisions.{hid}", f"{rev!r} in {path}, another revision before")
    studies = copy.deepcopy(val["studies"])
    _rename_refs(studies, base_map, recipe_map, mix_map, size_map)
    for study, block in studies.items():
        u.cfg["studies"][study] = block
        u.cfg["evaluation_by_study"][study] = val["evaluation"]
    u.max_items.append(val["evaluation"]["max_items_per_task"])
    for key, value in _leaves(raw):  # keys the config sets itself
        if key in u.leaves and u.leaves[key][0] != value:
            u.conflicts.setdefault(key, [u.leaves[key][1]]).append(path)
        u.leaves.setdefault(key, (value, path))


def compose(config: dict, base_dir: str | Path = ".") -> dict:
    """The union config of ``config['compose']`` with the composing file's own keys on top."""
    import yaml

    from itlab.config import validate

    base_dir = Path(base_dir)
    own = {k: v for k, v in config.items() if k not in ("compose", "compose_share")}
    shared = config.get("compose_share", [])
    first = None
    u = _Union()
    for i, path in enumerate(config["compose"]):
        file = base_dir / path
        if not file.is_file():
            raise ConfigError(f"compose[{i}]", f"file {path!r} does not exist")
        raw = yaml.load(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if "compose" in raw:
            raise ConfigError(f"compose[{i}]", f"{path} composes other configs itself (one level only)")
        raw = _pin_corpus(raw)
        if first is None:
            first = raw
            for j, pattern in enumerate(shared):
                if not any(_shared_paths(raw, raw, pattern)):
                    raise ConfigError(f"compose_share[{j}]", f"{pattern!r} is no key of the first config ({path})")
        elif shared:
            raw = _share(first, raw, shared)
        try:
            val = validate(raw, base_dir)
        except ConfigError as err:
            raise ConfigError(f"compose[{i}]", f"{path}: {err}") from None
        _add(u, raw, val, path)
    own_leaves = {key for key, _ in _leaves(own)}
    for key, files in u.conflicts.items():
        if key not in own_leaves and not any(key[: len(k)] == k for k in own_leaves):
            raise ConfigError(".".join(key), f"differs between {' and '.join(files)}: set it in the composing file")
    for key, (value, _) in u.leaves.items():
        _set(u.cfg, key, copy.deepcopy(value))
    u.cfg.setdefault("evaluation", {})["max_items_per_task"] = max(u.max_items)
    heldout = set(u.cfg["data"]["heldout_tasks"])
    for task, path in sorted(u.trained):
        if task in heldout:  # held out by one config, trained on by another: no union keeps both
            raise ConfigError("data.heldout_tasks", f"{task!r} is held out by one composed config but in a mixture of {path}")
    if not u.cfg["data"]["mixtures"]:  # the schema asks for one; no study uses it
        name = sorted(u.spare_mixtures)[0]
        u.cfg["data"]["mixtures"][name] = u.spare_mixtures[name]
    return _deep_merge(u.cfg, own)
