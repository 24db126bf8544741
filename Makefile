# bgsnap build.  `make` builds the library, the tools and the tests into
# build/; `make SAN=asan` (AddressSanitizer + UBSan) or `make SAN=tsan`
# builds the same into build-asan/ or build-tsan/.  `make test` runs the suite.
# Sources are found by wildcard: adding a file to src/, tools/, bench/ or a
# tests/t_*.c program needs no change here.
#
# The library's boundary is the build's: only src/ and the tests see src/
# (-Isrc); the tools, the bench and the VM build against include/ and their
# own headers, with tools/ on the include path for the CLI floor
# (tools/cli/: `#include "cli/cli.h"`).

.DEFAULT_GOAL := all
CC      ?= cc
SAN     ?=
ifeq ($(SAN),)
BUILD   ?= build
else
BUILD   ?= build-$(SAN)
endif
PREFIX  ?= /usr/local
LD      ?= ld
OBJCOPY ?= objcopy

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -fPIC -pthread -Iinclude -D_GNU_SOURCE
LDLIBS  += -pthread -lm
ifeq ($(SAN),asan)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SAN),tsan)
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

LIB_SRCS   := $(sort $(wildcard src/*/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS   := $(sort $(wildcard tools/cli/*.c))
CLI_OBJS   := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TOOL_SRCS  := $(sort $(wildcard tools/*.c bench/*.c)) $(CLI_SRCS)
TOOL_OBJS  := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
# tests/t_*.c test the public API: include/ and tests/common/ only, linked
# with libbgsnap.a like any host.  tests/unit/ holds the library's unit tests
# and their helpers, the only code outside src/ that sees src/; they link
# every library object directly (libbgsnap-internal.a).  The binaries of
# binaries land in $(BUILD)/tests/ and $(BUILD)/tests/unit/ (tests/run.sh).
TEST_SRCS  := $(sort $(wildcard tests/t_*.c))
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
UNIT_SRCS  := $(sort $(wildcard tests/unit/t_*.c))
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
TEST_COMMON_SRCS := $(sort $(wildcard tests/common/*.c))
TEST_COMMON_OBJS := $(TEST_COMMON_SRCS:%.c=$(BUILD)/%.o)
UNIT_COMMON_SRCS := $(filter-out tests/unit/t_%,$(sort $(wildcard tests/unit/*.c)))
UNIT_COMMON_OBJS := $(UNIT_COMMON_SRCS:%.c=$(BUILD)/%.o)
# Not intermediate: make would delete them after each build and relink everything.
.SECONDARY: $(TEST_COMMON_OBJS) $(UNIT_COMMON_OBJS)

# The flags below are part of every object: a change rebuilds them.
$(LIB_OBJS) $(TOOL_OBJS) $(TEST_COMMON_OBJS) $(UNIT_COMMON_OBJS) $(TEST_BINS) $(UNIT_BINS): Makefile

# Only the library and its unit tests see src/.  Library objects hide every
# symbol but the public header's (bgsnap.h sets default visibility).
$(LIB_OBJS): CFLAGS += -Isrc -fvisibility=hidden
$(UNIT_COMMON_OBJS): CFLAGS += -Isrc -Itests/common
# Tools, bench and VM see include/ and the CLI floor (tools/cli/), and link
# the public archive, as any host does.
$(TOOL_OBJS): CFLAGS += -Itools
# The bench's oracle test compiles the bench's workload into itself.
$(BUILD)/tests/t_oracle: CFLAGS += -Itools
$(BUILD)/tests/t_hostloss: CFLAGS += -Itools
TOOL_LIB := $(BUILD)/libbgsnap.a

# The version is written once, in include/bgsnap.h.  While MAJOR is 0 every
# minor version may change the ABI, so the soname carries MAJOR.MINOR; from
# 1.0 on, MAJOR alone.
VERSION_PART = $(shell sed -n 's/^\#define BGSNAP_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' include/bgsnap.h)
VERSION := $(call VERSION_PART,MAJOR).$(call VERSION_PART,MINOR).$(call VERSION_PART,PATCH)
ifeq ($(call VERSION_PART,MAJOR),0)
SOVER := 0.$(call VERSION_PART,MINOR)
else
SOVER := $(call VERSION_PART,MAJOR)
endif

all: $(BUILD)/libbgsnap.a $(BUILD)/libbgsnap.so $(BUILD)/bgsnap $(BUILD)/bgsnap.pc tests vm

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The static library a host links: one relocatable object whose hidden
# symbols are made local, so that only bgsnap_ names are global (a host's own
# now_ns or crc32c cannot clash with the library's).
$(BUILD)/libbgsnap.a: $(LIB_OBJS)
	$(LD) -r -o $(BUILD)/libbgsnap.o $^
	$(OBJCOPY) --localize-hidden $(BUILD)/libbgsnap.o
	rm -f $@ && ar rcs $@ $(BUILD)/libbgsnap.o

# Every library object with its symbols as compiled, for the unit tests.
$(BUILD)/libbgsnap-internal.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libbgsnap.so: $(LIB_OBJS) src/libbgsnap.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libbgsnap.so.$(SOVER) -Wl,--version-script=src/libbgsnap.map -o $@ $(LIB_OBJS) $(LDLIBS)

$(BUILD)/bgsnap: $(TOOL_OBJS) $(TOOL_LIB)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(TOOL_LIB) $(LDLIBS)

$(BUILD)/bgsnap.pc: bgsnap.pc.in include/bgsnap.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

tests: $(TEST_BINS) $(UNIT_BINS)
$(TEST_BINS): $(BUILD)/tests/%: tests/%.c $(TEST_COMMON_OBJS) $(BUILD)/libbgsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/common -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $< $(TEST_COMMON_OBJS) $(BUILD)/libbgsnap.a $(LDLIBS)
$(UNIT_BINS): $(BUILD)/tests/unit/%: tests/unit/%.c $(TEST_COMMON_OBJS) $(UNIT_COMMON_OBJS) $(BUILD)/libbgsnap-internal.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -Itests/common -Itests/unit -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $< \
		$(UNIT_COMMON_OBJS) $(TEST_COMMON_OBJS) $(BUILD)/libbgsnap-internal.a $(LDLIBS)

# The reference VM (needs Unicorn and nasm); see vm/vm.mk.
-include vm/vm.mk
vm:

# The Redis-protocol store on a bgsnap arena; see kv/kv.mk.
-include kv/kv.mk

# Fuzz targets (clang + libFuzzer); see tests/fuzz/.
-include tests/fuzz/fuzz.mk

test: all
	BUILD=$(BUILD) tests/run.sh

install: $(BUILD)/libbgsnap.a $(BUILD)/libbgsnap.so $(BUILD)/bgsnap $(BUILD)/bgsnap.pc
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/bgsnap.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libbgsnap.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libbgsnap.so $(DESTDIR)$(PREFIX)/lib/libbgsnap.so.$(SOVER)
	ln -sf libbgsnap.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libbgsnap.so
	install -m 644 $(BUILD)/bgsnap.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/bgsnap $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build build-asan build-tsan build-fuzz

.PHONY: all tests test install clean vm fuzz
# Only the dependency files of today's targets: one left by a moved or
# removed source would name a file that no longer exists.
-include $(LIB_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(VM_OBJS:.o=.d) $(KV_OBJS:.o=.d) $(KV_LOAD_OBJS:.o=.d) $(TEST_COMMON_OBJS:.o=.d) \
	$(UNIT_COMMON_OBJS:.o=.d) $(TEST_BINS:=.d) $(UNIT_BINS:=.d)
