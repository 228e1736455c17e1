# ckpt — the two commands a newcomer needs are `make run` and `make test`; both install missing
# Debian packages first (see `deps`).

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
# Debian packages the build and the tests need. `make deps` installs whichever are missing with
# apt-get (as root, or through sudo) and does nothing when all are present.
DEB_PACKAGES = cmake ninja-build g++ pkg-config libcli11-dev nlohmann-json3-dev libzstd-dev \
               libgtest-dev libxxhash-dev python3 time \
               libonig-dev libutf8proc-dev libsentencepiece-dev \
               clang libclang-rt-dev

PREFIX     ?= /usr/local

.PHONY: all deps configure build test test-gpu bench run fuzz install clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: installing missing Debian packages:$$missing"; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# Every CPU test: unit tests and CLI end-to-end tests (GPU tests skip themselves without a GPU
# and are run by test-gpu).
test: build
	cd $(BUILD) && ctest -LE gpu --output-on-failure -j $(JOBS)

# The GPU tests and GPU benchmarks, for the lent GPU machine (no apt there: no deps step). Fails,
# loudly, when the GPU tests skip for want of a GPU (tests/gpu/run_ctest.sh).
test-gpu: configure
	cmake --build $(BUILD) -j $(JOBS)
	bash tests/gpu/run_ctest.sh $(BUILD)
	bash tests/gpu/run_all.sh $(BUILD)/ckpt

bench: build
	bash tests/bench/run_all.sh $(BUILD)/ckpt

# The main job on the bundled test data: inspect, rechunk and prove the outputs.
run: build
	bash tests/run_demo.sh $(BUILD)/ckpt

# The libFuzzer targets, built by CMake (clang, ASan + UBSan) in build-fuzz, each run for
# FUZZ_SECONDS (default 300).
fuzz: deps
	bash tests/fuzz/run.sh

# Installs bin/ckpt, the man page and the bash/zsh completions under PREFIX (default /usr/local),
# staged under DESTDIR when set (packaging).
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD)
