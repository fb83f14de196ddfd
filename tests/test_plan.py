"""The compute plan (itlab.plan): GPU-hours of a tuning job by hand, and per-job resources
equal to what the rules request in a dry-run."""

import re

import pytest
import yaml

from conftest import ROOT, snakemake, write_config
from itlab import plan
from itlab.config import validate


def _cfg(name):
    return validate(yaml.safe_load((ROOT / f"experiments/{name}.yaml").read_text()), ROOT)


def test_gpu_hours_of_one_tuning_job_match_a_hand_computation():
    jobs = {j.name: j for j in plan.plan_jobs(_cfg("scaling")) if j.rule == "tune_model"}
    # study E, Llama-2-7B full fine-tune on 1,000 gsm8k examples, 3 epochs, 512 tokens an
    # example (plan.tokens_per_example < max_seq_len 4096): 6 N FLOPs a token, A100 312 TFLOP/s at MFU 0.4
    tokens = 1000 * 3 * 512
    hours = 6 * 7e9 * tokens / (312e12 * 0.4) / 3600
    assert jobs["llama2-7b__sub-gsm8k-n1000__full__seed-1"].gpu_hours == pytest.approx(hours, rel=1e-9)
    assert hours == pytest.approx(0.14359, rel=1e-4)
    # study A, QLoRA: no weight gradients for the frozen base (4 N a token); the mixture's total 20,000, 1 epoch
    qlora = {j.name: j for j in plan.plan_jobs(_cfg("inherent-limits")) if j.rule == "tune_model"}
    hours = 4 * 7e9 * 20000 * 512 / (312e12 * 0.4) / 3600
    assert qlora["llama2-7b__mix-flan__qlora__seed-42"].gpu_hours == pytest.approx(hours, rel=1e-9)


def test_plan_peak_table_is_the_one_mfu_is_logged_with():
    from itlab.train.loop import PEAK_TFLOPS

    cfg = _cfg("scaling")
    for name, peak in PEAK_TFLOPS.items():
        assert cfg["plan"]["gpu_models"][name.lower()]["peak_tflops"] == peak


def test_plan_command_prints_the_largest_job_and_totals(capsys):
    assert plan.main(["--configfile", "experiments/scaling.yaml", "--jobs", "10"]) == 0
    out = capsys.readouterr().out
    assert "largest job: tune_model llama2-70b" in out or "largest job: tune_model llama3-70b" in out
    assert re.search(r"^tune_model\s+scaling\s+gpu\s+204\s", out, re.M)


