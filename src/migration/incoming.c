/*
 * The destination of a migration, one connection: check the VM
 * described in HELLO can live here, build it, fill its memory and state
 * from the stream, and run it only once the source commits.  Anything
 * wrong with the stream ends the migration with a message naming it; the
 * half-built VM is discarded and the source keeps its guest.
 */
#include "migration/migration.h"
#include "migration/channel.h"
#include "migration/caps.h"
#include "migration/fault_ahead.h"
#include "migration/incoming.h"
#include "migration/incoming_conns.h"
#include "migration/multifd_conns.h"
#include "migration/postcopy_incoming.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "migration/stream.h"
#include "vmm/kvm.h"
#include "vmm/machine_desc.h"
#include "vmm/machine_state.h"
#include "vmm/memory.h"
#include "vmm/prealloc.h"
#include "vmm/vm.h"
#include "util/log.h"
#include "util/units.h"
#include "vmm/exit_status.h"

#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

static enum incoming_fault fault_point = FAULT_NONE;

void incoming_set_fault(enum incoming_fault f) { fault_point = f; }

int incoming_parse_fault(const char *s, enum incoming_fault *out)
{
	static const char *const names[] = {
		[FAULT_ROUND0] = "round0", [FAULT_ROUND1] = "round1",
		[FAULT_DEVICE] = "device", [FAULT_BEFORE_COMMIT] = "before-commit",
		[FAULT_AFTER_READY] = "after-ready", [FAULT_AFTER_COMMIT] = "after-commit",
	};
	for (int i = FAULT_ROUND0; i <= FAULT_AFTER_COMMIT; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum incoming_fault)i;
			return 0;
		}
	return -EINVAL;
}

/* A test hook: die at a chosen point, as a crashed host would. */
static void maybe_die(enum incoming_fault here)
{
	if (fault_point == here) {
		log_error("fault injection: destination dies now");
		_exit(EXIT_FAULT_INJECTED);
	}
}

struct incoming {
	struct mig_stream s;
	const struct incoming_session *cfg;
	struct vm *vm;
	struct machine_state_loader loader;
	struct ram_decoder dec;
	json_t *hello;
	uint64_t pages, zero_pages, rounds;
	bool state_done;
	bool source_running;     /* COMMIT: the guest ran at the source */
	uint32_t version;        /* the peer's stream version */
	struct mig_caps caps;    /* agreed in HELLO/ACCEPT */
	/* With channels > 1 agreed: the page channels, which carry every
	 * page (none may come on this connection). */
	struct mf_recv *mf;
	struct mf_fds mf_fds;
	uint8_t session[MIG_SESSION_ID_LEN];
	struct pci *pc;          /* post-copy, from the first POSTCOPY_MISSING */
	/* Round 0's memory faulted in ahead (RAM_AHEAD), until its end. */
	struct fault_ahead *fa;
	bool ahead_taken;
	uint64_t frontier;       /* how far the receivers got (ram_decoder) */
};

/* Tell the owner how far the stream has got (query-migrate). */
static void incoming_report(struct incoming *in)
{
	struct incoming_progress *pr = in->cfg->progress;

	if (!pr)
		return;
	struct ram_counts c = in->dec.counts;
	unsigned nch = 1;
	struct mf_channel_stats chan[MF_MAX_CHANNELS];
	uint64_t ch_bytes = 0;
	if (in->mf) {
		/* Pages come on the channels only. */
		mf_recv_counts(in->mf, &c);
		nch = mf_recv_channel_stats(in->mf, 0, &chan[0]);
		for (unsigned i = 1; i < nch; i++)
			mf_recv_channel_stats(in->mf, i, &chan[i]);
		for (unsigned i = 0; i < nch; i++)
			ch_bytes += chan[i].bytes;
		in->pages = c.pages - c.zero_pages;
		in->zero_pages = c.zero_pages;
	}
	pthread_mutex_lock(pr->lock);
	pr->bytes = in->s.bytes_in + ch_bytes;
	pr->pages = c.pages - c.zero_pages;
	pr->zero_pages = c.zero_pages;
	pr->rounds = in->rounds;
	snprintf(pr->compression, sizeof(pr->compression), "%s", in->caps.compression);
	pr->plain_bytes = c.plain_bytes;
	pr->data_bytes = c.data_bytes;
	pr->compressed_batches = c.compressed_batches;
	pr->raw_batches = c.raw_batches;
	pr->channels = nch;
	if (in->mf)
		memcpy(pr->chan, chan, sizeof(chan[0]) * nch);
	pr->xbzrle = in->caps.xbzrle;
	pr->delta_pages = c.delta_pages;
	pr->delta_bytes = c.delta_bytes;
	if (in->vm) {
		pr->memory = in->vm->mem.ram_size;
		pr->vcpus = in->vm->nvcpus;
	}
	pthread_mutex_unlock(pr->lock);
}

