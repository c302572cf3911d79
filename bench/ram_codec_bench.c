/*
 * ram_codec_bench - what each RAM_PAGES encoding costs and saves, without
 * a guest: the real encoder and decoder (migration/ram_codec.h) over
 * "guest memory" filled with realistic page kinds.  One thread, as one
 * migration stream runs.  Prints a table, then one JSON line per case.
 *
 *   ram_codec_bench [MiB per page mix]   (default 64)
 *
 * Page mixes: zero; text (C headers from /usr/include); binary (ELF code
 * from /usr/bin); random; the test guest's counter fill (its workload's
 * default); and "mixed": 40% zero, 20% each text, binary, random, page by
 * page in a shuffled order.
 *
 * Encode: ram_encode of every page in batches of 256 (zero detection, the
 * compression, CRC-32C framing) into a writer to /dev/null.  Decode:
 * ram_decode of each record (its checks, the decompression, placing the
 * pages) into memory already touched once, so page faults of a fresh
 * destination are not counted (they are the same for every encoding).
 * MB/s is guest memory (1 MB = 10^6 bytes) per second; ratio is guest
 * memory bytes over bytes on the wire (records whole, with framing).
 *
 * Then a pipeline, closer to a migration's page path: one thread encodes
 * and sends over loopback TCP, another receives (CRC checked) and decodes
 * into never-touched memory, as a destination does; unlimited and paced
 * by the writer's own max-bandwidth pacing to 1 Gbit/s (125 MB/s of
 * wire bytes: a stand-in for a slow link, not a shaped one).  Memory MB/s
 * from the first encode to the last page placed.
 */
#include "io/channel.h"
#include "io/record.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "vmm/memory.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096u

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Up to max bytes of the files matching pattern, one after another. */
static uint8_t *pool_from(const char *pattern, size_t max, size_t *len)
{
	glob_t g;
	uint8_t *pool = malloc(max);
	size_t n = 0;

	if (!pool)
		return NULL;
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc && n < max; i++) {
			int fd = open(g.gl_pathv[i], O_RDONLY);
			if (fd < 0)
				continue;
			ssize_t k;
			while (n < max && (k = read(fd, pool + n, max - n)) > 0)
				n += (size_t)k;
			close(fd);
		}
		globfree(&g);
	}
	*len = n;
	return pool;
}

enum kind { K_ZERO, K_TEXT, K_BINARY, K_RANDOM, K_COUNTER };

struct pools {
	uint8_t *text, *bin;
	size_t text_len, bin_len;
};

static void fill(uint8_t *p, enum kind k, uint64_t idx, const struct pools *pl)
{
	switch (k) {
	case K_ZERO:
		memset(p, 0, PAGE);
		break;
	case K_TEXT:
	case K_BINARY: {
		const uint8_t *src = k == K_TEXT ? pl->text : pl->bin;
		size_t len = k == K_TEXT ? pl->text_len : pl->bin_len;
		size_t pages = len / PAGE;
		memcpy(p, src + (idx % pages) * PAGE, PAGE);
		break;
	}
	case K_RANDOM:
		for (unsigned i = 0; i < PAGE; i += 8) {
			uint64_t v = next_rand();
			memcpy(p + i, &v, 8);
		}
		break;
	case K_COUNTER: {
		/* guests/workload.c FILL_COUNTER: (seq << 8) | (i >> 3) */
		uint64_t *w = (uint64_t *)p;
		for (unsigned i = 0; i < PAGE / 8; i++)
			w[i] = (idx << 8) | (i >> 3);
		w[0] = idx * PAGE;   /* the verifying guest's header */
		w[1] = 1 | idx << 32;
		break;
	}
	}
}

struct mix {
	const char *name;
	unsigned pct[5]; /* per kind, sums to 100 */
};

static const struct mix mixes[] = {
	{ "zero", { 100, 0, 0, 0, 0 } },
	{ "text", { 0, 100, 0, 0, 0 } },
	{ "binary", { 0, 0, 100, 0, 0 } },
	{ "random", { 0, 0, 0, 100, 0 } },
	{ "guest-counter", { 0, 0, 0, 0, 100 } },
	{ "mixed", { 40, 20, 20, 20, 0 } },
};

