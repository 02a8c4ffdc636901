/* Test support: spawn with captured output and a deadline, temp dirs, files. */
#define _XOPEN_SOURCE 700 /* nftw */

#include "support/run.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 256

/* One captured stream. */
struct stream {
	int fd; /* read end, -1 once at EOF */
	char *buf;
	size_t len, cap;
	bool truncated;
};

struct cf_test_proc {
	pid_t pid;
	struct stream out, err;
	char name[64]; /* argv[0], for messages */
};

void
cf_test_result_clear(cf_test_result *res)
{
	if (res == NULL)
		return;
	free(res->out);
	free(res->err);
	res->status = -1;
	res->timed_out = false;
	res->truncated = false;
	res->out = NULL;
	res->out_len = 0;
	res->err = NULL;
	res->err_len = 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void
stream_close(struct stream *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void
proc_free(cf_test_proc *p)
{
	if (p == NULL)
		return;
	stream_close(&p->out);
	stream_close(&p->err);
	free(p->out.buf);
	free(p->err.buf);
	free(p);
}

int
cf_test_proc_start(cf_test_proc **out, const char *const *argv)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	cf_test_proc *p = NULL;
	int pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	bool fa_ok = false, attr_ok = false;
	int rc = -1, e;

	*out = NULL;
	if (argv == NULL || argv[0] == NULL)
		return -1;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto out;
	p->out.fd = -1;
	p->err.fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", argv[0]);
	if (pipe(pout) != 0 || pipe(perr) != 0) {
		fprintf(stderr, "run: pipe: %s\n", strerror(errno));
		goto out;
	}
	/* The parent's ends must not leak into other children. */
	if (fcntl(pout[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(perr[0], F_SETFD, FD_CLOEXEC) != 0)
		goto out;
	if (posix_spawn_file_actions_init(&fa) != 0)
		goto out;
	fa_ok = true;
	if (posix_spawnattr_init(&attr) != 0)
		goto out;
	attr_ok = true;
	/* Its own process group, so that a deadline kills the whole tree (sh loops). */
	if (posix_spawnattr_setpgroup(&attr, 0) != 0 ||
	    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP) != 0)
		goto out;
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, pout[1], 1) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, perr[1], 2) != 0 ||
	    posix_spawn_file_actions_addclose(&fa, pout[0]) != 0 ||
	    posix_spawn_file_actions_addclose(&fa, perr[0]) != 0 ||
	    posix_spawn_file_actions_addclose(&fa, pout[1]) != 0 ||
	    posix_spawn_file_actions_addclose(&fa, perr[1]) != 0)
		goto out;
	/* posix_spawnp takes char *const[]; it does not write through it. */
	e = posix_spawnp(&p->pid, argv[0], &fa, &attr, (char *const *)(uintptr_t)argv, environ);
	if (e != 0) {
		fprintf(stderr, "run: cannot start %s: %s\n", argv[0], strerror(e));
		goto out;
	}
	close(pout[1]);
	close(perr[1]);
	pout[1] = perr[1] = -1;
	p->out.fd = pout[0];
	p->err.fd = perr[0];
	pout[0] = perr[0] = -1;
	*out = p;
	p = NULL;
	rc = 0;
out:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	for (e = 0; e < 2; e++) {
		if (pout[e] >= 0)
			close(pout[e]);
		if (perr[e] >= 0)
			close(perr[e]);
	}
	proc_free(p);
	return rc;
}

/* Read what is available on s; EOF closes it. */
static void
stream_read(struct stream *s)
{
	char chunk[16384];
	ssize_t n;
	size_t want;
	char *nb;

	n = read(s->fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		stream_close(s);
		return;
	}
	if (s->len + (size_t)n > CF_TEST_OUTPUT_MAX) {
		s->truncated = true;
		n = (ssize_t)(CF_TEST_OUTPUT_MAX - s->len);
	}
	if (n == 0)
		return;
	want = s->len + (size_t)n + 1;
	if (want > s->cap) {
		size_t cap = s->cap != 0 ? s->cap : 4096;

		while (cap < want)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (nb == NULL) {
			s->truncated = true;
			return;
		}
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, chunk, (size_t)n);
	s->len += (size_t)n;
	s->buf[s->len] = '\0';
}

