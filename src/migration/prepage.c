/*
 * prepage.c - see prepage.h.
 */
#include "migration/prepage.h"
#include "util/bitmap.h"

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

void prepage_restart(struct prepage *p, const uint64_t *have)
{
	uint64_t words = p->npages / 64 + 1;

	p->nsent = 0;
	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = have[w];
		/* Bits past the last page mean nothing. */
		if (w == p->npages / 64)
			bits &= p->npages % 64 ? (1ULL << (p->npages % 64)) - 1 : 0;
		p->sent[w] = bits;
		p->nsent += (uint64_t)__builtin_popcountll(bits);
	}
	p->sweep = 0;
	p->bubble = false;
	p->dir = 0;
	p->back = false;
	p->have_last = false;
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
	int dir = 0;
	if (p->have_last) {
		uint64_t d = page > p->last_fault ? page - p->last_fault
						  : p->last_fault - page;
		if (d <= p->window) {
			if (p->window < p->prm.wmax) {
				p->window = p->window * 2 > p->prm.wmax
						    ? p->prm.wmax : p->window * 2;
				p->widened++;
			}
			dir = page > p->last_fault ? 1 : page < p->last_fault ? -1 : 0;
		} else if (p->window > p->prm.wmin) {
			p->window = p->window / 2 < p->prm.wmin
					    ? p->prm.wmin : p->window / 2;
			p->narrowed++;
		}
	}
	p->have_last = true;
	p->last_fault = page;
	int64_t pg = (int64_t)page;
	/* Inside what the bubble covers (or at its next page): the pages
	 * around are pushed or on their way - go on from the frontiers. */
	bool inside = p->bubble && pg >= p->lo && pg <= p->hi;
	if (!inside) {
		p->lo = pg - 1;
		p->hi = pg + 1;
		p->back = false;
	}
	p->lim_lo = pg - (int64_t)p->window;
	p->lim_hi = pg + (int64_t)p->window;
	p->dir = dir;
	p->bubble = true;
}

bool prepage_mark_sent(struct prepage *p, uint64_t page)
{
	if (page >= p->npages)
		return true;
	return set_sent(p, page);
}

uint64_t prepage_mark_sent_range(struct prepage *p, uint64_t first, uint64_t n)
{
	if (first >= p->npages)
		return 0;
	if (n > p->npages - first)
		n = p->npages - first;
	uint64_t newly = bitmap_set_range(p->sent, first, n);
	p->nsent += newly;
	return newly;
}

/* The bubble's next unsent page, or false when it has spread its window. */
static bool bubble_next(struct prepage *p, uint64_t *page)
{
	while (p->bubble) {
		bool up = p->dir >= 0 && p->hi <= p->lim_hi &&
			  p->hi < (int64_t)p->npages;
		bool down = p->dir <= 0 && p->lo >= p->lim_lo && p->lo >= 0;
		if (!up && !down) {
			p->bubble = false;
			break;
		}
		/* both ways: up first, then down, alternating */
		bool take_down = down && (!up || p->back);
		if (up && down)
			p->back = !p->back;
		uint64_t c = (uint64_t)(take_down ? p->lo-- : p->hi++);
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
	/* A word at a time over what is sent: a big guest's untouched
	 * memory, skipped under the lock the page server also takes. */
	while (p->sweep < p->npages && prepage_is_sent(p, p->sweep)) {
		if (p->sweep % 64 == 0 && p->sent[p->sweep / 64] == ~0ULL)
			p->sweep += 64;
		else
			p->sweep++;
	}
	if (p->sweep >= p->npages)
		return false;   /* not reached: nsent < npages */
	set_sent(p, p->sweep);
	*page = p->sweep++;
	return true;
}
