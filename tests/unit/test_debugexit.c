/* QEMU's isa-debug-exit status convention, and the --exit-port names. */
#include <criterion/criterion.h>

#include "devices/debugexit.h"
#include "vmm/vm.h"
#include "vmm/vcpu.h"
#include "vmm/machine_desc.h"
#include "util/log.h"

#include <jansson.h>
#include <stdio.h>

Test(debugexit, status_is_value_shifted_left_with_bit_0_set)
{
	cr_assert_eq(debugexit_status(0), 1);
	cr_assert_eq(debugexit_status(1), 3);
	cr_assert_eq(debugexit_status(2), 5);
	cr_assert_eq(debugexit_status(0x7f), 0xff);
	/* Uncut: QEMU's 8-bit truncation made 0x80 read as 1. */
	cr_assert_eq(debugexit_status(0x80), 0x101);
	cr_assert_eq(debugexit_status(0xffffffffu), 0x1ffffffffULL);
}

Test(debugexit, exit_port_names)
{
	enum vm_exit_port p = VM_EXIT_PORT_ISA_DEBUG_EXIT;
	cr_assert_eq(vm_parse_exit_port("ferry", &p), 0);
	cr_assert_eq(p, VM_EXIT_PORT_FERRY);
	cr_assert_eq(vm_parse_exit_port("isa-debug-exit", &p), 0);
	cr_assert_eq(p, VM_EXIT_PORT_ISA_DEBUG_EXIT);
	cr_assert_str_eq(vm_exit_port_name(p), "isa-debug-exit");
	cr_assert_str_eq(vm_exit_port_name(VM_EXIT_PORT_FERRY), "ferry");
	cr_assert_neq(vm_parse_exit_port("qemu", &p), 0);
	cr_assert_neq(vm_parse_exit_port("", &p), 0);
}

/* The machine description carries the convention; one it does not know
 * is refused before anything else is built (no KVM needed to get there). */
Test(debugexit, machine_description_refuses_an_unknown_exit_port)
{
	static const char *const bad[][2] = {
		{ "\"bogus\"", "exit-port bogus is unknown here" },
		{ "5", "exit-port (not a string) is unknown here" },
	};
	for (size_t i = 0; i < 2; i++) {
		char txt[512], err[ERR_MAX] = "";
		snprintf(txt, sizeof(txt),
			 "{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096,"
			 " \"slots\": [{\"gpa\": 0, \"size\": 16777216}],"
			 " \"vcpu-state-version\": %d, \"devices\": [], \"cpuid\": [],"
			 " \"exit-port\": %s}", VCPU_STATE_VERSION, bad[i][0]);
		json_t *d = json_loads(txt, 0, NULL);
		cr_assert(d, "%s", txt);
		struct vm_config cfg = { 0 };
		struct kvm_cpuid2 *cpuid = NULL;
		struct machine_host host = { .memory = 1ULL << 30 };
		cr_assert_neq(machine_desc_check(d, &host, &cfg, &cpuid, err), 0);
		cr_assert_str_eq(err, bad[i][1]);
		cr_assert_null(cpuid);
		json_decref(d);
	}
}