/* Tests: the destination dies inside round 0 or at round 1's pages,
 * whichever connection carries them (pages: placed so far there). */
static void round_faults(uint32_t round, uint64_t pages)
{
	if (round == 0 && pages > 1024)
		maybe_die(FAULT_ROUND0);
	if (round == 1)
		maybe_die(FAULT_ROUND1);
}

static void channel_placed(void *opaque, uint32_t round, uint64_t pages)
{
	(void)opaque;
	round_faults(round, pages);
}

static int load_pages(struct incoming *in, const uint8_t *p, uint32_t len)
{
	char err[ERR_MAX];
	uint32_t round = 0;

	if (in->state_done)
		return stream_fail(&in->s, -EPROTO, "RAM_PAGES after the device state");
	if (in->caps.channels > 1)
		return stream_fail(&in->s, -EPROTO, "RAM_PAGES on the main connection, "
				   "but %u page channels were agreed to carry the pages",
				   in->caps.channels);
	ram_peek_round(p, len, &round);
	round_faults(round, in->pages);
	if (ram_decode(&in->dec, p, len, NULL, err))
		return stream_fail(&in->s, -EPROTO, "%s", err);
	in->pages = in->dec.counts.pages - in->dec.counts.zero_pages;
	in->zero_pages = in->dec.counts.zero_pages;
	return 0;
}

static int read_run(void *opaque, uint8_t *dst, size_t len)
{
	return stream_part_read(opaque, dst, len);
}

/*
 * The next record is RAM_PAGES (len bytes) on the main connection: if it
 * is uncompressed and its header and descriptors pass ram_decode's
 * checks (peeked, before anything is written), its page data is read
 * straight into guest memory, as the page channels do (multifd_recv.c):
 * no copy through the reader's buffer.  Returns 1 when it is not such a
 * record (stream_read and load_pages take it), else 0 or the error.  The
 * checksum is known only once the data is in place: a mismatch fails
 * the migration, and the VM it was written into is discarded.
 */
static int load_pages_direct(struct incoming *in, uint32_t len)
{
	const uint8_t *peek;
	if (in->pc || in->state_done || in->caps.channels > 1 || len < RAM_PAGES_HEADER)
		return 1;   /* load_pages says what is wrong */
	if (stream_peek_payload(&in->s, RAM_PAGES_HEADER, &peek))
		return in->s.error;
	unsigned count = ram_direct_count(peek, len);
	if (!count)
		return 1;
	size_t head_len = RAM_PAGES_HEADER + (size_t)count * 8;
	if (stream_peek_payload(&in->s, head_len, &peek))
		return in->s.error;
	if (!ram_direct_check(&in->dec, peek, count, len))
		return 1;
	uint8_t head[RAM_PAGES_HEADER + MIG_PAGES_PER_RECORD * 8];
	uint32_t round = 0;
	memcpy(head, peek, head_len);
	ram_peek_round(head, len, &round);
	round_faults(round, in->pages);
	if (stream_part_begin(&in->s) || stream_part_read(&in->s, head, head_len) ||
	    ram_direct_each_run(&in->dec, head, count, read_run, &in->s) ||
	    stream_part_end(&in->s))
		return in->s.error;
	ram_direct_done(&in->dec, head, count);
	in->pages = in->dec.counts.pages - in->dec.counts.zero_pages;
	in->zero_pages = in->dec.counts.zero_pages;
	return 0;
}

