/*
 * gen-seeds - write the fuzz targets' seed corpus (fuzz/corpus/TARGET/)
 * with the project's own encoders: the preamble (mig_preamble_write),
 * HELLO (hello_build: the machine description and the capability offer),
 * ACCEPT (mig_caps_accept_json), RAM_PAGES (ram_encode from guest
 * memory), device state (each device's save), the record framing
 * (rec_put) and the snapshot header, for a machine without KVM
 * (vm_create_offline).
 *
 * This host has no /dev/kvm, so no real migration or snapshot can run
 * here: the state KVM itself keeps (irqchip, PIT, kvmclock, the vCPU's
 * registers, MSRs, LAPIC...) cannot be read from a live VM.  Those
 * records are laid out here as their save functions write them (the
 * same kvm_* structs, same item tags and order) with plausible values.
 *
 *   gen-seeds DIR      (make fuzz-seeds: DIR = fuzz/corpus)
 */
#include "fuzz_common.h"
#include "devices/device.h"
#include "io/channel.h"
#include "io/record.h"
#include "migration/caps.h"
#include "migration/hello.h"
#include "migration/postcopy_proto.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "migration/delta_cache.h"
#include "migration/ram_codec.h"
#include "snapshot/snapshot_format.h"
#include "util/buf.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "vmm/machine_desc.h"
#include "vmm/machine_state.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/kvm.h>

static const char *outdir;

static void fail(const char *what)
{
	fprintf(stderr, "gen-seeds: %s\n", what);
	exit(1);
}

static void put_file(const char *target, const char *name, const void *a,
		     size_t alen, const void *b, size_t blen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(a, 1, alen, f) != alen ||
	    (blen && fwrite(b, 1, blen, f) != blen) || fclose(f))
		fail(path);
}

/* ---- the pieces ------------------------------------------------------- */

/* Each device's record, as machine_state_save lays it out; the KVM-kept
 * devices' state (their save needs a KVM VM) as their save would write
 * it. */
static void device_items(struct vm *vm, uint8_t **items, size_t *n)
{
	struct buf p;
	buf_init(&p);
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *d = vm->devices[i];
		buf_reset(&p);
		buf_put_str(&p, d->ops->name);
		buf_put_u32(&p, d->ops->state_version);
		size_t head = p.len;
		d->ops->save(d, &p);
		if (p.oom) {
			p.oom = false;
			p.len = head;
			if (!strcmp(d->ops->name, "irqchip")) {
				static const int ids[] = { KVM_IRQCHIP_PIC_MASTER,
					KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC };
				for (int c = 0; c < 3; c++) {
					struct kvm_irqchip chip = { .chip_id = ids[c] };
					if (ids[c] == KVM_IRQCHIP_IOAPIC)
						chip.chip.ioapic.base_address = 0xfec00000;
					else
						chip.chip.pic.elcr_mask = c ? 0xde : 0xf8;
					buf_put(&p, &chip, sizeof(chip));
				}
			} else if (!strcmp(d->ops->name, "pit")) {
				struct kvm_pit_state2 pit = { 0 };
				for (int c = 0; c < 3; c++) {
					pit.channels[c].count = 0x10000;
					pit.channels[c].mode = c == 0 ? 2 : 3;
					pit.channels[c].rw_mode = 3;
				}
				buf_put(&p, &pit, sizeof(pit));
			} else if (!strcmp(d->ops->name, "kvmclock")) {
				buf_put_u64(&p, 123456789ULL);
			} else {
				fail("a device's save failed");
			}
		}
		fuzz_put_item(items, n, STATE_REC_DEVICE, p.data, (uint32_t)p.len);
	}
	buf_free(&p);
}

static void put_tag(struct buf *b, uint32_t tag, const void *data, size_t len)
{
	buf_put_u32(b, tag);
	buf_put_u32(b, (uint32_t)len);
	buf_put(b, data, len);
}

/* One vCPU's record as vcpu_save_state writes it (tags 1..9, in order),
 * for a vCPU in 32-bit protected mode at a multiboot entry. */
