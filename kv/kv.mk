# kv/kv.mk - builds bgsnap-kv, $(BUILD)/bgsnap-kv, included by the top
# Makefile.  A host like any other: include/bgsnap.h, the CLI floor
# (tools/cli/) and the public archive, never src/.

KV_SRCS := $(sort $(wildcard kv/*.c))
KV_OBJS := $(KV_SRCS:%.c=$(BUILD)/%.o)

$(KV_OBJS): CFLAGS += -Itools
$(KV_OBJS): kv/kv.mk Makefile

$(BUILD)/bgsnap-kv: $(KV_OBJS) $(CLI_OBJS) $(BUILD)/libbgsnap.a
	$(CC) $(LDFLAGS) -o $@ $(KV_OBJS) $(CLI_OBJS) $(BUILD)/libbgsnap.a $(LDLIBS)

kv: $(BUILD)/bgsnap-kv
all: kv

.PHONY: kv

# bgsnap-kv-load: the load driver of bench/kv-vs-redis.sh (any RESP server).
KV_LOAD_SRCS := $(sort $(wildcard kv/load/*.c))
KV_LOAD_OBJS := $(KV_LOAD_SRCS:%.c=$(BUILD)/%.o)
$(KV_LOAD_OBJS): kv/kv.mk Makefile

$(BUILD)/bgsnap-kv-load: $(KV_LOAD_OBJS)
	$(CC) $(LDFLAGS) -o $@ $(KV_LOAD_OBJS) $(LDLIBS)

kv: $(BUILD)/bgsnap-kv-load
