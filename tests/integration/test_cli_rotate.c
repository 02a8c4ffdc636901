/*
 * Integration: certfleet rotate and certfleet service against a real SQLite
 * registry, with the real openssl command as the device and as the judge
 * of what `service create` writes.
 *
 * No broker and no certfleetd here: a rotation opened by the CLI is a row
 * and a csr_req in the outbox, which these cases read back through the
 * CLI itself (rotate list / describe, events). tests/integration/
 * test_rotation_e2e.c drives the same rotations over MQTT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "support/run.h"

#define MAX_ARGV 48
#define MAX_KEEP 256

/* Exit codes of cli/cli.h (docs/cli.md). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 2,
	EXIT_NOTFOUND = 3,
	EXIT_EXISTS = 4,
	EXIT_STATE = 5,
	EXIT_INPUT = 6
};

struct fx {
	char *tmp;        /* this case's temp dir */
	char *data;       /* tmp/data: the data dir */
	cf_test_result r; /* the last run */
	char *keep[MAX_KEEP];
	size_t nkeep;
	json_t *jkeep[MAX_KEEP];
	size_t njkeep;
};

static char *g_bin;

/* ---- fixture ---------------------------------------------------------- */

static int
group_setup(void **state)
{
	const char *bdir = getenv("CF_BINARY_DIR");

	(void)state;
	if (bdir == NULL) {
		fprintf(stderr, "CF_BINARY_DIR must be set (run through ctest)\n");
		return -1;
	}
	g_bin = cf_test_printf("%s/cli/certfleet", bdir);
	if (g_bin == NULL || access(g_bin, X_OK) != 0) {
		fprintf(stderr, "no certfleet binary at %s\n", g_bin != NULL ? g_bin : "?");
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	free(g_bin);
	return 0;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	fx->r = (cf_test_result)CF_TEST_RESULT_INIT;
	if (cf_test_tmpdir_new(&fx->tmp, "certfleet-rotate") != 0) {
		free(fx);
		return -1;
	}
	fx->data = cf_test_printf("%s/data", fx->tmp);
	if (fx->data == NULL) {
		cf_test_tmpdir_remove(fx->tmp);
		free(fx->tmp);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	size_t i;
	int rc;

	for (i = 0; i < fx->nkeep; i++)
		free(fx->keep[i]);
	for (i = 0; i < fx->njkeep; i++)
		json_decref(fx->jkeep[i]);
	cf_test_result_clear(&fx->r);
	rc = cf_test_tmpdir_remove(fx->tmp);
	free(fx->tmp);
	free(fx->data);
	free(fx);
	return rc;
}

static const char *
keep(struct fx *fx, char *s)
{
	assert_non_null(s);
	assert_true(fx->nkeep < MAX_KEEP);
	fx->keep[fx->nkeep++] = s;
	return s;
}

static json_t *
jkeep(struct fx *fx, json_t *j)
{
	assert_non_null(j);
	assert_true(fx->njkeep < MAX_KEEP);
	fx->jkeep[fx->njkeep++] = j;
	return j;
}

/* A path in the case's temp dir, or (data) in the data dir. */
static const char *
path(struct fx *fx, bool data, const char *name)
{
	return keep(fx, cf_test_printf("%s/%s", data ? fx->data : fx->tmp, name));
}

/* ---- running ------------------------------------------------------------ */

static void
show(struct fx *fx, const char *const *argv)
{
	size_t i;

	fprintf(stderr, "command:");
	for (i = 0; argv[i] != NULL; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\nexit: %d\nstdout:\n%s\nstderr:\n%s\n", fx->r.status,
		fx->r.out != NULL ? fx->r.out : "", fx->r.err != NULL ? fx->r.err : "");
}

/* Run argv (NULL-terminated) into fx->r; it must exit want. */
static void
run_argv(struct fx *fx, const char **argv, int want)
{
	cf_test_run(&fx->r, argv, CF_TEST_TIMEOUT);
	if (fx->r.timed_out || fx->r.status != want) {
		show(fx, argv);
		fail_msg("%s: exit %d, expected %d", argv[0], fx->r.status, want);
	}
}

/* certfleet --data-dir D [--output json] ARGS..., which must exit want. */
static void
cli_va(struct fx *fx, bool json, int want, va_list ap)
{
	const char *argv[MAX_ARGV], *a;
	size_t n = 0;

	argv[n++] = g_bin;
	argv[n++] = "--data-dir";
	argv[n++] = fx->data;
	if (json) {
		argv[n++] = "--output";
		argv[n++] = "json";
	}
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < MAX_ARGV - 1);
		argv[n++] = a;
	}
	argv[n] = NULL;
	run_argv(fx, argv, want);
}