static void vcpu_item(unsigned index, uint8_t **items, size_t *n)
{
	struct buf b;
	buf_init(&b);
	buf_put_u32(&b, index);
	buf_put_u32(&b, VCPU_STATE_VERSION);

	struct kvm_regs regs = { .rip = 0x100000, .rflags = 2, .rax = 0x2badb002,
				 .rbx = 0x9000 };
	put_tag(&b, 1, &regs, sizeof(regs));
	struct kvm_sregs sregs = { .cr0 = 0x11, .efer = 0,
				   .apic_base = 0xfee00900 };
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 8,
				    .type = 11, .present = 1, .s = 1, .db = 1, .g = 1 };
	struct kvm_segment dataseg = code;
	dataseg.selector = 16;
	dataseg.type = 3;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = dataseg;
	sregs.tr = (struct kvm_segment){ .type = 11, .present = 1, .limit = 0xffff };
	sregs.ldt = (struct kvm_segment){ .type = 2, .present = 1, .limit = 0xffff };
	put_tag(&b, 2, &sregs, sizeof(sregs));
	struct kvm_xsave xs;
	memset(&xs, 0, sizeof(xs));
	xs.region[0] = 0x037f;        /* FCW */
	xs.region[6] = 0x1f80;        /* MXCSR */
	put_tag(&b, 3, &xs, sizeof(xs));
	struct kvm_xcrs xcrs = { .nr_xcrs = 1, .xcrs = { { .xcr = 0, .value = 1 } } };
	put_tag(&b, 4, &xcrs, sizeof(xcrs));
	size_t nm = fuzz_host_nmsrs;
	size_t msz = sizeof(struct kvm_msrs) + nm * sizeof(struct kvm_msr_entry);
	struct kvm_msrs *m = calloc(1, msz);
	if (!m)
		fail("out of memory");
	m->nmsrs = (uint32_t)nm;
	for (size_t i = 0; i < nm; i++) {
		m->entries[i].index = fuzz_host_msrs[i];
		switch (fuzz_host_msrs[i]) {
		case 0x1b: m->entries[i].data = 0xfee00900; break;
		case 0x277: m->entries[i].data = 0x0007040600070406ULL; break;
		case 0xc0000082: m->entries[i].data = 0xffffffff81000000ULL; break;
		case 0x10: m->entries[i].data = 123456789; break;
		default: break;
		}
	}
	put_tag(&b, 5, m, msz);
	free(m);
	struct kvm_lapic_state lapic;
	memset(&lapic, 0, sizeof(lapic));
	lapic.regs[0x20 + 3] = (uint8_t)index; /* APIC ID */
	lapic.regs[0x30] = 0x14;               /* version */
	lapic.regs[0xf0] = 0xff;               /* spurious vector */
	lapic.regs[0xf1] = 0x01;               /* enabled */
	put_tag(&b, 6, &lapic, sizeof(lapic));
	struct kvm_vcpu_events ev = { 0 };
	put_tag(&b, 7, &ev, sizeof(ev));
	struct kvm_mp_state mp = { .mp_state = index ? KVM_MP_STATE_INIT_RECEIVED
						     : KVM_MP_STATE_RUNNABLE };
	put_tag(&b, 8, &mp, sizeof(mp));
	struct kvm_debugregs dr = { .dr6 = 0xffff0ff0, .dr7 = 0x400 };
	put_tag(&b, 9, &dr, sizeof(dr));
	if (b.oom)
		fail("out of memory");
	fuzz_put_item(items, n, STATE_REC_VCPU, b.data, (uint32_t)b.len);
	buf_free(&b);
}

/* HELLO's text for vm with the given offer. */
static char *hello_text(struct vm *vm, const struct mig_caps *offer)
{
	json_t *h = hello_build(vm, offer);
	char *t = h ? json_dumps(h, JSON_COMPACT) : NULL;
	json_decref(h);
	if (!t)
		fail("hello_build");
	return t;
}

/* Run a writer over a memfd, then read its records back as items. */
struct capture {
	int fd;
	struct channel *ch;
	struct rec_writer *w;
};

static void capture_open(struct capture *c)
{
	c->fd = fuzz_memfd(NULL, 0);
	c->ch = channel_file_new(c->fd, false, 0, UINT64_MAX, "seed");
	c->w = c->ch ? rec_writer_new(c->ch, MIG_MAX_RECORD) : NULL;
	if (!c->w)
		fail("out of memory");
}

static void capture_items(struct capture *c, uint8_t **items, size_t *n)
{
	if (rec_flush(c->w))
		fail(rec_writer_errmsg(c->w));
	struct channel *rc = channel_file_new(c->fd, false, 0,
					      rec_writer_bytes_out(c->w), "seed");
	struct rec_reader *r = rc ? rec_reader_new(rc, MIG_MAX_RECORD) : NULL;
	uint32_t type, len;
	const uint8_t *p;
	if (!r)
		fail("out of memory");
	while (!rec_read(r, &type, &p, &len))
		fuzz_put_item(items, n, type, p, len);
	rec_reader_free(r);
	channel_close(rc);
	rec_writer_free(c->w);
	channel_close(c->ch);
	close(c->fd);
}

