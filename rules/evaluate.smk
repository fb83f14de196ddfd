# Evaluation: one lm-eval job per model, covering every (task, condition) the studies ask.


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