/*
 * ROUND_END with page channels: the round ends once every channel has
 * placed its pages of it and read its SYNC (multifd_recv.h), so a page
 * of a later round can never be overwritten by this round's copy, and
 * READY after the last round means every page is here.
 */
static int end_round(struct incoming *in, const uint8_t *p, uint32_t len)
{
	char err[ERR_MAX];
	uint32_t round;

	if (in->caps.channels <= 1)
		return 0;
	if (!in->mf)
		return stream_fail(&in->s, -EPROTO, "ROUND_END, but the %u page channels "
				   "never connected", in->caps.channels);
	if (len < 4)
		return stream_fail(&in->s, -EPROTO, "ROUND_END of %u bytes", len);
	memcpy(&round, p, 4);
	int r = mf_recv_wait_round(in->mf, round, in->cfg->idle_timeout_ms, err);
	return r ? stream_fail(&in->s, r, "%s", err) : 0;
}

/* A page channel failed (on its thread): end the wait on the main
 * connection, whose reader then reports the channel's reason.  Only the
 * reading side: ERROR must still reach the source. */
static void channel_failed(void *opaque)
{
	struct incoming *in = opaque;
	shutdown(in->s.fd, SHUT_RD);
}

static bool main_has_input(void *opaque)
{
	struct incoming *in = opaque;
	return stream_readable(&in->s);
}

/* After ACCEPT: take the agreed page channels' connections. */
static int open_channels(struct incoming *in, char *err)
{
	if (in->caps.channels <= 1)
		return 0;
	if (!in->cfg->conns)
		return err_set(err, -EPROTO, "%u page channels were agreed, but this "
			       "destination takes no further connections", in->caps.channels);
	const struct ram_encoding *enc = ram_encoding_by_name(in->caps.compression);
	const struct mf_recv_cfg rc = {
		.mem = &in->vm->mem, .encodings = 1u << enc->id, .n = in->caps.channels,
		.failed = channel_failed, .opaque = in, .frontier = &in->frontier,
		.x_placed = fault_point != FAULT_NONE ? channel_placed : NULL,
	};
	uint64_t deadline = mig_now_ns() + in->cfg->idle_timeout_ms * 1000000ULL;
	int r;
	in->mf = mf_recv_accept(in->cfg->conns, &rc, deadline, in->cfg->idle_timeout_ms,
				main_has_input, in, &in->mf_fds, &r, err);
	/* The source spoke first (its ERROR, most likely, when it could not
	 * open the channels): receive() reads it, and refuses pages or a
	 * round's end without the channels. */
	if (r == -ECANCELED && main_has_input(in))
		return 0;
	if (!in->mf)
		return r;
	log_info("incoming pages travel on %u channels", in->caps.channels);
	return 0;
}

static void send_reason(struct mig_stream *s, uint32_t type, const char *why)
{
	/* Best effort: the peer may be gone already. */
	int saved = s->error;
	s->error = 0;
	stream_put(s, type, why, strlen(why));
	stream_flush(s);
	if (saved)
		s->error = saved;
}

/* Preamble and HELLO: decide whether this destination can take the VM,
 * and build it if so. */
