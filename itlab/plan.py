"""Compute plan: what a config will ask of a cluster, before anything is submitted.

    python -m itlab.plan --configfile experiments/all-studies.yaml [--jobs 200] [--tsv FILE]

Per rule, study and partition: jobs, GPUs per job, GPU-hours, wall time at the configured
concurrency, peak checkpoint disk and exported model disk; then the totals and the largest
single job. Each job's GPUs, memory and runtime come from the functions the rules call
(itlab.grid.tune_resources, eval_resources, teachers_resources, behavior_resources), so the
plan is what the Slurm jobs request. Jobs that would be killed at their time limit
(runtime_errors: an evaluation estimated past its runtime, a runtime over its partition's
plan.partition_limits) are printed as errors, exit status 1; the workflow refuses them too.

Estimates (config key ``plan``; defaults in the schema say where they come from):

- tuning: training tokens x (4 N_total + 2 N_trainable) FLOPs (itlab/train/flops.py: 6N for
  full fine-tuning, ~4N for LoRA) / (peak FLOP/s x MFU of the job's GPU model). Training
  tokens = examples x epochs x min(max_seq_len, plan.tokens_per_example) (or max_steps x
  global batch x that).
- evaluation: items x (plan.eval_prompt_tokens x (1 + k shots) + max_new_tokens (x4 for a
  SampleGen-tuned model)) x 2 N / (peak x plan.eval_mfu) is the wall time, at one GPU's
  speed whatever the job's GPUs (lm-eval spreads a model over them layer by layer: one GPU
  computes at a time); GPU-hours are that x GPUs. A model of a size with
  ``evaluate_shards`` > 1 is one job per shard (itlab.grid.eval_shards), each estimated alone.
- every other GPU rule (study C's generation/scoring, study D's attribution): its requested
  runtime x GPUs, an upper bound.
- wall time of a rule: its jobs list-scheduled on ``--jobs`` concurrent jobs (the Slurm
  profile's ``jobs``): max(longest job, GPU-hours / GPUs of the concurrent jobs). Rules are
  summed as if they ran one after the other (tuning, then evaluation), an upper bound.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from itlab import grid as g

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    rule: str
    study: str
    name: str
    gpus: int  # GPUs of the whole job (nodes x per node)
    nodes: int
    mem_mb: int
    runtime_min: int  # requested
    partition: str
    gpu_hours: float  # estimated
    estimate: str  # how: "flops" or "requested"
    checkpoint_gb: float = 0.0
    model_gb: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def hours(self) -> float:
        """Wall-clock hours of the job itself."""
        return self.gpu_hours / self.gpus if self.gpus else self.runtime_min / 60


def gpu_spec(cfg: dict, model: str | None) -> dict:
    """{peak_tflops, mfu} of a GPU model (plan.gpu_models; plan.default_gpu_model if unset)."""
    p = cfg["plan"]
    name = (model or p["default_gpu_model"]).lower()
    if name not in p["gpu_models"]:
        from itlab.config import ConfigError

        raise ConfigError(f"plan.gpu_models.{name}", "no peak TFLOP/s and MFU for this GPU model")
    return p["gpu_models"][name]


def train_examples(grid: g.Grid, trainset: str) -> int:
    """Examples of a training set (the counts the data rules build; hub tasks: cap per task)."""
    cfg, ts = grid.cfg, grid.trainsets[trainset]
    spec = ts.spec
    if ts.kind == "subset":
        return spec["n"]
    if ts.kind == "markov":
        return spec["num_rules"] * spec["examples_per_rule"]
    if ts.kind == "teacher":
        ins = cfg["studies"]["teachers"]["instructions"]
        return ins["per_task"] * max(1, len(ins["tasks"]) if ins["tasks"] != "all" else 1)
    from itlab.data import mixture_tasks

    mix = cfg["data"]["mixtures"][spec["mixture"]]
    if mix.get("task_counts"):
        return sum(mix["task_counts"].values())
    clusters = {t: g.task_cluster(cfg, t) for t in g.all_tasks(cfg)}
    members = mixture_tasks(mix, clusters, g.heldout_tasks(cfg))
    synthetic = set(g.synthetic_tasks(cfg))
    capped = sum(min(cfg["data"]["splits"]["train"], mix["cap"]) if t in synthetic else mix["cap"] for t in members)
    return min(capped, mix.get("total", capped))


def train_tokens(grid: g.Grid, run_id: str) -> float:
    run = grid.runs[run_id]
    recipe = grid.cfg["recipes"][run.recipe]
    per_example = min(recipe["max_seq_len"], grid.cfg["plan"]["tokens_per_example"])
    args = g.tune_arguments(grid, run_id)
    if args["max_steps"]:
        return args["max_steps"] * args["global_batch_size"] * per_example
    return train_examples(grid, run.trainset) * recipe["epochs"] * per_example


def tune_flops(grid: g.Grid, run_id: str) -> float:
    run = grid.runs[run_id]
    n = g.param_count(grid.cfg, grid.base_models[run.base])
    lora = "lora" in grid.cfg["recipes"][run.recipe]
    return train_tokens(grid, run_id) * (4 * n + 2 * (0 if lora else n))  # adapters neglected


def tune_priorities(grid: g.Grid, levels: int = 10) -> dict[str, int]:
    """Scheduling priority of each tuning run, 0 to levels - 1: the longest runs (estimated
    FLOPs, log scale) first. On a few cores the makespan's tail is a long run started last
    (make run: a 50 s study-B cell running alone at the end); longest-first packs the short
    ones around the long. Below the pretraining rules' priority (10), which feed every run."""
    logs = {rid: math.log(max(tune_flops(grid, rid), 1.0)) for rid in grid.runs}
    if not logs:
        return {}
    low, high = min(logs.values()), max(logs.values())
    span = (high - low) or 1.0
    return {rid: round((levels - 1) * (v - low) / span) for rid, v in logs.items()}


