/*
 * zstd and lz4 as RAM_PAGES encodings (ram_compress.h).  A batch's plain
 * data (at most 256 pages, 1 MiB) is one zstd frame or one LZ4 block;
 * both libraries' one-shot calls fit, with a context kept per stream so
 * no batch pays for setting one up.
 *
 * The decoders take the bytes as hostile: the frame's own size claim,
 * its extent and the decompressed length are each checked against what
 * the record's descriptors need, and the libraries' safe entry points
 * never write past the capacity they are given.
 */
#include "migration/ram_compress.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

/* ---- zstd --------------------------------------------------------------- */

static size_t zstd_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

static size_t zstd_compress(void **ctx, unsigned level, const uint8_t *src,
			    size_t len, uint8_t *dst, size_t cap)
{
	if (!*ctx && !(*ctx = ZSTD_createCCtx()))
		return 0;
	/* The frame records its content size (the default), which the
	 * destination checks before it decompresses anything. */
	size_t r = ZSTD_compressCCtx(*ctx, dst, cap, src, len, (int)level);
	return ZSTD_isError(r) ? 0 : r;
}

static int zstd_decompress(void **ctx, const uint8_t *src, size_t len,
			   uint8_t *dst, size_t want, size_t dst_cap, char *err)
{
	unsigned long long claim = ZSTD_getFrameContentSize(src, len);
	if (claim == ZSTD_CONTENTSIZE_ERROR)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: zstd data (%zu bytes) does not start with a valid zstd frame header",
			       len);
	if (claim != ZSTD_CONTENTSIZE_UNKNOWN && claim != want)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: zstd frame says it holds %llu bytes where its descriptors need %zu",
			       claim, want);
	size_t frame = ZSTD_findFrameCompressedSize(src, len);
	if (ZSTD_isError(frame))
		return err_set(err, -EPROTO,
			       "RAM_PAGES: zstd frame is corrupt or truncated (%zu bytes: %s)",
			       len, ZSTD_getErrorName(frame));
	if (frame != len)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: %zu bytes follow the %zu-byte zstd frame",
			       len - frame, frame);
	if (!*ctx && !(*ctx = ZSTD_createDCtx()))
		return err_set(err, -ENOMEM, "out of memory for a zstd context");
	/* Room for a byte more than needed: a frame without a size claim
	 * that holds more is then told apart from one that is corrupt. */
	size_t room = want < dst_cap ? want + 1 : dst_cap;
	size_t r = ZSTD_decompressDCtx(*ctx, dst, room, src, len);
	if (ZSTD_isError(r)) {
		if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
			return err_set(err, -EPROTO,
				       "RAM_PAGES: zstd data decompresses to more than the %zu bytes its descriptors need",
				       want);
		return err_set(err, -EPROTO, "RAM_PAGES: zstd data is corrupt (%s)",
			       ZSTD_getErrorName(r));
	}
	if (r != want)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: zstd data decompresses to %zu bytes where its descriptors need %zu",
			       r, want);
	return 0;
}

static void zstd_free_cctx(void *ctx)
{
	ZSTD_freeCCtx(ctx);
}

static void zstd_free_dctx(void *ctx)
{
	ZSTD_freeDCtx(ctx);
}

const struct ram_encoding ram_compress_zstd = {
	.name = "zstd", .id = RAM_ENC_ZSTD, .bound = zstd_bound,
	.compress = zstd_compress, .decompress = zstd_decompress,
	.free_cctx = zstd_free_cctx, .free_dctx = zstd_free_dctx,
};

/* ---- lz4 ---------------------------------------------------------------- */

static size_t lz4_bound(size_t len)
{
	return len > LZ4_MAX_INPUT_SIZE ? 0 : (size_t)LZ4_compressBound((int)len);
}

static size_t lz4_compress(void **ctx, unsigned level, const uint8_t *src,
			   size_t len, uint8_t *dst, size_t cap)
{
	(void)level; /* QEMU has no lz4 level; acceleration stays 1 */
	if (len > LZ4_MAX_INPUT_SIZE || cap > INT_MAX)
		return 0;
	/* The state on the heap, once: LZ4's default puts 16 KiB on the
	 * stack on every call. */
	if (!*ctx && !(*ctx = malloc((size_t)LZ4_sizeofState())))
		return 0;
	int r = LZ4_compress_fast_extState(*ctx, (const char *)src, (char *)dst,
					   (int)len, (int)cap, 1);
	return r > 0 ? (size_t)r : 0;
}

static int lz4_decompress(void **ctx, const uint8_t *src, size_t len,
			  uint8_t *dst, size_t want, size_t dst_cap, char *err)
{
	(void)ctx; /* LZ4 decodes without one */
	if (len > INT_MAX || dst_cap > INT_MAX)
		return err_set(err, -EPROTO, "RAM_PAGES: %zu bytes of lz4 data is too much", len);
	/* All of dst_cap (more than want): a block that decodes to a bit
	 * more than needed is reported as such. */
	int r = LZ4_decompress_safe((const char *)src, (char *)dst, (int)len,
				    (int)dst_cap);
	if (r < 0)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: lz4 data is corrupt, truncated or decompresses to more than %zu bytes "
			       "(%zu bytes where its descriptors need %zu decompressed)",
			       dst_cap, len, want);
	if ((size_t)r != want)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: lz4 data decompresses to %d bytes where its descriptors need %zu",
			       r, want);
	return 0;
}

static void lz4_free_cctx(void *ctx)
{
	free(ctx);
}

const struct ram_encoding ram_compress_lz4 = {
	.name = "lz4", .id = RAM_ENC_LZ4, .bound = lz4_bound,
	.compress = lz4_compress, .decompress = lz4_decompress,
	.free_cctx = lz4_free_cctx,
};
