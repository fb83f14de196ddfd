"""Study D through the workflow: the paper config's dry-run (with resources from the estimate),
config errors that name the key, and a real run of a tiny embedded study D."""

import re

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake
from itlab.config import ConfigError, validate
from itlab.interpret import matrices


def _jobs(output: str) -> dict:
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_paper_config_dry_run_lists_sharded_attribution_with_estimated_resources(tmp_path):
    res = snakemake("-n", "--cores", "1", "--configfile", "experiments/behavior-shift.yaml",
                    "--config", f"results_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    jobs = _jobs(res.stdout)
    assert jobs["attribute_responses"] == 2 * 2 * 16 and jobs["explain_weights"] == 4
    assert jobs["fetch_behavior_file"] == 2 and "tune_model" not in jobs and "pretrain_model" not in jobs
    # 632 prompts / 16 shards = 40 prompts x 300 tokens x 6 x 6.7e9 x 500 FLOPs / 21 TFLOP/s x 1.5
    # (fp32 on an A100: benchmarks/gpu_mfu.py's H200 measurement scaled by the fp32 peaks)
    attr = res.stdout[res.stdout.index("rule attribute_responses"):]
    attr_res = re.search(r"wildcards: pair=llama-vicuna.*\n\s+resources: (.*)", attr).group(1)
    # every resource the estimate gives reaches the job: GPU model and partition too (a GPU job
    # left on the profile's default partition, a CPU one, would never start)
    assert {"runtime=288", "gpu=1", "gpu_model=a100", "slurm_partition=gpu"} <= set(attr_res.split(", "))
    weights = re.search(r"rule explain_weights:(?:\n.*)*?\n\s+resources: (.*)", res.stdout).group(1)
    assert "slurm_partition=gpu" not in weights and "gpu=" not in weights  # a CPU job (SVD of the weights)


def _cfg():
    return yaml.safe_load((ROOT / "tests/configs/tiny-cd.yaml").read_text())


@pytest.mark.parametrize("edit,key", [
    (lambda s: s["tune"].update(mixture="nope"), "studies.behavior_shift.tune.mixture"),
    (lambda s: s["tune"].update(base_models=["llama-x"]), "studies.behavior_shift.tune.base_models[0]"),
    (lambda s: s.update(prompts={"source": "final_dataset", "path": "missing.tsv"}), "studies.behavior_shift.prompts.path"),
    (lambda s: s.update(prompts={"source": "final_dataset", "url": "https://example.org/x.tsv"}),
     "studies.behavior_shift.prompts.sha256"),
    (lambda s: s.update(prompt_format="fancy"), "studies.behavior_shift.prompt_format"),
])
def test_bad_study_d_config_names_the_key(edit, key):
    cfg = _cfg()
    edit(cfg["studies"]["behavior_shift"])
    with pytest.raises(ConfigError) as err:
        validate(cfg, ROOT)
    assert err.value.key == key


@pytest.mark.slow
def test_tiny_embedded_study_d_runs_end_to_end(tiny_cd_run):
    """Study D of the tiny C+D run (conftest.tiny_cd_run: studies C and D in one DAG)."""
    root, _, res = tiny_cd_run
    assert res.returncode == 0, res.stderr[-5000:]
    out = root / "studies/behavior_shift"
    scores = pd.read_csv(out / "scores.tsv", sep="\t", keep_default_na=False)
    assert len(scores) == 2 * 4 * 2  # sides x tasks x prompts per task
    assert set(scores.pair) == {"llama-s"} and set(scores.side) == {"base", "tuned"}
    ok = scores[scores.span_error == ""]
    assert len(ok) > 0 and ok.instruction_score.between(0, 10).all()
    # every attribution file reads back in the documented format, shard by shard
    recs = [r for i in range(2) for r in matrices.read(root / f"interpret/llama-s/tuned/attributions-{i}.jsonl.gz")]
    assert len(recs) == 8 and all(r["matrix"].shape == (len(r["input_tokens"]), len(r["output_tokens"])) for r in recs)
    summary = (out / "summary.md").read_text()
    assert "1.5579" in summary and "## Bad input" in summary
    heads = pd.read_csv(out / "heads.tsv", sep="\t")
    assert set(heads.pair) == {"llama-s"} and len(heads) == 2  # 2 layers, group size 1
    for fig in ("heatmaps.png", "scores.png", "heads.png"):
        assert (out / fig).stat().st_size > 1000
