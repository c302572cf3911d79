# Ferry - one Makefile.  `make` builds build/ferry and the test guest,
# `make test` runs the whole suite, `make demo` shows the main job,
# `make bench` runs the benchmarks.  V=1 shows the commands.

CC      ?= gcc
BUILD   ?= build
SAN     ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

CFLAGS_COMMON := -std=gnu11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE \
	             -Iinclude -Isrc -MMD -MP
ifeq ($(SAN),1)
CFLAGS_COMMON += -fsanitize=address,undefined -fno-omit-frame-pointer \
	             -fno-sanitize-recover=undefined
LDFLAGS_SAN   := -fsanitize=address,undefined
endif
# FUZZ=1 (with CC=clang, BUILD=build-fuzz: `make fuzz-build`): everything
# instrumented for libFuzzer, with ASan and UBSan.
ifeq ($(FUZZ),1)
CFLAGS_COMMON += -fsanitize=fuzzer-no-link,address,undefined \
	             -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
# COV=1 (with FUZZ=1: `make fuzz-coverage`): source-based coverage too.
ifeq ($(COV),1)
CFLAGS_COMMON += -fprofile-instr-generate -fcoverage-mapping
LDFLAGS       += -fprofile-instr-generate
endif
CFLAGS  += $(CFLAGS_COMMON)
LDLIBS  += -ljansson -lxxhash -lzstd -llz4 -lssl -lcrypto -lpthread

# ---- the VMM -------------------------------------------------------------
FERRY_SRCS := $(shell find src -name '*.c' | sort)
FERRY_LIB_SRCS := $(filter-out src/main.c,$(FERRY_SRCS))
FERRY_OBJS := $(FERRY_SRCS:%.c=$(BUILD)/%.o)
FERRY_LIB_OBJS := $(FERRY_LIB_SRCS:%.c=$(BUILD)/%.o)

# ---- the freestanding test guest ------------------------------------------
GUEST_CC     := gcc
GUEST_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O2 -g -ffreestanding \
	            -fno-stack-protector -fno-pic -fno-pie -mno-red-zone \
	            -mcmodel=kernel -mno-sse -mno-mmx -mno-avx -mgeneral-regs-only \
	            -fno-asynchronous-unwind-tables -fcf-protection=none \
	            -nostdinc -isystem $(shell $(GUEST_CC) -print-file-name=include) \
	            -Iinclude -Iguests -MMD -MP
