"""Study D (Wu et al. 2023): what instruction tuning changes inside a model.

- ``density``: scaling of attribution matrices, importance density, instruction score.
- ``matrices``: the attribution file format the analysis reads.
- ``attribution``: greedy responses and gradient x input attribution (batched backward passes).
- ``prompts``: the authors' FinalDataset.tsv format, span matching, synthetic prompts.
- ``weights``: per-architecture access to W_q, W_k, the input norm and the FFN down projection.
- ``heads`` / ``ffn``: word-level explanations of attention heads and FFN principal components.
- ``words``: word lists (instruction verbs, general verbs, FFN categories).
"""
