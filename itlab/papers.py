"""The papers' published numbers (``fixtures/paper_numbers.yaml``), each with its source: one
copy, read by the scorecard and by each study's summary, so the two never disagree."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml

NUMBERS = Path(__file__).parent / "fixtures" / "paper_numbers.yaml"


@cache
def _load(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def paper_numbers(path: str | Path | None = None) -> dict:
    """Per study: the claim, the statistic, the paper's value(s) and tables, and their source."""
    return copy.deepcopy(_load(Path(path) if path else NUMBERS))  # callers may edit theirs


def study(name: str) -> dict:
    return paper_numbers()[name]
