/*
 * ucall.h - guest-side helpers in the style of the kernel's KVM selftests.
 *
 * Under Ferry these reach the host through the ucall port (PORT_UCALL);
 * under QEMU (no ucall device) they only print on COM1.
 *
 *   GUEST_SYNC(stage)          UCALL_SYNC, args[0] = stage
 *   GUEST_PRINT(fmt, ...)      a line on COM1 and UCALL_PRINT
 *   GUEST_ASSERT(cond)         on failure: UCALL_ASSERT with file/line,
 *                              a line on COM1, exit code 4
 *   GUEST_ASSERT_2(cond, a, b) same, with two values in args[0..1]
 */
#ifndef GUEST_UCALL_H
#define GUEST_UCALL_H

#include "guest.h"

#define GUEST_SYNC(stage)						\
	do {								\
		uint64_t __a = (uint64_t)(stage);			\
		ucall_send(UCALL_SYNC, __FILE__, __LINE__, "", &__a, 1); \
	} while (0)

#define GUEST_PRINT(fmt, ...)						\
	do {								\
		char __m[128];						\
		snprintf_(__m, sizeof(__m), fmt, ##__VA_ARGS__);	\
		printf_("%s\n", __m);					\
		ucall_send(UCALL_PRINT, __FILE__, __LINE__, __m, 0, 0); \
	} while (0)

#define GUEST_ASSERT_2(cond, a, b)					\
	do {								\
		if (!(cond))						\
			guest_assert_fail(__FILE__, __LINE__, #cond,	\
					  (uint64_t)(a), (uint64_t)(b)); \
	} while (0)

#define GUEST_ASSERT(cond) GUEST_ASSERT_2(cond, 0, 0)

#endif
