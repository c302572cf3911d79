/*
 * The snapshot header's layout checks on crafted files (no KVM needed:
 * snapshot_read_config refuses a bad header before it opens /dev/kvm).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "snapshot/snapshot_format.h"
#include "util/crc32c.h"
#include "util/log.h"

/* A file of file_size bytes opening with a header with these offsets. */
static char *write_snapshot(uint64_t mem_offset, uint64_t ram_size,
			    size_t file_size)
{
	static char path[] = "/tmp/ferry-snap-XXXXXX";
	struct snap_header h = { 0 };
	char *p = strdup(path);
	int fd = mkstemp(p);

	cr_assert_geq(fd, 0);
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.header_size = sizeof(h);
	h.ram_size = ram_size;
	h.state_offset = sizeof(h);
	h.state_length = 0;
	h.mem_offset = mem_offset;
	h.header_crc = crc32c(0, &h, offsetof(struct snap_header, header_crc));
	cr_assert_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	cr_assert_eq(ftruncate(fd, (off_t)file_size), 0);
	close(fd);
	return p;
}

/* mem_offset + ram_size wraps to the file's size: the header looked
 * consistent and the restore read guest memory at a negative offset. */
Test(snapshot_header, memory_offset_that_wraps_is_refused)
{
	char err[ERR_MAX] = "";
	struct vm_config cfg = { 0 };
	uint64_t ram = 2u << 20;
	char *p = write_snapshot(0 - ram + 8192, ram, 8192);

	cr_assert_eq(snapshot_read_config(p, &cfg, err), -EINVAL);
	cr_assert(strstr(err, "inconsistent layout"), "%s", err);
	unlink(p);
	free(p);
}

Test(snapshot_header, size_must_match_the_layout)
{
	char err[ERR_MAX] = "";
	struct vm_config cfg = { 0 };
	char *p = write_snapshot(4096, 2u << 20, 4096 + (1u << 20));

	cr_assert_eq(snapshot_read_config(p, &cfg, err), -EINVAL);
	cr_assert(strstr(err, "truncated"), "%s", err);
	unlink(p);
	free(p);
}
