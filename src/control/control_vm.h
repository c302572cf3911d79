/*
 * control_vm.h - what the control commands act on.
 *
 * call->opaque is the process's struct instance (vmm/instance.h), not a
 * VM: a migration destination serves its socket before any VM exists.
 * A command that needs the VM starts with
 *
 *	struct vm *vm = control_vm(call);
 *	if (!vm)
 *		return -ENODEV;
 *
 * (control_vm has filled call->err: "there is no VM here yet ...").
 * The VM it returns is complete and lives until the control thread stops.
 */
#ifndef FERRY_CONTROL_VM_H
#define FERRY_CONTROL_VM_H

#include "control/control_proto.h"

struct vm;
struct instance;
struct destination;

/* The VM, or NULL with call->err saying why there is none. */
struct vm *control_vm(struct control_call *call);
/* The process object. */
struct instance *control_instance(struct control_call *call);
/* The incoming migration (`--incoming`), or NULL if this is no
 * destination. */
struct destination *control_destination(struct control_call *call);

#endif