static CF_TEST_SENTINEL void
cli_want(struct fx *fx, int want, ...)
{
	va_list ap;

	va_start(ap, want);
	cli_va(fx, false, want, ap);
	va_end(ap);
}

/* certfleet --output json ARGS..., which must succeed: its parsed output. */
static CF_TEST_SENTINEL json_t *
cli_json(struct fx *fx, ...)
{
	json_error_t jerr;
	va_list ap;
	json_t *j;

	va_start(ap, fx);
	cli_va(fx, true, EXIT_OK, ap);
	va_end(ap);
	j = json_loads(fx->r.out, JSON_DECODE_ANY, &jerr);
	if (j == NULL)
		fail_msg("stdout is not JSON: %s\n%s", jerr.text, fx->r.out);
	return jkeep(fx, j);
}

/* openssl ARGS..., which must exit want. */
static CF_TEST_SENTINEL void
ossl(struct fx *fx, int want, ...)
{
	const char *argv[MAX_ARGV], *a;
	size_t n = 0;
	va_list ap;

	argv[n++] = "openssl";
	va_start(ap, want);
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < MAX_ARGV - 1);
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	run_argv(fx, argv, want);
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("'%s' not found in:\n%s", needle, hay);
}

/* stdout without trailing whitespace, kept. */
static const char *
out_line(struct fx *fx)
{
	char *c = strdup(fx->r.out);
	size_t n;

	assert_non_null(c);
	n = strlen(c);
	while (n > 0 && isspace((unsigned char)c[n - 1]))
		c[--n] = '\0';
	return keep(fx, c);
}

static const char *
jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		fail_msg("no string '%s'", key);
	return json_string_value(v);
}

static json_int_t
jint(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		fail_msg("no integer '%s'", key);
	return json_integer_value(v);
}

static bool
is_rotation_id(const char *s)
{
	size_t i;

	for (i = 0; i < 32; i++) {
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	}
	return s[32] == '\0';
}

/* ---- the scene ------------------------------------------------------------ */

/* A quickstart data dir: root, intermediate "default", the device policy. */
static void
quickstart(struct fx *fx)
{
	cli_want(fx, EXIT_OK, "init", "--quickstart", NULL);
}

/* Thing name with a certificate for an openssl-made P-256 key, valid days; its id. */
static const char *
device(struct fx *fx, const char *name, const char *days)
{
	const char *csr = path(fx, false, keep(fx, cf_test_printf("%s.csr", name)));
	const char *key = path(fx, false, keep(fx, cf_test_printf("%s.key", name)));

	cli_want(fx, EXIT_OK, "thing", "create", name, NULL);
	ossl(fx, EXIT_OK, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
	     "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=device", NULL);
	cli_want(fx, EXIT_OK, "cert", "issue", "--thing", name, "--csr", csr, "--days", days,
		 NULL);
	return out_line(fx);
}

/* The number of rotations `rotate list` shows with these extra arguments. */
static size_t
rotations(struct fx *fx, const char *a, const char *b)
{
	json_t *rows = cli_json(fx, "rotate", "list", a, b, NULL);

	assert_true(json_is_array(rows));
	return json_array_size(rows);
}

/* ---- cases ------------------------------------------------------------- */

