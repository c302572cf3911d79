/*
 * Suspend/resume: save the whole machine into one file and bring it back.
 * This is migration to a file - the special case the literature starts
 * from - and shares its rule: every piece of state has one owner (a device
 * or a vCPU) that saves and loads it.
 */
#include "snapshot/snapshot.h"
#include "snapshot/snapshot_format.h"
#include "io/record.h"
#include "vmm/kvm.h"
#include "vmm/machine_desc.h"
#include "util/crc32c.h"
#include "util/extent_copy.h"
#include "util/log.h"
#include "util/zero.h"
#include "vmm/machine_state.h"
#include "util/units.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE GUEST_PAGE_SIZE
#define WRITE_CHUNK (4u << 20)

struct state_ctx {
	struct rec_writer *w;
	uint32_t nrec;
};

static int emit_record(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct state_ctx *sc = ctx;
	rec_put(sc->w, type, data, len);
	sc->nrec++;
	return rec_writer_error(sc->w);
}

/* The state records, through the shared framing, into the file's record
 * area (a channel over the file from `offset` on). */
static int write_state(struct vm *vm, int fd, uint64_t offset,
		       uint64_t *length, uint32_t *nrec, char *err)
{
	struct channel *ch = channel_file_new(fd, false, offset, UINT64_MAX,
					      "the snapshot file");
	struct rec_writer *w = ch ? rec_writer_new(ch, SNAP_MAX_RECORD) : NULL;
	struct state_ctx sc = { .w = w };
	int r;

	if (!w) {
		channel_close(ch);
		return err_set(err, -ENOMEM, "out of memory");
	}
	/* The same description of the machine a migration's HELLO gives:
	 * layout, vCPUs, CPUID, devices and their versions. */
	json_t *cfg = machine_desc_build(vm);
	char *txt = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
	json_decref(cfg);
	if (!txt) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = emit_record(&sc, SNAP_REC_CONFIG, txt, strlen(txt));
	free(txt);
	if (!r)
		r = machine_state_save(vm, emit_record, &sc, err);
	if (!r)
		r = emit_record(&sc, SNAP_REC_END, NULL, 0);
	if (!r)
		r = rec_flush(w);
	if (r && !err[0])
		err_set(err, r, "writing the state: %s", rec_writer_errmsg(w));
	*length = rec_writer_bytes_out(w);
	*nrec = sc.nrec;
out:
	rec_writer_free(w);
	channel_close(ch);
	return r;
}

static int pwrite_all(int fd, const void *data, size_t len, off_t off)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

/* Write the non-zero pages of one slot; runs of them go out in one call.
 * Pages never touched are known from the page tables (memory_populated),
 * so a mostly untouched guest is skipped without reading it. */
static int write_slot(struct vm *vm, unsigned slot, int fd, off_t base,
		      uint64_t *written)
{
	const struct mem_slot *s = &vm->mem.slots[slot];
	size_t npages = s->size / PAGE;
	/* A post-copy destination's missing pages would read as holes. */
	int e = memory_ensure(&vm->mem, s->gpa, s->size);
	if (e)
		return e;
	unsigned char *vec = malloc(npages ? npages : 1);
	if (!vec)
		return -ENOMEM;
	memory_populated(&vm->mem, slot, 0, npages, vec);
	int r = 0;
	size_t run_start = 0, run_len = 0;
	for (size_t i = 0; i <= npages; i++) {
		bool data = i < npages && vec[i] &&
			    !page_is_zero(s->hva + i * PAGE);
		if (data && run_len < WRITE_CHUNK / PAGE) {
			if (!run_len)
				run_start = i;
			run_len++;
			continue;
		}
		if (run_len) {
			r = pwrite_all(fd, s->hva + run_start * PAGE,
				       run_len * PAGE, base + run_start * PAGE);
			if (r)
				break;
			*written += run_len * PAGE;
		}
		run_len = 0;
		if (data) {
			run_start = i;
			run_len = 1;
		}
	}
	free(vec);
	return r;
}

