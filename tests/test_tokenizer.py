"""The tokenizer trained for the embedded ladder: one piece per character of the synthetic
tasks (so spelling-level tasks are permutations of tokens), exact round trips, and the chat
template's markers as single tokens."""

import random

import pytest

from itlab import data, models
from itlab import tasks as registry
from itlab.tasks import TaskParams


@pytest.fixture(scope="module")
def corpus():
    return data.build_corpus(sorted(registry.REGISTRY), 60, 4, 1, 1, TaskParams(), "train")


@pytest.fixture(scope="module")
def char_tok(corpus, tmp_path_factory):
    return models.train_tokenizer(corpus, 320, tmp_path_factory.mktemp("char"), kind="char")


def _examples(n=5):
    rng = random.Random(7)
    return [t.example(rng, TaskParams()) for t in registry.REGISTRY.values() for _ in range(n)]


def test_char_tokenizer_one_piece_per_character_and_exact_round_trip(char_tok):
    for ex in _examples():
        text = data.format_plain(ex["prompt"], ex["answer"])
        ids = char_tok.encode(text, add_special_tokens=False)
        assert len(ids) == len(text), (text, [char_tok.decode([i]) for i in ids])
        assert [char_tok.decode([i]) for i in ids] == list(text)
        assert char_tok.decode(ids) == text
        # a letter is the same token wherever it stands (no word-initial variants)
        answer_ids = char_tok.encode(" " + ex["answer"], add_special_tokens=False)[1:]
        assert answer_ids == [char_tok.convert_tokens_to_ids(char_tok.tokenize(c))[0] for c in ex["answer"]]


def test_char_tokenizer_covers_characters_absent_from_the_corpus(tmp_path):
    tok = models.train_tokenizer(["abc abc"], 320, tmp_path, kind="char")
    text = "Zürich 42: xyz!"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text and len(ids) == len(text.encode())  # bytes, never an unknown token


def test_chat_markers_are_single_tokens_and_survive_saving(char_tok, tmp_path):
    char_tok.save_pretrained(tmp_path)
    tok = models.load_tokenizer(str(tmp_path))
    ids = tok.apply_chat_template([{"role": "user", "content": "Reverse abc."}], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)
    assert ids[0] == tok.convert_tokens_to_ids(models.USER)
    assert ids[-2:] == [tok.convert_tokens_to_ids(models.ASSISTANT), tok.encode("\n", add_special_tokens=False)[0]]
    assert len(tok) == 256 + 4


def test_bpe_tokenizer_merges_task_letters_which_is_why_char_is_the_default(corpus, tmp_path):
    bpe = models.train_tokenizer(corpus, 320, tmp_path, kind="bpe")
    merged = sum(len(bpe.encode(ex["answer"], add_special_tokens=False)) < len(ex["answer"]) for ex in _examples())
    assert merged > 0
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        models.train_tokenizer(corpus, 320, tmp_path, kind="word")
