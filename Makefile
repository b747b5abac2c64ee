# Set-up commands for a fresh Debian machine, run as root:
#   make demo   two sealgate domains on loopback, a message between them, shown at each step
#   make test   the whole test suite
VENV     ?= .venv
PYTHON   := $(VENV)/bin/python
# What sealgate itself needs to run (and the demo):
RUNTIME_PKGS := postfix libmilter-dev swaks miltertest python3-venv python3-dev gcc
# What the tests add: the .deb build, and the real spam scanners (spamassassin ~70 s to
# install, rspamd ~8 s).
TEST_PKGS := $(RUNTIME_PKGS) debhelper dh-python python3-all pybuild-plugin-pyproject lintian \
             spamassassin spamc spamd rspamd

.PHONY: apt-runtime apt-test venv test demo bench deb clean

# apt packages, installed only when one is missing (a second run costs nothing).
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -q; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

apt-runtime:
	$(call apt_install,$(RUNTIME_PKGS))

apt-test:
	$(call apt_install,$(TEST_PKGS))

# Debian's interpreter, not a pyenv build: daemons that drop privileges must
# still be able to import their modules (docs/field notes).
venv: $(VENV)/.installed
$(VENV)/.installed: setup.cfg pyproject.toml | apt-runtime
	/usr/bin/python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

test: apt-test venv
	$(PYTHON) -m pytest -q tests

demo: apt-runtime venv
	$(PYTHON) -m sealgate.demo

bench: apt-runtime venv
	$(PYTHON) bench/throughput

# dist/sealgate_<version>_all.deb, built by dpkg-buildpackage from a copy of the
# tree with packaging/debian as debian/ (docs/install.md).
deb: apt-test
	packaging/build-deb dist

clean:
	rm -rf $(VENV) build *.egg-info
