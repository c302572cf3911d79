/* source.h - the outgoing migration's shared state (source.c, precopy.c). */
#ifndef FERRY_MIG_SOURCE_H
#define FERRY_MIG_SOURCE_H

#include <pthread.h>
#include <stdbool.h>

#include "migration/migration.h"
#include "migration/stats.h"

struct migration {
	struct vm *vm;
	pthread_mutex_t lock;      /* guards everything below */
	pthread_cond_t cond;
	struct mig_params defaults;
	struct mig_params p;       /* this migration's */
	char uri[512];
	bool thread_running;
	bool thread_joinable;
	pthread_t thread;
	bool cancel;
	char cancel_why[160];      /* told to the destination */
	int fd;                    /* the connection, for cancel */
	struct mig_stats stats;
	/* Post-copy: migrate-start-postcopy asked for the switch; whether the
	 * destination agreed to post-copy (-1: not negotiated yet; else
	 * 0/1, with why it did not in postcopy_why). */
	bool start_postcopy;
	int postcopy_agreed;
	struct pc_source *pcs;     /* while post-copy serves pages */
	/* migrate "resume": true on a paused post-copy: reconnect to
	 * resume_uri (precopy.c takes it and clears resume). */
	bool resume;
	char resume_uri[512];
	int aux_fd;                /* a further connection being opened, for cancel */
	char postcopy_why[160];
};

/* The migration thread's body (precopy.c). */
void precopy_run(struct migration *m);

/* Helpers for precopy.c to publish progress under m->lock. */
void migration_set_status(struct migration *m, enum mig_status st);
bool migration_cancelled(struct migration *m);

/* A test hook (migrate's "x-fault"): if this migration was asked to die
 * @here, end the process now, with status 99, as a crashed host would.
 * Returns 0 otherwise, so a hook fits in a condition. */
int migration_fault_point(struct migration *m, enum mig_fault here);

#endif
