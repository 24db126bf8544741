# tests/fuzz/fuzz.mk - libFuzzer targets, included by the top Makefile.
#
#   make fuzz            builds build-fuzz/fuzz_reader, build-fuzz/fuzz_stream
#                        (clang -fsanitize=fuzzer,address,undefined) and the
#                        seed corpus build-fuzz/corpus/ (real encoder output,
#                        written by build-fuzz/gen_corpus); build-fuzz/fuzz_resp,
#                        bgsnap-kv's RESP parser, seeded from tests/fuzz/resp-seeds/
#   make fuzz-run        runs each target for FUZZ_TIME seconds (default 60)
#                        on a copy of the corpus; crashes land in build-fuzz/
#
# The targets are built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which
# makes the reader ignore checksum mismatches, so mutations get past the
# checksums to the structural checks that guard memory safety.  A crash
# found goes into tests/fuzz/regress/ (t_reader_fuzz_regress replays them).

FUZZ_CC    ?= clang
FUZZ_DIR   := build-fuzz
FUZZ_TIME  ?= 60
FUZZ_CFLAGS := -g -O1 -std=gnu11 -Iinclude -Isrc -Itests/common -Itests/unit -D_GNU_SOURCE -pthread \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# The parser alone: every reader file, with what it needs and nothing else
# (the codec too, so that CPAGES frames are decoded: with libzstd, as the
# library is built; the seeds then include compressed files).
FUZZ_CFLAGS += $(ZSTD_CFLAGS)
FUZZ_LIBS := $(ZSTD_LIBS) -lm
FUZZ_LIB_SRCS := $(sort $(wildcard src/format/reader*.c)) src/format/codec_zstd.c src/format/crc32c.c src/util/err.c
FUZZ_GEN_SRCS := tests/fuzz/gen_corpus.c tests/unit/fmtgen.c tests/unit/chaingen.c tests/common/testutil.c tests/common/cases.c \
	src/format/format_write.c src/format/format_chunk.c src/format/format_adapt.c src/format/format_cpool.c src/format/codec_zstd.c src/sink/sink.c \
	src/sink/sink_aio.c src/format/crc32c.c src/util/err.c src/util/thread.c
FUZZ_HDRS := include/bgsnap.h $(wildcard src/*/*.h) tests/unit/fmtgen.h tests/unit/chaingen.h

fuzz: $(FUZZ_DIR)/fuzz_reader $(FUZZ_DIR)/fuzz_stream $(FUZZ_DIR)/fuzz_resp $(FUZZ_DIR)/corpus/.done

# bgsnap-kv's request parser alone (it depends on nothing else).
$(FUZZ_DIR)/fuzz_resp: tests/fuzz/fuzz_resp.c kv/resp.c kv/resp.h
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Ikv -fsanitize=fuzzer -o $@ tests/fuzz/fuzz_resp.c kv/resp.c

$(FUZZ_DIR)/fuzz_reader $(FUZZ_DIR)/fuzz_stream: $(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_SRCS) $(FUZZ_HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_SRCS) $(FUZZ_LIBS)

$(FUZZ_DIR)/gen_corpus: $(FUZZ_GEN_SRCS) $(FUZZ_HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_GEN_SRCS) $(FUZZ_LIBS)

$(FUZZ_DIR)/corpus/.done: $(FUZZ_DIR)/gen_corpus
	rm -rf $(FUZZ_DIR)/corpus && $(FUZZ_DIR)/gen_corpus $(FUZZ_DIR)/corpus && touch $@

fuzz-run: fuzz
	@for t in reader stream resp; do \
		case $$t in resp) seeds=tests/fuzz/resp-seeds ;; *) seeds="$(FUZZ_DIR)/corpus tests/fuzz/regress" ;; esac; \
		mkdir -p $(FUZZ_DIR)/corpus-$$t && \
		echo "fuzz_$$t: $(FUZZ_TIME) s" && \
		$(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
			-max_len=65536 -artifact_prefix=$(FUZZ_DIR)/ -print_final_stats=1 \
			$(FUZZ_DIR)/corpus-$$t $$seeds > $(FUZZ_DIR)/fuzz_$$t.log 2>&1 || { tail -40 $(FUZZ_DIR)/fuzz_$$t.log; exit 1; }; \
		tail -6 $(FUZZ_DIR)/fuzz_$$t.log; \
	done

.PHONY: fuzz fuzz-run