static void
test_cli_rotate__start_by_thing(void **state)
{
	struct fx *fx = *state;
	const char *cert1, *cert2, *id;
	char prefix[9];
	json_t *rot, *events;

	quickstart(fx);
	cert1 = device(fx, "dev-1", "365");
	cert2 = device(fx, "dev-2", "365");
	cli_want(fx, EXIT_OK, "rotate", "start", "--thing", "dev-1", "--why", "test", NULL);
	id = out_line(fx);
	if (!is_rotation_id(id))
		fail_msg("rotate start printed '%s'", id);

	/* describe by a unique prefix, as certificates are. */
	memcpy(prefix, id, 8);
	prefix[8] = '\0';
	rot = cli_json(fx, "rotate", "describe", prefix, NULL);
	assert_string_equal(jstr(rot, "rotationId"), id);
	assert_string_equal(jstr(rot, "thing"), "dev-1");
	assert_string_equal(jstr(rot, "state"), "REQUESTED");
	assert_string_equal(jstr(rot, "oldCertificateId"), cert1);
	assert_true(json_is_null(json_object_get(rot, "newCertificateId")));
	assert_int_equal(jint(rot, "sends"), 1);
	assert_true(json_is_true(json_object_get(rot, "rekey")));
	assert_contains(jstr(rot, "nextSendAt"), "Z");

	/* A second start for the same thing: exit 4, nothing new. */
	cli_want(fx, EXIT_EXISTS, "rotate", "start", "--thing", "dev-1", NULL);
	assert_contains(fx->r.err, "already has an open rotation");
	assert_int_equal(rotations(fx, NULL, NULL), 1);

	/* Bad inputs change nothing either. */
	cli_want(fx, EXIT_NOTFOUND, "rotate", "start", "--thing", "ghost", NULL);
	cli_want(fx, EXIT_INPUT, "rotate", "start", "--thing", "dev-2", "--cert", cert1, NULL);
	assert_contains(fx->r.err, "not bound");
	cli_want(fx, EXIT_USAGE, "rotate", "start", "--thing", "bad name!", "--ca", "x", NULL);
	cli_want(fx, EXIT_USAGE, "rotate", "start", NULL);
	cli_want(fx, EXIT_USAGE, "rotate", "start", "--cert", cert2, NULL);
	cli_want(fx, EXIT_USAGE, "rotate", "bogus", NULL);
	assert_int_equal(rotations(fx, NULL, NULL), 1);

	/* An explicit certificate, by prefix. */
	cli_want(fx, EXIT_OK, "rotate", "start", "--thing", "dev-2", "--cert",
		 keep(fx, strndup(cert2, 12)), NULL);
	assert_int_equal(rotations(fx, "--state", "REQUESTED"), 2);

	/* The log has the opening, with the operator's reason, and still verifies. */
	events = cli_json(fx, "events", "list", "--resource",
			  keep(fx, cf_test_printf("rotation:%s", id)), NULL);
	assert_int_equal(json_array_size(events), 1);
	assert_string_equal(jstr(json_array_get(events, 0), "action"), "rotation.opened");
	cli_want(fx, EXIT_OK, "events", "verify", NULL);
}