static int negotiate(struct incoming *in, const struct vm_config *host_cfg,
		     uint64_t max_memory, char *err)
{
	struct mig_preamble pre;
	uint32_t type, len;
	const uint8_t *p;
	struct vm_config cfg = *host_cfg;
	struct kvm_cpuid2 *cpuid = NULL;
	int r;

	r = mig_preamble_read(in->s.r, &pre, err);
	if (r) {
		stream_sync(&in->s);
		/* A peer of another version or an unknown role is told why;
		 * garbage is not. */
		if (r == -EPROTONOSUPPORT || (r == -EPROTO && pre.version >= 2 &&
					      pre.version <= MIG_VERSION && pre.role))
			send_reason(&in->s, MIG_REC_REFUSE, err);
		return r;
	}
	if (pre.role != MIG_ROLE_MAIN) {
		char sid[33];
		mig_session_hex(pre.session, sid);
		err_set(err, -EPROTO, "a %s connection for session %s, but no migration "
			"is under way", mig_role_name(pre.role), sid);
		send_reason(&in->s, MIG_REC_REFUSE, err);
		return -EPROTO;
	}
	in->version = pre.version;
	memcpy(in->session, pre.session, sizeof(in->session));
	char sid[33];
	mig_session_hex(pre.session, sid);
	log_info("incoming migration from %s: stream version %u, session %s",
		 in->s.ch->peer, pre.version, sid);
	/* Judge HELLO by its claimed size before reading it: a peer must not
	 * make this side hold 16 MiB of JSON it has no use for. */
	if (stream_peek(&in->s, &type, &len))
		return err_set(err, in->s.error, "%s", in->s.errmsg);
	if (type == MIG_REC_HELLO && len > MIG_MAX_HELLO) {
		err_set(err, -EMSGSIZE,
			"HELLO of %u bytes: a machine description needs at most %u",
			len, MIG_MAX_HELLO);
		send_reason(&in->s, MIG_REC_REFUSE, err);
		return -EMSGSIZE;
	}
	if (stream_read(&in->s, &type, &p, &len))
		return err_set(err, in->s.error, "%s", in->s.errmsg);
	if (type != MIG_REC_HELLO)
		return err_set(err, -EPROTO, "expected HELLO, got %s (0x%x)",
			       mig_record_name(type), type);
	json_error_t jerr;
	/* A key twice is no real source's: refuse rather than pick one. */
	in->hello = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!in->hello)
		return err_set(err, -EPROTO, "HELLO is not JSON: %s", jerr.text);

	r = mig_caps_negotiate(json_object_get(in->hello, "capabilities"),
			       &in->caps, err);
	/* Listing all of RAM costs a preallocated destination a drop of
	 * all of it in the pause (caps.h). */
	if (host_cfg->prealloc) {
		in->caps.zero_runs = false;
		/* All of it is there already. */
		in->caps.fault_ahead = false;
	}
	/* Everything that needs no KVM is judged first, as a restore does
	 * (snapshot.c): a refusal names the peer's fault, not this host's.
	 * The layout, sizes and versions, then the device list (an unknown
	 * device or state version), then the CPU on /dev/kvm. */
	if (!r) {
		struct machine_host host = { .memory = machine_host_memory(),
					     .max_memory = max_memory };
		r = machine_desc_check(in->hello, &host, &cfg, &cpuid, err);
	}
	/* Memory prepared in advance fits one size only. */
	if (!r && cfg.prealloc && mem_prealloc_size(cfg.prealloc) != cfg.ram_size) {
		char have[UNITS_LEN], want[UNITS_LEN];
		r = err_set(err, -EINVAL, "this destination prepared %s of guest memory "
			    "(--memory with --prealloc), but the VM has %s",
			    units_size(have, sizeof(have),
				       (double)mem_prealloc_size(cfg.prealloc)),
			    units_size(want, sizeof(want), (double)cfg.ram_size));
	}
	if (!r)
		r = vm_check_described_devices(in->hello, &cfg, err);
	if (!r) {
		int kvm_fd = kvm_open(err);
		r = kvm_fd < 0 ? kvm_fd : machine_desc_check_cpuid(cpuid, kvm_fd, err);
		if (kvm_fd >= 0)
			close(kvm_fd);
	}
	if (!r) {
		cfg.cpuid = cpuid;
		cfg.kernel = NULL;
		r = vm_create(&in->vm, &cfg, err);
	}
	free(cpuid); /* vm_create copied it */
	if (!r)
		r = machine_desc_check_devices(in->hello, in->vm, err);
	/* vCPU threads too, parked: after COMMIT nothing may be left that
	 * can fail, and a destination that cannot start says so here. */
	if (!r)
		r = vm_start(in->vm, true, err);
	if (r) {
		send_reason(&in->s, MIG_REC_REFUSE, err);
		return r;
	}
	machine_state_loader_init(&in->loader, in->vm);
	/* The agreed compression, and RAW for the batches that did not
	 * shrink (ram_decoder_init adds it). */
	const struct ram_encoding *enc = ram_encoding_by_name(in->caps.compression);
	ram_decoder_init(&in->dec, &in->vm->mem, 1u << enc->id);
	in->dec.frontier = &in->frontier;
	/* Deltas apply to the pages already here: no state of our own. */
	in->dec.deltas = in->caps.xbzrle;
	if (enc->id != RAM_ENC_RAW)
		log_info("incoming pages are compressed with %s", enc->name);
	/* A version 1 source expects an empty ACCEPT. */
	json_t *acc = in->version >= 2 ? mig_caps_accept_json(&in->caps) : NULL;
	char *txt = acc ? json_dumps(acc, JSON_COMPACT) : NULL;
	json_decref(acc);
	if (in->version >= 2 && !txt)
		return err_set(err, -ENOMEM, "out of memory");
	stream_put(&in->s, MIG_REC_ACCEPT, txt, txt ? strlen(txt) : 0);
	free(txt);
	return stream_flush(&in->s) ? err_set(err, in->s.error, "%s", in->s.errmsg) : 0;
}