def _resources_gpus(res: dict) -> tuple[int, int]:
    """(GPUs of the whole job, nodes) from a resources dict as the rules pass it."""
    nodes = res.get("nodes", 1) or 1
    if res.get("gpu"):
        return int(res["gpu"]), nodes
    if res.get("gres"):
        return int(str(res["gres"]).rsplit(":", 1)[-1]) * nodes, nodes
    return 0, nodes


def tune_jobs(grid: g.Grid) -> list[Job]:
    out = []
    for rid, run in grid.runs.items():
        res = g.tune_resources(grid, rid)
        gpus, nodes = _resources_gpus(res)
        size = grid.cfg["sizes"][grid.base_models[run.base].size]
        spec = gpu_spec(grid.cfg, size["resources"].get("gpu_model"))
        flops = tune_flops(grid, rid)
        gpu_hours = flops / (spec["peak_tflops"] * 1e12 * spec["mfu"]) / 3600 if gpus else 0.0
        n = g.param_count(grid.cfg, grid.base_models[run.base])
        weight = 2 if g.tune_arguments(grid, rid)["bf16"] else 4
        out.append(Job("tune_model", run.study, rid, gpus, nodes, res["mem_mb"], res["runtime"],
                       res.get("slurm_partition", ""), gpu_hours, "flops", res["checkpoint_mb"] / 1000, n * weight / 1e9,
                       {"tokens": train_tokens(grid, rid), "flops": flops, "params": n}))
    return out


def eval_job(grid: g.Grid, model: str, shard: int | None = None, shards: int | None = None) -> Job:
    """The evaluation job of a model (``shard``: one of its shards, itlab.grid.eval_shards, of
    its sizes.<size>.evaluate_shards or ``shards``).

    Wall time: its tokens x 2 N FLOPs at one GPU's peak x plan.eval_mfu, whatever its GPUs: a
    model spread over several GPUs (HFLM parallelize, device_map auto) is split layer by layer,
    and only one GPU computes at a time, so it runs at one GPU's speed. GPU-hours: wall x GPUs."""
    p = grid.cfg["plan"]
    job = grid.evals[model]
    res = g.eval_resources(grid, model)
    gpus = int(res["gpu"] or 0)
    settings = g.eval_settings(grid, model)
    pairs = sorted(job.items) if shard is None else g.eval_shards(grid, model, shards)[shard]
    items = sum(g.eval_items(grid, t, settings) for t, _ in pairs)
    tokens = sum(g.eval_pair_tokens(grid, model, *pair) for pair in pairs)
    n = g.param_count(grid.cfg, grid.base_models[grid.model_meta(model)["base_model"]])
    spec = gpu_spec(grid.cfg, res.get("gpu_model"))
    wall = tokens * 2 * n / (spec["peak_tflops"] * 1e12 * p["eval_mfu"]) / 3600 if gpus else 0.0
    rule, name = ("evaluate_model", model) if shard is None else ("evaluate_shard", f"{model}#{shard}")
    return Job(rule, job.study, name, gpus, 1, res["mem_mb"], res["runtime"], res.get("slurm_partition") or "",
               wall * gpus, "flops", extra={"items": items, "tokens": tokens, "pairs": len(pairs)})


