"""The scorecard: per study, our statistic with its interval beside the paper's number, the scale
it was run at, and a one-line verdict (results/scorecard.md, first page of the Snakemake report).

Each study's statistic is read from the machine-readable file its analysis rule already writes
(``STAT_FILES``); the papers' numbers, each with its source, from ``fixtures/paper_numbers.yaml``.

Verdict (``verdict``), from our 95% interval and the paper's direction (``sign``):
- a stand-in run (random-weight models of the papers' architectures): not comparable, whatever it shows;
- no estimate or no interval: not estimable at this scale;
- interval entirely on the paper's side of 0: same direction; entirely on the other side: opposite
  direction; interval includes 0: not significant.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from itlab.grid import behavior_prompt_count
from itlab.papers import paper_numbers

STUDIES = {  # config key -> (letter, title), in the README's order
    "inherent_limits": ("A", "inherent limits"),
    "diversity": ("B", "diversity"),
    "teachers": ("C", "teachers"),
    "behavior_shift": ("D", "behavior shift"),
    "scaling": ("E", "scaling"),
}
# the statistics file of each study, relative to results_dir (written by its analyze_<study> rule)
STAT_FILES = {
    "inherent_limits": "studies/inherent_limits/correlations.tsv",
    "diversity": "studies/diversity/switch.tsv",
    "teachers": "studies/teachers/spearman.tsv",
    "behavior_shift": "studies/behavior_shift/tests.tsv",
    "scaling": "studies/scaling/fits.tsv",
}
SCALES = {
    "paper": "paper (hub or local models)",
    "embedded": "embedded (tiny models built here)",
    "stand-in": "stand-in (random weights): not comparable",
}
SAME, OPPOSITE, NOT_SIGNIFICANT = "same direction", "opposite direction", "not significant (interval includes 0)"
NOT_COMPARABLE = "not comparable at this scale (stand-in, random weights)"
NOT_ESTIMABLE = "not comparable at this scale (not estimable)"
NOT_RUN = "not run"


def _num(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x


def verdict(estimate, low, high, sign: int, scale: str) -> str:
    """One-line verdict of our estimate [low, high] against the paper's direction ``sign`` (+1/-1)."""
    if scale == "stand-in":
        return NOT_COMPARABLE
    estimate, low, high = _num(estimate), _num(low), _num(high)
    if math.isnan(estimate) or math.isnan(low) or math.isnan(high):
        return NOT_ESTIMABLE
    low, high = sorted((low * sign, high * sign))  # on the paper's side when > 0
    if low > 0:
        return SAME
    if high < 0:
        return OPPOSITE
    return NOT_SIGNIFICANT


@dataclass
class Row:
    study: str
    statistic: str
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    paper: str = ""
    sign: int = 1
    note: str = ""
    scale: str = ""
    models: str = ""
    items: str = ""
    verdict: str = ""

    def ours(self) -> str:
        if math.isnan(self.estimate):
            return "not estimable" + (f" ({self.note})" if self.note else "")
        ci = "" if math.isnan(self.low) else f" [{self.low:.3g}, {self.high:.3g}]"
        return f"{self.estimate:.3g}{ci}" + (f"; {self.note}" if self.note else "")


# ---- one reader per study: the statistics file -> rows -------------------------------------
def _inherent_limits(path: Path, paper: dict) -> list[Row]:
    t = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    sel = t[(t.scope == "pooled") & (t.group == "all") & (t.method == "spearman")]
    rows = []
    for scores in ("raw", "chance-adjusted"):
        r = sel[sel.scores == scores]
        if r.empty:
            continue
        r = r.iloc[0]
        label = "pooled Spearman rho, tuned vs base k-shot" + (" (chance-adjusted)" if scores != "raw" else "")
        rows.append(Row("inherent_limits", label, _num(r.r), _num(r.ci_low), _num(r.ci_high), paper["text"],
                        paper["sign"], str(r.note or "") if math.isnan(_num(r.r)) else f"{r.units}"))
    return rows


def _diversity(path: Path, paper: dict) -> list[Row]:
    t = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"examples_per_rule": str})
    r = t[t.examples_per_rule == "all"]
    if r.empty:
        return []
    r = r.iloc[0]
    switch = _num(r.switch)
    note = (f"switch I* = {switch:.3g} [{_num(r.switch_low):.3g}, {_num(r.switch_high):.3g}]"
            if not math.isnan(switch) else "switch I*: none")
    if math.isnan(_num(r.b1)):
        note = str(r.note or "")
    return [Row("diversity", "logistic slope of correctness on log I (unseen rules)", _num(r.b1), _num(r.b1_low),
                _num(r.b1_high), paper["text"], paper["sign"], note)]


