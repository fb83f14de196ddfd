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
    ("Is {s} a palindrome? Answer yes or no.", "Does {s} read the same backwards? yes or no.",
     "Answer yes or no: is {s} equal to its reverse?"),
    _maybe_palindrome, lambda d: _yes(d["s"] == d["s"][::-1])))

register(Task(
    "contains_letter", "classify",
    ("Does {s} contain the letter {c}? Answer yes or no.", "Is there a {c} in {s}? yes or no.",
     "Answer yes or no: does the letter {c} occur in {s}?"),
    _word_and_letter, lambda d: _yes(d["c"] in d["s"])))

register(Task(
    "even_length", "classify",
    ("Does {s} have an even number of letters? Answer yes or no.",
     "Is the length of {s} even? yes or no.", "Answer yes or no: is {s} of even length?"),
    _word, lambda d: _yes(len(d["s"]) % 2 == 0)))

register(Task(
    "is_sorted", "classify",
    ("Are the letters of {s} in alphabetical order? Answer yes or no.",
     "Is {s} sorted from a to z? yes or no.", "Answer yes or no: is {s} alphabetically sorted?"),
    _maybe_sorted, lambda d: _yes(list(d["s"]) == sorted(d["s"]))))
