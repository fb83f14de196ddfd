"""Word lists of study D and word embeddings.

- ``INSTRUCTION_VERBS``: the authors' 38 instruction verbs (the union of their two lists).
- ``GENERAL_VERBS``: frequent English verbs that are not instruction verbs. The authors draw
  the 3,000 most frequent WordNet verbs (wordfreq order); WordNet cannot be downloaded here,
  so this is a fixed list written for itlab (a config key can replace it).
- ``FFN_CATEGORIES``: word lists standing in for the authors' ChatGPT annotation of
  principal components (writing, math, coding, translation); no API calls.
- Embedded scale: instruction words = the literal words of the synthetic suite's phrasings,
  general words = the pretraining corpus's filler words, categories = task clusters.
"""

from __future__ import annotations

import re

INSTRUCTION_VERBS = sorted(set(
    "act analyze clarify classify compose correct create demonstrate describe design detect develop edit "
    "estimate evaluate explain find follow format generate give have help identify interpret make output "
    "predict recommend repeat retrieve revise say solve summarize tell translate write".split()))

GENERAL_VERBS = sorted(set(
    "be do go get see know take come think look want use work call try ask need feel become leave put mean "
    "keep let begin seem show hear play run move like live believe hold bring happen provide sit stand lose "
    "pay meet include continue set learn change lead understand watch speak read allow add spend grow open "
    "walk win offer remember love consider appear buy wait serve die send expect build stay fall cut reach "
    "kill remain suggest raise pass sell require report decide pull return hope carry break receive agree "
    "support hit produce eat cover catch draw choose cause point listen realize place close involve thank "
    "apply enjoy sing fly drive jump swim sleep cook wash throw push".split()) - set(INSTRUCTION_VERBS))

FFN_CATEGORIES = {
    "writing": "write writing story essay poem letter article author novel paragraph sentence narrative "
               "prose chapter draft blog email headline title fiction character",
    "math": "math equation number sum multiply divide fraction integer algebra geometry calculate formula "
            "proof theorem probability percent digit angle triangle derivative",
    "coding": "code function python java program variable class loop array string compile debug software "
              "script syntax return import javascript algorithm database",
    "translation": "translate translation french spanish german chinese japanese english language italian "
                   "russian korean portuguese arabic dutch meaning dictionary bilingual phrase accent",
}
FFN_CATEGORIES = {k: v.split() for k, v in FFN_CATEGORIES.items()}

_WORD = re.compile(r"[A-Za-z]{3,}")


def suite_words(task_names) -> dict[str, list[str]]:
    """Embedded scale: lower-cased words (3+ letters) of each task's phrasings."""
    from itlab import tasks as task_registry

    out = {}
    for name in task_names:
        task = task_registry.get(name)
        text = " ".join(re.sub(r"\{[^}]*\}", " ", ph) for ph in task.phrasings)
        out[name] = sorted({w.lower() for w in _WORD.findall(text)})
    return out


def tokenizer_words(tokenizer) -> list[str]:
    """The authors' default vocabulary: the tokenizer's tokens, word-boundary marks removed,
    alphabetic ones kept (deduplicated, lower-cased forms merged)."""
    seen, out = set(), []
    for tok in tokenizer.get_vocab():
        word = tok.lstrip("\u2581\u0120").strip()
        if word.isalpha() and word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return sorted(out)


def read_vocabulary(path) -> list[str]:
    """One word per line, optionally followed by whitespace and a frequency (the authors'
    SingleShareGPT_Vocab.tsv format)."""
    out, seen = [], set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if parts and parts[0] not in seen:
                seen.add(parts[0])
                out.append(parts[0])
    return out


def embed_words(model, tokenizer, words):
    """Input and output embeddings of each word: the mean over the tokens of " word" (a
    lone leading word-boundary token dropped), as in the authors' ``_get_embeds``."""
    import torch

    e_in = model.get_input_embeddings().weight.detach().float()
    out_layer = model.get_output_embeddings()
    e_out = out_layer.weight.detach().float() if out_layer is not None else e_in
    rows_in, rows_out = [], []
    for word in words:
        tokens = tokenizer.tokenize(" " + word)
        if len(tokens) > 1 and tokens[0] in ("\u0120", "\u2581"):
            tokens = tokens[1:]
        ids = torch.tensor(tokenizer.convert_tokens_to_ids(tokens), dtype=torch.long)
        rows_in.append(e_in[ids].mean(0))
        rows_out.append(e_out[ids].mean(0))
    return torch.stack(rows_in), torch.stack(rows_out)
