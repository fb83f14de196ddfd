"""Synthetic instruction tasks, grouped in clusters like FLAN's.

A task is a sampler of inputs, a solver that computes the gold answer, and several
instruction phrasings. Modules register their tasks in ``REGISTRY`` on import.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class TaskParams:
    """Knobs shared by the generators (config key ``data.params``)."""

    alphabet: str = "abcdefgh"
    min_len: int = 3
    max_len: int = 8
    max_number: int = 99
    phrasing: int | None = None  # one phrasing (its index) for every example; None: a random one each


@dataclass(frozen=True)
class Task:
    name: str
    cluster: str
    phrasings: tuple[str, ...]
    sample: Callable[[random.Random, TaskParams], dict]
    solve: Callable[[dict], str]
    description: str = ""
    extra: dict = field(default_factory=dict)

    def render(self, inputs: dict, phrasing: int) -> str:
        return self.phrasings[phrasing % len(self.phrasings)].format(**inputs)

    def example(self, rng: random.Random, params: TaskParams) -> dict:
        """One record: the inputs, a random phrasing, the prompt and the gold answer."""
        inputs = self.sample(rng, params)
        phrasing = rng.randrange(len(self.phrasings)) if params.phrasing is None else params.phrasing
        return {
            "task": self.name,
            "cluster": self.cluster,
            "phrasing": phrasing,
            "prompt": self.render(inputs, phrasing),
            "answer": self.solve(inputs),
            "inputs": {k: str(v) for k, v in inputs.items()},
        }


REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in REGISTRY:
        raise ValueError(f"task {task.name!r} registered twice")
    if len(task.phrasings) < 3:
        raise ValueError(f"task {task.name!r} needs at least 3 phrasings")
    REGISTRY[task.name] = task
    return task


def random_word(rng: random.Random, params: TaskParams, min_len=None, max_len=None) -> str:
    lo = params.min_len if min_len is None else min_len
    hi = params.max_len if max_len is None else max_len
    return "".join(rng.choice(params.alphabet) for _ in range(rng.randint(lo, hi)))


def get(name: str) -> Task:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {sorted(REGISTRY)}") from None


def clusters() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in REGISTRY.values():
        out.setdefault(t.cluster, []).append(t.name)
    return out


# Registration happens on import; keep these imports at the bottom.
from itlab.tasks import arithmetic, classify, markov, strings  # noqa: E402,F401