def _teachers(path: Path, paper: dict) -> list[Row]:
    t = pd.read_csv(path, sep="\t")
    r = t[(t.metric == "car") & (t.student == "average")]
    if r.empty:
        return []
    r = r.iloc[0]
    return [Row("teachers", "Spearman rho of CAR vs AP, average over students", _num(r.rho), _num(r.ci_low),
                _num(r.ci_high), paper["text"], paper["sign"], f"{int(r.n_generators)} generators")]


def _behavior_shift(path: Path, paper: dict) -> list[Row]:
    t = pd.read_csv(path, sep="\t")
    rows = []
    for r in t.itertuples():
        ref = paper["sets"].get(r.set, {})
        name = ref.get("name", r.set)
        # the paper's number for this prompt set; embedded sets (task clusters) get the general claim
        text = (f"{ref['tuned'] - ref['base']:+.4f} ({ref['base']} -> {ref['tuned']}, p {ref['p']:g})" if ref
                else paper["text"])
        rows.append(Row("behavior_shift", f"instruction score tuned - base: {r.pair}, {name}",
                        _num(r.tuned_mean) - _num(r.base_mean), _num(getattr(r, "ci_low", math.nan)),
                        _num(getattr(r, "ci_high", math.nan)), text, paper["sign"],
                        f"n {r.n_base}+{r.n_tuned}"))
    return rows


def _scaling(path: Path, paper: dict) -> list[Row]:
    t = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    rows = []
    for r in t.itertuples():
        note = f"R^2 {_num(r.r2):.2f}" if not math.isnan(_num(r.slope)) else str(r.note or "")
        rows.append(Row("scaling", f"power-law slope 1/b: {r.base_model}, {r.task}", _num(r.slope),
                        _num(r.slope_low), _num(r.slope_high), paper["text"], paper["sign"], note))
    return rows


READERS = {"inherent_limits": _inherent_limits, "diversity": _diversity, "teachers": _teachers,
           "behavior_shift": _behavior_shift, "scaling": _scaling}


# ---- scale: where the models came from, how many, how many items --------------------------
def study_scale(cfg: dict, grid, study: str) -> dict:
    """{scale: paper | embedded | stand-in, models: text, items: text} of one study of a config."""
    standin = bool(cfg.get("mirror", {}).get("standin"))
    runs = [r for r in grid.runs.values() if r.study == study]
    if study == "behavior_shift":
        pairs = grid.behavior_pairs
        hub = any(ref.key.startswith("hub:") for pair in pairs.values() for ref in pair.values())
        built = [p for p in pairs if p in grid.base_models]
        sources = {"hub"} if hub else set()
        sources |= {grid.base_models[b].source for b in built}
        models = f"{len(pairs)} base/tuned pairs"
        items = f"{behavior_prompt_count(cfg)} prompts"
    else:
        bases = {r.base for r in runs}
        if study == "inherent_limits":
            bases |= {m.split("/", 1)[1] for m, job in grid.evals.items() if m.startswith("base/")
                      and job.study == study}
        sources = {grid.base_models[b].source for b in bases if b in grid.base_models}
        models = f"{len(runs)} tuned from {len(bases)} base model{'' if len(bases) == 1 else 's'}"
        ev = cfg.get("evaluation_by_study", {}).get(study, cfg.get("evaluation", {}))
        cap = ev.get("max_items_per_task")
        if study == "diversity":
            n = cfg["studies"]["diversity"].get("test_examples")
            cap = min(x for x in (cap, n) if x) if (cap or n) else None
        items = f"<= {cap} items per task" if cap else "all items"
    if standin:
        scale = "stand-in"
    elif sources & {"hub", "local"}:
        scale = "paper"
    else:
        scale = "embedded"
    return {"scale": scale, "models": models, "items": items}


