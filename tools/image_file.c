/*
 * image_file.c - the file an image goes into (see image.h): the checks on
 * the output before anything is written, the temporary it is built in, and
 * the rename that makes it the output.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli/cli.h"

#define TMP_NAME "/.bgsnap-image-XXXXXX"

static int sys_fail(char *err, size_t err_len, const char *what, const char *path)
{
	int e = errno;
	return cli_fail(err, err_len, -e, "%s%s%s: %s", what, what[0] ? " " : "", path, strerror(e));
}

/* The output's final name: `path`, or the file a symlink there points to.
 * An existing output must be a regular file, and not the input. */
static int resolve_output(const struct image_target *t, char **final, char *err, size_t err_len)
{
	struct stat in, out, l;
	if (stat(t->input, &in) < 0)
		return sys_fail(err, err_len, "", t->input);
	if (lstat(t->path, &l) < 0) {
		if (errno != ENOENT)
			return sys_fail(err, err_len, "", t->path);
		*final = strdup(t->path);
		return *final ? 0 : cli_fail(err, err_len, -ENOMEM, "out of memory");
	}
	if (stat(t->path, &out) < 0)
		return errno == ENOENT ? cli_fail(err, err_len, -ENOENT, "%s: a symlink to nothing", t->path)
		                       : sys_fail(err, err_len, "", t->path);
	if (out.st_dev == in.st_dev && out.st_ino == in.st_ino)
		return cli_fail(err, err_len, -EINVAL, "%s is the snapshot %s itself (the same file): choose another output",
		                t->path, t->input);
	if (S_ISDIR(out.st_mode))
		return cli_fail(err, err_len, -EISDIR, "%s is a directory", t->path);
	/* A device or a FIFO would be replaced by a regular file. */
	if (!S_ISREG(out.st_mode))
		return cli_fail(err, err_len, -EINVAL, "%s is not a regular file", t->path);
	*final = S_ISLNK(l.st_mode) ? realpath(t->path, NULL) : strdup(t->path);
	return *final ? 0 : sys_fail(err, err_len, "", t->path);
}

/* The output's directory, malloc'ed. */
static char *dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *d = strdup(dirname(copy));
	free(copy);
	return d;
}

/* Refuses an image larger than what its file system has free: a crafted
 * snapshot can describe 16 TiB in a few hundred KiB. */
static int check_space(const char *dir, const char *path, uint64_t size, bool force, char *err, size_t err_len)
{
	struct statvfs vfs;
	if (force)
		return 0;
	if (statvfs(dir, &vfs) < 0)
		return sys_fail(err, err_len, "statvfs", dir);
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (vfs.f_frsize && (uint64_t)vfs.f_bavail > UINT64_MAX / vfs.f_frsize)
		avail = UINT64_MAX;
	if (size <= avail)
		return 0;
	return cli_fail(err, err_len, -EFBIG,
	                "%s would be %" PRIu64 " bytes, more than the %" PRIu64
	                " bytes free on its file system (zero pages are holes: --force writes it anyway)",
	                path, size, avail);
}

int image_create(struct image_out *o, const struct image_target *t, uint64_t size, char *err, size_t err_len)
{
	memset(o, 0, sizeof(*o));
	o->fd = -1;
	if (size > (uint64_t)INT64_MAX)
		return cli_fail(err, err_len, -EFBIG, "%s would be %" PRIu64 " bytes: too large", t->path, size);
	int rc = resolve_output(t, &o->final, err, err_len);
	char *dir = rc == 0 ? dir_of(o->final) : NULL;
	if (rc == 0 && !dir)
		rc = cli_fail(err, err_len, -ENOMEM, "out of memory");
	if (rc == 0)
		rc = check_space(dir, t->path, size, t->force, err, err_len);
	if (rc == 0 && !(o->tmp = malloc(strlen(dir) + sizeof(TMP_NAME))))
		rc = cli_fail(err, err_len, -ENOMEM, "out of memory");
	if (rc == 0) {
		strcpy(o->tmp, dir);
		strcat(o->tmp, TMP_NAME);
		/* mkostemp: O_CREAT|O_EXCL, mode 0600. */
		if ((o->fd = mkostemp(o->tmp, O_CLOEXEC)) < 0) {
			rc = sys_fail(err, err_len, "creating a file in", dir);
			free(o->tmp);
			o->tmp = NULL;
		} else if (ftruncate(o->fd, (off_t)size) < 0) {
			rc = sys_fail(err, err_len, "sizing", t->path);
		}
	}
	free(dir);
	if (rc < 0)
		image_finish(o, rc, NULL, 0);
	return rc;
}

/* The directory entry of a rename made durable; a file system without
 * directory fsync (EINVAL) is no failure. */
static int sync_dir(const char *path, char *err, size_t err_len)
{
	char *dir = dir_of(path);
	if (!dir)
		return cli_fail(err, err_len, -ENOMEM, "out of memory");
	int rc = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL))
		rc = sys_fail(err, err_len, "fsync of directory", dir);
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int image_finish(struct image_out *o, int rc, char *err, size_t err_len)
{
	/* fsync of a file on a file system without it (EINVAL) is no failure. */
	if (rc == 0 && fsync(o->fd) < 0 && errno != EINVAL)
		rc = sys_fail(err, err_len, "fsync", o->final);
	if (o->fd >= 0 && close(o->fd) < 0 && rc == 0)
		rc = sys_fail(err, err_len, "closing", o->final);
	o->fd = -1;
	if (rc == 0 && rename(o->tmp, o->final) < 0)
		rc = sys_fail(err, err_len, "renaming the image to", o->final);
	else if (rc == 0) {
		free(o->tmp);     /* renamed: no longer ours to remove */
		o->tmp = NULL;
		rc = sync_dir(o->final, err, err_len);
	}
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	free(o->final);
	o->tmp = o->final = NULL;
	return rc;
}
