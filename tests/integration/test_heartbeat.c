/*
 * The heartbeat checker itself (harness/heartbeat.c): sequences with
 * gaps, repeats and wrap-around, and an observer fed over real Unix
 * sockets by two "VMMs" one after the other, as a migration does.
 */
#include "harness/harness.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

TestSuite(heartbeat, H_FIXTURES, .timeout = 60);

static struct h_hb_result scan(const uint8_t *b, size_t n)
{
	struct h_hb_result r;

	h_hb_scan(b, NULL, n, &r);
	return r;
}

Test(heartbeat, sequence_in_order_and_across_the_wrap)
{
	uint8_t b[600];

	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i + 200);
	struct h_hb_result r = scan(b, sizeof(b));
	h_assert(r.beats == 600 && r.gaps == 0 && r.repeats == 0 &&
		 r.lost == 0 && r.first_bad == SIZE_MAX,
		 "gaps %llu repeats %llu", (unsigned long long)r.gaps,
		 (unsigned long long)r.repeats);
	h_assert(r.max_gap_ms < 0, "no times, yet a gap of %f ms", r.max_gap_ms);
}

Test(heartbeat, lost_beats_are_a_gap)
{
	const uint8_t b[] = { 10, 11, 12, 16, 17, 254, 255, 3, 4 };
	struct h_hb_result r = scan(b, sizeof(b));
	/* 13..15 lost (3), 18..253 lost (236 > 127: reads as a repeat),
	 * 0..2 lost across the wrap (3) */
	h_assert(r.gaps == 2 && r.lost == 6, "gaps %llu lost %llu",
		 (unsigned long long)r.gaps, (unsigned long long)r.lost);
	h_assert(r.repeats == 1, "repeats %llu", (unsigned long long)r.repeats);
	h_assert(r.first_bad == 3, "first_bad %zu", r.first_bad);
}

Test(heartbeat, a_second_copy_is_a_repeat)
{
	/* The source beat 40..50; a second copy started from the state at
	 * 45 goes on beside it. */
	const uint8_t b[] = { 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50,
			      46, 47, 48, 48 };
	struct h_hb_result r = scan(b, sizeof(b));
	h_assert(r.repeats == 2 && r.gaps == 0, "repeats %llu gaps %llu",
		 (unsigned long long)r.repeats, (unsigned long long)r.gaps);
	h_assert(r.first_bad == 11, "first_bad %zu", r.first_bad);
}

Test(heartbeat, files_in_order_form_one_timeline)
{
	uint8_t a[100], b[50];

	for (unsigned i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)i;
	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(100 + i);
	h_write_file(h_path("src.hb"), a, sizeof(a));
	h_write_file(h_path("dst.hb"), b, sizeof(b));
	struct h_hb_result r;
	h_hb_check_files(&r, h_path("src.hb"), h_path("dst.hb"), NULL);
	h_assert(r.beats == 150 && r.gaps == 0 && r.repeats == 0, "clean pair");
	/* The destination starting from an older state than the source's
	 * last beat: the same beats twice. */
	h_write_file(h_path("dst.hb"), a + 90, 10);
	h_hb_check_files(&r, h_path("src.hb"), h_path("dst.hb"), NULL);
	h_assert(r.repeats == 1 && r.first_bad == 100, "repeats %llu",
		 (unsigned long long)r.repeats);
	uint64_t gaps = 9, reps = 9;
	double gap = 0;
	h_assert(h_heartbeat_check(h_path("src.hb"), &gaps, &reps, &gap) == 100,
		 "beats");
	h_assert(gaps == 0 && reps == 0 && gap < 0, "one clean file");
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	h_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		 "connect %s: %s", path, strerror(errno));
	return fd;
}

/* Beats from @first, one every ms, @n of them. */
static uint8_t send_beats(int fd, uint8_t first, unsigned n)
{
	for (unsigned i = 0; i < n; i++, first++) {
		h_assert(write(fd, &first, 1) == 1, "write: %s", strerror(errno));
		h_sleep_ms(1);
	}
	return first;
}

Test(heartbeat, observer_times_the_silence_between_two_connections)
{
	struct h_hb_observer *o = h_hb_observe("obs");
	int src = connect_unix(h_hb_observer_path(o));
	double t0 = h_now();
	uint8_t next = send_beats(src, 0, 300);
	close(src);
	double stop = h_now();
	h_sleep_ms(300);
	int dst = connect_unix(h_hb_observer_path(o));
	double resume = h_now();
	send_beats(dst, next, 200);
	h_assert(h_wait_for(({
		struct h_hb_result q;
		h_hb_observer_result(o, t0, h_now(), &q);
		q.beats == 500; }), 5), "not all beats arrived");
	close(dst);

	struct h_hb_result r;
	h_hb_observer_result(o, t0, h_now(), &r);
	h_assert(r.gaps == 0 && r.repeats == 0, "gaps %llu repeats %llu",
		 (unsigned long long)r.gaps, (unsigned long long)r.repeats);
	h_assert(r.max_gap_ms >= 290 && r.max_gap_ms <= (resume - stop) * 1000 + 200,
		 "longest gap %.1f ms, paused %.1f ms", r.max_gap_ms,
		 (resume - stop) * 1000);
	h_assert(r.max_gap_end >= resume, "the longest gap ended at %.3f, "
		 "before the second connection (%.3f)", r.max_gap_end, resume);
	h_assert(h_hb_observer_connections(o) == 2, "connections %u",
		 h_hb_observer_connections(o));

	/* The same through the one-call interface. */
	uint64_t gaps = 1, reps = 1;
	double gap = -1;
	h_assert(h_heartbeat_check(h_hb_observer_path(o), &gaps, &reps, &gap) == 500,
		 "beats");
	h_assert(gaps == 0 && reps == 0 && gap >= 290, "gap %.1f", gap);
}

Test(heartbeat, observer_sees_two_copies_at_once)
{
	struct h_hb_observer *o = h_hb_observe("obs");
	int a = connect_unix(h_hb_observer_path(o));
	int b = connect_unix(h_hb_observer_path(o));
	double t0 = h_now();

	/* Both copies go on from the same state (beat 7), interleaved. */
	for (uint8_t s = 7; s < 57; s++) {
		h_assert(write(a, &s, 1) == 1 && write(b, &s, 1) == 1, "write");
		h_sleep_ms(2);
	}
	h_assert(h_wait_for(({
		struct h_hb_result q;
		h_hb_observer_result(o, t0, h_now(), &q);
		q.beats == 100; }), 5), "not all beats arrived");
	close(a);
	close(b);
	struct h_hb_result r;
	h_hb_observer_result(o, t0, h_now(), &r);
	h_assert(r.repeats >= 40, "only %llu repeats from two copies",
		 (unsigned long long)r.repeats);
}
