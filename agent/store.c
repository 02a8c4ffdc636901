/*
 * The on-disk slots: every file 0600, written as name.tmp, fsync'd,
 * renamed over name, and the directory fsync'd, so that after a power loss
 * a file is either the old one or the whole new one.
 */
#include "agent_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

char *
cf_agent__path(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

static int
fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* fsync the directory holding path. */
static int
fsync_parent(const char *path)
{
	char *dir = NULL;
	char *slash;
	int rc;

	dir = malloc(strlen(path) + 1);
	if (dir == NULL)
		return -1;
	memcpy(dir, path, strlen(path) + 1);
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		free(dir);
		return fsync_path(".");
	}
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = fsync_path(dir);
	free(dir);
	return rc;
}

static int
write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
cf_agent__file_write(const char *dir, const char *name, const void *data, size_t len,
		     cf_agent_err *err)
{
	char *path = NULL, *tmp = NULL;
	int fd = -1, rc;

	path = cf_agent__path(dir, name);
	tmp = path != NULL ? malloc(strlen(path) + 5) : NULL;
	if (tmp == NULL) {
		rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "writing %s", name);
		goto out;
	}
	memcpy(tmp, path, strlen(path));
	memcpy(tmp + strlen(path), ".tmp", 5);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		rc = cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot write %s: %s", tmp,
				       strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot close %s: %s", tmp,
				       strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0 || fsync_parent(path) != 0) {
		rc = cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot rename %s: %s", tmp,
				       strerror(errno));
		goto out;
	}
	rc = CF_AGENT_OK;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(tmp);
	free(path);
	return rc;
}

int
cf_agent__file_read(char **out, size_t *len_out, const char *dir, const char *name, size_t max,
		    cf_agent_err *err)
{
	char *path = NULL, *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd = -1, rc;

	*out = NULL;
	path = cf_agent__path(dir, name);
	if (path == NULL) {
		rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "reading %s", name);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = cf_agent__err_set(err, errno == ENOENT ? CF_AGENT_ENOTFOUND : CF_AGENT_EIO,
				       NULL, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		rc = cf_agent__err_set(err, CF_AGENT_EINVAL, NULL,
				       "%s is not a regular file of at most %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "reading %s", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got != (size_t)st.st_size) {
		rc = cf_agent__err_set(err, CF_AGENT_EIO, NULL, "short read of %s", path);
		goto out;
	}
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
	if (len_out != NULL)
		*len_out = got;
	rc = CF_AGENT_OK;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, got);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

bool
cf_agent__file_exists(const char *dir, const char *name)
{
	char *path = cf_agent__path(dir, name);
	struct stat st;
	bool yes;

	if (path == NULL)
		return false;
	yes = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return yes;
}

int
cf_agent__file_remove(const char *dir, const char *name, cf_agent_err *err)
{
	char *path = cf_agent__path(dir, name);
	int rc = CF_AGENT_OK;

	if (path == NULL)
		return cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "removing %s", name);
	if (unlink(path) != 0 && errno != ENOENT)
		rc = cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot remove %s: %s", path,
				       strerror(errno));
	else if (fsync_path(dir) != 0)
		rc = cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot fsync %s", dir);
	free(path);
	return rc;
}

bool
cf_agent__dir_exists(const char *dir)
{
	struct stat st;

	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int
cf_agent__dir_make(const char *dir, cf_agent_err *err)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot create %s: %s", dir,
					 strerror(errno));
	if (fsync_parent(dir) != 0)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot fsync the parent of %s",
					 dir);
	return CF_AGENT_OK;
}

int
cf_agent__dir_remove(const char *dir, cf_agent_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = CF_AGENT_OK;

	if (d == NULL) {
		if (errno == ENOENT)
			return CF_AGENT_OK;
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot open %s: %s", dir,
					 strerror(errno));
	}
	for (de = readdir(d); de != NULL; de = readdir(d)) {
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		path = cf_agent__path(dir, de->d_name);
		if (path == NULL || unlink(path) != 0)
			rc = CF_AGENT_EIO;
		free(path);
	}
	closedir(d);
	if (rc != CF_AGENT_OK || rmdir(dir) != 0 || fsync_parent(dir) != 0)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot remove %s: %s", dir,
					 strerror(errno));
	return CF_AGENT_OK;
}

int
cf_agent__dir_rename(const char *from, const char *to, cf_agent_err *err)
{
	if (rename(from, to) != 0 || fsync_parent(to) != 0)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot rename %s to %s: %s",
					 from, to, strerror(errno));
	return CF_AGENT_OK;
}

void
cf_agent__dir_clean_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	for (de = readdir(d); de != NULL; de = readdir(d)) {
		size_t n = strlen(de->d_name);
		char *path;

		if (n < 4 || strcmp(de->d_name + n - 4, ".tmp") != 0)
			continue;
		path = cf_agent__path(dir, de->d_name);
		if (path != NULL)
			(void)unlink(path);
		free(path);
	}
	closedir(d);
}