def eval_jobs(grid: g.Grid) -> list[Job]:
    """One evaluation job per model, or one per shard of a model with sizes.<size>.evaluate_shards
    (their merge is a local rule without a GPU)."""
    out = []
    for model in grid.evals:
        n = g.eval_shard_count(grid, model)
        out += [eval_job(grid, model)] if n == 1 else [eval_job(grid, model, i) for i in range(n)]
    return out


def _requested(rule, study, name, res: dict, gpus_key="gpus") -> Job:
    gpus = int(res.get(gpus_key) or 0)
    runtime = res.get("runtime", 60)
    return Job(rule, study, name, gpus, 1, res.get("mem_mb", 4000), runtime,
               res.get("partition") or res.get("slurm_partition") or "", gpus * runtime / 60, "requested")


def other_jobs(grid: g.Grid) -> list[Job]:
    cfg, out = grid.cfg, []
    for base, bm in grid.base_models.items():
        if bm.source == "build" and cfg["sizes"][bm.size].get("pretrain_tokens", 0) > 0:
            out.append(_requested("pretrain_model", "", base, cfg["resources"]["pretrain"]))
    if "teachers" in cfg["studies"]:
        for gen in grid.generators:  # a zoo generator runs no model: no GPU (teachers_runs_a_model)
            for rule in ("generate_responses", "score_rewards"):
                out.append(_requested(rule, "teachers", gen, g.teachers_resources(grid, rule, gen), "gpu"))
        s = cfg["studies"]["teachers"]
        for scorer in s["students"] + ["reference"]:
            out.append(_requested("measure_responses", "teachers", scorer,
                                  g.teachers_resources(grid, "measure_responses"), "gpu"))
        for model in grid.teacher_runs():
            out.append(_requested("answer_benchmarks", "teachers", model,
                                  g.teachers_resources(grid, "answer_benchmarks"), "gpu"))
    if "behavior_shift" in cfg["studies"]:
        shards = cfg["studies"]["behavior_shift"]["shards"]
        for pair in sorted(grid.behavior_pairs):
            for side in ("base", "tuned"):
                res = g.behavior_resources(grid, pair, "attribution")
                for i in range(shards):
                    out.append(_requested("attribute_responses", "behavior_shift", f"{pair}/{side}/{i}",
                                          {**res, "partition": res.get("slurm_partition")}, "gpu"))
                w = g.behavior_resources(grid, pair, "weights")
                out.append(_requested("explain_weights", "behavior_shift", f"{pair}/{side}",
                                      {**w, "partition": w.get("slurm_partition")}, "gpu"))
    return out


