/* QEMU's isa-debug-exit status convention, and the --exit-port names. */
#include <criterion/criterion.h>

#include "devices/debugexit.h"
#include "vmm/vm.h"

Test(debugexit, status_is_value_shifted_left_with_bit_0_set)
{
	cr_assert_eq(debugexit_status(0), 1);
	cr_assert_eq(debugexit_status(1), 3);
	cr_assert_eq(debugexit_status(2), 5);
	cr_assert_eq(debugexit_status(0x7f), 0xff);
	/* A process status has 8 bits: what the shell sees under QEMU too. */
	cr_assert_eq(debugexit_status(0x80), 1);
	cr_assert_eq(debugexit_status(0xffffffffu), 0xff);
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
