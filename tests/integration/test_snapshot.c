/*
 * Snapshots: save over the control socket, restore in a new process, and
 * the guest goes on as if nothing happened (its counters continue, its
 * timer still ticks, its memory still verifies).  Damaged files are refused
 * with a message that says what is wrong.
 */
#include "harness/harness.h"

#include "harness/wire.h"
#include "snapshot/snapshot_format.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define BOOT_S 60.0

/*
 * KNOWN PRODUCT BUG, seen by every restore test here under build-san:
 * src/vmm/vcpu_state.c, set_msrs() reads m->nmsrs through a
 * `const struct kvm_msrs *` that points into the snapshot's record buffer
 * at an arbitrary (unaligned) offset; UBSan ("member access within
 * misaligned address ... struct kvm_msrs") aborts the restore with exit 66.
 * Fix: memcpy the header (or the whole item) into the aligned copy before
 * reading nmsrs.  With that one change all of these tests pass.
 */

TestSuite(snapshot, H_FIXTURES, .timeout = 180);

/* Counters of query-vm .guest at one moment. */
struct counters {
	uint64_t reports, pages, checks, errors, ticks, uptime, hb, asserts, vcpus;
};

static struct counters read_counters(struct h_vm *vm)
{
	json_t *g = h_guest_info(vm);
	struct counters c = {
#define G(k) (uint64_t)json_integer_value(json_object_get(g, k))
		.reports = G("progress-reports"), .pages = G("pages-written"),
		.checks = G("checks-done"), .errors = G("errors"),
		.ticks = G("ticks"), .uptime = G("uptime-ms"),
		.hb = G("heartbeats"), .asserts = G("asserts"),
		.vcpus = G("vcpus-online"),
#undef G
	};
	json_decref(g);
	return c;
}

#define LLU(x) ((unsigned long long)(x))

/*
 * After a restore: query-vm first shows exactly what was saved (the test
 * device's state travels in the snapshot), then new reports arrive whose
 * counters continue from there.
 */
static void expect_continues(struct h_vm *vm, const struct counters *saved,
			     bool busy)
{
	struct counters now = read_counters(vm);
	h_assert(now.reports >= saved->reports && now.pages >= saved->pages &&
		 now.uptime >= saved->uptime,
		 "restored VM reports older counters: reports %llu<%llu or "
		 "pages %llu<%llu or uptime %llu<%llu", LLU(now.reports),
		 LLU(saved->reports), LLU(now.pages), LLU(saved->pages),
		 LLU(now.uptime), LLU(saved->uptime));
	h_wait_guest_ge(vm, "progress-reports", saved->reports + 2, 15);
	now = read_counters(vm);
	h_assert(now.uptime > saved->uptime,
		 "uptime-ms went from %llu to %llu across the restore",
		 LLU(saved->uptime), LLU(now.uptime));
	/* Not a jump either: the guest's clock paused with the VM.  Two
	 * reports take ~2 s; allow for slow boots of the restored process. */
	h_assert(now.uptime < saved->uptime + 30000,
		 "uptime-ms jumped from %llu to %llu across the restore",
		 LLU(saved->uptime), LLU(now.uptime));
	h_assert(now.ticks > saved->ticks,
		 "ticks %llu -> %llu: no timer interrupts after the restore",
		 LLU(saved->ticks), LLU(now.ticks));
	if (busy)
		h_assert(now.pages > saved->pages, "pages-written %llu -> %llu: "
			 "the workload does not run after the restore",
			 LLU(saved->pages), LLU(now.pages));
	h_assert(now.errors == 0 && now.asserts == 0,
		 "errors %llu asserts %llu after the restore", LLU(now.errors),
		 LLU(now.asserts));
	h_assert(now.vcpus == saved->vcpus, "vcpus-online %llu -> %llu",
		 LLU(saved->vcpus), LLU(now.vcpus));
	/* ticks keep increasing: not only one pending interrupt */
	uint64_t t = now.ticks;
	h_wait_progress(vm, 1, 10);
	h_assert(h_guest_u64(vm, "ticks") > t, "ticks stopped after the restore");
}

