# Base models: the tokenizer, models built and pretrained here, and the ladder report.
# Hub and local base models schedule no job here.


rule train_tokenizer:
    input:
        corpus=f"{R}/data/corpus/train.txt",
    output:
        folder=directory(f"{R}/tokenizer"),
    log:
        f"{R}/logs/train_tokenizer.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        vocab_size=config["tokenizer"]["vocab_size"],
        kind=config["tokenizer"]["kind"],
    script:
        "../scripts/train_tokenizer.py"


# A built base model: made from its family x size config (seeded random weights) in the
# training process itself, then pretrained on the corpus; every study waits on the base models,
# so they go first (priority). Training logs go to logs/pretrain_model/<base>/, checkpoints to
# results_dir/checkpoints/base/ (or scratch_dir): neither declared, so a failed job resumes
# (see rules/tune.smk).
rule pretrain_model:
    input:
        unpack(pretrain_inputs),
    output:
        done=f"{R}/base/{{base}}/DONE.json",
        model=directory(f"{R}/base/{{base}}/model"),
    log:
        f"{R}/logs/pretrain_model/{{base}}.log",
    benchmark:
        f"{R}/benchmarks/pretrain_model/{{base}}.tsv"
    priority: 10
    conda:
        f"{ENVS}/train.yaml"
    threads: 1
    resources:
        mem_mb=config["resources"]["pretrain"].get("mem_mb", 4000),
        runtime=config["resources"]["pretrain"].get("runtime", 60),
    params:
        args=lambda wildcards: pretrain_arguments(GRID, wildcards.base),
    script:
        "../scripts/pretrain_model.py"


rule report_pretraining:
    input:
        done=expand(f"{R}/base/{{base}}/DONE.json", base=pretrained_base_models()),
    output:
        table=report(
            f"{R}/reports/pretraining.tsv",
            caption="../report/pretraining.rst",
            category="Base models",
        ),
        figure=report(
            f"{R}/reports/pretraining.png",
            caption="../report/pretraining.rst",
            category="Base models",
        ),
    log:
        f"{R}/logs/report_pretraining.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        bases=pretrained_base_models(),
    script:
        "../scripts/report_pretraining.py"
