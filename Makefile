# The two commands: `make run` (the product on its embedded default) and `make test` (every test).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint services test-debs chromium bench clean

run: $(VENV)/.installed
	$(BIN)/huddle serve

test: $(VENV)/.installed test-debs
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# bench/sfu.py measures Janus VideoRoom (Debian's package) beside our SFU.
bench: $(VENV)/.installed
	@command -v janus >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq janus; }
	$(BIN)/python bench/sfu.py

$(VENV)/.installed: pyproject.toml media/_fanout.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Debian packages the tests run: Chromium (browser tests; Playwright's own browser download is not
# used), Caddy and nginx (in front of huddle, from manifests/), certutil from libnss3-tools (a
# browser that trusts a test CA), systemd-analyze from systemd (manifests/huddle.service), coturn
# (the TURN server of tests/net), nftables and iproute2 (the namespaces, NAT and drops of tests/net),
# espeak-ng (speech that a fake microphone plays).
# Append to the list; only the missing ones are installed.
TEST_DEBS := chromium caddy nginx-light libnss3-tools systemd coturn nftables iproute2 espeak-ng

test-debs:
	@missing=$$(for deb in $(TEST_DEBS); do \
		dpkg-query -W -f='$${Status}\n' $$deb 2>/dev/null | grep -q '^install ok installed$$' \
			|| echo $$deb; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

chromium: test-debs

# The store tests also run against PostgreSQL (and later features against Redis) on 127.0.0.1.
# This starts Debian's packaged servers if they are installed but down.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		$(SUDO) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
			--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	@for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done

clean:
	rm -rf $(VENV) .huddle .pytest_cache .mypy_cache .ruff_cache
