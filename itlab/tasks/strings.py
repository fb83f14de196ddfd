"""String-transform cluster."""

from itlab.tasks import Task, random_word, register


def _word(rng, p):
    return {"s": random_word(rng, p)}


register(Task(
    "reverse", "strings",
    ("Reverse the string {s}.", "Write {s} backwards.", "What is {s} spelled in reverse order?"),
    _word, lambda d: d["s"][::-1]))

register(Task(
    "uppercase", "strings",
    ("Convert {s} to upper case.", "Write {s} in capital letters.", "Capitalize every letter of {s}."),
    _word, lambda d: d["s"].upper()))

register(Task(
    "sort_letters", "strings",
    ("Sort the letters of {s} alphabetically.", "Put the letters in {s} in alphabetical order.",
     "Arrange the characters of {s} from a to z."),
    _word, lambda d: "".join(sorted(d["s"]))))

register(Task(
    "dedupe", "strings",
    ("Remove repeated letters from {s}, keeping first occurrences.",
     "Delete every letter of {s} that already appeared earlier.",
     "Keep only the first occurrence of each letter in {s}."),
    _word, lambda d: "".join(dict.fromkeys(d["s"]))))

register(Task(
    "first_last", "strings",
    ("Give the first and the last letter of {s}.", "Which letters start and end {s}?",
     "Write the first letter of {s} followed by its last letter."),
    _word, lambda d: d["s"][0] + d["s"][-1]))
