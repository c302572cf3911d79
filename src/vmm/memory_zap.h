/*
 * memory_zap.h - drop many ranges of guest memory (MADV_DONTNEED) in few
 * system calls.  A hybrid migration's switch to post-copy drops every
 * page the guest dirtied since pre-copy sent it - tens of thousands of
 * scattered runs, inside the pause.  One madvise per run cost ~10 us
 * each here (the call, the page-table walk and KVM's invalidation);
 * process_madvise() takes up to ZAP_BATCH ranges per call.  Where the
 * kernel refuses MADV_DONTNEED through process_madvise (before Linux
 * 6.13 on one's own process), each range gets its own madvise.  Ranges
 * are queued until the flush, which splits a long list over two threads
 * (tens of milliseconds of dropping halved: the pause leaves both cores
 * idle).
 */
#ifndef FERRY_VMM_MEMORY_ZAP_H
#define FERRY_VMM_MEMORY_ZAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define ZAP_BATCH 1024       /* ranges per call: UIO_MAXIOV */
#define ZAP_SPLIT_MIN 4096   /* ranges worth a second thread */

struct mem_zap {
	struct iovec *iov;   /* queued, malloc'd */
	size_t n, cap;
	int pidfd;        /* this process, for process_madvise; -1: madvise */
	uint64_t calls;   /* system calls made (tests, figures) */
};

void mem_zap_init(struct mem_zap *z);
/* Queue [hva, hva+len).  0 or -ENOMEM. */
int mem_zap_add(struct mem_zap *z, void *hva, size_t len);
/* Drop everything queued.  0 or -errno. */
int mem_zap_flush(struct mem_zap *z);
void mem_zap_fini(struct mem_zap *z);

#endif
