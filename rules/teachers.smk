# Study C (teachers): instruction pool -> one generator's responses -> rewards; loss, IFD and
# perplexity under each student and the reference model; the students are tuned by tune_model
# (training sets teacher-<generator>) and evaluated by evaluate_model (embedded) or a judge.


localrules:
    fetch_glm_files,


if judge_key_missing():
    sys.stderr.write(
        f"itlab: ERROR: rule judge_answers needs the judge's key in the environment variable "
        f"{judge_key_missing()} (studies.teachers.evaluation.judge.api_key_env); judge_answers and "
        "analyze_teachers are left out of the default target, every other rule still runs.\n"
    )


rule select_instructions:
    input:
        [GRID.task_split(t, "train") for t in instruction_tasks()],
    output:
        f"{R}/data/teachers/instructions.jsonl",
    log:
        f"{R}/logs/select_instructions.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        tasks=instruction_tasks(),
        per_task=teachers_study().get("instructions", {}).get("per_task"),
        seed=config["seed"],
    script:
        "../scripts/select_instructions.py"


rule generate_responses:
    input:
        unpack(generate_inputs),
    output:
        f"{R}/data/teachers/{{generator}}/responses.jsonl",
    log:
        f"{R}/logs/generate_responses/{{generator}}.log",
    benchmark:
        f"{R}/benchmarks/generate_responses/{{generator}}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    threads: 1
    resources:
        **generate_rule_resources(),
    params:
        spec=generator_spec,
        model_dir=generator_model_dir,
        seed=config["seed"],
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
    script:
        "../scripts/generate_responses.py"


rule score_rewards:
    input:
        responses=f"{R}/data/teachers/{{generator}}/responses.jsonl",
        models=reward_model_manifests(),
    output:
        f"{R}/data/teachers/{{generator}}/rewards.tsv",
    log:
        f"{R}/logs/score_rewards/{{generator}}.log",
    conda:
        f"{ENVS}/eval.yaml"
    threads: 1
    resources:
        **teachers_resources(GRID, "score_rewards"),
    params:
        reward_models=reward_models_resolved(),
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
    script:
        "../scripts/score_rewards.py"


rule measure_responses:
    input:
        unpack(measure_inputs),
    output:
        f"{R}/studies/teachers/metrics/{{scorer}}.tsv",
    log:
        f"{R}/logs/measure_responses/{{scorer}}.log",
    benchmark:
        f"{R}/benchmarks/measure_responses/{{scorer}}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    threads: 1
    resources:
        **teachers_resources(GRID, "measure_responses"),
    params:
        model_dir=lambda wildcards: model_location(scorer_key(wildcards.scorer))[0],
        generators=teacher_generators(),
        settings=teachers_study().get("metrics", {}),
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
    script:
        "../scripts/measure_responses.py"


rule answer_benchmarks:
    input:
        model=f"{R}/tuned/{{run}}/DONE.json",
        benchmarks=benchmark_manifests(),
    output:
        f"{R}/judge/tuned/{{run}}/answers.jsonl",
    log:
        f"{R}/logs/answer_benchmarks/{{run}}.log",
    conda:
        f"{ENVS}/eval.yaml"
    threads: 1
    resources:
        **teachers_resources(GRID, "answer_benchmarks"),
    params:
        model_dir=lambda wildcards: GRID.model_dir(f"tuned/{wildcards.run}"),
        judge=judge_resolved(),
        generation=teachers_study().get("generation", {}),
        seed=config["seed"],
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
    script:
        "../scripts/answer_benchmarks.py"


rule fetch_glm_files:
    output:
        manifest=f"{MIRROR}/files/{ALPACA_EVAL_FILES}/MANIFEST.json",
    log:
        f"{R}/logs/fetch_glm_files.log",
    conda:
        f"{ENVS}/judge.yaml"
    params:
        folder=lambda wildcards, output: os.path.dirname(output.manifest),
        standin=config["mirror"]["standin"],
        seed=config["seed"],
    script:
        "../scripts/fetch_glm_files.py"


rule judge_answers:
    input:
        unpack(judge_inputs),
    output:
        f"{R}/judge/tuned/{{run}}/scores.tsv",
    log:
        f"{R}/logs/judge_answers/{{run}}.log",
    conda:
        f"{ENVS}/judge.yaml"
    threads: 1
    params:
        judge=judge_resolved(),
        glm_cache=lambda wildcards, input: (
            os.path.dirname(input.glm_data) if "glm_data" in input.keys() else None
        ),
        trust_remote_code=config["trust_remote_code"],
        device=config["device"],
    script:
        "../scripts/judge_answers.py"


rule analyze_teachers:
    input:
        unpack(analyze_teachers_inputs),
    output:
        summary=report(
            f"{R}/studies/teachers/summary.md",
            caption="../report/teachers.rst",
            category="Study C: teachers",
        ),
        table=report(
            f"{R}/studies/teachers/table.tsv",
            caption="../report/teachers.rst",
            category="Study C: teachers",
        ),
        spearman=report(
            f"{R}/studies/teachers/spearman.tsv",
            caption="../report/teachers.rst",
            category="Study C: teachers",
        ),
        betas=f"{R}/studies/teachers/car_beta.tsv",
        paradox=f"{R}/studies/teachers/paradox.tsv",
        figure=report(
            f"{R}/studies/teachers/metrics_vs_ap.png",
            caption="../report/teachers.rst",
            category="Study C: teachers",
        ),
    log:
        f"{R}/logs/analyze_teachers.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        study=teachers_study(),
        generators=teacher_generators(),
        scorers=teacher_scorers(),
        runs=GRID.teacher_runs(),
        seed=config["seed"],
    script:
        "../scripts/analyze_teachers.py"
