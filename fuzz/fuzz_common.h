/*
 * fuzz_common.h - what the libFuzzer targets share: a machine without KVM
 * (vm_create_offline) for the state decoders to load into, the unframed
 * record form of fuzz inputs, and streams built with the real record writer.
 *
 * Why unframed: every record carries a CRC-32C, so a mutated record is
 * refused by its checksum before any decoder sees it.  The targets that
 * test what lies behind the framing take "u32 type | u32 length | payload"
 * items (length clamped to what is left) and frame them with rec_put, the
 * encoder every writer uses; fuzz_record tests the framing itself on raw
 * bytes.
 */
#ifndef FERRY_FUZZ_COMMON_H
#define FERRY_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct kvm_cpuid2;

/* Once per process: quiet logs (LOG_OFF), no SIGPIPE. */
void fuzz_init(void);

/* With FUZZ_VERBOSE=1 in the environment: print what a decoder said
 * (to see how far a seed gets). */
void fuzz_note(const char *what, int r, const char *err);

/* The MSR indices fuzz_machine makes the host's list (the ones every
 * guest needs and a few more); the seeds' vCPU states hold these. */
extern const uint32_t fuzz_host_msrs[];
extern const unsigned fuzz_host_nmsrs;

/* A machine of ram bytes and vcpus vCPUs with no KVM behind it, with a
 * small CPUID table (so machine_desc_build works) and, if debug_exit,
 * QEMU's isa-debug-exit.  Its vCPUs' state is checked against
 * fuzz_host_msrs as this host's MSR list.  Aborts on failure: a fuzz target without its
 * fixture must not report success. */
struct vm *fuzz_machine(uint64_t ram, unsigned vcpus, bool debug_exit);

/* The CPUID table fuzz_machine gives its guest, as a host's supported
 * list: what a HELLO is checked against without KVM. */
const struct kvm_cpuid2 *fuzz_host_cpuid(void);

/* One unframed item of a fuzz input. */
struct fuzz_item {
	uint32_t type;
	uint32_t len;
	const uint8_t *data;
};

/* The next item from (*p, *n); false when fewer than 8 bytes are left. */
bool fuzz_next_item(const uint8_t **p, size_t *n, struct fuzz_item *it);

/* A memfd holding data (for file channels and snapshot paths); the caller
 * closes it.  Aborts on failure. */
int fuzz_memfd(const void *data, size_t len);

/*
 * Frame every item of [data, data+len) with the real record writer, after
 * raw (prefix bytes outside any record, e.g. a preamble).  Returns a
 * malloc'd buffer with *out_len bytes.  Aborts on failure.
 */
uint8_t *fuzz_frame(const void *raw, size_t raw_len, const uint8_t *data,
		    size_t len, uint32_t max_record, size_t *out_len);

/* Append one unframed item to a growing buffer (the seed generator). */
void fuzz_put_item(uint8_t **buf, size_t *len, uint32_t type, const void *data,
		   uint32_t n);

#endif