static void
test_cli_rotate__start_many(void **state)
{
	struct fx *fx = *state;
	json_t *res, *rows;

	quickstart(fx);
	device(fx, "dev-1", "10");
	device(fx, "dev-2", "100");
	cli_want(fx, EXIT_OK, "service", "create", "svc-1", "--days", "20", NULL);

	/* Within 30 days: dev-1, and the service principal, which is skipped. */
	cli_want(fx, EXIT_OK, "rotate", "start", "--expiring-within", "30d", NULL);
	assert_true(is_rotation_id(out_line(fx)));
	assert_contains(fx->r.err, "1 started, 0 already open, 1 service principals skipped");
	rows = cli_json(fx, "rotate", "list", "--thing", "dev-1", NULL);
	assert_int_equal(json_array_size(rows), 1);

	/* Within 400 days: dev-2 is new, dev-1 is open already. */
	res = cli_json(fx, "rotate", "start", "--expiring-within", "400d", NULL);
	assert_int_equal(jint(res, "started"), 1);
	assert_int_equal(jint(res, "skippedOpen"), 1);
	assert_int_equal(jint(res, "skippedService"), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(res, "rotations"), 0), "thing"),
			    "dev-2");

	/* By CA: everything it issued is open already or a service principal. */
	res = cli_json(fx, "rotate", "start", "--ca", "default", NULL);
	assert_int_equal(jint(res, "started"), 0);
	assert_int_equal(jint(res, "skippedOpen"), 2);
	assert_int_equal(jint(res, "skippedService"), 1);

	/* Bad inputs: nothing changes. */
	cli_want(fx, EXIT_USAGE, "rotate", "start", "--expiring-within", "3x", NULL);
	assert_contains(fx->r.err, "duration");
	cli_want(fx, EXIT_USAGE, "rotate", "start", "--expiring-within", "30", NULL);
	cli_want(fx, EXIT_NOTFOUND, "rotate", "start", "--ca", "nope", NULL);
	cli_want(fx, EXIT_USAGE, "rotate", "start", "--thing", "dev-1", "--expiring-within",
		 "30d", NULL);
	assert_int_equal(rotations(fx, NULL, NULL), 2);

	/* Named explicitly, a service principal is rotated. */
	cli_want(fx, EXIT_OK, "rotate", "start", "--thing", "svc-1", NULL);
	assert_int_equal(rotations(fx, "--state", "REQUESTED"), 3);
	cli_want(fx, EXIT_OK, "events", "verify", NULL);
}

static void
test_cli_rotate__list_describe_cancel(void **state)
{
	struct fx *fx = *state;
	const char *id, *id2;
	json_t *res, *rows;

	quickstart(fx);
	device(fx, "dev-1", "365");
	device(fx, "dev-2", "365");
	cli_want(fx, EXIT_OK, "rotate", "start", "--thing", "dev-1", NULL);
	id = out_line(fx);
	cli_want(fx, EXIT_OK, "rotate", "start", "--thing", "dev-2", NULL);
	id2 = out_line(fx);

	res = cli_json(fx, "rotate", "cancel", id, "--why", "wrong batch", NULL);
	assert_string_equal(jstr(res, "rotationId"), id);
	assert_string_equal(jstr(res, "state"), "CANCELLED");
	assert_string_equal(jstr(res, "error"), "cancelled: wrong batch");
	/* Once ended, it stays ended: exit 5. */
	cli_want(fx, EXIT_STATE, "rotate", "cancel", id, NULL);
	assert_contains(fx->r.err, "CANCELLED");

	rows = cli_json(fx, "rotate", "list", "--state", "cancelled", NULL);
	assert_int_equal(json_array_size(rows), 1);
	assert_string_equal(jstr(json_array_get(rows, 0), "rotationId"), id);
	assert_int_equal(rotations(fx, "--limit", "1"), 1);
	assert_int_equal(rotations(fx, "--thing", "dev-2"), 1);
	cli_want(fx, EXIT_OK, "rotate", "list", NULL); /* the table */
	assert_contains(fx->r.out, id2);
	assert_contains(fx->r.out, "CANCELLED");

	/* A cancelled thing may start again at once. */
	cli_want(fx, EXIT_OK, "rotate", "start", "--thing", "dev-1", NULL);

	/* Bad ids and states. */
	cli_want(fx, EXIT_NOTFOUND, "rotate", "describe", "0123456789abcdef0123456789abcdef",
		 NULL);
	cli_want(fx, EXIT_INPUT, "rotate", "describe", "zz", NULL);
	cli_want(fx, EXIT_NOTFOUND, "rotate", "cancel", "0123456789abcdef", NULL);
	cli_want(fx, EXIT_USAGE, "rotate", "list", "--state", "DONE", NULL);
	cli_want(fx, EXIT_USAGE, "rotate", "describe", NULL);
	cli_want(fx, EXIT_OK, "rotate", "--help", NULL);
	assert_contains(fx->r.out, "cancel");
	cli_want(fx, EXIT_OK, "rotate", "cancel", "--help", NULL);
	assert_contains(fx->r.out, "INACTIVE");
	cli_want(fx, EXIT_OK, "events", "verify", NULL);
}