/* Read to EOF; give up after 100 ms of silence (a grandchild holding the pipe). */
static void
stream_drain(struct stream *s)
{
	struct pollfd p;

	while (s->fd >= 0) {
		p.fd = s->fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, 100) <= 0)
			break;
		stream_read(s);
	}
	stream_close(s);
}

/* Move a stream's text into a result field ("" when nothing came). */
static void
stream_take(char **text, size_t *len, struct stream *s)
{
	*text = s->buf != NULL ? s->buf : strdup("");
	*len = s->len;
	s->buf = NULL;
	s->len = s->cap = 0;
}

static int
status_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

int
cf_test_proc_wait(cf_test_proc **procs, cf_test_result *results, size_t n, int timeout_s)
{
	int64_t deadline = now_ms() + (int64_t)(timeout_s > 0 ? timeout_s : CF_TEST_TIMEOUT) * 1000;
	struct pollfd *pfd = NULL;
	struct stream **owner = NULL;
	bool *done = NULL, timed_out = false;
	size_t i, left = n, nfd;
	int wstatus, rc = 0;
	int64_t wait;
	pid_t w;

	pfd = calloc(2 * n + 1, sizeof(*pfd));
	owner = calloc(2 * n + 1, sizeof(*owner));
	done = calloc(n + 1, sizeof(*done));
	for (i = 0; i < n; i++)
		cf_test_result_clear(&results[i]);
	if (pfd == NULL || owner == NULL || done == NULL) {
		/* Still reap and kill, so that nothing outlives the test. */
		timed_out = true;
		deadline = now_ms();
	}
	while (left > 0) {
		/* Collect output until every pipe is at EOF or the deadline passes. */
		nfd = 0;
		for (i = 0; pfd != NULL && owner != NULL && i < n; i++) {
			if (procs[i]->out.fd >= 0) {
				pfd[nfd].fd = procs[i]->out.fd;
				pfd[nfd].events = POLLIN;
				owner[nfd++] = &procs[i]->out;
			}
			if (procs[i]->err.fd >= 0) {
				pfd[nfd].fd = procs[i]->err.fd;
				pfd[nfd].events = POLLIN;
				owner[nfd++] = &procs[i]->err;
			}
		}
		wait = deadline - now_ms();
		if (wait <= 0) {
			timed_out = true;
			break;
		}
		if (nfd > 0) {
			if (poll(pfd, nfd, (int)(wait < 200 ? wait : 200)) > 0) {
				for (i = 0; i < nfd; i++) {
					if (pfd[i].revents != 0)
						stream_read(owner[i]);
				}
			}
		} else {
			sleep_ms(5);
		}
		/* Reap whoever has finished. */
		for (i = 0; i < n; i++) {
			if (done[i])
				continue;
			w = waitpid(procs[i]->pid, &wstatus, WNOHANG);
			if (w == procs[i]->pid || (w < 0 && errno != EINTR)) {
				results[i].status = w == procs[i]->pid ? status_of(wstatus) : -1;
				done[i] = true;
				left--;
			}
		}
	}
	for (i = 0; i < n; i++) {
		if (done == NULL || !done[i]) {
			fprintf(stderr, "run: %s (pid %ld) passed its deadline; killed\n",
				procs[i]->name, (long)procs[i]->pid);
			kill(-procs[i]->pid, SIGKILL);
			while (waitpid(procs[i]->pid, &wstatus, 0) < 0 && errno == EINTR)
				;
			results[i].status = status_of(wstatus);
			results[i].timed_out = true;
			rc = -1;
		} else if (timed_out) {
			kill(-procs[i]->pid, SIGKILL); /* stragglers of the group, if any */
		}
		/* Whatever is still buffered in the pipes after the exit. */
		stream_drain(&procs[i]->out);
		stream_drain(&procs[i]->err);
		results[i].truncated = procs[i]->out.truncated || procs[i]->err.truncated;
		stream_take(&results[i].out, &results[i].out_len, &procs[i]->out);
		stream_take(&results[i].err, &results[i].err_len, &procs[i]->err);
		proc_free(procs[i]);
		procs[i] = NULL;
	}
	free(pfd);
	free(owner);
	free(done);
	return rc;
}