GUEST_SRCS   := $(sort $(wildcard guests/*.c guests/*.S))
GUEST_OBJS   := $(patsubst %,$(BUILD)/%.o,$(GUEST_SRCS))
GUEST_ELF    := $(BUILD)/guests/testguest.elf
GUEST_ELF64  := $(BUILD)/guests/testguest64.elf

# ---- benchmark programs that link the VMM's modules --------------------------
BENCH_PC := $(BUILD)/bench/postcopy_faults

# ---- tests ------------------------------------------------------------------
UNIT_SRCS := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN  := $(BUILD)/tests/unit-tests
INTEG_SRCS := $(sort $(wildcard tests/integration/*.c))
INTEG_BIN := $(BUILD)/tests/integration-tests
INTEG_HARNESS := $(sort $(wildcard tests/integration/harness/*.c))
# A real QMP client (go-qemu) that the tests point at QEMU and at Ferry.
QMP_GO_BIN := $(BUILD)/tests/qmpquery

# ---- fuzzing (fuzz/, docs/fuzzing.md) ----------------------------------------
FUZZ_BUILD  := build-fuzz
FUZZ_NAMES  := $(patsubst fuzz/fuzz_%.c,%,$(filter-out fuzz/fuzz_common.c,\
	         $(sort $(wildcard fuzz/fuzz_*.c))))
FUZZ_BINS   := $(FUZZ_NAMES:%=$(BUILD)/fuzz/bin/%)
FUZZ_TIME   ?= 60
GEN_SEEDS   := $(BUILD)/fuzz/gen-seeds

.PHONY: all deps test unit integration demo bench soak clean san
.PHONY: fuzz fuzz-build fuzz-bins fuzz-seeds fuzz-coverage
all: deps $(BUILD)/ferry $(GUEST_ELF)

# Install missing Debian packages only when something is missing.
deps:
	$(Q)scripts/install-deps.sh --check-or-install

$(BUILD)/ferry: $(FERRY_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/guests/%.c.o: guests/%.c
	@mkdir -p $(dir $@)
	@echo "  GUESTCC $<"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BUILD)/guests/%.S.o: guests/%.S
	@mkdir -p $(dir $@)
	@echo "  GUESTAS $<"
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

# Linked as ELF64 (kept, with symbols, for gdb), shipped as ELF32: QEMU's
# multiboot loader refuses 64-bit ELF images.
$(GUEST_ELF): $(GUEST_OBJS) guests/guest.ld
	@echo "  GUESTLD $@"
	$(Q)ld -nostdlib -static -z max-page-size=4096 --no-warn-rwx-segments \
	   -T guests/guest.ld -o $(GUEST_ELF64) $(GUEST_OBJS)
	$(Q)objcopy -O elf32-i386 --strip-debug $(GUEST_ELF64) $@

$(BUILD)/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BENCH_PC): $(BUILD)/bench/postcopy_faults.o $(FERRY_LIB_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(UNIT_BIN): $(UNIT_SRCS:%.c=$(BUILD)/%.o) $(FERRY_LIB_OBJS) | $(QMP_GO_BIN)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS) -lcriterion

$(INTEG_BIN): $(INTEG_SRCS:%.c=$(BUILD)/%.o) $(INTEG_HARNESS:%.c=$(BUILD)/%.o) | $(QMP_GO_BIN)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS) -lcriterion

# Built offline from Debian's golang-github-digitalocean-go-qemu-dev (in
# /usr/share/gocode, GOPATH mode): nothing is downloaded, and the build
# cache stays in the build directory.
$(QMP_GO_BIN): tests/qmp-go/qmpquery.go
	@mkdir -p $(dir $@)
	@echo "  GO      $@"
	$(Q)cd tests/qmp-go && GOPATH=/usr/share/gocode GO111MODULE=off \
	   GOFLAGS= GOPROXY=off GOCACHE=$(abspath $(BUILD))/tests/go-cache \
	   go build -o $(abspath $@) qmpquery.go

$(BUILD)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# The fuzz targets: libFuzzer's main, the real library objects.
$(BUILD)/fuzz/bin/%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/fuzz_common.o $(FERRY_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

.PRECIOUS: $(BUILD)/fuzz/%.o
fuzz-bins: $(FUZZ_BINS)

# Built with clang into build-fuzz whatever CC says: libFuzzer is clang's.
fuzz-build: deps
	$(Q)$(MAKE) --no-print-directory CC=clang BUILD=$(FUZZ_BUILD) FUZZ=1 fuzz-bins

# A bounded session: FUZZ_TIME seconds per target (FUZZ_TARGETS="a b" for
# some); new inputs go to build-fuzz/corpus, crashes to build-fuzz/crashes.
fuzz: fuzz-build
	$(Q)FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh run $(FUZZ_TARGETS)

# Which lines of the decoders the corpora reach (seeds, regressions and
# build-fuzz/corpus): a coverage-instrumented build in build-fuzzcov.
fuzz-coverage: deps
	$(Q)$(MAKE) --no-print-directory CC=clang BUILD=build-fuzzcov FUZZ=1 COV=1 fuzz-bins
	$(Q)scripts/fuzz-coverage.sh

# Regenerate the committed seed corpus with the project's own encoders.
$(GEN_SEEDS): $(BUILD)/fuzz/gen_seeds.o $(BUILD)/fuzz/fuzz_common.o $(FERRY_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

fuzz-seeds: $(GEN_SEEDS)
	$(Q)$(GEN_SEEDS) fuzz/corpus

$(BUILD)/tests/integration/harness/%.o: tests/integration/harness/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# The suite: unit tests, then integration tests against the sanitizer build
# of ferry (build-san/ferry) so that leaks and undefined behaviour fail CI.
test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BIN) $(INTEG_BIN) $(TCP_CEILING)
	$(Q)$(MAKE) --no-print-directory BUILD=build-san SAN=1 build-san/ferry
	@echo "  CLANG   build-clang/ferry (clang must build it too)"
	$(Q)$(MAKE) --no-print-directory -s CC=clang BUILD=build-clang build-clang/ferry >/dev/null
	@echo "  CLANG   build-fuzz/fuzz/bin/* (libFuzzer targets)"
	$(Q)$(MAKE) --no-print-directory -s fuzz-build >/dev/null
	$(Q)scripts/run-tests.sh

demo: all
	$(Q)scripts/demo.sh

# Guest-less: the page codecs on their own (docs/compression.md).
CODEC_BENCH := $(BUILD)/bench/ram_codec_bench
$(CODEC_BENCH): bench/ram_codec_bench.c $(FERRY_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

# Guest-less: raw TCP over N connections between two processes, the
# ceiling of a migration over the same link (bench/ceiling.py).
TCP_CEILING := $(BUILD)/bench/tcp_ceiling
$(TCP_CEILING): $(BUILD)/bench/tcp_ceiling.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ -lpthread

# Guest-less: page deltas (xbzrle) on their own (docs/delta.md).
DELTA_BENCH := $(BUILD)/bench/delta_bench
$(DELTA_BENCH): bench/delta_bench.c $(FERRY_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)


# Guest-less: the parallel page channels over loopback (docs/multifd.md).
MULTIFD_BENCH := $(BUILD)/bench/multifd_bench
$(MULTIFD_BENCH): $(BUILD)/bench/multifd_bench.o $(FERRY_LIB_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

bench: all $(CODEC_BENCH) $(DELTA_BENCH) $(BENCH_PC) $(TCP_CEILING) $(MULTIFD_BENCH)
	$(Q)bench/run.sh

# 100 migrations hop after hop (needs KVM); SOAK_HOPS=N for another count.
soak: all $(BUILD)/tests/integration-tests
	$(Q)bench/soak.sh $(SOAK_HOPS)

clean:
	rm -rf build build-san build-clang build-fuzz build-fuzzcov

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
