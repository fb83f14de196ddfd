"""The attribution file format: what the analysis reads, whoever computed the matrices.

One file holds the responses of one model, one JSON object per line, gzip-compressed when
the name ends in ``.gz``. Fields of a record:

- ``id`` (str), ``set`` (str): prompt id and prompt set (e.g. ``lima``, ``mtbench``, ``user``)
- ``model`` (str): the model's name in the study (e.g. ``llama-vicuna/tuned``)
- ``response`` (str): the decoded response
- ``input_tokens`` (list of str, N): prompt tokens, BOS excluded
- ``output_tokens`` (list of str, M): response tokens
- ``instruction_mask`` (list of 0/1, N, or null): 1 on instruction tokens; null when an
  instruction span was not found in the tokens (``span_error`` says which)
- ``kind``: ``raw`` (gradient x input floats) or ``scaled`` (integers 0..10, already scaled
  per output token as in ``itlab.interpret.density.scale``)
- ``matrix`` (N lists of M numbers): attribution of input token n to output token m
- optional: ``followed`` (0/1/null: the task checker, or a rating >= 2), ``rating`` (number),
  ``answer`` (gold answer of a synthetic prompt), ``span_error`` (str)

``validate`` checks shapes, so a file written elsewhere fails with the record it is about.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from itlab.io import atomic_path

REQUIRED = ("id", "set", "model", "response", "input_tokens", "output_tokens", "instruction_mask", "kind", "matrix")


def _open(path, mode: str, gz: bool | None = None):
    gz = str(path).endswith(".gz") if gz is None else gz
    return gzip.open(path, mode + "t", encoding="utf-8") if gz else open(path, mode, encoding="utf-8")


def validate(rec: dict, where: str = "") -> dict:
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"{where}record {rec.get('id')!r}: missing fields {missing}")
    n, m = len(rec["input_tokens"]), len(rec["output_tokens"])
    mat = np.asarray(rec["matrix"], dtype=np.float64).reshape(n, m) if n * m == 0 else np.asarray(rec["matrix"])
    if mat.shape != (n, m):
        raise ValueError(f"{where}record {rec['id']!r}: matrix shape {mat.shape} != (input {n}, output {m})")
    if rec["instruction_mask"] is not None and len(rec["instruction_mask"]) != n:
        raise ValueError(f"{where}record {rec['id']!r}: mask length {len(rec['instruction_mask'])} != {n} inputs")
    if rec["kind"] not in ("raw", "scaled"):
        raise ValueError(f"{where}record {rec['id']!r}: kind {rec['kind']!r} is not raw or scaled")
    if rec["kind"] == "scaled" and mat.size and (mat.min() < 0 or mat.max() > 10 or np.any(mat != np.round(mat))):
        raise ValueError(f"{where}record {rec['id']!r}: a scaled matrix holds integers 0..10")
    return rec


def write(path, records) -> int:
    n = 0
    with atomic_path(path) as tmp:
        with _open(tmp, "w", gz=str(path).endswith(".gz")) as fh:
            for rec in records:
                rec = dict(rec)
                rec["matrix"] = np.asarray(rec["matrix"]).tolist()
                fh.write(json.dumps(validate(rec), sort_keys=True) + "\n")
                n += 1
    return n


def read(path):
    """Yield validated records of one file."""
    with _open(path, "r") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                rec = json.loads(line)
                rec["matrix"] = np.asarray(rec["matrix"], dtype=np.float64).reshape(
                    len(rec["input_tokens"]), len(rec["output_tokens"]))
                yield validate(rec, f"{Path(path).name}:{i}: ")
