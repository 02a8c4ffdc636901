/* Whole-file reads, atomic writes, and secrets read into the secure heap. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Read fd to the end into buf of cap bytes; *got is set. -1 on error, 1 if more remains. */
static int
read_all(int fd, char *buf, size_t cap, size_t *got)
{
	size_t n = 0;
	ssize_t r;

	for (;;) {
		if (n == cap) {
			char extra;

			r = read(fd, &extra, 1);
			if (r < 0 && errno == EINTR)
				continue;
			*got = n;
			return r < 0 ? -1 : (r > 0 ? 1 : 0);
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return 0;
}

/* Open path for reading: a regular file, or with streams set a pipe or terminal too. */
static int
open_for_read(int *fd_out, struct stat *st, const char *path, bool streams, cf_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return cf_err_set(err, errno == ENOENT ? CF_ENOTFOUND : CF_EIO, NULL,
				  "cannot open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, st) != 0 ||
	    !(S_ISREG(st->st_mode) ||
	      (streams && (S_ISFIFO(st->st_mode) || S_ISCHR(st->st_mode))))) {
		close(fd);
		return cf_err_set(err, CF_EIO, NULL, "%s is not a regular file", path);
	}
	*fd_out = fd;
	return CF_OK;
}

int
cf_file_read(char **out, size_t *len_out, const char *path, size_t max, cf_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t cap, got = 0;
	int fd = -1, rc, r;

	*out = NULL;
	rc = open_for_read(&fd, &st, path, true, err);
	if (rc != CF_OK)
		return rc;
	if (S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "%s is %lld bytes, more than the %zu allowed",
				path, (long long)st.st_size, max);
		goto out;
	}
	/*
	 * A stream has no size: read up to the limit, and read_all() looks one
	 * byte further to tell a stream that is too long.
	 */
	if (S_ISREG(st.st_mode) && (size_t)st.st_size < max)
		cap = (size_t)st.st_size + 1;
	else
		cap = max;
	buf = malloc(cap + 1);
	if (buf == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "reading %s", path);
		goto out;
	}
	r = read_all(fd, buf, cap, &got);
	if (r < 0) {
		rc = cf_err_set(err, CF_EIO, NULL, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (r > 0 || got > max) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "%s is larger than the %zu bytes allowed",
				path, max);
		goto out;
	}
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
	if (len_out != NULL)
		*len_out = got;
	rc = CF_OK;
out:
	free(buf);
	close(fd);
	return rc;
}

static int
fsync_dir_of(const char *path)
{
	char *dir = strdup(path);
	char *slash;
	int fd, rc;

	if (dir == NULL)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		dir[0] = '.';
		dir[1] = '\0';
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
cf_file_write_atomic(const char *path, const void *data, size_t len, unsigned int mode,
		     bool exclusive, cf_err *err)
{
	size_t plen = strlen(path), off = 0;
	char *tmp = NULL;
	unsigned char rnd[8];
	char rhex[17];
	int fd = -1, rc;

	if (exclusive && access(path, F_OK) == 0)
		return cf_err_set(err, CF_EEXISTS, NULL, "%s already exists", path);
	tmp = malloc(plen + 32);
	if (tmp == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "writing %s", path);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "RAND_bytes");
		goto out;
	}
	snprintf(tmp, plen + 32, "%s.tmp-%s", path, cf_hex_encode(rhex, rnd, sizeof(rnd)));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
	if (fd < 0) {
		rc = cf_err_set(err, CF_EIO, NULL, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* The umask may have cleared bits; it must never have added any. */
	if (fchmod(fd, (mode_t)mode) != 0) {
		rc = cf_err_set(err, CF_EIO, NULL, "chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, (const char *)data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = cf_err_set(err, CF_EIO, NULL, "write %s: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		rc = cf_err_set(err, CF_EIO, NULL, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (exclusive) {
		/* link() fails if path appeared meanwhile: no silent overwrite. */
		if (link(tmp, path) != 0) {
			rc = cf_err_set(err, errno == EEXIST ? CF_EEXISTS : CF_EIO, NULL,
					"cannot create %s: %s", path, strerror(errno));
			goto out;
		}
		unlink(tmp);
	} else if (rename(tmp, path) != 0) {
		rc = cf_err_set(err, CF_EIO, NULL, "rename to %s: %s", path, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if (fsync_dir_of(path) != 0)
		return cf_err_set(err, CF_EIO, NULL, "fsync directory of %s: %s", path,
				  strerror(errno));
	return CF_OK;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	return rc;
}

int
cf_dir_create(const char *path, unsigned int mode, cf_err *err)
{
	char *p = strdup(path);
	char *s;
	int rc = CF_OK;

	if (p == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "mkdir %s", path);
	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;

		*s = '\0';
		if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
			rc = cf_err_set(err, CF_EIO, NULL, "mkdir %s: %s", p, strerror(errno));
			break;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	free(p);
	return rc;
}

/* Longest secret read; every secret buffer is this plus the NUL. */
#define SECRET_MAX 1024

int
cf_secret_read(char **out, size_t *len_out, const char *path, cf_err *err)
{
	struct stat st;
	char *buf = NULL;
	const size_t cap = SECRET_MAX;
	size_t got = 0;
	int fd = -1, rc, r;

	*out = NULL;
	rc = open_for_read(&fd, &st, path, false, err);
	if (rc != CF_OK)
		return rc;
	if ((st.st_mode & 077) != 0) {
		rc = cf_err_set(err, CF_EINVAL, NULL,
				"%s is readable by group or others (mode %03o); chmod 600 it",
				path, (unsigned int)(st.st_mode & 0777));
		goto out;
	}
	buf = OPENSSL_secure_malloc(cap + 1);
	if (buf == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "reading %s", path);
		goto out;
	}
	r = read_all(fd, buf, cap, &got);
	if (r != 0) {
		rc = cf_err_set(err, r < 0 ? CF_EIO : CF_EINVAL, NULL,
				"cannot read %s, or it is longer than %zu bytes", path, cap);
		goto out;
	}
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		got--;
	buf[got] = '\0';
	if (got == 0) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "%s holds an empty secret", path);
		goto out;
	}
	*out = buf;
	buf = NULL;
	*len_out = got;
	rc = CF_OK;
out:
	if (buf != NULL)
		OPENSSL_secure_clear_free(buf, cap + 1);
	close(fd);
	return rc;
}

void
cf_secret_free(char *secret, size_t len)
{
	(void)len; /* the buffer is always SECRET_MAX + 1 bytes: wipe all of it */
	if (secret == NULL)
		return;
	OPENSSL_secure_clear_free(secret, SECRET_MAX + 1);
}
