/*
 * Integration: certfleet audit against a real SQLite registry made by the
 * real CLI (quickstart, openssl-made device keys): a run finds the
 * certificates about to expire, a second run has them OPEN, `cert
 * deactivate` resolves one in a third run, a suppression hides one, and
 * bad command lines change nothing.
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

#include <jansson.h>

#include "support/fleet.h"
#include "support/run.h"

#define EXPIRING "DEVICE_CERTIFICATE_EXPIRING_CHECK"

static int
setup(void **state)
{
	cf_test_fleet *fx;
	int rc = cf_test_fleet_new(&fx, "certfleet-audit", cf_test_cli());

	*state = fx;
	return rc;
}

static int
teardown(void **state)
{
	return cf_test_fleet_free(*state);
}

static const char *
device(cf_test_fleet *fx, const char *name, const char *days)
{
	cf_test_identity dev;

	cf_test_identity_new(&dev, fx, name, "/CN=device", "--days", days, NULL);
	return dev.id;
}

/* The finding of `audit findings` rows on resource, or NULL. */
static json_t *
row_for(json_t *rows, const char *resource)
{
	size_t i;
	json_t *r;

	json_array_foreach (rows, i, r)
		if (strcmp(cf_test_jstr(r, "resource"), resource) == 0)
			return r;
	return NULL;
}

static void
test_cli_audit__expiring_new_open_resolved(void **state)
{
	cf_test_fleet *fx = *state;
	char *soon1, *soon2, res1[80], res2[80];
	json_t *run, *rows, *r, *runs;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", "--quickstart", NULL);
	soon1 = strdup(device(fx, "dev-1", "10"));
	soon2 = strdup(device(fx, "dev-2", "20"));
	(void)device(fx, "dev-3", "365");
	assert_non_null(soon1);
	assert_non_null(soon2);
	snprintf(res1, sizeof(res1), "cert:%s", soon1);
	snprintf(res2, sizeof(res2), "cert:%s", soon2);

	/*
	 * First run: both NEW, the long-lived one left alone; and no notifier
	 * (LOGGING_DISABLED_CHECK: the CLI's run has none configured).
	 */
	run = cf_test_certfleet_json(fx, "audit", "run", NULL);
	assert_string_equal(cf_test_jstr(run, "status"), "COMPLETED");
	assert_int_equal(cf_test_jint(run, "findings"), 3);
	rows = cf_test_certfleet_json(fx, "audit", "findings", "--check", "LOGGING_DISABLED_CHECK",
				      NULL);
	assert_int_equal(json_array_size(rows), 1);
	assert_non_null(row_for(rows, "config:notifiers"));
	rows = cf_test_certfleet_json(fx, "audit", "findings", "--check", EXPIRING, NULL);
	assert_int_equal(json_array_size(rows), 2);
	r = row_for(rows, res1);
	assert_non_null(r);
	assert_string_equal(cf_test_jstr(r, "state"), "NEW");
	assert_string_equal(cf_test_jstr(r, "severity"), "MEDIUM");
	assert_string_equal(cf_test_jstr(r, "reason"), "CERTIFICATE_APPROACHING_EXPIRATION");
	assert_string_equal(cf_test_jstr(json_object_get(r, "detail"), "thing"), "dev-1");

	/* The table shows them too. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "audit", "findings", NULL);
	cf_test_assert_contains(fx->r.out, soon1);
	cf_test_assert_contains(fx->r.out, "NEW");

	/* Second run, one check named: OPEN. */
	run = cf_test_certfleet_json(fx, "audit", "run", "--check", EXPIRING, NULL);
	rows = cf_test_certfleet_json(fx, "audit", "findings", NULL);
	assert_int_equal(json_array_size(rows), 2);
	assert_string_equal(cf_test_jstr(row_for(rows, res1), "state"), "OPEN");

	/* Suppress dev-2's; deactivate dev-1's: the third run resolves one, hides the other. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "audit", "suppress", "--check", EXPIRING,
			  "--resource", res2, "--until", "7d", "--reason", "replacement shipped",
			  NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "deactivate", soon1, NULL);
	run = cf_test_certfleet_json(fx, "audit", "run", NULL);
	rows = cf_test_certfleet_json(fx, "audit", "findings", "--check", EXPIRING, NULL);
	assert_int_equal(json_array_size(rows), 1);
	assert_string_equal(cf_test_jstr(row_for(rows, res1), "state"), "RESOLVED");
	rows = cf_test_certfleet_json(fx, "audit", "findings", "--suppressed", NULL);
	r = row_for(rows, res2);
	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "suppressed")));
	rows = cf_test_certfleet_json(fx, "audit", "suppressions", NULL);
	assert_int_equal(json_array_size(rows), 1);

	/* Runs and one run's summary. */
	runs = cf_test_certfleet_json(fx, "audit", "list", NULL);
	assert_int_equal(json_array_size(runs), 3);
	run = cf_test_certfleet_json(fx, "audit", "describe", "1", NULL);
	assert_int_equal(cf_test_jint(json_object_get(json_object_get(run, "summary"), "byCheck"),
				      EXPIRING),
			 2);
	rows = cf_test_certfleet_json(fx, "audit", "findings", "--run", "1", "--severity",
				      "medium", NULL);
	assert_int_equal(json_array_size(rows), 3); /* the two expiring, config:notifiers */

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "audit", "unsuppress", "--check", EXPIRING,
			  "--resource", res2, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "audit", "unsuppress", "--check", EXPIRING,
			  "--resource", res2, NULL);
	free(soon1);
	free(soon2);
}

