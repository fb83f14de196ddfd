# The hub mirror: every hub model and data set of the config, fetched once into mirror.dir
# where snakemake runs (localrules: a login node with internet), or filled with stand-ins
# (mirror.standin). Compute jobs read only from the mirror, offline.


localrules:
    fetch_model,
    fetch_dataset,
    fetch_asset,
    fetch_all,


rule fetch_model:
    output:
        manifest=f"{MIRROR}/models/{{hubmodel}}/MANIFEST.json",
    log:
        f"{R}/logs/fetch_model/{{hubmodel}}.log",
    wildcard_constraints:
        hubmodel=entry_pattern(HUB_MODELS),
    conda:
        f"{ENVS}/data.yaml"
    params:
        entry=lambda wildcards: HUB_MODELS[wildcards.hubmodel],
        folder=lambda wildcards: f"{MIRROR}/models/{wildcards.hubmodel}",
        standin=config["mirror"]["standin"],
        seed=config["seed"],
    script:
        "../scripts/fetch_model.py"


rule fetch_dataset:
    output:
        manifest=f"{MIRROR}/datasets/{{hubdata}}/MANIFEST.json",
    log:
        f"{R}/logs/fetch_dataset/{{hubdata}}.log",
    wildcard_constraints:
        hubdata=entry_pattern(HUB_DATASETS),
    conda:
        f"{ENVS}/data.yaml"
    params:
        entry=lambda wildcards: HUB_DATASETS[wildcards.hubdata],
        folder=lambda wildcards: f"{MIRROR}/datasets/{wildcards.hubdata}",
        standin=config["mirror"]["standin"],
        rows=config["mirror"]["standin_rows"],
        seed=config["seed"],
    script:
        "../scripts/fetch_dataset.py"


rule fetch_asset:
    output:
        manifest=f"{MIRROR}/assets/{{asset}}/MANIFEST.json",
    log:
        f"{R}/logs/fetch_asset/{{asset}}.log",
    wildcard_constraints:
        asset=entry_pattern(HUB_ASSETS),
    conda:
        f"{ENVS}/eval.yaml"
    params:
        entry=lambda wildcards: HUB_ASSETS[wildcards.asset],
        folder=lambda wildcards: f"{MIRROR}/assets/{wildcards.asset}",
        standin=config["mirror"]["standin"],
        seed=config["seed"],
    script:
        "../scripts/fetch_asset.py"


rule fetch_all:
    input:
        mirror_manifests(),