/* Save and end the source; returns the snapshot's path. */
static const char *save_and_quit(struct h_vm *vm, const char *name)
{
	const char *snap = h_snapshot(vm, name);
	json_decref(h_qmp_ok(vm, "{\"execute\":\"quit\"}"));
	int rc = h_vm_wait(vm, 30);
	h_assert(rc == 0, "source exited %d after quit", rc);
	return snap;
}

/*
 * Boot a guest, let it run, read its counters, save, quit.  With
 * @stop_first the VM is stopped before, so the counters read are exactly
 * those in the snapshot; without, the save happens while the guest runs
 * (as a migration would) and the counters read are a lower bound.
 */
static const char *boot_run_save(const char *cmdline, const char *vcpus,
				 struct counters *saved, unsigned run_reports,
				 bool stop_first)
{
	struct h_vm *src = h_boot("src", H_CONTROL | H_HEARTBEAT, cmdline,
				  "--vcpus", vcpus, NULL);
	h_wait_ready(src, BOOT_S);
	h_wait_progress(src, run_reports, 20);
	if (stop_first)
		json_decref(h_qmp_ok(src, "{\"execute\":\"stop\"}"));
	*saved = read_counters(src);
	return save_and_quit(src, "a.snap");
}

Test(snapshot, idle_guest_across_processes)
{
	struct counters saved;
	const char *snap = boot_run_save("workload=idle heartbeat_us=1000", "1",
					 &saved, 2, true);
	struct h_vm *dst = h_restore("dst", H_CONTROL | H_HEARTBEAT, snap, NULL);
	h_assert(h_wait_for(h_control_alive(dst) || h_vm_exited(dst), 30) &&
		 !h_vm_exited(dst), "restored VM did not come up");
	char *st = h_status(dst);
	h_assert(!strcmp(st, "running"), "restored VM is %s", st);
	free(st);
	expect_continues(dst, &saved, false);
	h_assert(h_guest_u64(dst, "heartbeats") > saved.hb,
		 "heartbeat counter did not move after the restore");
	h_assert(h_wait_for(h_file_size(dst->heartbeat) > 500, 5),
		 "heartbeat file of the restored VM does not grow");
	h_assert(h_wait_serial(dst, "progress: t=", 10),
		 "no progress lines on the restored VM's console");
}

Test(snapshot, busy_verifying_guest_across_processes)
{
	struct counters saved;
	const char *snap = boot_run_save(
		"workload=dirty wss=32M verify=1 verify_ms=200 seconds=7", "1",
		&saved, 2, false);
	h_assert(saved.pages > 0 && saved.checks > 0, "no work before the save");
	struct h_vm *dst = h_restore("dst", H_CONTROL, snap, NULL);
	expect_continues(dst, &saved, true);
	int rc = h_vm_wait(dst, 60);
	if (rc != 0)
		h_fail("restored guest exited %d: its final verify failed", rc);
	h_assert(!h_file_contains(dst->serial, "VERIFY FAIL"), "VERIFY FAIL");
}

Test(snapshot, four_vcpu_busy_guest_across_processes)
{
	struct counters saved;
	const char *snap = boot_run_save(
		"workload=dirty wss=64M verify=1 verify_ms=300 seconds=7", "4",
		&saved, 2, false);
	h_assert(saved.vcpus == 4, "vcpus-online %llu before the save",
		 LLU(saved.vcpus));
	struct h_vm *dst = h_restore("dst", H_CONTROL, snap, NULL);
	json_t *r = h_qmp_ok(dst, "{\"execute\":\"query-vm\"}");
	h_assert(json_integer_value(json_object_get(r, "vcpus")) == 4,
		 "restored VM has %lld vCPUs",
		 (long long)json_integer_value(json_object_get(r, "vcpus")));
	json_decref(r);
	expect_continues(dst, &saved, true);
	int rc = h_vm_wait(dst, 60);
	if (rc != 0)
		h_fail("restored 4-vCPU guest exited %d, wanted 0", rc);
}