struct codec {
	const char *label;
	unsigned id, level;
};

static const struct codec codecs[] = {
	{ "none", RAM_ENC_RAW, 0 },
	{ "lz4", RAM_ENC_LZ4, 0 },
	{ "zstd-1", RAM_ENC_ZSTD, 1 },
	{ "zstd-3", RAM_ENC_ZSTD, 3 },
};

/* Encode all of mem in batches to w; returns seconds. */
static double encode_all(struct rec_writer *w, struct ram_encoder *e,
			 const struct guest_memory *mem, uint64_t pages,
			 struct ram_counts *c)
{
	struct ram_batch b = { .round = 1 };
	double t0 = now_s();
	for (uint64_t pg = 0; pg < pages; pg++) {
		b.desc[b.n++] = pg * PAGE;
		if (b.n == MIG_PAGES_PER_RECORD || pg + 1 == pages) {
			if (ram_encode(w, e, mem, &b, c)) {
				fprintf(stderr, "encode: %s\n", rec_writer_errmsg(w));
				exit(1);
			}
			b.n = 0;
		}
	}
	rec_flush(w);
	return now_s() - t0;
}

static int run_case(const struct mix *mx, const struct codec *cd,
		    const struct guest_memory *src, struct guest_memory *dst,
		    uint64_t pages)
{
	char err[ERR_MAX];
	struct ram_encoder e;
	struct ram_counts c = { 0 };

	if (ram_encoder_init(&e, ram_encoding_get(cd->id), cd->level, err)) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* Timed: to /dev/null. */
	int null_fd = open("/dev/null", O_WRONLY);
	struct channel *nch = channel_file_new(null_fd, true, 0, UINT64_MAX, "null");
	struct rec_writer *w = rec_writer_new(nch, MIG_MAX_RECORD);
	double t_enc = encode_all(w, &e, src, pages, &c);
	uint64_t wire = rec_writer_bytes_out(w);
	rec_writer_free(w);
	channel_close(nch);

	/* Untimed: the same records into memory, for the decoder. */
	int mfd = memfd_create("records", 0);
	struct channel *mch = channel_file_new(mfd, false, 0, UINT64_MAX, "memfd");
	w = rec_writer_new(mch, MIG_MAX_RECORD);
	struct ram_counts c2 = { 0 };
	encode_all(w, &e, src, pages, &c2);
	rec_writer_free(w);
	channel_close(mch);
	ram_encoder_free(&e);
	struct stat st;
	fstat(mfd, &st);
	uint8_t *recs = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
			     mfd, 0);
	close(mfd);
	if (recs == MAP_FAILED) {
		perror("mmap");
		return -1;
	}

	struct ram_decoder d;
	ram_decoder_init(&d, dst, 1u << cd->id);
	double t0 = now_s();
	for (size_t off = 0; off < (size_t)st.st_size;) {
		uint32_t hdr[2];
		memcpy(hdr, recs + off, 8);
		if (ram_decode(&d, recs + off + 8, hdr[1], NULL, err)) {
			fprintf(stderr, "decode: %s\n", err);
			return -1;
		}
		off += 8 + hdr[1] + 4;
	}
	double t_dec = now_s() - t0;
	int same = !memcmp(src->slots[0].hva, dst->slots[0].hva, pages * PAGE);
	ram_decoder_free(&d);
	munmap(recs, (size_t)st.st_size);
	if (!same) {
		fprintf(stderr, "%s/%s: decoded memory differs\n", mx->name, cd->label);
		return -1;
	}

	double bytes = (double)pages * PAGE;
	printf("%-14s %-7s %9.0f %9.0f %7.2f %9llu %9llu\n", mx->name, cd->label,
	       bytes / t_enc / 1e6, bytes / t_dec / 1e6, bytes / wire,
	       (unsigned long long)c.compressed_batches,
	       (unsigned long long)c.raw_batches);
	fprintf(stderr,
		"{\"mix\": \"%s\", \"codec\": \"%s\", \"mib\": %llu, \"encode_mb_s\": %.0f, "
		"\"decode_mb_s\": %.0f, \"ratio\": %.3f, \"wire_bytes\": %llu, "
		"\"zero_pages\": %llu, \"compressed_batches\": %llu, \"raw_batches\": %llu}\n",
		mx->name, cd->label, (unsigned long long)(pages * PAGE >> 20),
		bytes / t_enc / 1e6, bytes / t_dec / 1e6, bytes / wire,
		(unsigned long long)wire, (unsigned long long)c.zero_pages,
		(unsigned long long)c.compressed_batches,
		(unsigned long long)c.raw_batches);
	return 0;
}

