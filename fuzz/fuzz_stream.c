/*
 * fuzz_stream - a migration stream after ACCEPT: RAM_PAGES
 * (migration/ram_codec.c), DEVICE and VCPU state (vmm/machine_state.c and
 * every device's and the vCPU's loader), ROUND_END, STATE_END, unknown
 * and optional types, and post-copy's PAGE, PAGE_REQUEST, PUSH_END and
 * RECV_BITMAP (migration/postcopy_proto.c), read through the real record
 * reader.
 *
 * The records are dispatched as incoming.c's receive() does; receive()
 * itself needs the KVM VM that negotiate() builds, which this project's
 * CI machine cannot create, so the target loads into a machine without
 * KVM (vm_create_offline): the same memory layout, device set and vCPU
 * objects, whose loaders run every check before their final ioctl fails.
 *
 * RAM_PAGES may carry deltas (MIG_PAGE_DELTA, migration/delta.c): each is
 * checked whole before any page is written, and applied to the page as
 * this machine holds it.
 *
 * Input: u8 mode | items (fuzz_common.h), framed with the real writer.
 * Mode bit 0: a guest above 3 GiB (two memory slots around the PCI hole);
 * bit 1: 4 vCPUs instead of 1; bit 2: QEMU's exit convention (the
 * isa-debug-exit device).
 */
#include "fuzz_common.h"
#include "io/channel.h"
#include "io/record.h"
#include "migration/postcopy_proto.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "util/log.h"
#include "vmm/machine_state.h"
#include "vmm/vm.h"
#include "devices/device.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	return 0;
}

/* One record, as receive() takes it; returns 0 to read on. */
/* A run pcp_parse_missing passes on must lie inside one slot. */
static int fuzz_missing_run(void *opaque, uint64_t gpa, uint64_t npages)
{
	struct vm *vm = opaque;
	if (!npages || npages > (1ULL << 40) ||
	    !memory_gpa_to_hva(&vm->mem, gpa, npages * 4096))
		abort();
	return 0;
}

static int take(struct vm *vm, struct machine_state_loader *l,
		struct ram_decoder *dec, bool *state_done, struct rec_reader *r,
		uint32_t type, const uint8_t *p, uint32_t len)
{
	char err[ERR_MAX] = "";
	int ret = 0;

	switch (type) {
	case MIG_REC_RAM_PAGES:
		if (*state_done)
			return -1;
		ret = ram_decode(dec, p, len, NULL, err);
		break;
	case MIG_REC_ROUND_END:
		break;
	case MIG_REC_DEVICE:
	case MIG_REC_VCPU:
		if (*state_done)
			return -1;
		ret = machine_state_load(l, type, p, len, err);
		break;
	case MIG_REC_STATE_END:
		ret = machine_state_loader_finish(l, err);
		if (!ret)
			*state_done = true;
		break;
	case MIG_REC_PAGE: {
		/* Post-copy: a pushed or requested page, which the
		 * destination places where its descriptor says. */
		uint64_t gpa;
		const uint8_t *data;
		bool answer;
		ret = pcp_parse_page(p, len, &vm->mem, &gpa, &data, &answer, err);
		if (!ret) {
			uint8_t *dst = memory_gpa_to_hva(&vm->mem, gpa, 4096);
			if (!dst)
				abort();
			if (data)
				memcpy(dst, data, 4096);
			else
				memset(dst, 0, 4096);
		}
		break;
	}
	case MIG_REC_PAGE_REQUEST: {
		/* Post-copy, the source's side: the ranges it will read. */
		struct pcp_range ranges[PCP_REQ_MAX_RANGES];
		unsigned n = 0;
		ret = pcp_parse_request(p, len, &vm->mem, ranges, &n, err);
		for (unsigned i = 0; !ret && i < n; i++)
			if (!ranges[i].npages ||
			    !memory_gpa_to_hva(&vm->mem, ranges[i].gpa,
					       (uint64_t)ranges[i].npages * 4096))
				abort();
		break;
	}
	case MIG_REC_PUSH_END:
		break;
	case MIG_REC_RECV_BITMAP: {
		/* Post-copy recovery, the source's side: no bit past the
		 * guest's last page survives. */
		uint64_t npages = memory_npages(&vm->mem);
		uint64_t *have = calloc(npages / 64 + 1, sizeof(*have));
		if (!have)
			return -1;
		ret = pcp_parse_recv_bitmap(p, len, npages, have, err);
		if (!ret && npages % 64 && have[npages / 64] >> (npages % 64))
			abort();
		free(have);
		break;
	}
	case MIG_REC_POSTCOPY_MISSING:
		/* Post-copy's switch: every run it applies is inside one
		 * slot (the destination discards them). */
		if (*state_done)
			return -1;
		ret = pcp_parse_missing(p, len, &vm->mem, fuzz_missing_run, vm, err);
		break;
	case MIG_REC_COMMIT:
	case MIG_REC_ERROR:
		return -1;
	default:
		if (!mig_record_known(type))
			return rec_unknown(r, type, len) ? -1 : 0;
		return -1;
	}
	(void)vm;
	fuzz_note(mig_record_name(type), ret, err);
	/* A refusal always says why. */
	if (ret && !err[0])
		abort();
	/* A real destination stops at the first refusal; go on here, so
	 * that the records after it are decoded too (the loaders that hand
	 * state to KVM fail here at their last step, every time). */
	return 0;
}

