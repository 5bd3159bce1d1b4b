# The README's commands.  CMake does the real work in build/.
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all build deps run test test-asan clean

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

clean:
	rm -rf $(BUILD) build-asan
