/* qmp.h - one command line of the control socket, parsed (qmp.c). */
#ifndef BGSNAP_VM_QMP_H
#define BGSNAP_VM_QMP_H

#include <stdbool.h>
#include <stddef.h>

struct qmp_cmd {
	char execute[64];
	char path[4096];
	bool has_path;
	char method[32];
	bool has_method;
	char id[256];                /* raw JSON text of "id", "" if absent  */
};

/* Parses one JSON line; 0, or -EINVAL with a message in `err`. */
int qmp_parse(const char *line, size_t len, struct qmp_cmd *cmd, char *err, size_t err_len);

#endif
