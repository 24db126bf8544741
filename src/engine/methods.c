/*
 * methods.c - the methods by name and by number: their names, which
 * struct method_ops runs each, the order `auto` tries them in, and the
 * probe that says whether one can run here.
 */
#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const method_names[BGSNAP_METHOD_COUNT_] = {
	[BGSNAP_METHOD_AUTO] = "auto",
	[BGSNAP_METHOD_UFFD] = "uffd",
	[BGSNAP_METHOD_UFFD_SIGNAL] = "uffd-signal",
	[BGSNAP_METHOD_MPROTECT] = "mprotect",
	[BGSNAP_METHOD_FORK] = "fork",
	[BGSNAP_METHOD_STOP] = "stop",
};

const char *bgsnap_method_name(int method)
{
	if (method < 0 || method >= BGSNAP_METHOD_COUNT_)
		return NULL;
	return method_names[method];
}

int bgsnap_method_parse(const char *name)
{
	for (int i = 0; name && i < BGSNAP_METHOD_COUNT_; i++)
		if (!strcmp(name, method_names[i]))
			return i;
	return -EINVAL;
}

static const struct method_ops *ops_for(int method)
{
	switch (method) {
	case BGSNAP_METHOD_UFFD: return &method_uffd_ops;
	case BGSNAP_METHOD_UFFD_SIGNAL: return &method_uffd_signal_ops;
	case BGSNAP_METHOD_MPROTECT: return &method_mprotect_ops;
	case BGSNAP_METHOD_FORK: return &method_fork_ops;
	case BGSNAP_METHOD_STOP: return &method_stop_ops;
	default: return NULL;
	}
}

/* auto: the best method the kernel allows, in order of pause and fault cost. */
static const int auto_order[] = { BGSNAP_METHOD_UFFD, BGSNAP_METHOD_MPROTECT, BGSNAP_METHOD_FORK };

int engine_resolve_method(int method, const struct method_ops **out, struct bgsnap_err *err)
{
	if (method == BGSNAP_METHOD_AUTO) {
		struct bgsnap_err first = { 0, "" };
		for (size_t i = 0; i < sizeof(auto_order) / sizeof(auto_order[0]); i++) {
			const struct method_ops *ops = ops_for(auto_order[i]);
			struct bgsnap_err e2 = { 0, "" };
			if (ops && (!ops->probe || ops->probe(&e2) == 0)) {
				*out = ops;
				return 0;
			}
			if (!first.code)
				first = e2;
		}
		return err_set(err, first.code ? first.code : -ENOTSUP, "no method can run here: %s", first.msg);
	}
	const struct method_ops *ops = ops_for(method);
	if (!ops)
		return err_set(err, -ENOTSUP, "method '%s' is not implemented in this build",
		               bgsnap_method_name(method) ? bgsnap_method_name(method) : "?");
	int r = ops->probe ? ops->probe(err) : 0;
	if (r)
		return r;
	*out = ops;
	return 0;
}

int bgsnap_method_probe(int method, char *why, size_t why_len)
{
	if (method < 0 || method >= BGSNAP_METHOD_COUNT_) {
		if (why && why_len)
			snprintf(why, why_len, "unknown method %d", method);
		return -EINVAL;
	}
	struct bgsnap_err err = { 0, "" };
	const struct method_ops *ops = NULL;
	int r = engine_resolve_method(method, &ops, &err);
	if (why && why_len)
		snprintf(why, why_len, "%s", r ? err.msg : "");
	return r;
}