Test(snapshot, snapshot_of_a_restored_vm)
{
	struct counters first, second;
	const char *a = boot_run_save(
		"workload=dirty wss=16M verify=1 verify_ms=200 seconds=9", "2",
		&first, 1, false);
	struct h_vm *mid = h_restore("mid", H_CONTROL, a, NULL);
	expect_continues(mid, &first, true);
	json_decref(h_qmp_ok(mid, "{\"execute\":\"stop\"}"));
	second = read_counters(mid);
	const char *b = save_and_quit(mid, "b.snap");
	struct h_vm *dst = h_restore("dst", H_CONTROL, b, NULL);
	expect_continues(dst, &second, true);
	int rc = h_vm_wait(dst, 60);
	if (rc != 0)
		h_fail("guest restored twice exited %d, wanted 0", rc);
}

Test(snapshot, save_while_running_keeps_running)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL,
				 "workload=dirty wss=32M verify=1 verify_ms=200 seconds=6",
				 NULL);
	h_wait_ready(vm, BOOT_S);
	h_wait_progress(vm, 1, 10);
	for (int i = 0; i < 2; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d.snap", i);
		h_snapshot(vm, name);
		char *st = h_status(vm);
		h_assert(!strcmp(st, "running"), "status %s after snapshot-save", st);
		free(st);
		uint64_t p = h_guest_u64(vm, "pages-written");
		h_wait_progress(vm, 1, 10);
		h_assert(h_guest_u64(vm, "pages-written") > p,
			 "no progress after snapshot-save");
	}
	int rc = h_vm_wait(vm, 40);
	if (rc != 0)
		h_fail("guest exited %d after two saves, wanted 0", rc);
}

Test(snapshot, save_while_paused_stays_paused)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL, "workload=dirty wss=8M", NULL);
	h_wait_ready(vm, BOOT_S);
	json_decref(h_qmp_ok(vm, "{\"execute\":\"stop\"}"));
	h_snapshot(vm, "p.snap");
	char *st = h_status(vm);
	h_assert(!strcmp(st, "paused"), "status %s after saving a paused VM", st);
	free(st);
	json_decref(h_qmp_ok(vm, "{\"execute\":\"cont\"}"));
	h_wait_progress(vm, 1, 10);
}

/* ---- damaged files (no test guest needed) ------------------------------- */

/* A small snapshot of the halting hand-made guest. */
static const char *halt_snapshot(void)
{
	struct h_vm *vm = h_spawn("src", H_CONTROL, "run", "--kernel",
				  h_image_halt(), "--memory", "16M", NULL);
	h_assert(h_wait_for(h_control_alive(vm) || h_vm_exited(vm), 20) &&
		 !h_vm_exited(vm), "control socket never came up");
	const char *snap = h_snapshot(vm, "good.snap");
	h_vm_stop(vm);
	return snap;
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *d = h_read_file(from, &len);
	h_assert(d, "cannot read %s", from);
	h_write_file(to, d, len);
	free(d);
}

static void patch(const char *path, off_t off, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY);
	h_assert(fd >= 0 && pwrite(fd, data, len, off) == (ssize_t)len,
		 "patching %s", path);
	close(fd);
}

static struct snap_header read_header(const char *path)
{
	struct snap_header h = { 0 };
	int fd = open(path, O_RDONLY);
	h_assert(fd >= 0 && pread(fd, &h, sizeof(h), 0) == sizeof(h), "header");
	close(fd);
	return h;
}

static void expect_restore_fails(const char *snap, const char *needle)
{
	char *err = NULL;
	int rc = h_run(30, NULL, &err, "run", "--restore", snap, "--serial",
		       "none", NULL);
	cr_expect_eq(rc, H_EXIT_VMM, "%s: exit %d, wanted 120; stderr:\n%s",
		     snap, rc, err);
	cr_expect(strcasestr(err, needle) != NULL, "%s: stderr lacks \"%s\":\n%s",
		  snap, needle, err);
	free(err);
}

