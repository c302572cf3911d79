#include "devices/heartbeat.h"
#include "devices/device.h"
#include "vmm/vm.h"
#include "guest_abi.h"
#include "util/log.h"
#include "util/outbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Small: a heartbeat that waits in a buffer no longer says when it was
 * sent, so a lagging observer loses beats (counted) rather than getting
 * them late in bulk. */
#define HB_OUT_BUFFER 4096
#define HB_CLOSE_FLUSH_MS 200

struct heartbeat {
	struct device dev;
	struct outbuf *out;  /* NULL: "none" */
	uint64_t count;      /* host-side statistic, not guest state */
};

static void hb_out(struct device *d, uint16_t port, const void *data,
		   unsigned size)
{
	struct heartbeat *hb = (struct heartbeat *)d;
	(void)port;
	(void)size;
	hb->count++;
	/* Never waits: a slow or vanished observer must not stall the guest
	 * (this runs on a vCPU thread holding the I/O lock). */
	if (hb->out)
		outbuf_write(hb->out, data, 1);
}

static void hb_in(struct device *d, uint16_t port, void *data, unsigned size)
{
	(void)d;
	(void)port;
	/* Reads return the port number, as QEMU's debugcon does, so a guest
	 * can tell the device is present. */
	memset(data, 0, size);
	*(uint8_t *)data = PORT_HEARTBEAT;
}

/* No guest-visible state; the empty record keeps every device versioned. */
static void hb_save(struct device *d, struct buf *out)
{
	(void)d;
	(void)out;
}

static int hb_load(struct device *d, uint32_t version, const void *data,
		   size_t len, char *err)
{
	(void)d;
	(void)data;
	if (version != 1 || len != 0)
		return err_set(err, -EPROTO,
			       "heartbeat: unknown state version %u (%zu bytes)",
			       version, len);
	return 0;
}

static void hb_destroy(struct device *d)
{
	struct heartbeat *hb = (struct heartbeat *)d;
	outbuf_close(hb->out, HB_CLOSE_FLUSH_MS);
	free(hb);
}

static const struct device_ops heartbeat_ops = {
	.name = "heartbeat",
	.state_version = 1,
	.pio_in = hb_in,
	.pio_out = hb_out,
	.save = hb_save,
	.load = hb_load,
	.destroy = hb_destroy,
};

static int hb_connect_unix(const char *path, char *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(err, -ENAMETOOLONG,
			       "heartbeat: socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "heartbeat: socket: %s",
			       strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return err_set(err, -e, "heartbeat: cannot connect to %s: %s",
			       path, strerror(e));
	}
	return fd;
}

int heartbeat_check_target(const char *target, char *err)
{
	if (!strcmp(target, "none") ||
	    (!strncmp(target, "file:", 5) && target[5]) ||
	    (!strncmp(target, "unix:", 5) && target[5]))
		return 0;
	return err_set(err, -EINVAL,
		       "heartbeat: '%s' is not none, file:PATH or unix:PATH",
		       target);
}

int heartbeat_create(struct vm *vm, const char *target,
		     struct heartbeat **out, char *err)
{
	int fd = -1;
	int r = heartbeat_check_target(target, err);

	if (r)
		return r;
	if (!strncmp(target, "file:", 5) && target[5]) {
		fd = open(target + 5, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			  0644);
		if (fd < 0)
			return err_set(err, -errno,
				       "heartbeat: cannot open %s: %s",
				       target + 5, strerror(errno));
	} else if (!strncmp(target, "unix:", 5) && target[5]) {
		fd = hb_connect_unix(target + 5, err);
		if (fd < 0)
			return fd;
	}
	struct heartbeat *hb = calloc(1, sizeof(*hb));
	if (!hb) {
		if (fd >= 0)
			close(fd);
		return err_set(err, -ENOMEM, "out of memory");
	}
	hb->dev.ops = &heartbeat_ops;
	hb->dev.port_base = PORT_HEARTBEAT;
	hb->dev.port_count = 1;
	if (fd >= 0) {
		r = outbuf_open(&hb->out, fd, true, HB_OUT_BUFFER,
				    "heartbeat", err);
		if (r) {
			close(fd);
			free(hb);
			return r;
		}
	}
	r = vm_add_device(vm, &hb->dev);
	if (r) {
		hb_destroy(&hb->dev);
		return err_set(err, r, "too many devices");
	}
	*out = hb;
	return 0;
}

uint64_t heartbeat_count(struct heartbeat *hb) { return hb->count; }

bool heartbeat_drain(struct heartbeat *hb, unsigned max_ms)
{
	return !hb || !hb->out || outbuf_drain(hb->out, max_ms);
}

void heartbeat_output_stats(struct heartbeat *hb, struct outbuf_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (hb && hb->out)
		outbuf_get_stats(hb->out, st);
}
