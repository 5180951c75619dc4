# pyrunc: everything runs as root on a Debian 12 machine.
# `make demo` and `make test` install what they need first (apt-get, then a venv with pip).
PY       ?= /usr/bin/python3
VENV     ?= $(CURDIR)/.venv
PYRUNC   := $(VENV)/bin/pyrunc
DEMO_DIR ?= /tmp/pyrunc-demo
BINDIR   ?= /usr/local/bin
APT_PKGS := busybox-static python3-venv python3-pip python3-seccomp \
            python3-jsonschema runc crun umoci skopeo containerd podman conmon docker.io \
            docker-registry iproute2 iptables libcap2-bin psmisc uidmap apache2-utils python3-bcrypt \
            python3-cryptography hyperfine time python3-grpcio \
            protobuf-compiler python3-protobuf golang-github-containerd-containerd-dev \
            golang-github-containerd-cgroups-dev
export PYRUNC

.PHONY: deps venv install demo test unit integration lint stress bench bench-shim conformance clean

deps: .deps-stamp
.deps-stamp: Makefile
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

venv: deps $(VENV)/bin/python
$(VENV)/bin/python:
	$(PY) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

install: venv
	$(VENV)/bin/pip install -q --no-build-isolation '.[test]' 2>/dev/null || $(VENV)/bin/pip install -q '.[test]'
	@# contrib/ names /usr/local/bin/pyrunc: a link to the venv's launcher, which follows it back
	ln -sfn $(PYRUNC) $(BINDIR)/pyrunc
	@# containerd finds shims on its PATH: runtime io.containerd.pyrunc.v2 runs this one
	ln -sfn $(VENV)/bin/containerd-shim-pyrunc-v2 $(BINDIR)/containerd-shim-pyrunc-v2

demo: install
	@bash contrib/demo.sh $(PYRUNC) $(DEMO_DIR)

test: install
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not stress" tests

unit: install
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit

integration: install
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/integration

lint: install
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_static.py

stress: install
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m stress tests/stress

bench: install
	$(VENV)/bin/python bench/run.py --pyrunc $(PYRUNC)

# containerd: pyrunc's shim against containerd's runc shim (ctr run --rm, a pod of 10, shim RSS)
bench-shim: install
	$(VENV)/bin/python bench/shim.py --pyrunc $(PYRUNC) --shim-dir $(VENV)/bin

# Our runtime-agnostic checks side by side; RUNTIME_TOOLS=DIR (a built opencontainers/runtime-tools
# checkout) adds the OCI validation suite.
conformance: install
	$(VENV)/bin/python conformance/run-checks --runtime $(PYRUNC) --runtime /usr/sbin/runc --runtime /usr/bin/crun
	@if [ -n "$(RUNTIME_TOOLS)" ]; then $(VENV)/bin/python conformance/run-runtime-tools --suite $(RUNTIME_TOOLS) --runtime $(PYRUNC) --runtime /usr/sbin/runc --runtime /usr/bin/crun; fi

clean:
	rm -rf $(VENV) build *.egg-info .deps-stamp
