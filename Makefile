# The README's commands.  CMake does the real work in build/.
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all build deps run test test-asan clean bench

all: build

# Installs the Debian packages the build needs, only when one is missing.
deps:
	@./tools/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/ioserve -c etc/ioserve.cfg

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The whole suite again under AddressSanitizer + UBSan, in its own tree.
test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DIOSERVE_ASAN=ON -DCMAKE_BUILD_TYPE=Debug"

# The benchmark lab (tests/bench/run): every model, the hand-written
# baselines and nginx side by side; results in $(BUILD)/bench/.  A subset:
#   make bench MODELS="epoll uring" CONNS="50 500" ROUNDS=5 DURATION=2
# (also WARMUP, DEPTH, SIZE, SWEEPS=no, EXTRAS=no, MAX_STEAL, MAX_OTHER).
bench: build
	@./tests/bench/install-deps
	BUILD=$(BUILD) MODELS="$(MODELS)" CONNS="$(CONNS)" ROUNDS="$(ROUNDS)" \
	DURATION="$(DURATION)" ./tests/bench/run

clean:
	rm -rf $(BUILD) build-asan
