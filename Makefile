# vendor-grants: the two commands a fresh machine needs are `make demo` and `make test`.
# Tools are pinned here and in tools/*.txt and installed under the repo (.venv), never by hand.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-test

.PHONY: test demo fmt-check clippy cargo-test fmt venv

## make demo: the built function through Create, Update and Delete for two vendors, against moto.
demo: $(STAMP)
	VENDOR_GRANTS_MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server $(CARGO) test --quiet --test demo

## make test: formatting, lints with warnings as errors, and every test (moto tests included).
test: fmt-check clippy cargo-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

cargo-test: $(STAMP)
	VENDOR_GRANTS_MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server $(CARGO) test --all-targets

## make venv: the pinned Python tools (the moto AWS emulator) in .venv.
venv: $(STAMP)

$(STAMP): tools/requirements-test.txt
	test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt
	touch $@

fmt:
	$(CARGO) fmt --all
