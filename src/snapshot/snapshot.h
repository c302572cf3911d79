/*
 * snapshot.h - suspend/resume: the whole machine (configuration, vCPU and
 * device state, memory) in one file.  Format: docs/snapshot-format.md.
 */
#ifndef FERRY_SNAPSHOT_H
#define FERRY_SNAPSHOT_H

#include "vmm/vm.h"

/**
 * snapshot_check_target() - whether a snapshot may be written to @path: a
 * new path or an existing regular file (which the snapshot replaces).
 * A symbolic link, a device (/dev/null), a FIFO, a socket or a directory
 * is refused with @err saying what it is.
 * Return: 0 or negative errno.
 */
int snapshot_check_target(const char *path, char *err);

/* Write vm to path (see snapshot_check_target()).  Pauses the vCPUs for
 * the duration and restores the previous run state after.  On failure
 * nothing is left at path. */
int snapshot_save(struct vm *vm, const char *path, char *err);

/* Read the configuration part of a snapshot (to create the VM): memory,
 * vCPUs and the guest's CPUID (cfg->cpuid, malloc'd: the caller frees it
 * once the VM exists), checked against this host as a migration's
 * destination would. */
int snapshot_read_config(const char *path, struct vm_config *cfg,
			 char *err);
/* Load memory and state from path into a freshly created, not started vm. */
int snapshot_restore(struct vm *vm, const char *path, char *err);

#endif
