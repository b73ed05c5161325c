# bokehlab — hand-written Makefile.
#
#   make              static library build/lib/libbokehlab.a and programs in build/bin/
#   make check        install missing packages, build, run every test: "N passed, N failed"
#   make check-asan   a subset of the tests under ASan + UBSan + LeakSanitizer (build-asan/)
#   make demo         install, build and run the main job on the synthetic dataset
#   make deps         install missing Debian packages (idempotent)
#   make fuzz         libFuzzer targets (PNG, JPEG, config, checkpoint) built with clang + ASan + UBSan
#                     in build-fuzz/, each run FUZZ_SECONDS (default 600); not part of check
#                     (docs/TESTING.md)
#   make fixtures     regenerate the PyTorch parity fixtures (needs python3-torch, python3-h5py)
#   make DEBUG=1      -O1 -g instead of -O3
#   make MPI=1        data-parallel `train` with Open MPI, in build-mpi/ (docs/MULTI_MACHINE.md)
#   make MPI=1 check-mpi   1 vs 2 ranks give the same weights, resume, errors (not part of check)
#   make clean
#
# Programs: every <dir>/<name>_main.c becomes build/bin/<name> with '_' turned into '-'.
# Tests: every tests/test_<name>.c becomes build/tests/test_<name>, linked with tests/support/.

CC      ?= gcc
DEBUG   ?= 0
SAN     ?= 0
ARCH    ?= -march=native
BUILD   ?= build

ifeq ($(SAN),1)
BUILD   := build-asan
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else ifeq ($(DEBUG),1)
OPT     := -O1 -g
else
OPT     := -O3 -g
endif

# MPI=1: mpicc, BK_MPI (train/dist.c), its own build directory; deps.sh then also wants Open MPI.
MPI     ?= 0
ifeq ($(MPI),1)
CC      := mpicc
BUILD   := $(BUILD)-mpi
CFLAGS  += -DBK_MPI
export BOKEHLAB_MPI := 1
endif
.DEFAULT_GOAL := all
.PHONY: check-mpi clean-mpi
check-mpi:
	@scripts/deps.sh --mpi
	@$(MAKE) --no-print-directory MPI=1 all build-mpi/tests/mpi/test_mpi_train
	@tests/run.sh build-mpi/tests/mpi test_mpi_train
clean: clean-mpi
clean-mpi:
	rm -rf build-mpi build-asan-mpi

HDF5_CFLAGS = $(shell pkg-config --cflags hdf5 2>/dev/null)
HDF5_LIBS   = $(shell pkg-config --libs hdf5 2>/dev/null) -lhdf5_hl

CFLAGS  += -std=gnu11 $(OPT) $(ARCH) -fopenmp -fno-math-errno -Wall -Wextra -Wshadow -I. $(HDF5_CFLAGS) -MMD -MP
LDFLAGS += -fopenmp -pthread $(LDSAN)
LDLIBS  += -ldnnl $(HDF5_LIBS) -lpng -ljpeg -lm

LIB_DIRS := core layers losses models data train eval
ALL_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
MAIN_SRC := $(filter %_main.c,$(ALL_SRC))
LIB_SRC  := $(filter-out %_main.c,$(ALL_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/lib/libbokehlab.a
BINS     := $(foreach m,$(MAIN_SRC),$(BUILD)/bin/$(subst _,-,$(patsubst %_main.c,%,$(notdir $(m)))))

TEST_SRC     := $(wildcard tests/test_*.c)
TEST_BINS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
SUPPORT_SRC  := $(wildcard tests/support/*.c)
SUPPORT_OBJ  := $(SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)

# Tests run under the sanitizers: all but the long numerical sweeps listed in ASAN_SKIP.
ASAN_SKIP  ?=
ASAN_TESTS ?= $(filter-out $(ASAN_SKIP),$(notdir $(TEST_BINS)))

.PHONY: depcheck all deps check check-asan check-scripts demo fixtures clean tests
all: depcheck $(LIB) $(BINS)
tests: $(TEST_BINS)

depcheck:
	@scripts/deps.sh --check

deps:
	@scripts/deps.sh

check:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory all tests
	@tests/run.sh $(BUILD)/tests $(notdir $(TEST_BINS))

check-asan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory SAN=1 all tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	 UBSAN_OPTIONS=print_stacktrace=1 \
	 tests/run.sh build-asan/tests $(ASAN_TESTS)

demo:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

fixtures:
	@scripts/deps.sh --python
	scripts/gen_fixtures.py tests/fixtures
	scripts/gen_loss_fixtures.py tests/fixtures
	scripts/gen_model_fixtures.py tests/fixtures

# The weight import / export scripts against PyTorch (needs the Python packages; not in check).
check-scripts:
	@scripts/deps.sh --python
	@$(MAKE) --no-print-directory all
	scripts/test_weight_scripts.py --forward $(BUILD)/bin/forward

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

define BIN_RULE
$(BUILD)/bin/$(subst _,-,$(patsubst %_main.c,%,$(notdir $(1)))): $(BUILD)/obj/$(1:.c=.o) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$^ -o $$@ $$(LDLIBS)
endef
$(foreach m,$(MAIN_SRC),$(eval $(call BIN_RULE,$(m))))

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# keep object files of tests between runs (they are intermediates of a pattern rule)
.SECONDARY:

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ================================================================ fuzzing (make fuzz)
# libFuzzer targets tests/fuzz/fuzz_<name>.c, built with clang and ASan + UBSan in build-fuzz/
# against the library compiled the same way (with coverage instrumentation, OpenMP from libomp).
# `make fuzz` runs them one after another for FUZZ_SECONDS each from the committed seeds
# (tests/fuzz/corpus/<name>/) and the checkpoints fuzz_seeds writes, and prints executions,
# exec/s, coverage and crashes per target (scripts/fuzz.sh; docs/TESTING.md).
FUZZ_SECONDS ?= 600
FUZZ_CC      ?= clang-14
FUZZ_BUILD   := build-fuzz
FUZZ_TARGETS := png jpeg config checkpoint
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=gnu11 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fopenmp -fno-math-errno \
                -Wall -Wextra -Wshadow -Wno-pass-failed -I. $(HDF5_CFLAGS) -MMD -MP
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB     := $(FUZZ_BUILD)/lib/libbokehlab.a
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/bin/fuzz_%) $(FUZZ_BUILD)/bin/fuzz_seeds

.PHONY: fuzz fuzz-build clean-fuzz
fuzz:
	@scripts/deps.sh --fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# objects with libFuzzer's coverage hooks (fuzz_seeds, linked without libFuzzer, gets the
# sanitizer runtime's empty ones)
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/bin/fuzz_seeds: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_seeds.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fopenmp -pthread $^ -o $@ $(LDLIBS)

$(FUZZ_BUILD)/bin/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -fopenmp -pthread $^ -o $@ $(LDLIBS)

clean: clean-fuzz
clean-fuzz:
	rm -rf $(FUZZ_BUILD)

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
# ================================================================ end of fuzzing