def _eval_overrun(grid: g.Grid, model: str) -> dict | None:
    """A model's evaluation (its longest shard) estimated past its runtime: {key, fits, minutes,
    what}. The key is sizes.<size>.evaluate_shards when more shards bring every shard under the
    runtime (``fits``: the least count that does), else the runtime key (one (task, condition)
    alone takes longer; ``fits`` 0)."""
    n = g.eval_shard_count(grid, model)
    jobs = [eval_job(grid, model)] if n == 1 else [eval_job(grid, model, i) for i in range(n)]
    worst = max(jobs, key=lambda j: j.hours)
    if not worst.gpus or worst.hours * 60 <= worst.runtime_min:
        return None
    what = "" if n == 1 else f"shard {worst.name.rsplit('#', 1)[1]} of {n} of "
    what += (f"evaluate_model {model} is estimated at ~{worst.hours * 60:.0f} min ({worst.extra['tokens']:,} tokens at "
             f"one GPU's speed: a model spread over GPUs runs layer by layer; plan.eval_mfu; python -m itlab.plan)")
    out = {"key": g.eval_resources_block(grid, model)[0] + ".runtime", "fits": 0, "minutes": worst.hours * 60, "what": what,
           "shards": n, "runtime": worst.runtime_min}
    per_token = worst.hours * 60 / worst.extra["tokens"]
    for more in range(n + 1, len(grid.evals[model].items) + 1):
        longest = max(sum(g.eval_pair_tokens(grid, model, *p) for p in shard) for shard in g.eval_shards(grid, model, more))
        if longest * per_token <= worst.runtime_min:
            size = grid.base_models[grid.model_meta(model)["base_model"]].size
            return {**out, "key": f"sizes.{size}.evaluate_shards", "fits": more}
    return out


def eval_runtime_errors(grid: g.Grid) -> list[tuple[str, str]]:
    """runtime_errors of the evaluation jobs: one per config key, naming its longest model
    (for a shard key, with the count that brings every model of the size under its runtime)."""
    from itlab.config import ConfigError

    by_key: dict[str, list[dict]] = {}
    for model in grid.evals:
        try:
            over = _eval_overrun(grid, model)
        except ConfigError:  # a GPU model without plan.gpu_models: not estimated
            continue
        if over:
            by_key.setdefault(over["key"], []).append(over)
    out = []
    for key, overs in by_key.items():
        o = max(overs, key=lambda o: o["minutes"])
        others = f" (and {len(overs) - 1} more model(s))" if len(overs) > 1 else ""
        if key.endswith(".evaluate_shards"):
            out.append((key, f"{o['shards']}: {o['what']}{others}, past its {o['runtime']} min runtime: set it to "
                             f"{max(x['fits'] for x in overs)} or more"))
        else:
            out.append((key, f"{o['runtime']} min, but {o['what']}{others}: raise it"))
    return out


def _resource_blocks(cfg: dict):
    """(key, resources) of every resources block of the config."""
    for size, spec in cfg["sizes"].items():
        for name in ("resources", "evaluate_resources"):
            if name in spec:
                yield f"sizes.{size}.{name}", spec[name]
    for name, res in cfg["resources"].items():
        yield f"resources.{name}", res


def partition_warnings(cfg: dict) -> list[tuple[str, str]]:
    """(config key, message) of every GPU resources block without a partition: under Slurm its
    jobs go to the profile's default partition (profiles/slurm: a CPU partition), where the
    GPU request is refused at submission, after the jobs before it have run. Locally harmless,
    so a warning, not an error."""
    blocks = list(_resource_blocks(cfg))
    if "behavior_shift" in cfg["studies"]:
        blocks.append(("studies.behavior_shift.resources", cfg["studies"]["behavior_shift"].get("resources", {})))
    return [(f"{key}.partition", f"asks for {res['gpus']} GPU(s) and names no partition: Slurm puts it on the "
                                 f"profile's default partition")
            for key, res in blocks if res.get("gpus") and not res.get("partition")]


def runtime_errors(grid: g.Grid) -> list[tuple[str, str]]:
    """(config key, message) of every job that would be killed at its time limit, before any
    job runs (rules/common.smk fails the workflow on them; the plan prints them):

    - an evaluation job estimated to run past its requested runtime (it does not resume; a
      tuning job does, from its checkpoint: the plan only warns about those);
    - a runtime above its partition's limit (plan.partition_limits), which Slurm rejects or
      never starts.
    An evaluation on a GPU model without a plan.gpu_models entry is not estimated."""
    from itlab.config import ConfigError

    cfg, out = grid.cfg, eval_runtime_errors(grid)
    limits = cfg["plan"]["partition_limits"]
    blocks = list(_resource_blocks(cfg))
    for pair in sorted(grid.behavior_pairs):  # what each study-D job requests (its partition included)
        for kind in ("attribution", "weights"):
            r = g.behavior_resources(grid, pair, kind)
            blocks.append(("studies.behavior_shift.resources",
                           {"runtime": r["runtime"], "partition": r.get("slurm_partition")}))
    for key, res in blocks:
        part, runtime = res.get("partition"), res.get("runtime", 60)
        if part in limits and runtime > limits[part]:
            out.append((f"{key}.runtime", f"{runtime} min exceeds partition {part!r}'s limit of {limits[part]} min "
                                          f"(plan.partition_limits.{part})"))
    return list(dict.fromkeys(out))


