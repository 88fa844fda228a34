# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the whole test suite).
# Both create and reuse a local virtual environment in .venv.
#
# TORCH_SPEC is installed before the package so that pip does not choose a torch build for us. The default
# pin matches the CPU wheel that lies on disk on the project's CI machines; elsewhere pip takes the same
# release from PyPI (CUDA on Linux). Keep your own build with e.g. `make test TORCH_SPEC=torch`.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
TRAIN_STAMP := $(VENV)/.installed-train
STAMP := $(VENV)/.installed

.PHONY: demo test lint lab report benchmark clean-venv

# What the main job needs: torch and the package with its training extras (67 s on a fresh 2-core machine
# with the torch wheel on disk, against 108 s for everything: docs/sweep/README.md, "Budget").
$(TRAIN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[train]"
	touch $(TRAIN_STAMP)

# Everything else (notebooks, tests, lint, the course website) on top of it.
$(STAMP): $(TRAIN_STAMP)
	$(PY) -m pip install --quiet -e ".[train,notebooks,dev,docs]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# The main job: the resolution sweep on the embedded synthetic set (its time on 2 idle CPU cores: docs/sweep).
# The studies of why its residual error grows with the stride are longer: docs/studies/README.md.
demo: $(TRAIN_STAMP)
	$(PY) -m trainers.sweep

# The codec round-trip report (seconds): the quantization error of every codec's own target.
report: $(STAMP)
	$(PY) -m h3r_theory.report

# Lint and format check (the rules are in pyproject.toml); `$(VENV)/bin/ruff format .` applies the format.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The lint, then the whole test suite (unit, property, doctest, real-sample and notebook tests), one worker
# per core. Each worker and each notebook kernel gets one torch thread (OMP_NUM_THREADS), so the workers do
# not oversubscribe.
test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n auto --dist loadfile --nbval-lax tests notebooks

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

# The course website in build/book (open build/book/index.html, or copy the folder to any static host): the
# stored notebooks as they were executed (never re-run), the READMEs, docs/ and the API reference. A full
# rebuild (-E) every time, so that every warning is seen; warnings are errors.
.PHONY: book
book: $(STAMP)
	$(PY) -m sphinx -b html -E -W --keep-going -q -c docs/book -d build/book-doctrees . build/book
	@echo "built build/book/index.html"

benchmark: $(STAMP)
	$(PY) benchmarks/codecs.py

clean-venv:
	rm -rf $(VENV)