Test(snapshot, halted_vm_round_trip)
{
	const char *snap = halt_snapshot();
	struct snap_header h = read_header(snap);
	h_assert(!memcmp(h.magic, SNAP_MAGIC, 8), "magic");
	h_assert(h.version == SNAP_VERSION, "version %u", h.version);
	h_assert(h.ram_size == 16u << 20, "ram_size %llu", LLU(h.ram_size));
	h_assert(h_file_size(snap) == (off_t)(h.mem_offset + h.ram_size),
		 "file size");
	struct h_vm *vm = h_restore("dst", H_CONTROL, snap, NULL);
	h_assert(h_wait_for(h_control_alive(vm) || h_vm_exited(vm), 20) &&
		 !h_vm_exited(vm), "restored VM did not come up");
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-vm\"}");
	h_assert(json_integer_value(json_object_get(r, "memory")) == 16 << 20,
		 "memory after restore");
	json_decref(r);
	char *st = h_status(vm);
	h_assert(!strcmp(st, "running"), "status %s", st);
	free(st);
	/* The restored VM can be saved again, and that file restores too. */
	const char *again = h_snapshot(vm, "again.snap");
	h_vm_stop(vm);
	struct h_vm *vm2 = h_restore("dst2", H_CONTROL, again, NULL);
	h_assert(h_wait_for(h_control_alive(vm2) || h_vm_exited(vm2), 20) &&
		 !h_vm_exited(vm2), "twice-restored VM did not come up");
	json_decref(h_qmp_ok(vm2, "{\"execute\":\"quit\"}"));
	cr_expect_eq(h_vm_wait(vm2, 20), 0);
}

Test(snapshot, restore_paused)
{
	const char *snap = halt_snapshot();
	struct h_vm *vm = h_restore("dst", H_CONTROL, snap, "--paused", NULL);
	h_assert(h_wait_for(h_control_alive(vm) || h_vm_exited(vm), 20) &&
		 !h_vm_exited(vm), "restored VM did not come up");
	char *st = h_status(vm);
	h_assert(strcmp(st, "running"), "restored with --paused but %s", st);
	free(st);
	json_decref(h_qmp_ok(vm, "{\"execute\":\"cont\"}"));
	st = h_status(vm);
	h_assert(!strcmp(st, "running"), "after cont: %s", st);
	free(st);
}

Test(snapshot, corrupt_wrong_magic)
{
	const char *good = halt_snapshot(), *bad = h_path("magic.snap");
	copy_file(good, bad);
	patch(bad, 0, "NOTFERRY", 8);
	expect_restore_fails(bad, "magic");
}

Test(snapshot, corrupt_wrong_version)
{
	const char *good = halt_snapshot(), *bad = h_path("version.snap");
	copy_file(good, bad);
	uint32_t v = SNAP_VERSION + 41;
	patch(bad, offsetof(struct snap_header, version), &v, 4);
	expect_restore_fails(bad, "version");
}

Test(snapshot, corrupt_header_field)
{
	const char *good = halt_snapshot(), *bad = h_path("hdr.snap");
	copy_file(good, bad);
	uint32_t n = 12345;
	patch(bad, offsetof(struct snap_header, nrecords), &n, 4);
	expect_restore_fails(bad, "checksum");
}

Test(snapshot, corrupt_truncated)
{
	const char *good = halt_snapshot(), *bad = h_path("trunc.snap");
	copy_file(good, bad);
	h_assert(truncate(bad, h_file_size(bad) / 2) == 0, "truncate");
	expect_restore_fails(bad, "truncated");
	/* shorter than a header */
	h_assert(truncate(bad, 30) == 0, "truncate");
	expect_restore_fails(bad, "too short");
	h_assert(truncate(bad, 0) == 0, "truncate");
	expect_restore_fails(bad, "too short");
}

