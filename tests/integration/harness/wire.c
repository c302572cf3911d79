/* Crafted migration streams for destination tests: see wire.h. */
#include "harness.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* CRC-32C (Castagnoli), reflected, bitwise: slow and obviously right. */
uint32_t w_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1));
	}
	return ~crc;
}

void w_put(struct w_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		cr_assert(b->p, "out of memory");
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

void w_put_u32(struct w_buf *b, uint32_t v)
{
	w_put(b, &v, 4);
}

void w_put_u64(struct w_buf *b, uint64_t v)
{
	w_put(b, &v, 8);
}

void w_put_preamble(struct w_buf *b, uint32_t version)
{
	w_put_preamble_role(b, version, W_ROLE_MAIN);
}

void w_put_preamble_role(struct w_buf *b, uint32_t version, uint32_t role)
{
	static const uint8_t session[16] = { 0xfe, 0x77, 0x01, 0x02, 0x03, 0x04,
					     0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
					     0x0b, 0x0c, 0x0d, 0x0e };

	w_put(b, W_MAGIC, 8);
	w_put_u32(b, version);
	if (version >= 2) {
		w_put_u32(b, role);
		w_put(b, session, sizeof(session));
	}
}

void w_put_record(struct w_buf *b, uint32_t type, const void *payload,
		  uint32_t len)
{
	w_put_record_x(b, type, payload, len, 0);
}

void w_put_record_x(struct w_buf *b, uint32_t type, const void *payload,
		    uint32_t len, uint32_t crc_xor)
{
	size_t start = b->len;
	w_put_u32(b, type);
	w_put_u32(b, len);
	w_put(b, payload, len);
	w_put_u32(b, w_crc32c(0, b->p + start, 8 + len) ^ crc_xor);
}

void w_free(struct w_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void w_put_plausible_hello(struct w_buf *b)
{
	static const char hello[] =
		"{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096}";
	w_put_preamble(b, W_VERSION);
	w_put_record(b, W_REC_HELLO, hello, sizeof(hello) - 1);
}

int w_try_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int w_connect(int port)
{
	int fd = w_try_connect(port);
	h_assert(fd >= 0, "connect to port %d: %s", port, strerror(-fd));
	return fd;
}

void w_send_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		h_assert(n > 0, "send: %s", strerror(errno));
		p += n;
		len -= n;
	}
}

bool w_recv_all(int fd, void *out, size_t len, double timeout_s)
{
	uint8_t *p = out;
	double dl = h_now() + timeout_s;
	while (len) {
		int ms = (int)((dl - h_now()) * 1000);
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (ms <= 0 || poll(&pf, 1, ms) <= 0)
			return false;
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

bool w_recv_record_via(w_recv_fn recv, void *src, uint32_t *type,
		       char **payload, uint32_t *len, double timeout_s)
{
	uint32_t hdr[2], crc;
	if (!recv(src, hdr, 8, timeout_s))
		return false;
	h_assert(hdr[1] <= 16u << 20, "record of %u bytes", hdr[1]);
	uint8_t *rec = malloc(8 + hdr[1] + 1);
	memcpy(rec, hdr, 8);
	if (!recv(src, rec + 8, hdr[1], timeout_s) ||
	    !recv(src, &crc, 4, timeout_s)) {
		free(rec);
		return false;
	}
	h_assert(crc == w_crc32c(0, rec, 8 + hdr[1]),
		 "record 0x%x from the peer has a bad checksum", hdr[0]);
	*type = hdr[0];
	*len = hdr[1];
	*payload = malloc(hdr[1] + 1);
	memcpy(*payload, rec + 8, hdr[1]);
	(*payload)[hdr[1]] = '\0';
	free(rec);
	return true;
}

static bool recv_fd(void *src, void *out, size_t len, double timeout_s)
{
	return w_recv_all(*(int *)src, out, len, timeout_s);
}

bool w_recv_record(int fd, uint32_t *type, char **payload, uint32_t *len,
		   double timeout_s)
{
	return w_recv_record_via(recv_fd, &fd, type, payload, len, timeout_s);
}

bool w_wait_closed(int fd, double timeout_s)
{
	double dl = h_now() + timeout_s;
	char c[256];
	for (;;) {
		int ms = (int)((dl - h_now()) * 1000);
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (ms <= 0 || poll(&pf, 1, ms) <= 0)
			return false;
		ssize_t n = read(fd, c, sizeof(c));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
	}
}
