# tokenfix: every target builds its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
RULES ?= rules.yaml
UPSTREAM ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo run web lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m demo

run: venv
	@test -n "$(UPSTREAM)" || { echo "usage: make run UPSTREAM=https://TENANT.auth0.com"; exit 2; }
	$(BIN)/mitmdump --mode reverse:$(UPSTREAM) -p $(PORT) \
		-s addon/tokenfix.py --set tokenfix_rules=$(RULES)

web: venv
	@test -n "$(UPSTREAM)" || { echo "usage: make web UPSTREAM=https://TENANT.auth0.com"; exit 2; }
	$(BIN)/mitmweb --mode reverse:$(UPSTREAM) -p $(PORT) \
		-s addon/tokenfix.py --set tokenfix_rules=$(RULES)

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
