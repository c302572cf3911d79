/* Shared pieces of the fuzz targets (fuzz_common.h). */
#include "fuzz_common.h"
#include "io/channel.h"
#include "io/record.h"
#include "util/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <linux/kvm.h>

static bool verbose;

void fuzz_init(void)
{
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	log_set_level(verbose ? LOG_DEBUG : LOG_OFF);
	signal(SIGPIPE, SIG_IGN);
}

void fuzz_note(const char *what, int r, const char *err)
{
	if (verbose)
		fprintf(stderr, "fuzz: %s: %d %s\n", what, r, r ? err : "ok");
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "fuzz: %s: %s\n", what, why);
	abort();
}

/* A few leaves such as a real table has (vendor, features, extended
 * features, the xsave sub-leaf, the 0x8000000x range). */
static const struct kvm_cpuid_entry2 leaves[] = {
	{ .function = 0, .eax = 0xd, .ebx = 0x756e6547, .ecx = 0x6c65746e,
	  .edx = 0x49656e69 },
	{ .function = 1, .eax = 0x906ea, .ecx = 0x80000000, .edx = 0x0789fbff },
	{ .function = 7, .index = 0, .flags = 1 },
	{ .function = 0xd, .index = 1, .flags = 1 },
	{ .function = 0x80000000, .eax = 0x80000008 },
	{ .function = 0x80000001, .ecx = 0x1, .edx = 0x20100800 },
};

const struct kvm_cpuid2 *fuzz_host_cpuid(void)
{
	static struct kvm_cpuid2 *table;

	if (!table) {
		table = calloc(1, sizeof(*table) + sizeof(leaves));
		if (!table)
			die("fixture", "out of memory");
		table->nent = sizeof(leaves) / sizeof(leaves[0]);
		memcpy(table->entries, leaves, sizeof(leaves));
	}
	return table;
}

const uint32_t fuzz_host_msrs[] = {
	0x10, 0x1b, 0x174, 0x175, 0x176, 0x277, 0xc0000080, 0xc0000081,
	0xc0000082, 0xc0000083, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102,
};
const unsigned fuzz_host_nmsrs = sizeof(fuzz_host_msrs) / sizeof(fuzz_host_msrs[0]);

struct vm *fuzz_machine(uint64_t ram, unsigned vcpus, bool debug_exit)
{
	struct vm_config cfg = { .ram_size = ram, .vcpus = vcpus,
				 .serial = "none", .heartbeat = "none",
				 .exit_port = debug_exit ? VM_EXIT_PORT_ISA_DEBUG_EXIT
							 : VM_EXIT_PORT_FERRY,
				 .cpuid = fuzz_host_cpuid() };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	if (vcpu_msr_list_set(fuzz_host_msrs, fuzz_host_nmsrs) ||
	    vm_create_offline(&vm, &cfg, err))
		die("vm_create_offline", err);
	return vm;
}

bool fuzz_next_item(const uint8_t **p, size_t *n, struct fuzz_item *it)
{
	if (*n < 8)
		return false;
	memcpy(&it->type, *p, 4);
	memcpy(&it->len, *p + 4, 4);
	*p += 8;
	*n -= 8;
	if (it->len > *n)
		it->len = (uint32_t)*n;
	it->data = *p;
	*p += it->len;
	*n -= it->len;
	return true;
}

int fuzz_memfd(const void *data, size_t len)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	const uint8_t *b = data;
	size_t off = 0;

	if (fd < 0)
		die("memfd_create", "failed");
	while (off < len) {
		ssize_t w = write(fd, b + off, len - off);
		if (w <= 0)
			die("memfd write", "failed");
		off += (size_t)w;
	}
	return fd;
}

uint8_t *fuzz_frame(const void *raw, size_t raw_len, const uint8_t *data,
		    size_t len, uint32_t max_record, size_t *out_len)
{
	int fd = fuzz_memfd(NULL, 0);
	struct channel *ch = channel_file_new(fd, true, 0, UINT64_MAX, "fuzz");
	struct rec_writer *w = ch ? rec_writer_new(ch, max_record) : NULL;
	struct fuzz_item it;

	if (!w)
		die("fuzz_frame", "out of memory");
	if (raw_len)
		rec_put_raw(w, raw, raw_len);
	while (fuzz_next_item(&data, &len, &it))
		rec_put(w, it.type, it.data,
			it.len < max_record ? it.len : max_record);
	if (rec_flush(w))
		die("fuzz_frame", rec_writer_errmsg(w));
	size_t total = (size_t)rec_writer_bytes_out(w);
	uint8_t *out = malloc(total ? total : 1);
	if (!out || pread(fd, out, total, 0) != (ssize_t)total)
		die("fuzz_frame", "cannot read the stream back");
	rec_writer_free(w);
	channel_close(ch);
	*out_len = total;
	return out;
}

void fuzz_put_item(uint8_t **buf, size_t *len, uint32_t type, const void *data,
		   uint32_t n)
{
	uint8_t *b = realloc(*buf, *len + 8 + n);
	if (!b)
		die("fuzz_put_item", "out of memory");
	memcpy(b + *len, &type, 4);
	memcpy(b + *len + 4, &n, 4);
	if (n)
		memcpy(b + *len + 8, data, n);
	*buf = b;
	*len += 8 + n;
}