def mirror_gb(grid: g.Grid) -> float:
    """Hub base models in the mirror, bf16 safetensors (2 bytes per parameter), once per hub id."""
    seen = {}
    for bm in grid.base_models.values():
        if bm.source == "hub":
            seen[bm.location] = g.param_count(grid.cfg, bm) * 2 / 1e9
    return sum(seen.values())


def plan_jobs(cfg: dict) -> list[Job]:
    grid = g.Grid(cfg)
    return tune_jobs(grid) + eval_jobs(grid) + other_jobs(grid)


def wall_hours(jobs: list[Job], concurrent: int, gpus: int = 0) -> float:
    """List-scheduling bound of jobs on ``concurrent`` slots (and ``gpus`` GPUs, 0: as many as
    the jobs ask): max(longest, job-hours / slots, GPU-hours / GPUs)."""
    if not jobs:
        return 0.0
    longest = max(j.hours for j in jobs)
    by_gpus = sum(j.gpu_hours for j in jobs) / gpus if gpus else 0.0
    return max(longest, sum(j.hours for j in jobs) / min(concurrent, len(jobs)), by_gpus)


def peak_checkpoint_gb(jobs: list[Job], concurrent: int, gpus: int = 0) -> float:
    """Checkpoint disk if the largest runs ran at once: at most ``concurrent`` jobs, and at
    most ``gpus`` GPUs between them (0: no GPU limit)."""
    total, used, n = 0.0, 0, 0
    for j in sorted(jobs, key=lambda j: j.checkpoint_gb, reverse=True):
        if n == concurrent:
            break
        if gpus and used + j.gpus > gpus:
            continue
        total, used, n = total + j.checkpoint_gb, used + j.gpus, n + 1
    return total


def summarize(jobs: list[Job], concurrent: int, gpus: int = 0) -> list[dict]:
    rows: dict[tuple, list[Job]] = {}
    for j in jobs:
        rows.setdefault((j.rule, j.study or "-", j.partition or "-"), []).append(j)
    out = []
    for (rule, study, part), js in rows.items():
        counts = sorted({j.gpus for j in js})
        out.append({"rule": rule, "study": study, "partition": part, "jobs": len(js),
                    "gpus_per_job": f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0]),
                    "gpu_hours": sum(j.gpu_hours for j in js), "wall_hours": wall_hours(js, concurrent, gpus),
                    "estimate": js[0].estimate, "checkpoint_gb_peak": peak_checkpoint_gb(js, concurrent, gpus),
                    "model_gb": sum(j.model_gb for j in js)})
    return out


