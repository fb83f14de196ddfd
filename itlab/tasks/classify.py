"""Yes/no classification cluster."""

from itlab.tasks import Task, random_word, register


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _maybe_palindrome(rng, p):
    s = random_word(rng, p)
    if rng.random() < 0.5:  # balance the classes: half the words are made palindromes
        s = s[: (len(s) + 1) // 2]
        s = s + s[: len(s) - (len(s) % 2 if rng.random() < 0.5 else 0)][::-1]
    return {"s": s}


def _word_and_letter(rng, p):
    return {"s": random_word(rng, p), "c": rng.choice(p.alphabet)}


def _maybe_sorted(rng, p):
    s = random_word(rng, p)
    if rng.random() < 0.5:
        s = "".join(sorted(s))
    return {"s": s}


def _word(rng, p):
    return {"s": random_word(rng, p)}


register(Task(
    "is_palindrome", "classify",
    ("Palindrome? [{s}]", "Does it read the same backwards, yes or no: [{s}]",
     "Answer yes or no, is it equal to its reverse: [{s}]"),
    _maybe_palindrome, lambda d: _yes(d["s"] == d["s"][::-1])))

register(Task(
    "contains_letter", "classify",
    ("Contains? [{c}] [{s}]",
     "Is the letter in the word, yes or no: [{c}] [{s}]",
     "Answer yes or no, does the letter occur in the word: [{c}] [{s}]"),
    _word_and_letter, lambda d: _yes(d["c"] in d["s"])))

register(Task(
    "even_length", "classify",
    ("Even length? [{s}]",
     "Is the length even, yes or no: [{s}]", "Answer yes or no, is it of even length: [{s}]"),
    _word, lambda d: _yes(len(d["s"]) % 2 == 0)))

register(Task(
    "is_sorted", "classify",
    ("Sorted? [{s}]",
     "Is it sorted from a to z, yes or no: [{s}]", "Answer yes or no, is it alphabetically sorted: [{s}]"),
    _maybe_sorted, lambda d: _yes(list(d["s"]) == sorted(d["s"]))))
