"""Rule analyze_teachers: study C's (student, generator) table, Spearman rho of each metric vs AP,
the CAR beta grid, the paradox check, figure and summary."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
import pandas as pd  # noqa: E402

from itlab.analysis import teachers as study  # noqa: E402
from itlab.io import write_table, write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    s = p.study
    rewards = {g: pd.read_csv(f, sep="\t") for g, f in zip(p.generators, inp.rewards)}
    metrics = {sc: pd.read_csv(f, sep="\t") for sc, f in zip(p.scorers, inp.metrics)}
    if "judged" in inp.keys():
        judged = {m: pd.read_csv(f, sep="\t") for m, f in zip(sorted(p.runs), inp.judged)}
        benchmarks = sorted(s["evaluation"]["judge"]["benchmarks"])
        ap = study.ap_from_judge(judged, p.runs, benchmarks)
        ap_text = f"mean judged score over {', '.join(benchmarks)} (judge: {s['evaluation']['judge']['annotator']})"
    else:
        ev = s["evaluation"]
        ap = study.ap_from_scores(pd.read_csv(inp.table, sep="\t"), p.runs, ev["metric"])
        ap_text = f"mean {ev['metric']} of the tuned student on {', '.join(ev['tasks'])} (test splits)"
    ap = ap.groupby(["student", "generator"], as_index=False)[["ap", "ap_tasks"]].mean()  # seeds averaged
    car = s["car"]
    table = study.teacher_table(study.generator_scores(rewards), metrics, ap, "reference", car["reward_model"],
                                car["beta"])
    cols = study.metric_columns(table)
    rho = study.spearman_table(table, cols, s["bootstrap"], p.seed)
    betas = study.beta_grid(table, car["reward_model"], car["beta_grid"])
    par = study.paradox(table, s["generators"])
    for path, frame in ((out.table, table), (out.spearman, rho), (out.betas, betas), (out.paradox, par)):
        write_table(path, frame)
    study.figure(table, cols, out.figure)
    rms = s["reward_models"]
    settings = {"ap": ap_text, "car_reward": car["reward_model"], "beta": car["beta"],
                "reference": s["reference_model"],
                "rewards": "; ".join(f"`{n}` ({r['kind']}" + (f", {r['metric']}" if r["kind"] == "checker" else "")
                                     + (f", {r['model']}" if "model" in r else "") + ")" for n, r in rms.items()),
                "paper_names": {f"reward:{n}": f"reward:{r['paper_name']}" for n, r in rms.items() if "paper_name" in r}}
    write_text(out.summary, study.summary(table, rho, betas, par, settings))
    print(rho.to_string())
