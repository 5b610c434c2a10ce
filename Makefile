# The two set-up commands are `make run` and `make test`; everything they need is
# installed here, into .venv, from PyPI.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run demo test lint typecheck pytest perf clean clean-cache dev audit audit-offline docs \
	release-check soak-release

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

## make run: install and start coldb-server on the sample configuration (the embedded
## default: a database in ./colibri-data, RESP on 127.0.0.1:7379, HTTP :7380, Flight
## :7381); Ctrl-C stops it gracefully. `make demo` runs the library demo instead.
run: $(STAMP_RUN)
	$(BIN)/coldb-server --config colibridb.conf.json

demo: $(STAMP_RUN)
	$(BIN)/python scripts/demo.py

## make test: lint, type-check, then the whole pytest suite (JIT on, then kernels with JIT off)
test: $(STAMP_DEV) lint typecheck audit-offline docs pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check colibri_mm kernels tests perf scripts

# mypy cannot follow setuptools' editable-install mapping of kernels/ to
# colibri_mm.kernels, so it checks a tree of symlinks with the installed layout.
typecheck: $(STAMP_DEV)
	rm -rf build/typecheck && mkdir -p build/typecheck
	cp -rs $(CURDIR)/colibri_mm build/typecheck/colibri_mm
	cp -rs $(CURDIR)/kernels build/typecheck/colibri_mm/kernels
	cp -rs $(CURDIR)/perf build/typecheck/perf
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
		--cache-dir $(CURDIR)/build/mypy-cache -p colibri_mm -p perf

pytest: $(STAMP_DEV)
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -n 2 -p no:cacheprovider tests/kernels

## make dev: create .venv with the dev extras (the tools of audit, docs and scripts/deploy.sh)
dev: $(STAMP_DEV)

## make audit: pip-audit (fails while any package could not be audited), bandit,
## licences (scripts/audit.py; exceptions with reasons in audit/allowlist.txt)
audit: $(STAMP_DEV)
	$(BIN)/python scripts/audit.py

# What make test (so CI) runs: the same, but an unreachable vulnerability service is
# reported loudly as NOT CHECKED instead of failing (CI has no network but PyPI's index).
audit-offline: $(STAMP_DEV)
	AUDIT_ALLOW_UNREACHABLE=1 $(BIN)/python scripts/audit.py

## make docs: the API reference from the docstrings (pdoc) into build/docs; a warning fails
DOCS_MODULES := colibri_mm colibri_mm.tables.table colibri_mm.tables.scan \
	colibri_mm.arrow.importer colibri_mm.kv.views colibri_mm.kernels
docs: $(STAMP_DEV)
	rm -rf build/docs
	$(BIN)/python -W error -m pdoc --docformat numpy --output-directory build/docs $(DOCS_MODULES)

# redis-server, the anchor of perf/bench_server.py: Debian's package, installed when
# missing (as .ci/run installs redis-tools). If it cannot be had, the bench says so and
# reports our figures without a ratio.
REDIS_SERVER := /usr/bin/redis-server

## make perf: run the benchmarks against their anchors and rewrite perf/RESULTS.md
perf: $(STAMP_DEV) | $(REDIS_SERVER)
	$(BIN)/python -m perf.run

$(REDIS_SERVER):
	@apt_get="apt-get"; [ "$$(id -u)" = 0 ] || apt_get="sudo apt-get"; \
	$$apt_get install -y --no-install-recommends redis-server >/dev/null || \
	{ $$apt_get update >/dev/null && \
	  $$apt_get install -y --no-install-recommends redis-server >/dev/null; } || \
	echo "make perf: redis-server could not be installed; bench_server runs without it"

## make soak-release: the release-size staging burn-in (SOAK_MINUTES, default 30),
## recorded in perf/SOAK.json and copied into perf/RESULTS.md (even when it fails)
SOAK_MINUTES ?= 30
soak-release: $(STAMP_DEV)
	$(BIN)/python -m perf.soak --minutes $(SOAK_MINUTES) --record perf/SOAK.json; \
	status=$$?; $(BIN)/python -m perf.run --soak-only && exit $$status

## make release-check: every go-live gate (tests, audit, docs, deploy to staging with its
## smoke test, a short soak, the perf suite against its targets), then a GO / NO-GO
## table; exit 0 only when all are GO (scripts/release_check.py)
release-check: $(STAMP_DEV)
	$(BIN)/python scripts/release_check.py

# Numba invalidates a cached kernel only when its own file changes, not when a
# kernel it calls in another file does: after editing kernels/, `make clean-cache`.
clean-cache:
	find kernels -name '*.nb[ic]' -delete

clean: clean-cache
	rm -rf $(VENV) build dist *.egg-info