Test(snapshot, corrupt_flipped_byte_in_each_record)
{
	const char *good = halt_snapshot();
	struct snap_header h = read_header(good);
	h_assert(h.nrecords >= 3, "only %u records", h.nrecords);
	/* Walk the records; flip one payload byte in each, in its own copy. */
	size_t len;
	char *img = h_read_file(good, &len);
	uint64_t off = h.state_offset;
	for (unsigned i = 0; i < h.nrecords; i++) {
		uint32_t type, rlen;
		memcpy(&type, img + off, 4);
		memcpy(&rlen, img + off + 4, 4);
		h_assert(off + 12 + rlen <= h.state_offset + h.state_length,
			 "record %u runs past the state area", i);
		char name[32];
		snprintf(name, sizeof(name), "flip%u.snap", i);
		const char *bad = h_path(name);
		copy_file(good, bad);
		/* a payload byte if there is one, else the CRC itself */
		off_t at = rlen ? (off_t)(off + 8 + rlen / 2) : (off_t)(off + 8);
		uint8_t b = (uint8_t)img[at] ^ 0x20;
		patch(bad, at, &b, 1);
		expect_restore_fails(bad, "checksum mismatch");
		/* and the length field: truncated or checksum, never a crash */
		snprintf(name, sizeof(name), "len%u.snap", i);
		bad = h_path(name);
		copy_file(good, bad);
		uint32_t big = rlen + 0x10000;
		patch(bad, off + 4, &big, 4);
		char *err = NULL;
		int rc = h_run(30, NULL, &err, "run", "--restore", bad,
			       "--serial", "none", NULL);
		cr_expect_eq(rc, H_EXIT_VMM, "record %u with a bad length: exit %d;"
			     " stderr:\n%s", i, rc, err);
		cr_expect(strstr(err, "truncated") || strstr(err, "checksum"),
			  "record %u with a bad length: %s", i, err);
		free(err);
		off += 12 + rlen;
	}
	free(img);
}

/* ---- state that lies (issue 9): refused before it reaches KVM ------------ */

/* Rewrite every state record of @path through @edit, then fix each
 * record's checksum: what is left wrong is the content alone. */
static void edit_records(const char *path,
			 void (*edit)(uint32_t type, uint8_t *payload, uint32_t len))
{
	struct snap_header h = read_header(path);
	size_t len;
	uint8_t *img = (uint8_t *)h_read_file(path, &len);
	h_assert(img, "cannot read %s", path);
	uint64_t off = h.state_offset;
	for (unsigned i = 0; i < h.nrecords; i++) {
		uint32_t type, rlen;
		memcpy(&type, img + off, 4);
		memcpy(&rlen, img + off + 4, 4);
		h_assert(off + 12 + rlen <= h.state_offset + h.state_length,
			 "record %u runs past the state area", i);
		edit(type, img + off + 8, rlen);
		uint32_t crc = w_crc32c(0, img + off, 8 + (size_t)rlen);
		memcpy(img + off + 8 + rlen, &crc, 4);
		off += 12 + rlen;
	}
	h_write_file(path, img, len);
	free(img);
}

#define REC_DEVICE 2
#define REC_VCPU   3

/* The device record named @name: its state, after name and version. */
static uint8_t *device_state(uint32_t type, uint8_t *p, uint32_t len,
			     const char *name)
{
	uint32_t n;
	if (type != REC_DEVICE || len < 4)
		return NULL;
	memcpy(&n, p, 4);
	if (n != strlen(name) || len < 8 + n || memcmp(p + 4, name, n))
		return NULL;
	return p + 4 + n + 4;
}

/* The vCPU record's item with @tag (vcpu_state.c: u32 tag, u32 length). */
static uint8_t *vcpu_item(uint32_t type, uint8_t *p, uint32_t len,
			  uint32_t tag)
{
	if (type != REC_VCPU)
		return NULL;
	for (uint32_t at = 8; at + 8 <= len;) {
		uint32_t t, l;
		memcpy(&t, p + at, 4);
		memcpy(&l, p + at + 4, 4);
		if (t == tag)
			return p + at + 8;
		at += 8 + l;
	}
	return NULL;
}

static void pit_mode_9(uint32_t type, uint8_t *p, uint32_t len)
{
	uint8_t *s = device_state(type, p, len, "pit");
	if (s)
		s[offsetof(struct kvm_pit_state2, channels[0].mode)] = 9;
}

static void unknown_msr(uint32_t type, uint8_t *p, uint32_t len)
{
	uint8_t *m = vcpu_item(type, p, len, 5 /* msrs */);
	uint32_t idx = 0x0badcafe;
	if (m)
		memcpy(m + offsetof(struct kvm_msrs, entries[0].index), &idx, 4);
}

static void cr0_reserved(uint32_t type, uint8_t *p, uint32_t len)
{
	uint8_t *s = vcpu_item(type, p, len, 2 /* sregs */);
	uint64_t cr0;
	if (!s)
		return;
	memcpy(&cr0, s + offsetof(struct kvm_sregs, cr0), 8);
	cr0 |= 1u << 20;
	memcpy(s + offsetof(struct kvm_sregs, cr0), &cr0, 8);
}

