"""String-transform cluster."""

from itlab.tasks import Task, random_word, register


def _word(rng, p):
    return {"s": random_word(rng, p)}


register(Task(
    "reverse", "strings",
    ("Reverse: [{s}]", "Write it backwards: [{s}]", "Spell it in reverse order: [{s}]"),
    _word, lambda d: d["s"][::-1]))

register(Task(
    "uppercase", "strings",
    ("Upper case: [{s}]", "Write in capital letters: [{s}]", "Capitalize every letter: [{s}]"),
    _word, lambda d: d["s"].upper()))

register(Task(
    "sort_letters", "strings",
    ("Sort: [{s}]", "Put the letters in alphabetical order: [{s}]",
     "Arrange the characters from a to z: [{s}]"),
    _word, lambda d: "".join(sorted(d["s"]))))

register(Task(
    "dedupe", "strings",
    ("Dedupe: [{s}]",
     "Delete every letter that already appeared earlier: [{s}]",
     "Keep only the first occurrence of each letter: [{s}]"),
    _word, lambda d: "".join(dict.fromkeys(d["s"]))))

register(Task(
    "first_last", "strings",
    ("First and last: [{s}]", "Which letters start and end the word: [{s}]",
     "Write the first letter followed by the last letter: [{s}]"),
    _word, lambda d: d["s"][0] + d["s"][-1]))
