/*
 * nice.c - lets a BGSAVE's background threads yield the CPU to the event
 * loop.  On a machine with few cores the writer (checksums, copies, I/O)
 * competes with the loop for a core; a higher nice value for it trades a
 * longer save for requests served at their usual rate meanwhile.  The
 * threads are found by the names bgsnap gives them (bgsnap-writer,
 * bgsnap-io); a library that names them otherwise is simply left alone.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kv.h"

int kv_renice_save_threads(int nice_value)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[300], comm[64] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (strncmp(comm, "bgsnap-writer", 13) && strncmp(comm, "bgsnap-io", 9))
			continue;
		/* Linux keeps a nice value per thread: PRIO_PROCESS with a tid. */
		if (setpriority(PRIO_PROCESS, (id_t)atoi(de->d_name), nice_value) == 0)
			n++;
	}
	closedir(d);
	return n;
}
