"""The hub mirror and stand-ins: every hub id of the paper configs has a stand-in of its
architecture class and every data set a schema fixture; templates are checked against
schemas; bad input is one line naming the key; a populated mirror is never fetched again."""

import json
import re

import pytest
import yaml

from conftest import ROOT, snakemake, write_config
from itlab import hub, hub_assets, mirror, standin
from itlab.config import validate

PAPER = ["inherent-limits", "scaling", "diversity"]


def _paper(name, standin=False):
    files = [ROOT / f"experiments/{name}.yaml"] + ([ROOT / f"experiments/standin/{name}.yaml"] if standin else [])
    cfg: dict = {}
    for f in files:
        _merge(cfg, yaml.safe_load(f.read_text()))
    return validate(cfg, base_dir=ROOT)


def _merge(d, u):  # snakemake's merge of several --configfile
    for k, v in u.items():
        d[k] = _merge(d.get(k, {}), v) if isinstance(v, dict) else v
    return d


@pytest.mark.parametrize("name", PAPER)
def test_every_hub_id_of_a_paper_config_has_a_stand_in(name):
    cfg = _paper(name)
    table = standin.model_table()
    for entry in hub.mirror_models(cfg).values():
        assert entry["id"] in table, entry
    for entry in hub.mirror_datasets(cfg).values():
        fixture = standin.dataset_fixture(entry["id"])
        assert fixture, f"no fixture for {entry['id']}"
        assert fixture["card"].startswith("https://huggingface.co/datasets/")
        standin.fixture_subset(fixture, entry["subset"], entry["key"])  # the subset exists


def test_harness_table_matches_lm_eval_task_configs():
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    from itlab.evaluate import harness_task_folders

    manager = TaskManager()
    for task, h in hub.harness_table().items():
        cfg = load_yaml(manager.task_index[task].yaml_path, resolve_func=False)
        assert cfg["dataset_path"] == h["dataset"], task
        assert cfg.get("dataset_name") == h.get("subset"), task
    # evaluation indexes only the folders that define its harness tasks: the same YAML as the full index
    tasks = sorted(hub.harness_table()) + ["mmlu_abstract_algebra"]  # a quoted "task" key
    small = TaskManager(include_path=[str(f) for f in harness_task_folders(tasks)], include_defaults=False)
    assert len(small.task_index) < len(manager.task_index) / 20
    for task in tasks:
        assert small.task_index[task].yaml_path == manager.task_index[task].yaml_path, task


def test_harness_task_folders_fall_back_to_the_full_index_for_what_no_task_line_names(tmp_path):
    for folder, text in {"gsm8k": "task: gsm8k\n", "maths/default": '"task": "maths_algebra"  # x\n',
                         "maths": "group: maths\ntask:\n  - maths_algebra\n", "other": "task: gsm8k_cot\n",
                         "nested": "group: n\nsubtasks:\n  task: inner\n", "twice": "task: dup\n",
                         "twice/again": "task: dup\n"}.items():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "t.yaml").write_text(text)
    from itlab.evaluate import harness_task_folders

    assert harness_task_folders(["gsm8k", "maths_algebra"], tmp_path) == [tmp_path / "gsm8k",
                                                                          tmp_path / "maths/default"]
    assert harness_task_folders(["gsm8k_cot"], tmp_path) == [tmp_path / "other"]  # found by the whole-tree scan
    assert harness_task_folders(["maths"], tmp_path) is None  # a group: no task line names it
    assert harness_task_folders(["inner"], tmp_path) is None  # an indented key is not a task's name
    assert harness_task_folders(["gsm8k", "dup"], tmp_path) is None  # defined twice: lm-eval's index decides


@pytest.fixture(scope="module")
def standin_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    ids = sorted({e["id"] for n in PAPER for e in hub.mirror_models(_paper(n)).values()})
    return {i: standin.standin_model(i, hub.model_path(str(root), i)) and hub.model_path(str(root), i) for i in ids}


