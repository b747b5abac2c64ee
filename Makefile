# Set-up commands for a fresh Debian machine, run as root:
#   make demo   a private Postfix with the milter in front, sample mail through it
#   make test   the whole test suite
VENV     ?= .venv
PYTHON   := $(VENV)/bin/python
APT_PKGS := postfix libmilter-dev swaks miltertest python3-venv python3-dev gcc

.PHONY: deps apt venv test demo bench clean

deps: apt venv

# apt packages, installed only when one is missing (a second run costs nothing).
apt:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -q; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# Debian's interpreter, not a pyenv build: daemons that drop privileges must
# still be able to import their modules (docs/field notes).
venv: $(VENV)/.installed
$(VENV)/.installed: setup.cfg pyproject.toml | apt
	/usr/bin/python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

test: deps
	$(PYTHON) -m pytest -q tests

demo: deps
	$(PYTHON) -m sealgate.demo

bench: deps
	$(PYTHON) bench/throughput

clean:
	rm -rf $(VENV) build *.egg-info
