/*
 * Integration: certfleet rotate and certfleet service against a real SQLite
 * registry, with the real openssl command as the device and as the judge
 * of what `service create` writes.
 *
 * No broker and no certfleetd here: a rotation opened by the CLI is a row
 * and a csr_req in the outbox, which these cases read back through the
 * CLI itself (rotate list / describe, events). tests/integration/
 * test_rotation_e2e.c drives the same rotations over MQTT.
 *
 * Each case gets a fresh data dir (support/fleet.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "support/fleet.h"
#include "support/run.h"

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	cf_test_fleet *fx;
	int rc = cf_test_fleet_new(&fx, "certfleet-rotate", cf_test_cli());

	*state = fx;
	return rc;
}

static int
teardown(void **state)
{
	return cf_test_fleet_free(*state);
}

/* ---- the scene ------------------------------------------------------------ */

/* A quickstart data dir: root, intermediate "default", the device policy. */
static void
quickstart(cf_test_fleet *fx)
{
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", "--quickstart", NULL);
}

/* Thing name with a certificate for an openssl-made P-256 key, valid days; its id. */
static const char *
device(cf_test_fleet *fx, const char *name, const char *days)
{
	cf_test_identity dev;

	cf_test_identity_new(&dev, fx, name, "/CN=device", "--days", days, NULL);
	return dev.id;
}

/* The number of rotations `rotate list` shows with these extra arguments. */
static size_t
rotations(cf_test_fleet *fx, const char *a, const char *b)
{
	json_t *rows = cf_test_certfleet_json(fx, "rotate", "list", a, b, NULL);

	assert_true(json_is_array(rows));
	return json_array_size(rows);
}

/* ---- cases ------------------------------------------------------------- */

static void
test_cli_rotate__start_by_thing(void **state)
{
	cf_test_fleet *fx = *state;
	const char *cert1, *cert2, *id;
	char prefix[9];
	json_t *rot, *events;

	quickstart(fx);
	cert1 = device(fx, "dev-1", "365");
	cert2 = device(fx, "dev-2", "365");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--thing", "dev-1", "--why",
			  "test", NULL);
	id = cf_test_chomp(fx, fx->r.out);
	if (!cf_test_is_hex(id, 32))
		fail_msg("rotate start printed '%s'", id);

	/* describe by a unique prefix, as certificates are. */
	memcpy(prefix, id, 8);
	prefix[8] = '\0';
	rot = cf_test_certfleet_json(fx, "rotate", "describe", prefix, NULL);
	assert_string_equal(cf_test_jstr(rot, "rotationId"), id);
	assert_string_equal(cf_test_jstr(rot, "thing"), "dev-1");
	assert_string_equal(cf_test_jstr(rot, "state"), "REQUESTED");
	assert_string_equal(cf_test_jstr(rot, "oldCertificateId"), cert1);
	assert_true(json_is_null(json_object_get(rot, "newCertificateId")));
	assert_int_equal(cf_test_jint(rot, "sends"), 1);
	assert_true(json_is_true(json_object_get(rot, "rekey")));
	cf_test_assert_contains(cf_test_jstr(rot, "nextSendAt"), "Z");

	/* A second start for the same thing: exit 4, nothing new. */
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "rotate", "start", "--thing", "dev-1", NULL);
	cf_test_assert_contains(fx->r.err, "already has an open rotation");
	assert_int_equal(rotations(fx, NULL, NULL), 1);

	/* Bad inputs change nothing either. */
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "rotate", "start", "--thing", "ghost", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "rotate", "start", "--thing", "dev-2", "--cert",
			  cert1, NULL);
	cf_test_assert_contains(fx->r.err, "not bound");
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "start", "--thing", "bad name!", "--ca",
			  "x", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "start", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "start", "--cert", cert2, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "bogus", NULL);
	assert_int_equal(rotations(fx, NULL, NULL), 1);

	/* An explicit certificate, by prefix. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--thing", "dev-2", "--cert",
			  cf_test_keep(fx, strndup(cert2, 12)), NULL);
	assert_int_equal(rotations(fx, "--state", "REQUESTED"), 2);

	/* The log has the opening, with the operator's reason, and still verifies. */
	events = cf_test_certfleet_json(fx, "events", "list", "--resource",
					cf_test_keep(fx, cf_test_printf("rotation:%s", id)), NULL);
	assert_int_equal(json_array_size(events), 1);
	assert_string_equal(cf_test_jstr(json_array_get(events, 0), "action"), "rotation.opened");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