/* How long READY waits for the pages the guest needs first (early
 * push): a few dozen pages, well under a millisecond on a local link;
 * on a slow one the guest had better fault on them. */
#define FIRST_PAGES_WAIT_MS 5

/* The switch to post-copy (postcopy_incoming.c) begins: on
 * POSTCOPY_PREPARE (before the source pauses) or else the first list,
 * take the session's two further connections and register guest RAM,
 * once.  Every list then drops the pages it names.  All before READY: a
 * destination that cannot do it fails while the source still owns the
 * guest. */
static int postcopy_begin(struct incoming *in, char *err)
{
	if (!in->caps.postcopy)
		return stream_fail(&in->s, -EPROTO, "a post-copy record, but post-copy "
				   "was not agreed");
	if (in->state_done)
		return stream_fail(&in->s, -EPROTO, "a post-copy record after STATE_END");
	if (in->pc)
		return 0;
	/* Nor may faulting in ahead touch a registered page. */
	fa_stop(in->fa);
	in->fa = NULL;
	/* Every pre-copy round has ended (ROUND_END waits for the page
	 * channels): stop them before the memory is registered, so that no
	 * page channel ever writes a registered page. */
	if (in->mf)
		mf_recv_stop(in->mf);
	/* The source opened them before it paused: they are here, or come
	 * within the connect time. */
	int r = pci_begin(&in->pc, &in->vm->mem, in->cfg->conns, 10000,
			  in->cfg->idle_timeout_ms, err);
	if (r)
		return stream_fail(&in->s, r, "post-copy: %s", err);
	if (in->caps.release_ram)
		pci_confirm(in->pc);
	log_info("post-copy: page connections joined, guest memory registered");
	return 0;
}

static int postcopy_missing(struct incoming *in, const uint8_t *p, uint32_t len,
			    char *err)
{
	int r = postcopy_begin(in, err);
	if (r)
		return r;
	r = pci_missing(in->pc, p, len, err);
	return r ? stream_fail(&in->s, r, "%s", err) : 0;
}

/* RAM_AHEAD: once, agreed, before round 0 ends (fault_ahead.h). */
static int take_ahead(struct incoming *in, const uint8_t *p, uint32_t len, char *err)
{
	if (!in->caps.fault_ahead)
		return stream_fail(&in->s, -EPROTO, "RAM_AHEAD, but fault-ahead was not agreed");
	if (in->ahead_taken || in->rounds)
		return stream_fail(&in->s, -EPROTO, "RAM_AHEAD %s",
				   in->ahead_taken ? "twice" : "after round 0");
	in->ahead_taken = true;
	int r = fa_start(&in->vm->mem, p, len, &in->frontier, &in->fa, err);
	return r ? stream_fail(&in->s, r, "%s", err) : 0;
}

/*
 * With page channels the main connection carries one ROUND_END per
 * round, so it is rightly silent for as long as a round takes (a big
 * guest's first round takes minutes): its silence fails the migration
 * only while the channels are silent too.  Returns 0 once it has input
 * (or its end, or a failed channel shut it: the read says which), or
 * -EAGAIN when nothing moved on any connection for the idle timeout.
 */
static int wait_main(struct incoming *in)
{
	int ms = in->cfg->idle_timeout_ms;

	if (!in->mf || ms <= 0)
		return 0;
	uint64_t seen = mf_recv_progress(in->mf);
	for (;;) {
		if (stream_readable(&in->s))
			return 0;
		struct pollfd p = { .fd = in->s.fd, .events = POLLIN };
		if (poll(&p, 1, ms) != 0)
			return 0;
		uint64_t now = mf_recv_progress(in->mf);
		if (now == seen)
			return stream_fail(&in->s, -EAGAIN, "the main connection: timed out");
		seen = now;
	}
}

