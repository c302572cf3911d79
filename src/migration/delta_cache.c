/* The source's page cache for deltas (delta_cache.h). */
#include "migration/delta_cache.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096u

int delta_cache_init(struct delta_cache *c, uint64_t size, uint64_t npages,
		     char *err)
{
	memset(c, 0, sizeof(*c));
	if (size < PAGE)
		return err_set(err, -EINVAL,
			       "an xbzrle cache of %llu bytes holds no page (at least %u)",
			       (unsigned long long)size, PAGE);
	uint64_t slots = size / PAGE;
	if (npages && slots > npages)
		slots = npages;
	c->key = calloc(slots, sizeof(*c->key));
	c->age = calloc(slots, sizeof(*c->age));
	/* Large enough that malloc maps it: untouched slots cost nothing. */
	c->data = malloc(slots * PAGE);
	if (!c->key || !c->age || !c->data) {
		char t[UNITS_LEN];
		delta_cache_free(c);
		return err_set(err, -ENOMEM, "out of memory for a %s xbzrle cache",
			       units_size(t, sizeof(t), (double)slots * PAGE));
	}
	c->slots = slots;
	c->bytes = slots * PAGE;
	return 0;
}

void delta_cache_free(struct delta_cache *c)
{
	free(c->key);
	free(c->age);
	free(c->data);
	memset(c, 0, sizeof(*c));
}

uint8_t *delta_cache_find(struct delta_cache *c, uint64_t page, uint32_t now)
{
	if (!c->slots)
		return NULL;
	uint64_t s = page % c->slots;
	if (c->key[s] != page + 1)
		return NULL;
	c->age[s] = now;
	return c->data + s * PAGE;
}

uint8_t *delta_cache_insert(struct delta_cache *c, uint64_t page,
			    const uint8_t *data, uint32_t now)
{
	if (!c->slots)
		return NULL;
	uint64_t s = page % c->slots;
	/* Another page sent recently keeps its slot (see the header). */
	if (c->key[s] && c->key[s] != page + 1 &&
	    now < c->age[s] + DELTA_CACHE_LIFETIME)
		return NULL;
	c->key[s] = page + 1;
	c->age[s] = now;
	uint8_t *copy = c->data + s * PAGE;
	memcpy(copy, data, PAGE);
	return copy;
}

void delta_cache_drop(struct delta_cache *c, uint64_t page)
{
	if (!c->slots)
		return;
	uint64_t s = page % c->slots;
	if (c->key[s] == page + 1)
		c->key[s] = 0;
}
