# Two entry points (README): `make run` and `make test`. Both create .venv from pinned
# requirements first (tools/install_env.py: uv with pip's index settings, pip if uv cannot be
# had); torch is pinned in the same install (and in constraints.txt) so no CUDA build resolves.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: run report test lint benchmarks plan

# The venv's modules are byte-compiled on first import, not at install (uv does not compile;
# 37 s of the install): an inherited PYTHONDONTWRITEBYTECODE would make every job recompile
# torch's modules in memory, so it is not passed on.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): requirements.txt constraints.txt pyproject.toml tools/install_env.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python tools/install_env.py
	touch $(STAMP)

# make run: the five embedded studies in one DAG (experiments/embedded-all.yaml composes config.yaml,
# the default study A, with the embedded E, B, C and D configs on one pretrained ladder).
RUN_CONFIG ?= experiments/embedded-all.yaml
run: $(STAMP)
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES) --configfile $(RUN_CONFIG)
	@echo "Scorecard: results/scorecard.md  (summaries: results/studies/<study>/summary.md; report: make report)"

report: $(STAMP)
	$(VENV)/bin/snakemake --cores 1 --configfile $(RUN_CONFIG) --report results/report.html

# pytest-xdist workers, one per core by default (tests/conftest.py: which tests share one).
TEST_WORKERS ?= auto
test: $(STAMP)
	$(VENV)/bin/python -m pytest -ra -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile rules/

# Compute plan of a config before submission (README "Compute plan"): make plan [PLAN_CONFIG=...]
PLAN_CONFIG ?= experiments/all-studies.yaml
plan: $(STAMP)
	$(VENV)/bin/python -m itlab.plan --configfile $(PLAN_CONFIG)

benchmarks: $(STAMP)
	$(VENV)/bin/python benchmarks/dag_dryrun.py
	$(VENV)/bin/python benchmarks/tune_throughput.py
