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
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

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
        if "\n    output:" not in body:  # a target rule (e.g. fetch_all): runs nothing itself
            continue
        assert "\n    log:" in body and "\n    conda:" in body, name


# ---- what each env must hold ---------------------------------------------------------------
def rule_envs() -> dict[str, dict]:
    """rule -> {"env": envs/X.yaml, "script": scripts/Y.py}, from rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for body in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = body.split(":")[0].strip()
            if "\n    output:" not in body:  # a target rule (e.g. fetch_all): runs nothing itself
                continue
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
        for r in map(Requirement, reqs):
            if r.marker and not r.marker.evaluate({"extra": ""}):  # extras, other platforms/Pythons
                continue
            todo.append(norm(r.name))
    return seen


def env_modules() -> dict[Path, set[str]]:
    mods: dict[Path, set[str]] = {}
    for rule in rule_envs().values():
        if rule["script"]:
            mods.setdefault(rule["env"], set()).update(script_modules(rule["script"]))
    return mods


# Imported only where installed (checked with importlib.util.find_spec first): not pinned in any env.
OPTIONAL_MODULES = {"vllm"}  # itlab.generate: the cluster's vLLM when present, batched HF generation otherwise


def test_each_env_holds_what_its_rules_import():
    provided = md.packages_distributions()
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    mods = env_modules()
    assert set(mods) == set((ROOT / "envs").glob("*.yaml")), "an env used by no script, or a script without env"
    for env, modules in mods.items():
        pip = _pip_section(env)
        assert any(re.match(r"^(-e\s+)?\.\.(/)?$", l.strip()) for l in pip), f"{env.name}: does not install itlab"
        closure = _dist_closure(_pins(pip))
        for mod in sorted(modules - OPTIONAL_MODULES):
            dists = {norm(d) for d in provided.get(mod, [])}
            assert dists, f"{env.name}: {mod} is imported but not installed here either"
            assert dists & closure, f"{env.name}: module {mod} (from {sorted(dists)}) is not in the env"


def test_module_scan_sees_function_level_imports_through_itlab():
    """The scan must follow itlab: tune_model.py imports only itlab, yet its job needs
    deepspeed, torch, transformers (imported inside functions of itlab.train.loop)."""
    mods = script_modules(ROOT / "scripts/tune_model.py")
    assert {"torch", "deepspeed", "transformers", "peft", "yaml"} <= mods


def _link_env(closure: set[str], target: Path) -> Path:
    """A fresh virtualenv (no system site-packages) holding exactly the distributions in
    ``closure``: their files, taken from this test's environment (same pins), linked in."""
    venv.EnvBuilder(with_pip=False, system_site_packages=False, symlinks=True).create(target)
    py = target / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    linked = set()
    for dist in md.distributions():
        name = norm(dist.metadata["Name"])
        if name not in closure or name in linked or name == "itlab":
            continue
        linked.add(name)
        for f in dist.files or []:
            src = Path(dist.locate_file(f)).resolve()
            if ".." in f.parts or not src.is_file():  # scripts in bin/ and the like
                continue
            dst = site / f
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(src)
    missing = {n for n in closure if n != "itlab"} - linked
    assert not missing, f"not installed here, cannot link: {sorted(missing)}"
    return py


def _import_all(py: Path, modules, cwd: Path):
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    return subprocess.run([str(py), "-c", code, *modules], capture_output=True, text=True, timeout=900, cwd=cwd,
                          env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_env_dependency_set_in_a_fresh_virtualenv_imports_its_modules(env, tmp_path):
    """Each env's dependency set alone (its pins and what they require; no system
    site-packages, nothing else of this environment) plus itlab as the env installs it (an
    editable path) imports every module its rules import. Installing four full envs with pip
    takes minutes each on a CI machine (torch alone is large); the same pinned files are
    linked from this environment instead, which takes seconds, and the real pip install is
    done for one env below."""
    path = ROOT / "envs" / env
    closure = _dist_closure(_pins(_pip_section(path)))
    py = _link_env(closure, tmp_path / "venv")
    site = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    (site / "itlab-editable.pth").write_text(str((path.parent / "..").resolve()) + "\n")  # what `-e ..` leaves
    res = _import_all(py, sorted((env_modules()[path] - OPTIONAL_MODULES) | {"itlab"}), tmp_path)
    assert res.returncode == 0 and "ok" in res.stdout, f"{env}: {res.stderr[-3000:]}"


def test_linked_env_is_really_restricted(tmp_path):
    """The check above can fail: a module outside the dependency set does not import."""
    py = _link_env(_dist_closure(["PyYAML"]), tmp_path / "venv")
    assert _import_all(py, ["yaml"], tmp_path).returncode == 0
    assert "No module named 'numpy'" in _import_all(py, ["numpy"], tmp_path).stderr


@pytest.mark.slow
def test_analysis_env_installs_with_pip_in_a_fresh_virtualenv(tmp_path):
    """The real thing for the lightest env: pip installs its pip section (same pins, the
    repo's constraints; pip's local index) into a fresh virtualenv, and its modules import."""
    path = ROOT / "envs" / "analysis.yaml"
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(target)
    py = target / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-compile",
           "--disable-pip-version-check"]
    lines = [l.split("#")[0].strip() for l in _pip_section(path)]
    pins = [l for l in lines if "==" in l]
    local = [str((path.parent / l.split()[-1]).resolve()) for l in lines if l.split()[-1].startswith("..")]
    res = subprocess.run(pip + ["-c", str(ROOT / "constraints.txt"), *pins], capture_output=True, text=True,
                         timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    had_egg_info = (ROOT / "itlab.egg-info").exists()
    res = subprocess.run(pip + ["--no-deps", "-e", *local], capture_output=True, text=True,
                         timeout=600)
    if not had_egg_info:  # setuptools leaves it in the checkout
        shutil.rmtree(ROOT / "itlab.egg-info", ignore_errors=True)
    assert res.returncode == 0, res.stderr[-3000:]
    res = _import_all(py, sorted((env_modules()[path] - OPTIONAL_MODULES) | {"itlab"}), tmp_path)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]
