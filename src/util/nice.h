/*
 * nice.h - lower the calling thread's CPU priority.  On Linux the nice
 * value belongs to each thread (setpriority on its thread id), and
 * raising it needs no right.  Post-copy's scan for zero pages runs this
 * way right after the hand-over: on a host whose cores the guest keeps
 * busy, the threads that serve a faulting vCPU must not wait behind it.
 */
#ifndef FERRY_UTIL_NICE_H
#define FERRY_UTIL_NICE_H

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void thread_nice(int nice)
{
	/* Best effort: a failure leaves the thread as it was. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

#endif