def test_stand_in_models_have_the_real_class_tokenizer_kind_and_special_tokens(standin_models):
    from transformers import AutoConfig, AutoTokenizer

    table = standin.model_table()
    for hid, folder in standin_models.items():
        spec = table[hid]
        cfg = AutoConfig.from_pretrained(folder)
        assert cfg.architectures == [spec["architecture"]], hid
        # grouped-query attention where the real model has it
        real = spec["real"]
        assert (cfg.num_key_value_heads < cfg.num_attention_heads) == \
            (real["num_key_value_heads"] < real["num_attention_heads"]), hid
        tok = AutoTokenizer.from_pretrained(folder)
        for k, v in spec["special_tokens"].items():
            assert getattr(tok, f"{k}_token") == v, (hid, k)
        assert (tok.chat_template or None) == spec["chat_template"], hid
        model = json.loads(tok.backend_tokenizer.to_str())["model"]
        assert model["type"] == "BPE"
        assert model["byte_fallback"] == (spec["tokenizer"] == "sentencepiece"), hid
        assert tok.decode(tok("def add(a, b): return a + b", add_special_tokens=False)["input_ids"]) == \
            "def add(a, b): return a + b", hid


def test_paper_grids_tune_base_checkpoints_without_a_chat_template(standin_models):
    """Studies A, B and E tune base checkpoints, which ship no chat template (CodeQwen1.5-7B's
    was removed from the base model's tokenizer_config.json; ChatML is its -Chat model's): a
    stand-in with one would evaluate the base conditions through a template the real model lacks."""
    from transformers import AutoTokenizer

    for hid, folder in standin_models.items():
        assert standin.model_table()[hid]["chat_template"] is None, hid
        assert not AutoTokenizer.from_pretrained(folder).chat_template, hid


@pytest.mark.parametrize("name", PAPER)
def test_paper_templates_fit_the_stand_in_schemas(name, tmp_path):
    """Every hub task of a paper config against its data set's schema (the same check the
    fetch rule runs on real downloads)."""
    cfg = _paper(name)
    for key, entry in hub.mirror_datasets(cfg).items():
        rec = mirror.ensure_dataset(entry, tmp_path / key, standin=True, rows=8)
        assert rec["standin"] and rec["card"]


def _anli_splits(tmp_path):
    rec = standin.standin_dataset("facebook/anli", None, tmp_path / "anli", 8)
    return hub.manifest_features(rec)


ANLI = {"cluster": "nli", "dataset": "facebook/anli", "train_split": "train_r1", "test_split": "test_r1",
        "input_template": "{premise} {hypothesis}", "target_template": "{label_text}",
        "choices": ["yes", "maybe", "no"], "label_field": "label"}


def test_template_naming_a_missing_column_is_an_error_naming_task_and_column(tmp_path):
    splits = _anli_splits(tmp_path)
    hub.check_task("anli_r1", ANLI, splits)  # the paper's template passes
    with pytest.raises(hub.HubError, match=r"data.hub_tasks.anli_r1.input_template: task anli_r1: column 'premis'"):
        hub.check_task("anli_r1", dict(ANLI, input_template="{premis} {hypothesis}"), splits)
    with pytest.raises(hub.HubError, match=r"anli_r1.target_template: .* field premise\[text\]"):
        hub.check_task("anli_r1", dict(ANLI, target_template="{premise[text]}"), splits)


def test_choices_must_match_the_class_labels(tmp_path):
    splits = _anli_splits(tmp_path)
    with pytest.raises(hub.HubError, match=r"anli_r1.choices: .*2 choices .* column 'label' has 3 labels "
                                           r"\['entailment', 'neutral', 'contradiction'\]"):
        hub.check_task("anli_r1", dict(ANLI, choices=["yes", "no"]), splits)
    with pytest.raises(hub.HubError, match=r"anli_r1.label_field: .*column 'gold'"):
        hub.check_task("anli_r1", dict(ANLI, label_field="gold"), splits)


def test_missing_split_names_the_key_and_carving_fixes_it(tmp_path):
    rec = standin.standin_dataset("databricks/databricks-dolly-15k", None, tmp_path / "dolly", 8)
    splits = hub.manifest_features(rec)
    spec = {"dataset": "databricks/databricks-dolly-15k", "train_split": "train", "test_split": "test",
            "input_template": "{instruction}\n{context}", "target_template": "{response}"}
    with pytest.raises(hub.HubError, match=r"data.hub_tasks.dolly.test_split: split 'test' is not in .*has: train"):
        hub.check_task("dolly", spec, splits)
    hub.check_task("dolly", dict(spec, test_from_train=3), splits)