/* RAM_PAGES records for a few pages of vm's memory (some data, one
 * never-touched page sent as zero), through ram_encode in encoding enc. */
static void ram_items_enc(struct vm *vm, uint32_t round, uint64_t base,
			  unsigned enc, uint8_t **items, size_t *n)
{
	struct capture c;
	struct ram_batch b = { .round = round };
	struct ram_counts counts = { 0 };
	struct ram_encoder e;
	char err[ERR_MAX];
	for (unsigned i = 0; i < 2; i++) {
		uint8_t *hva = memory_gpa_to_hva(&vm->mem, base + i * 4096ULL, 4096);
		if (!hva)
			fail("seed page outside memory");
		memset(hva, 0x40 + (int)i, 64);
		b.desc[b.n++] = base + i * 4096ULL;
	}
	b.desc[b.n++] = (base + 2 * 4096ULL) | MIG_PAGE_ZERO;
	if (ram_encoder_init(&e, ram_encoding_get(enc), RAM_ZSTD_LEVEL_DEFAULT, err))
		fail(err);
	capture_open(&c);
	if (ram_encode(c.w, &e, &vm->mem, &b, &counts))
		fail(rec_writer_errmsg(c.w));
	capture_items(&c, items, n);
	ram_encoder_free(&e);
}

/*
 * RAM_PAGES with deltas, as a source with xbzrle sends them: a few pages
 * in round 1 (misses: whole, and cached), then changed in places and sent
 * again in round 2 (deltas: a counter, a stretch, an unchanged page, a
 * page changed past the limit that goes whole), in encoding enc.
 */
static void delta_items(struct vm *vm, uint64_t base, unsigned enc,
			uint8_t **items, size_t *n)
{
	struct capture c;
	struct delta_cache cache;
	struct ram_counts counts = { 0 };
	struct ram_encoder e;
	char err[ERR_MAX];
	if (delta_cache_init(&cache, 1 << 20, memory_npages(&vm->mem), err) ||
	    ram_encoder_init(&e, ram_encoding_get(enc), RAM_ZSTD_LEVEL_DEFAULT, err) ||
	    ram_encoder_use_deltas(&e, &cache, err))
		fail(err);
	capture_open(&c);
	for (uint32_t round = 1; round <= 2; round++) {
		struct ram_batch b = { .round = round };
		for (unsigned i = 0; i < 4; i++) {
			uint8_t *hva = memory_gpa_to_hva(&vm->mem, base + i * 4096ULL, 4096);
			if (!hva)
				fail("seed page outside memory");
			if (round == 1)
				for (unsigned k = 0; k < 4096; k++)
					hva[k] = (uint8_t)(k * 7 + i);
			else if (i == 0)
				hva[100]++;
			else if (i == 1)
				memset(hva + 1000, 0xee, 200);
			else if (i == 3)
				for (unsigned k = 0; k < 4096; k++)
					hva[k] = (uint8_t)~hva[k];
			b.desc[b.n++] = base + i * 4096ULL;
		}
		if (ram_encode(c.w, &e, &vm->mem, &b, &counts))
			fail(rec_writer_errmsg(c.w));
	}
	if (counts.delta_pages != 3 || counts.delta_overflow != 1)
		fail("the delta seed did not come out as planned");
	capture_items(&c, items, n);
	ram_encoder_free(&e);
	delta_cache_free(&cache);
}

static void ram_items(struct vm *vm, uint32_t round, uint64_t base,
		      uint8_t **items, size_t *n)
{
	ram_items_enc(vm, round, base, RAM_ENC_RAW, items, n);
}

/* The raw preamble of this ferry (version 2, MAIN, a fixed session id). */
static void preamble(uint8_t **out, size_t *n)
{
	static const uint8_t session[MIG_SESSION_ID_LEN] = {
		0x5e, 0x55, 0x10, 0x4, 0xf0, 0x0d, 0xca, 0xfe,
		1, 2, 3, 4, 5, 6, 7, 8 };
	struct capture c;
	capture_open(&c);
	mig_preamble_write(c.w, MIG_ROLE_MAIN, session);
	if (rec_flush(c.w))
		fail(rec_writer_errmsg(c.w));
	*n = (size_t)rec_writer_bytes_out(c.w);
	*out = malloc(*n);
	if (!*out || pread(c.fd, *out, *n, 0) != (ssize_t)*n)
		fail("preamble");
	rec_writer_free(c.w);
	channel_close(c.ch);
	close(c.fd);
}

