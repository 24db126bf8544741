# vm/vm.mk - builds the reference VM, $(BUILD)/bgsnap-vm, included by the top
# Makefile.  Needs Unicorn 2 (found with pkg-config, Debian: libunicorn-dev)
# and nasm; without them it prints a notice and builds nothing, so the rest
# of the tree still builds.  The guests (vm/guests/*.asm) are assembled into
# flat binaries and linked into bgsnap-vm (vm/guests_embed.asm).

VM_UC_OK   := $(shell pkg-config --exists unicorn 2>/dev/null && echo yes)
VM_NASM    := $(shell command -v nasm 2>/dev/null)

ifeq ($(VM_UC_OK)$(if $(VM_NASM),yes,),yesyes)

VM_UC_CFLAGS := $(shell pkg-config --cflags unicorn)
VM_UC_LIBS   := $(shell pkg-config --libs unicorn)
VM_SRCS      := $(sort $(wildcard vm/*.c))
VM_OBJS      := $(VM_SRCS:%.c=$(BUILD)/%.o)
VM_GUEST_BINS := $(patsubst vm/guests/%.asm,$(BUILD)/vm/guests/%.bin,$(wildcard vm/guests/*.asm))

$(VM_OBJS): CFLAGS += $(VM_UC_CFLAGS) -Itools

$(BUILD)/vm/guests/%.bin: vm/guests/%.asm vm/guests/lib.inc
	@mkdir -p $(dir $@)
	nasm -f bin -i vm/guests/ $< -o $@

$(BUILD)/vm/guests_embed.o: vm/guests_embed.asm $(VM_GUEST_BINS)
	@mkdir -p $(dir $@)
	nasm -f elf64 -i $(BUILD)/vm/guests/ $< -o $@

$(BUILD)/bgsnap-vm: $(VM_OBJS) $(BUILD)/vm/guests_embed.o $(CLI_OBJS) $(BUILD)/libbgsnap.a
	$(CC) $(LDFLAGS) -o $@ $(VM_OBJS) $(BUILD)/vm/guests_embed.o $(CLI_OBJS) $(BUILD)/libbgsnap.a $(VM_UC_LIBS) $(LDLIBS)

vm: $(BUILD)/bgsnap-vm

else

vm:
	@echo "notice: bgsnap-vm not built: it needs Unicorn 2 (pkg-config unicorn: libunicorn-dev) and nasm"

endif
