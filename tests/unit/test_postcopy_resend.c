/*
 * The page server's rule for a request of a page the push took already
 * (postcopy_source.h): not answered once that push has left the source's
 * socket (the page is at the destination's host, or placed: a second
 * copy would only cost the wire), answered while the socket still holds
 * it (the destination really lacks it and could wait behind the whole
 * send queue).  A real page server on socketpairs; this side reads the
 * push and writes requests as a destination would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/channel.h"
#include "io/record.h"
#include "migration/postcopy_proto.h"
#include "migration/postcopy_source.h"
#include "migration/protocol.h"
#include "util/log.h"
#include "vmm/memory.h"

#include "pc_link.h"

#define PAGE GUEST_PAGE_SIZE

struct server {
	struct guest_memory mem;
	struct pc_source *s;
	struct pc_link l;
	struct rec_reader *push_r, *ans_r;
	struct rec_writer *req_w;
};

static void server_open(struct server *v, uint64_t bytes)
{
	char err[ERR_MAX] = "";
	memset(&v->mem, 0, sizeof(v->mem));
	v->mem.pagemap_fd = -1;
	v->mem.ram_size = bytes;
	v->mem.nslots = 1;
	v->mem.slots[0] = (struct mem_slot){ .id = 0, .gpa = 0, .size = bytes };
	cr_assert_eq(memory_alloc(&v->mem, err), 0, "%s", err);
	for (uint64_t i = 0; i < bytes / PAGE; i++)
		memset(v->mem.slots[0].hva + i * PAGE, (int)(i % 250) + 1, PAGE);
	pc_link_open(&v->l, false);
	v->push_r = rec_reader_new(v->l.dpush, MIG_MAX_RECORD);
	v->ans_r = rec_reader_new(v->l.dreq, MIG_MAX_RECORD);
	v->req_w = rec_writer_new(v->l.dreq, MIG_MAX_RECORD);
	cr_assert_eq(pcs_new(&v->mem, NULL, &v->s, err), 0, "%s", err);
	cr_assert_eq(pcs_start(v->s, v->l.sreq, v->l.spush, err), 0, "%s", err);
}

static void request(struct server *v, uint64_t gpa)
{
	struct pcp_range r = { gpa, 1 };
	pcp_put_request(v->req_w, &r, 1);
	cr_assert_eq(rec_flush(v->req_w), 0);
}

/* Read the push to its end; returns the pages it carried. */
static uint64_t drain_push(struct server *v)
{
	uint64_t n = 0;
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		cr_assert_eq(rec_read(v->push_r, &type, &p, &len), 0);
		if (type == MIG_REC_PUSH_END)
			return n;
		cr_assert_eq(type, MIG_REC_PAGE);
		n++;
	}
}

/* End as a destination does: PAGES_DONE, then the answers up to the
 * source's close; returns the answers read. */
static unsigned finish(struct server *v)
{
	char err[ERR_MAX] = "";
	unsigned answers = 0;
	rec_put(v->req_w, MIG_REC_PAGES_DONE, NULL, 0);
	cr_assert_eq(rec_flush(v->req_w), 0);
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		if (rec_read(v->ans_r, &type, &p, &len))
			break;
		cr_assert_eq(type, MIG_REC_PAGE);
		answers++;
	}
	cr_assert_eq(pcs_wait(v->s, err), 0, "%s", err);
	return answers;
}

static void server_close(struct server *v)
{
	pcs_free(v->s);
	rec_reader_free(v->push_r);
	rec_reader_free(v->ans_r);
	rec_writer_free(v->req_w);
	pc_link_close(&v->l);
	memory_free(&v->mem);
}

Test(postcopy_resend, a_delivered_push_is_not_answered_again, .timeout = 30)
{
	struct server v;
	server_open(&v, 1 << 20);
	/* Every page pushed and read here: nothing left in the socket. */
	cr_assert_eq(drain_push(&v), (1 << 20) / PAGE);
	request(&v, 0x3000);
	request(&v, 0x8000);
	cr_assert_eq(finish(&v), 0, "a delivered page went a second time");
	struct pcs_stats st;
	pcs_stats(v.s, &st);
	cr_assert_eq(st.requested, 2);
	cr_assert_eq(st.prepage_hits, 2);
	cr_assert_eq(st.not_resent, 2);
	cr_assert_eq(st.bytes_answers, 0);
	server_close(&v);
}

Test(postcopy_resend, a_push_still_in_the_socket_is_answered, .timeout = 30)
{
	struct server v;
	/* Far more than a socketpair buffers: the push blocks with its first
	 * pages unread in the socket. */
	server_open(&v, 16 << 20);
	struct pcs_stats st;
	for (int k = 0; k < 5000; k++) {
		pcs_stats(v.s, &st);
		if (st.pushed >= 32)
			break;
		usleep(1000);
	}
	cr_assert_geq(st.pushed, 32, "the push did not start");
	request(&v, 0x0);
	/* The answer comes on the request connection while the push is
	 * still unread: the destination did not have to wait for it. */
	uint32_t type, len;
	const uint8_t *p;
	cr_assert_eq(rec_read(v.ans_r, &type, &p, &len), 0);
	cr_assert_eq(type, MIG_REC_PAGE);
	uint64_t gpa;
	const uint8_t *data;
	bool answer;
	char err[ERR_MAX] = "";
	cr_assert_eq(pcp_parse_page(p, len, &v.mem, &gpa, &data, &answer, err), 0, "%s", err);
	cr_assert(answer);
	cr_assert_eq(gpa, 0);
	cr_assert_eq(memcmp(data, v.mem.slots[0].hva, PAGE), 0);
	cr_assert_eq(drain_push(&v), (16 << 20) / PAGE);
	cr_assert_eq(finish(&v), 0);
	pcs_stats(v.s, &st);
	cr_assert_eq(st.prepage_hits, 1);
	cr_assert_eq(st.not_resent, 0);
	server_close(&v);
}