def test_carved_test_split_is_deterministic_and_disjoint_from_training(tmp_path):
    from itlab.data import carve_test

    standin.standin_dataset("databricks/databricks-dolly-15k", None, tmp_path / "d", 30)
    rows = hub.load_split(tmp_path / "d", "train", "k").add_column("n", list(range(30)))
    train, test = carve_test(rows, 5, "dolly", 1, "k")
    again = carve_test(rows, 5, "dolly", 1, "k")[1]
    assert len(train) == 25 and len(test) == 5 and test["n"] == again["n"]
    assert not set(train["n"]) & set(test["n"])
    assert test["n"] != carve_test(rows, 5, "dolly", 2, "k")[1]["n"]  # the seed matters
    with pytest.raises(hub.HubError, match="leaves no training rows"):
        carve_test(rows, 30, "dolly", 1, "k")


def test_a_populated_mirror_is_read_without_any_download(tmp_path, monkeypatch):
    """First fetch through huggingface_hub (served from a local folder), second with the hub
    blocked: the entry is reused, nothing is downloaded."""
    import huggingface_hub

    src = tmp_path / "src"
    standin.standin_model("meta-llama/Llama-2-7b-hf", src)
    calls = []

    class Info:
        sha = "a" * 40

    def fake_snapshot(repo_id, revision, local_dir, allow_patterns, token):
        import shutil

        calls.append((repo_id, revision))
        for f in src.iterdir():
            if f.name not in (hub.FETCHED, hub.MANIFEST):
                shutil.copy(f, local_dir)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, *a, **k: Info())
    entry = {"id": "meta-llama/Llama-2-7b-hf", "revision": "main", "key": "families.llama2.hub.7b"}
    dest = tmp_path / "mirror/models/x"
    first = mirror.ensure_model(entry, dest, standin=False)
    assert calls == [("meta-llama/Llama-2-7b-hf", "a" * 40)] and first["commit"] == "a" * 40
    assert first["files"]["model.safetensors"] and len(first["content_sha256"]) == 64

    def blocked(*a, **k):
        raise AssertionError("network used")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", blocked)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", blocked)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    second = mirror.ensure_model(entry, dest, standin=False)
    assert "fetched_now" not in second and second["content_sha256"] == first["content_sha256"]
    # a stand-in run must not read the real entry, nor the reverse
    with pytest.raises(hub.HubError, match="mirror.standin: .* holds a real download"):
        hub.read_manifest(dest, standin=True)


def test_hub_errors_are_one_line_naming_the_key(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub import errors

    import httpx2 as httpx

    resp = httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))
    cases = [(errors.RepositoryNotFoundError("nope", response=resp), "does not exist on the hub"),
             (errors.RevisionNotFoundError("nope", response=resp), "revision of model .* does not exist"),
             (errors.GatedRepoError("gated", response=resp), "is gated: accept its licence on the hub and export HF_TOKEN")]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    dest = tmp_path / "m"
    standin.standin_model("meta-llama/Llama-2-7b-hf", dest)  # something fetched before ...
    before = (dest / hub.FETCHED).read_text()
    for err, message in cases:
        def raise_(*a, err=err, **k):
            raise err

        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", raise_)
        with pytest.raises(hub.HubError) as info:
            hub.fetch_model("meta-llama/Llama-2-7b-hf", "v9", dest, key="families.llama2.hub.7b")
        text = str(info.value)
        assert text.startswith("families.llama2.hub.7b: ") and "\n" not in text and re.search(message, text), text
        assert (dest / hub.FETCHED).read_text() == before  # ... is not lost


def test_a_failed_check_keeps_the_fetched_data_and_the_fix_downloads_nothing(tmp_path):
    entry = {"id": "facebook/anli", "subset": None, "revision": "main", "key": "data.hub_tasks.anli_r1.dataset",
             "tasks": {"anli_r1": dict(ANLI, input_template="{premis}")}}
    with pytest.raises(hub.HubError, match="column 'premis'"):
        mirror.ensure_dataset(entry, tmp_path / "anli", standin=True, rows=8)
    assert (tmp_path / "anli" / hub.FETCHED).exists() and not (tmp_path / "anli" / hub.MANIFEST).exists()
    entry["tasks"]["anli_r1"] = ANLI
    rec = mirror.ensure_dataset(entry, tmp_path / "anli", standin=True, rows=8)
    assert "fetched_now" not in rec and (tmp_path / "anli" / hub.MANIFEST).exists()


