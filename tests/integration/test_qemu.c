/*
 * The same test guest under QEMU/KVM: the image is a plain multiboot
 * kernel and its devices are standard (16550A, isa-debug-exit), so it must
 * run there too, which keeps Ferry honest and makes the two comparable.
 */
#include "harness/harness.h"

#include <string.h>

TestSuite(qemu, H_FIXTURES, .timeout = 240);

Test(qemu, dirty_verify_guest_finishes)
{
	const char *guest = h_guest();
	(void)guest;
	if (!h_qemu())
		cr_skip_test("qemu-system-x86_64 or /dev/kvm not available");
	/* isa-debug-exit: status (code << 1) | 1, so guest code 0 -> 1. */
	int rc = h_qemu_run("qemu", "workload=dirty verify=1 seconds=3", 180);
	char *serial = h_read_file(h_path("qemu.serial"), NULL);
	if (rc != 1)
		h_fail("QEMU exit status %d, wanted 1 = (0 << 1) | 1", rc);
	h_assert(serial && strstr(serial, "ferry-testguest"), "no banner");
	h_assert(strstr(serial, "progress: t="), "no progress lines");
	h_assert(!strstr(serial, "VERIFY FAIL"), "VERIFY FAIL under QEMU");
	free(serial);
}

Test(qemu, exit_code_under_qemu)
{
	h_guest();
	if (!h_qemu())
		cr_skip_test("qemu-system-x86_64 or /dev/kvm not available");
	int rc = h_qemu_run("qemu", "workload=exit code=5", 180);
	if (rc != ((5 << 1) | 1))
		h_fail("QEMU exit status %d, wanted 11 = (5 << 1) | 1", rc);
}