def render(cfg: dict, jobs: list[Job], concurrent: int, gpus: int = 0, errors=()) -> str:
    """The plan as text; ``errors``: runtime_errors of the config, printed last."""
    rows = summarize(jobs, concurrent, gpus)
    lines = [f"itlab compute plan: {len(jobs)} jobs of the compute rules, {concurrent} concurrent jobs (--jobs), "
             f"{gpus or 'unlimited'} GPUs (--gpus)",
             f"{'rule':20s} {'study':16s} {'partition':9s} {'jobs':>5s} {'GPUs/job':>8s} {'GPU-h':>10s} "
             f"{'wall h':>8s} {'ckpt GB':>9s} {'model GB':>9s}  estimate"]
    for r in rows:
        lines.append(f"{r['rule']:20s} {r['study']:16s} {r['partition']:9s} {r['jobs']:5d} {r['gpus_per_job']:>8s} "
                     f"{r['gpu_hours']:10.1f} {r['wall_hours']:8.1f} {r['checkpoint_gb_peak']:9.0f} {r['model_gb']:9.0f}  {r['estimate']}")
    total = sum(r["gpu_hours"] for r in rows)
    wall = sum(r["wall_hours"] for r in rows)
    grid_mirror = mirror_gb(g.Grid(cfg))
    scratch = cfg.get("scratch_dir") or f"{cfg['results_dir']}/tuned"
    lines.append(f"total: {total:,.0f} GPU-hours; wall <= {wall:,.0f} h ({wall / 24:.1f} days) with rules in sequence")
    lines.append(f"disk: checkpoints at peak {sum(r['checkpoint_gb_peak'] for r in rows):,.0f} GB in {scratch} (the "
                 f"largest runs that fit --jobs and --gpus at once, each with keep_checkpoints + 1); "
                 f"tuned models {sum(r['model_gb'] for r in rows):,.0f} GB in {cfg['results_dir']}/tuned; "
                 f"hub mirror {grid_mirror:,.0f} GB in {cfg['mirror']['dir']}")
    big = max(jobs, key=lambda j: (j.gpu_hours, j.gpus))
    lines.append(f"largest job: {big.rule} {big.name}: {big.gpus} GPU(s) on {big.nodes} node(s), {big.mem_mb} MB/node, "
                 f"{big.gpu_hours:,.1f} GPU-h (~{big.hours:,.1f} h; requested {big.runtime_min / 60:,.1f} h)")
    over = [j for j in jobs if j.rule == "tune_model" and j.gpus and j.hours * 60 > j.runtime_min]
    if over:
        lines.append(f"warning: {len(over)} tuning job(s) are estimated to run past their requested runtime (each "
                     f"requeues from its checkpoint at the limit), e.g. {over[0].name} "
                     f"(~{over[0].hours:.1f} h vs {over[0].runtime_min / 60:.1f} h)")
    for key, message in partition_warnings(cfg):
        lines.append(f"warning: config key '{key}': {message}")
    for key, message in errors:
        lines.append(f"error: config key '{key}': {message}")
    return "\n".join(lines)


def load(configfiles: list[str], overrides: list[str]) -> dict:
    """The config as the workflow sees it: configfiles merged in order, --config on top, validated."""
    import yaml

    from itlab.config import validate

    cfg: dict = {}
    for f in configfiles:
        cfg.update(yaml.safe_load((ROOT / f if not Path(f).is_absolute() else Path(f)).read_text()))
    for item in overrides:
        key, _, value = item.partition("=")
        node = cfg
        *parents, last = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = yaml.safe_load(value)
    return validate(cfg, ROOT)


def profile_jobs(profile: Path = ROOT / "profiles/slurm/config.yaml") -> int:
    import yaml

    return int(yaml.safe_load(profile.read_text()).get("jobs", 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", nargs="+", default=["config.yaml"])
    ap.add_argument("--config", nargs="*", default=[], help="KEY=VALUE overrides (dotted keys), as snakemake --config")
    ap.add_argument("--jobs", type=int, default=None, help="concurrent jobs (default: the Slurm profile's jobs)")
    ap.add_argument("--gpus", type=int, default=0, help="GPUs the cluster gives at once (default: unlimited)")
    ap.add_argument("--tsv", help="also write one row per job here")
    opt = ap.parse_args(argv)
    from itlab.config import ConfigError

    try:
        cfg = load(opt.configfile, opt.config)
        jobs = plan_jobs(cfg)
    except ConfigError as err:
        print(f"itlab: error: {err}", file=sys.stderr)
        return 1
    concurrent = opt.jobs or profile_jobs()
    errors = runtime_errors(g.Grid(cfg))
    print(render(cfg, jobs, concurrent, opt.gpus, errors))
    if opt.tsv:
        cols = ["rule", "study", "name", "gpus", "nodes", "mem_mb", "runtime_min", "partition", "gpu_hours", "estimate",
                "checkpoint_gb", "model_gb"]
        with open(opt.tsv, "w", encoding="utf-8") as fh:
            fh.write("\t".join(cols) + "\n")
            for j in jobs:
                fh.write("\t".join(str(getattr(j, c)) for c in cols) + "\n")
    return 1 if errors else 0  # the workflow refuses these configs too


if __name__ == "__main__":
    sys.exit(main())
