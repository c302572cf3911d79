/* Dropping many ranges of memory at once (memory_zap.h). */
#include "vmm/memory_zap.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

void mem_zap_init(struct mem_zap *z)
{
	z->n = 0;
	z->calls = 0;
#if defined(SYS_pidfd_open) && defined(SYS_process_madvise)
	z->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
	z->pidfd = -1;
#endif
}

static int one_by_one(struct mem_zap *z, unsigned from)
{
	for (unsigned i = from; i < z->n; i++) {
		z->calls++;
		if (madvise(z->iov[i].iov_base, z->iov[i].iov_len, MADV_DONTNEED) < 0)
			return -errno;
	}
	return 0;
}

int mem_zap_flush(struct mem_zap *z)
{
	unsigned done = 0;
	int r = 0;
#if defined(SYS_process_madvise)
	while (z->pidfd >= 0 && done < z->n) {
		z->calls++;
		long got = syscall(SYS_process_madvise, z->pidfd, z->iov + done,
				   z->n - done, MADV_DONTNEED, 0);
		if (got < 0) {
			/* Not this kernel's (or not for this advice): the
			 * plain call from here on. */
			if (errno == EINVAL || errno == ENOSYS || errno == EPERM) {
				close(z->pidfd);
				z->pidfd = -1;
				break;
			}
			r = -errno;
			break;
		}
		/* A short count ends inside a range: whole ones first,
		 * then the rest of a cut one. */
		size_t left = (size_t)got;
		while (done < z->n && left >= z->iov[done].iov_len)
			left -= z->iov[done++].iov_len;
		if (left && done < z->n) {
			z->iov[done].iov_base = (char *)z->iov[done].iov_base + left;
			z->iov[done].iov_len -= left;
		}
		if (!got)
			break;  /* no progress: let the plain call say why */
	}
#endif
	if (!r && done < z->n)
		r = one_by_one(z, done);
	z->n = 0;
	return r;
}

int mem_zap_add(struct mem_zap *z, void *hva, size_t len)
{
	if (!len)
		return 0;
	/* Adjacent to the last range: one range. */
	if (z->n && (char *)z->iov[z->n - 1].iov_base + z->iov[z->n - 1].iov_len == hva) {
		z->iov[z->n - 1].iov_len += len;
		return 0;
	}
	if (z->n == ZAP_BATCH) {
		int r = mem_zap_flush(z);
		if (r)
			return r;
	}
	z->iov[z->n].iov_base = hva;
	z->iov[z->n].iov_len = len;
	z->n++;
	return 0;
}

void mem_zap_fini(struct mem_zap *z)
{
	if (z->pidfd >= 0)
		close(z->pidfd);
	z->pidfd = -1;
	z->n = 0;
}
