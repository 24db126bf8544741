/* content.c - the workload's patterns and which pages it writes (see
 * workload.h for the content model). */
#include <string.h>

#include "content.h"

static const char *const pattern_names[] = { "seq", "random", "hot" };
static const char *const fill_names[] = { "mixed", "random", "text", "zero" };
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int i)
{
	return i >= 0 && i < n ? names[i] : NULL;
}

static int index_of(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

const char *wl_pattern_name(int pattern) { return name_of(pattern_names, COUNT(pattern_names), pattern); }
int wl_pattern_parse(const char *name) { return index_of(pattern_names, COUNT(pattern_names), name); }
const char *wl_fill_name(int fill) { return name_of(fill_names, COUNT(fill_names), fill); }
int wl_fill_parse(const char *name) { return index_of(fill_names, COUNT(fill_names), name); }

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

