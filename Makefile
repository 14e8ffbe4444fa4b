# Thin wrapper over Meson + Ninja (as QEMU does). `make demo` and `make check`
# work from a fresh clone as root: missing Debian packages are installed first.
BUILD ?= build
MESON_OPTS ?=
SUITE ?= unit

.PHONY: all deps build check syscalls locks format-check model test outside stress fuzz demo bench format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	@scripts/install-deps.sh
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: build
	@scripts/install-deps.sh check
	@scripts/raise-max-map-count.sh
	meson test -C $(BUILD) --suite $(SUITE) --print-errorlogs

outside: build
	scripts/outside-test.sh $(BUILD)

# The API fuzzer (tests/fuzz_api.c) under ASan+UBSan with fault injection on,
# for SECONDS (CI: the default; a soak: make fuzz SECONDS=3600). The seed is
# printed first. CI runs a fixed seed for a fixed number of steps (SEED,
# STEPS: a run that passes), so that a red CI is a regression, not a new
# find: open finds are in docs/design.md, "Fault injection and the fuzzer".
# SEED=time takes a new seed for SECONDS, as a soak should.
FUZZ_BUILD ?= build-asan
SEED ?= 54852823442966
STEPS ?= 15000
fuzz:
	$(MAKE) build BUILD=$(FUZZ_BUILD) MESON_OPTS="-Db_sanitize=address,undefined"
	@scripts/raise-max-map-count.sh
	$(if $(filter time,$(SEED)),,SAMEPAGE_FUZZ_SEED=$(SEED) SAMEPAGE_FUZZ_STEPS=$(STEPS)) \
	SAMEPAGE_FUZZ_SECONDS=$(or $(SECONDS),40) meson test -C $(FUZZ_BUILD) --suite fuzz \
		--print-errorlogs --timeout-multiplier 0

# Only src/os.c talks to the kernel about memory: checked first, so CI fails on it.
syscalls:
	@scripts/check-syscalls.sh

# Every C file as clang-format writes it (`make format` fixes it).
format-check:
	@scripts/check-format.sh

# Every lock is ranked in src/lock.h and taken through its wrappers.
locks:
	@scripts/check-locks.sh

# The Promela model of the window protocol (docs/model), checked with spin.
model:
	@scripts/install-deps.sh check
	scripts/check-model.sh

check: syscalls locks format-check model test outside

# The long soak of tests/test_stress.c: SECONDS in all (half of it with swap);
# CONFIG=swap|noswap|sigsegv runs one configuration for all of it.
CONFIG ?=
stress: build
	@scripts/raise-max-map-count.sh
	SP_STRESS_SECONDS=$(or $(SECONDS),600) SP_STRESS_CONFIG=$(CONFIG) ./$(BUILD)/tests/test_stress

demo: build
	./$(BUILD)/tools/samepage demo

# Programs that print figures (bench_ksm drives /sys/kernel/mm/ksm: root).
bench: build
	./$(BUILD)/bench/bench_region
	./$(BUILD)/bench/bench_ksm
	./$(BUILD)/bench/bench_hotplug
	./$(BUILD)/bench/bench_swap
	./$(BUILD)/bench/bench_gup

format:
	clang-format -i include/*.h src/*.[ch] tools/*.c bench/*.[ch] tests/*.[ch] tests/outside/*.[ch] tests/run/*.[ch]

clean:
	rm -rf $(BUILD) build-asan build-tsan