static void
test_cli_rotate__start_many(void **state)
{
	cf_test_fleet *fx = *state;
	json_t *res, *rows;

	quickstart(fx);
	device(fx, "dev-1", "10");
	device(fx, "dev-2", "100");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "service", "create", "svc-1", "--days", "20", NULL);

	/* Within 30 days: dev-1, and the service principal, which is skipped. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--expiring-within", "30d", NULL);
	assert_true(cf_test_is_hex(cf_test_chomp(fx, fx->r.out), 32));
	cf_test_assert_contains(fx->r.err,
				"1 started, 0 already open, 1 service principals skipped");
	rows = cf_test_certfleet_json(fx, "rotate", "list", "--thing", "dev-1", NULL);
	assert_int_equal(json_array_size(rows), 1);

	/* Within 400 days: dev-2 is new, dev-1 is open already. */
	res = cf_test_certfleet_json(fx, "rotate", "start", "--expiring-within", "400d", NULL);
	assert_int_equal(cf_test_jint(res, "started"), 1);
	assert_int_equal(cf_test_jint(res, "skippedOpen"), 1);
	assert_int_equal(cf_test_jint(res, "skippedService"), 1);
	assert_string_equal(
		cf_test_jstr(json_array_get(json_object_get(res, "rotations"), 0), "thing"),
		"dev-2");

	/* By CA: everything it issued is open already or a service principal. */
	res = cf_test_certfleet_json(fx, "rotate", "start", "--ca", "default", NULL);
	assert_int_equal(cf_test_jint(res, "started"), 0);
	assert_int_equal(cf_test_jint(res, "skippedOpen"), 2);
	assert_int_equal(cf_test_jint(res, "skippedService"), 1);

	/* Bad inputs: nothing changes. */
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "start", "--expiring-within", "3x",
			  NULL);
	cf_test_assert_contains(fx->r.err, "duration");
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "start", "--expiring-within", "30",
			  NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "rotate", "start", "--ca", "nope", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "start", "--thing", "dev-1",
			  "--expiring-within", "30d", NULL);
	assert_int_equal(rotations(fx, NULL, NULL), 2);

	/* Named explicitly, a service principal is rotated. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--thing", "svc-1", NULL);
	assert_int_equal(rotations(fx, "--state", "REQUESTED"), 3);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

static void
test_cli_rotate__list_describe_cancel(void **state)
{
	cf_test_fleet *fx = *state;
	const char *id, *id2;
	json_t *res, *rows;

	quickstart(fx);
	device(fx, "dev-1", "365");
	device(fx, "dev-2", "365");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--thing", "dev-1", NULL);
	id = cf_test_chomp(fx, fx->r.out);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--thing", "dev-2", NULL);
	id2 = cf_test_chomp(fx, fx->r.out);

	res = cf_test_certfleet_json(fx, "rotate", "cancel", id, "--why", "wrong batch", NULL);
	assert_string_equal(cf_test_jstr(res, "rotationId"), id);
	assert_string_equal(cf_test_jstr(res, "state"), "CANCELLED");
	assert_string_equal(cf_test_jstr(res, "error"), "cancelled: wrong batch");
	/* Once ended, it stays ended: exit 5. */
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "rotate", "cancel", id, NULL);
	cf_test_assert_contains(fx->r.err, "CANCELLED");

	rows = cf_test_certfleet_json(fx, "rotate", "list", "--state", "cancelled", NULL);
	assert_int_equal(json_array_size(rows), 1);
	assert_string_equal(cf_test_jstr(json_array_get(rows, 0), "rotationId"), id);
	assert_int_equal(rotations(fx, "--limit", "1"), 1);
	assert_int_equal(rotations(fx, "--thing", "dev-2"), 1);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "list", NULL); /* the table */
	cf_test_assert_contains(fx->r.out, id2);
	cf_test_assert_contains(fx->r.out, "CANCELLED");

	/* A cancelled thing may start again at once. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "start", "--thing", "dev-1", NULL);

	/*
	 * Stored text with control characters (a device's crt_err is such text)
	 * reaches the terminal escaped: no raw CR or ESC, no forged row.
	 */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "cancel", id2, "--why",
			  "x\r\x1b[31mforged", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "list", NULL);
	assert_null(strchr(fx->r.out, '\x1b'));
	assert_null(strchr(fx->r.out, '\r'));
	cf_test_assert_contains(fx->r.out, "x\\x0d\\x1b[31mforged");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "describe", id2, NULL);
	assert_null(strchr(fx->r.out, '\x1b'));

	/* Bad ids and states. */
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "rotate", "describe",
			  "0123456789abcdef0123456789abcdef", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "rotate", "describe", "zz", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "rotate", "cancel", "0123456789abcdef", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "list", "--state", "DONE", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "rotate", "describe", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "--help", NULL);
	cf_test_assert_contains(fx->r.out, "cancel");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "rotate", "cancel", "--help", NULL);
	cf_test_assert_contains(fx->r.out, "INACTIVE");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

