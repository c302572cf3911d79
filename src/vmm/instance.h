/*
 * instance.h - one `ferry run` process: the VM once there is one, the
 * incoming migration that may be building it, and the request to end.
 *
 * The control socket's commands reach the VM through here (control_vm()),
 * because a destination serves its socket before any VM exists.  The VM is
 * published once, complete (its vCPU threads exist and its state is
 * loaded), and stays until the process tears down after the control
 * thread has stopped: a command never sees a half-built VM nor a freed one.
 */
#ifndef FERRY_INSTANCE_H
#define FERRY_INSTANCE_H

#include <pthread.h>
#include <stdbool.h>

struct vm;
struct destination;

struct instance {
	pthread_mutex_t lock;
	struct vm *vm;               /* published with instance_set_vm */
	struct destination *incoming; /* --incoming: the migration building the VM */
	bool quit_requested;
	int exit_code;
	int wake_fd;                 /* eventfd: quit requested or incoming ended */
};

/* Returns 0 or a negative errno (the wake-up eventfd). */
int instance_init(struct instance *inst);
/* Frees what instance_init made; the VM and the destination are the
 * caller's to destroy first. */
void instance_fini(struct instance *inst);

/**
 * instance_set_vm() - publish the complete VM to the control commands.
 * Once only.  If a quit was requested before, the VM is told at once.
 */
void instance_set_vm(struct instance *inst, struct vm *vm);

/**
 * instance_vm() - the VM, or NULL while there is none (an incoming
 * migration has not completed).  Safe from any thread.
 */
struct vm *instance_vm(struct instance *inst);

/**
 * instance_request_quit() - end the process with exit_code (the first
 * request wins): the VM is told if there is one, an incoming migration is
 * cancelled otherwise, and the main thread is woken.
 */
void instance_request_quit(struct instance *inst, int exit_code);
/* Has a quit been requested?  *code, if not NULL, gets its exit code. */
bool instance_quit_requested(struct instance *inst, int *code);
/* Wake the main thread (it re-checks everything). */
void instance_wake(struct instance *inst);

#endif
