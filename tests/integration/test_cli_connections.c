/*
 * Integration: `certfleet connections list` against a real SQLite registry.
 *
 * No certfleet command writes connection records (the broker plugin does),
 * so each case makes a data dir with `certfleet init` and fills the
 * registry through the store API, as the plugin would, before running the
 * real binary. Times are relative to now: --since is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "store/store.h"
#include "support/fleet.h"
#include "support/run.h"

#define CERT_A "00000000000000019e3779b97f4a7c15fffffffffffffffe5555555555555554"
#define CERT_B "00000000000000023c6ef372fe94f82afffffffffffffffd5555555555555557"

/* A client id with a terminal escape, a newline and a DEL: what a hostile device may send. */
#define EVIL_CLIENT "ev\x1b[31mil\nx\x7f"

static int
setup(void **state)
{
	cf_test_fleet *fx;
	int rc = cf_test_fleet_new(&fx, "certfleet-conn", cf_test_cli());

	*state = fx;
	if (rc == 0)
		rc = cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", NULL) == CF_TEST_EXIT_OK ? 0
											     : -1;
	return rc;
}

static int
teardown(void **state)
{
	return cf_test_fleet_free(*state);
}

/* Record n connections into the data dir's registry, as the broker plugin does. */
static void
record(cf_test_fleet *fx, const cf_store_connection *recs, size_t n)
{
	const char *uri =
		cf_test_keep(fx, cf_test_printf("sqlite:%s", cf_test_dpath(fx, "registry.db")));
	cf_store *store = NULL;
	cf_err err = CF_ERR_INIT;

	if (cf_store_open_existing(&store, uri, &err) != 0)
		fail_msg("open %s: %s", uri, err.msg);
	if (cf_store_connections_record(store, recs, n, 0, &err) != 0)
		fail_msg("connections_record: %s", err.msg);
	cf_store_close(store);
}

/* Four connections, oldest first: a day, two hours, ten minutes and one minute ago. */
static void
seed(cf_test_fleet *fx)
{
	int64_t now = (int64_t)time(NULL);
	cf_store_connection recs[] = {
		{ 0, now - 86400, CERT_A, "dev-a", "192.0.2.1:40001", "accepted" },
		{ 0, now - 7200, CERT_A, "dev-b", "192.0.2.2:40002", "client_id_mismatch" },
		{ 0, now - 600, NULL, "dev-b", "192.0.2.2:40003", "no_certificate" },
		{ 0, now - 60, CERT_B, "dev-b", "[2001:db8::2]:40004", "status_INACTIVE" },
	};

	record(fx, recs, CF_ARRAY_LEN(recs));
}

/* The clientId of each row of a JSON list, joined with ',' (kept). */
static const char *
client_ids(cf_test_fleet *fx, json_t *rows)
{
	char buf[512] = "";
	size_t i, used = 0;
	json_t *row;

	assert_true(json_is_array(rows));
	json_array_foreach (rows, i, row) {
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i > 0 ? "," : "",
					 cf_test_jstr(row, "clientId"));
		assert_true(used < sizeof(buf));
	}
	return cf_test_keep(fx, strdup(buf));
}

static void
test_cli_connections__empty(void **state)
{
	cf_test_fleet *fx = *state;
	json_t *rows;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", NULL);
	assert_string_equal(cf_test_chomp(fx, fx->r.out),
			    "time  outcome  clientId  certificateId  address");
	assert_string_equal(fx->r.err, "");
	rows = cf_test_certfleet_json(fx, "connections", "list", NULL);
	assert_true(json_is_array(rows));
	assert_int_equal(json_array_size(rows), 0);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", "--json", NULL);
	rows = cf_test_json_out(fx);
	assert_true(json_is_array(rows));
	assert_int_equal(json_array_size(rows), 0);
}

