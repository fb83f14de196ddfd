"""Prompts of study D and their instruction spans.

Paper scale: the authors' ``datasets/FinalDataset.tsv`` (columns ID, Prompt, Response,
Instruct&Context; newlines written ``/n``, tabs ``/t``; in ``Instruct&Context`` the
instruction spans are separated by ``|||`` and the instruction part from the context by
``&&&``). As in the authors' loader, each annotated fragment is widened to the full prompt
sentence that contains it. Embedded scale: prompts rendered by the task generator, whose
instruction words (the literal text of the phrasing) and input words are known.

Every prompt record: ``id``, ``set``, ``prompt``, ``instruction`` (list of spans),
``context`` (str), optional ``answer`` (synthetic: the task's gold answer) and ``rating``.
"""

from __future__ import annotations

import random
import re
import string

from itlab import tasks as task_registry
from itlab.data import format_plain

# Tokens stripped from both ends of a tokenised span before it is searched (the authors'
# list: SentencePiece's lone word boundary, a newline byte, a boundary + quote).
EDGE_TOKENS = {"\u2581", "<0x0A>", "\u2581\"", "\u010a", "\u0120"}


class SpanNotFound(ValueError):
    pass


def decode(text: str) -> str:
    """The authors' cell encoding: /t and /n for tab and newline, optional quotes."""
    text = text.replace("/t", "\t").replace("/n", "\n")
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    return text.replace('""', '"')


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?:])\s+", text)


def widen_spans(prompt: str, annotated: str) -> tuple[list[str], str]:
    """Instruction spans and context of one ``Instruct&Context`` cell.

    Each fragment (split at ``|||`` and newlines, then into sentences) is replaced by the
    first prompt sentence that contains it, minus a leading ``Input:``. A fragment found in
    no prompt sentence raises SpanNotFound (the authors' loader raises too).
    """
    inst_part, _, context = annotated.partition("&&&")
    prompt_sents = [s for line in prompt.split("\n") for s in sentences(line)]
    spans: set[str] = set()
    for fragment in inst_part.replace("\n", "|||").split("|||"):
        for piece in sentences(fragment):
            for sent in prompt_sents:
                if piece in sent:
                    spans.add(sent[6:].strip() if sent.startswith("Input:") else sent)
                    break
            else:
                raise SpanNotFound(f"instruction fragment {piece!r} is in no prompt sentence")
    return sorted(s for s in spans if s), context


def load_final_dataset(path) -> list[dict]:
    """Prompts of a FinalDataset.tsv file; a row whose spans cannot be placed is kept with
    ``span_error`` set (counted and listed by the analysis, never dropped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:4] != ["ID", "Prompt", "Response", "Instruct&Context"]:
            raise ValueError(f"{path}: header {header[:4]} is not ID, Prompt, Response, Instruct&Context")
        for lineno, row in enumerate(fh, 2):
            if not row.strip():
                continue
            cells = row.rstrip("\n").split("\t")
            if len(cells) < 4:
                raise ValueError(f"{path}:{lineno}: {len(cells)} tab-separated cells, expected 4")
            pid, prompt, reference, annotated = cells[:4]
            prompt = decode(prompt)
            rec = {"id": pid, "set": pid.split("_")[0], "prompt": prompt, "reference": decode(reference)}
            try:
                rec["instruction"], rec["context"] = widen_spans(prompt, decode(annotated))
            except SpanNotFound as err:
                rec["instruction"], rec["context"], rec["span_error"] = [], "", str(err)
            out.append(rec)
    return out


def load_ratings(path, model: str) -> dict[str, float]:
    """Ratings of the authors' AnnotatedDataset.tsv format (File, Model, ..., Rating) for one model."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        fh.readline()
        for row in fh:
            cells = row.rstrip("\n").split("\t")
            if len(cells) >= 7 and cells[1] == model:
                out[cells[0].rsplit(".", 1)[0] if cells[0].endswith(".pkl") else cells[0]] = float(cells[6])
    return out


def template_spans(template: str) -> list[str]:
    """Literal parts of a phrasing template (the instruction words), without placeholders."""
    parts = [literal.strip() for literal, *_ in string.Formatter().parse(template)]
    return [p for p in parts if any(c.isalpha() for c in p)]


