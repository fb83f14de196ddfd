"""Every rule has a conda env, and every pin in envs/*.yaml matches requirements.txt."""

import re

import yaml

from conftest import ROOT


def _pins(lines):
    return dict(m.groups() for m in (re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s#]+)", l) for l in lines) if m)


def test_conda_env_pins_match_requirements():
    req = {k.lower(): v for k, v in _pins((ROOT / "requirements.txt").read_text().splitlines()).items()}
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert len(envs) >= 4
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        for name, version in _pins(pip).items():
            assert req.get(name.lower()) == version, f"{env.name}: {name}=={version} vs requirements.txt"


def test_every_rule_has_log_and_conda():
    text = "".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    rules = re.split(r"^rule ", text, flags=re.M)[1:]
    assert len(rules) >= 14
    for body in rules:
        name = body.split(":")[0]
        assert "\n    log:" in body and "\n    conda:" in body, name
