"""Evaluation shards (sizes.<size>.evaluate_shards): a model's (task, condition) pairs run as
several jobs whose merged outputs are the one job's. Here through lm-eval with the oracle of
test_evaluate; the stand-in run of study A (tests/test_standin.py) runs them with a real
stand-in model through the workflow and checks them with ``check_standin_shards``."""

import pandas as pd
import pytest

from itlab.io import read_jsonl, write_jsonl
from test_evaluate import Oracle, _records

PAIRS = [(t, c) for t in ("t", "u", "v") for c in ("base_zero_shot", "base_k_shot", "tuned_zero_shot")]


def _files(tmp_path):
    files = {}
    for t in ("t", "u", "v"):
        write_jsonl(tmp_path / f"{t}.test.jsonl", _records("test", 6))
        write_jsonl(tmp_path / f"{t}.train.jsonl", _records("train", 10))
        files[t] = {"test": str(tmp_path / f"{t}.test.jsonl"), "fewshot": str(tmp_path / f"{t}.train.jsonl")}
    return files


def _run(pairs, files, out):
    from itlab.evaluate import run

    scores = run("oracle", pairs, files, 2, 4, 8, 4, out, lm=Oracle().lm, seed=3)
    scores.to_csv(out / "scores.tsv", sep="\t", index=False)
    return out / "scores.tsv", out / "samples.jsonl"


@pytest.mark.slow
def test_merged_shards_are_the_one_jobs_outputs(tmp_path):
    """Nine pairs in three shards (each a mix of tasks and conditions), merged: the score table
    and samples.jsonl equal, row for row and byte for byte, those of one job over all nine."""
    from itlab.evaluate import merge_shards
    from itlab.grid import balance_shards

    files = _files(tmp_path)
    whole = _run(PAIRS, files, tmp_path / "whole")
    shards = balance_shards({p: 3 if p[1] == "base_k_shot" else 1 for p in PAIRS}, 3)  # a 2-shot pair each
    assert all(len({t for t, _ in s}) > 1 and len({c for _, c in s}) > 1 for s in shards)
    outs = [_run(s, files, tmp_path / f"shard{i}") for i, s in enumerate(shards)]
    table, samples = merge_shards([o[0] for o in outs], [o[1] for o in outs], shards)
    expected = pd.read_csv(whole[0], sep="\t")
    assert len(expected) == 9 * 4 and table.equals(pd.read_csv(whole[0], sep="\t", dtype=dict(table.dtypes)))
    table.to_csv(tmp_path / "merged.tsv", sep="\t", index=False)
    assert (tmp_path / "merged.tsv").read_text() == whole[0].read_text()
    write_jsonl(tmp_path / "merged.jsonl", samples)
    assert (tmp_path / "merged.jsonl").read_text() == whole[1].read_text() and len(samples) == 9 * 4


def test_a_shard_missing_its_pairs_is_an_error_naming_it(tmp_path):
    from itlab.evaluate import merge_shards

    rows = pd.DataFrame([{"task": "t", "condition": "base_zero_shot", "metric": "exact_match", "score": 1.0, "n": 4}])
    for i in range(2):
        rows.to_csv(tmp_path / f"{i}.tsv", sep="\t", index=False)
        write_jsonl(tmp_path / f"{i}.jsonl", [])
    shards = [[["t", "base_zero_shot"]], [["t", "base_k_shot"]]]  # shard 1 holds shard 0's scores
    with pytest.raises(ValueError, match=r"shard 1 .*1\.tsv.*\('t', 'base_zero_shot'\).*none for \[\('t', 'base_k_shot'\)\]"):
        merge_shards([tmp_path / "0.tsv", tmp_path / "1.tsv"], [tmp_path / "0.jsonl", tmp_path / "1.jsonl"], shards)


def check_standin_shards(root, files, model="base/llama2-70b"):
    """After study A's stand-in run (``root``: its results; ``files``: its --configfile list):
    the model ran as its size's shards, each with its own log, and the merged eval/<model>/
    files equal one unsharded evaluation of the same stand-in model (same items, greedy
    decoding), run here in-process with the job's own parameters. Then a failed shard is the only
    evaluation job a rerun schedules: the finished shard's outputs are kept."""
    import re

    import yaml

    from conftest import ROOT, snakemake
    from itlab import grid as g
    from itlab.config import validate
    from itlab.evaluate import run

    cfg = {}
    for f in files:
        for k, v in yaml.safe_load((ROOT / f).read_text()).items():  # snakemake's deep merge
            cfg[k] = _merge(cfg.get(k), v)
    grid = g.Grid(validate(cfg, ROOT))
    shards = g.eval_shards(grid, model)
    assert len(shards) == g.eval_shard_count(grid, model) == 2
    for i in range(2):
        assert (root / f"eval_shards/{model}/{i}/scores.tsv").exists()
        assert "pairs" in (root / f"logs/evaluate_shard/{model}/{i}.log").read_text()
    settings = g.eval_settings(grid, model)
    items = sorted(grid.evals[model].items)
    out = root.parent / "unsharded"
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job (threads: 1): the same floating-point reductions
    try:
        scores = run(grid.model_dir(model), items, {t: grid.eval_task_files(t) for t, _ in items},
                     grid.evals[model].k_shot, settings["batch_size"], settings["max_new_tokens"],
                     settings["max_items_per_task"], out,
                     seed=grid.cfg["seed"], answer_format=grid.answer_format(model))
    finally:
        torch.set_num_threads(threads)
    merged = pd.read_csv(root / f"eval/{model}/scores.tsv", sep="\t")
    assert len(merged) == len(scores) > 0 and set(zip(merged.task, merged.condition)) == set(items)
    pd.testing.assert_frame_equal(merged, scores.reset_index(drop=True), check_dtype=False)
    samples = read_jsonl(root / f"eval/{model}/samples.jsonl")
    assert samples == read_jsonl(out / "samples.jsonl")  # every generated text, in order
    assert len({s["response"] for s in samples}) > len(samples) / 4  # real generations (here 101 of 168 distinct)
    # resume: shard 1 failed (snakemake removes a failed job's outputs; the merge and what
    # reads it never ran) while shard 0 finished: the rerun schedules shard 1 and the merge only
    for name in ("scores.tsv", "samples.jsonl"):
        (root / f"eval_shards/{model}/1/{name}").unlink()
        (root / f"eval/{model}/{name}").unlink()
    (root / "tables/scores.tsv").unlink()
    res = snakemake("-n", "--cores", "1", "--configfile", *map(str, files))
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.findall(r"wildcards: model=(\S+), shard=(\d+)", res.stdout) == [(model, "1")]
    assert re.search(r"^evaluate_shard\s+1$", res.stdout, re.M) and re.search(r"^merge_eval_shards\s+1$", res.stdout, re.M)
    assert not re.search(r"^evaluate_model\s", res.stdout, re.M)


def _merge(old, new):
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _merge(old.get(k), v) for k, v in new.items()}}
    return new