int
cf_test_run(cf_test_result *res, const char *const *argv, int timeout_s)
{
	cf_test_proc *p = NULL;

	cf_test_result_clear(res);
	if (cf_test_proc_start(&p, argv) != 0) {
		res->out = strdup("");
		res->err = strdup("");
		return -1;
	}
	return cf_test_proc_wait(&p, res, 1, timeout_s);
}

int
cf_test_runl(cf_test_result *res, int timeout_s, const char *arg0, ...)
{
	const char *argv[MAX_ARGS];
	size_t n = 0;
	va_list ap;

	argv[n++] = arg0;
	va_start(ap, arg0);
	while (n < MAX_ARGS - 1) {
		argv[n] = va_arg(ap, const char *);
		if (argv[n] == NULL)
			break;
		n++;
	}
	va_end(ap);
	argv[n] = NULL;
	return cf_test_run(res, argv, timeout_s);
}

char *
cf_test_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

int
cf_test_run_sh(cf_test_result *res, int timeout_s, const char *fmt, ...)
{
	const char *argv[4] = { "/bin/sh", "-c", NULL, NULL };
	va_list ap;
	char *line;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	line = malloc((size_t)n + 1);
	if (line == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(line, (size_t)n + 1, fmt, ap);
	va_end(ap);
	argv[2] = line;
	rc = cf_test_run(res, argv, timeout_s);
	free(line);
	return rc;
}

int
cf_test_tmpdir_new(char **out, const char *prefix)
{
	const char *base = getenv("TMPDIR");
	char *path;

	*out = NULL;
	if (base == NULL || base[0] != '/')
		base = "/tmp";
	path = cf_test_printf("%s/%s-XXXXXX", base, prefix);
	if (path == NULL)
		return -1;
	if (mkdtemp(path) == NULL) {
		fprintf(stderr, "run: mkdtemp %s: %s\n", path, strerror(errno));
		free(path);
		return -1;
	}
	*out = path;
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT) {
		fprintf(stderr, "run: remove %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
cf_test_tmpdir_remove(const char *path)
{
	struct stat st;

	if (path == NULL || lstat(path, &st) != 0)
		return 0;
	/* Depth first so that a directory is empty when its turn comes. */
	return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int
cf_test_file_read(char **out, size_t *len, const char *path, size_t max)
{
	FILE *fp;
	char *buf = NULL, *nb;
	size_t n = 0, cap = 0, got;
	int rc = -1;

	*out = NULL;
	fp = fopen(path, "rb");
	if (fp == NULL)
		return -1;
	for (;;) {
		if (cap - n < 4096 + 1) {
			cap = cap != 0 ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (nb == NULL)
				goto out;
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, fp);
		n += got;
		if (n > max)
			goto out;
		if (got == 0)
			break;
	}
	if (ferror(fp))
		goto out;
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	*out = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	fclose(fp);
	return rc;
}

int
cf_test_file_write(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *fp = fopen(path, "wb");
	int rc = 0;

	if (fp == NULL)
		return -1;
	if (len > 0 && fwrite(data, 1, len, fp) != len)
		rc = -1;
	if (fclose(fp) != 0)
		rc = -1;
	if (rc == 0 && chmod(path, mode) != 0)
		rc = -1;
	return rc;
}

int
cf_test_file_append(const char *path, const char *text)
{
	FILE *fp = fopen(path, "ab");
	size_t len = strlen(text);
	int rc = 0;

	if (fp == NULL)
		return -1;
	if (fwrite(text, 1, len, fp) != len)
		rc = -1;
	if (fclose(fp) != 0)
		rc = -1;
	return rc;
}

int
cf_test_file_mode(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}
