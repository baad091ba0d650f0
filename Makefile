# pricewise: the one vocabulary for building, testing and running. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
AIRFLOW_VENV := .venv-airflow
AIRFLOW_LOCK := dags/requirements-airflow.lock
DATA ?= $(wildcard ../shared/data/mercari/mercari_train_8k.tsv.gz)
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (0: one process). Each test module, or the modules sharing a costly
# session fixture (tests/conftest.py), runs whole on one worker.
PYTEST_WORKERS ?= 2
# Coverage floor of src/pricewise for `make test`, a little under the measured figure.
COV_FAIL_UNDER ?= 90
# glibc malloc for every process the targets start: allocations up to 1 GiB come from the heap and up to 1 GiB
# of freed heap is kept, instead of each large block being mapped fresh from the kernel, which faults in and
# zeroes every page of it again. The sentence encoder's and the sparse MLP's per-batch temporaries are that
# large: the setting took training on the sample from 269 s to 235 s on one core (benchmarks/bench_train.py).
export GLIBC_TUNABLES ?= glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824

$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

# Airflow pins FastAPI below the version pricewise needs, so it gets its own virtualenv; the DAGs call the CLI.
# psycopg2 and asyncpg: Airflow 3.3's sync and async drivers for a PostgreSQL metadata database.
$(AIRFLOW_VENV)/.installed: $(AIRFLOW_LOCK)
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check -c $(AIRFLOW_LOCK) apache-airflow==3.3.2 \
		psycopg2-binary asyncpg
	touch $@

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: install
install: $(BIN)/.installed ## Create or reuse the virtualenv and install pricewise with its pinned dependencies

.PHONY: airflow
airflow: $(AIRFLOW_VENV)/.installed ## Create or reuse .venv-airflow: Airflow 3 (pinned) for the DAGs in dags/

.PHONY: lint
lint: install ## ruff check, ruff format --check, mypy --strict on src/
	$(BIN)/ruff check src tests benchmarks dags
	$(BIN)/ruff format --check src tests benchmarks dags
	$(BIN)/mypy src

# Tests run in random order (pytest-randomly prints its seed; repeat an order with PYTEST_ARGS=--randomly-seed=N,
# keep the file order with PYTEST_ARGS="-p no:randomly"); the coverage report lists the lines not run.
.PHONY: test
test: lint airflow ## Lint, then the whole test suite (unit, integration, model) in random order, with coverage
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope --cov --cov-report=term-missing:skip-covered \
		--cov-fail-under=$(COV_FAIL_UNDER) --durations=15 $(PYTEST_ARGS)

.PHONY: run
run: install ## Ingest, validate, train, evaluate, promote on DATA (default: the shared sample), then serve
	@if [ -z "$(DATA)" ]; then echo "no data: pass DATA=path/to/train.tsv.7z (see README: Getting the data)"; exit 2; fi
	$(BIN)/pricewise ingest $(DATA)
	$(BIN)/pricewise validate
	$(BIN)/pricewise data status
	$(BIN)/pricewise train
	$(BIN)/pricewise evaluate --model models:/pricewise@challenger
	$(BIN)/pricewise promote
	$(BIN)/pricewise serve

.PHONY: serve
serve: install ## Serve the champion: API and seller page on http://127.0.0.1:8000 (PRICEWISE_SERVE_*)
	$(BIN)/pricewise serve

.PHONY: bench
bench: install ## All benchmarks (see benchmarks/README.md); the scaled ones take about an hour
	$(BIN)/python benchmarks/bench_ingest_validate.py
	$(BIN)/python benchmarks/model_experiments.py
	$(BIN)/python benchmarks/bench_scaled_models.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_monitor.py

.PHONY: image
image: ## Build the pricewise image from docker/Dockerfile (needs a Docker engine with BuildKit; see docker/)
	bash docker/build-images.sh pricewise

# BASE_IMAGE (default python:3.11-slim) reaches the build script: a machine without a registry passes
# BASE_IMAGE=pricewise-base:bookworm made by docker/make-base-image.sh.
.PHONY: deploy-test
deploy-test: install ## Build both images, bring the compose stack up, smoke-test it, tear it down (needs Docker)
	bash docker/build-images.sh all
	$(BIN)/pytest -m deploy -p no:randomly -p no:cacheprovider -s -v tests/deploy

.PHONY: format
format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks dags
	$(BIN)/ruff format src tests benchmarks dags

.PHONY: clean
clean: ## Remove local state (data/) and caches, keep the virtualenv
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
