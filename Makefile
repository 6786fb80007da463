# The two commands of the README: `make demo` and `make test`. Both install first.
PYTHON ?= python3
# The shared test data where there is any; otherwise the tests look in the user's
# cache (where `ppl-models` downloads MNIST) and skip with a reason without it.
ifneq ($(wildcard ../shared/data/mnist),)
export PPL_MODELS_DATA ?= $(abspath ../shared/data)
endif

.PHONY: setup demo test lint format mutation pyro-tests notebooks

setup:
	PYTHON=$(PYTHON) scripts/setup

demo: setup
	$(PYTHON) -m ppl_models demo --out runs/demo

# One worker per core (pytest-xdist), each file's tests on one worker so that its
# module fixtures run once, and one torch thread per worker: the test models are
# tiny, and two threads each would only contend for the cores.
test: setup
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -n auto --dist loadfile

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

# Mutation testing of the core (not part of `make test`: it runs for hours). Scope and
# settings are in pyproject.toml [tool.mutmut]; the score and every surviving
# mutant's verdict are recorded in MUTATION.md. One torch thread per worker: the test
# models are tiny and the workers share the cores. The MNIST tests are left out (they
# take seconds each and would run for every mutant of the VAE); the score is then a
# lower bound on the whole suite's.
mutation: setup
	$(PYTHON) -m pip install -q -e ".[dev,mutation]"
	rm -rf mutants
	env -u PPL_MODELS_DATA OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PYTHON) -m mutmut run --max-children 2 || true
	$(PYTHON) scripts/mutation_report.py

# Pyro's own tests of Trace_ELBO and TraceMeanField_ELBO, run with Pyro's classes and
# then with the zoo's in their place; every test must end the same way. PYRO is a
# checkout of Pyro's repository (Pyro does not ship its tests).
pyro-tests: setup
	@test -n "$(PYRO)" || (echo "usage: make pyro-tests PYRO=/path/to/pyro-checkout"; exit 2)
	OMP_NUM_THREADS=1 $(PYTHON) scripts/pyro_tests.py "$(PYRO)"

# The tutorials as executed notebooks in notebooks/ (git-ignored); their figures in
# tutorials/output/. PPL_MODELS_TUTORIAL_QUICK=1 for the quick versions.
notebooks: setup
	$(PYTHON) -m pip install -e ".[notebooks]"
	$(PYTHON) scripts/notebooks.py
