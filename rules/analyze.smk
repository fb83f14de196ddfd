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
        pairs=f"{R}/studies/inherent_limits/pairs.tsv",
        tuning_effect=f"{R}/studies/inherent_limits/tuning_effect.tsv",
        mixed_model=f"{R}/studies/inherent_limits/mixed_model.json",
    log:
        f"{R}/logs/analyze_inherent_limits.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        study=config["studies"].get("inherent_limits", {}),
        seed=config["seed"],
        scoring=task_scoring(),
    script:
        "../scripts/analyze_inherent_limits.py"


rule analyze_scaling:
    input:
        table=f"{R}/tables/scores.tsv",
    output:
        summary=report(
            f"{R}/studies/scaling/summary.md",
            caption="../report/scaling.rst",
            category="Study E: scaling",
        ),
        fits=report(
            f"{R}/studies/scaling/fits.tsv",
            caption="../report/scaling.rst",
            category="Study E: scaling",
        ),
        points=f"{R}/studies/scaling/points.tsv",
        figure=report(
            f"{R}/studies/scaling/scaling.png",
            caption="../report/scaling.rst",
            category="Study E: scaling",
        ),
    log:
        f"{R}/logs/analyze_scaling.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        study=config["studies"].get("scaling", {}),
        scoring=task_scoring(),
    script:
        "../scripts/analyze_scaling.py"


rule analyze_diversity:
    input:
        table=f"{R}/tables/scores.tsv",
        samples=list(diversity_samples().values()),
    output:
        summary=report(
            f"{R}/studies/diversity/summary.md",
            caption="../report/diversity.rst",
            category="Study B: diversity",
        ),
        cells=f"{R}/studies/diversity/cells.tsv",
        switch=f"{R}/studies/diversity/switch.tsv",
        heatmap=report(
            f"{R}/studies/diversity/heatmap.png",
            caption="../report/diversity.rst",
            category="Study B: diversity",
        ),
        curve=report(
            f"{R}/studies/diversity/switch.png",
            caption="../report/diversity.rst",
            category="Study B: diversity",
        ),
    log:
        f"{R}/logs/analyze_diversity.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        models=list(diversity_samples()),
        metadata=model_metadata(),
    script:
        "../scripts/analyze_diversity.py"


rule make_scorecard:
    input:
        unpack(scorecard_inputs),
    output:
        markdown=report(
            f"{R}/scorecard.md",
            caption="../report/scorecard.rst",
            category="Scorecard",
        ),
        front_page=f"{R}/reports/scorecard.rst",
    log:
        f"{R}/logs/make_scorecard.log",
    conda:
        f"{ENVS}/analysis.yaml"
    params:
        studies=list(config["studies"]),
        scales=scorecard_scales(),
        missing=scorecard_missing(),
        title=f"Results folder `{R}`; studies in this config: {', '.join(config['studies']) or 'none'}.",
    script:
        "../scripts/make_scorecard.py"
