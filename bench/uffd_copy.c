/*
 * uffd_copy - what placing a page with UFFDIO_COPY costs on this machine,
 * one page per call and in runs, against memcpy into never-touched
 * anonymous memory (docs/platform-userfaultfd.md).  Needs root.
 *
 *   cc -O2 -o build/uffd_copy bench/uffd_copy.c && build/uffd_copy [MiB]
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t len = (argc > 1 ? strtoull(argv[1], NULL, 0) : 256) << 20;
	static char src[64 * PAGE];
	memset(src, 7, sizeof(src));
	for (int batch = 1; batch <= 64; batch *= 4) {
		int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		struct uffdio_api a = { .api = UFFD_API };
		if (fd < 0 || ioctl(fd, UFFDIO_API, &a)) {
			perror("userfaultfd");
			return 1;
		}
		char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		struct uffdio_register r = {
			.range = { (unsigned long)m, len },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (m == MAP_FAILED || ioctl(fd, UFFDIO_REGISTER, &r)) {
			perror("register");
			return 1;
		}
		double t0 = now();
		for (size_t o = 0; o < len; o += (size_t)batch * PAGE) {
			struct uffdio_copy c = { .dst = (unsigned long)m + o,
						 .src = (unsigned long)src,
						 .len = (unsigned long)batch * PAGE };
			if (ioctl(fd, UFFDIO_COPY, &c)) {
				perror("UFFDIO_COPY");
				return 1;
			}
		}
		double t = now() - t0;
		printf("{\"uffdio_copy_pages_per_call\": %d, \"mb_per_s\": %.0f, \"us_per_page\": %.2f}\n",
		       batch, len / t / 1e6, t / (len / PAGE) * 1e6);
		munmap(m, len);
		close(fd);
	}
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	double t0 = now();
	for (size_t o = 0; o < len; o += PAGE)
		memcpy(m + o, src, PAGE);
	double t = now() - t0;
	printf("{\"memcpy_into_fresh_memory\": true, \"mb_per_s\": %.0f, \"us_per_page\": %.2f}\n",
	       len / t / 1e6, t / (len / PAGE) * 1e6);
	munmap(m, len);
	return 0;
}
