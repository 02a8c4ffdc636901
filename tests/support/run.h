/*
 * Test support: run programs, temporary directories, small files.
 *
 * For the integration tests, which drive the real certfleet binary and the
 * real openssl command. Programs are started with posix_spawnp() from an
 * argv array (no shell), in their own process group, with stdin on
 * /dev/null and stdout and stderr captured. Every run has a deadline: a
 * process group still alive when it passes is killed with SIGKILL.
 *
 * Functions return 0 on success and -1 on failure with a message on stderr:
 * these are test helpers, and the test decides what a failure means.
 */
#ifndef CF_TEST_RUN_H
#define CF_TEST_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define CF_TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CF_TEST_SENTINEL     __attribute__((sentinel))
#else
#define CF_TEST_PRINTF(f, a)
#define CF_TEST_SENTINEL
#endif

/* Default deadline of one process, in seconds. */
#define CF_TEST_TIMEOUT 60

/* Output kept per stream; more is read and dropped (truncated is set). */
#define CF_TEST_OUTPUT_MAX (8 * 1024 * 1024)

/* What a finished process left behind. */
typedef struct cf_test_result {
	int status;     /* exit code; 128 + N when killed by signal N; -1 when it never ran */
	bool timed_out; /* killed at the deadline (status is then 128 + SIGKILL) */
	bool truncated; /* an output stream went over CF_TEST_OUTPUT_MAX */
	char *out;      /* stdout, NUL-terminated (never NULL after a run) */
	size_t out_len;
	char *err; /* stderr, NUL-terminated (never NULL after a run) */
	size_t err_len;
} cf_test_result;

#define CF_TEST_RESULT_INIT { -1, false, false, NULL, 0, NULL, 0 }

/* Free the output buffers and reset to CF_TEST_RESULT_INIT. NULL is accepted. */
void cf_test_result_clear(cf_test_result *res);

/* A started process whose output is being collected. Opaque. */
typedef struct cf_test_proc cf_test_proc;

/*
 * Start argv[0] (looked up in PATH unless it contains a slash) with the
 * arguments argv (NULL-terminated). The caller finishes it with
 * cf_test_proc_wait(), which also frees it.
 */
int cf_test_proc_start(cf_test_proc **out, const char *const *argv);

/*
 * Wait for n started processes at once, reading all their outputs as they
 * come (so that none blocks on a full pipe), until all have exited or
 * timeout_s seconds have passed; then kill what is left. results[i] gets
 * what procs[i] left; every proc is freed. Returns 0 when every process
 * ran to its end (whatever its exit status), -1 when one timed out.
 */
int cf_test_proc_wait(cf_test_proc **procs, cf_test_result *results, size_t n, int timeout_s);

/* Start argv and wait for it, at most timeout_s seconds (0: CF_TEST_TIMEOUT). */
int cf_test_run(cf_test_result *res, const char *const *argv, int timeout_s);

/* cf_test_run() with the arguments given as a NULL-terminated list. */
int cf_test_runl(cf_test_result *res, int timeout_s, const char *arg0, ...) CF_TEST_SENTINEL;

/*
 * Run a command line through /bin/sh -c, for the rare pipeline that
 * cannot be an argv. The line is formatted like printf: quote what you
 * put in it. Prefer cf_test_run().
 */
int cf_test_run_sh(cf_test_result *res, int timeout_s, const char *fmt, ...)
	CF_TEST_PRINTF(3, 4);

/* A printf into a malloc'd string, or NULL. */
char *cf_test_printf(const char *fmt, ...) CF_TEST_PRINTF(1, 2);

/*
 * Make a fresh private directory ($TMPDIR or /tmp)/<prefix>-XXXXXX with
 * mkdtemp(). *out is freed by the caller.
 */
int cf_test_tmpdir_new(char **out, const char *prefix);

/* Remove a directory tree (nftw, not following symlinks). A missing path is fine. */
int cf_test_tmpdir_remove(const char *path);

/*
 * Read a whole file of at most max bytes into a NUL-terminated malloc'd
 * buffer (len may be NULL).
 */
int cf_test_file_read(char **out, size_t *len, const char *path, size_t max);

/* Create or replace path with data, then chmod it to mode. */
int cf_test_file_write(const char *path, const void *data, size_t len, mode_t mode);

/* Append text to path (created 0644 when missing). */
int cf_test_file_append(const char *path, const char *text);

/* The permission bits of path, or -1. */
int cf_test_file_mode(const char *path);

#endif
