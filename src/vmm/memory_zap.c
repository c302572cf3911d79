/* Dropping many ranges of memory at once (memory_zap.h). */
#include "vmm/memory_zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

void mem_zap_init(struct mem_zap *z)
{
	z->iov = NULL;
	z->n = z->cap = 0;
	z->calls = 0;
#if defined(SYS_pidfd_open) && defined(SYS_process_madvise)
	z->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
	z->pidfd = -1;
#endif
}

/* One thread's share: ranges [from, to) of z, ZAP_BATCH per call. */
struct share {
	struct mem_zap *z;
	size_t from, to;
	uint64_t calls;
	bool no_batch;   /* the kernel refused the batched call */
	int r;
};

static void *drop_share(void *arg)
{
	struct share *s = arg;
	struct iovec *iov = s->z->iov;
	size_t done = s->from;
#if defined(SYS_process_madvise)
	while (s->z->pidfd >= 0 && done < s->to) {
		size_t n = s->to - done < ZAP_BATCH ? s->to - done : ZAP_BATCH;
		s->calls++;
		long got = syscall(SYS_process_madvise, s->z->pidfd, iov + done, n,
				   MADV_DONTNEED, 0);
		if (got < 0) {
			/* Not this kernel's (or not for this advice): the
			 * plain call from here on. */
			if (errno == EINVAL || errno == ENOSYS || errno == EPERM) {
				s->no_batch = true;
				break;
			}
			s->r = -errno;
			return NULL;
		}
		/* A short count ends inside a range: whole ones first,
		 * then the rest of a cut one. */
		size_t left = (size_t)got;
		while (done < s->to && left >= iov[done].iov_len)
			left -= iov[done++].iov_len;
		if (left && done < s->to) {
			iov[done].iov_base = (char *)iov[done].iov_base + left;
			iov[done].iov_len -= left;
		}
		if (!got)
			break;  /* no progress: let the plain call say why */
	}
#endif
	for (; done < s->to; done++) {
		s->calls++;
		if (madvise(iov[done].iov_base, iov[done].iov_len, MADV_DONTNEED) < 0) {
			s->r = -errno;
			return NULL;
		}
	}
	return NULL;
}

int mem_zap_flush(struct mem_zap *z)
{
	/* Many ranges: half of them on a second thread.  The pause this
	 * runs in leaves the cores idle (no vCPU runs on either side), and
	 * the kernel drops ranges of one process side by side. */
	struct share a = { .z = z, .from = 0, .to = z->n }, b = a;
	pthread_t t;
	bool two = z->n >= ZAP_SPLIT_MIN;
	if (two) {
		a.to = b.from = z->n / 2;
		two = pthread_create(&t, NULL, drop_share, &b) == 0;
		if (!two)
			a.to = z->n;
	}
	drop_share(&a);
	if (two)
		pthread_join(t, NULL);
	z->calls += a.calls + (two ? b.calls : 0);
	if ((a.no_batch || (two && b.no_batch)) && z->pidfd >= 0) {
		close(z->pidfd);
		z->pidfd = -1;
	}
	z->n = 0;
	return a.r ? a.r : two ? b.r : 0;
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
	if (z->n == z->cap) {
		size_t cap = z->cap ? 2 * z->cap : ZAP_BATCH;
		struct iovec *v = realloc(z->iov, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		z->iov = v;
		z->cap = cap;
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
	free(z->iov);
	z->iov = NULL;
	z->n = z->cap = 0;
}
