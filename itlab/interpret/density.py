"""Scaling of an attribution matrix, importance density and the instruction score.

Definitions follow the authors' analysis code (``compute_density`` and ``evaluate`` in
JacksonWuxs/Interpret_Instruction_Tuning_LLMs), which produced the paper's tables. A matrix
``I`` has one row per input token n and one column per output token m.
"""

from __future__ import annotations

import numpy as np

LEVELS = 10  # S = ceil(LEVELS * x): integers 0..10
THRESHOLD = 7  # S <= THRESHOLD -> 0
NORM_P = 4  # density = L1 / L4
EPS = 1e-9  # the analysis code's epsilon (input_explain's unused density uses 1e-7)


def scale(matrix, levels: int = LEVELS, eps: float = EPS) -> np.ndarray:
    """Per output token (column): negatives -> 0, divide by the max over input tokens
    (+eps), S = ceil(levels * x), integers 0..levels."""
    x = np.maximum(np.asarray(matrix, dtype=np.float64), 0.0)
    if x.size == 0:
        return x
    x = x / (x.max(axis=0, keepdims=True) + eps)
    return np.ceil(x * levels)


def density(scaled, threshold: int = THRESHOLD, p: int = NORM_P, eps: float = EPS) -> np.ndarray:
    """Density a_n of each input token from a scaled matrix (values 0..10).

    Entries <= threshold are zeroed; a_n = ||S_n||_1 / (||S_n||_p + eps) over output tokens,
    then divided by (eps + the max over input tokens).
    """
    s = np.asarray(scaled, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"expected a 2-D matrix (input x output tokens), got shape {s.shape}")
    s = np.where(s <= threshold, 0.0, s)
    l1 = s.sum(axis=-1)
    lp = (s ** p).sum(axis=-1) ** (1.0 / p) + eps
    a = l1 / lp
    if a.size == 0:
        return a
    return a / (eps + a.max())


def instruction_score(dens, mask) -> float:
    """Sum of densities over instruction tokens / log2(2 + number of instruction tokens)."""
    dens, mask = np.asarray(dens, dtype=np.float64), np.asarray(mask, dtype=np.float64)
    if dens.shape != mask.shape:
        raise ValueError(f"density has {dens.shape[0]} input tokens, the mask {mask.shape[0]}")
    return float((dens * mask).sum() / np.log2(2.0 + mask.sum()))


def score_matrix(matrix, mask, kind: str = "raw", threshold: int = THRESHOLD) -> float:
    """Instruction score of one response; an empty response (no output tokens) scores 0,
    as in the authors' code. ``kind``: ``raw`` floats or ``scaled`` integers 0..10."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] == 0:
        return 0.0
    if kind == "raw":
        m = scale(m)
    elif kind != "scaled":
        raise ValueError(f"unknown matrix kind {kind!r} (raw or scaled)")
    return instruction_score(density(m, threshold), mask)
