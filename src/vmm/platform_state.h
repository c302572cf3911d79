/*
 * platform_state.h - the VM-wide state KVM keeps in the kernel: the PIC
 * pair and IOAPIC, the PIT, and kvmclock.  Each is a port-less device on
 * the VM's device list, so it is saved and restored like every other.
 */
#ifndef FERRY_PLATFORM_STATE_H
#define FERRY_PLATFORM_STATE_H

struct vm;

int platform_state_create(struct vm *vm);

#endif
