"""The per-rule conda environments (envs/*.yaml) hold everything their rules import.

Conda cannot be reached from CI, so the environments are checked two ways:
- every third-party module that a rule's script imports, directly or through the itlab
  modules it reaches (function-level imports included), comes from a distribution that the
  rule's env lists or that a listed one depends on (installed metadata of the same pins);
- each env's pip section is installed into a fresh virtualenv (no system site-packages;
  pip's local index and cache make it quick) and every one of those modules is imported
  there (slow).
"""

import ast
import importlib.metadata as md
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _pins(lines):
    return dict(m.groups() for m in (re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s#]+)", l) for l in lines) if m)


def _pip_section(env: Path) -> list[str]:
    deps = yaml.safe_load(env.read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)


def test_conda_env_pins_match_requirements():
    req = {k.lower(): v for k, v in _pins((ROOT / "requirements.txt").read_text().splitlines()).items()}
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert len(envs) >= 4
    for env in envs:
        for name, version in _pins(_pip_section(env)).items():
            assert req.get(name.lower()) == version, f"{env.name}: {name}=={version} vs requirements.txt"


def test_every_rule_has_log_and_conda():
    text = "".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    rules = re.split(r"^rule ", text, flags=re.M)[1:]
    assert len(rules) >= 14
    for body in rules:
        name = body.split(":")[0]
        assert "\n    log:" in body and "\n    conda:" in body, name


# ---- what each env must hold ---------------------------------------------------------------
def rule_envs() -> dict[str, dict]:
    """rule -> {"env": envs/X.yaml, "script": scripts/Y.py}, from rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for body in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = body.split(":")[0].strip()
            env = re.search(r'\n    conda:\s*\n\s*f?"\{ENVS\}/([\w.-]+)"', body)
            script = re.search(r'\n    script:\s*\n\s*"\.\./(scripts/[\w.-]+\.py)"', body)
            assert env, f"rule {name}: no conda env"
            out[name] = {"env": ROOT / "envs" / env.group(1), "script": ROOT / script.group(1) if script else None}
    return out


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from itlab import data`
    return names


def _itlab_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def script_modules(script: Path) -> set[str]:
    """Third-party top-level modules a script imports, following itlab modules (every
    import in them, function-level included: a job may take any of their code paths)."""
    seen, todo, third = set(), [script], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in _imports(f):
            top = name.split(".")[0]
            if top == "itlab":
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # the package __init__s run too
                    dep = _itlab_file(".".join(parts[:i]))
                    if dep:
                        todo.append(dep)
            elif top not in STDLIB and top != "snakemake":  # a script's `snakemake` object
                third.add(top)
    return third


def _dist_closure(names) -> set[str]:
    """Distributions ``names`` need, through installed requirements (no extras)."""
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    todo, seen = [norm(n) for n in names], set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        try:
            reqs = md.requires(n) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" in r:
                continue
            marker = r.split(";", 1)[1] if ";" in r else ""
            if marker and ("sys_platform == \"win32\"" in marker or "platform_system == \"Windows\"" in marker):
                continue
            todo.append(norm(re.match(r"[A-Za-z0-9_.-]+", r).group(0)))
    return seen


def env_modules() -> dict[Path, set[str]]:
    mods: dict[Path, set[str]] = {}
    for rule in rule_envs().values():
        if rule["script"]:
            mods.setdefault(rule["env"], set()).update(script_modules(rule["script"]))
    return mods


def test_each_env_holds_what_its_rules_import():
    provided = md.packages_distributions()
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    mods = env_modules()
    assert set(mods) == set((ROOT / "envs").glob("*.yaml")), "an env used by no script, or a script without env"
    for env, modules in mods.items():
        pip = _pip_section(env)
        assert any(re.match(r"^(-e\s+)?\.\.(/)?$", l.strip()) for l in pip), f"{env.name}: does not install itlab"
        closure = _dist_closure(_pins(pip))
        for mod in sorted(modules):
            dists = {norm(d) for d in provided.get(mod, [])}
            assert dists, f"{env.name}: {mod} is imported but not installed here either"
            assert dists & closure, f"{env.name}: module {mod} (from {sorted(dists)}) is not in the env"


def test_module_scan_sees_function_level_imports_through_itlab():
    """The scan must follow itlab: tune_model.py imports only itlab, yet its job needs
    deepspeed, torch, transformers (imported inside functions of itlab.train.loop)."""
    mods = script_modules(ROOT / "scripts/tune_model.py")
    assert {"torch", "deepspeed", "transformers", "peft", "yaml"} <= mods


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_env_builds_in_a_fresh_virtualenv_and_imports_its_modules(env, tmp_path):
    """pip installs the env's pip section (same pins, the repo's constraints) into a fresh
    virtualenv without system site-packages, then imports every module its rules import."""
    path = ROOT / "envs" / env
    modules = sorted(env_modules()[path] | {"itlab"})
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(target)
    py = target / "bin" / "python"
    # pip itself from the test's interpreter (installing it into the venv costs a minute)
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--disable-pip-version-check"]
    lines = [l.strip() for l in _pip_section(path)]
    pins = [l for l in lines if "==" in l]
    local = [l.split()[-1] for l in lines if l.split()[-1].startswith("..")]
    res = subprocess.run(pip + ["-c", str(ROOT / "constraints.txt"), *pins], capture_output=True, text=True,
                         timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    # itlab as the env installs it (a path relative to envs/); no build isolation: offline
    res = subprocess.run(pip + ["--no-deps", "--no-build-isolation", *[str((ROOT / "envs" / l).resolve()) for l in local]],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    res = subprocess.run([str(py), "-c", code, *modules], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert res.returncode == 0 and "ok" in res.stdout, f"{env}: {res.stderr[-3000:]}"