/* ---- the pipeline ------------------------------------------------------- */

struct receiver {
	int fd;
	struct guest_memory *dst;
	unsigned id;
	double done;
	int rc;
};

static void *receive(void *arg)
{
	struct receiver *rv = arg;
	char err[ERR_MAX];
	struct channel *ch = channel_socket_new(rv->fd, false);
	struct rec_reader *r = rec_reader_new(ch, MIG_MAX_RECORD);
	struct ram_decoder d;
	ram_decoder_init(&d, rv->dst, 1u << rv->id);
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		if (rec_read(r, &type, &p, &len)) {
			fprintf(stderr, "receive: %s\n", rec_reader_errmsg(r));
			rv->rc = -1;
			break;
		}
		if (type != MIG_REC_RAM_PAGES)
			break; /* the end */
		if (ram_decode(&d, p, len, NULL, err)) {
			fprintf(stderr, "decode: %s\n", err);
			rv->rc = -1;
			break;
		}
	}
	rv->done = now_s();
	ram_decoder_free(&d);
	rec_reader_free(r);
	channel_close(ch);
	return NULL;
}

/* A connected loopback TCP pair. */
static int tcp_pair(int fd[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fd[0] < 0 || connect(fd[0], (struct sockaddr *)&a, sizeof(a)))
		return -1;
	fd[1] = accept(l, NULL, NULL);
	close(l);
	return fd[1] < 0 ? -1 : 0;
}

static int run_pipe(const struct mix *mx, const struct codec *cd,
		    const struct guest_memory *src, uint64_t pages, uint64_t rate)
{
	char err[ERR_MAX];
	struct guest_memory dst;
	int fd[2];

	memory_layout(&dst, pages * PAGE);
	if (memory_alloc(&dst, err) || tcp_pair(fd)) {
		fprintf(stderr, "pipe setup failed\n");
		return -1;
	}
	struct receiver rv = { .fd = fd[1], .dst = &dst, .id = cd->id };
	pthread_t t;
	pthread_create(&t, NULL, receive, &rv);

	struct ram_encoder e;
	struct ram_counts c = { 0 };
	ram_encoder_init(&e, ram_encoding_get(cd->id), cd->level, err);
	struct channel *ch = channel_socket_new(fd[0], false);
	struct rec_writer *w = rec_writer_new(ch, MIG_MAX_RECORD);
	rec_writer_set_rate(w, rate);
	double t0 = now_s();
	encode_all(w, &e, src, pages, &c);
	rec_put(w, MIG_REC_ROUND_END, "end", 3);
	rec_flush(w);
	uint64_t wire = rec_writer_bytes_out(w);
	pthread_join(t, NULL);
	double dt = rv.done - t0;
	int same = rv.rc == 0 &&
		   !memcmp(src->slots[0].hva, dst.slots[0].hva, pages * PAGE);
	rec_writer_free(w);
	channel_close(ch);
	close(fd[0]);
	close(fd[1]);
	ram_encoder_free(&e);
	memory_free(&dst);
	if (!same) {
		fprintf(stderr, "%s/%s: the pipeline's memory differs\n", mx->name, cd->label);
		return -1;
	}
	char link[32];
	snprintf(link, sizeof(link), rate ? "%.0f MB/s" : "unlimited", rate / 1e6);
	double bytes = (double)pages * PAGE;
	printf("%-14s %-7s %-10s %9.0f %9.1f\n", mx->name, cd->label, link,
	       bytes / dt / 1e6, wire / 1e6);
	fprintf(stderr,
		"{\"pipeline\": true, \"mix\": \"%s\", \"codec\": \"%s\", \"rate\": %llu, "
		"\"memory_mb_s\": %.0f, \"wire_bytes\": %llu, \"seconds\": %.3f}\n",
		mx->name, cd->label, (unsigned long long)rate, bytes / dt / 1e6,
		(unsigned long long)wire, dt);
	return 0;
}