static void
test_cli_connections__json_fields(void **state)
{
	cf_test_fleet *fx = *state;
	json_t *rows, *row;
	int64_t now = (int64_t)time(NULL);
	json_int_t id0, id1;
	struct tm tm;
	time_t t;

	seed(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", "--json", NULL);
	rows = cf_test_json_out(fx);
	assert_int_equal(json_array_size(rows), 4);
	assert_string_equal(client_ids(fx, rows), "dev-b,dev-b,dev-b,dev-a");
	/* Newest first: the inactive certificate one minute ago. */
	row = json_array_get(rows, 0);
	assert_string_equal(cf_test_jstr(row, "outcome"), "status_INACTIVE");
	assert_string_equal(cf_test_jstr(row, "certificateId"), CERT_B);
	assert_string_equal(cf_test_jstr(row, "address"), "[2001:db8::2]:40004");
	memset(&tm, 0, sizeof(tm));
	assert_int_equal(sscanf(cf_test_jstr(row, "time"), "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year,
				&tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
			 6);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	assert_true(t >= now - 120 && t <= now);
	id0 = cf_test_jint(row, "id");
	/* No certificate: null, not "" or "-". */
	row = json_array_get(rows, 1);
	assert_string_equal(cf_test_jstr(row, "outcome"), "no_certificate");
	assert_true(json_is_null(json_object_get(row, "certificateId")));
	id1 = cf_test_jint(row, "id");
	assert_true(id0 > id1);
	/* The global --output json says the same. */
	assert_true(json_equal(rows, cf_test_certfleet_json(fx, "connections", "list", NULL)));
}

static void
test_cli_connections__filters(void **state)
{
	cf_test_fleet *fx = *state;

	seed(fx);
	assert_string_equal(client_ids(fx, cf_test_certfleet_json(fx, "connections", "list",
								  "--cert", CERT_A, NULL)),
			    "dev-b,dev-a");
	/* A prefix, in capitals: the certificate A, not B (they differ at digit 16). */
	assert_string_equal(
		client_ids(fx, cf_test_certfleet_json(fx, "connections", "list", "--cert",
						      "00000000000000019E3779B9", NULL)),
		"dev-b,dev-a");
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list", "--cert",
								"00000000000000023C6EF372", NULL)),
			 1);
	assert_string_equal(client_ids(fx, cf_test_certfleet_json(fx, "connections", "list",
								  "--client-id", "dev-a", NULL)),
			    "dev-a");
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list",
								"--client-id", "dev-", NULL)),
			 0);
	/* --since: one hour back leaves the two newest. */
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list",
								"--since", "1h", NULL)),
			 2);
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list",
								"--since", "3h", NULL)),
			 3);
	/* Combined: certificate A used by another device than its own, in the last 3 hours. */
	assert_string_equal(
		cf_test_jstr(json_array_get(cf_test_certfleet_json(fx, "connections", "list",
								   "--cert", CERT_A, "--client-id",
								   "dev-b", "--since", "3h", NULL),
					    0),
			     "outcome"),
		"client_id_mismatch");
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list", "--cert",
								CERT_A, "--since", "1h", NULL)),
			 0);
	assert_string_equal(
		client_ids(fx, cf_test_certfleet_json(fx, "connections", "list", "--limit", "1",
						      "--client-id", "dev-b", NULL)),
		"dev-b");

	/* Table: the filter applies there too. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", "--cert", CERT_B, NULL);
	cf_test_assert_contains(fx->r.out, "status_INACTIVE");
	cf_test_assert_contains(fx->r.out, "[2001:db8::2]:40004");
	assert_null(strstr(fx->r.out, "dev-a"));
	assert_null(strstr(fx->r.out, "no_certificate"));
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* A client id is the device's text: escaped in the table, exact (and valid) in JSON. */
static void
test_cli_connections__control_characters(void **state)
{
	cf_test_fleet *fx = *state;
	cf_store_connection rec = { 0,           (int64_t)time(NULL), NULL,
				    EVIL_CLIENT, "192.0.2.9:1\r",     "no_certificate" };
	json_t *rows;

	record(fx, &rec, 1);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", NULL);
	cf_test_assert_contains(fx->r.out, "ev\\x1b[31mil\\x0ax\\x7f");
	cf_test_assert_contains(fx->r.out, "192.0.2.9:1\\x0d");
	assert_null(strchr(fx->r.out, '\x1b'));
	assert_null(strchr(fx->r.out, '\r'));
	assert_null(strchr(fx->r.out, '\x7f'));
	/* Two lines: the header and the one row, whatever the newline in the client id. */
	assert_int_equal(count_lines(fx->r.out), 2);
	rows = cf_test_certfleet_json(fx, "connections", "list", "--client-id", EVIL_CLIENT, NULL);
	assert_int_equal(json_array_size(rows), 1);
	assert_string_equal(cf_test_jstr(json_array_get(rows, 0), "clientId"), EVIL_CLIENT);
	assert_null(strchr(fx->r.out, '\x1b'));
}

/* The default limit is 100, and the table says when it cut the list. */
static void
test_cli_connections__default_limit(void **state)
{
	cf_test_fleet *fx = *state;
	cf_store_connection recs[101];
	int64_t now = (int64_t)time(NULL);
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(recs); i++) {
		cf_store_connection r = { 0,       now - 1000 + (int64_t)i, CERT_A,
					  "dev-a", "192.0.2.1:1",           "accepted" };

		recs[i] = r;
	}
	record(fx, recs, CF_ARRAY_LEN(recs));
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list", NULL)),
			 100);
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "connections", "list",
								"--limit", "1000", NULL)),
			 101);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", NULL);
	cf_test_assert_contains(fx->r.err, "the newest 100 connections");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", "--limit", "100", NULL);
	assert_string_equal(fx->r.err, "");
}

static void
test_cli_connections__usage(void **state)
{
	cf_test_fleet *fx = *state;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "list", "--help", NULL);
	cf_test_assert_contains(fx->r.out, "--client-id ID");
	cf_test_assert_contains(fx->r.out, "--since DURATION");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "connections", "--help", NULL);
	cf_test_assert_contains(fx->r.out, "list");
	/* A bare number could be seconds or days: a unit is required, as everywhere. */
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "connections", "list", "--since", "3600", NULL);
	cf_test_assert_contains(fx->r.err, "--since takes a duration");
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "connections", "list", "--limit", "0", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "connections", "list", "--status", "x", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "connections", "list", "extra", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "connections", "drop", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "connections", "list", "--cert", "abc", NULL);
	cf_test_assert_contains(fx->r.err, "8 to 64 hex digits");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cli_connections__empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_connections__json_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_connections__filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_connections__control_characters, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_connections__default_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_connections__usage, setup, teardown),
	};

	return cmocka_run_group_tests_name("cli_connections", tests, cf_test_cli_group_setup, cf_test_cli_group_teardown);
}
