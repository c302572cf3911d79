#include "vmm/io_unhandled.h"

bool io_unhandled_note(struct io_unhandled *u, enum io_space space,
		       uint64_t addr, bool is_write)
{
	for (unsigned i = 0; i < u->n; i++) {
		struct io_unhandled_entry *e = &u->e[i];
		if (e->space == space && e->addr == addr) {
			if (is_write)
				e->writes++;
			else
				e->reads++;
			return false;
		}
	}
	if (u->n == IO_UNHANDLED_MAX) {
		u->untracked++;
		return false;
	}
	u->e[u->n++] = (struct io_unhandled_entry){
		.space = space, .addr = addr,
		.reads = !is_write, .writes = is_write,
	};
	return true;
}
