"""Arithmetic cluster: small-number operations written in digits."""

from itlab.tasks import Task, register


def _pair(rng, p):
    return {"a": rng.randint(0, p.max_number), "b": rng.randint(0, p.max_number)}


def _ordered_pair(rng, p):
    a, b = sorted((rng.randint(0, p.max_number), rng.randint(0, p.max_number)), reverse=True)
    return {"a": a, "b": b}


def _small_pair(rng, p):
    return {"a": rng.randint(0, 12), "b": rng.randint(0, 12)}


def _numbers(rng, p):
    return {"xs": " ".join(str(rng.randint(0, p.max_number)) for _ in range(rng.randint(3, 5)))}


register(Task(
    "add", "arithmetic",
    ("Add: [{a}] [{b}]", "What is the first plus the second: [{a}] [{b}]",
     "Compute the sum: [{a}] [{b}]"),
    _pair, lambda d: str(int(d["a"]) + int(d["b"]))))

register(Task(
    "subtract", "arithmetic",
    ("Subtract: [{a}] [{b}]", "What is the first minus the second: [{a}] [{b}]",
     "Compute the difference: [{a}] [{b}]"),
    _ordered_pair, lambda d: str(int(d["a"]) - int(d["b"]))))

register(Task(
    "multiply", "arithmetic",
    ("Multiply: [{a}] [{b}]", "What is the first times the second: [{a}] [{b}]",
     "Compute the product: [{a}] [{b}]"),
    _small_pair, lambda d: str(int(d["a"]) * int(d["b"]))))

register(Task(
    "maximum", "arithmetic",
    ("Maximum: [{xs}]", "Find the largest number: [{xs}]",
     "Name the biggest value: [{xs}]"),
    _numbers, lambda d: str(max(int(x) for x in d["xs"].split()))))
