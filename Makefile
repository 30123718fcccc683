# Chronicle: `make run` and `make test` are all a new machine needs (see README.md).
SHELL := /bin/bash
DEV := eventstore/dev
ENV := eval "$$($(DEV)/env.sh)"
# CI builds one configuration: tests and bench use debug, `make run` serves a release build.
SWIFT_TEST_FLAGS ?=

.PHONY: run test bench bootstrap stop build build-release migrate clean-data

bootstrap:
	@$(DEV)/start.sh

build:
	swift build --build-tests

build-release:
	swift build -c release --product chronicle
	swift build -c release --product chronicle-sandbox
	swift build -c release --product chronicle-bench

migrate: bootstrap
	@$(ENV); swift run chronicle migrate

# The first admin (admin@localhost) gets the password in .chronicle/admin-password.
run: bootstrap build-release
	@$(ENV); .build/release/chronicle migrate && \
	  .build/release/chronicle users create --email admin@localhost --name Admin --role admin \
	    --password-file .chronicle/admin-password --if-missing >/dev/null && \
	  echo "chronicle: serving on http://$${CHRONICLE_HOST:-127.0.0.1}:$${CHRONICLE_PORT:-8080} (Ctrl-C stops)" && \
	  echo "chronicle: first admin token, in another shell: TOKEN=\$$($(DEV)/token.sh)" && \
	  exec .build/release/chronicle serve

# Every tier, against the real servers that bootstrap started.
# At most CHRONICLE_TEST_WIDTH (8) tests at once: unbounded, about forty started together on two
# cores with their child servers (load over 20), and transactions waited seconds for the test
# process to be scheduled, holding back every follower on the Postgres server.
test: bootstrap build
	@$(ENV); SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$${CHRONICLE_TEST_WIDTH:-8} swift test --skip-build --parallel $(SWIFT_TEST_FLAGS) 2>&1 | tee .build/test.log; rc=$${PIPESTATUS[0]}; \
	  if [ $$rc -ne 0 ]; then echo "--- make test failed ($$rc); its failures, repeated from .build/test.log:"; \
	    grep -aE '✘|error:|Fatal error|watchdog:|Test run with' .build/test.log | tail -n 60; fi; exit $$rc

# The append figures are measured on a Postgres of the benchmark's own with fsync and synchronous
# commit on (port 55433, data in .chronicle/bench-durable), stopped again afterwards.
BENCH_DURABLE := CHRONICLE_DATA=$(CURDIR)/.chronicle/bench-durable CHRONICLE_VENV=$(CURDIR)/.chronicle/venv CHRONICLE_MODELS=$(CURDIR)/.chronicle/models CHRONICLE_PG_PORT=$${CHRONICLE_BENCH_PG_PORT:-55433} CHRONICLE_PG_DURABLE=1
bench: bootstrap build-release
	@$(BENCH_DURABLE) $(DEV)/start.sh postgres
	@$(ENV); .build/release/chronicle-bench \
	  --durable-postgres-url "postgres://chronicle@127.0.0.1:$${CHRONICLE_BENCH_PG_PORT:-55433}/chronicle?sslmode=disable"; \
	  rc=$$?; $(BENCH_DURABLE) $(DEV)/stop.sh postgres; exit $$rc

stop:
	@$(DEV)/stop.sh

# Stops the servers and deletes their data.
clean-data: stop
	rm -rf .chronicle
