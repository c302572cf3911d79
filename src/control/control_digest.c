/* query-memory-digest (control_digest.h). */
#include "control/control_digest.h"

#include "util/log.h"
#include "vmm/memory_digest.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdint.h>

static json_t *u64_json(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

int control_memory_digest(struct vm *vm, json_t **out, char *err)
{
	struct memory_digest d;
	char hex[MEMORY_DIGEST_HEX];

	*out = NULL;
	if (!vm)
		return err_set(err, -ENODEV,
			       "there is no VM yet (an incoming migration has not built it)");
	/* Commands run one at a time on the control thread, so no `cont`
	 * can come between this check and the hash; the holds below are the
	 * only other way a paused guest starts again. */
	enum vm_status st = vm_get_status(vm);
	if (st == VM_STATUS_RUNNING)
		return err_set(err, -EBUSY,
			       "the VM is running; its memory changes while it is hashed: 'stop' it first");
	if (st == VM_STATUS_SAVING || st == VM_STATUS_FINISH_MIGRATE)
		return err_set(err, -EBUSY,
			       "the VM is in state '%s' and may resume any moment; try again when it is done",
			       vm_status_name(st));
	int r = memory_digest(&vm->mem, &d);
	if (r)
		return err_set(err, r, "out of memory");
	json_t *regions = json_array();
	for (unsigned i = 0; regions && i < d.nregions; i++) {
		memory_digest_hex(d.region[i].digest, hex);
		json_array_append_new(regions, json_pack("{s:o,s:o,s:s}",
			"gpa", u64_json(d.region[i].gpa),
			"size", u64_json(d.region[i].size), "digest", hex));
	}
	memory_digest_hex(d.whole, hex);
	*out = json_pack("{s:s,s:s,s:o}", "algorithm", MEMORY_DIGEST_ALGORITHM,
			 "digest", hex, "regions", regions);
	return *out ? 0 : err_set(err, -ENOMEM, "out of memory");
}
