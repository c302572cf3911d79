/* What a ferry process's threads cost and what it holds, from /proc
 * (harness.h). */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Fields 14 and 15 of /proc/PID/task/TID/stat (utime, stime: guest time
 * counts in utime).  The name in field 2 may hold spaces and brackets,
 * so the fields are counted from its last ')'. */
static bool thread_ticks(pid_t pid, const char *tid, const char *name,
			 unsigned long long *ticks)
{
	char path[300], line[512];
	snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;   /* the thread just ended */
	bool ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	char *open = strchr(line, '('), *close = strrchr(line, ')');
	if (!ok || !open || !close || close < open)
		return false;
	*close = '\0';
	if (strcmp(open + 1, name))
		return false;
	unsigned long long ut, st;
	if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return false;
	*ticks = ut + st;
	return true;
}

double h_thread_cpu_s(struct h_vm *vm, const char *name)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)vm->pid);
	DIR *d = opendir(path);
	h_assert(d != NULL, "cannot read %s of %s", path, vm->name);
	unsigned long long sum = 0, t;
	bool found = false;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && thread_ticks(vm->pid, e->d_name, name, &t)) {
			sum += t;
			found = true;
		}
	closedir(d);
	h_assert(found, "%s has no thread named %s", vm->name, name);
	return (double)sum / (double)sysconf(_SC_CLK_TCK);
}

double h_rss_mib(struct h_vm *vm)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)vm->pid);
	FILE *f = fopen(path, "r");
	h_assert(f != NULL, "cannot read %s of %s", path, vm->name);
	while (kib < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) != 1)
			kib = -1;
	fclose(f);
	h_assert(kib >= 0, "%s has no VmRSS in %s", vm->name, path);
	return (double)kib / 1024;
}
