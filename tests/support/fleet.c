/* Test support: the certfleet data dir fixture and its steps (cmocka). */
#define _GNU_SOURCE /* strndup, open_memstream */

#include "support/fleet.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGV 64
#define TEXT_MAX (16 * 1024 * 1024)

/* ---- set-up and tear-down ------------------------------------------------------ */

char *
cf_test_binary(const char *rel)
{
	const char *bdir = getenv("CF_BINARY_DIR");
	char *path;

	if (bdir == NULL) {
		fprintf(stderr, "CF_BINARY_DIR must be set (run through ctest)\n");
		return NULL;
	}
	path = cf_test_printf("%s/%s", bdir, rel);
	if (path == NULL || access(path, X_OK) != 0) {
		fprintf(stderr, "no program at %s/%s\n", bdir, rel);
		free(path);
		return NULL;
	}
	return path;
}

static char *cli_path;

int
cf_test_cli_group_setup(void **state)
{
	(void)state;
	free(cli_path);
	cli_path = cf_test_binary("cli/certfleet");
	return cli_path != NULL ? 0 : -1;
}

int
cf_test_cli_group_teardown(void **state)
{
	(void)state;
	free(cli_path);
	cli_path = NULL;
	return 0;
}

const char *
cf_test_cli(void)
{
	return cli_path;
}

int
cf_test_fleet_init(cf_test_fleet *f, const char *prefix, const char *certfleet)
{
	memset(f, 0, sizeof(*f));
	f->r = (cf_test_result)CF_TEST_RESULT_INIT;
	f->certfleet = certfleet;
	if (cf_test_tmpdir_new(&f->tmp, prefix) != 0)
		return -1;
	f->data = cf_test_printf("%s/data", f->tmp);
	if (f->data == NULL) {
		cf_test_tmpdir_remove(f->tmp);
		free(f->tmp);
		f->tmp = NULL;
		return -1;
	}
	return 0;
}

int
cf_test_fleet_clear(cf_test_fleet *f)
{
	size_t i;
	int rc = 0;

	if (f == NULL)
		return 0;
	for (i = 0; i < f->nkept; i++)
		free(f->kept[i]);
	for (i = 0; i < f->njkept; i++)
		json_decref(f->jkept[i]);
	free(f->kept);
	free(f->jkept);
	cf_test_result_clear(&f->r);
	if (f->tmp != NULL && getenv("CF_TEST_KEEP") != NULL)
		fprintf(stderr, "kept %s\n", f->tmp);
	else
		rc = cf_test_tmpdir_remove(f->tmp);
	free(f->tmp);
	free(f->data);
	memset(f, 0, sizeof(*f));
	f->r = (cf_test_result)CF_TEST_RESULT_INIT;
	return rc;
}

int
cf_test_fleet_new(cf_test_fleet **out, const char *prefix, const char *certfleet)
{
	cf_test_fleet *f = calloc(1, sizeof(*f));

	*out = NULL;
	if (f == NULL)
		return -1;
	if (cf_test_fleet_init(f, prefix, certfleet) != 0) {
		free(f);
		return -1;
	}
	*out = f;
	return 0;
}

int
cf_test_fleet_free(cf_test_fleet *f)
{
	int rc = cf_test_fleet_clear(f);

	free(f);
	return rc;
}

/* ---- keeping -------------------------------------------------------------------- */

/* Room for one more pointer of size each in *items (growing by doubling). */
static void
grow(void **items, size_t *cap, size_t n, size_t each)
{
	void *nb;
	size_t ncap;

	if (n < *cap)
		return;
	ncap = *cap != 0 ? *cap * 2 : 64;
	nb = realloc(*items, ncap * each);
	assert_non_null(nb);
	*items = nb;
	*cap = ncap;
}

const char *
cf_test_keep(cf_test_fleet *f, char *s)
{
	void *items = f->kept;

	assert_non_null(s);
	grow(&items, &f->kept_cap, f->nkept, sizeof(*f->kept));
	f->kept = items;
	f->kept[f->nkept++] = s;
	return s;
}

