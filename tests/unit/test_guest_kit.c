/* The test guest's limits agree with the VMM's. */
#include <criterion/criterion.h>

#include "vmm/vm.h"
#include "../../guests/layout.h"

/* Issue 11: the kit stopped at 32 vCPUs while ferry runs 64; the APs past
 * 32 parked and the guest counted fewer CPUs than it was given. */
Test(guest_kit, starts_as_many_vcpus_as_ferry_runs)
{
	cr_assert_eq(MAX_CPUS, VM_MAX_VCPUS);
}
