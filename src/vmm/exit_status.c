/*
 * exit_status.c - a guest's exit code as the process's exit status (see
 * exit_status.h).
 */
#include "vmm/exit_status.h"

#include <signal.h>
#include <stdio.h>

int exit_status_for_guest(uint64_t code, char *why, size_t len)
{
	const char *clash = NULL;

	if (code > 255) {
		if (why && len)
			snprintf(why, len,
				 "the guest's exit code %llu does not fit in an exit "
				 "status (0 to 255)", (unsigned long long)code);
		return EXIT_GUEST_FAILED;
	}
	if (code == EXIT_USAGE)
		clash = "a bad command line";
	else if (code == EXIT_VMM_ERROR)
		clash = "a VMM failure";
	else if (code == EXIT_SIGNAL(SIGINT))
		clash = "SIGINT";
	else if (code == EXIT_SIGNAL(SIGTERM))
		clash = "SIGTERM";
	if (clash) {
		if (why && len)
			snprintf(why, len,
				 "the guest's exit code %llu is ferry's status for %s",
				 (unsigned long long)code, clash);
		return EXIT_GUEST_FAILED;
	}
	return (int)code;
}
