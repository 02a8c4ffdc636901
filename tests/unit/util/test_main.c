/* Unit tests for src/util. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "util/util.h"

static char *
make_tmpdir(void)
{
	char tmpl[] = "/tmp/cf-test-util-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static void
test_util_err__set_and_ossl_drains_queue(void **state)
{
	cf_err err = CF_ERR_INIT;
	int rc;

	(void)state;
	rc = cf_err_set(&err, CF_EINVAL, "BAD_CSR", "csr is %d bytes", 42);
	assert_int_equal(rc, CF_EINVAL);
	assert_string_equal(err.reason, "BAD_CSR");
	assert_string_equal(err.msg, "csr is 42 bytes");
	assert_int_equal(cf_err_set(NULL, CF_ENOMEM, NULL, "x"), CF_ENOMEM);

	/* Provoke an OpenSSL error, then check it lands in msg and leaves the queue. */
	assert_null(EVP_get_digestbyname("no-such-digest-xyz"));
	EVP_MD *md = EVP_MD_fetch(NULL, "no-such-digest-xyz", NULL);
	assert_null(md);
	assert_int_not_equal(ERR_peek_error(), 0);
	cf_err_set_ossl(&err, CF_ECRYPTO, NULL, "fetch");
	assert_int_equal(ERR_peek_error(), 0);
	assert_non_null(strstr(err.msg, "fetch: "));
	cf_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_null(err.reason);
	assert_string_equal(cf_strerror(CF_ENOTFOUND), "not found");
	assert_string_equal(cf_strerror(CF_EBUSY), "busy"); /* a held lock: retry later */
	assert_string_equal(cf_strerror(12345), "unknown error");
}

static void
test_util_time__duration_parse(void **state)
{
	int64_t v = 0;

	(void)state;
	assert_int_equal(cf_duration_parse(&v, "30d"), CF_OK);
	assert_int_equal(v, 30 * 86400);
	assert_int_equal(cf_duration_parse(&v, "12h"), CF_OK);
	assert_int_equal(v, 12 * 3600);
	assert_int_equal(cf_duration_parse(&v, "90s"), CF_OK);
	assert_int_equal(v, 90);
	assert_int_equal(cf_duration_parse(&v, "5m"), CF_OK);
	assert_int_equal(v, 300);
	assert_int_equal(cf_duration_parse(&v, "2w"), CF_OK);
	assert_int_equal(v, 14 * 86400);
	/* A bare number is ambiguous (seconds? days?): the unit is required. */
	assert_int_equal(cf_duration_parse(&v, "7"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "3600"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, ""), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "0d"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "-3d"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "3dd"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "3y"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "99999999999999999999d"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, "9223372036854775807w"), CF_EINVAL);
	assert_int_equal(cf_duration_parse(&v, NULL), CF_EINVAL);
}

static void
test_util_time__format(void **state)
{
	char buf[CF_TIME_BUF];

	(void)state;
	assert_string_equal(cf_time_format(buf, 0), "1970-01-01T00:00:00Z");
	assert_string_equal(cf_time_format(buf, 1795000000), "2026-11-18T11:06:40Z");
}

static void
test_util_str__hex_int_names(void **state)
{
	const unsigned char in[] = { 0x00, 0x9f, 0xff, 0x10 };
	char out[9];
	int64_t v;

	(void)state;
	assert_string_equal(cf_hex_encode(out, in, sizeof(in)), "009fff10");
	assert_int_equal(cf_parse_int64(&v, "365", 1, 36500), CF_OK);
	assert_int_equal(v, 365);
	assert_int_equal(cf_parse_int64(&v, "0", 1, 36500), CF_EINVAL);
	assert_int_equal(cf_parse_int64(&v, "12x", 1, 36500), CF_EINVAL);
	assert_int_equal(cf_parse_int64(&v, "", 1, 36500), CF_EINVAL);
	assert_true(cf_name_valid("sensor-0001"));
	assert_true(cf_name_valid("a:b_c.d"));
	assert_false(cf_name_valid(""));
	assert_false(cf_name_valid("-x"));
	assert_false(cf_name_valid(".x"));
	assert_false(cf_name_valid("a/b"));
	assert_false(cf_name_valid("a b"));
	assert_false(cf_name_valid("a+"));
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(cf_name_valid(longname));
	longname[CF_NAME_MAX] = '\0';
	assert_true(cf_name_valid(longname));
	longname[CF_NAME_MAX + 1] = '\0';
	longname[CF_NAME_MAX] = 'a';
	assert_false(cf_name_valid(longname));
}

