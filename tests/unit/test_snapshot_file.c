/*
 * Snapshot files without KVM: where snapshot-save may write, and what a
 * restore refuses before /dev/kvm is opened (crafted files, the format of
 * docs/snapshot-format.md, through the real framing).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "io/channel.h"
#include "io/record.h"
#include "snapshot/snapshot.h"
#include "snapshot/snapshot_format.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "vmm/vcpu.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ferry-snapfile-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	log_set_level(LOG_ERROR);
}

static void free_paths(void);

static void teardown(void)
{
	char cmd[128];

	free_paths();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(snapshot_file, .init = setup, .fini = teardown);

static char *paths_made[32];
static unsigned npaths;

/* A path in the test's directory (freed at the test's end). */
static const char *in_dir(const char *name)
{
	char *s = NULL;
	cr_assert_lt(npaths, 32);
	cr_assert(asprintf(&s, "%s/%s", dir, name) > 0);
	paths_made[npaths++] = s;
	return s;
}

static void free_paths(void)
{
	while (npaths)
		free(paths_made[--npaths]);
}

/* ---- where snapshot-save may write --------------------------------------- */

Test(snapshot_file, save_goes_to_a_new_path_or_a_regular_file)
{
	char err[ERR_MAX] = "";
	const char *reg = in_dir("old.snap");

	cr_assert_eq(snapshot_check_target(in_dir("new.snap"), err), 0, "%s", err);
	close(open(reg, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(snapshot_check_target(reg, err), 0, "%s", err);
}

/* Issue 11: saving to /dev/null answered {} and left a 128 MiB regular
 * file in its place.  Only lstat runs here: nothing is written. */
Test(snapshot_file, save_refuses_special_files_and_symlinks)
{
	static const struct { const char *kind; } want[] = {
		{ "a character device" }, { "a FIFO" }, { "a symbolic link" },
		{ "a symbolic link" }, { "a directory" },
	};
	const char *paths[5];
	char err[ERR_MAX];

	paths[0] = "/dev/null";
	paths[1] = in_dir("fifo");
	cr_assert_eq(mkfifo(paths[1], 0600), 0);
	close(open(in_dir("target"), O_CREAT | O_WRONLY, 0600));
	paths[2] = in_dir("link");
	cr_assert_eq(symlink(in_dir("target"), paths[2]), 0);
	paths[3] = in_dir("dangling");
	cr_assert_eq(symlink(in_dir("nowhere"), paths[3]), 0);
	paths[4] = dir;
	for (int i = 0; i < 5; i++) {
		err[0] = '\0';
		cr_expect_eq(snapshot_check_target(paths[i], err), -EINVAL, "%s", paths[i]);
		cr_expect(strstr(err, want[i].kind), "%s: %s", paths[i], err);
		cr_expect(strstr(err, "a new path or replaces a regular file"), "%s", err);
	}
	struct stat st;
	cr_assert_eq(lstat(paths[1], &st), 0);
	cr_expect(S_ISFIFO(st.st_mode), "the FIFO was replaced");
	cr_expect_eq(snapshot_check_target("", err), -EINVAL);
}

/* ---- what a restore refuses before /dev/kvm ------------------------------ */

#define RAM (16u << 20)

/* The devices ferry builds for a machine with the default exit port, in
 * order, with their state versions (src/devices, platform_state.c). */
static const char *const good_devices =
	"{\"name\": \"uart8250\", \"version\": 1},"
	"{\"name\": \"fw_cfg\", \"version\": 1},"
	"{\"name\": \"irqchip\", \"version\": 1},"
	"{\"name\": \"pit\", \"version\": 1},"
	"{\"name\": \"kvmclock\", \"version\": 1},"
	"{\"name\": \"testdev\", \"version\": 2},"
	"{\"name\": \"heartbeat\", \"version\": 1}";

/* A snapshot whose CONFIG record lists @devices (the inside of a JSON
 * list), then END; memory is a hole.  Returns its path. */
static const char *craft(const char *name, const char *devices)
{
	const char *path = in_dir(name);
	char config[2048];
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	struct snap_header h = { 0 };

	cr_assert(fd >= 0);
	snprintf(config, sizeof(config),
		 "{\"memory\": %u, \"vcpus\": 1, \"page-size\": 4096,"
		 " \"slots\": [{\"gpa\": 0, \"size\": %u}],"
		 " \"vcpu-state-version\": %d, \"devices\": [%s],"
		 " \"cpuid\": [{\"function\": 0, \"index\": 0, \"flags\": 0,"
		 " \"eax\": 13, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}],"
		 " \"exit-port\": \"ferry\"}",
		 RAM, RAM, VCPU_STATE_VERSION, devices);
	struct channel *ch = channel_file_new(fd, false, sizeof(h), UINT64_MAX,
					      "crafted snapshot");
	struct rec_writer *w = rec_writer_new(ch, SNAP_MAX_RECORD);
	cr_assert_not_null(w);
	rec_put(w, SNAP_REC_CONFIG, config, strlen(config));
	rec_put(w, SNAP_REC_END, NULL, 0);
	cr_assert_eq(rec_flush(w), 0);
	uint64_t state_len = rec_writer_bytes_out(w);
	rec_writer_free(w);
	channel_close(ch);

	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.header_size = sizeof(h);
	h.ram_size = RAM;
	h.state_offset = sizeof(h);
	h.state_length = state_len;
	h.mem_offset = (sizeof(h) + state_len + 4095) & ~4095ull;
	h.nrecords = 2;
	h.header_crc = crc32c(0, &h, offsetof(struct snap_header, header_crc));
	cr_assert_eq(ftruncate(fd, (off_t)(h.mem_offset + RAM)), 0);
	cr_assert_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
	return path;
}

/* The error snapshot_read_config gives for a crafted file. */
static int read_config(const char *path, char *err)
{
	struct vm_config cfg = { 0 };
	int r = snapshot_read_config(path, &cfg, err);
	free((void *)cfg.cpuid);
	return r;
}

/* The control: a good list gets past every device check and reaches the CPU
 * (without KVM it stops at /dev/kvm; on a KVM host the crafted file's empty
 * CPUID is refused, or on a host that accepts it, the file is). */
Test(snapshot_file, good_device_list_reaches_the_cpu_check)
{
	char err[ERR_MAX] = "";
	int r = read_config(craft("good.snap", good_devices), err);

	if (r)
		cr_expect(strstr(err, "/dev/kvm") || strstr(err, "CPUID"),
			  "refused before the CPU check: %s", err);
}

static void expect_refused(const char *name, const char *devices,
			   const char *needle)
{
	char err[ERR_MAX] = "";
	const char *path = craft(name, devices);

	cr_expect_neq(read_config(path, err), 0, "%s accepted", name);
	cr_expect(strstr(err, path), "the message does not name the snapshot: %s", err);
	cr_expect(strstr(err, needle), "%s: wanted \"%s\", got: %s", name, needle, err);
	/* Refused before KVM, in the snapshot's words. */
	cr_expect(!strstr(err, "/dev/kvm"), "%s", err);
	cr_expect(!strcasestr(err, "migration"), "%s", err);
}

/* Issue 11: an unknown device was accepted on restore. */
Test(snapshot_file, unknown_device_is_refused_naming_the_field)
{
	char list[1024];
	snprintf(list, sizeof(list), "%s, {\"name\": \"virtio-gpu\", \"version\": 1}",
		 good_devices);
	expect_refused("unknown.snap", list,
		       "devices[7].name: device 'virtio-gpu' is unknown to this ferry");
}

/* Issue 11: so was a device at a state version this ferry does not have. */
Test(snapshot_file, wrong_device_version_is_refused_naming_the_field)
{
	expect_refused("version.snap",
		       "{\"name\": \"uart8250\", \"version\": 9},"
		       "{\"name\": \"fw_cfg\", \"version\": 1}",
		       "devices[0].version: device 'uart8250' state version 9 is "
		       "unknown to this ferry (it has 1)");
}

Test(snapshot_file, missing_duplicate_or_malformed_devices_are_refused)
{
	expect_refused("missing.snap", "{\"name\": \"uart8250\", \"version\": 1}",
		       "field 'devices' lacks 'fw_cfg'");
	char list[1024];
	snprintf(list, sizeof(list), "%s, {\"name\": \"pit\", \"version\": 1}",
		 good_devices);
	expect_refused("twice.snap", list, "devices[3].name: device 'pit' is listed twice");
	expect_refused("malformed.snap", "{\"name\": 5, \"version\": 1}",
		       "devices[0] lacks a string 'name' or a number 'version'");
}
