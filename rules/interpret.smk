# Study D (behavior shift): prompts -> greedy responses + attribution matrices per model and
# shard, head and FFN word explanations per model -> statistics, figures and summary.


wildcard_constraints:
    pair="[A-Za-z0-9._-]+",
    side="base|tuned",
    shard="[0-9]+",


# Downloads run where snakemake runs (a login node with internet), like the mirror's fetches.
localrules:
    fetch_behavior_file,


rule fetch_behavior_file:
    output:
        file=f"{R}/data/behavior_shift/downloads/{{name}}.tsv",
    log:
        f"{R}/logs/fetch_behavior_file/{{name}}.log",
    wildcard_constraints:
        name="dataset|ratings",
    conda:
        f"{ENVS}/data.yaml"
    params:
        source=behavior_download,
    script:
        "../scripts/fetch_behavior_file.py"


rule build_behavior_prompts:
    input:
        unpack(behavior_prompt_inputs),
    output:
        prompts=f"{R}/data/behavior_shift/prompts.jsonl",
    log:
        f"{R}/logs/build_behavior_prompts.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        spec=behavior_prompt_params(),
    script:
        "../scripts/build_behavior_prompts.py"


rule attribute_responses:
    input:
        unpack(behavior_model_inputs),
    output:
        attributions=f"{R}/interpret/{{pair}}/{{side}}/attributions-{{shard}}.jsonl.gz",
    log:
        f"{R}/logs/attribute_responses/{{pair}}-{{side}}-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/attribute_responses/{{pair}}-{{side}}-{{shard}}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    resources:
        **behavior_rule_resources("attribution"),
    params:
        job=behavior_attribute_params,
    script:
        "../scripts/attribute_responses.py"


rule explain_weights:
    input:
        unpack(behavior_weights_inputs),
    output:
        heads=f"{R}/interpret/{{pair}}/{{side}}/heads.tsv",
        ffn=f"{R}/interpret/{{pair}}/{{side}}/ffn.tsv",
        vocabulary=f"{R}/interpret/{{pair}}/{{side}}/vocabulary.json",
    log:
        f"{R}/logs/explain_weights/{{pair}}-{{side}}.log",
    benchmark:
        f"{R}/benchmarks/explain_weights/{{pair}}-{{side}}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    resources:
        **behavior_rule_resources("weights"),
    params:
        job=behavior_weights_params,
    script:
        "../scripts/explain_weights.py"


rule analyze_behavior_shift:
    input:
        unpack(behavior_analysis_inputs),
    output:
        summary=report(
            f"{R}/studies/behavior_shift/summary.md",
            caption="../report/behavior_shift.rst",
            category="Study D: behavior shift",
        ),
        scores=report(
            f"{R}/studies/behavior_shift/scores.tsv",
            caption="../report/behavior_shift.rst",
            category="Study D: behavior shift",
        ),
        tests=report(
            f"{R}/studies/behavior_shift/tests.tsv",
            caption="../report/behavior_shift.rst",
            category="Study D: behavior shift",
        ),
        followed=f"{R}/studies/behavior_shift/followed.tsv",
        heads=report(
            f"{R}/studies/behavior_shift/heads.tsv",
            caption="../report/behavior_shift_heads.rst",
            category="Study D: behavior shift",
        ),
        ffn=report(
            f"{R}/studies/behavior_shift/ffn.tsv",
            caption="../report/behavior_shift_ffn.rst",
            category="Study D: behavior shift",
        ),
        heatmaps=report(
            f"{R}/studies/behavior_shift/heatmaps.png",
            caption="../report/behavior_shift_heatmaps.rst",
            category="Study D: behavior shift",
        ),
        scores_figure=report(
            f"{R}/studies/behavior_shift/scores.png",
            caption="../report/behavior_shift.rst",
            category="Study D: behavior shift",
        ),
        heads_figure=report(
            f"{R}/studies/behavior_shift/heads.png",
            caption="../report/behavior_shift_heads.rst",
            category="Study D: behavior shift",
        ),
    log:
        f"{R}/logs/analyze_behavior_shift.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        models=behavior_analysis_keys(),
        settings=behavior_analysis_params(),
    script:
        "../scripts/analyze_behavior_shift.py"