/* ---- the corpora -------------------------------------------------------- */

static void seed_hello(struct vm *vm, struct vm *vm_big)
{
	struct mig_caps offer;
	mig_caps_default(&offer);
	char *t = hello_text(vm, &offer);
	put_file("hello", "hello-default", t, strlen(t), NULL, 0);
	free(t);
	offer.mandatory = 1u << MIG_CAP_COMPRESSION | 1u << MIG_CAP_TLS;
	offer.tls = true;
	offer.channels = 4;
	offer.postcopy = true;
	t = hello_text(vm_big, &offer);
	put_file("hello", "hello-big-mandatory", t, strlen(t), NULL, 0);
	free(t);
	mig_caps_default(&offer);
	json_t *acc = mig_caps_accept_json(&offer);
	t = acc ? json_dumps(acc, JSON_COMPACT) : NULL;
	json_decref(acc);
	if (!t)
		fail("accept");
	put_file("hello", "accept-default", t, strlen(t), NULL, 0);
	free(t);
}

/* A whole stream's items after the preamble: HELLO, round 0, round 1,
 * the state, STATE_END, COMMIT. */
static void stream_items(struct vm *vm, bool with_hello, uint8_t **items,
			 size_t *n)
{
	if (with_hello) {
		struct mig_caps offer;
		mig_caps_default(&offer);
		char *t = hello_text(vm, &offer);
		fuzz_put_item(items, n, MIG_REC_HELLO, t, (uint32_t)strlen(t));
		free(t);
	}
	ram_items(vm, 0, 0x100000, items, n);
	fuzz_put_item(items, n, MIG_REC_ROUND_END, NULL, 0);
	ram_items(vm, 1, 0x101000, items, n);
	fuzz_put_item(items, n, MIG_REC_ROUND_END, NULL, 0);
	device_items(vm, items, n);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_item(i, items, n);
	fuzz_put_item(items, n, MIG_REC_STATE_END, NULL, 0);
	fuzz_put_item(items, n, MIG_REC_COMMIT, NULL, 0);
}