/* Records until COMMIT. */
static int receive(struct incoming *in, char *err)
{
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		int r = 0;

		incoming_report(in);
		/* Uncompressed pages go straight into guest memory; the
		 * rest (and any failure to get that far) below. */
		if (!wait_main(in) && !stream_peek(&in->s, &type, &len) &&
		    type == MIG_REC_RAM_PAGES && load_pages_direct(in, len) == 0)
			continue;
		if (in->s.error || stream_read(&in->s, &type, &p, &len)) {
			/* A failed page channel stops this read: its reason
			 * is the one to give. */
			int e = in->mf ? mf_recv_error(in->mf, err) : 0;
			return e ? e : err_set(err, in->s.error, "%s", in->s.errmsg);
		}
		switch (type) {
		case MIG_REC_ERROR: {
			/* The source gave up and says why: "the source
			 * cancelled ...", "the source failed: ...".  An older
			 * source's bare reason gets the prefix. */
			int n = (int)(len > ERR_MAX - 40 ? ERR_MAX - 40 : len);
			bool said = len >= 11 && !memcmp(p, "the source ", 11);
			r = stream_fail(&in->s, -ECANCELED, "%s%.*s",
					said ? "" : "the source ended the migration: ",
					n, (const char *)p);
			break;
		}
		case MIG_REC_RAM_PAGES:
			/* Registered memory is written only by post-copy's
			 * placements: a write here would wait on itself. */
			r = in->pc ? stream_fail(&in->s, -EPROTO, "RAM_PAGES after the switch "
						 "to post-copy began")
				   : load_pages(in, p, len);
			break;
		case MIG_REC_POSTCOPY_MISSING:
			r = postcopy_missing(in, p, len, err);
			break;
		case MIG_REC_POSTCOPY_PREPARE:
			r = !in->caps.early_push
				? stream_fail(&in->s, -EPROTO, "POSTCOPY_PREPARE, but "
					      "postcopy-early-push was not agreed")
				: len ? stream_fail(&in->s, -EPROTO, "POSTCOPY_PREPARE "
						    "with %u bytes of payload", len)
				: postcopy_begin(in, err);
			if (!r)
				pci_prepare(in->pc);
			break;
		case MIG_REC_RAM_AHEAD:
			r = take_ahead(in, p, len, err);
			break;
		case MIG_REC_ROUND_END:
			r = end_round(in, p, len);
			/* Round 0's pages are all here: nothing is left to
			 * fault in ahead.  Its ROUND_ACK need not wait for the
			 * thread's last chunk; the next round's end joins it. */
			if (!in->rounds) {
				fa_finish(in->fa);
			} else {
				fa_stop(in->fa);
				in->fa = NULL;
			}
			in->rounds++;
			if (!r && in->caps.round_ack) {
				/* Every page of the round is placed (end_round
				 * waited for the channels): say so. */
				uint32_t round = 0;
				if (len >= 4)
					memcpy(&round, p, 4);
				stream_put(&in->s, MIG_REC_ROUND_ACK, &round, sizeof(round));
				r = stream_flush(&in->s);
			}
			break;
		case MIG_REC_DEVICE:
		case MIG_REC_VCPU:
			maybe_die(FAULT_DEVICE);
			if (in->state_done)
				r = stream_fail(&in->s, -EPROTO, "state after STATE_END");
			else if (machine_state_load(&in->loader, type, p, len, err))
				r = stream_fail(&in->s, -EPROTO, "%s", err);
			break;
		case MIG_REC_STATE_END:
			/* Every round has ended: the page channels are done,
			 * and nothing sent on them later may land. */
			if (in->mf)
				mf_recv_stop(in->mf);
			/* Every listed page is dropped: what the source
			 * pushes may land now (before COMMIT, if it starts
			 * pushing early: the early-push capability). */
			if (in->pc)
				pci_open(in->pc);
			/* The source pushes them as soon as it has sent the
			 * state: they come while this loads it.  Bounded:
			 * without them the guest just faults on them. */
			if (in->pc && in->caps.early_push &&
			    !pci_wait_first_pages(in->pc, FIRST_PAGES_WAIT_MS))
				log_warn("post-copy: the guest's first pages did not come "
					 "within %u ms; it will fault on them", FIRST_PAGES_WAIT_MS);
			if (machine_state_loader_finish(&in->loader, err))
				r = stream_fail(&in->s, -EPROTO, "%s", err);
			else {
				/* Everything is loaded: the source has not
				 * committed yet and will take its guest back. */
				maybe_die(FAULT_BEFORE_COMMIT);
				in->state_done = true;
				stream_put(&in->s, MIG_REC_READY, NULL, 0);
				r = stream_flush(&in->s);
				maybe_die(FAULT_AFTER_READY);
			}
			break;
		case MIG_REC_COMMIT:
			if (!in->state_done)
				r = stream_fail(&in->s, -EPROTO, "COMMIT before the state");
			else {
				/* Committed but not yet running: the source must
				 * not resume, since it cannot know which. */
				maybe_die(FAULT_AFTER_COMMIT);
				uint32_t flags = MIG_COMMIT_RUNNING;
				if (len >= sizeof(flags))
					memcpy(&flags, p, sizeof(flags));
				in->source_running = flags & MIG_COMMIT_RUNNING;
				return 0;
			}
			break;
		default:
			/* Unknown: skipped if optional, else the end.  Known
			 * but out of place: the end. */
			if (!mig_record_known(type)) {
				if (rec_unknown(in->s.r, type, len))
					r = stream_sync(&in->s);
			} else
				r = stream_fail(&in->s, -EPROTO,
						"unexpected record %s (0x%x, %u bytes)",
						mig_record_name(type), type, len);
		}
		if (r)
			return err_set(err, r, "%s", in->s.errmsg);
	}
}

