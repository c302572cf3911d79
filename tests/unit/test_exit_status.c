/* The exit-status rule for a guest's code (README, "Exit status"). */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "vmm/exit_status.h"

Test(exit_status, codes_that_fit_pass_through)
{
	static const unsigned codes[] = { 0, 1, 3, 42, 119, 121, 129, 255 };
	char why[128];

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		why[0] = '\0';
		cr_expect_eq(exit_status_for_guest(codes[i], why, sizeof(why)),
			     (int)codes[i], "code %u", codes[i]);
		cr_expect_str_empty(why, "code %u: %s", codes[i], why);
	}
}

Test(exit_status, codes_past_8_bits_fail_and_say_so)
{
	char why[128] = "";

	cr_expect_eq(exit_status_for_guest(256, why, sizeof(why)), EXIT_GUEST_FAILED);
	cr_expect(strstr(why, "256 does not fit"), "%s", why);
	cr_expect_eq(exit_status_for_guest(512, NULL, 0), EXIT_GUEST_FAILED);
	cr_expect_eq(exit_status_for_guest(0x1ffffffffULL, why, sizeof(why)),
		     EXIT_GUEST_FAILED);
}

Test(exit_status, codes_of_the_vmm_itself_are_not_passed_on)
{
	char why[128] = "";

	cr_expect_eq(exit_status_for_guest(EXIT_USAGE, why, sizeof(why)), EXIT_GUEST_FAILED);
	cr_expect(strstr(why, "bad command line"), "%s", why);
	cr_expect_eq(exit_status_for_guest(EXIT_VMM_ERROR, why, sizeof(why)),
		     EXIT_GUEST_FAILED);
	cr_expect(strstr(why, "120 is ferry's status for a VMM failure"), "%s", why);
	cr_expect_eq(exit_status_for_guest(EXIT_SIGNAL(SIGINT), why, sizeof(why)),
		     EXIT_GUEST_FAILED);
	cr_expect_eq(exit_status_for_guest(EXIT_SIGNAL(SIGTERM), why, sizeof(why)),
		     EXIT_GUEST_FAILED);
	cr_expect(strstr(why, "SIGTERM"), "%s", why);
	/* The table's numbers, as the README gives them. */
	cr_expect_eq(EXIT_USAGE, 2);
	cr_expect_eq(EXIT_VMM_ERROR, 120);
	cr_expect_eq(EXIT_SIGNAL(SIGINT), 130);
	cr_expect_eq(EXIT_SIGNAL(SIGTERM), 143);
	cr_expect_eq(EXIT_FAULT_INJECTED, 99);
}
