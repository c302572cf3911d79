#include "migration/hello.h"
#include "vmm/machine_desc.h"

json_t *hello_build(struct vm *vm, const struct mig_caps *offer)
{
	json_t *h = machine_desc_build(vm);
	if (h && json_object_set_new(h, "capabilities", mig_caps_offer_json(offer))) {
		json_decref(h);
		return NULL;
	}
	return h;
}
