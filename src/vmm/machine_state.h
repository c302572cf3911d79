/*
 * machine_state.h - the whole machine's state (every device, every vCPU)
 * as typed records, for snapshots and migration alike.  Each record has one
 * owner: a device (by name) or a vCPU (by index), with its own version.
 *
 *   DEVICE record: u32 name length, name, u32 version, device state
 *   VCPU record:   u32 index, u32 version, vCPU state
 */
#ifndef FERRY_MACHINE_STATE_H
#define FERRY_MACHINE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vm.h"

/* Record types shared by the snapshot file and the migration stream. */
#define STATE_REC_DEVICE 2
#define STATE_REC_VCPU   3

typedef int (*state_emit_fn)(void *ctx, uint32_t type, const void *data,
			     size_t len);

/* Save every device and vCPU (the VM must be paused); emit() is called
 * once per record.  Returns 0 or the first error. */
int machine_state_save(struct vm *vm, state_emit_fn emit, void *ctx,
		       char *err);

struct machine_state_loader {
	struct vm *vm;
	bool dev_seen[VM_MAX_DEVICES];
	bool vcpu_seen[VM_MAX_VCPUS];
};

void machine_state_loader_init(struct machine_state_loader *l,
			       struct vm *vm);
/* Load one DEVICE or VCPU record. */
int machine_state_load(struct machine_state_loader *l, uint32_t type,
		       const void *payload, size_t len, char *err);
/* Every device and vCPU must have been loaded exactly once. */
int machine_state_loader_finish(struct machine_state_loader *l, char *err);

#endif
