/* content.c - the workload's patterns and which pages it writes (see
 * workload.h for the content model). */
#include <string.h>

#include "content.h"

const char *wl_pattern_name(int pattern)
{
	static const char *const names[] = { "seq", "random", "hot" };
	return pattern >= 0 && pattern < 3 ? names[pattern] : NULL;
}

int wl_pattern_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, wl_pattern_name(i)))
			return i;
	return -1;
}

uint64_t wl_domain(const struct wl_params *p)
{
	return p->npages < 16 ? p->npages : p->npages - p->npages / 16;
}

/* Every 8th page, and runs of 16 pages every 64, start zero (all of them
 * with --fill zero). */
bool wl_page_init_zero(const struct wl_params *p, uint64_t page)
{
	return p->fill == WL_FILL_ZERO || page % 8 == 7 || (page >> 4) % 4 == 3;
}

const char *wl_fill_name(int fill)
{
	static const char *const names[] = { "mixed", "random", "text", "zero" };
	return fill >= 0 && fill < 4 ? names[fill] : NULL;
}

int wl_fill_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(name, wl_fill_name(i)))
			return i;
	return -1;
}