json_t *
cf_test_jkeep(cf_test_fleet *f, json_t *j)
{
	void *items = f->jkept;

	assert_non_null(j);
	grow(&items, &f->jkept_cap, f->njkept, sizeof(*f->jkept));
	f->jkept = items;
	f->jkept[f->njkept++] = j;
	return j;
}

const char *
cf_test_tpath(cf_test_fleet *f, const char *name)
{
	return cf_test_keep(f, cf_test_printf("%s/%s", f->tmp, name));
}

const char *
cf_test_dpath(cf_test_fleet *f, const char *name)
{
	return cf_test_keep(f, cf_test_printf("%s/%s", f->data, name));
}

/* ---- running -------------------------------------------------------------------- */

/* The command, its exit and its output on stderr, for the log of a failed case. */
static void
show(cf_test_fleet *f, const char *const *argv)
{
	size_t i;

	fprintf(stderr, "command:");
	for (i = 0; argv[i] != NULL; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\nexit: %d%s\nstdout:\n%s\nstderr:\n%s\n", f->r.status,
		f->r.timed_out ? " (timed out)" : "", f->r.out != NULL ? f->r.out : "",
		f->r.err != NULL ? f->r.err : "");
}

int
cf_test_fleet_run(cf_test_fleet *f, const char *const *argv, int want)
{
	cf_test_run(&f->r, argv, f->timeout_s > 0 ? f->timeout_s : CF_TEST_TIMEOUT);
	if (f->r.timed_out || (want != CF_TEST_ANY_EXIT && f->r.status != want)) {
		show(f, argv);
		if (want != CF_TEST_ANY_EXIT)
			fprintf(stderr, "expected exit %d\n", want);
		if (f->on_fail != NULL)
			f->on_fail(f->on_fail_payload);
		fail_msg("%s: unexpected result", argv[0]);
	}
	return f->r.status;
}

size_t
cf_test_argv_collect(const char **argv, size_t n, size_t max, va_list ap)
{
	const char *a;

	for (;;) {
		a = va_arg(ap, const char *);
		if (a == NULL)
			break;
		assert_true(n < max - 1);
		argv[n++] = a;
	}
	argv[n] = NULL;
	return n;
}

/* certfleet --data-dir D [--output json] ARGS... */
static int
certfleet_va(cf_test_fleet *f, bool json, int want, va_list ap)
{
	const char *argv[MAX_ARGV];
	size_t n = 0;

	argv[n++] = f->certfleet;
	argv[n++] = "--data-dir";
	argv[n++] = f->data;
	if (json) {
		argv[n++] = "--output";
		argv[n++] = "json";
	}
	cf_test_argv_collect(argv, n, MAX_ARGV, ap);
	return cf_test_fleet_run(f, argv, want);
}

int
cf_test_certfleet(cf_test_fleet *f, int want, ...)
{
	va_list ap;
	int rc;

	va_start(ap, want);
	rc = certfleet_va(f, false, want, ap);
	va_end(ap);
	return rc;
}

int
cf_test_certfleet_json_want(cf_test_fleet *f, int want, ...)
{
	va_list ap;
	int rc;

	va_start(ap, want);
	rc = certfleet_va(f, true, want, ap);
	va_end(ap);
	return rc;
}

json_t *
cf_test_certfleet_json(cf_test_fleet *f, ...)
{
	va_list ap;

	va_start(ap, f);
	certfleet_va(f, true, CF_TEST_EXIT_OK, ap);
	va_end(ap);
	return cf_test_json_out(f);
}

int
cf_test_openssl(cf_test_fleet *f, int want, ...)
{
	const char *argv[MAX_ARGV];
	va_list ap;

	argv[0] = "openssl";
	va_start(ap, want);
	cf_test_argv_collect(argv, 1, MAX_ARGV, ap);
	va_end(ap);
	return cf_test_fleet_run(f, argv, want);
}

/* ---- reading results ------------------------------------------------------------ */

json_t *
cf_test_json_parse(cf_test_fleet *f, const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (j == NULL)
		fail_msg("not JSON: %s (line %d):\n%s", jerr.text, jerr.line, text);
	return cf_test_jkeep(f, j);
}

