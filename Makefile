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

CC      ?= cc
SAN     ?=
ifeq ($(SAN),)
BUILD   ?= build
else
BUILD   ?= build-$(SAN)
endif
PREFIX  ?= /usr/local

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
TEST_SRCS  := $(sort $(wildcard tests/t_*.c))
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON_SRCS := $(sort $(wildcard tests/common/*.c))
TEST_COMMON_OBJS := $(TEST_COMMON_SRCS:%.c=$(BUILD)/%.o)
# Not intermediate: make would delete them after each build and relink everything.
.SECONDARY: $(TEST_COMMON_OBJS)

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

$(LIB_OBJS) $(TEST_COMMON_OBJS): CFLAGS += -Isrc
$(TOOL_OBJS): CFLAGS += -Itools
# The bench's oracle test compiles the bench's workload into itself.
$(BUILD)/tests/t_oracle: CFLAGS += -Itools

$(BUILD)/libbgsnap.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libbgsnap.so: $(LIB_OBJS) src/libbgsnap.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libbgsnap.so.$(SOVER) -Wl,--version-script=src/libbgsnap.map -o $@ $(LIB_OBJS) $(LDLIBS)

$(BUILD)/bgsnap: $(TOOL_OBJS) $(BUILD)/libbgsnap.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(BUILD)/libbgsnap.a $(LDLIBS)

$(BUILD)/bgsnap.pc: bgsnap.pc.in include/bgsnap.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

tests: $(TEST_BINS)
$(BUILD)/tests/%: tests/%.c $(TEST_COMMON_OBJS) $(BUILD)/libbgsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -Itests/common -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $< $(TEST_COMMON_OBJS) $(BUILD)/libbgsnap.a $(LDLIBS)

# The reference VM (needs Unicorn and nasm); see vm/vm.mk.
-include vm/vm.mk
vm:

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
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