/* Why the session ended, in the words a user needs. */
static void explain(struct incoming *in, int r, bool accepted, char *err)
{
	char why[ERR_MAX];

	if (in->cfg->cancelled && in->cfg->cancelled(in->cfg->opaque, why)) {
		err_set(err, -ECANCELED, "%s", why);
		return;
	}
	if (accepted && r == -ECONNRESET && err[0]) {
		/* An end without ERROR: the source did not say why, so it
		 * could not (its process or host died, the link broke). */
		char was[ERR_MAX];
		snprintf(was, sizeof(was), "%s", err);
		err_set(err, r, "the source closed the connection without saying why "
			"(it died, the link broke, or it was cut off in a send): %s",
			was);
		return;
	}
	if (r == -EAGAIN || r == -EWOULDBLOCK || r == -ETIMEDOUT) {
		if (accepted) {
			char t[UNITS_LEN];
			err_set(err, r, "the source sent nothing for %s (idle timeout)",
				units_duration_ms(t, sizeof(t),
						  (double)in->cfg->idle_timeout_ms));
		}
		else
			err_set(err, r, "no complete HELLO within the handshake deadline");
	}
}

/*
 * Post-copy once the guest runs here: until every page has arrived, the
 * owner shows postcopy-active.  A failure now cannot give the guest back
 * to the source (it has run here): the guest stays, asleep on the pages
 * that cannot come, and the owner keeps the registration.
 */
static int postcopy_run(struct incoming *in, char *err)
{
	const struct incoming_session *cfg = in->cfg;

	if (cfg->postcopy_started)
		cfg->postcopy_started(cfg->opaque, in->pc);
	log_info("post-copy: the guest runs here; pulling %llu missing pages",
		 (unsigned long long)pci_missing_pages(in->pc));
	struct pci_events ev = { .paused = cfg->postcopy_paused,
				 .resumed = cfg->postcopy_resumed,
				 .opaque = cfg->opaque };
	int r = pci_wait(in->pc, &ev, err);
	if (!r) {
		pci_retire(in->pc);
		json_t *j = pci_json(in->pc);
		json_t *lat = json_object_get(j, "fault-latency-us");
		log_info("post-copy: every page has arrived: %lld faults, %lld pages requested, "
			 "%lld crossings; request to page p50 %.0f us, p99 %.0f us, max %.0f us",
			 (long long)json_integer_value(json_object_get(j, "faults")),
			 (long long)json_integer_value(json_object_get(j, "pages-requested")),
			 (long long)json_integer_value(json_object_get(j, "crossings")),
			 json_real_value(json_object_get(lat, "p50")),
			 json_real_value(json_object_get(lat, "p99")),
			 json_real_value(json_object_get(lat, "max")));
		json_decref(j);
	} else {
		char was[ERR_MAX];
		snprintf(was, sizeof(was), "%s", err);
		err_set(err, r, "post-copy failed: %s; the guest runs here without all of "
			"its memory and waits for pages that cannot come (the source keeps "
			"them)", was);
	}
	if (cfg->postcopy_ended) {
		cfg->postcopy_ended(cfg->opaque, in->pc, !r);
		in->pc = NULL;
	}
	return r;
}