json_t *
cf_test_json_out(cf_test_fleet *f)
{
	return cf_test_json_parse(f, f->r.out);
}

/* Fail the case: obj has no member key of the kind wanted. */
static void
no_member(json_t *obj, const char *kind, const char *key)
{
	char *dump = json_dumps(obj, JSON_ENCODE_ANY);

	fprintf(stderr, "object: %s\n", dump != NULL ? dump : "?");
	free(dump);
	fail_msg("no %s '%s'", kind, key);
}

const char *
cf_test_jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		no_member(obj, "string", key);
	return json_string_value(v);
}

json_int_t
cf_test_jint(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		no_member(obj, "integer", key);
	return json_integer_value(v);
}

bool
cf_test_is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	}
	return s[n] == '\0';
}

const char *
cf_test_chomp(cf_test_fleet *f, const char *s)
{
	char *c = strdup(s);
	size_t n;

	assert_non_null(c);
	n = strlen(c);
	while (n > 0 && isspace((unsigned char)c[n - 1]))
		c[--n] = '\0';
	return cf_test_keep(f, c);
}

void
cf_test_assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL) {
		fprintf(stderr, "in:\n%s\n", hay);
		fail_msg("'%s' not found", needle);
	}
}

const char *
cf_test_file_text(cf_test_fleet *f, const char *path)
{
	char *text = NULL;

	if (cf_test_file_read(&text, NULL, path, TEXT_MAX) != 0)
		fail_msg("cannot read %s", path);
	return cf_test_keep(f, text);
}

void
cf_test_write_text(const char *path, const char *text, mode_t mode)
{
	if (cf_test_file_write(path, text, strlen(text), mode) != 0)
		fail_msg("cannot write %s", path);
}

void
cf_test_cat(cf_test_fleet *f, const char *path, mode_t mode, ...)
{
	char *text = NULL;
	size_t len = 0;
	const char *from;
	va_list ap;
	FILE *fp;

	fp = open_memstream(&text, &len);
	assert_non_null(fp);
	va_start(ap, mode);
	for (from = va_arg(ap, const char *); from != NULL; from = va_arg(ap, const char *))
		fputs(cf_test_file_text(f, from), fp);
	va_end(ap);
	assert_int_equal(fclose(fp), 0);
	cf_test_write_text(path, cf_test_keep(f, text), mode);
}

void
cf_test_config_set(cf_test_fleet *f, const char *key, const char *value, mode_t mode)
{
	const char *conf = cf_test_dpath(f, "certfleet.conf");
	char *text = NULL, *line, *next, *out = NULL;
	size_t len = 0, olen = 0, klen = strlen(key);
	FILE *fp;

	assert_int_equal(cf_test_file_read(&text, &len, conf, 1024 * 1024), 0);
	fp = open_memstream(&out, &olen);
	assert_non_null(fp);
	for (line = text; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == '='))
			continue;
		fprintf(fp, "%s\n", line);
	}
	fprintf(fp, "%s = %s\n", key, value);
	assert_int_equal(fclose(fp), 0);
	free(text);
	cf_test_write_text(conf, cf_test_keep(f, out), mode);
}

/* ---- certificates --------------------------------------------------------------- */

void
cf_test_fleet_ca_files(cf_test_fleet *f)
{
	json_t *ca;

	f->root = cf_test_dpath(f, "offline-root/root.pem");
	ca = cf_test_certfleet_json(f, "ca", "describe", "default", NULL);
	f->inter = cf_test_tpath(f, "intermediate.pem");
	cf_test_write_text(f->inter, cf_test_jstr(ca, "certificatePem"), 0644);
}

const char *
cf_test_csr_new(cf_test_fleet *f, const char *name, const char *keyspec, const char *subj)
{
	const char *key = cf_test_tpath(f, cf_test_keep(f, cf_test_printf("%s.key", name)));
	const char *csr = cf_test_tpath(f, cf_test_keep(f, cf_test_printf("%s.csr", name)));

	if (strcmp(keyspec, "ec") == 0)
		cf_test_openssl(f, 0, "req", "-new", "-newkey", "ec", "-pkeyopt",
				"ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
				"-subj", subj, NULL);
	else
		cf_test_openssl(f, 0, "req", "-new", "-newkey", keyspec, "-nodes", "-keyout", key,
				"-out", csr, "-subj", subj, NULL);
	return csr;
}

