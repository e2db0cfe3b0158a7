# ceforge — see README.md. Every target installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BUILD_DIR ?= build
FUNCTIONS := $(notdir $(wildcard functions/*))
# Python tools (moto_server, openapi-spec-validator, cfn-lint): found or installed into .venv;
# the IAM evaluators (npm) into .local/iamsim.
TOOLS = eval "$$(scripts/tools.sh)"
# What the IAM-checked tier checked in `make test` (scripts/iamreport).
IAM_REPORT := $(CURDIR)/.local/iam-report
comma := ,
space := $(subst ,, )

.PHONY: all build cli test test-unit local bench fuzz synth deploy lint clean emulator-start emulator-stop

all: lint test

## build: every function as a static, stripped linux/arm64 `bootstrap` in $(BUILD_DIR)/<name>/ (flags: scripts/build-function.sh)
build:
	@for f in $(FUNCTIONS); do \
		scripts/build-function.sh $$f $(BUILD_DIR)/$$f/bootstrap; \
		echo "built $(BUILD_DIR)/$$f/bootstrap ($$(du -h $(BUILD_DIR)/$$f/bootstrap | cut -f1))"; \
	done

## cli: the ceforge command-line client in bin/ceforge (or: go install ./cmd/ceforge)
cli:
	@$(GO) build -trimpath -ldflags "-s -w -X github.com/ceforge/ceforge/internal/cli.Version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/ceforge ./cmd/ceforge
	@echo "built bin/ceforge ($$(du -h bin/ceforge | cut -f1)); add $$PWD/bin to PATH, or: go install ./cmd/ceforge"

## test: everything the project checks (lint, unit, integration against the emulator and the IAM-checked tier, infra, short fuzz)
test: lint
	@$(TOOLS); rm -rf $(IAM_REPORT); CEFORGE_IAM_REPORT=$(IAM_REPORT) $(GO) test -count=1 -timeout 20m ./...
	@$(GO) run ./scripts/iamreport -dir $(IAM_REPORT) -all $(subst $(space),$(comma),$(FUNCTIONS)) >$(IAM_REPORT).txt || { cat $(IAM_REPORT).txt; exit 1; }
	@scripts/iamsim.sh stamp >$(IAM_REPORT)/stamp; head -1 $(IAM_REPORT).txt; echo "(per function: $(IAM_REPORT).txt)"
	@$(TOOLS); scripts/fuzz.sh 5s

## local: the whole API on http://127.0.0.1:$${CEFORGE_API_PORT:-8080} against the emulator (Ctrl-C stops both)
local:
	@scripts/local.sh

## bench: benchmarks and scenario timings, printed as one table
bench:
	@$(TOOLS); scripts/bench.sh

## fuzz: longer fuzzing of decoders and renderers
fuzz:
	@$(TOOLS); scripts/fuzz.sh 60s

## synth: synthesize the CloudFormation template offline (cdk.out/)
synth: build
	@scripts/cdk.sh synth

## deploy: deploy to the AWS account of your current credentials (see README)
deploy: build
	@scripts/cdk.sh deploy

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	 if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@$(GO) vet ./...

emulator-start:
	@scripts/emulator.sh start
emulator-stop:
	@scripts/emulator.sh stop

clean:
	rm -rf $(BUILD_DIR) bin cdk.out .test.log
