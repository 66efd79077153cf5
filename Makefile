# vendor-grants: the two commands a fresh machine needs are `make demo` and `make test`.
# Every tool is pinned (here and in tools/*.txt) and installed under the repo, never by hand:
#   .venv          moto, the AWS emulator the tests and the demo run against
#   .venv-lint     cfn-lint and checkov for the templates (checkov pins an older boto3 than moto)
#   .venv-package  cargo-lambda and zig (zip packaging for Lambda's glibc) and the AWS CLI (deploy)

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
PIP_FLAGS := --quiet --disable-pip-version-check

VENV := .venv
STAMP := $(VENV)/.installed-test
LINT_VENV := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed-lint
PKG_VENV := .venv-package
PKG_STAMP := $(PKG_VENV)/.installed-package

MOTO := VENDOR_GRANTS_MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server
TEMPLATES := $(wildcard cloudformation/*.yaml cloudformation/examples/*.yaml)

# Packaging: for Lambda's provided.al2023 whatever the host. ARCH is the deploy template's
# Architecture (x86_64, its default, or arm64); LAMBDA_GLIBC is provided.al2023's glibc, the
# newest symbol version the binary may need (cargo-lambda links with zig against exactly that
# glibc, and check-package verifies the result).
ARCH ?= x86_64
LAMBDA_GLIBC := 2.34
RUST_TARGET_x86_64 := x86_64-unknown-linux-gnu
RUST_TARGET_arm64 := aarch64-unknown-linux-gnu
RUST_TARGET := $(RUST_TARGET_$(ARCH))
ZIP := dist/vendor-grants-lambda-$(ARCH).zip
# Deploying: where the zip goes and which stack gets it (see README "Deploy").
STACK ?= vendor-grants
CODE_PREFIX ?= vendor-grants
# The release (Cargo.toml's version): part of the code key, so each release is a new key, which
# is what makes CloudFormation deploy new code; the template's Version output names the same.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# A build that is not a release (uncommitted changes) gets its commit in the key too.
BUILD := $(VERSION)$(shell git diff --quiet HEAD 2>/dev/null || echo "-$$(git rev-parse --short HEAD 2>/dev/null)-dirty")
CODE_KEY := $(CODE_PREFIX)/$(BUILD)/vendor-grants-lambda-$(ARCH).zip

.PHONY: test demo bench fmt-check clippy lint-templates check-sar check-recipes check-tools cdk-test cargo-test fmt venv package check-package publish deploy clean-venvs

## make test: formatting, clippy -D warnings, template lints, the account-vending recipes, the CDK
## construct library's tests, and every Rust test (moto tests included).
test: fmt-check clippy lint-templates check-sar check-recipes check-tools cdk-test cargo-test

## make demo: the built function through Create, Update and Delete for two vendors, against moto.
demo: $(STAMP)
	$(MOTO) $(CARGO) test --quiet --test demo

## make bench: the release build measured as Lambda runs it (start, warm Update, CPU, RSS, zip size,
## 4 processes on one bucket with the lock table, the pure core). Prints a table and writes
## target/bench/bench.json. `make test` runs a quick pass of the same code (target/bench/quick.json).
bench: $(STAMP)
	$(MOTO) $(CARGO) bench --bench bench

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

cargo-test: $(STAMP)
	$(MOTO) $(CARGO) test --workspace --all-targets

## Every template: cfn-lint, then checkov (skips are justified in the templates' Metadata).
lint-templates: $(LINT_STAMP)
	$(LINT_VENV)/bin/cfn-lint $(TEMPLATES)
	$(LINT_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation \
		$(addprefix -f ,$(TEMPLATES))

## The Serverless Application Repository edition of vendor-grants.yaml (tools/sar_template.py),
## made from a stand-in zip and linted as `make publish` would publish it; then the tool's tests.
SAR_CHECK := target/sar-check
check-sar: $(LINT_STAMP)
	mkdir -p $(SAR_CHECK)
	$(LINT_VENV)/bin/python -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1], 'w').writestr('bootstrap', '')" $(SAR_CHECK)/bootstrap.zip
	$(LINT_VENV)/bin/python -B tools/sar_template.py --zip $(SAR_CHECK)/bootstrap.zip --arch x86_64 \
		--out $(SAR_CHECK)/template.json
	# W3002: Code is a local path on purpose (`aws cloudformation package` uploads it).
	$(LINT_VENV)/bin/cfn-lint --ignore-checks W3002 -- $(SAR_CHECK)/template.json
	$(LINT_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation \
		-f $(SAR_CHECK)/template.json
	$(LINT_VENV)/bin/python -B -m unittest tools/test_sar_template.py

## The account-vending recipes (CfCT manifest, LZA customizations-config, AFT Terraform) against
## their tools' documented shapes and the templates they deploy; then the checker's own tests.
check-recipes: $(LINT_STAMP)
	$(LINT_VENV)/bin/python -B tools/check_account_vending.py
	$(LINT_VENV)/bin/python -B -m unittest tools/test_check_account_vending.py

## The CDK construct library: installed from its lock file (registry only), built and tested with
## aws-cdk-lib/assertions. Its contract fixtures (cdk/test/contract/) are run through the function
## against moto by tests/examples_moto.rs.
cdk-test:
	cd cdk && npm ci --no-audit --no-fund --loglevel=error && npm test

venv: $(STAMP)

$(STAMP): tools/requirements-test.txt tools/constraints-test.txt
	test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r tools/requirements-test.txt -c tools/constraints-test.txt
	touch $@

$(LINT_STAMP): tools/requirements-lint.txt tools/constraints-lint.txt
	test -x $(LINT_VENV)/bin/pip || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install $(PIP_FLAGS) -r tools/requirements-lint.txt -c tools/constraints-lint.txt
	touch $@

$(PKG_STAMP): tools/requirements-package.txt
	test -x $(PKG_VENV)/bin/pip || $(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/pip install $(PIP_FLAGS) -r tools/requirements-package.txt
	touch $@

## make package [ARCH=arm64]: the Lambda zip (bootstrap) for provided.al2023, whatever the host:
## cargo-lambda builds for the Rust target of ARCH with glibc LAMBDA_GLIBC (zig as the linker,
## `--target x86_64-unknown-linux-gnu.2.34`), never against the host's newer glibc; then
## check-package checks the zip. The Rust target's standard library must be installed
## (`rustup target add aarch64-unknown-linux-gnu` for arm64 on an x86_64 host, and vice versa).
package: $(PKG_STAMP)
	@test -n "$(RUST_TARGET)" || { echo "ARCH=$(ARCH): use x86_64 or arm64 (the template's Architecture)"; exit 2; }
	PATH=$(CURDIR)/$(PKG_VENV)/bin:$$PATH $(CARGO) lambda build --release --bin vendor-grants-lambda \
		--output-format zip --target $(RUST_TARGET).$(LAMBDA_GLIBC)
	mkdir -p dist
	cp $${CARGO_TARGET_DIR:-target}/lambda/vendor-grants-lambda/bootstrap.zip $(ZIP)
	$(MAKE) --no-print-directory check-package ARCH=$(ARCH)
	@echo "built $(ZIP) (vendor-grants $(VERSION), $(ARCH), glibc <= $(LAMBDA_GLIBC))"

## make check-package [ARCH=arm64]: the zip's bootstrap is an ELF of ARCH (one of the template's
## Architecture values) needing no glibc symbol newer than provided.al2023's LAMBDA_GLIBC
## (tools/check_package.py, what `objdump -T` would show).
check-package:
	$(PYTHON) -B tools/check_package.py --zip $(ZIP) --arch $(ARCH) --glibc $(LAMBDA_GLIBC)

## The package checker's tests (tools/check_package.py), and the READMEs' claims about the
## templates (parameter tables and defaults, outputs, the parameters their commands pass).
check-tools: $(LINT_STAMP)
	$(LINT_VENV)/bin/python -B -m unittest tools/test_check_package.py tools/test_readme_claims.py

## make deploy CODE_BUCKET=my-artifacts-us-east-1 [STACK=vendor-grants] [ARCH=arm64]
## make deploy CODE_BUCKET_PREFIX=my-artifacts REGION=eu-west-1: uploads the zip to the bucket (or
## to PREFIX-REGION, the deploy template's CodeS3BucketPrefix) under a key of this release
## (CODE_PREFIX/VERSION/...) and deploys cloudformation/vendor-grants.yaml with the AWS CLI, in
## REGION if given. Needs AWS credentials; not in CI. It updates the function in place (new code
## key); it never replaces it, which would strand every grant (see README "Upgrade").
deploy: package
	@test -n "$(CODE_BUCKET)$(CODE_BUCKET_PREFIX)" || { echo "set CODE_BUCKET=<a bucket of the stack's region> or CODE_BUCKET_PREFIX=<prefix of buckets PREFIX-REGION> REGION=<region>"; exit 2; }
	@test -z "$(CODE_BUCKET_PREFIX)" -o -n "$(REGION)" || { echo "CODE_BUCKET_PREFIX needs REGION=<the stack's region>"; exit 2; }
	$(PKG_VENV)/bin/aws s3 cp $(ZIP) \
		s3://$(if $(CODE_BUCKET_PREFIX),$(CODE_BUCKET_PREFIX)-$(REGION),$(CODE_BUCKET))/$(CODE_KEY) \
		$(if $(REGION),--region $(REGION))
	$(PKG_VENV)/bin/aws cloudformation deploy --template-file cloudformation/vendor-grants.yaml \
		--stack-name $(STACK) --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
		$(if $(REGION),--region $(REGION)) \
		--parameter-overrides \
		$(if $(CODE_BUCKET_PREFIX),CodeS3BucketPrefix=$(CODE_BUCKET_PREFIX) CodeS3Bucket=,CodeS3Bucket=$(CODE_BUCKET) CodeS3BucketPrefix=) \
		CodeS3Key=$(CODE_KEY) Architecture=$(ARCH)

## make publish SAR_BUCKET=my-sar-artifacts [ARCH=arm64] [LICENSE_ID=Apache-2.0 LICENSE_FILE=LICENSE]
##   [SOURCE_URL=https://...]: publishes vendor-grants to the Serverless Application Repository
## (private to the account until shared). Builds the zip, makes the SAR edition of the template,
## uploads zip and readme to SAR_BUCKET (same region; its policy must let
## serverlessrepo.amazonaws.com s3:GetObject), then creates the application or, when it exists,
## a new version (SemanticVersion = Cargo.toml's). Needs AWS credentials, like `make deploy`.
SAR_DIR := dist/sar
SAR_NAME := vendor-grants
publish: package $(LINT_STAMP)
	@test -n "$(SAR_BUCKET)" || { echo "set SAR_BUCKET=<an S3 bucket serverlessrepo.amazonaws.com can read>"; exit 2; }
	$(LINT_VENV)/bin/python -B tools/sar_template.py --zip $(ZIP) --arch $(ARCH) \
		--out $(SAR_DIR)/template.json \
		$(if $(LICENSE_ID),--license-id $(LICENSE_ID) --license-file $(LICENSE_FILE)) \
		$(if $(SOURCE_URL),--source-url $(SOURCE_URL))
	$(PKG_VENV)/bin/aws cloudformation package --use-json --template-file $(SAR_DIR)/template.json \
		--s3-bucket $(SAR_BUCKET) --s3-prefix $(CODE_PREFIX)/sar --output-template-file $(SAR_DIR)/packaged.json
	$(LINT_VENV)/bin/python -B tools/sar_template.py requests --packaged $(SAR_DIR)/packaged.json --out-dir $(SAR_DIR)
	app=$$($(PKG_VENV)/bin/aws serverlessrepo list-applications --output text \
		--query "Applications[?Name=='$(SAR_NAME)'].ApplicationId | [0]"); \
	if [ -z "$$app" ] || [ "$$app" = None ]; then \
		$(PKG_VENV)/bin/aws serverlessrepo create-application --cli-input-json file://$(SAR_DIR)/create-application.json; \
	else \
		$(PKG_VENV)/bin/aws serverlessrepo create-application-version --application-id "$$app" \
			--cli-input-json file://$(SAR_DIR)/create-application-version.json; \
	fi

fmt:
	$(CARGO) fmt --all

clean-venvs:
	rm -rf $(VENV) $(LINT_VENV) $(PKG_VENV)
