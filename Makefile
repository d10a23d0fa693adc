# tokenfix: every target builds its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
RULES ?= rules.yaml
PROFILE ?= rfc6749
# the proxy's address: all interfaces, as behind a load balancer; 127.0.0.1
# keeps a debugging session on this machine
LISTEN_HOST ?=
# more mitmproxy arguments, for example ARGS="-w linking.flows" to record
ARGS ?=
UPSTREAM ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo run web lint format bench bench-tools clean

venv: $(STAMP)

# pip's and setuptools' notices go to a log, shown only when the install fails
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing tokenfix and its test tools into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --upgrade pip && \
		$(BIN)/python -m pip install -e '.[test]'; } > $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; echo "make: installing into $(VENV) failed"; exit 1; }
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

# the interoperability tests' OpenID Provider, installed from the pinned lock
# file where npm exists; without Node.js those tests skip and say why (under
# CI they fail instead)
INTEROP_STAMP := tests/interop/node_modules/.package-lock.json
ifneq ($(shell command -v npm 2>/dev/null),)
test: $(INTEROP_STAMP)
endif

$(INTEROP_STAMP): tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund
	touch $@

demo: venv
	$(BIN)/python -m demo

run: venv
	@test -n "$(UPSTREAM)" || { echo "usage: make run UPSTREAM=https://TENANT.auth0.com"; exit 2; }
	$(BIN)/mitmdump --mode reverse:$(UPSTREAM) -p $(PORT) \
		$(if $(LISTEN_HOST),--listen-host $(LISTEN_HOST)) \
		-s addon/tokenfix.py --set tokenfix_rules=$(RULES) \
		--set tokenfix_profile=$(PROFILE) $(ARGS)

web: venv
	@test -n "$(UPSTREAM)" || { echo "usage: make web UPSTREAM=https://TENANT.auth0.com"; exit 2; }
	$(BIN)/mitmweb --mode reverse:$(UPSTREAM) -p $(PORT) \
		$(if $(LISTEN_HOST),--listen-host $(LISTEN_HOST)) \
		-s addon/tokenfix.py --set tokenfix_rules=$(RULES) \
		--set tokenfix_profile=$(PROFILE) $(ARGS)

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# the load generator and the load balancer the benchmarks drive, from Debian's
# packages where this user may install them; without wrk the load comes from
# bench/loadgen.py, and without haproxy the scale-out run is skipped, each said
BENCH_TOOLS := wrk haproxy
bench-tools:
	@missing=""; for t in $(BENCH_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "bench: installing$$missing from Debian's packages"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
				|| echo "bench: could not install$$missing"; \
		else \
			echo "bench: missing$$missing (on Debian: sudo apt-get install$$missing)"; \
		fi; \
	fi

# micro-benchmarks, then mitmdump with and without tokenfix under load, memory
# and a profile (under 10 minutes; writes bench/RESULTS.md); then a minute of
# 1 and 2 workers behind HAProxy (writes bench/RESULTS-scaleout.md)
bench: venv bench-tools
	$(BIN)/python -m pip install --quiet pyinstrument || echo "bench: no pyinstrument; cProfile it is"
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_bench_engine.py \
		--benchmark-only --benchmark-timer=time.process_time \
		--benchmark-json=bench/.micro.json
	$(BIN)/python -m bench --micro bench/.micro.json
	$(BIN)/python -m bench.haproxy_bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