static int write_snapshot(struct vm *vm, int fd, char *err)
{
	struct snap_header h = { 0 };
	uint32_t nrec = 0;
	uint64_t written = 0, state_len = 0;
	int r;

	r = write_state(vm, fd, sizeof(h), &state_len, &nrec, err);
	if (r)
		goto out;
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.header_size = sizeof(h);
	h.ram_size = vm->mem.ram_size;
	h.state_offset = sizeof(h);
	h.state_length = state_len;
	h.mem_offset = (sizeof(h) + state_len + PAGE - 1) & ~(PAGE - 1);
	h.nrecords = nrec;
	h.header_crc = crc32c(0, &h, offsetof(struct snap_header, header_crc));

	/* Size: the memory area is a hole until pages land in it. */
	if (ftruncate(fd, h.mem_offset + h.ram_size) < 0) {
		r = err_set(err, -errno, "cannot size the snapshot file: %s",
			    strerror(errno));
		goto out;
	}
	if ((r = pwrite_all(fd, &h, sizeof(h), 0))) {
		err_set(err, r, "writing the snapshot: %s", strerror(-r));
		goto out;
	}
	off_t base = h.mem_offset;
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		r = write_slot(vm, i, fd, base, &written);
		if (r) {
			err_set(err, r, "writing guest memory: %s", strerror(-r));
			goto out;
		}
		base += vm->mem.slots[i].size;
	}
	char st[UNITS_LEN], wr[UNITS_LEN], all[UNITS_LEN];
	log_info("snapshot: %u records, %s state, %s of %s memory written",
		 nrec, units_size(st, sizeof(st), (double)state_len),
		 units_size(wr, sizeof(wr), (double)written),
		 units_size(all, sizeof(all), (double)vm->mem.ram_size));
out:
	return r;
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m)) return "a directory";
	if (S_ISCHR(m)) return "a character device";
	if (S_ISBLK(m)) return "a block device";
	if (S_ISFIFO(m)) return "a FIFO";
	if (S_ISSOCK(m)) return "a socket";
	if (S_ISLNK(m)) return "a symbolic link";
	return "not a regular file";
}

