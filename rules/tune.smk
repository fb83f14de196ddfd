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
    conda:
        f"{ENVS}/train.yaml"
    threads: lambda wildcards: tune_launch(GRID, wildcards.run)["processes"]
    resources:
        mem_mb=tune_resource("mem_mb"),
        runtime=tune_resource("runtime"),
        nodes=tune_resource("nodes"),
        tasks=tune_resource("tasks"),
        gpu=tune_resource("gpu", 0),
        cpus_per_task=tune_resource("cpus_per_task"),
        slurm_partition=tune_resource("slurm_partition"),
        gpu_model=tune_resource("gpu_model"),
        gres=tune_resource("gres"),
        slurm_extra=tune_resource("slurm_extra"),
        checkpoint_mb=tune_resource("checkpoint_mb"),
    params:
        args=tune_params,
        launch=lambda wildcards: tune_launch(GRID, wildcards.run),
    script:
        "../scripts/tune_model.py"