static void
test_cli_rotate__service_create(void **state)
{
	cf_test_fleet *fx = *state;
	const char *pem, *key, *root, *pub_cert, *pub_key, *first, *text;
	json_t *res, *thing, *policy;

	quickstart(fx);
	res = cf_test_certfleet_json(fx, "service", "create", "certfleetd", NULL);
	pem = cf_test_dpath(fx, "service/certfleetd.pem");
	key = cf_test_dpath(fx, "service/certfleetd.key");
	root = cf_test_dpath(fx, "offline-root/root.pem");
	assert_string_equal(cf_test_jstr(res, "certFile"), pem);
	assert_string_equal(cf_test_jstr(res, "keyFile"), key);
	assert_string_equal(cf_test_jstr(res, "policy"), "certfleet-service");
	first = cf_test_keep(fx, strdup(cf_test_jstr(res, "certificateId")));
	assert_int_equal(cf_test_file_mode(key), 0600);

	/* The chain file holds the leaf and the intermediate: it verifies to the root. */
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "verify", "-CAfile", root, "-untrusted", pem,
			"-purpose", "sslclient", pem, NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-noout", "-text", NULL);
	cf_test_assert_contains(fx->r.out, "TLS Web Client Authentication");
	cf_test_assert_contains(fx->r.out, "CN = certfleetd");
	cf_test_assert_contains(fx->r.out, "prime256v1");
	/* The key is the certificate's. */
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-noout", "-pubkey", NULL);
	pub_cert = cf_test_keep(fx, strdup(fx->r.out));
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "pkey", "-in", key, "-pubout", NULL);
	pub_key = cf_test_keep(fx, strdup(fx->r.out));
	assert_string_equal(pub_cert, pub_key);

	/* The registry: a thing with role=service, the policy for the topic prefix. */
	thing = cf_test_certfleet_json(fx, "thing", "describe", "certfleetd", NULL);
	cf_test_assert_contains(cf_test_keep(fx, json_dumps(thing, JSON_COMPACT)),
				"\"role\":\"service\"");
	policy = cf_test_certfleet_json(fx, "policy", "describe", "certfleet-service", NULL);
	text = cf_test_keep(fx, json_dumps(policy, JSON_COMPACT));
	cf_test_assert_contains(text, "\"management/topic/+/csr_res\"");
	cf_test_assert_contains(text, "\"management/topic/+/csr_req\"");

	/* Again, a renewal: a new key and certificate replace the files, the old one is INACTIVE. */
	res = cf_test_certfleet_json(fx, "service", "create", "certfleetd", NULL);
	assert_string_not_equal(cf_test_jstr(res, "certificateId"), first);
	assert_int_equal(cf_test_file_mode(key), 0600);
	res = cf_test_certfleet_json(fx, "cert", "describe", first, NULL);
	assert_string_equal(cf_test_jstr(res, "status"), "INACTIVE");
	res = cf_test_certfleet_json(fx, "cert", "list", "--thing", "certfleetd", "--status",
				     "ACTIVE", NULL);
	assert_int_equal(json_array_size(res), 1);

	/* Another directory, a short validity: it expires within 31 days. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "service", "create", "audit", "--out-dir",
			  cf_test_tpath(fx, "out"), "--days", "30", NULL);
	cf_test_openssl(fx, 1, "x509", "-in", cf_test_tpath(fx, "out/audit.pem"), "-noout",
			"-checkend", "2678400", NULL);
	assert_int_equal(cf_test_file_mode(cf_test_tpath(fx, "out/audit.key")), 0600);

	/* Refusals: a thing that is not a service, a bad name, a bad --days. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "thing", "create", "plain", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "service", "create", "plain", NULL);
	cf_test_assert_contains(fx->r.err, "not a service principal");
	assert_int_equal(access(cf_test_dpath(fx, "service/plain.key"), F_OK), -1);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "service", "create", "bad name", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "service", "create", "x", "--days", "0", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "service", "create", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
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

	return cmocka_run_group_tests(tests, cf_test_cli_group_setup, cf_test_cli_group_teardown);
}
