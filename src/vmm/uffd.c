/*
 * uffd.c - see uffd.h.
 */
#include "vmm/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"

/* /dev/userfaultfd's only ioctl (Linux 6.1); older headers lack it. */
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

const struct uffd_feature_name uffd_feature_names[] = {
	{ 1ULL << 0, "PAGEFAULT_FLAG_WP" },
	{ 1ULL << 1, "EVENT_FORK" },
	{ 1ULL << 2, "EVENT_REMAP" },
	{ 1ULL << 3, "EVENT_REMOVE" },
	{ 1ULL << 4, "MISSING_HUGETLBFS" },
	{ 1ULL << 5, "MISSING_SHMEM" },
	{ 1ULL << 6, "EVENT_UNMAP" },
	{ 1ULL << 7, "SIGBUS" },
	{ 1ULL << 8, "THREAD_ID" },
	{ 1ULL << 9, "MINOR_HUGETLBFS" },
	{ 1ULL << 10, "MINOR_SHMEM" },
	{ 1ULL << 11, "EXACT_ADDRESS" },
	{ 1ULL << 12, "WP_HUGETLBFS_SHMEM" },
	{ 1ULL << 13, "WP_UNPOPULATED" },
	{ 1ULL << 14, "POISON" },
	{ 1ULL << 15, "WP_ASYNC" },
	{ 1ULL << 16, "MOVE" },
	{ 0, NULL },
};

static int open_raw(char *err)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	int e = errno;
	/* Without the privilege for the system call, the device (Linux
	 * 6.1+) may still be open to us. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		int e2 = errno;
		close(dev);
		if (fd >= 0)
			return fd;
		e = e2;
	}
	return err_set(err, -e, "cannot open a userfaultfd: %s%s", strerror(e),
		       e == EPERM ? " (needs root, or vm.unprivileged_userfaultfd=1)"
				  : "");
}

static int api(int fd, uint64_t features, uint64_t *got, uint64_t *ioctls,
	       char *err)
{
	struct uffdio_api a = { .api = UFFD_API, .features = features };
	if (ioctl(fd, UFFDIO_API, &a) < 0)
		return err_set(err, -errno,
			       "userfaultfd API handshake (features 0x%llx): %s",
			       (unsigned long long)features, strerror(errno));
	if (got)
		*got = a.features;
	if (ioctls)
		*ioctls = a.ioctls;
	return 0;
}

int uffd_probe(uint64_t *features, uint64_t *ioctls, char *err)
{
	int fd = open_raw(err);
	if (fd < 0)
		return fd;
	int r = api(fd, 0, features, ioctls, err);
	close(fd);
	return r;
}

int uffd_open(uint64_t features, char *err)
{
	int fd = open_raw(err);
	if (fd < 0)
		return fd;
	uint64_t got = 0;
	int r = api(fd, features, &got, NULL, err);
	if (!r && (got & features) != features)
		r = err_set(err, -ENOTSUP,
			    "userfaultfd lacks features 0x%llx",
			    (unsigned long long)(features & ~got));
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

int uffd_register_missing(int fd, void *addr, size_t len, char *err)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return err_set(err, -errno,
			       "cannot register %zu KiB with userfaultfd: %s",
			       len >> 10, strerror(errno));
	uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) |
			(1ULL << _UFFDIO_WAKE);
	if ((reg.ioctls & need) != need) {
		uffd_unregister(fd, addr, len);
		return err_set(err, -ENOTSUP,
			       "userfaultfd offers no COPY/ZEROPAGE/WAKE on this memory (0x%llx)",
			       (unsigned long long)reg.ioctls);
	}
	return 0;
}

int uffd_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };
	return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

int uffd_copy(int fd, void *dst, const void *src, size_t len)
{
	for (;;) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
		};
		if (ioctl(fd, UFFDIO_COPY, &c) == 0)
			return 0;
		int e = errno;
		/* EAGAIN: the mapping changed under us (or a partial copy
		 * of a multi-page range); what is missing is tried again. */
		if (e == EAGAIN && c.copy > 0 && (size_t)c.copy < len) {
			dst = (uint8_t *)dst + c.copy;
			src = (const uint8_t *)src + c.copy;
			len -= (size_t)c.copy;
			continue;
		}
		if (e == EAGAIN)
			continue;
		return -e;
	}
}

int uffd_copy_run(int fd, void *dst, const void *src, size_t npages,
		  uint8_t *existed)
{
	const size_t page = 4096;
	size_t done = 0, placed = 0;

	if (existed)
		memset(existed, 0, npages);
	while (done < npages) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)dst + done * page,
			.src = (uintptr_t)src + done * page,
			.len = (npages - done) * page,
		};
		if (ioctl(fd, UFFDIO_COPY, &c) == 0) {
			placed += npages - done;
			break;
		}
		int e = errno;
		/* A partial copy stops at a page that is there already (or
		 * a changing mapping): count what went in, go on from there. */
		if (e == EAGAIN && c.copy > 0) {
			done += (size_t)c.copy / page;
			placed += (size_t)c.copy / page;
			continue;
		}
		if (e == EAGAIN)
			continue;
		if (e == EEXIST) {
			if (existed)
				existed[done] = 1;
			done++;
			continue;
		}
		return -e;
	}
	return (int)placed;
}

int uffd_zeropage(int fd, void *dst, size_t len)
{
	for (;;) {
		struct uffdio_zeropage z = {
			.range = { .start = (uintptr_t)dst, .len = len },
		};
		if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0)
			return 0;
		int e = errno;
		if (e == EAGAIN && z.zeropage > 0 && (size_t)z.zeropage < len) {
			dst = (uint8_t *)dst + z.zeropage;
			len -= (size_t)z.zeropage;
			continue;
		}
		if (e == EAGAIN)
			continue;
		return -e;
	}
}

int uffd_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };
	return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}
