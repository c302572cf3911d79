/* parse.h - strict parsing of sizes and numbers given by users. */
#ifndef FERRY_PARSE_H
#define FERRY_PARSE_H

#include <stdint.h>

/* "512M", "4G", "65536", "64K": bytes.  Returns 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* A plain non-negative decimal integer no larger than max. */
int parse_uint(const char *s, uint64_t max, uint64_t *out);

#endif