/* certfleet cert issue --thing THING --csr CSR [--out OUT] ARGS...: the id it prints. */
static const char *
cert_issue_va(cf_test_fleet *f, const char *thing, const char *csr, const char *out, va_list ap)
{
	const char *argv[MAX_ARGV];
	const char *id;
	size_t n = 0;

	argv[n++] = f->certfleet;
	argv[n++] = "--data-dir";
	argv[n++] = f->data;
	argv[n++] = "cert";
	argv[n++] = "issue";
	argv[n++] = "--thing";
	argv[n++] = thing;
	argv[n++] = "--csr";
	argv[n++] = csr;
	if (out != NULL) {
		argv[n++] = "--out";
		argv[n++] = out;
	}
	cf_test_argv_collect(argv, n, MAX_ARGV, ap);
	cf_test_fleet_run(f, argv, CF_TEST_EXIT_OK);
	id = cf_test_chomp(f, f->r.out);
	if (!cf_test_is_hex(id, 64))
		fail_msg("cert issue printed '%s', not a certificate id", id);
	return id;
}

const char *
cf_test_cert_issue(cf_test_fleet *f, const char *thing, const char *csr, const char *out, ...)
{
	const char *id;
	va_list ap;

	va_start(ap, out);
	id = cert_issue_va(f, thing, csr, out, ap);
	va_end(ap);
	return id;
}

void
cf_test_identity_new(cf_test_identity *out, cf_test_fleet *f, const char *thing, const char *subj,
		     ...)
{
	va_list ap;

	memset(out, 0, sizeof(*out));
	out->thing = thing;
	cf_test_certfleet(f, CF_TEST_EXIT_OK, "thing", "create", thing, NULL);
	out->csr = cf_test_csr_new(f, thing, "ec", subj);
	out->key = cf_test_tpath(f, cf_test_keep(f, cf_test_printf("%s.key", thing)));
	assert_int_equal(chmod(out->key, 0600), 0);
	out->cert = cf_test_tpath(f, cf_test_keep(f, cf_test_printf("%s.pem", thing)));
	va_start(ap, subj);
	out->id = cert_issue_va(f, thing, out->csr, out->cert, ap);
	va_end(ap);
}

const char *
cf_test_ossl_cert_id(cf_test_fleet *f, const char *pem)
{
	const char *line;
	char *id;
	size_t i;

	cf_test_openssl(f, 0, "x509", "-in", pem, "-noout", "-fingerprint", "-sha256", NULL);
	/* "sha256 Fingerprint=AB:CD:..." */
	line = strchr(f->r.out, '=');
	assert_non_null(line);
	id = calloc(65, 1);
	assert_non_null(id);
	for (i = 0, line++; *line != '\0' && *line != '\n' && i < 64; line++) {
		if (*line != ':')
			id[i++] = (char)tolower((unsigned char)*line);
	}
	cf_test_keep(f, id);
	assert_int_equal(i, 64);
	return id;
}

const char *
cf_test_ossl_pubkey(cf_test_fleet *f, const char *what, const char *path)
{
	if (strcmp(what, "pkey") == 0)
		cf_test_openssl(f, 0, "pkey", "-in", path, "-pubout", NULL);
	else
		cf_test_openssl(f, 0, what, "-in", path, "-pubkey", "-noout", NULL);
	return cf_test_keep(f, strdup(f->r.out));
}

const char *
cf_test_csr_res(cf_test_fleet *f, const char *csr_path, const char *rotation_id)
{
	json_t *o = json_object();
	char *payload;

	assert_non_null(o);
	json_object_set_new(o, "CSR", json_string(cf_test_file_text(f, csr_path)));
	if (rotation_id != NULL)
		json_object_set_new(o, "rotationId", json_string(rotation_id));
	payload = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return cf_test_keep(f, payload);
}