static void ioapic_moved(uint32_t type, uint8_t *p, uint32_t len)
{
	uint8_t *s = device_state(type, p, len, "irqchip");
	uint64_t base = 0x1000;
	if (s)
		memcpy(s + 2 * sizeof(struct kvm_irqchip) +
		       offsetof(struct kvm_irqchip, chip.ioapic.base_address),
		       &base, 8);
}

/* A snapshot whose state was edited, checksums fixed: each lie is named. */
Test(snapshot, lying_state_is_refused_naming_the_field)
{
	static const struct {
		void (*edit)(uint32_t, uint8_t *, uint32_t);
		const char *needle;
	} cases[] = {
		{ pit_mode_9, "pit: channel 0 mode is 9" },
		{ unknown_msr, "MSR 0xbadcafe is not in this host's list" },
		{ cr0_reserved, "has reserved bits 0x100000" },
		{ ioapic_moved, "ioapic: base_address 0x1000" },
	};
	const char *good = halt_snapshot();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "lie%zu.snap", i);
		const char *bad = h_path(name);
		copy_file(good, bad);
		edit_records(bad, cases[i].edit);
		expect_restore_fails(bad, cases[i].needle);
	}
}

/* A hand-made snapshot of a 16 MiB machine whose configuration is
 * @config: header, CONFIG, END, sparse memory.  Judged before KVM. */
