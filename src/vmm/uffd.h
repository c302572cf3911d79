/*
 * uffd.h - a thin wrapper over Linux userfaultfd for anonymous guest RAM
 * in MISSING mode: open a descriptor, register ranges, place a page
 * atomically (UFFDIO_COPY), map the zero page (UFFDIO_ZEROPAGE), wake.
 *
 * A thread that touches a registered page which was never placed sleeps
 * in the kernel until some thread places it; the descriptor delivers one
 * message per such fault (postcopy_dest.c turns them into requests).
 * KVM's own accesses to guest memory (get_user_pages from a vCPU) fault
 * the same way, so UFFD_USER_MODE_ONLY is never asked for.
 *
 * Opening needs root (CAP_SYS_PTRACE) or vm.unprivileged_userfaultfd=1 or
 * access to /dev/userfaultfd; uffd_open() tries the system call first,
 * then the device.  docs/platform-userfaultfd.md lists what the kernels
 * we run on offer.
 */
#ifndef FERRY_UFFD_H
#define FERRY_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Feature bits as UFFDIO_API reports them (newer kernels than our
 * headers report more; the names are here so a probe can print them). */
struct uffd_feature_name {
	uint64_t bit;
	const char *name;
};
extern const struct uffd_feature_name uffd_feature_names[];

/**
 * uffd_probe() - what this kernel's userfaultfd offers: the UFFDIO_API
 * feature mask and the ioctl mask, asked on a throw-away descriptor (the
 * API handshake can be done only once per descriptor).  Returns 0 or a
 * negative errno with a message in err (ERR_MAX bytes).
 */
int uffd_probe(uint64_t *features, uint64_t *ioctls, char *err);

/**
 * uffd_open() - a non-blocking, close-on-exec userfaultfd whose API
 * handshake asked for @features (0 for plain MISSING faults on anonymous
 * memory).  Returns the descriptor or a negative errno with a message.
 */
int uffd_open(uint64_t features, char *err);

/**
 * uffd_register_missing() - register [addr, addr+len) (page aligned,
 * anonymous) for MISSING faults and check the kernel offers COPY,
 * ZEROPAGE and WAKE on it.  Returns 0 or a negative errno with a message.
 */
int uffd_register_missing(int fd, void *addr, size_t len, char *err);
int uffd_unregister(int fd, void *addr, size_t len);

/**
 * uffd_copy() - place one page atomically: copy @src (4 KiB, not inside
 * a registered range) to @dst and wake the threads waiting on it.
 * Returns 0, -EEXIST if the page is already there (placed by another
 * thread: a crossing), or another negative errno.
 */
int uffd_copy(int fd, void *dst, const void *src, size_t len);

/**
 * uffd_copy_run() - place npages consecutive pages with as few
 * UFFDIO_COPY calls as possible (a run costs about half per page of
 * single-page calls here: docs/platform-userfaultfd.md).  A page already
 * present is skipped and flagged in existed[k] (existed may be NULL; it
 * is filled for every page).  Returns the pages placed here, or a
 * negative errno.
 */
int uffd_copy_run(int fd, void *dst, const void *src, size_t npages,
		  uint8_t *existed);

/* Map the zero page at dst (4 KiB multiple) and wake; -EEXIST as above. */
int uffd_zeropage(int fd, void *dst, size_t len);

/* Wake threads waiting on [addr, addr+len) (after a placement that
 * could not wake them itself). */
int uffd_wake(int fd, void *addr, size_t len);

#endif