@pytest.mark.slow
def test_plan_resources_equal_what_the_rules_request(tmp_path):
    """Every tuning and evaluation job: GPUs, memory and runtime as the dry-run's resources."""
    res = snakemake("-n", "--cores", "1", "--configfile", "experiments/scaling.yaml", "--config", f"results_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    requested = {}
    for block in re.split(r"\n\[[^\]]+\]\n", res.stdout):
        m = re.match(r"\s*rule (tune_model|evaluate_model):", block)
        if m:
            wc = re.search(r"wildcards: (?:run|model)=(\S+)", block).group(1)
            r = dict(kv.split("=", 1) for kv in re.search(r"resources: (.*)$", block, re.M).group(1).split(", "))
            requested[(m.group(1), wc)] = r
    cfg = _cfg("scaling")
    cfg["results_dir"] = str(tmp_path)
    jobs = [j for j in plan.plan_jobs(cfg) if j.rule in ("tune_model", "evaluate_model")]
    assert len(jobs) == len(requested) == 408
    for j in jobs:
        r = requested[(j.rule, j.name)]
        gpus = int(r.get("gpu", 0)) or int(r.get("gres", "gpu:0").rsplit(":", 1)[-1]) * int(r.get("nodes", 1))
        assert (j.gpus, j.mem_mb, j.runtime_min) == (gpus, int(r["mem_mb"]), int(r["runtime"])), j.name
        assert j.nodes == int(r.get("nodes", 1)), j.name


def test_plan_of_the_union_covers_every_study_and_sums_its_parts():
    """The union's tuning GPU-hours per study equal each study's own config's (same runs, same resources)."""
    union = plan.plan_jobs(_cfg("all-studies"))
    studies = {j.study for j in union}
    assert {"inherent_limits", "scaling", "diversity", "teachers", "behavior_shift"} <= studies
    for name, study in [("inherent-limits", "inherent_limits"), ("scaling", "scaling"), ("teachers", "teachers")]:
        own = sum(j.gpu_hours for j in plan.plan_jobs(_cfg(name)) if j.rule == "tune_model")
        assert sum(j.gpu_hours for j in union if j.rule == "tune_model" and j.study == study) == pytest.approx(own, rel=1e-12)


def _dry_run_resources(stdout: str, rules: tuple) -> dict:
    """(rule, first wildcard value or None) -> resources of each job a dry-run lists."""
    out = {}
    for block in re.split(r"\n\[[^\]]+\]\n", stdout):
        m = re.match(r"\s*(?:local)?rule (\w+):", block)
        if m and m.group(1) in rules:
            wc = re.search(r"wildcards: \w+=(\S+)", block)
            r = dict(kv.split("=", 1) for kv in re.search(r"resources: (.*)$", block, re.M).group(1).split(", "))
            out[(m.group(1), wc.group(1) if wc else None)] = r
    return out


def _teachers_with_a_model_generator():
    """Study C's paper config plus one generator that answers the pool itself (kind model)."""
    cfg = yaml.safe_load((ROOT / "experiments/teachers.yaml").read_text())
    cfg["studies"]["teachers"]["generators"]["qwen2-1.5b-live"] = {
        "kind": "model", "model": "Qwen/Qwen2-1.5B-Instruct", "family": "qwen2", "size_b": 1.5}
    return cfg


TEACHER_RULES = ("generate_responses", "score_rewards", "measure_responses", "answer_benchmarks")


def test_jobs_that_run_no_model_request_no_gpu():
    """Study C: a zoo generator's responses and rewards are read from a data set column (no GPU,
    the CPU partition); a generator of kind model runs one (the evaluation GPU)."""
    cfg = validate(_teachers_with_a_model_generator(), ROOT)
    jobs = {(j.rule, j.name): j for j in plan.plan_jobs(cfg) if j.rule in TEACHER_RULES}
    zoo = [n for n, s in cfg["studies"]["teachers"]["generators"].items() if s["kind"] == "dataset"]
    assert len(zoo) == 19
    for gen in zoo:
        for rule in ("generate_responses", "score_rewards"):
            assert (jobs[(rule, gen)].gpus, jobs[(rule, gen)].gpu_hours, jobs[(rule, gen)].partition) == (0, 0, "cpu")
    live = jobs[("generate_responses", "qwen2-1.5b-live")]
    assert (live.gpus, live.partition) == (1, "gpu") and live.gpu_hours > 0
    # its responses are scored by the zoo's dataset reward models: a data-set read, no GPU
    assert jobs[("score_rewards", "qwen2-1.5b-live")].gpus == 0
    # a classifier reward model runs on every generator's responses: the GPU again
    cfg["studies"]["teachers"]["reward_models"]["armorm_live"] = {"kind": "classifier", "model": "RLHFlow/ArmoRM-Llama3-8B-v0.1"}
    assert {j.gpus for j in plan.plan_jobs(cfg) if j.rule == "score_rewards"} == {1}
    # every student and the reference are scored under a model: the GPU
    assert {jobs[k].gpus for k in jobs if k[0] in ("measure_responses", "answer_benchmarks")} == {1}


def _dry_run(tmp_path, cfg):
    """snakemake -n of ``cfg`` with its results under ``tmp_path/results``."""
    path = write_config(tmp_path, {**cfg, "results_dir": str(tmp_path / "results")})
    return snakemake("-n", "--cores", "1", "--configfile", str(path))


@pytest.mark.slow
def test_plan_resources_of_study_c_equal_what_the_rules_request(tmp_path):
    cfg = _teachers_with_a_model_generator()
    res = _dry_run(tmp_path, cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    requested = _dry_run_resources(res.stdout, TEACHER_RULES)
    jobs = [j for j in plan.plan_jobs(validate(cfg, ROOT)) if j.rule in TEACHER_RULES]
    # measure_responses, answer_benchmarks: the wildcard is the scorer / run (the plan names runs tuned/<run>)
    assert len(jobs) == len(requested) == 20 * 2 + 6 + 100
    assert requested[("generate_responses", "qwen2-7b")]["gpu"] == "0"
    assert requested[("generate_responses", "qwen2-1.5b-live")]["gpu"] == "1"
    for j in jobs:
        r = requested[(j.rule, j.name.removeprefix("tuned/"))]
        assert (j.gpus, j.mem_mb, j.runtime_min, j.partition) == (
            int(r.get("gpu", 0)), int(r["mem_mb"]), int(r["runtime"]), r.get("slurm_partition", "")), (j.rule, j.name)


def _inherent_limits_before_the_fix():
    """Study A as it was: the 13B evaluated on resources.evaluate (one A100, 10 h)."""
    cfg = yaml.safe_load((ROOT / "experiments/inherent-limits.yaml").read_text())
    cfg["sizes"]["13b"].pop("evaluate_resources", None)
    return cfg


def test_an_evaluation_estimated_past_its_runtime_is_an_error_naming_the_key():
    from itlab import grid as g

    errors = plan.runtime_errors(g.Grid(validate(_inherent_limits_before_the_fix(), ROOT)))
    assert [k for k, _ in errors] == ["sizes.13b.evaluate_shards"]  # 2 shards of ~8.7 h fit its 10 h
    assert errors[0][1].startswith("1: ") and errors[0][1].endswith("past its 600 min runtime: set it to 2 or more")
    # the base 13B: 21 tasks x 2,500 items under base_zero_shot (256 prompt + 200 new tokens an
    # item) and base_k_shot (2 examples: 3 x 256 + 200); 2 N FLOPs a token at 312 TFLOP/s x
    # eval_mfu 0.1 = ~17.3 h > 600 min (its SampleGen-tuned models, ~12.8 h, are over too)
    assert "evaluate_model base/llama2-13b is estimated at ~1038 min" in errors[0][1]
    assert "(and 3 more model(s))" in errors[0][1]
    assert 21 * 2500 * (456 + 968) * 2 * 13e9 / (312e12 * 0.1) / 60 == pytest.approx(1038, abs=0.5)
    # the shipped configs: nothing estimated past its limit
    for name in ("inherent-limits", "scaling", "diversity", "teachers", "behavior-shift", "all-studies"):
        assert plan.runtime_errors(g.Grid(_cfg(name))) == [], name


# ---- a 70B evaluation: one GPU's speed, in shards ------------------------------------------
BASE_70B = "base/llama2-70b"
# study A's base Llama-2-70B: 21 tasks x 2,500 items x [base_zero_shot: 256 prompt + 200 new
# tokens; base_k_shot, 2 examples: 3 x 256 + 200]; 2 N FLOPs a token on one A100 (312 TFLOP/s)
# at eval_mfu 0.1. Its 4 GPUs hold the layers one after the other (device_map auto): one
# computes at a time, so the wall time is the one-GPU time and the GPU-hours 4 times that.
TOKENS_70B = 21 * 2500 * ((256 + 200) + (3 * 256 + 200))
HOURS_70B = TOKENS_70B * 2 * 70e9 / (312e12 * 0.1) / 3600


def test_a_layer_split_70b_evaluation_takes_one_gpus_time_not_a_quarter():
    from itlab import grid as g

    grid = g.Grid(_cfg("inherent-limits"))
    job = plan.eval_job(grid, BASE_70B)  # the whole evaluation as one job
    # its tokens at one GPU's speed, whatever the token count (the plan divided this by 4)
    assert job.gpus == 4 and job.hours == pytest.approx(job.extra["tokens"] * 2 * 70e9 / (312e12 * 0.1) / 3600)
    assert job.extra["tokens"] == TOKENS_70B == 74_760_000  # the 2-shot prompts counted
    assert job.hours == pytest.approx(HOURS_70B, rel=1e-9) and HOURS_70B == pytest.approx(93.18, abs=0.01)
    assert job.gpu_hours == pytest.approx(4 * HOURS_70B, rel=1e-9)
    assert job.hours * 60 > job.runtime_min  # far past its 24 h: hence the shards
    # the shipped config: 6 shards, their tokens the model's, each within its runtime
    shards = [j for j in plan.plan_jobs(_cfg("inherent-limits")) if j.name.startswith(BASE_70B + "#")]
    assert [j.rule for j in shards] == ["evaluate_shard"] * 6
    assert sum(j.extra["tokens"] for j in shards) == TOKENS_70B
    assert sum(j.gpu_hours for j in shards) == pytest.approx(4 * HOURS_70B, rel=1e-9)
    assert max(j.hours for j in shards) * 60 <= shards[0].runtime_min
    assert max(j.hours for j in shards) == pytest.approx(16.2, abs=0.05)  # the plan's largest job


def test_shards_are_balanced_by_estimated_tokens_not_by_count():
    from itlab import grid as g

    grid = g.Grid(_cfg("inherent-limits"))
    pairs = grid.evals[BASE_70B].items
    weights = {p: g.eval_pair_tokens(grid, BASE_70B, *p) for p in pairs}
    assert set(weights.values()) == {2500 * 456, 2500 * 968}  # a 2-shot pair costs twice a zero-shot one
    shards = g.eval_shards(grid, BASE_70B)
    assert len(shards) == 6 and sorted(p for s in shards for p in s) == sorted(pairs)  # each pair once
    loads = [sum(weights[p] for p in s) for s in shards]
    assert max(loads) - min(loads) <= max(weights.values())
    assert len({len(s) for s in shards}) > 1  # equal tokens, unequal pair counts
    # seven pairs a shard, dealt in sorted order: three shards get only 2-shot pairs
    by_count = [sorted(pairs)[i::6] for i in range(6)]
    assert max(sum(weights[p] for p in s) for s in by_count) > max(loads)
    assert g.balance_shards({"a": 5, "b": 4, "c": 3, "d": 3, "e": 1}, 2) == [["a", "d"], ["b", "c", "e"]]  # 8 and 8
    assert g.eval_shards(grid, BASE_70B, 100) == [[p] for p in sorted(pairs, key=lambda p: (-weights[p], p))]


def test_an_evaluation_past_its_runtime_names_the_shard_key_with_a_count_that_fits():
    from itlab import grid as g

    cfg = yaml.safe_load((ROOT / "experiments/inherent-limits.yaml").read_text())
    cfg["sizes"]["70b"]["evaluate_shards"] = 1
    errors = plan.runtime_errors(g.Grid(validate(cfg, ROOT)))
    assert [k for k, _ in errors] == ["sizes.70b.evaluate_shards"]
    assert f"evaluate_model {BASE_70B} is estimated at ~{HOURS_70B * 60:.0f} min" in errors[0][1]
    assert "(and 9 more model(s))" in errors[0][1]  # its 9 tuned models (SampleGen's ~69 h)
    assert errors[0][1].endswith("set it to 4 or more")  # 4 balanced shards: <= 23.6 h each
    # one (task, condition) alone past the runtime: more shards cannot help, the runtime key
    cfg["sizes"]["70b"]["evaluate_shards"] = 6
    cfg["sizes"]["70b"]["evaluate_resources"]["runtime"] = 60  # a zero-shot pair alone is ~1.4 h
    errors = plan.runtime_errors(g.Grid(validate(cfg, ROOT)))
    assert [k for k, _ in errors] == ["sizes.70b.evaluate_resources.runtime"]
    assert errors[0][1].startswith("60 min, but shard ") and BASE_70B in errors[0][1]


@pytest.mark.slow
def test_sharded_evaluation_jobs_in_the_dry_run_are_the_plans(tmp_path):
    """Study A's dry-run: each 70B model's shards as evaluate_shard jobs with the plan's
    resources and their own logs, merged by one local merge_eval_shards job into the
    eval/<model>/ files the downstream rules read; other models keep one evaluate_model job."""
    res = _dry_run(tmp_path, yaml.safe_load((ROOT / "experiments/inherent-limits.yaml").read_text()))
    assert res.returncode == 0, res.stderr[-3000:]
    blocks = [b for b in re.split(r"\n\[[^\]]+\]\n", res.stdout) if re.match(r"\s*(?:local)?rule \w+:", b)]
    shards, merges, whole = {}, {}, set()
    for b in blocks:
        rule = re.match(r"\s*(?:local)?rule (\w+):", b).group(1)
        if rule == "evaluate_shard":
            m = re.search(r"wildcards: model=(\S+), shard=(\d+)", b)
            r = dict(kv.split("=", 1) for kv in re.search(r"resources: (.*)$", b, re.M).group(1).split(", "))
            shards[f"{m.group(1)}#{m.group(2)}"] = (r, re.search(r"log: (\S+)", b).group(1))
        elif rule == "merge_eval_shards":
            merges[re.search(r"wildcards: model=(\S+)", b).group(1)] = re.search(r"output: (.*)$", b, re.M).group(1)
        elif rule == "evaluate_model":
            whole.add(re.search(r"wildcards: model=(\S+)", b).group(1))
    cfg = _cfg("inherent-limits")
    jobs = {j.name: j for j in plan.plan_jobs(cfg) if j.rule == "evaluate_shard"}
    assert set(jobs) == set(shards) and len(shards) == 10 * 6  # the base 70B and its 9 tuned models
    for name, j in jobs.items():
        r, log = shards[name]
        assert (j.gpus, j.mem_mb, j.runtime_min) == (int(r["gpu"]), int(r["mem_mb"]), int(r["runtime"])), name
        assert log == f"{tmp_path}/results/logs/evaluate_shard/{name.replace('#', '/')}.log"
    assert set(merges) == {n.split("#")[0] for n in jobs} and not set(merges) & whole
    assert merges[BASE_70B] == (f"{tmp_path}/results/eval/{BASE_70B}/scores.tsv, "
                                f"{tmp_path}/results/eval/{BASE_70B}/samples.jsonl")
    assert len(whole) == 94 - 10 and "base/llama2-13b" in whole
    # the merge runs where snakemake runs (a local rule: no Slurm job, no GPU)
    local = re.search(r"^localrules:\s+([\w,\s]+?)\n\n", (ROOT / "rules/evaluate.smk").read_text(), re.M)
    assert "merge_eval_shards" in local.group(1).replace(",", " ").split()


def test_a_runtime_over_its_partitions_limit_is_an_error_naming_the_key(capsys):
    from itlab import grid as g

    cfg = yaml.safe_load((ROOT / "experiments/inherent-limits.yaml").read_text())
    cfg["plan"] = {"partition_limits": {"gpu": 1440, "cpu": 10}}
    keys = [k for k, _ in plan.runtime_errors(g.Grid(validate(cfg, ROOT)))]
    assert keys == ["sizes.70b.resources.runtime"]  # the 70B QLoRA asks 2,880 min; its evaluation 1,440
    # the plan prints it and exits 1
    assert plan.main(["--configfile", "experiments/inherent-limits.yaml", "--config", "plan.partition_limits={gpu: 1440}"]) == 1
    assert "error: config key 'sizes.70b.resources.runtime': 2880 min exceeds partition 'gpu'" in capsys.readouterr().out


@pytest.mark.slow
def test_the_workflow_refuses_a_job_that_would_be_killed_before_any_job(tmp_path):
    res = _dry_run(tmp_path, _inherent_limits_before_the_fix())
    assert res.returncode != 0
    assert "config key 'sizes.13b.evaluate_shards'" in res.stderr and "base/llama2-13b" in res.stderr
    assert not (tmp_path / "results").exists()


def test_a_gpu_block_without_a_partition_is_a_plan_warning_naming_the_key(tmp_path, capsys):
    # without a partition, Slurm puts a GPU job on the profile's default (CPU) partition
    assert plan.main(["--configfile", "experiments/scaling.yaml"]) == 0
    assert "names no partition" not in capsys.readouterr().out
    cfg = yaml.safe_load((ROOT / "experiments/scaling.yaml").read_text())
    del cfg["resources"]["evaluate"]["partition"], cfg["sizes"]["70b"]["resources"]["partition"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert plan.main(["--configfile", str(tmp_path / "c.yaml")]) == 0
    warned = [l for l in capsys.readouterr().out.splitlines() if "names no partition" in l]
    assert [l.split("'")[1] for l in warned] == ["sizes.70b.resources.partition", "resources.evaluate.partition"]


def test_tuning_jobs_run_longest_first_below_the_base_models(tmp_path):
    """The dry-run's tune_model priorities order the runs by estimated FLOPs (longest first,
    so no long run is left to the end on a few cores), all below the base models' 10."""
    from itlab import grid as g

    res = snakemake("-n", "--cores", "1", "--configfile", "experiments/embedded-all.yaml",
                    "--config", f"results_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    priority = {}
    for block in re.split(r"\n\[[^\]]+\]\n", res.stdout):
        if re.match(r"\s*rule tune_model:", block):
            p = re.search(r"priority: (\d+)", block)
            priority[re.search(r"wildcards: run=(\S+)", block).group(1)] = int(p.group(1)) if p else 0
    cfg = plan.load(["experiments/embedded-all.yaml"], [f"results_dir={tmp_path}"])
    grid = g.Grid(cfg)
    flops = {rid: plan.tune_flops(grid, rid) for rid in grid.runs}
    assert set(priority) == set(flops) and len(priority) >= 20
    assert min(priority.values()) == 0 and max(priority.values()) == 9
    for a in flops:
        for b in flops:
            if flops[a] > flops[b]:
                assert priority[a] >= priority[b], (a, b)
    longest = max(flops, key=flops.get)
    assert priority[longest] == 9 and priority[min(flops, key=flops.get)] == 0