static void fill_mix(struct guest_memory *src, const struct mix *mx,
		     uint64_t pages, const struct pools *pl)
{
	uint64_t k_text = 0, k_bin = 0;
	for (uint64_t pg = 0; pg < pages; pg++) {
		unsigned r = (unsigned)(next_rand() % 100), acc = 0;
		enum kind k = K_ZERO;
		for (unsigned i = 0; i < 5; i++) {
			acc += mx->pct[i];
			if (r < acc) {
				k = (enum kind)i;
				break;
			}
		}
		uint64_t idx = k == K_TEXT ? k_text++ : k == K_BINARY ? k_bin++ : pg;
		fill(src->slots[0].hva + pg * PAGE, k, idx, pl);
	}
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 64;
	char err[ERR_MAX];
	struct pools pl;

	if (!mib || mib > 4096) {
		fprintf(stderr, "usage: ram_codec_bench [MiB per mix, 1..4096]\n");
		return 2;
	}
	pl.text = pool_from("/usr/include/*.h", 16u << 20, &pl.text_len);
	pl.bin = pool_from("/usr/bin/*", 32u << 20, &pl.bin_len);
	if (!pl.text || !pl.bin || pl.text_len < (1u << 20) || pl.bin_len < (1u << 20)) {
		fprintf(stderr, "ram_codec_bench: need /usr/include/*.h and /usr/bin/* "
			"(at least 1 MiB each) for the text and binary pages\n");
		return 1;
	}
	uint64_t pages = mib << 20 >> 12;
	struct guest_memory src, dst;
	memory_layout(&src, mib << 20);
	memory_layout(&dst, mib << 20);
	if (memory_alloc(&src, err) || memory_alloc(&dst, err)) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* Touched once: the decoder is measured, not first-touch faults. */
	memset(dst.slots[0].hva, 1, pages * PAGE);

	printf("%-14s %-7s %9s %9s %7s %9s %9s\n", "mix", "codec", "enc MB/s",
	       "dec MB/s", "ratio", "compr", "raw");
	int rc = 0;
	for (size_t m = 0; m < sizeof(mixes) / sizeof(mixes[0]) && !rc; m++) {
		fill_mix(&src, &mixes[m], pages, &pl);
		for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]) && !rc; c++)
			rc = run_case(&mixes[m], &codecs[c], &src, &dst, pages);
	}

	/* The pipeline: the mixed set, the best case of real data and the
	 * worst case. */
	static const char *const pipe_mixes[] = { "mixed", "text", "random" };
	static const uint64_t rates[] = { 0, 125000000 };
	printf("\npipeline: encode -> loopback TCP -> decode into fresh memory\n");
	printf("%-14s %-7s %-10s %9s %9s\n", "mix", "codec", "link", "mem MB/s",
	       "wire MB");
	for (size_t m = 0; m < 3 && !rc; m++) {
		const struct mix *mx = NULL;
		for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++)
			if (!strcmp(mixes[i].name, pipe_mixes[m]))
				mx = &mixes[i];
		fill_mix(&src, mx, pages, &pl);
		for (size_t r = 0; r < 2 && !rc; r++)
			for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]) && !rc; c++)
				rc = run_pipe(mx, &codecs[c], &src, pages, rates[r]);
	}
	memory_free(&src);
	memory_free(&dst);
	free(pl.text);
	free(pl.bin);
	return rc ? 1 : 0;
}
