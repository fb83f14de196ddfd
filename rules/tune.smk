# Tuning: one job per run of the grid, whatever the study. DeepSpeed under torchrun
# (srun + torchrun across nodes), resumable, exported atomically; DONE.json marks success.
# The run folder holds only the declared outputs. Training logs (metrics.jsonl, tensorboard/,
# the launcher's arguments file and lock) go to the log folder logs/tune_model/<run>/ beside
# the job's log, undeclared: Snakemake deletes declared logs when a job starts, and a resumed
# run appends to them. Checkpoints go to results_dir/checkpoints/ or scratch_dir
# (itlab.grid.checkpoint_folder), never an output: Snakemake deletes the outputs of a failed
# job, and the rerun resumes from them.


rule tune_model:
    input:
        unpack(tune_inputs),
    output:
        done=f"{R}/tuned/{{run}}/DONE.json",
        model=directory(f"{R}/tuned/{{run}}/model"),
    log:
        f"{R}/logs/tune_model/{{run}}.log",
    benchmark:
        f"{R}/benchmarks/tune_model/{{run}}.tsv"
    # longest runs first (itlab.plan.tune_priorities), after the base models (priority 10)
    priority: tune_rule_priority()
    conda:
        f"{ENVS}/train.yaml"
    threads: tune_rule_threads()
    resources:
        **tune_rule_resources(),
    params:
        args=tune_params,
        launch=tune_launch_params,
    script:
        "../scripts/tune_model.py"