static void seed_streams(struct vm *vm, struct vm *vm_big)
{
	uint8_t *items = NULL, *pre, mode;
	size_t n = 0, plen;

	/* stream: the records after ACCEPT. */
	stream_items(vm, false, &items, &n);
	mode = 0;
	put_file("stream", "stream-8M-1vcpu", &mode, 1, items, n);
	free(items);
	items = NULL;
	n = 0;
	ram_items(vm_big, 0, (4ULL << 30) + 0x2000, &items, &n);
	ram_items(vm_big, 0, (3ULL << 30) - 0x4000, &items, &n);
	fuzz_put_item(&items, &n, MIG_REC_ROUND_END, NULL, 0);
	device_items(vm_big, &items, &n);
	for (unsigned i = 0; i < vm_big->nvcpus; i++)
		vcpu_item(i, &items, &n);
	fuzz_put_item(&items, &n, MIG_REC_STATE_END, NULL, 0);
	mode = 3;
	put_file("stream", "stream-3G-4vcpu", &mode, 1, items, n);
	free(items);
	/* Compressed pages: zstd and lz4 records. */
	items = NULL;
	n = 0;
	ram_items_enc(vm, 0, 0x200000, RAM_ENC_ZSTD, &items, &n);
	ram_items_enc(vm, 1, 0x300000, RAM_ENC_LZ4, &items, &n);
	fuzz_put_item(&items, &n, MIG_REC_ROUND_END, NULL, 0);
	mode = 0;
	put_file("stream", "stream-compressed", &mode, 1, items, n);
	free(items);
	/* Deltas (xbzrle): raw, then zstd and lz4 records. */
	items = NULL;
	n = 0;
	delta_items(vm, 0x400000, RAM_ENC_RAW, &items, &n);
	delta_items(vm, 0x500000, RAM_ENC_ZSTD, &items, &n);
	delta_items(vm, 0x600000, RAM_ENC_LZ4, &items, &n);
	fuzz_put_item(&items, &n, MIG_REC_ROUND_END, NULL, 0);
	put_file("stream", "stream-xbzrle", &mode, 1, items, n);
	free(items);
	/* Post-copy: pushed and requested pages, a request, the end. */
	{
		struct capture c;
		uint8_t page[4096];
		struct pcp_range rq[2] = { { 0x100000, 4 }, { 0x7ff000, 1 } };
		memset(page, 0x5a, sizeof(page));
		capture_open(&c);
		pcp_put_page(c.w, 0x104000, page, false);
		pcp_put_page(c.w, 0x105000, page, true);
		memset(page, 0, sizeof(page));
		pcp_put_page(c.w, 0x106000, page, false);
		pcp_put_request(c.w, rq, 2);
		rec_put(c.w, MIG_REC_PUSH_END, NULL, 0);
		/* the switch's list of missing pages */
		struct pcp_run runs[2] = { { 0x100000, 16 }, { 0x7ff000, 1 } };
		pcp_put_missing(c.w, runs, 2);
		items = NULL;
		n = 0;
		capture_items(&c, &items, &n);
		mode = 0;
		put_file("stream", "stream-postcopy", &mode, 1, items, n);
		free(items);
	}
	/* QEMU's exit convention: one more device (isa-debug-exit). */
	struct vm *vm_dbg = fuzz_machine(8u << 20, 1, true);
	items = NULL;
	n = 0;
	stream_items(vm_dbg, false, &items, &n);
	mode = 4;
	put_file("stream", "stream-isa-debug-exit", &mode, 1, items, n);
	free(items);
	vm_destroy(vm_dbg);

	/* incoming: the preamble raw, then HELLO and the rest. */
	items = NULL;
	n = 0;
	stream_items(vm, true, &items, &n);
	preamble(&pre, &plen);
	uint8_t *in = malloc(1 + plen);
	if (!in)
		fail("out of memory");
	in[0] = (uint8_t)plen;
	memcpy(in + 1, pre, plen);
	put_file("incoming", "incoming-whole", in, 1 + plen, items, n);
	/* A version 1 source: magic and version only. */
	uint32_t v1 = 1;
	in[0] = 12;
	memcpy(in + 1 + 8, &v1, 4);
	put_file("incoming", "incoming-v1", in, 13, items, n);

	/* record: the same stream framed, preamble first (mode 1). */
	size_t flen;
	uint8_t *framed = fuzz_frame(pre, plen, items, n, MIG_MAX_RECORD, &flen);
	mode = 1;
	put_file("record", "record-stream", &mode, 1, framed, flen);
	mode = 5; /* and peeking at each record first */
	put_file("record", "record-stream-peek", &mode, 1, framed, flen);
	free(framed);
	/* An optional unknown record, and a small limit (mode 2). */
	uint8_t *small = NULL;
	size_t sn = 0;
	fuzz_put_item(&small, &sn, 0x8042, "later", 5);
	fuzz_put_item(&small, &sn, MIG_REC_ROUND_END, NULL, 0);
	fuzz_put_item(&small, &sn, MIG_REC_REFUSE, "no", 2);
	framed = fuzz_frame(NULL, 0, small, sn, MIG_MAX_RECORD, &flen);
	mode = 2;
	put_file("record", "record-small", &mode, 1, framed, flen);
	free(framed);
	free(small);
	free(in);
	free(pre);
	free(items);
}

static void seed_snapshot(struct vm *vm2m)
{
	uint8_t *items = NULL;
	size_t n = 0;
	json_t *cfg = machine_desc_build(vm2m);
	char *t = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
	json_decref(cfg);
	if (!t)
		fail("machine_desc_build");
	fuzz_put_item(&items, &n, SNAP_REC_CONFIG, t, (uint32_t)strlen(t));
	free(t);
	device_items(vm2m, &items, &n);
	for (unsigned i = 0; i < vm2m->nvcpus; i++)
		vcpu_item(i, &items, &n);
	fuzz_put_item(&items, &n, SNAP_REC_END, NULL, 0);

	size_t flen;
	uint8_t *framed = fuzz_frame(NULL, 0, items, n, SNAP_MAX_RECORD, &flen);
	struct snap_header h = { 0 };
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.header_size = sizeof(h);
	h.ram_size = vm2m->mem.ram_size;
	h.state_offset = sizeof(h);
	h.state_length = flen;
	h.mem_offset = (sizeof(h) + flen + 4095) & ~4095ULL;
	h.nrecords = 0;
	h.header_crc = crc32c(0, &h, offsetof(struct snap_header, header_crc));

	/* Mode 0: the file as snapshot_save lays it out (the memory area, a
	 * hole, is added by the target). */
	uint8_t *buf = malloc(1 + sizeof(h));
	if (!buf)
		fail("out of memory");
	buf[0] = 0;
	memcpy(buf + 1, &h, sizeof(h));
	put_file("snapshot", "snapshot-file", buf, 1 + sizeof(h), framed, flen);
	/* Mode 7: the records as items, checksums and layout fixed. */
	buf[0] = 7;
	put_file("snapshot", "snapshot-items", buf, 1 + sizeof(h), items, n);
	buf[0] = 15;
	put_file("snapshot", "snapshot-items-memory", buf, 1 + sizeof(h), items, n);
	free(buf);
	free(framed);
	free(items);
}

