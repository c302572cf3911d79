/*
 * fuzz_record - the record framing (io/record.c) and the migration
 * preamble (migration/preamble.c) on raw bytes, as a peer or a file hands
 * them over: lengths, checksums, truncation, the optional-type rule.
 *
 * Input: one mode byte, then the bytes of a stream.  Mode bit 0: the
 * stream opens with a preamble (as every migration connection does);
 * bit 1: read it through a small record limit (a snapshot's or a
 * migration's is large; a small one reaches the "claims more than" path);
 * bit 2: peek at each record first (rec_peek, as a destination does to
 * refuse a record by its size): the read must then give that record.
 */
#include "fuzz_common.h"
#include "io/channel.h"
#include "io/record.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile uint8_t sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	int fd = fuzz_memfd(data + 1, size - 1);
	struct channel *ch = channel_file_new(fd, true, 0, UINT64_MAX, "fuzz input");
	uint32_t max = (mode & 2) ? 4096 : MIG_MAX_RECORD;
	struct rec_reader *r = ch ? rec_reader_new(ch, max) : NULL;
	char err[ERR_MAX];

	if (!r)
		abort();
	rec_reader_set_namer(r, mig_record_name);
	if (mode & 1) {
		struct mig_preamble pre;
		if (mig_preamble_read(r, &pre, err))
			goto out;
		/* What the destination logs of a peer's session. */
		char sid[33];
		mig_session_hex(pre.session, sid);
		if (strlen(sid) != 32)
			abort();
	}
	for (;;) {
		uint32_t type, len, ptype = 0, plen = 0;
		const uint8_t *p;
		bool peeked = (mode & 4) && !rec_peek(r, &ptype, &plen);
		if (rec_read(r, &type, &p, &len))
			break;
		if (peeked && (ptype != type || plen != len))
			abort();
		if (len > max)
			abort();
		/* Touch the whole payload: it must lie in the reader's buffer. */
		uint8_t sum = 0;
		for (uint32_t i = 0; i < len; i++)
			sum ^= p[i];
		sink = sum;
		if (!mig_record_known(type) && rec_unknown(r, type, len))
			break;
	}
	/* A failed reader says why, in words. */
	if (!rec_reader_error(r) || !rec_reader_errmsg(r)[0])
		abort();
out:
	rec_reader_free(r);
	channel_close(ch);
	return 0;
}
