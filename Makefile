# Two commands do all set-up on a fresh machine:
#   make run    installs into .venv, builds the demo model, starts the app on http://127.0.0.1:7860
#   make test   installs into .venv (plus llama.cpp's GGUF tools, Debian's chromium, and Debian's postgresql for
#               the run-store tests, which start a throwaway server themselves) and runs every test
PYTHON ?= python3
VENV ?= .venv
# The GPU image installs with `make install REQUIREMENTS=requirements-gpu.txt` (see Dockerfile).
REQUIREMENTS ?= requirements.txt
PY := $(VENV)/bin/python

.PHONY: run test install install-dev install-gguf browser postgres worker bench-cpu test-gpu migration clean

$(VENV)/.installed: $(REQUIREMENTS) requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(REQUIREMENTS)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# llama.cpp's converter and quantizer for GGUF export (a one-time source build of llama-cpp-python, 4-13 min).
# Not part of `install`, so `make run` is ready in minutes: the app's first GGUF export builds them itself.
$(VENV)/.installed-gguf: $(VENV)/.installed requirements-gguf.txt scripts/install-gguf.sh
	./scripts/install-gguf.sh $(PY)
	touch $@

install: $(VENV)/.installed
install-gguf: $(VENV)/.installed-gguf
install-dev: $(VENV)/.installed-dev $(VENV)/.installed-gguf browser postgres

browser:
	./scripts/install-browser.sh

postgres:
	./scripts/install-postgres.sh

run: install
	$(PY) -m medcot build-demo-model
	$(PY) app.py

test: install-dev
	$(PY) -m pytest -n 2 --dist worksteal

test-gpu: install-dev  # the GPU modules alone: a bare GPU machine need not import the UI's test modules
	$(PY) -m pytest -v tests/test_*gpu*.py

worker: install
	$(PY) -m jobs.worker

bench-cpu: install-dev
	$(PY) bench/queue_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache

# After changing a table in medcot_ui/store.py: write its Alembic migration (then read it before committing).
migration: install
	$(PY) scripts/new-migration.py "$(m)"
