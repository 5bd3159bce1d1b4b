# The README's commands.  CMake does the real work in build/.
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all build deps run test test-asan test-tsan fuzz valgrind clean bench tour mutants fleet

all: build

# Installs the Debian packages the build needs, only when one is missing.
deps:
	@./tools/install-deps

# After deps even under make -j: configuring looks for the packages.
$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# Every ctest run leaves its results in <tree>/ctest-results.xml (JUnit,
# with each test's output): tools/ci-check-skips reads the skips there.
CTEST = ctest --output-on-failure --output-junit ctest-results.xml

run: build
	$(BUILD)/ioserve -c etc/ioserve.cfg

# The suite also runs a real Prometheus (dist.prometheus) and HAProxy
# (deploy.fleet); without them those two report a skip, with the reason.
test: build
	@./tools/install-deps prometheus fleet || echo "test: going on without Prometheus/HAProxy (their tests will skip)"
	cd $(BUILD) && $(CTEST) -j$(JOBS)

# The whole suite again under AddressSanitizer + UBSan, in its own tree.
test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DIOSERVE_ASAN=ON -DCMAKE_BUILD_TYPE=Debug"

# ThreadSanitizer, in its own tree: the unit tests, the fuzz corpora and
# the blocking model's scenarios (its threads).  TSAN_TESTS: a ctest -R regex.
# The hand-over scenarios scale themselves down under TSan (docs/testing.md).
# The A/B split's promotion with a blocking side runs too (its acceptor
# thread routes); its 10,000-connection split, a thread each, does not.
TSAN_TESTS ?= ^(unit\.|fuzz\.|it\.blocking\.|it\.canary\.(blocking_sigio|sigio_blocking)\.canary_promote$$)
test-tsan:
	$(MAKE) build BUILD=build-tsan CMAKE_FLAGS="-DIOSERVE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug"
	cd build-tsan && $(CTEST) -j$(JOBS) -R '$(TSAN_TESTS)'

# libFuzzer targets (tests/fuzz/), built by clang in build-fuzz, each run for
# FUZZ_SECONDS from its seed corpus; a crash fails and leaves its input in
# build-fuzz/tests/fuzz-work/<target>/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_CMAKE_FLAGS = -DCMAKE_C_COMPILER=clang -DIOSERVE_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo
fuzz:
	@./tools/install-deps fuzz
	@test -f build-fuzz/CMakeCache.txt || cmake -S . -B build-fuzz $(FUZZ_CMAKE_FLAGS)
	cmake --build build-fuzz -j$(JOBS) --target fuzzers
	cd build-fuzz && FUZZ_SECONDS=$(FUZZ_SECONDS) $(CTEST) -L fuzz

# valgrind memcheck: one scenario per model, the server under valgrind and
# stopped with SIGQUIT; any invalid access or definite leak fails.
valgrind:
	@./tools/install-deps valgrind
	$(MAKE) build BUILD=build-valgrind CMAKE_FLAGS="-DIOSERVE_VALGRIND=ON"
	cd build-valgrind && $(CTEST) -j$(JOBS) -L memcheck

# The benchmark lab (tests/bench/run): every model, the hand-written
# baselines and nginx side by side; results in $(BUILD)/bench/.  A subset:
#   make bench MODELS="epoll uring" CONNS="50 500" ROUNDS=5 DURATION=2
# (also WARMUP, DEPTH, SIZE, PARTS="main sweep idle extras reload", SWEEPS=no,
# EXTRAS=no, MAX_STEAL, MAX_OTHER, RETRIES, RELOAD_ROUNDS).  Reload under
# load alone, about 3 minutes (3 rounds): make bench PARTS=reload
bench: build
	@./tools/install-deps bench || echo "bench: going on without what could not be installed"
	BUILD=$(BUILD) MODELS="$(MODELS)" CONNS="$(CONNS)" ROUNDS="$(ROUNDS)" \
	DURATION="$(DURATION)" PARTS="$(PARTS)" RELOAD_ROUNDS="$(RELOAD_ROUNDS)" ./tests/bench/run

# The lesson's four claims about I/O models, each measured here in under two
# minutes (tools/tour): build/tour/report.md, results.tsv and syscalls.svg.
tour: build
	@./tools/install-deps bench || echo "tour: going on without what could not be installed"
	./tools/tour --build $(BUILD)

# Three instances behind HAProxy (deploy/haproxy/haproxy.cfg), in network
# namespaces when run as root, and a rolling model swap, binary upgrade and
# restart under HTTP load and long-lived TCP sessions, each step reported
# (tools/fleet; docs/deploy.md).  FLEET_ARGS passes options, e.g.
#   make fleet FLEET_ARGS="--instances 5 --ops restart --keep"
FLEET_ARGS ?=
fleet: build
	@./tools/install-deps fleet
	./tools/fleet --build $(BUILD) $(FLEET_ARGS)

# Known bugs the suite must catch (tests/mutants/list): each is planted in a
# scratch copy of the tree (MUTANTS_DIR, default /tmp/ioserve-mutants-$UID,
# kept between runs so rebuilds are incremental), only its tests are run, and
# a mutant that survives fails.  MUTANTS=regex runs only the named ones.
MUTANTS ?= .
mutants: deps
	./tools/mutants tests/mutants/list '$(MUTANTS)'

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz build-valgrind
