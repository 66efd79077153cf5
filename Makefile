# vendor-grants: the two commands a fresh machine needs are `make demo` and `make test`.
# Tools are pinned here and installed under the repo (.venv), never by hand.

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test fmt-check clippy cargo-test fmt

## make test: formatting, lints with warnings as errors, and every test.
test: fmt-check clippy cargo-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

cargo-test:
	$(CARGO) test --all-targets

fmt:
	$(CARGO) fmt --all
