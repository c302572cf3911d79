/*
 * prepage.c - see prepage.h.
 */
#include "migration/prepage.h"

#include <errno.h>
#include <stdlib.h>

void prepage_params_default(struct prepage_params *p)
{
	p->window = PREPAGE_WINDOW_DEFAULT;
	p->wmin = PREPAGE_WMIN_DEFAULT;
	p->wmax = PREPAGE_WMAX_DEFAULT;
}

int prepage_init(struct prepage *p, uint64_t npages,
		 const struct prepage_params *prm)
{
	*p = (struct prepage){ .npages = npages };
	if (prm)
		p->prm = *prm;
	else
		prepage_params_default(&p->prm);
	if (p->prm.wmin < 1)
		p->prm.wmin = 1;
	if (p->prm.wmax < p->prm.wmin)
		p->prm.wmax = p->prm.wmin;
	if (p->prm.window < p->prm.wmin)
		p->prm.window = p->prm.wmin;
	if (p->prm.window > p->prm.wmax)
		p->prm.window = p->prm.wmax;
	p->window = p->prm.window;
	p->sent = calloc(npages / 64 + 1, sizeof(uint64_t));
	return p->sent ? 0 : -ENOMEM;
}

void prepage_free(struct prepage *p)
{
	free(p->sent);
	p->sent = NULL;
}

static bool set_sent(struct prepage *p, uint64_t page)
{
	uint64_t bit = 1ULL << (page % 64);
	if (p->sent[page / 64] & bit)
		return true;
	p->sent[page / 64] |= bit;
	p->nsent++;
	return false;
}

void prepage_fault(struct prepage *p, uint64_t page)
{
	if (page >= p->npages)
		return;
	p->faults++;
	if (p->have_last) {
		uint64_t d = page > p->last_fault ? page - p->last_fault
						  : p->last_fault - page;
		if (d <= p->window) {
			if (p->window < p->prm.wmax) {
				p->window = p->window * 2 > p->prm.wmax
						    ? p->prm.wmax : p->window * 2;
				p->widened++;
			}
		} else if (p->window > p->prm.wmin) {
			p->window = p->window / 2 < p->prm.wmin
					    ? p->prm.wmin : p->window / 2;
			p->narrowed++;
		}
	}
	p->have_last = true;
	p->last_fault = page;
	p->bubble = true;
	p->pivot = page;
	p->radius = 1;
	p->back = false;
}

bool prepage_mark_sent(struct prepage *p, uint64_t page)
{
	if (page >= p->npages)
		return true;
	return set_sent(p, page);
}

/* The bubble's next unsent page, or false when it has spread its window. */
static bool bubble_next(struct prepage *p, uint64_t *page)
{
	while (p->bubble) {
		if (p->radius > p->window) {
			p->bubble = false;
			break;
		}
		bool back = p->back;
		uint64_t r = p->radius;
		/* forward first, then backward, then the next radius */
		if (back) {
			p->back = false;
			p->radius++;
		} else {
			p->back = true;
		}
		uint64_t c;
		if (back) {
			if (p->pivot < r)
				continue;
			c = p->pivot - r;
		} else {
			if (p->pivot + r >= p->npages)
				continue;
			c = p->pivot + r;
		}
		if (!set_sent(p, c)) {
			p->bubble_pages++;
			*page = c;
			return true;
		}
	}
	return false;
}

bool prepage_next(struct prepage *p, uint64_t *page)
{
	if (prepage_done(p))
		return false;
	if (bubble_next(p, page))
		return true;
	while (p->sweep < p->npages && prepage_is_sent(p, p->sweep))
		p->sweep++;
	if (p->sweep >= p->npages)
		return false;   /* not reached: nsent < npages */
	set_sent(p, p->sweep);
	*page = p->sweep++;
	return true;
}
