# Two commands do everything on a fresh machine with Python 3.11+:
#   make demo   install, then run the example study in sample_data/ into results/
#   make test   install, then run the whole test suite (napari tests headless)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install benchmarks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[napari,dev,distributed]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/blotquant quantify sample_data --lanes 15 --out results/quantify --force
	$(VENV)/bin/blotquant study sample_data/study.toml --out results/study --force

test: $(STAMP)
	$(PY) -m pytest -q

benchmarks: $(STAMP)
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/real_blots.py
	$(PY) benchmarks/spike_in.py --seeds 2
	$(PY) benchmarks/ladder.py

clean:
	rm -rf $(VENV) results .pytest_cache