static const char *crafted_snapshot(const char *name, const char *config,
				    size_t config_len)
{
	struct w_buf recs = { 0 };
	w_put_record(&recs, 1 /* CONFIG */, config, (uint32_t)config_len);
	w_put_record(&recs, 4 /* END */, NULL, 0);
	struct snap_header h = { .version = SNAP_VERSION,
				 .header_size = sizeof(h), .ram_size = 16u << 20,
				 .state_offset = sizeof(h), .state_length = recs.len,
				 .nrecords = 2 };
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.mem_offset = (sizeof(h) + recs.len + 4095) & ~4095ULL;
	h.header_crc = w_crc32c(0, &h, offsetof(struct snap_header, header_crc));
	const char *path = h_path(name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	h_assert(fd >= 0 && pwrite(fd, &h, sizeof(h), 0) == sizeof(h) &&
		 pwrite(fd, recs.p, recs.len, sizeof(h)) == (ssize_t)recs.len &&
		 ftruncate(fd, (off_t)(h.mem_offset + h.ram_size)) == 0,
		 "writing %s", path);
	close(fd);
	w_free(&recs);
	return path;
}

#define CONFIG_16M(cpuid) \
	"{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096," \
	" \"slots\": [{\"gpa\": 0, \"size\": 16777216}]," \
	" \"vcpu-state-version\": 1, \"devices\": [], \"cpuid\": " cpuid "}"
#define LEAF1 "{\"function\": 1, \"index\": 0, \"flags\": 0, \"eax\": 591594," \
	" \"ebx\": 2048, \"ecx\": 0, \"edx\": 0}"

Test(snapshot, crafted_config_with_a_hidden_cpuid_leaf_is_refused)
{
	static const char cfg[] = CONFIG_16M(
		"[{\"function\": 1, \"index\": 1, \"flags\": 0, \"eax\": 591594,"
		" \"ebx\": 0, \"ecx\": 4294967295, \"edx\": 4294967295}, " LEAF1 "]");
	expect_restore_fails(crafted_snapshot("cpuid.snap", cfg, sizeof(cfg) - 1),
			     "leaf 0x1 has no sub-leaves but says index 1");
}

Test(snapshot, crafted_config_larger_than_a_machine_description_is_refused)
{
	static const char cfg[] = CONFIG_16M("[" LEAF1 "]");
	size_t len = 100 << 10;
	char *big = malloc(len);
	memset(big, ' ', len);
	memcpy(big, cfg, sizeof(cfg) - 1);
	expect_restore_fails(crafted_snapshot("big.snap", big, len),
			     "configuration record of 102400 bytes");
	free(big);
}

Test(snapshot, not_a_snapshot)
{
	expect_restore_fails(h_dir(), "not a regular file");
	const char *p = h_path("text.snap");
	char junk[8192];
	memset(junk, 'x', sizeof(junk));
	h_write_file(p, junk, sizeof(junk));
	expect_restore_fails(p, "magic");
}

/*
 * A restored guest learns it was restored (the resume generation on its
 * test device went from 0 to 1 when the state was loaded) and checks all
 * its pages at once: periodic passes are off here, so the only pass is
 * the one the restore asked for.  Its heartbeat goes on where the saved
 * machine stopped: the two heartbeat files read as one sequence.
 */
Test(snapshot, restored_guest_checks_all_its_pages_at_once)
{
	struct counters saved;
	const char *snap = boot_run_save("workload=dirty wss=16M verify=1 "
					 "verify_ms=1000000 heartbeat_us=1000",
					 "1", &saved, 1, true);
	h_assert(saved.checks == 0, "a pass before the save (%llu)",
		 LLU(saved.checks));
	struct h_vm *dst = h_restore("dst", H_CONTROL | H_HEARTBEAT, snap, NULL);
	h_assert(h_wait_serial(dst, "resume: generation 1 (was 0): full "
			       "verification pass", 20), "no resume line");
	h_assert(h_wait_resume_verified(dst, 30) == 0, "errors after the restore");
	h_assert(h_guest_u64(dst, "resume-generation") == 1, "resume-generation");
	h_assert(h_guest_u64(dst, "checks-done") >= 1, "no pass completed");
	h_assert(h_wait_for(h_file_size(dst->heartbeat) > 200, 10),
		 "no heartbeats from the restored VM");
	struct h_hb_result r;
	h_hb_check_files(&r, h_path("src.hb"), dst->heartbeat, NULL);
	h_assert(r.repeats == 0 && r.gaps == 0, "heartbeats across the "
		 "restore: %llu repeats, %llu gaps (first at beat %zu of %zu)",
		 LLU(r.repeats), LLU(r.gaps), r.first_bad, r.beats);
}

/*
 * A restored VM must not depend on its snapshot file (issue 6): once it
 * runs, the file is rewritten in place and then truncated, and a second
 * snapshot of the restored VM (which reads all of its memory) must work,
 * the guest's own verification must still pass, and that second snapshot
 * must restore.  When restore mapped the file privately, reading a page
 * past the new end killed the VMM with SIGBUS.
 */
Test(snapshot, restored_vm_survives_its_file_truncated_and_rewritten)
{
	struct counters first;
	const char *a = boot_run_save(
		"workload=dirty wss=16M verify=1 verify_ms=200", "1", &first, 1,
		false);
	struct h_vm *mid = h_restore("mid", H_CONTROL, a, NULL);
	expect_continues(mid, &first, true);

	/* Rewrite the memory area with garbage, then cut the file short. */
	int fd = open(a, O_WRONLY);
	h_assert(fd >= 0, "cannot open %s", a);
	static uint8_t junk[1 << 16];
	memset(junk, 0xa5, sizeof(junk));
	off_t size = h_file_size(a);
	for (off_t off = size / 2; off + (off_t)sizeof(junk) <= size;
	     off += 1 << 20)
		h_assert(pwrite(fd, junk, sizeof(junk), off) == sizeof(junk),
			 "rewrite");
	h_assert(ftruncate(fd, 8192) == 0, "truncate");
	close(fd);

	h_snapshot(mid, "b.snap");
	h_assert(!h_vm_exited(mid), "the restored VM died once its file changed");
	struct counters now = read_counters(mid);
	h_wait_guest_ge(mid, "checks-done", now.checks + 2, 20);
	h_assert(h_guest_u64(mid, "errors") == 0,
		 "the guest's memory changed with its snapshot file");
	json_decref(h_qmp_ok(mid, "{\"execute\":\"stop\"}"));
	struct counters second = read_counters(mid);
	const char *b = save_and_quit(mid, "c.snap");
	struct h_vm *dst = h_restore("dst", H_CONTROL, b, NULL);
	expect_continues(dst, &second, true);
	h_vm_stop(dst);
}

/* ---- crafted files: refused before /dev/kvm, so these run anywhere ------- */

/* A snapshot of 16 MiB whose CONFIG record lists @devices (the inside of
 * a JSON list), then END; memory is a hole.  docs/snapshot-format.md. */
static const char *craft_snapshot(const char *name, const char *devices)
{
	char config[2048];
	int len = snprintf(config, sizeof(config),
		"{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096,"
		" \"slots\": [{\"gpa\": 0, \"size\": 16777216}],"
		" \"vcpu-state-version\": 1, \"devices\": [%s],"
		" \"cpuid\": [{\"function\": 0, \"index\": 0, \"flags\": 0,"
		" \"eax\": 13, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}],"
		" \"exit-port\": \"ferry\"}", devices);
	return crafted_snapshot(name, config, (size_t)len);
}

/* Issue 11: a snapshot listing an unknown device, or a device at a state
 * version this ferry lacks, was accepted on restore; the migration
 * destination refuses both.  The same check, in the snapshot's words,
 * before /dev/kvm is opened. */
Test(snapshot, restore_refuses_unknown_devices_and_versions_before_kvm)
{
	static const char *const good =
		"{\"name\": \"uart8250\", \"version\": 1},"
		"{\"name\": \"fw_cfg\", \"version\": 1},"
		"{\"name\": \"irqchip\", \"version\": 1},"
		"{\"name\": \"pit\", \"version\": 1},"
		"{\"name\": \"kvmclock\", \"version\": 1},"
		"{\"name\": \"testdev\", \"version\": 2},"
		"{\"name\": \"heartbeat\", \"version\": 1}";
	char list[1024], *err = NULL;

	snprintf(list, sizeof(list), "%s, {\"name\": \"virtio-gpu\", \"version\": 1}",
		 good);
	const char *snap = craft_snapshot("unknown-dev.snap", list);
	expect_restore_fails(snap, "devices[7].name: device 'virtio-gpu' is unknown to this ferry");
	snap = craft_snapshot("old-uart.snap",
			      "{\"name\": \"uart8250\", \"version\": 7}");
	expect_restore_fails(snap, "devices[0].version: device 'uart8250' state version 7 "
			     "is unknown to this ferry (it has 1)");
	/* In the snapshot's words, and before KVM. */
	h_run(30, NULL, &err, "run", "--restore", snap, "--serial", "none", NULL);
	cr_expect(strstr(err, snap), "the message does not name the file: %s", err);
	cr_expect(!strcasestr(err, "migration") && !strstr(err, "/dev/kvm"), "%s", err);
	free(err);
}

/* Issue 11: snapshot-save to /dev/null answered {} and left a regular
 * file in its place.  A symlink and a FIFO stand in for it here. */
Test(snapshot, save_refuses_special_files_and_symlinks)
{
	h_require_kvm();
	struct h_vm *vm = h_spawn("src", H_CONTROL, "run", "--kernel",
				  h_image_halt(), "--memory", "16M", NULL);
	h_assert(h_wait_for(h_control_alive(vm) || h_vm_exited(vm), 20) &&
		 !h_vm_exited(vm), "control socket never came up");
	const char *fifo = h_path("fifo"), *link = h_path("link.snap");
	h_assert(mkfifo(fifo, 0600) == 0, "mkfifo");
	h_write_file(h_path("target"), "x", 1);
	h_assert(symlink(h_path("target"), link) == 0, "symlink");

	json_t *e = h_qmp_err(vm, "{\"execute\": \"snapshot-save\", "
			      "\"arguments\": {\"path\": \"%s\"}}", fifo);
	const char *desc = json_string_value(json_object_get(e, "desc"));
	h_assert(desc && strstr(desc, "it is a FIFO"), "fifo: %s", desc ? desc : "?");
	json_decref(e);
	e = h_qmp_err(vm, "{\"execute\": \"snapshot-save\", "
		      "\"arguments\": {\"path\": \"%s\"}}", link);
	desc = json_string_value(json_object_get(e, "desc"));
	h_assert(desc && strstr(desc, "it is a symbolic link"), "link: %s",
		 desc ? desc : "?");
	json_decref(e);
	struct stat st;
	h_assert(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
	h_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
	h_assert(h_file_size(h_path("target")) == 1, "the link's target was written");
	h_vm_stop(vm);
}