def synthetic_prompts(task_names, per_task: int, seed: int, params) -> list[dict]:
    """Prompts from the task generator: instruction = the phrasing's literal text, context =
    the sampled inputs, answer = the gold answer the task's checker compares with."""
    out = []
    for name in task_names:
        task = task_registry.get(name)
        rng = random.Random(f"behavior_shift:{seed}:{name}")
        for i in range(per_task):
            ex = task.example(rng, params)
            template = task.phrasings[ex["phrasing"] % len(task.phrasings)]
            out.append({"id": f"{name}_{i}", "set": task.cluster, "task": name, "prompt": ex["prompt"],
                        "instruction": template_spans(template), "context": " ".join(ex["inputs"].values()),
                        "answer": ex["answer"]})
    return out


def format_prompt(prompt: str, fmt: str, tokenizer=None) -> str:
    """raw (the authors': the prompt text as is), plain (study A's base format) or chat
    (the tokenizer's chat template with a generation prompt)."""
    if fmt == "raw":
        return prompt
    if fmt == "plain":
        return format_plain(prompt)
    if fmt == "chat":
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    raise ValueError(f"unknown prompt format {fmt!r}")


def find_sublist(pattern: list, seq: list) -> int:
    """First index of ``pattern`` in ``seq`` (-1 if absent)."""
    n = len(pattern)
    for i in range(len(seq) - n + 1):
        if seq[i:i + n] == pattern:
            return i
    return -1


def _strip_edges(tokens: list[str]) -> list[str]:
    while tokens and tokens[0] in EDGE_TOKENS:
        tokens = tokens[1:]
    while tokens and tokens[-1] in EDGE_TOKENS:
        tokens = tokens[:-1]
    return tokens


def instruction_mask(prompt: str, spans: list[str], input_tokens: list[str], tokenize) -> list[int]:
    """1 on the input tokens of each instruction span (its first occurrence), as in the
    authors' ``match_instruct_context``; raises SpanNotFound naming the span otherwise.

    A span preceded by a newline in the prompt is tokenised with that newline; edge tokens
    are stripped. For byte-level BPE (a word after a space is a different token than at the
    start of a text) the span is also tried with a leading space.
    """
    mask = [0] * len(input_tokens)
    for span in spans:
        if not span:
            continue
        pos = prompt.find(span)
        if pos < 0:
            raise SpanNotFound(f"span {span!r} is not in the prompt")
        text = "\n" + span if pos > 0 and prompt[pos - 1] == "\n" else span
        for candidate in (text, " " + span):
            toks = _strip_edges(list(tokenize(candidate)))
            idx = find_sublist(toks, input_tokens) if toks else -1
            if idx >= 0:
                mask[idx:idx + len(toks)] = [1] * len(toks)
                break
        else:
            raise SpanNotFound(f"span {span!r} is not in the prompt's tokens")
    return mask


def build_prompts(spec: dict, dataset=None, ratings=None) -> list[dict]:
    """Prompts of study D from the rule's parameters (source, tasks, seed) and files."""
    from itlab.tasks import TaskParams

    p = spec["prompts"]
    if p["source"] == "synthetic":
        return synthetic_prompts(spec["tasks"], p["per_task"], spec["seed"], TaskParams(**spec["params"]))
    prompts = load_final_dataset(dataset)
    if ratings:
        ratings = load_ratings(ratings, p["rated_model"])
        for q in prompts:
            if q["id"] in ratings:
                q["rating"] = ratings[q["id"]]
    return prompts


def fetch_checked(url: str, sha256: str, out_path) -> None:
    """Download url (https only) and write it atomically if its SHA-256 matches."""
    import hashlib
    import urllib.request

    from itlab.io import atomic_path

    if not url.startswith("https://"):
        raise ValueError(f"{url!r}: only https downloads")
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 (https checked above)
        data = resp.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{url}: SHA-256 {digest} != expected {sha256}")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)


STANDIN_FILES = __import__("pathlib").Path(__file__).resolve().parent.parent / "fixtures" / "behavior_shift"


def standin_file(url: str, out_path) -> str:
    """Stand-in mode (``mirror.standin``): the schema-faithful fixture of the file at ``url``
    (``itlab/fixtures/behavior_shift/<file name>``), written atomically; no download, no
    SHA-256 (the fixture is not the authors' file). Returns the fixture's path."""
    from itlab.io import atomic_path

    name = url.rstrip("/").rsplit("/", 1)[-1]
    src = STANDIN_FILES / name
    if not src.is_file():
        known = ", ".join(sorted(p.name for p in STANDIN_FILES.glob("*.tsv")))
        raise FileNotFoundError(f"{url}: no stand-in fixture {name!r} in {STANDIN_FILES} (known: {known})")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(src.read_bytes())
    return str(src)
