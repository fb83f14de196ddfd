"""Hub task templates expect answers their prompts offer: checked for every hub task of every
experiment config on one row per data set (field names and types as the data sets publish
them; the mirror's fixtures check the schemas themselves)."""

import pytest
import yaml

from conftest import ROOT
from itlab.config import validate
from itlab.templates import offered_answers, render_row, template_problems

ROWS = {
    ("facebook/anli", None): {"uid": "u1", "premise": "A man sleeps.", "hypothesis": "A man is awake.", "label": 2,
                              "reason": ""},
    ("nyu-mll/glue", "rte"): {"sentence1": "Paris is in France.", "sentence2": "Paris is French.", "label": 0,
                              "idx": 0},
    ("nyu-mll/glue", "qnli"): {"question": "Where is Paris?", "sentence": "Paris is in France.", "label": 0, "idx": 0},
    ("nyu-mll/glue", "sst2"): {"sentence": "a fine film", "label": 1, "idx": 0},
    ("nyu-mll/glue", "mrpc"): {"sentence1": "He left.", "sentence2": "He went away.", "label": 1, "idx": 0},
    ("ybisk/piqa", None): {"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Paint the lid.", "label": 0},
    ("LSDSem/story_cloze", "2016"): {"story_id": "s", "input_sentence_1": "Ann was hungry.",
                                     "input_sentence_2": "She went out.", "input_sentence_3": "She saw a cafe.",
                                     "input_sentence_4": "She went in.", "sentence_quiz1": "She ate.",
                                     "sentence_quiz2": "She flew.", "answer_right_ending": 1},
    ("stanfordnlp/imdb", None): {"text": "Loved it.", "label": 1},
    ("google-research-datasets/paws", "labeled_final"): {"id": 1, "sentence1": "A b.", "sentence2": "B a.",
                                                          "label": 0},
    ("allenai/ai2_arc", "ARC-Easy"): {"id": "q1", "question": "Which is a planet?",
                                      "choices": {"text": ["Mars", "Moon", "Sun", "Comet"],
                                                  "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
    ("mandarjoshi/trivia_qa", "rc.nocontext"): {"question": "Capital of France?", "question_id": "t1",
                                                "question_source": "", "entity_pages": {}, "search_results": {},
                                                "answer": {"aliases": ["Paris"], "normalized_aliases": ["paris"],
                                                           "matched_wiki_entity_name": "",
                                                           "normalized_matched_wiki_entity_name": "",
                                                           "normalized_value": "paris", "type": "WikipediaEntity",
                                                           "value": "Paris"}},
    ("allenai/common_gen", None): {"concept_set_idx": 0, "concepts": ["dog", "ball", "throw"],
                                   "target": "A man throws a ball to his dog."},
    ("GEM/e2e_nlg", None): {"gem_id": "e1", "gem_parent_id": "e1", "meaning_representation": "name[Aromi]",
                            "target": "Aromi is a restaurant.", "references": ["Aromi is a restaurant."]},
    ("wmt/wmt16", "de-en"): {"translation": {"de": "Guten Morgen.", "en": "Good morning."}},
    ("google/boolq", None): {"question": "is paris in france", "answer": True, "passage": "Paris is in France."},
    ("rajpurkar/squad", None): {"id": "s1", "title": "Paris", "context": "Paris is in France.",
                                "question": "Where is Paris?", "answers": {"text": ["France"], "answer_start": [12]}},
    ("allenai/cosmos_qa", None): {"id": "c1", "context": "It rained.", "question": "Why was the ground wet?",
                                  "answer0": "Rain", "answer1": "Sun", "answer2": "Snow", "answer3": "None",
                                  "label": 0},
    ("allenai/winogrande", "winogrande_xl"): {"sentence": "The cup fell off the table because _ was slippery.",
                                              "option1": "the cup", "option2": "the table", "answer": "1"},
    ("aps/super_glue", "wsc.fixed"): {"text": "Mark told Pete he was late.", "span1_index": 0, "span2_index": 3,
                                      "span1_text": "Mark", "span2_text": "he", "idx": 0, "label": 1},
    ("stanfordnlp/coqa", None): {"source": "wikipedia", "story": "Ann has a cat.", "questions": ["What has Ann?"],
                                 "answers": {"input_text": ["a cat"], "answer_start": [8], "answer_end": [13]}},
    ("EdinburghNLP/xsum", None): {"document": "A long story.", "summary": "A story.", "id": "x1"},
    ("openai/gsm8k", "main"): {"question": "2 + 2?", "answer": "2 + 2 = 4\n#### 4"},
    ("tasksource/subqa", None): {"question": "Who?", "answer": "Ann"},
    ("bigcode/self-oss-instruct-sc2-exec-filter-50k", None): {"instruction": "Write f.", "response": "def f(): pass"},
    ("ConiferLM/Conifer", None): {"prompt": "Write a haiku.", "messages": [
        {"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "An old pond..."}]},
    ("databricks/databricks-dolly-15k", None): {"instruction": "Summarize.", "context": "Text.", "response": "T.",
                                                 "category": "summarization"},
    ("ise-uiuc/Magicoder-OSS-Instruct-75K", None): {"problem": "Write f.", "solution": "def f(): pass",
                                                     "lang": "python", "seed": ""},
    ("tatsu-lab/alpaca", None): {"instruction": "Add.", "input": "2 and 2", "output": "4", "text": ""},
}

CONFIGS = ["experiments/inherent-limits.yaml", "experiments/scaling.yaml", "experiments/diversity.yaml"]


def _hub_tasks(path):
    cfg = validate(yaml.safe_load((ROOT / path).read_text()))
    return {n: s for n, s in cfg["data"]["hub_tasks"].items() if "dataset" in s}


@pytest.mark.parametrize("path", CONFIGS)
def test_every_hub_template_expects_an_answer_its_prompt_offers(path):
    problems = []
    for name, spec in _hub_tasks(path).items():
        problems += template_problems(name, spec, [ROWS[(spec["dataset"], spec.get("subset"))]])
    assert problems == []


def test_the_check_catches_templates_that_expect_what_they_do_not_offer():
    arc = ROWS[("allenai/ai2_arc", "ARC-Easy")]
    old_arc = {"input_template": "Question: {question}\nOptions: {choices[text]}", "target_template": "{answerKey}"}
    assert any("offers no options" in p for p in template_problems("arc_easy", old_arc, [arc]))
    boolq = ROWS[("google/boolq", None)]
    old_boolq = {"input_template": "{passage}\nQuestion: {question}? yes or no?", "target_template": "{answer}"}
    assert any("expects 'True' but the prompt offers ['no', 'yes']" in p
               for p in template_problems("boolq", old_boolq, [boolq]))
    # choices the prompt never mentions, a label out of range, an answer outside the options
    assert template_problems("x", {"input_template": "{sentence}\nGood or bad?", "target_template": "{label_text}",
                                   "choices": ["negative", "positive"], "label_field": "label"},
                             [{"sentence": "ok", "label": 1}])
    assert "does not render" in template_problems("x", {"input_template": "{s}", "target_template": "{label_text}",
                                                        "choices": ["a"], "label_field": "label"},
                                                  [{"s": "t", "label": 3}])[0]
    assert template_problems("arc", {"input_template": "{question}\n{options}", "target_template": "{answerKey}",
                                     "options_field": "choices"}, [dict(arc, answerKey="E")])


def test_fixed_templates_render_the_options_and_the_answer_they_offer():
    specs = {**_hub_tasks(CONFIGS[0])}
    prompt, answer = render_row(specs["arc_easy"], ROWS[("allenai/ai2_arc", "ARC-Easy")])
    assert "A. Mars\nB. Moon\nC. Sun\nD. Comet" in prompt and answer == "A"
    assert offered_answers(prompt) == {"a", "b", "c", "d"}
    prompt, answer = render_row(specs["boolq"], ROWS[("google/boolq", None)])
    assert prompt.endswith("yes or no?") and answer == "yes"
    assert render_row(specs["boolq"], dict(ROWS[("google/boolq", None)], answer=False))[1] == "no"
