"""Markov-algorithm string rewriting (study B; Zhang, Wang & Charton 2024).

An instance is a rule x -> y and a string z; the answer is z with the leftmost occurrence
of x replaced by y, or z unchanged when x does not occur (a "no-op"). The same generator
serves the task suite (one rewriting task among the others) and study B's rule grids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from itlab.tasks import Task, register


def rewrite(x: str, y: str, z: str) -> str:
    """Replace the leftmost occurrence of ``x`` in ``z`` by ``y`` (z unchanged if absent)."""
    if not x:
        raise ValueError("the left-hand side of a rule must not be empty")
    for start in range(len(z) - len(x) + 1):
        if z[start : start + len(x)] == x:
            return z[:start] + y + z[start + len(x) :]
    return z


@dataclass(frozen=True)
class MarkovParams:
    """Knobs of the rewriting generator (study B's axes; lengths are unverified defaults)."""

    alphabet: str = "abcdef"
    x_len: tuple[int, int] = (2, 3)
    y_len: tuple[int, int] = (0, 3)
    z_len: tuple[int, int] = (6, 10)
    noop_rate: float = 0.2
    occurrences: tuple[int, ...] = (1,)  # copies of x inserted in z; several = a mixture
    family: str = "any"  # any | repeated | periodic | mirrored
    family_k: int = 2


def sample_lhs(rng: random.Random, p: MarkovParams) -> str:
    """The left-hand side x of a rule, from the configured family."""
    n = rng.randint(*p.x_len)
    if p.family == "any":
        return "".join(rng.choice(p.alphabet) for _ in range(n))
    if p.family == "repeated":  # one character repeated k times
        return rng.choice(p.alphabet) * p.family_k
    if p.family == "periodic":  # a block of k characters repeated up to length max(n, 2k)
        block = "".join(rng.choice(p.alphabet) for _ in range(p.family_k))
        length = max(n, 2 * p.family_k)
        return (block * length)[:length]
    if p.family == "mirrored":  # w + reversed(w), |w| = k
        w = "".join(rng.choice(p.alphabet) for _ in range(p.family_k))
        return w + w[::-1]
    raise ValueError(f"unknown rule family {p.family!r}")


def rule_space(p: MarkovParams) -> int | None:
    """How many distinct rules (x, y), x != y, the generator can draw: the most a grid can use
    (training cells plus the held-out test rules). None for a restricted family (not counted)."""
    if p.family != "any":
        return None
    a = len(set(p.alphabet))
    strings = lambda lo, hi: sum(a**n for n in range(lo, hi + 1))  # noqa: E731
    same = strings(max(p.x_len[0], p.y_len[0]), min(p.x_len[1], p.y_len[1]))  # x == y is not a rule
    return strings(*p.x_len) * strings(*p.y_len) - same


def sample_rules(rng: random.Random, p: MarkovParams, n: int, exclude=frozenset()) -> list[tuple[str, str]]:
    """``n`` distinct rules (x, y), none of them in ``exclude``."""
    seen = set(exclude)
    rules: list[tuple[str, str]] = []
    attempts = 0
    while len(rules) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise ValueError(
                f"cannot draw {n} distinct rules from alphabet {p.alphabet!r} with x_len {p.x_len}, "
                f"y_len {p.y_len}, family {p.family!r}: widen the alphabet or the lengths"
            )
        x = sample_lhs(rng, p)
        y = "".join(rng.choice(p.alphabet) for _ in range(rng.randint(*p.y_len)))
        if x == y or (x, y) in seen:
            continue
        seen.add((x, y))
        rules.append((x, y))
    return rules


def sample_string(rng: random.Random, p: MarkovParams, x: str, noop: bool) -> str:
    """A string z of a length drawn from ``z_len`` (or the inserted copies' length, if longer) that
    contains x (inserted ``occurrences`` times, the rest random filler) or, for a no-op, does not."""
    for _ in range(1000):
        n = rng.randint(*p.z_len)
        if noop:
            z = "".join(rng.choice(p.alphabet) for _ in range(n))
            if x not in z:
                return z
            continue
        copies = rng.choice(p.occurrences)
        filler = max(0, n - copies * len(x))  # z keeps its drawn length n (at least the copies of x)
        cuts = sorted(rng.randint(0, filler) for _ in range(copies))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, filler])]
        parts = ["".join(rng.choice(p.alphabet) for _ in range(k)) for k in sizes]
        z = parts[0] + "".join(x + part for part in parts[1:])
        if x in z:
            return z
    raise ValueError(f"cannot sample a {'no-op ' if noop else ''}string for x={x!r}")


def examples_per_rule(num_rules: int, total: int, skew: float) -> list[int]:
    """Split ``total`` examples over rules with weights ~ rank^-skew (skew 0 = uniform).

    Every rule gets at least one example; the largest remainders take the leftovers.
    """
    if total < num_rules:
        raise ValueError(f"total examples {total} < number of rules {num_rules}")
    weights = [(i + 1) ** (-skew) for i in range(num_rules)]
    spare = total - num_rules
    raw = [spare * w / sum(weights) for w in weights]
    counts = [1 + int(r) for r in raw]
    order = sorted(range(num_rules), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def make_instance(rng: random.Random, p: MarkovParams, rule: tuple[str, str]) -> dict:
    x, y = rule
    noop = rng.random() < p.noop_rate
    z = sample_string(rng, p, x, noop)
    return {"x": x, "y": y, "z": z, "noop": str(noop)}


PHRASINGS = (
    "Apply the rule {x} -> {y} once to {z}.",
    "Rewrite {z}: replace the leftmost {x} with {y}.",
    "Using the rewrite rule {x} -> {y}, transform {z}.",
)


def _suite_sample(rng: random.Random, params) -> dict:
    p = MarkovParams(alphabet=params.alphabet[:6])
    return make_instance(rng, p, sample_rules(rng, p, 1)[0])


register(Task(
    "markov_rewrite", "rewriting", PHRASINGS, _suite_sample,
    lambda d: rewrite(d["x"], d["y"], d["z"])))
