/*
 * fuzz_snapshot - the snapshot reader (snapshot/snapshot.c):
 * snapshot_read_config() and snapshot_restore() on a file made from the
 * input: the header's checks, the record area through the real reader,
 * CONFIG, every DEVICE and VCPU loader, END, and the copy of the memory
 * area into the machine (a machine without KVM, vm_create_offline).
 *
 * Input: u8 mode | 64-byte header | the record area.  The file's memory
 * area is a hole, as in a real snapshot of an idle guest: the file is
 * extended to the size the header gives (if at most 64 MiB).
 * Mode bit 0: recompute the header's checksum (else mutations of the
 * header would only ever test the checksum); bit 1: the record area is
 * items (fuzz_common.h), framed with the real writer, else raw bytes;
 * bit 2: make the layout consistent (state length, memory offset, a
 * 2 MiB memory) so the records are reached; bit 3: data in the memory
 * area (the record area's bytes again).
 */
#include "fuzz_common.h"
#include "snapshot/snapshot.h"
#include "snapshot/snapshot_format.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "vmm/vm.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FILE (64u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_header h;

	if (size < 1 + sizeof(h))
		return 0;
	uint8_t mode = data[0];
	memcpy(&h, data + 1, sizeof(h));
	const uint8_t *rest = data + 1 + sizeof(h);
	size_t rest_len = size - 1 - sizeof(h);
	uint8_t *area = NULL;
	size_t area_len = rest_len;

	if (mode & 2)
		area = fuzz_frame(NULL, 0, rest, rest_len, SNAP_MAX_RECORD, &area_len);
	if (mode & 4) {
		h.state_offset = sizeof(h);
		h.state_length = area_len;
		h.mem_offset = (sizeof(h) + area_len + 4095) & ~4095ULL;
		h.ram_size = 2u << 20;
	}
	if (mode & 1)
		h.header_crc = crc32c(0, &h, offsetof(struct snap_header, header_crc));

	int fd = fuzz_memfd(&h, sizeof(h));
	if (pwrite(fd, area ? area : rest, area_len, sizeof(h)) != (ssize_t)area_len)
		abort();
	uint64_t end = h.mem_offset + h.ram_size;
	if (end >= h.mem_offset && end > sizeof(h) + area_len && end <= MAX_FILE) {
		if (ftruncate(fd, (off_t)end))
			abort();
		if ((mode & 8) && area_len && h.mem_offset < end) {
			size_t n = end - h.mem_offset < area_len ? end - h.mem_offset
								 : area_len;
			if (pwrite(fd, area ? area : rest, n, (off_t)h.mem_offset) !=
			    (ssize_t)n)
				abort();
		}
	}

	char path[64], err[ERR_MAX] = "";
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct vm_config cfg = { 0 };
	int r = snapshot_read_config(path, &cfg, err);
	fuzz_note("snapshot_read_config", r, err);
	if (r && !err[0])
		abort();
	free((void *)cfg.cpuid);

	/* A machine of the header's size when that is small (else a 2 MiB
	 * one, which the restore must refuse). */
	uint64_t ram = h.ram_size >= (2u << 20) && h.ram_size <= (16u << 20) &&
				       !(h.ram_size % 4096)
			       ? h.ram_size : 2u << 20;
	struct vm *vm = fuzz_machine(ram, 2, false);
	err[0] = 0;
	r = snapshot_restore(vm, path, err);
	fuzz_note("snapshot_restore", r, err);
	if (r && !err[0])
		abort();
	vm_destroy(vm);
	close(fd);
	free(area);
	return 0;
}