static void
test_cli_audit__bad_command_lines(void **state)
{
	cf_test_fleet *fx = *state;
	json_t *runs;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", "--quickstart", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "audit", "run", "--check", "NO_SUCH_CHECK", NULL);
	cf_test_assert_contains(fx->r.err, "NO_SUCH_CHECK");
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "audit", "suppress", "--check", EXPIRING, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "audit", "findings", "--severity", "nope", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "audit", "describe", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "audit", "describe", "99", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "audit", "findings", NULL); /* no run yet */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "audit", "run", "--help", NULL);
	cf_test_assert_contains(fx->r.out, "usage: certfleet audit run");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "audit", "checks", NULL);
	cf_test_assert_contains(fx->r.out, "ROTATION_FAILING_CHECK");
	runs = cf_test_certfleet_json(fx, "audit", "list", NULL);
	assert_int_equal(json_array_size(runs), 0);
}

/* audit mitigate: rotate an expiring certificate by its finding, once; refusals. */
static void
test_cli_audit__mitigate(void **state)
{
	cf_test_fleet *fx = *state;
	char *soon, res[80], prefix[9], ev[80];
	const char *fid;
	json_t *rows, *r, *out;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", "--quickstart", NULL);
	soon = strdup(device(fx, "dev-1", "10"));
	assert_non_null(soon);
	snprintf(res, sizeof(res), "cert:%s", soon);
	(void)cf_test_certfleet_json(fx, "audit", "run", NULL);
	rows = cf_test_certfleet_json(fx, "audit", "findings", "--check", EXPIRING, NULL);
	r = row_for(rows, res);
	assert_non_null(r);
	fid = cf_test_jstr(r, "findingId");
	snprintf(prefix, sizeof(prefix), "%.8s", fid);

	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "audit", "mitigate", prefix, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "audit", "mitigate", prefix, "--action",
			  "EXPLODE", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "audit", "mitigate", prefix, "--action",
			  "DEACTIVATE_CA_CERTIFICATE", NULL);
	cf_test_assert_contains(fx->r.err, "a ca: resource");
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "audit", "mitigate", "00000000", "--action",
			  "NOTIFY", NULL);

	out = cf_test_certfleet_json(fx, "audit", "mitigate", prefix, "--action",
				     "ROTATE_DEVICE_CERTIFICATE", "--run", "1", NULL);
	assert_int_equal(cf_test_jint(out, "changed"), 1);
	assert_int_equal(strlen(cf_test_jstr(out, "rotationId")), 32);
	rows = cf_test_certfleet_json(fx, "rotate", "list", NULL);
	assert_int_equal(json_array_size(rows), 1);
	out = cf_test_certfleet_json(fx, "audit", "mitigate", fid, "--action",
				     "ROTATE_DEVICE_CERTIFICATE", NULL);
	assert_int_equal(cf_test_jint(out, "changed"), 0);
	assert_true(json_is_true(json_object_get(out, "already")));
	rows = cf_test_certfleet_json(fx, "rotate", "list", NULL);
	assert_int_equal(json_array_size(rows), 1);

	/* Deactivate: an event naming the finding. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "audit", "mitigate", prefix, "--action",
			  "DEACTIVATE_DEVICE_CERTIFICATE", NULL);
	snprintf(ev, sizeof(ev), "audit finding %s", fid);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "list", NULL);
	cf_test_assert_contains(fx->r.out, ev);
	free(soon);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cli_audit__expiring_new_open_resolved, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_audit__bad_command_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_audit__mitigate, setup, teardown),
	};

	return cmocka_run_group_tests(tests, cf_test_cli_group_setup, cf_test_cli_group_teardown);
}