static void seed_control(void)
{
	static const struct { const char *name, *text; } seeds[] = {
		{ "session",
		  "{\"execute\": \"qmp_capabilities\"}\n"
		  "{\"execute\": \"query-status\", \"id\": 1}\n"
		  "{\"execute\": \"query-commands\", \"id\": \"two\"}\n"
		  "{\"execute\": \"query-vm\"}\n{\"execute\": \"query-migrate\"}\n"
		  "{\"execute\": \"query-migrate-parameters\"}\n" },
		{ "vm-commands",
		  "{\"execute\": \"stop\"}{\"execute\": \"cont\", \"arguments\": {\"force\": true}}"
		  "{\"execute\": \"snapshot-save\", \"arguments\": {\"path\": \"/nonexistent/x\"}}\r\n"
		  "{\"execute\": \"x-guest-memory-write\", \"arguments\": {\"gpa\": 4096, \"hex\": \"deadBEEF\"}}\n"
		  "{\"execute\": \"query-memory-digest\"}\n" },
		{ "migrate",
		  "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:1\", "
		  "\"downtime-ms\": 300, \"max-bandwidth\": 1000000, \"max-rounds\": 5, "
		  "\"timeout-s\": 60, \"switchover\": \"abort\", \"idle-timeout-ms\": 5000, "
		  "\"x-keep-source\": false, \"x-fault\": \"round1\", "
		  "\"multifd-compression\": \"zstd\", \"multifd-zstd-level\": 3}}\n"
		  "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"downtime-limit\": 100, "
		  "\"downtime-ms\": 100, \"switchover\": \"switchover\"}}\n"
		  "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"tcp::4444\"}}\n"
		  "{\"execute\": \"migrate-cancel\"}\n" },
		{ "malformed",
		  "hello\n42\n{\"execute\": 1}\n[1,2]\n{\"execute\": \"nope\", \"x\": 1}\n"
		  "{\"execute\": \"stop\", \"arguments\": {\"a\": 1}}\n"
		  "{\"a\": \"\\u00e9\\\"\"}\xff{\"execute\":\"quit\"}\n{\"broken\": \"a\x01\"}\n"
		  "{\"id\": [1, {\"x\": null}], \"execute\": \"query-status\", \"execute\": \"x\"}\n"
		  "\"junk {\" string\n{{{{[[[[]]]]}}}}\n{\"execute\": \"cont\"" },
		{ "capabilities",
		  "{\"execute\": \"query-migrate-capabilities\"}\n"
		  "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "
		  "[{\"capability\": \"xbzrle\", \"state\": true}, "
		  "{\"capability\": \"postcopy-ram\", \"state\": false}]}}\n"
		  "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "
		  "[{\"capability\": \"warp\", \"state\": true}, {\"state\": 1}, 7]}}\n"
		  "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
		  "{\"xbzrle-cache-size\": 268435456}}\n"
		  "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:1\", "
		  "\"xbzrle\": true, \"xbzrle-cache-size\": 4096}}\n" },
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		uint8_t chunk = i == 0 ? 255 : (uint8_t)(7 * i);
		put_file("control", seeds[i].name, &chunk, 1, seeds[i].text,
			 strlen(seeds[i].text));
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen-seeds DIR\n");
		return 2;
	}
	outdir = argv[1];
	mkdir(outdir, 0755);
	fuzz_init();
	struct vm *vm = fuzz_machine(8u << 20, 1, false);
	struct vm *vm2m = fuzz_machine(2u << 20, 2, false);
	struct vm *vm_big = fuzz_machine((3ULL << 30) + (8u << 20), 4, false);
	seed_hello(vm, vm_big);
	seed_streams(vm, vm_big);
	seed_snapshot(vm2m);
	seed_control();
	vm_destroy(vm);
	vm_destroy(vm2m);
	vm_destroy(vm_big);
	printf("gen-seeds: corpus written to %s\n", outdir);
	return 0;
}