static void
test_cli_rotate__service_create(void **state)
{
	struct fx *fx = *state;
	const char *pem, *key, *root, *pub_cert, *pub_key, *first, *text;
	json_t *res, *thing, *policy;

	quickstart(fx);
	res = cli_json(fx, "service", "create", "certfleetd", NULL);
	pem = path(fx, true, "service/certfleetd.pem");
	key = path(fx, true, "service/certfleetd.key");
	root = path(fx, true, "offline-root/root.pem");
	assert_string_equal(jstr(res, "certFile"), pem);
	assert_string_equal(jstr(res, "keyFile"), key);
	assert_string_equal(jstr(res, "policy"), "certfleet-service");
	first = keep(fx, strdup(jstr(res, "certificateId")));
	assert_int_equal(cf_test_file_mode(key), 0600);

	/* The chain file holds the leaf and the intermediate: it verifies to the root. */
	ossl(fx, EXIT_OK, "verify", "-CAfile", root, "-untrusted", pem, "-purpose", "sslclient",
	     pem, NULL);
	ossl(fx, EXIT_OK, "x509", "-in", pem, "-noout", "-text", NULL);
	assert_contains(fx->r.out, "TLS Web Client Authentication");
	assert_contains(fx->r.out, "CN = certfleetd");
	assert_contains(fx->r.out, "prime256v1");
	/* The key is the certificate's. */
	ossl(fx, EXIT_OK, "x509", "-in", pem, "-noout", "-pubkey", NULL);
	pub_cert = keep(fx, strdup(fx->r.out));
	ossl(fx, EXIT_OK, "pkey", "-in", key, "-pubout", NULL);
	pub_key = keep(fx, strdup(fx->r.out));
	assert_string_equal(pub_cert, pub_key);

	/* The registry: a thing with role=service, the policy for the topic prefix. */
	thing = cli_json(fx, "thing", "describe", "certfleetd", NULL);
	assert_contains(keep(fx, json_dumps(thing, JSON_COMPACT)), "\"role\":\"service\"");
	policy = cli_json(fx, "policy", "describe", "certfleet-service", NULL);
	text = keep(fx, json_dumps(policy, JSON_COMPACT));
	assert_contains(text, "\"management/topic/+/csr_res\"");
	assert_contains(text, "\"management/topic/+/csr_req\"");

	/* Again: a new key and certificate replace the files. */
	res = cli_json(fx, "service", "create", "certfleetd", NULL);
	assert_string_not_equal(jstr(res, "certificateId"), first);
	assert_int_equal(cf_test_file_mode(key), 0600);

	/* Another directory, a short validity: it expires within 31 days. */
	cli_want(fx, EXIT_OK, "service", "create", "audit", "--out-dir",
		 path(fx, false, "out"), "--days", "30", NULL);
	ossl(fx, 1, "x509", "-in", path(fx, false, "out/audit.pem"), "-noout", "-checkend",
	     "2678400", NULL);
	assert_int_equal(cf_test_file_mode(path(fx, false, "out/audit.key")), 0600);

	/* Refusals: a thing that is not a service, a bad name, a bad --days. */
	cli_want(fx, EXIT_OK, "thing", "create", "plain", NULL);
	cli_want(fx, EXIT_EXISTS, "service", "create", "plain", NULL);
	assert_contains(fx->r.err, "not a service principal");
	assert_int_equal(access(path(fx, true, "service/plain.key"), F_OK), -1);
	cli_want(fx, EXIT_USAGE, "service", "create", "bad name", NULL);
	cli_want(fx, EXIT_USAGE, "service", "create", "x", "--days", "0", NULL);
	cli_want(fx, EXIT_USAGE, "service", "create", NULL);
	cli_want(fx, EXIT_OK, "events", "verify", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cli_rotate__start_by_thing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_rotate__start_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_rotate__list_describe_cancel, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_rotate__service_create, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