# ---- the card ----------------------------------------------------------------------------
def build(config_studies: list[str], stat_files: dict, scales: dict, numbers: dict | None = None,
          missing: dict | None = None) -> list[Row]:
    """Rows of the scorecard: every study of ``STUDIES``; those not in ``config_studies`` are
    "not run", those in ``missing`` (study -> reason) are listed with that reason."""
    numbers = numbers or paper_numbers()
    missing = missing or {}
    rows = []
    for study in STUDIES:
        paper = numbers[study]
        if study not in config_studies or study in missing or study not in stat_files:
            default = "not in this config" if study not in config_studies else "no statistics file"
            reason = missing.get(study, default)
            rows.append(Row(study, paper["statistic"], paper=paper["text"], note=reason, verdict=NOT_RUN))
            continue
        found = READERS[study](Path(stat_files[study]), paper) or [
            Row(study, paper["statistic"], paper=paper["text"], sign=paper["sign"],
                note="no rows in the statistics file")]
        sc = scales.get(study, {})
        for r in found:
            r.scale, r.models, r.items = sc.get("scale", ""), sc.get("models", ""), sc.get("items", "")
            r.verdict = verdict(r.estimate, r.low, r.high, r.sign, r.scale)
        rows.extend(found)
    return rows


HEADER = ["study", "statistic", "ours [95% CI]", "paper", "scale", "models, items", "verdict"]
LEGEND = ("Per study: our statistic with its 95% interval, the paper's number, the scale it was run at, and a "
          "verdict. *same direction*: our interval lies wholly on the paper's side of 0; *opposite direction*: "
          "wholly on the other side; *not significant*: it includes 0; *not comparable at this scale*: a "
          "stand-in run (random-weight models of the papers' architectures) or no estimate (e.g. constant "
          "scores); *not run*: the study is not in this config (or could not run). A verdict compares "
          "directions only, never magnitudes: the embedded models are tiny and their tasks synthetic.")


def cells(rows: list[Row]) -> list[list[str]]:
    """The table's cells, one list per row, in HEADER's order."""
    out = []
    for r in rows:
        letter, title = STUDIES[r.study]
        if r.verdict == NOT_RUN:
            ours, scale, size = (r.note or "-"), "-", "-"
        else:
            ours, scale, size = r.ours(), SCALES.get(r.scale, r.scale), f"{r.models}; {r.items}"
        out.append([f"{letter}. {title}", r.statistic, ours, r.paper, scale, size, r.verdict])
    return out


def sources(numbers: dict) -> list[str]:
    return [f"{STUDIES[s][0]}. {numbers[s]['paper']}: {' '.join(str(numbers[s]['source']).split())}"
            for s in STUDIES]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], numbers: dict | None = None, title: str = "") -> str:
    """results/scorecard.md"""
    numbers = numbers or paper_numbers()
    lines = ["# Scorecard: our statistics beside the papers'", ""] + ([title, ""] if title else [])
    lines += [LEGEND, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for c in cells(rows):
        c[-1] = f"**{c[-1]}**"
        lines.append("| " + " | ".join(_cell(x) for x in c) + " |")
    lines += ["", "Sources of the papers' numbers (`itlab/fixtures/paper_numbers.yaml`):", ""]
    lines += [f"- {x}" for x in sources(numbers)] + [""]
    return "\n".join(lines)


def _rst(text: str) -> str:
    """Plain text for reStructuredText: inline markup characters escaped, one line."""
    text = " ".join(str(text).split())
    for ch in "\\*`_|":
        text = text.replace(ch, "\\" + ch)
    # a cell that starts like a list item ("A. ...", "- ", "1) ...") would become a list
    text = re.sub(r"^(\(?[A-Za-z0-9#]{1,3})([.)])(?=\s|$)", r"\1\\\2", text)
    return re.sub(r"^([-+•])(?=\s|$)", r"\\\1", text)


def render_rst(rows: list[Row], intro: str, numbers: dict | None = None, title: str = "") -> str:
    """The report's first page: ``intro`` (the workflow's description, reStructuredText), then the
    scorecard as a list-table. Wrapped in Jinja's raw block: Snakemake renders this page as a template."""
    numbers = numbers or paper_numbers()
    lines = ["{% raw %}", intro.rstrip(), "", "Scorecard", "---------", ""]
    if title:
        lines += [_rst(title), ""]
    lines += [_rst(LEGEND).replace("\\*", "*"), "", ".. list-table::", "   :header-rows: 1", ""]
    for c in [HEADER] + cells(rows):
        lines.append("   * - " + _rst(c[0]))
        lines += ["     - " + _rst(x) for x in c[1:]]
    lines += ["", "Sources of the papers' numbers (``itlab/fixtures/paper_numbers.yaml``):", ""]
    lines += [f"- {_rst(x)}" for x in sources(numbers)] + ["", "{% endraw %}", ""]
    return "\n".join(lines)