int snapshot_check_target(const char *path, char *err)
{
	struct stat st;

	if (!path || !*path)
		return err_set(err, -EINVAL, "the snapshot path is empty");
	/* lstat: a symbolic link is refused itself, not followed (the
	 * rename would replace the link, not the file it names). */
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(err, -errno, "cannot save a snapshot to %s: %s",
			       path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return err_set(err, -EINVAL,
			       "cannot save a snapshot to %s: it is %s; a snapshot "
			       "goes to a new path or replaces a regular file",
			       path, file_kind(st.st_mode));
	return 0;
}

int snapshot_save(struct vm *vm, const char *path, char *err)
{
	char tmp[4096];
	int r;

	r = snapshot_check_target(path, err);
	if (r)
		return r;

	switch (vm_get_status(vm)) {
	case VM_STATUS_FINISH_MIGRATE:
	case VM_STATUS_POSTMIGRATE:
	case VM_STATUS_POSTMIGRATE_UNKNOWN: /* it may run elsewhere: no copies */
		return err_set(err, -EBUSY, "the VM is %s; no snapshot now",
			       vm_status_name(vm_get_status(vm)));
	default:
		break;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return err_set(err, -ENAMETOOLONG, "path too long");
	/* A new file renamed over the old one: a reader of the old file (a
	 * restore in progress) keeps seeing it whole. */
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot create %s: %s", tmp,
			       strerror(errno));

	struct timespec t0, t1;
	char took[UNITS_LEN];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	enum vm_status was = vm_hold(vm, VM_STATUS_SAVING);
	/* A migration that held the VM before us may have handed it over
	 * meanwhile: a snapshot now would be a second copy. */
	if (was == VM_STATUS_POSTMIGRATE || was == VM_STATUS_POSTMIGRATE_UNKNOWN)
		r = err_set(err, -EBUSY, "the VM is %s; no snapshot now",
			    vm_status_name(was));
	else
		r = write_snapshot(vm, fd, err);
	vm_release(vm);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	if (close(fd) < 0 && !r)
		r = err_set(err, -errno, "closing %s: %s", tmp, strerror(errno));
	/* Again: the path may have become something else while we wrote. */
	if (!r)
		r = snapshot_check_target(path, err);
	if (!r && rename(tmp, path) < 0)
		r = err_set(err, -errno, "cannot rename %s to %s: %s", tmp,
			    path, strerror(errno));
	if (r)
		unlink(tmp);
	else
		log_info("snapshot saved to %s in %s", path,
			 units_duration_ms(took, sizeof(took),
					   (t1.tv_sec - t0.tv_sec) * 1e3 +
						   (t1.tv_nsec - t0.tv_nsec) / 1e6));
	return r;
}

/* ---- reading ---------------------------------------------------------- */

static const char *snap_record_name(uint32_t type)
{
	switch (type) {
	case SNAP_REC_CONFIG: return "CONFIG";
	case STATE_REC_DEVICE: return "DEVICE";
	case STATE_REC_VCPU: return "VCPU";
	case SNAP_REC_END: return "END";
	default: return NULL;
	}
}

struct snap_file {
	int fd;
	struct snap_header h;
	uint64_t file_size;
	/* the record area, through the shared framing */
	struct channel *ch;
	struct rec_reader *r;
};

static void snap_close(struct snap_file *f)
{
	rec_reader_free(f->r);
	channel_close(f->ch);
	if (f->fd >= 0)
		close(f->fd);
}

static int pread_all(int fd, void *data, size_t len, off_t off)
{
	uint8_t *p = data;
	while (len) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

/* Open and check everything but the records' meaning; each check has its
 * own message so a user knows what is wrong with the file. */
static int snap_open(struct snap_file *f, const char *path, char *err)
{
	struct stat st;

	memset(f, 0, sizeof(*f));
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return err_set(err, -errno, "cannot open snapshot %s: %s", path,
			       strerror(errno));
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return err_set(err, -EINVAL, "snapshot %s is not a regular file",
			       path);
	f->file_size = st.st_size;
	if (f->file_size < sizeof(f->h) ||
	    pread_all(f->fd, &f->h, sizeof(f->h), 0))
		return err_set(err, -EINVAL,
			       "snapshot %s: file too short for a header (%llu bytes)",
			       path, (unsigned long long)f->file_size);
	if (memcmp(f->h.magic, SNAP_MAGIC, 8))
		return err_set(err, -EINVAL,
			       "snapshot %s: bad magic (not a ferry snapshot)", path);
	if (f->h.version != SNAP_VERSION)
		return err_set(err, -EINVAL,
			       "snapshot %s: unsupported version %u (this ferry reads %u)",
			       path, f->h.version, SNAP_VERSION);
	if (f->h.header_size != sizeof(f->h) ||
	    f->h.header_crc != crc32c(0, &f->h,
				      offsetof(struct snap_header, header_crc)))
		return err_set(err, -EINVAL, "snapshot %s: header checksum mismatch",
			       path);
	if (f->h.state_offset != sizeof(f->h) ||
	    f->h.state_length > SNAP_MAX_RECORD * 4ULL ||
	    f->h.mem_offset % PAGE ||
	    f->h.mem_offset < f->h.state_offset + f->h.state_length)
		return err_set(err, -EINVAL, "snapshot %s: inconsistent layout", path);
	if (f->h.ram_size % PAGE || f->h.ram_size < (2ULL << 20))
		return err_set(err, -EINVAL, "snapshot %s: bad memory size %llu",
			       path, (unsigned long long)f->h.ram_size);
	/* The sum below must not wrap: a memory offset near 2^64 would
	 * otherwise pass as a small file and be read at a negative offset. */
	if (f->h.ram_size > UINT64_MAX - f->h.mem_offset)
		return err_set(err, -EINVAL, "snapshot %s: inconsistent layout", path);
	if (f->file_size != f->h.mem_offset + f->h.ram_size)
		return err_set(err, -EINVAL,
			       "snapshot %s: size %llu bytes, expected %llu (truncated?)",
			       path, (unsigned long long)f->file_size,
			       (unsigned long long)(f->h.mem_offset + f->h.ram_size));
	f->ch = channel_file_new(f->fd, false, f->h.state_offset,
				 f->h.state_length, "the snapshot's state");
	f->r = f->ch ? rec_reader_new(f->ch, SNAP_MAX_RECORD) : NULL;
	if (!f->r)
		return err_set(err, -ENOMEM, "out of memory");
	rec_reader_set_namer(f->r, snap_record_name);
	return 0;
}

struct snap_record {
	uint32_t type, len;
	const uint8_t *payload;
};

/* The next record, its bounds and checksum checked by the framing. */
static int snap_next(struct snap_file *f, struct snap_record *rec, char *err)
{
	if (rec_read(f->r, &rec->type, &rec->payload, &rec->len))
		return err_set(err, -EINVAL, "%s", rec_reader_errmsg(f->r));
	return 0;
}

static int parse_config(const struct snap_record *rec, struct vm_config *cfg,
			char *err)
{
	json_error_t jerr;
	if (rec->len > MACHINE_DESC_MAX)
		return err_set(err, -EINVAL,
			       "configuration record of %u bytes: a machine description is at most %u",
			       rec->len, MACHINE_DESC_MAX);
	json_t *j = json_loadb((const char *)rec->payload, rec->len,
			       JSON_REJECT_DUPLICATES, &jerr);
	struct kvm_cpuid2 *cpuid = NULL;
	if (!j)
		return err_set(err, -EINVAL, "configuration record is not JSON: %s",
			       jerr.text);
	/* What needs no KVM first, with the checks a migration's destination
	 * makes: the layout, sizes and versions, then the devices (an unknown
	 * one or a wrong state version), and only then the CPU, on /dev/kvm;
	 * so a bad file is named as such on any host. */
	struct machine_host host = { .memory = machine_host_memory() };
	int r = machine_desc_check(j, &host, cfg, &cpuid, err);
	if (!r)
		r = vm_check_described_devices(j, cfg, err);
	if (!r) {
		int kvm_fd = kvm_open(err);
		r = kvm_fd < 0 ? kvm_fd : machine_desc_check_cpuid(cpuid, kvm_fd, err);
		if (kvm_fd >= 0)
			close(kvm_fd);
	}
	json_decref(j);
	if (r)
		free(cpuid);
	else
		cfg->cpuid = cpuid;
	return r;
}

int snapshot_read_config(const char *path, struct vm_config *cfg, char *err)
{
	struct snap_file f;
	struct snap_record rec;
	int r = snap_open(&f, path, err);
	if (!r) {
		r = snap_next(&f, &rec, err);
		if (!r && rec.type != SNAP_REC_CONFIG)
			r = err_set(err, -EINVAL, "first record is not the configuration");
		if (!r)
			r = parse_config(&rec, cfg, err);
		if (!r && cfg->ram_size != f.h.ram_size)
			r = err_set(err, -EINVAL, "memory size disagrees with the header");
		if (r)
			err_prefix(err, r, "snapshot %s", path);
	}
	snap_close(&f);
	return r;
}

/* Copy the file's memory area into the VM's own anonymous memory, data
 * extents only: never-touched memory is a hole in the file and stays
 * unallocated, so restore costs what the guest used, not its size.  A
 * private mapping of the file would be cheaper still but keeps the VM
 * hostage to the file: truncating it makes unread pages SIGBUS in the
 * VMM (a migration reads them all), rewriting it in place changes guest
 * memory. */
static int copy_memory(struct vm *vm, struct snap_file *f, char *err)
{
	struct extent_copy_stats total = { 0 };
	off_t off = f->h.mem_offset;
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		struct mem_slot *s = &vm->mem.slots[i];
		struct extent_copy_stats st;
		char why[ERR_MAX];
		int r = extent_copy(f->fd, off, s->size, s->hva, &st, why);
		if (r)
			return err_set(err, r, "loading guest memory: %s", why);
		total.data_bytes += st.data_bytes;
		total.extents += st.extents;
		total.ns += st.ns;
		off += s->size;
	}
	char rd[UNITS_LEN], took[UNITS_LEN], untouched[UNITS_LEN];
	log_info("restore: %s of guest memory read (%llu extents) in %s; "
		 "%s never touched, left unallocated",
		 units_size(rd, sizeof(rd), (double)total.data_bytes),
		 (unsigned long long)total.extents,
		 units_duration_ms(took, sizeof(took), total.ns / 1e6),
		 units_size(untouched, sizeof(untouched),
			    (double)(vm->mem.ram_size - total.data_bytes)));
	return 0;
}

int snapshot_restore(struct vm *vm, const char *path, char *err)
{
	struct snap_file f;
	struct machine_state_loader loader;
	bool ended = false;
	int r = snap_open(&f, path, err);
	if (r)
		goto out_opened; /* snap_open's messages name the file */
	if (f.h.ram_size != vm->mem.ram_size) {
		r = err_set(err, -EINVAL, "memory size differs from the VM's");
		goto out;
	}
	machine_state_loader_init(&loader, vm);
	while (!r && !ended) {
		struct snap_record rec;
		r = snap_next(&f, &rec, err);
		if (r)
			break;
		switch (rec.type) {
		case SNAP_REC_CONFIG: break; /* read by snapshot_read_config */
		case STATE_REC_DEVICE:
		case STATE_REC_VCPU:
			r = machine_state_load(&loader, rec.type, rec.payload,
					       rec.len, err);
			break;
		case SNAP_REC_END: ended = true; break;
		default:
			/* optional types are skipped, others abort */
			if (rec_unknown(f.r, rec.type, rec.len))
				r = err_set(err, -EINVAL, "%s", rec_reader_errmsg(f.r));
		}
	}
	if (!r)
		r = machine_state_loader_finish(&loader, err);
	if (!r)
		r = copy_memory(vm, &f, err);
out:
	/* One prefix: the file, as snapshot_read_config's messages have. */
	if (r)
		err_prefix(err, r, "snapshot %s", path);
out_opened:
	snap_close(&f);
	return r;
}