/*
 * What a loaded device state must allow: the guest reading every port of
 * the device, and saving it again into a state the device loads back (a
 * machine migrates on; its next destination reads what this one writes).
 * Devices whose state KVM keeps cannot save here (their save needs the
 * KVM VM) and are left out.
 */
static void use_loaded(struct vm *vm, const struct machine_state_loader *l)
{
	struct buf b;

	buf_init(&b);
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *d = vm->devices[i];
		if (!l->dev_seen[i])
			continue;
		for (unsigned port = 0; port < d->port_count; port++) {
			uint32_t v = 0;
			vm_pio(vm, (uint16_t)(d->port_base + port), false, &v, 1);
		}
		buf_reset(&b);
		d->ops->save(d, &b);
		if (b.oom)
			continue;
		char err[ERR_MAX] = "";
		if (d->ops->load(d, d->ops->state_version, b.data, b.len, err)) {
			fprintf(stderr, "fuzz: %s does not load its own state: %s\n",
				d->ops->name, err);
			abort();
		}
	}
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	uint64_t ram = (mode & 1) ? (3ULL << 30) + (8u << 20) : 8u << 20;
	struct vm *vm = fuzz_machine(ram, (mode & 2) ? 4 : 1, mode & 4);
	size_t len;
	uint8_t *stream = fuzz_frame(NULL, 0, data + 1, size - 1, MIG_MAX_RECORD,
				     &len);
	int fd = fuzz_memfd(stream, len);
	struct channel *ch = channel_file_new(fd, true, 0, UINT64_MAX, "fuzz stream");
	struct rec_reader *r = ch ? rec_reader_new(ch, MIG_MAX_RECORD) : NULL;
	struct machine_state_loader loader;
	struct ram_decoder dec;
	bool state_done = false;

	if (!r)
		abort();
	rec_reader_set_namer(r, mig_record_name);
	machine_state_loader_init(&loader, vm);
	/* Every encoding this ferry has (RAW, zstd, lz4), as if all were
	 * negotiated: new ones are fuzzed as soon as they exist. */
	ram_decoder_init(&dec, &vm->mem, (1u << RAM_ENC_COUNT) - 1);
	dec.deltas = true; /* and deltas (xbzrle), as if agreed */
	for (;;) {
		uint32_t type, rlen;
		const uint8_t *p;
		if (rec_read(r, &type, &p, &rlen))
			break;
		if (take(vm, &loader, &dec, &state_done, r, type, p, rlen))
			break;
	}
	if (dec.counts.zero_pages > dec.counts.pages)
		abort();
	use_loaded(vm, &loader);
	ram_decoder_free(&dec);
	rec_reader_free(r);
	channel_close(ch);
	free(stream);
	vm_destroy(vm);
	return 0;
}
