"""The scorecard (itlab/scorecard.py): verdicts on constructed statistics, each study's statistics
file read into a row, the scale of real configs, and the rule on files in a results folder."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, write_config
from itlab import scorecard as sc
from itlab.config import validate
from itlab.grid import Grid


# ---- verdicts -----------------------------------------------------------------------------
@pytest.mark.parametrize("est, low, high, sign, scale, expected", [
    (0.6, 0.2, 0.9, 1, "embedded", sc.SAME),
    (0.6, 0.2, 0.9, 1, "paper", sc.SAME),
    (-0.5, -0.8, -0.1, 1, "embedded", sc.OPPOSITE),
    (0.3, -0.1, 0.6, 1, "embedded", sc.NOT_SIGNIFICANT),
    (-0.3, -0.6, 0.1, 1, "embedded", sc.NOT_SIGNIFICANT),
    (0.0, 0.0, 0.4, 1, "embedded", sc.NOT_SIGNIFICANT),  # an interval touching 0 does not exclude it
    (-0.5, -0.8, -0.1, -1, "embedded", sc.SAME),  # a paper that predicts a negative effect
    (0.5, 0.1, 0.8, -1, "embedded", sc.OPPOSITE),
    (0.9, 0.8, 0.95, 1, "stand-in", sc.NOT_COMPARABLE),  # whatever a stand-in shows
    (math.nan, math.nan, math.nan, 1, "embedded", sc.NOT_ESTIMABLE),
    (0.5, math.nan, math.nan, 1, "embedded", sc.NOT_ESTIMABLE),  # no interval: no verdict
])
def test_verdict(est, low, high, sign, scale, expected):
    assert sc.verdict(est, low, high, sign, scale) == expected


def test_verdict_reads_an_interval_given_high_first():
    assert sc.verdict(0.5, 0.9, 0.1, 1, "embedded") == sc.SAME


# ---- statistics files -> rows ------------------------------------------------------------
def _write(path, frame):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return path


def _stat_files(root):
    """One constructed statistics file per study, in the layout the analyze rules write."""
    files = {s: root / f for s, f in sc.STAT_FILES.items()}
    _write(files["inherent_limits"], pd.DataFrame([
        {"scope": "mixture", "group": "all", "method": "spearman", "r": -0.7, "ci_low": -0.9, "ci_high": -0.5,
         "units": "6 tasks x 4 base models", "note": "", "scores": "raw"},  # listed first: never the pooled row
        {"scope": "pooled", "group": "all", "method": "spearman", "r": 0.62, "ci_low": 0.31, "ci_high": 0.85,
         "units": "6 tasks x 4 base models", "note": "", "scores": "raw"},
        {"scope": "pooled", "group": "all", "method": "pearson", "r": -0.9, "ci_low": -0.95, "ci_high": -0.8,
         "units": "6 tasks x 4 base models", "note": "", "scores": "raw"},
        {"scope": "pooled", "group": "all", "method": "spearman", "r": np.nan, "ci_low": np.nan, "ci_high": np.nan,
         "units": "6 tasks x 4 base models", "note": "constant scores", "scores": "chance-adjusted"}]))
    _write(files["diversity"], pd.DataFrame([
        {"examples_per_rule": "4", "b1": 2.0, "b1_low": 1.0, "b1_high": 3.0, "switch": 50.0,
         "switch_low": 20.0, "switch_high": 90.0, "note": ""},  # one S, listed first: never the pooled fit
        {"examples_per_rule": "all", "b1": -1.2, "b1_low": -2.0, "b1_high": -0.4, "switch": 50.0,
         "switch_low": 20.0, "switch_high": 90.0, "note": ""}]))
    _write(files["teachers"], pd.DataFrame([
        {"metric": "car", "student": "s1", "rho": 0.9, "ci_low": np.nan, "ci_high": np.nan, "n_generators": 3},
        {"metric": "car", "student": "average", "rho": 0.25, "ci_low": -0.5, "ci_high": 0.75, "n_generators": 3},
        {"metric": "length", "student": "average", "rho": 0.9, "ci_low": 0.8, "ci_high": 1.0, "n_generators": 3}]))
    _write(files["behavior_shift"], pd.DataFrame([
        {"pair": "p", "set": "lima", "n_base": 5, "n_tuned": 5, "base_mean": 1.0, "tuned_mean": 1.5, "t": -3.0,
         "p": 0.01, "ci_low": 0.2, "ci_high": 0.8},
        {"pair": "p", "set": "strings", "n_base": 5, "n_tuned": 5, "base_mean": 1.0, "tuned_mean": 0.5, "t": 3.0,
         "p": 0.99, "ci_low": -0.8, "ci_high": -0.2}]))
    _write(files["scaling"], pd.DataFrame([
        {"base_model": "llama-s", "task": "add", "slope": 0.3, "slope_low": 0.1, "slope_high": 0.5, "r2": 0.9,
         "note": ""},
        {"base_model": "llama-s", "task": "copy", "slope": np.nan, "slope_low": np.nan, "slope_high": np.nan,
         "r2": np.nan, "note": "constant scores (e.g. all 0): no power law to fit"}]))
    return files


SCALE = {"scale": "embedded", "models": "4 tuned from 4 base models", "items": "<= 50 items per task"}


def test_each_study_gets_its_statistic_and_verdict(tmp_path):
    files = _stat_files(tmp_path)
    scales = {s: dict(SCALE) for s in sc.STUDIES} | {"behavior_shift": dict(SCALE, scale="stand-in")}
    rows = sc.build(list(sc.STUDIES), files, scales)
    by = {}
    for r in rows:
        by.setdefault(r.study, []).append(r)
    a = by["inherent_limits"][0]  # the pooled raw Spearman row, not pearson or a mixture
    assert (a.estimate, a.low, a.high, a.verdict) == (0.62, 0.31, 0.85, sc.SAME)
    assert a.paper.startswith("Spearman rho = 0.851")
    assert by["inherent_limits"][1].verdict == sc.NOT_ESTIMABLE  # chance-adjusted: constant scores
    b = by["diversity"][0]  # the pooled fit ("all"), not one S
    assert (b.estimate, b.verdict) == (-1.2, sc.OPPOSITE) and "switch I* = 50" in b.note
    c = by["teachers"][0]  # CAR averaged over students, not one student or another metric
    assert (c.estimate, c.verdict) == (0.25, sc.NOT_SIGNIFICANT) and "0.889" in c.paper
    d = by["behavior_shift"][0]
    assert d.estimate == pytest.approx(0.5) and d.verdict == sc.NOT_COMPARABLE
    assert "+0.2896" in d.paper  # LIMA: 1.5579 - 1.2683
    d2 = by["behavior_shift"][1]  # an embedded prompt set (a task cluster): the paper's general claim
    assert d2.estimate == pytest.approx(-0.5) and d2.paper.startswith("tuned - base > 0")
    e = by["scaling"]
    assert [r.verdict for r in e] == [sc.SAME, sc.NOT_ESTIMABLE]
    assert "0.043-0.201" in e[0].paper


def test_studies_outside_the_config_are_not_run(tmp_path):
    files = _stat_files(tmp_path)
    rows = sc.build(["scaling"], {"scaling": files["scaling"]}, {"scaling": SCALE},
                    missing={"teachers": "not run: the judge's key $X is not set"})
    verdicts = [(r.study, r.verdict) for r in rows]
    assert verdicts == [("inherent_limits", sc.NOT_RUN), ("diversity", sc.NOT_RUN), ("teachers", sc.NOT_RUN),
                        ("behavior_shift", sc.NOT_RUN), ("scaling", sc.SAME), ("scaling", sc.NOT_ESTIMABLE)]
    assert "$X is not set" in sc.render(rows)
    text = sc.render(rows)
    assert text.count(f"**{sc.NOT_RUN}**") == 4 and "| E. scaling |" in text


def test_render_lists_every_papers_number_with_a_source(tmp_path):
    numbers = sc.paper_numbers()
    assert set(numbers) == set(sc.STUDIES)
    for study, p in numbers.items():
        assert p["source"] and p["text"] and p["sign"] in (1, -1), study
    rows = sc.build(list(sc.STUDIES), _stat_files(tmp_path), {s: SCALE for s in sc.STUDIES})
    md = sc.render(rows)
    for needle in ("Table 4", "Table 7", "Table 1", "Tables 1-2", "unverified", "embedded (tiny models built here)"):
        assert needle in md


def test_report_page_is_valid_restructuredtext(tmp_path):
    """Any docutils warning (an unescaped * in 'I*', a broken list-table) fails the page."""
    from docutils.core import publish_parts
    from jinja2 import Template

    files = _stat_files(tmp_path)
    del files["teachers"]  # a not-run row: its cells are "-"
    rows = sc.build([s for s in sc.STUDIES if s != "teachers"], files, {s: SCALE for s in sc.STUDIES})
    rows[0].note = "a {{ jinja }} note with a | bar, *stars* and trailing_ underscores"
    page = sc.render_rst(rows, (ROOT / "report/workflow.rst").read_text())
    text = Template(page).render()  # Snakemake renders the page as a Jinja template first
    html = publish_parts(text, writer="html", settings_overrides={"halt_level": 2})["html_body"]
    assert "{{ jinja }}" in html and html.count("<tr>") == 1 + len(rows)
    assert "switch I* = 50" in html
    table = html[html.index("<table"):html.index("</table>")]
    assert "<ol" not in table and "<ul" not in table  # "A. ..." and "-" cells stay text, not lists
    assert "<td>A. inherent limits</td>" in table and "<td>-</td>" in table


# ---- study D's interval -----------------------------------------------------------------
def test_behavior_shift_interval_is_welchs():
    from itlab.analysis import behavior_shift as bs

    base, tuned = np.array([1.0, 1.2, 0.9, 1.4]), np.array([1.5, 1.9, 1.3, 2.2, 1.6])
    rows = [{"pair": "p", "set": "lima", "side": s, "prompt": f"q{i}", "instruction_score": v, "span_error": ""}
            for s, vals in (("base", base), ("tuned", tuned)) for i, v in enumerate(vals)]
    got = bs.tuned_vs_base(pd.DataFrame(rows)).iloc[0]
    from scipy import stats

    va, vb = base.var(ddof=1) / len(base), tuned.var(ddof=1) / len(tuned)
    df = (va + vb) ** 2 / (va ** 2 / (len(base) - 1) + vb ** 2 / (len(tuned) - 1))  # Welch-Satterthwaite
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = tuned.mean() - base.mean()
    assert (got.ci_low, got.ci_high) == pytest.approx((diff - half, diff + half), rel=1e-9)


# ---- scale of real configs ----------------------------------------------------------------
def _merged(*names):
    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    raw = {}
    for n in names:
        raw = merge(raw, yaml.safe_load((ROOT / n).read_text()))
    return validate(raw, ROOT)


@pytest.mark.parametrize("files, study, scale", [
    (["experiments/embedded-scaling.yaml"], "scaling", "embedded"),
    (["experiments/embedded-diversity.yaml"], "diversity", "embedded"),
    (["experiments/scaling.yaml"], "scaling", "paper"),
    (["experiments/diversity.yaml"], "diversity", "paper"),
    (["experiments/behavior-shift.yaml"], "behavior_shift", "paper"),
    (["experiments/inherent-limits.yaml", "experiments/standin/inherent-limits.yaml"], "inherent_limits", "stand-in"),
    (["experiments/behavior-shift.yaml", "experiments/standin/behavior-shift.yaml"], "behavior_shift", "stand-in"),
])
def test_scale_of_real_configs(files, study, scale):
    cfg = _merged(*files)
    got = sc.study_scale(cfg, Grid(cfg), study)
    assert got["scale"] == scale
    assert got["models"] and got["items"]


def test_scale_counts_models_and_items():
    cfg = _merged("experiments/embedded-diversity.yaml")
    got = sc.study_scale(cfg, Grid(cfg), "diversity")
    s = cfg["studies"]["diversity"]
    runs = len(s["num_rules"]) * len(s["examples_per_rule"]) * len(s["seeds"])
    assert got["models"] == f"{runs} tuned from 1 base model"
    assert got["items"] == f"<= {min(cfg['evaluation']['max_items_per_task'], s['test_examples'])} items per task"


# ---- the rule -----------------------------------------------------------------------------
def test_scorecard_is_in_the_default_target_and_reads_the_analyses(tmp_path):
    paths = write_config(tmp_path, {"results_dir": str(tmp_path / "r")}, "paths.yaml")
    res = snakemake("-n", "--cores", "1", "--configfile", "experiments/embedded-scaling.yaml", str(paths))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rule make_scorecard:" in res.stdout
    block = res.stdout[res.stdout.index("rule make_scorecard:"):].split("\n\n")[0]
    assert f"{tmp_path}/r/studies/scaling/fits.tsv" in block and f"{tmp_path}/r/scorecard.md" in block


@pytest.mark.slow
def test_rule_writes_the_scorecard_and_the_report_page(tmp_path):
    """make_scorecard alone, on constructed statistics in a results folder (upstream rules not allowed)."""
    root = tmp_path / "r"
    files = _stat_files(root)
    paths = write_config(tmp_path, {"results_dir": str(root)}, "paths.yaml")
    res = snakemake("--cores", "1", "--configfile", "experiments/embedded-scaling.yaml", str(paths),
                    "--allowed-rules", "make_scorecard", "--", str(root / "scorecard.md"))
    assert res.returncode == 0, res.stderr[-3000:]
    md = (root / "scorecard.md").read_text()
    lines = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert "**not run**" in lines["| A. inherent limits"] and "**not run**" in lines["| D. behavior shift"]
    scaling = [line for line in md.splitlines() if line.startswith("| E. scaling")]
    assert len(scaling) == 2 and f"**{sc.SAME}**" in scaling[0] and "embedded (tiny models built here)" in scaling[0]
    assert "0.3 [0.1, 0.5]" in scaling[0]
    page = (root / "reports/scorecard.rst").read_text()
    assert page.startswith("{% raw %}\nitlab: instruction tuning") and "E\\. scaling" in page
    assert files["inherent_limits"].exists()  # the statistics files are read, never rewritten


def test_paper_numbers_agree_with_the_analysis_modules():
    """The scorecard's headline numbers agree with the tables each study's summary prints (one
    file holds both: a headline edited without its table fails here)."""
    from itlab.analysis import behavior_shift, diversity, scaling, teachers

    n = sc.paper_numbers()
    assert n["teachers"]["value"] == teachers.PAPER_TABLE4["car"]["rho"]
    table7 = {(r.task, r.model): (r.a, r.b) for r in scaling.PAPER_TABLE7.itertuples()}
    assert len(table7) == 7 and table7[("math", "Mistral-7B")] == (8.14, 4.97)
    assert behavior_shift.PAPER_TUNED_VS_BASE["lima"] == (1.2683, 1.5579, 2.5e-14)
    assert behavior_shift.PAPER_FOLLOWED["mtbench"] == (0.9290, 1.4584)
    mixed = diversity.PAPER_TABLE1.iloc[-1]
    assert f"0 at 200 rules -> {mixed['2000 rules']:.2f} at 2,000" in n["diversity"]["text"]
    assert f"{mixed['500 rules']:.2f}/{mixed['200 rules']:g}" in n["diversity"]["source"]
    slopes = [1 / b for _, b in table7.values()]
    assert f"1/b = {min(slopes):.3f}-{max(slopes):.3f}" in n["scaling"]["text"]