int migration_incoming_fd(int fd, const struct incoming_session *cfg,
			  bool *accepted, char *err)
{
	return migration_incoming_channel(channel_socket_new(fd, false), cfg,
					  accepted, err);
}

int migration_incoming_channel(struct channel *ch,
			       const struct incoming_session *cfg,
			       bool *accepted, char *err)
{
	struct incoming in = { .cfg = cfg };
	uint64_t t0;
	int r;

	*accepted = false;
	t0 = mig_now_ns();
	r = stream_init_channel(&in.s, ch);
	if (r)
		return err_set(err, r, "out of memory");
	int fd = in.s.fd;
	r = negotiate(&in, cfg->host_cfg, cfg->max_memory, err);
	if (r) {
		explain(&in, r, false, err);
		goto out;
	}
	*accepted = true;
	/* From here on silence is measured against the idle timeout. */
	channel_set_timeout(fd, cfg->idle_timeout_ms);
	incoming_report(&in);
	if (cfg->accepted)
		cfg->accepted(cfg->opaque);
	/* Further connections of this session may come from now on. */
	r = cfg->conns ? inconns_open(cfg->conns, in.session, err) : 0;
	if (!r)
		r = open_channels(&in, err);
	if (!r)
		r = receive(&in, err);
	if (!r)
		r = cfg->take_over(cfg->opaque, in.vm, in.source_running);
	if (!r) {
		/* The guest is this side's now, whatever happens to this
		 * message: the source learns it or stays paused not knowing. */
		struct vm *vm = in.vm;
		in.vm = NULL;
		stream_put(&in.s, MIG_REC_RUNNING, NULL, 0);
		stream_flush(&in.s);
		incoming_report(&in);
		/* postcopy_run hands in.pc to the owner: remember it ran. */
		bool postcopy = in.pc != NULL;
		if (postcopy && (r = postcopy_run(&in, err))) {
			log_error("incoming migration failed: %s", err);
			goto out;
		}
		char took[UNITS_LEN], got[UNITS_LEN];
		const struct ram_counts *c = &in.dec.counts;
		log_info("migration destination completed: %s, %llu rounds, "
			 "%s received (%llu pages, %llu zero; compression %s, "
			 "ratio %.2f%s); the guest is %s",
			 units_duration_ms(took, sizeof(took),
					   (mig_now_ns() - t0) / 1e6),
			 (unsigned long long)in.rounds,
			 units_size(got, sizeof(got), (double)in.s.bytes_in),
			 (unsigned long long)in.pages,
			 (unsigned long long)in.zero_pages, in.caps.compression,
			 c->data_bytes ? (double)c->plain_bytes / c->data_bytes : 1.0,
			 postcopy ? "; then post-copy" : "",
			 vm_get_status(vm) == VM_STATUS_RUNNING ? "running" : "paused");
	} else {
		explain(&in, r, true, err);
		send_reason(&in.s, MIG_REC_ERROR, err);
		log_error("incoming migration failed: %s; discarding what was received", err);
	}
out:
	mf_recv_close(in.mf, &in.mf_fds);
	/* Post-copy's registration before the memory it covers. */
	pci_free(in.pc);
	fa_stop(in.fa);
	ram_decoder_free(&in.dec);
	vm_destroy(in.vm);
	json_decref(in.hello);
	stream_free(&in.s);
	return r;
}