# ---- through snakemake ---------------------------------------------------------------------------
def _tiny_hub_config(tmp_path, standin=True, model="meta-llama/Llama-2-7b-hf"):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["mirror"] = {"dir": str(tmp_path / "mirror"), "standin": standin, "standin_rows": 8}
    cfg["families"]["llama2"] = {"hub": {"7b": model}}
    cfg["sizes"]["7b"] = {"params_b": 7}
    cfg["base_models"] = {"llama2": ["7b"]}
    cfg["data"]["hub_tasks"] = {"anli_r1": dict(ANLI)}
    return cfg


def test_fetch_jobs_run_once_and_a_second_run_schedules_none(tmp_path):
    cfg = _tiny_hub_config(tmp_path)
    path = write_config(tmp_path, cfg)
    res = snakemake("fetch_all", "--cores", "2", "--configfile", str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((tmp_path / "mirror/models/meta-llama--Llama-2-7b-hf/MANIFEST.json").read_text())
    assert manifest["standin"] and manifest["architecture"] == "LlamaForCausalLM"
    # the mirror is complete: with the hub blocked, nothing is scheduled
    res = snakemake("fetch_all", "-n", "--cores", "2", "--configfile", str(path),
                    env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Nothing to be done" in out and "rule fetch_" not in out, out[-2000:]
    # a base model of the grid is read from the mirror: its manifest is the tuning input
    res = snakemake("-n", "--cores", "2", "--configfile", str(path))
    stats = res.stdout[res.stdout.index("Job stats:"):]
    assert "tune_model" in stats and "fetch_model" not in stats and "fetch_dataset" not in stats
    assert "mirror/models/meta-llama--Llama-2-7b-hf/MANIFEST.json" in res.stdout  # an input of its jobs


def test_bad_hub_input_stops_with_one_line_and_no_traceback(tmp_path):
    cfg = _tiny_hub_config(tmp_path, standin=True, model="itlab-test/no-such-model")
    path = write_config(tmp_path, cfg)
    res = snakemake("fetch_all", "--cores", "1", "--configfile", str(path))
    assert res.returncode != 0
    assert "itlab: error: families.llama2.hub.7b: itlab-test/no-such-model has no stand-in entry" in res.stderr
    assert "Traceback" not in res.stderr
    # real mode without network: one line naming the key
    cfg = _tiny_hub_config(tmp_path, standin=False)
    path = write_config(tmp_path, cfg)
    res = snakemake("fetch_all", "--cores", "1", "--configfile", str(path), env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode != 0
    assert re.search(r"itlab: error: (families.llama2.hub.7b|data.hub_tasks.anli_r1.dataset): .*cannot be fetched",
                     res.stderr), res.stderr[-3000:]
    assert "Traceback" not in res.stderr


def test_a_template_error_in_the_mirror_stops_the_dry_run(tmp_path):
    cfg = _tiny_hub_config(tmp_path)
    path = write_config(tmp_path, cfg)
    assert snakemake("fetch_all", "--cores", "2", "--configfile", str(path)).returncode == 0
    cfg["data"]["hub_tasks"]["anli_r1"]["input_template"] = "{premis}"
    path = write_config(tmp_path, cfg)
    res = snakemake("-n", "--cores", "1", "--configfile", str(path))
    assert res.returncode != 0
    assert "itlab: error: data.hub_tasks.anli_r1.input_template: task anli_r1: column 'premis'" in res.stderr + res.stdout


def _standin_assets(root):
    out = {}
    for name, hid in hub.ASSETS.items():
        entry = {"id": hid, "revision": "main", "name": name, "key": f"assets.{name}"}
        hub_assets.ensure_asset(entry, hub.asset_path(str(root), name), standin=True)
        out[name] = hub.asset_path(str(root), name)
    return out


HARNESS_OFFLINE = """
import json, sys
from itlab import hub
if sys.argv[3] == "mirror":
    hub.use_assets(json.loads(sys.argv[1]), standin=True)
from itlab.evaluate import harness_spec, task_manager
spec = harness_spec(task_manager(["humaneval"]), "humaneval", sys.argv[2])  # lm-eval's utils.py: evaluate.load("code_eval")
pass_at_k = spec["metric_list"][0]["metric"]
test = "assert add(2, 3) == 5"
good = pass_at_k(references=[test], predictions=[["def add(a, b):\\n    return a + b"]], k=[1])
half = pass_at_k(references=[test, test], predictions=[["def add(a, b):\\n    return a * b"],
                                                      ["def add(a, b):\\n    return b + a"]], k=[1])
nul = pass_at_k(references=[test], predictions=[["def add(a, b):\\x00"]], k=[1])  # model output with a NUL byte
from lm_eval.tasks.ifeval import instructions_util  # downloads punkt_tab unless NLTK_DATA has it
print(json.dumps([good["pass@1"], half["pass@1"] + nul["pass@1"], instructions_util.count_sentences("One here. Two there? Three!"),
                  instructions_util.nltk.word_tokenize("Add a and b. Return it.")]))
"""


def test_code_eval_and_punkt_tab_load_offline_from_the_mirror(tmp_path):
    """lm-eval's HumanEval/MBPP load the code_eval metric script from the hub when the task is
    built, and IFEval's checkers nltk's punkt_tab: offline, with no user caches, both come from
    the mirror (stand-ins here), run lm-eval's own task code, and the code really executes."""
    import os
    import subprocess
    import sys

    folders = _standin_assets(tmp_path / "mirror")
    he = hub.dataset_path(str(tmp_path / "mirror"), "openai/openai_humaneval")
    mirror.ensure_dataset({"id": "openai/openai_humaneval", "subset": None, "revision": "main", "key": "k",
                        "tasks": {}}, he, standin=True, rows=4)
    home = tmp_path / "home"  # no ~/.cache/huggingface, no ~/nltk_data
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_ALLOW_CODE_EVAL": "1", "TMPDIR": str(tmp_path)}

    def run(mode):
        return subprocess.run([sys.executable, "-c", HARNESS_OFFLINE, json.dumps(folders), he, mode], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)

    res = run("mirror")
    assert res.returncode == 0, res.stderr[-3000:]
    good, half, sentences, words = json.loads(res.stdout.strip().splitlines()[-1])
    assert (good, half, sentences) == (1.0, 0.5, 3)
    assert words == ["Add", "a", "and", "b", ".", "Return", "it", "."]
    assert not list(home.rglob("*.py")) and not (home / "nltk_data").exists()  # no script or data fetched
    without = run("none")  # the same job without the mirrored assets cannot build the task offline
    assert without.returncode != 0 and "code_eval" in without.stderr


def test_stand_in_assets_are_reused_and_a_failed_fetch_names_the_key(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    first = _standin_assets(tmp_path / "m")
    again = hub_assets.ensure_asset({"id": hub.ASSETS["code_eval"], "revision": "main", "name": "code_eval",
                              "key": "k"}, first["code_eval"], standin=True)
    assert "fetched_now" not in again and again["standin"]

    def offline(*a, **k):
        raise errors.OfflineModeIsEnabled("offline")

    monkeypatch.setattr(huggingface_hub.HfApi, "space_info", offline)
    entry = {"id": hub.ASSETS["code_eval"], "revision": "main", "name": "code_eval",
             "key": "data.hub_tasks.self_align.lm_eval_task"}
    with pytest.raises(hub.HubError, match=r"^data\.hub_tasks\.self_align\.lm_eval_task: metric "
                                           r"evaluate-metric/code_eval@main cannot be fetched: no network"):
        hub_assets.ensure_asset(entry, tmp_path / "real/assets/code_eval", standin=False)
    assert not (tmp_path / "real/assets/code_eval").exists()  # nothing half-written
    with pytest.raises(hub.HubError, match="holds a stand-in"):  # a real run never reads a stand-in
        hub.use_assets({"code_eval": first["code_eval"]}, standin=False)


def test_qlora_stand_ins_run_in_4_bit_on_cpu(tmp_path):
    """Study A tunes every base in 4 bit (QLoRA, quantize_4bit): each of its stand-ins loads
    through bitsandbytes and runs forward in training and eval mode on CPU (the CPU kernel's
    eval path packs weights in 32-row blocks: a 8-wide key projection failed there)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    cfg = _paper("inherent-limits")
    qlora = {hid for r in cfg["recipes"].values() if r.get("lora", {}).get("quantize_4bit") for hid in
             [e["id"] for e in hub.mirror_models(cfg).values()]}
    ids = sorted(qlora | {"meta-llama/Llama-2-13b-hf"})
    assert {"meta-llama/Llama-2-70b-hf", "mistralai/Mistral-7B-v0.1"} <= set(ids)
    for hid in ids:
        folder = hub.model_path(str(tmp_path), hid)
        standin.standin_model(hid, folder)
        model = AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.float32))
        assert "Linear4bit" in str(model), hid
        ids_ = torch.tensor([[1, 5, 9, 12]])
        model.train()
        assert torch.isfinite(model(ids_).logits).all(), hid
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(model(ids_).logits).all(), hid
