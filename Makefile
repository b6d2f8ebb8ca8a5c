# profilestream: one entry point for operators and developers.
# `make run` starts a local broker, a worker and demo traffic; `make test` runs the whole suite.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run model test test-unit lint fmt venv kafka-jars kafka-start kafka-stop kafka-wipe promtool clean bench bench-quick chaos

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

kafka-jars:
	deploy/local/kafka.sh fetch

kafka-start: kafka-jars
	deploy/local/kafka.sh start

kafka-stop:
	deploy/local/kafka.sh stop

kafka-wipe:
	deploy/local/kafka.sh wipe

# The demo model: trained on generated traffic the first time `make run` needs it (about half a minute).
DEMO_MODEL := var/models/demo
DEMO_EVENTS := var/data/demo-train.jsonl

model: $(DEMO_MODEL)/metadata.json

$(DEMO_MODEL)/metadata.json: | venv
	$(BIN)/profilestream --cli-log-level warning demo-events --users 1000 --count 20000 --seed 7 --out $(DEMO_EVENTS)
	$(BIN)/profilestream --cli-log-level warning train --events $(DEMO_EVENTS) --out $(DEMO_MODEL) \
		--test-fraction 0 --epochs 3 --no-progress

# A model given in PROFILESTREAM_MODEL_DIR is used as it is; otherwise the demo model.
run: venv kafka-jars $(if $(PROFILESTREAM_MODEL_DIR),,model)
	PROFILESTREAM_MODEL_DIR=$(or $(PROFILESTREAM_MODEL_DIR),$(DEMO_MODEL)) deploy/local/run.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streams models state tests $(if $(wildcard bench/*.py),bench)

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv kafka-jars lint promtool
	$(BIN)/python -m pytest

# The fast inner loop: lint and every test that needs no broker (no Kafka jars, no promtool).
test-unit: venv lint promtool
	$(BIN)/python -m pytest -m "not kafka" -q

# promtool checks and unit-tests the alert rules; it comes from Debian's `prometheus` package. The same step
# installs a Compose client (Debian's `docker-compose`) when no `docker compose` works, so that the compose
# file is validated offline. The install must not leave the packaged Prometheus service running: a
# policy-rc.d that refuses service starts is in place during the install (unless one exists already), and
# a unit that started anyway is stopped and disabled.
PROMTOOL ?= promtool
POLICY_RC := /usr/sbin/policy-rc.d

promtool:
	@pkgs=""; \
	command -v $(PROMTOOL) >/dev/null 2>&1 || pkgs="$$pkgs prometheus"; \
	{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || pkgs="$$pkgs docker-compose"; \
	if [ -z "$$pkgs" ]; then exit 0; fi; \
	set -e; \
	own_policy=0; \
	if [ ! -e $(POLICY_RC) ]; then printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC); chmod 755 $(POLICY_RC); own_policy=1; fi; \
	trap 'if [ $$own_policy = 1 ]; then rm -f $(POLICY_RC); fi' EXIT; \
	export DEBIAN_FRONTEND=noninteractive; \
	echo "installing$$pkgs (Debian packages)" >&2; \
	apt-get update -qq; \
	apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	if [ -d /run/systemd/system ] && systemctl is-active --quiet prometheus; then \
		systemctl stop prometheus; systemctl disable --quiet prometheus; \
	fi; \
	if pgrep -u prometheus -x prometheus >/dev/null 2>&1; then \
		echo "the packaged prometheus service is running; stop it (service prometheus stop)" >&2; exit 1; \
	fi; \
	command -v $(PROMTOOL) >/dev/null

# The benchmark suite (bench/) against a local broker of its own (127.0.0.1:29092): `make bench` writes
# bench/RESULTS.md (under 20 minutes), `make bench-quick` one small run of each part (under 3 minutes).
# Neither is part of `make test`. BENCH_ARGS passes more flags, e.g. BENCH_ARGS="--events 1000000 --users 100000".
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: venv kafka-jars $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: venv kafka-jars $(BENCH_STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# The chaos suite (bench/chaos/): the worker under a backlog, kill -9, a lost state directory, broker crashes and
# pauses, a full state disk and hostile messages, on a broker of its own (127.0.0.1:29292, var/kafka-chaos).
# About 20 minutes; writes the results table into docs/reliability.md. The disk scenario mounts a tmpfs and needs
# root (elsewhere its row says why it did not run). Not part of `make test`, which runs a small version.
# CHAOS_ARGS passes more flags, e.g. CHAOS_ARGS="--scenario kills".
chaos: venv kafka-jars
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	-deploy/local/kafka.sh stop
	rm -rf var
