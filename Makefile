# Two commands for a newcomer: `make demo` and `make test`. Both create or reuse .venv and
# install what they need; system packages are installed when run as root, otherwise the
# exact apt-get line is printed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := python3-venv python3-dev gcc libzbar0 espeak-ng fonts-dejavu-core xvfb \
	fonts-noto-core fonts-droid-fallback systemd faketime
# The booted-VM system test (tests/system): QEMU, the image builder, the guestfwd relay, OCR.
SYSTEM_TEST_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs socat \
	tesseract-ocr tesseract-ocr-eng
HEADLESS := SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
# Where docstring examples live: each one runs in `make test` (devtools/example_office.py).
PACKAGES := appliance drivers display sync devtools

.PHONY: test demo bench soak lint system-packages system-test clean

system-packages:
	@missing=$$(for p in $(APT_PACKAGES) $(EXTRA_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	missing=$$(echo $$missing); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing system packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "missing system packages; run: sudo apt-get install -y $$missing"; \
	fi

# The appliance with its test and development extras, and the development tools (devtools/):
# systemd/install.sh installs neither on a Pi.
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml | system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,keyboard,dev]' -e ./devtools
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: system-packages $(VENV)/.installed
	$(BIN)/ruff check .
	$(HEADLESS) $(BIN)/python -m pytest -q -p no:cacheprovider --doctest-modules $(PACKAGES)
	$(HEADLESS) $(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/system tests

# Boots the appliance in a Debian 12 VM (about 10 minutes with a cached image, 20 without);
# the image cache is /var/tmp/antrean-system-test (ANTREAN_VM_CACHE), the run's screenshots,
# logs and measurements are in .system-test/ (ANTREAN_VM_WORK).
system-test: $(VENV)/.installed
	@$(MAKE) --no-print-directory system-packages EXTRA_APT_PACKAGES="$(SYSTEM_TEST_PACKAGES)"
	ANTREAN_SYSTEM_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider -o timeout=3600 -rs --durations=0 \
		-o log_cli=false -s tests/system

demo: system-packages $(VENV)/.installed
	$(BIN)/antrean demo --out demo-out

bench: system-packages $(VENV)/.installed
	$(HEADLESS) $(BIN)/python bench/run_all.py

soak: system-packages $(VENV)/.installed
	$(HEADLESS) ANTREAN_SOAK_SECONDS=600 ANTREAN_SOAK_REPORT=1 ANTREAN_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest \
		-q -s -p no:cacheprovider -o timeout=3600 tests/soak tests/test_fuzz.py tests/test_checkin.py
	$(BIN)/python -m pip install -q atheris || echo "atheris did not install: hypothesis fuzzed alone"
	if $(BIN)/python -c "import atheris" 2>/dev/null; then \
		cd tests && ../$(BIN)/python fuzz_targets.py -max_total_time=300; fi

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache .system-test
