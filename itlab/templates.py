"""Hub task templates: rendering a data set row into (prompt, answer), and a check that the
answer a template expects is one the prompt offers.

``template_problems`` is a pure function of a task spec (``data.hub_tasks.<name>``) and a
few rows of its data set (real rows, a mirror's, or schema fixtures), so that the config
check, the mirror's schema check and the tests all use the same rules.
"""

from __future__ import annotations

import re

# "... yes or no?", "... yes, maybe or no?", "... 1 or 2?" at the end of a prompt
_ALTERNATIVES = re.compile(r"(\w+(?:, \w+)*,? or \w+)\?\s*$")
# option lines: "A. text", "B) text", "0: text", "Option 1: text", "Ending 2: text"
_OPTION_LINE = re.compile(r"^\s*(?:Option |Ending |Choice )?([A-Za-z0-9])\s*[:.)]\s+\S", re.M)
# answers that only make sense as option labels: a capital letter, or a Python bool
_LABEL_LIKE = re.compile(r"^(?:[A-J]|True|False)$")


def options_text(options: dict) -> str:
    """Lettered (or numbered) answer options, one per line: ``A. text``."""
    return "\n".join(f"{label}. {text}" for label, text in zip(options["label"], options["text"]))


def render_row(spec: dict, row: dict) -> tuple[str, str] | None:
    """(prompt, answer) of a data set row; None for an unlabelled row (negative label)."""
    row = dict(row)
    if spec.get("choices"):
        label = int(row[spec.get("label_field", "label")])
        if label < 0:
            return None
        row["label_text"] = spec["choices"][label]
    if spec.get("options_field"):
        row["options"] = options_text(row[spec["options_field"]])
    return spec["input_template"].format(**row), spec["target_template"].format(**row)


def offered_answers(prompt: str) -> set[str] | None:
    """Answers a prompt offers: the alternatives of a closing "x, y or z?" question, else the
    labels of its option lines (two or more); None when it offers none (free generation)."""
    last = prompt.strip().splitlines()[-1] if prompt.strip() else ""
    m = _ALTERNATIVES.search(last)
    if m:
        return {a.strip().lower() for a in re.split(r",\s*|\s+or\s+", m.group(1)) if a.strip()}
    labels = _OPTION_LINE.findall(prompt)
    if len(labels) >= 2:
        return {x.lower() for x in labels}
    return None


def template_problems(name: str, spec: dict, rows: list[dict]) -> list[str]:
    """What is wrong with a hub task's templates on these rows, one sentence each ([] if nothing).

    - every row renders (fields exist, labels index ``choices``);
    - with ``choices``: each choice is offered in the prompt and the answer is a choice;
    - with ``options_field``: the answer is one of the row's option labels;
    - a prompt that offers answers ("yes or no?", option lines) expects one of them;
    - answers that look like labels (a capital letter, True/False) need a prompt that offers them.
    """
    problems: list[str] = []
    key = f"data.hub_tasks.{name}"
    rendered = []
    for i, row in enumerate(rows):
        try:
            out = render_row(spec, row)
        except (KeyError, IndexError, ValueError, TypeError) as err:
            problems.append(f"{key}: row {i} does not render ({type(err).__name__}: {err})")
            continue
        if out is not None:
            rendered.append((i, row, *out))
    for i, row, prompt, answer in rendered:
        if not answer.strip():
            problems.append(f"{key}: row {i} has an empty answer")
            continue
        offered = offered_answers(prompt)
        if spec.get("choices"):
            missing = [c for c in spec["choices"] if not re.search(rf"\b{re.escape(c)}\b", prompt, re.I)]
            if missing:
                problems.append(f"{key}: the prompt never offers the choice(s) {missing}")
            if answer not in spec["choices"]:
                problems.append(f"{key}: row {i} expects {answer!r}, not one of the choices {spec['choices']}")
        if spec.get("options_field"):
            labels = [str(x) for x in row[spec["options_field"]]["label"]]
            if answer not in labels:
                problems.append(f"{key}: row {i} expects {answer!r}, not one of its option labels {labels}")
        if offered is not None and answer.strip().lower() not in offered:
            problems.append(f"{key}: row {i} expects {answer!r} but the prompt offers {sorted(offered)}")
        elif offered is None and _LABEL_LIKE.match(answer.strip()) and all(
                _LABEL_LIKE.match(a.strip()) for *_, a in rendered):
            problems.append(f"{key}: row {i} expects the label {answer!r} but the prompt offers no options")
    return sorted(set(problems), key=problems.index)
