# Evaluation: one lm-eval job per model covering every (task, condition) the studies ask, or,
# for a size with evaluate_shards > 1, one job per shard of its pairs (balanced by estimated
# tokens, itlab.grid.eval_shards) and a local merge into the same eval/<model>/ outputs.


localrules:
    merge_eval_shards,


rule evaluate_model:
    input:
        unpack(eval_inputs),
    output:
        scores=f"{R}/eval/{{model}}/scores.tsv",
        samples=f"{R}/eval/{{model}}/samples.jsonl",
    log:
        f"{R}/logs/evaluate_model/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_model/{{model}}.tsv"
    wildcard_constraints:
        model=eval_model_pattern(sharded=False),
    conda:
        f"{ENVS}/eval.yaml"
    threads: 1
    resources:
        **eval_rule_resources(),
    params:
        spec=eval_params,
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
        harness_data=harness_folders,
    script:
        "../scripts/evaluate_model.py"


rule evaluate_shard:
    input:
        unpack(eval_inputs),
    output:
        scores=f"{R}/eval_shards/{{model}}/{{shard}}/scores.tsv",
        samples=f"{R}/eval_shards/{{model}}/{{shard}}/samples.jsonl",
    log:
        f"{R}/logs/evaluate_shard/{{model}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_shard/{{model}}/{{shard}}.tsv"
    wildcard_constraints:
        model=eval_model_pattern(sharded=True),
        shard="[0-9]+",
    conda:
        f"{ENVS}/eval.yaml"
    threads: 1
    resources:
        **eval_rule_resources(sharded=True),
    params:
        spec=eval_params,
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
        harness_data=harness_folders,
    script:
        "../scripts/evaluate_model.py"


rule merge_eval_shards:
    input:
        unpack(eval_shard_outputs),
    output:
        scores=f"{R}/eval/{{model}}/scores.tsv",
        samples=f"{R}/eval/{{model}}/samples.jsonl",
    log:
        f"{R}/logs/merge_eval_shards/{{model}}.log",
    wildcard_constraints:
        model=eval_model_pattern(sharded=True),
    conda:
        f"{ENVS}/eval.yaml"
    params:
        shards=eval_shard_items,
    script:
        "../scripts/merge_eval_shards.py"
