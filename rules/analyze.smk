# Aggregation into one tidy table, then each study's statistics, figures and summary.


rule aggregate_scores:
    input:
        unpack(all_scores),
    output:
        table=report(
            f"{R}/tables/scores.tsv",
            caption="../report/scores.rst",
            category="Results table",
        ),
    log:
        f"{R}/logs/aggregate_scores.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        metadata=model_metadata(),
    script:
        "../scripts/aggregate_scores.py"


rule analyze_inherent_limits:
    input:
        table=f"{R}/tables/scores.tsv",
    output:
        summary=report(
            f"{R}/studies/inherent_limits/summary.md",
            caption="../report/inherent_limits.rst",
            category="Study A: inherent limits",
        ),
        correlations=report(
            f"{R}/studies/inherent_limits/correlations.tsv",
            caption="../report/inherent_limits.rst",
            category="Study A: inherent limits",
        ),
        figure=report(
            f"{R}/studies/inherent_limits/tuned_vs_icl.png",
            caption="../report/inherent_limits.rst",
            category="Study A: inherent limits",
        ),
    log:
        f"{R}/logs/analyze_inherent_limits.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        study=config["studies"].get("inherent_limits", {}),
        seed=config["seed"],
    script:
        "../scripts/analyze_inherent_limits.py"
