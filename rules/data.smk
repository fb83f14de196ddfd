# Data synthesis: task splits, the pretraining corpus, tuning mixtures, nested subsets
# (study E) and Markov rule grids (study B).


rule synthesize_tasks:
    output:
        splits=task_files(),
        manifest=f"{R}/data/tasks/manifest.json",
    log:
        f"{R}/logs/synthesize_tasks.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        tasks=synthetic_tasks(config),
        splits=config["data"]["splits"],
        generator=config["data"]["params"],
        seed=config["seed"],
    script:
        "../scripts/synthesize_tasks.py"


rule download_task:
    input:
        manifest=task_dataset_manifest,
    output:
        train=f"{R}/data/tasks/{{task}}/train.jsonl",
        test=f"{R}/data/tasks/{{task}}/test.jsonl",
    log:
        f"{R}/logs/download_task/{{task}}.log",
    wildcard_constraints:
        task="|".join(
            t for t, h in config["data"]["hub_tasks"].items() if "dataset" in h
        )
        or "(?!)",
    conda:
        f"{ENVS}/data.yaml"
    params:
        spec=lambda wildcards: config["data"]["hub_tasks"][wildcards.task],
        max_items=lambda wildcards: config["data"]["hub_tasks"][wildcards.task].get(
            "max_items", config["evaluation"]["max_items_per_task"]
        ),
        folder=lambda wildcards: hub.task_dataset_dir(config, wildcards.task),
        standin=config["mirror"]["standin"],
        seed=config["seed"],
    script:
        "../scripts/download_task.py"


rule build_corpus:
    input:
        extra=config["data"]["corpus"]["extra_files"],
    output:
        train=f"{R}/data/corpus/train.txt",
        validation=f"{R}/data/corpus/validation.txt",
    log:
        f"{R}/logs/build_corpus.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        tasks=corpus_tasks(config),
        corpus=config["data"]["corpus"],
        generator=config["data"]["params"],
        seed=config["seed"],
    script:
        "../scripts/build_corpus.py"


rule build_mixture:
    input:
        mixture_inputs,
    output:
        f"{R}/data/trainsets/mix-{{mixture}}.jsonl",
    log:
        f"{R}/logs/build_mixture/{{mixture}}.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        mixture=lambda wildcards: config["data"]["mixtures"][wildcards.mixture],
        seed=config["seed"],
    script:
        "../scripts/build_mixture.py"


rule build_subset:
    input:
        f"{R}/data/tasks/{{task}}/train.jsonl",
    output:
        f"{R}/data/trainsets/sub-{{task}}-n{{n}}.jsonl",
    log:
        f"{R}/logs/build_subset/{{task}}-n{{n}}.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        sizes=lambda wildcards: scaling_sizes(
            config["studies"]["scaling"], wildcards.task
        ),
        seed=config["seed"],
    script:
        "../scripts/build_subset.py"


rule synthesize_markov:
    output:
        train=f"{R}/data/markov/{{cell}}/train.jsonl",
        test=f"{R}/data/markov/{{cell}}/test.jsonl",
    log:
        f"{R}/logs/synthesize_markov/{{cell}}.log",
    conda:
        f"{ENVS}/data.yaml"
    params:
        study=config["studies"].get("diversity", {}),
        seed=config["seed"],
    script:
        "../scripts/synthesize_markov.py"
