/*
 * fuzz_hello - the HELLO a destination receives and the CONFIG record a
 * restore reads: the machine description (vmm/machine_desc.c: layout,
 * vCPUs, CPUID, exit port, the device set) and the capabilities
 * (migration/caps.c), both the destination's negotiation and the
 * source's check of the ACCEPT it gets back.
 *
 * Input: the JSON text.  The CPUID check runs against KVM's supported
 * list where /dev/kvm exists, else (this project's CI machine) against
 * the fixture's table (fuzz_host_cpuid) as the host's.
 */
#include "fuzz_common.h"
#include "migration/caps.h"
#include "util/log.h"
#include "vmm/machine_desc.h"
#include "vmm/vm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

static int kvm_fd = -1;
static struct vm *machine;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	/* The device check only reads the machine: one for all inputs. */
	machine = fuzz_machine(2u << 20, 1, false);
	return 0;
}

static void check_err(int r, const char *err)
{
	/* A refusal always says why. */
	if (r && !err[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *h = json_loadb((const char *)data, size, 0, &jerr);
	char err[ERR_MAX];
	int r;

	if (!h)
		return 0;

	/* The destination's side of the capabilities... */
	struct mig_caps agreed;
	err[0] = 0;
	r = mig_caps_negotiate(json_object_get(h, "capabilities"), &agreed, err);
	fuzz_note("mig_caps_negotiate", r, err);
	check_err(r, err);
	if (!r) {
		json_t *acc = mig_caps_accept_json(&agreed);
		if (!acc)
			abort();
		json_decref(acc);
	}
	/* ...and the source's, reading this as an ACCEPT to its default
	 * offer and to an offer with every capability mandatory. */
	struct mig_caps offer, got;
	mig_caps_default(&offer);
	err[0] = 0;
	check_err(mig_caps_accepted(h, &offer, &got, err), err);
	offer.mandatory = (1u << MIG_CAP_COUNT) - 1;
	err[0] = 0;
	check_err(mig_caps_accepted(h, &offer, &got, err), err);

	/* The machine description. */
	struct vm_config cfg = { 0 };
	struct kvm_cpuid2 *cpuid = NULL;
	err[0] = 0;
	/* A host with 1 GiB to give, a --max-memory of 64 MiB and, without
	 * KVM, the fixture's CPUID as its supported list. */
	struct machine_host host = { .memory = 1u << 30, .max_memory = 64u << 20,
				     .cpuid = kvm_fd < 0 ? fuzz_host_cpuid() : NULL };
	r = machine_desc_check(h, &host, &cfg, &cpuid, err);
	fuzz_note("machine_desc_check", r, err);
	check_err(r, err);
	if (!r && kvm_fd >= 0) {
		r = machine_desc_check_cpuid(cpuid, kvm_fd, err);
		check_err(r, err);
	}
	if (!r && (!cpuid || cfg.vcpus < 1 || cfg.vcpus > VM_MAX_VCPUS))
		abort();
	free(cpuid);
	err[0] = 0;
	r = machine_desc_check_devices(h, machine, err);
	fuzz_note("machine_desc_check_devices", r, err);
	check_err(r, err);
	json_decref(h);
	return 0;
}