static void
test_util_file__write_atomic_and_read(void **state)
{
	char *dir = make_tmpdir();
	char *path = cf_path_join(dir, "f.txt");
	cf_err err = CF_ERR_INIT;
	struct stat st;
	char *data = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(cf_file_write_atomic(path, "hello", 5, 0600, true, &err), CF_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(cf_file_write_atomic(path, "again", 5, 0600, true, &err), CF_EEXISTS);
	assert_int_equal(cf_file_read(&data, &len, path, 100, &err), CF_OK);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	/* Non-exclusive replaces. */
	assert_int_equal(cf_file_write_atomic(path, "bye", 3, 0644, false, &err), CF_OK);
	assert_int_equal(cf_file_read(&data, &len, path, 100, &err), CF_OK);
	assert_string_equal(data, "bye");
	free(data);
	/* Too large for the limit. */
	assert_int_equal(cf_file_read(&data, &len, path, 2, &err), CF_EINVAL);
	assert_null(data);
	unlink(path);
	assert_int_equal(cf_file_read(&data, &len, path, 100, &err), CF_ENOTFOUND);
	/* mkdir -p */
	char *deep = cf_path_join(dir, "a/b/c");
	assert_int_equal(cf_dir_create(deep, 0700, &err), CF_OK);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	rmdir(deep);
	free(deep);
	deep = cf_path_join(dir, "a/b");
	rmdir(deep);
	free(deep);
	deep = cf_path_join(dir, "a");
	rmdir(deep);
	free(deep);
	free(path);
	rmdir(dir);
	free(dir);
}

/* A pipe has no size: it is read up to the limit, and one byte more is refused. */
static void
test_util_file__read_stream(void **state)
{
	cf_err err = CF_ERR_INIT;
	char path[64], *data = NULL;
	size_t len = 0;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "0123456789", 10), 10);
	close(fds[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
	assert_int_equal(cf_file_read(&data, &len, path, 10, &err), CF_OK);
	assert_int_equal(len, 10);
	assert_string_equal(data, "0123456789");
	free(data);
	close(fds[0]);

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "0123456789x", 11), 11);
	close(fds[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
	assert_int_equal(cf_file_read(&data, &len, path, 10, &err), CF_EINVAL);
	assert_null(data);
	close(fds[0]);
}

static void
test_util_file__secret_read(void **state)
{
	char *dir = make_tmpdir();
	char *path = cf_path_join(dir, "pass");
	cf_err err = CF_ERR_INIT;
	char *secret = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(cf_file_write_atomic(path, "s3cret\n", 7, 0600, false, &err), CF_OK);
	assert_int_equal(cf_secret_read(&secret, &len, path, &err), CF_OK);
	assert_int_equal(len, 6);
	assert_string_equal(secret, "s3cret");
	cf_secret_free(secret, len);

	/* A world-readable secret file is refused. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(cf_secret_read(&secret, &len, path, &err), CF_EINVAL);
	assert_null(secret);
	assert_non_null(strstr(err.msg, "chmod 600"));

	/* An empty secret is refused. */
	assert_int_equal(cf_file_write_atomic(path, "\n", 1, 0600, false, &err), CF_OK);
	assert_int_equal(cf_secret_read(&secret, &len, path, &err), CF_EINVAL);
	cf_secret_free(NULL, 0);
	unlink(path);
	free(path);
	rmdir(dir);
	free(dir);
}

static void
test_util_log__levels(void **state)
{
	cf_log_level l;

	(void)state;
	assert_int_equal(cf_log_level_parse(&l, "debug"), CF_OK);
	assert_int_equal(l, CF_LOG_DEBUG);
	assert_int_equal(cf_log_level_parse(&l, "WARN"), CF_OK);
	assert_int_equal(l, CF_LOG_WARN);
	assert_int_equal(cf_log_level_parse(&l, "loud"), CF_EINVAL);
}

static void
test_util_log__quote(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(cf_log_quote(buf, sizeof(buf), "plain"), "plain");
	assert_string_equal(cf_log_quote(buf, sizeof(buf), ""), "\"\"");
	assert_string_equal(cf_log_quote(buf, sizeof(buf), "two words"), "\"two words\"");
	assert_string_equal(cf_log_quote(buf, sizeof(buf), "a=\"b\"\\\n"),
			    "\"a=\\\"b\\\"\\\\\\n\"");
	/* Control characters from a device cannot forge a line or colour a terminal. */
	assert_string_equal(cf_log_quote(buf, sizeof(buf), "a\rb\x1b[31m\x7f"),
			    "\"a\\x0db\\x1b[31m\\x7f\"");
	/* Cut short, the value stays a closed quoted string. */
	assert_string_equal(cf_log_quote(buf, 6, "two words"), "\"tw\"");
}

/* Capture what one cf_log_* call writes to stderr. */
static char *
log_capture(bool json, const cf_err *err, const char *msg)
{
	char path[] = "/tmp/cf-test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	cf_err rerr = CF_ERR_INIT;
	char *text = NULL;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	cf_log_set_json(json);
	cf_log_emit(CF_LOG_WARN, "fn", err, "%s", msg);
	cf_log_set_json(false);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fd);
	assert_int_equal(cf_file_read(&text, NULL, path, 4096, &rerr), CF_OK);
	unlink(path);
	return text;
}

static void
test_util_log__logfmt_and_json(void **state)
{
	cf_err err = CF_ERR_INIT;
	char *line;

	(void)state;
	cf_err_set(&err, CF_EINVAL, NULL, "bad \"x\"");
	line = log_capture(false, &err, "event=start thing=\"a b\"");
	assert_non_null(strstr(line, " level=warn func=fn event=start thing=\"a b\" error=\"bad \\\"x\\\"\"\n"));
	free(line);
	line = log_capture(true, &err, "event=start thing=\"a \\\"b\\\"\" n=3");
	assert_non_null(strstr(line, "\"level\":\"warn\",\"func\":\"fn\",\"event\":\"start\",\"thing\":\"a \\\"b\\\"\",\"n\":\"3\",\"error\":\"bad \\\"x\\\"\"}\n"));
	free(line);
	line = log_capture(true, NULL, "not pairs at all");
	assert_non_null(strstr(line, "\"msg\":\"not pairs at all\"}"));
	free(line);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_util_err__set_and_ossl_drains_queue),
		cmocka_unit_test(test_util_time__duration_parse),
		cmocka_unit_test(test_util_time__format),
		cmocka_unit_test(test_util_str__hex_int_names),
		cmocka_unit_test(test_util_file__write_atomic_and_read),
		cmocka_unit_test(test_util_file__read_stream),
		cmocka_unit_test(test_util_file__secret_read),
		cmocka_unit_test(test_util_log__levels),
		cmocka_unit_test(test_util_log__quote),
		cmocka_unit_test(test_util_log__logfmt_and_json),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
