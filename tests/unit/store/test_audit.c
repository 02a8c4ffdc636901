/*
 * The audits' record: runs, findings and their life (NEW, OPEN, RESOLVED)
 * across runs of the same and of different checks, suppressions and their
 * events, the checks, read-only handles, and the cost of a large run.
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHK_DEV "DEVICE_CERTIFICATE_EXPIRING_CHECK"
#define CHK_CA  "CA_CERTIFICATE_EXPIRING_CHECK"
#define CHK_KEY "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK"
#define REASON  "CERTIFICATE_APPROACHING_EXPIRATION"

/* The state of (check, resource) in g; -1 when absent. */
static int
state_of(const struct fx_findings *g, const char *check, const char *resource)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		if (strcmp(g->check[i], check) == 0 && strcmp(g->resource[i], resource) == 0)
			return (int)g->state[i];
	}
	return -1;
}

static int64_t
begin(struct fixture *fx, const char *const *checks, size_t n)
{
	cf_err err = CF_ERR_INIT;
	int64_t id = 0;

	if (cf_store_audit_run_begin(&id, fx->store, CF_AUDIT_SCHEDULED, checks, n, &err) != 0)
		fail_msg("run_begin: %s", err.msg);
	assert_true(id > 0);
	return id;
}

static void
finding_init(cf_store_finding *f, const char *check, const char *resource)
{
	memset(f, 0, sizeof(*f));
	f->check = check;
	f->resource = resource;
	f->severity = CF_SEVERITY_MEDIUM;
	f->reason = REASON;
}

/* Add one finding of check on resource to run; asserts success. */
static void
add(struct fixture *fx, int64_t run, const char *check, const char *resource)
{
	cf_store_finding f;
	cf_err err = CF_ERR_INIT;

	finding_init(&f, check, resource);
	if (cf_store_audit_findings_add(fx->store, run, &f, 1, &err) != 0)
		fail_msg("findings_add: %s", err.msg);
}

static void
finish(struct fixture *fx, int64_t run, cf_audit_status status)
{
	cf_err err = CF_ERR_INIT;

	if (cf_store_audit_run_finish(fx->store, run, status, "{\"findings\":1}", &err) != 0)
		fail_msg("run_finish: %s", err.msg);
}

static int
count_run_cb(const cf_store_audit_run *run, void *payload)
{
	(void)run;
	(*(int *)payload)++;
	return 0;
}

static int
count_runs(struct fixture *fx)
{
	int n = 0;

	assert_int_equal(cf_store_audit_run_list(fx->store, 0, count_run_cb, &n, NULL), 0);
	return n;
}

/* Three runs of one check: NEW, then OPEN, then RESOLVED; and what the run records hold. */
static void
test_store_audit__new_open_resolved(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_CA };
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	cf_store_audit_run run;
	struct fx_findings g;
	int64_t r1, r2, r3, r4, r5;
	cf_err err = CF_ERR_INIT;

	/* No completed run yet: the default list has nothing to show. */
	assert_int_equal(cf_store_audit_finding_list(fx->store, NULL, fx_findings_cb, &g, &err),
			 CF_ENOTFOUND);

	r1 = begin(fx, checks, 1);
	add(fx, r1, CHK_CA, "ca:int-1");
	add(fx, r1, CHK_CA, "ca:int-2");
	assert_int_equal(cf_store_audit_run_get(fx->store, &run, r1, &err), 0);
	assert_int_equal(run.status, CF_AUDIT_IN_PROGRESS);
	assert_int_equal(run.finished_at, 0);
	assert_int_equal(run.started_at, FX_T0);
	assert_int_equal(run.trigger, CF_AUDIT_SCHEDULED);
	assert_string_equal(run.checks, "[\"" CHK_CA "\"]");
	assert_string_equal(run.summary, "{}");
	cf_store_audit_run_clear(&run);
	fx->now += 60;
	finish(fx, r1, CF_AUDIT_COMPLETED);
	assert_int_equal(cf_store_audit_run_get(fx->store, &run, r1, &err), 0);
	assert_int_equal(run.status, CF_AUDIT_COMPLETED);
	assert_int_equal(run.finished_at, FX_T0 + 60);
	assert_string_equal(run.summary, "{\"findings\":1}");
	cf_store_audit_run_clear(&run);

	fx_findings(fx, 0, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_NEW);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-2"), CF_FINDING_NEW);
	/* The stable id: SHA-256 of check "\n" resource, 32 hex digits. */
	assert_string_equal(g.fid[0], "3bf1c88a2f2d538042c6cb664b2059a0");
	assert_string_equal(g.detail[0], "{}");
	assert_int_equal(g.severity[0], CF_SEVERITY_MEDIUM);
	assert_int_equal(g.run[0], r1);

	/* Run 2: int-1 again (OPEN), int-2 gone (RESOLVED), int-3 new. */
	fx->now += 3600;
	r2 = begin(fx, checks, 1);
	add(fx, r2, CHK_CA, "ca:int-1");
	add(fx, r2, CHK_CA, "ca:int-3");
	fx_findings(fx, r2, &g);
	assert_int_equal(g.n, 2); /* resolution waits for the run to complete */
	finish(fx, r2, CF_AUDIT_COMPLETED);
	fx_findings(fx, 0, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.run[0], r2);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_OPEN);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-2"), CF_FINDING_RESOLVED);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-3"), CF_FINDING_NEW);

	/* Run 3: nothing found; the two open ones resolve, the resolved one is not repeated. */
	r3 = begin(fx, checks, 1);
	finish(fx, r3, CF_AUDIT_COMPLETED);
	fx_findings(fx, r3, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_RESOLVED);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-3"), CF_FINDING_RESOLVED);

	/* Run 4: int-1 comes back, NEW again; run 5 finds it OPEN. */
	r4 = begin(fx, checks, 1);
	add(fx, r4, CHK_CA, "ca:int-1");
	finish(fx, r4, CF_AUDIT_COMPLETED);
	r5 = begin(fx, checks, 1);
	add(fx, r5, CHK_CA, "ca:int-1");
	finish(fx, r5, CF_AUDIT_COMPLETED);
	fx_findings(fx, r4, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_NEW);
	fx_findings(fx, r5, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_OPEN);

	/* Filters: by state, by check, by severity; unknown run. */
	memset(&g, 0, sizeof(g));
	filter.run_id = r2;
	filter.state = CF_FINDING_RESOLVED;
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.resource[0], "ca:int-2");
	memset(&g, 0, sizeof(g));
	filter.state = -1;
	filter.severity = CF_SEVERITY_CRITICAL;
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 0);
	filter.severity = -1;
	filter.check = CHK_DEV;
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 0);
	filter.check = CHK_CA;
	filter.limit = 2;
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 2);
	filter.run_id = 999;
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_audit_run_get(fx->store, &run, 999, &err), CF_ENOTFOUND);
	/* Runs newest first. */
	assert_int_equal(count_runs(fx), 5);
	/* None of this is in the event log. */
	assert_int_equal(fx_count_events(fx, NULL), 0);
	assert_int_equal(fx_verify_ok(fx), 0);
}

struct ids {
	size_t n;
	int64_t id[8];
};

static int
ids_cb(const cf_store_audit_run *run, void *payload)
{
	struct ids *ids = payload;

	assert_true(ids->n < CF_ARRAY_LEN(ids->id));
	ids->id[ids->n++] = run->id;
	return 0;
}

/* A run compares each check with the last completed run of that check, not of any check. */
static void
test_store_audit__check_subsets(void **state)
{
	struct fixture *fx = *state;
	const char *both[] = { CHK_CA, CHK_KEY };
	const char *ca_only[] = { CHK_CA };
	const char *key_only[] = { CHK_KEY };
	cf_store_finding f;
	struct ids ids;
	struct fx_findings g;
	int64_t r1, r2, r3;
	cf_err err = CF_ERR_INIT;

	r1 = begin(fx, both, 2);
	add(fx, r1, CHK_CA, "ca:int-1");
	add(fx, r1, CHK_KEY, "thing:dev-1");
	finish(fx, r1, CF_AUDIT_COMPLETED);

	/* Run 2 runs only the CA check and finds nothing: the key finding is untouched. */
	r2 = begin(fx, ca_only, 1);
	finish(fx, r2, CF_AUDIT_COMPLETED);
	fx_findings(fx, r2, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_RESOLVED);
	assert_int_equal(state_of(&g, CHK_KEY, "thing:dev-1"), -1);

	/* Run 3 runs only the key check: compared with run 1, the finding is OPEN. */
	r3 = begin(fx, key_only, 1);
	add(fx, r3, CHK_KEY, "thing:dev-1");
	/* A finding of a check the run does not run is refused, with its whole batch. */
	finding_init(&f, CHK_CA, "ca:int-1");
	assert_int_equal(cf_store_audit_findings_add(fx->store, r3, &f, 1, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "does not run"));
	finish(fx, r3, CF_AUDIT_COMPLETED);
	fx_findings(fx, r3, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(state_of(&g, CHK_KEY, "thing:dev-1"), CF_FINDING_OPEN);

	/* Runs newest first, at most limit. */
	memset(&ids, 0, sizeof(ids));
	assert_int_equal(cf_store_audit_run_list(fx->store, 2, ids_cb, &ids, &err), 0);
	assert_int_equal(ids.n, 2);
	assert_int_equal(ids.id[0], r3);
	assert_int_equal(ids.id[1], r2);
}

/* A FAILED run resolves nothing, and the next run compares with the last COMPLETED one. */
static void
test_store_audit__failed_run_resolves_nothing(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_CA };
	cf_store_audit_run run;
	struct fx_findings g;
	int64_t r1, r2, r3;
	cf_err err = CF_ERR_INIT;

	r1 = begin(fx, checks, 1);
	add(fx, r1, CHK_CA, "ca:int-1");
	finish(fx, r1, CF_AUDIT_COMPLETED);
	r2 = begin(fx, checks, 1);
	finish(fx, r2, CF_AUDIT_FAILED);
	fx_findings(fx, r2, &g);
	assert_int_equal(g.n, 0);
	assert_int_equal(cf_store_audit_run_get(fx->store, &run, r2, &err), 0);
	assert_int_equal(run.status, CF_AUDIT_FAILED);
	cf_store_audit_run_clear(&run);
	/* The latest completed run is still run 1. */
	fx_findings(fx, 0, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.run[0], r1);
	/* Run 3 compares with run 1: the finding is still OPEN, not NEW. */
	r3 = begin(fx, checks, 1);
	add(fx, r3, CHK_CA, "ca:int-1");
	finish(fx, r3, CF_AUDIT_COMPLETED);
	fx_findings(fx, r3, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_OPEN);
	/* A finished run takes no more findings and cannot finish again. */
	assert_int_equal(cf_store_audit_run_finish(fx->store, r2, CF_AUDIT_COMPLETED, NULL, &err),
			 CF_ESTATE);
	assert_int_equal(cf_store_audit_run_finish(fx->store, r3, CF_AUDIT_FAILED, NULL, &err),
			 CF_ESTATE);
	assert_int_equal(cf_store_audit_run_finish(fx->store, 999, CF_AUDIT_FAILED, NULL, &err),
			 CF_ENOTFOUND);
	{
		cf_store_finding f;

		finding_init(&f, CHK_CA, "ca:int-2");
		assert_int_equal(cf_store_audit_findings_add(fx->store, r3, &f, 1, &err),
				 CF_ESTATE);
		assert_int_equal(cf_store_audit_findings_add(fx->store, 999, &f, 1, &err),
				 CF_ENOTFOUND);
	}
	fx_findings(fx, r3, &g);
	assert_int_equal(g.n, 1);
}

struct sups {
	size_t n;
	char check[8][64];
	char resource[8][80];
	char reason[8][64];
	char by[8][64];
	int64_t expires_at[8];
	bool expired[8];
};

static int
sups_cb(const cf_store_audit_suppression *s, void *payload)
{
	struct sups *sp = payload;

	assert_true(sp->n < CF_ARRAY_LEN(sp->check));
	snprintf(sp->check[sp->n], sizeof(sp->check[0]), "%s", s->check);
	snprintf(sp->resource[sp->n], sizeof(sp->resource[0]), "%s", s->resource);
	snprintf(sp->reason[sp->n], sizeof(sp->reason[0]), "%s", s->reason);
	snprintf(sp->by[sp->n], sizeof(sp->by[0]), "%s", s->created_by);
	sp->expires_at[sp->n] = s->expires_at;
	sp->expired[sp->n] = s->expired;
	sp->n++;
	return 0;
}

static void
suppressions(struct fixture *fx, struct sups *sp)
{
	memset(sp, 0, sizeof(*sp));
	assert_int_equal(cf_store_audit_suppression_list(fx->store, sups_cb, sp, NULL), 0);
}

/*
 * A suppression marks the findings of runs started before it expires,
 * which the default list leaves out; creating and removing it are events,
 * and the log still verifies.
 */
static void
test_store_audit__suppressions(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_CA };
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	const char *res = "suppression:" CHK_CA ":ca:int-1";
	char action[64];
	struct sups sp;
	struct fx_findings g;
	char *detail;
	int64_t r1, r2;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", FX_T0 + 100,
						 "rotating next week", &fx_actor, &err),
			 0);
	assert_int_equal(fx_count_events(fx, res), 1);
	detail = fx_last_detail(fx, res, action);
	assert_string_equal(action, "audit.suppressed");
	assert_non_null(strstr(detail, "\"expires_at\":\"1700000100\""));
	assert_non_null(strstr(detail, "\"reason\":\"rotating next week\""));
	free(detail);
	suppressions(fx, &sp);
	assert_int_equal(sp.n, 1);
	assert_string_equal(sp.check[0], CHK_CA);
	assert_string_equal(sp.resource[0], "ca:int-1");
	assert_string_equal(sp.by[0], fx_actor.who);
	assert_false(sp.expired[0]);

	r1 = begin(fx, checks, 1);
	add(fx, r1, CHK_CA, "ca:int-1");
	add(fx, r1, CHK_CA, "ca:int-2");
	finish(fx, r1, CF_AUDIT_COMPLETED);
	fx_findings(fx, r1, &g);
	assert_int_equal(g.n, 2);
	assert_true(g.suppressed[0]);
	assert_false(g.suppressed[1]);
	/* The default list leaves suppressed findings out. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.resource[0], "ca:int-2");

	/* Expired: listed and flagged, no longer applied. The state goes on regardless. */
	fx->now = FX_T0 + 100;
	suppressions(fx, &sp);
	assert_int_equal(sp.n, 1);
	assert_true(sp.expired[0]);
	r2 = begin(fx, checks, 1);
	add(fx, r2, CHK_CA, "ca:int-1");
	finish(fx, r2, CF_AUDIT_COMPLETED);
	fx_findings(fx, r2, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-1"), CF_FINDING_OPEN);
	assert_int_equal(state_of(&g, CHK_CA, "ca:int-2"), CF_FINDING_RESOLVED);
	assert_false(g.suppressed[0]);

	/* An expiry not in the future is refused; a new one replaces the old. */
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", fx->now, "late",
						 &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", fx->now + 10,
						 "again", &fx_actor, &err),
			 0);
	suppressions(fx, &sp);
	assert_int_equal(sp.n, 1);
	assert_string_equal(sp.reason[0], "again");
	assert_false(sp.expired[0]);
	assert_int_equal(fx_count_events(fx, res), 2);

	/* Removal: an event; a second removal finds nothing and writes nothing. */
	assert_int_equal(cf_store_audit_unsuppress(fx->store, CHK_CA, "ca:int-1", &fx_actor, &err),
			 0);
	detail = fx_last_detail(fx, res, action);
	assert_string_equal(action, "audit.unsuppressed");
	free(detail);
	assert_int_equal(cf_store_audit_unsuppress(fx->store, CHK_CA, "ca:int-1", &fx_actor, &err),
			 CF_ENOTFOUND);
	suppressions(fx, &sp);
	assert_int_equal(sp.n, 0);
	assert_int_equal(fx_count_events(fx, res), 3);
	assert_int_equal(fx_count_events(fx, NULL), 3);
	assert_int_equal(fx_verify_ok(fx), 3);
}

/* A suppression on a certificate's resource does not disturb the certificate replay of verify. */
static void
test_store_audit__suppression_on_cert_verifies(void **state)
{
	struct fixture *fx = *state;
	char id[65], res[80];
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, "int-1");
	fx_add_thing(fx, "dev-1");
	fx_add_cert(fx, 1, "int-1", "dev-1", CF_CERT_ACTIVE, 30);
	fx_id(id, 1);
	snprintf(res, sizeof(res), "cert:%s", id);
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_KEY, res, FX_T0 + 86400,
						 "legacy key, replaced in Q3", &fx_actor, &err),
			 0);
	assert_int_equal(fx_count_events(fx, res), 1); /* the certificate's own event only */
	assert_int_equal(fx_verify_ok(fx), 4);
	assert_int_equal(cf_store_audit_unsuppress(fx->store, CHK_KEY, res, &fx_actor, &err), 0);
	assert_int_equal(fx_verify_ok(fx), 5);
}

/* Every bad input is refused with CF_EINVAL, and nothing is written. */
static void
test_store_audit__invalid_refused(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_CA };
	const char *lower[] = { "ca_check" };
	const char *twice[] = { CHK_CA, CHK_CA };
	const char *null_one[] = { NULL };
	cf_store_actor nobody = { "", NULL };
	cf_store_finding f[3];
	struct sups sp;
	struct fx_findings g;
	char longtok[CF_STORE_AUDIT_TOKEN_MAX + 2];
	int64_t run = 7;
	cf_err err = CF_ERR_INIT;

	/* Runs. */
	assert_int_equal(
		cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_SCHEDULED, checks, 0, &err),
		CF_EINVAL);
	assert_int_equal(run, 0);
	assert_int_equal(
		cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_SCHEDULED, NULL, 1, &err),
		CF_EINVAL);
	assert_int_equal(
		cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_SCHEDULED, lower, 1, &err),
		CF_EINVAL);
	assert_int_equal(
		cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_SCHEDULED, twice, 2, &err),
		CF_EINVAL);
	assert_int_equal(
		cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_SCHEDULED, null_one, 1, &err),
		CF_EINVAL);
	assert_int_equal(
		cf_store_audit_run_begin(&run, fx->store, (cf_audit_trigger)7, checks, 1, &err),
		CF_EINVAL);
	memset(longtok, 'A', sizeof(longtok) - 1);
	longtok[sizeof(longtok) - 1] = '\0';
	{
		const char *too_long[] = { longtok };

		assert_int_equal(cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_SCHEDULED,
							  too_long, 1, &err),
				 CF_EINVAL);
	}
	assert_int_equal(
		cf_store_audit_run_begin(NULL, fx->store, CF_AUDIT_SCHEDULED, checks, 1, &err),
		CF_EINVAL);
	assert_int_equal(count_runs(fx), 0);

	/* Findings: a batch with one bad item writes nothing, and err names the item. */
	run = begin(fx, checks, 1);
	finding_init(&f[0], CHK_CA, "ca:int-1");
	finding_init(&f[1], CHK_CA, "ca:int-2");
	finding_init(&f[2], CHK_CA, "ca:int-3");
	f[2].resource = "ca:";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "finding 2"));
	f[2].resource = "cert:ABC";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].resource = "device:x";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].resource = "client:a\nb";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].resource = "ca:int-3";
	f[2].severity = (cf_audit_severity)9;
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].severity = CF_SEVERITY_LOW;
	f[2].reason = "approaching";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].reason = REASON;
	f[2].detail = "[1]";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].detail = "{\"days\":";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	f[2].check = "lower_case";
	f[2].detail = NULL;
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	/* The same finding twice in a batch: refused by the store, the batch undone. */
	f[2] = f[0];
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "given twice"));
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, NULL, 1, &err), CF_EINVAL);
	assert_int_equal(cf_store_audit_findings_add(fx->store, 0, f, 1, &err), CF_EINVAL);
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 0, &err), 0);
	fx_findings(fx, run, &g);
	assert_int_equal(g.n, 0);
	/* And the good batch goes in; a finding given again in a later batch is refused. */
	f[2].resource = "client:dev 1";
	f[2].detail = "{\"days\":12}";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 3, &err), 0);
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, f, 1, &err), CF_EINVAL);
	fx_findings(fx, run, &g);
	assert_int_equal(g.n, 3);

	/* Finishing. */
	assert_int_equal(
		cf_store_audit_run_finish(fx->store, run, CF_AUDIT_IN_PROGRESS, NULL, &err),
		CF_EINVAL);
	assert_int_equal(cf_store_audit_run_finish(fx->store, run, CF_AUDIT_COMPLETED, "[]", &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_run_finish(fx->store, 0, CF_AUDIT_COMPLETED, NULL, &err),
			 CF_EINVAL);
	{
		cf_store_audit_run r;

		assert_int_equal(cf_store_audit_run_get(fx->store, &r, run, &err), 0);
		assert_int_equal(r.status, CF_AUDIT_IN_PROGRESS);
		cf_store_audit_run_clear(&r);
	}

	/* Suppressions. */
	assert_int_equal(cf_store_audit_suppress(fx->store, "bad", "ca:int-1", FX_T0 + 10, "r",
						 &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(
		cf_store_audit_suppress(fx->store, CHK_CA, "ca", FX_T0 + 10, "r", &fx_actor, &err),
		CF_EINVAL);
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", FX_T0 + 10, "",
						 &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", FX_T0 + 10, NULL,
						 &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", FX_T0 - 1, "r",
						 &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", FX_T0 + 10, "r",
						 &nobody, &err),
			 CF_EINVAL);
	assert_int_equal(
		cf_store_audit_suppress(fx->store, CHK_CA, "ca:int-1", FX_T0 + 10, "r", NULL, &err),
		CF_EINVAL);
	assert_int_equal(cf_store_audit_unsuppress(fx->store, CHK_CA, "nope", &fx_actor, &err),
			 CF_EINVAL);
	suppressions(fx, &sp);
	assert_int_equal(sp.n, 0);
	assert_int_equal(fx_count_events(fx, NULL), 0);

	/* Lists. */
	{
		cf_store_finding_filter bad = CF_STORE_FINDING_FILTER_INIT;

		bad.severity = 4;
		assert_int_equal(cf_store_audit_finding_list(fx->store, &bad, fx_findings_cb, &g, &err),
				 CF_EINVAL);
		bad.severity = -1;
		bad.state = 3;
		assert_int_equal(cf_store_audit_finding_list(fx->store, &bad, fx_findings_cb, &g, &err),
				 CF_EINVAL);
		bad.state = -1;
		bad.check = "x";
		assert_int_equal(cf_store_audit_finding_list(fx->store, &bad, fx_findings_cb, &g, &err),
				 CF_EINVAL);
		bad.check = NULL;
		bad.run_id = -1;
		assert_int_equal(cf_store_audit_finding_list(fx->store, &bad, fx_findings_cb, &g, &err),
				 CF_EINVAL);
	}
	assert_int_equal(cf_store_audit_run_list(fx->store, -1, count_run_cb, &sp.n, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_finding_list(fx->store, NULL, NULL, NULL, &err), CF_EINVAL);
	assert_int_equal(cf_store_audit_suppression_list(fx->store, NULL, NULL, &err), CF_EINVAL);
}

/* A read-only handle reads the audits and changes nothing. */
static void
test_store_audit__readonly_refused(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_CA };
	cf_store_finding f;
	cf_store *ro = NULL;
	struct fx_findings g;
	int64_t run, id = 0;
	int n = 0;
	cf_err err = CF_ERR_INIT;

	run = begin(fx, checks, 1);
	add(fx, run, CHK_CA, "ca:int-1");
	assert_int_equal(cf_store_open_readonly(&ro, fx->uri, &err), 0);
	finding_init(&f, CHK_CA, "ca:int-2");
	assert_int_equal(cf_store_audit_run_begin(&id, ro, CF_AUDIT_ON_DEMAND, checks, 1, &err),
			 CF_ESTATE);
	assert_int_equal(cf_store_audit_findings_add(ro, run, &f, 1, &err), CF_ESTATE);
	assert_int_equal(cf_store_audit_run_finish(ro, run, CF_AUDIT_COMPLETED, NULL, &err),
			 CF_ESTATE);
	assert_int_equal(
		cf_store_audit_suppress(ro, CHK_CA, "ca:int-1", FX_T0 + 10, "r", &fx_actor, &err),
		CF_ESTATE);
	assert_int_equal(cf_store_audit_unsuppress(ro, CHK_CA, "ca:int-1", &fx_actor, &err),
			 CF_ESTATE);
	assert_int_equal(cf_store_audit_run_list(ro, 0, count_run_cb, &n, &err), 0);
	assert_int_equal(n, 1);
	{
		cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;

		memset(&g, 0, sizeof(g));
		filter.run_id = run;
		assert_int_equal(cf_store_audit_finding_list(ro, &filter, fx_findings_cb, &g, &err), 0);
		assert_int_equal(g.n, 1);
	}
	cf_store_close(ro);
	finish(fx, run, CF_AUDIT_COMPLETED);
	fx_findings(fx, 0, &g);
	assert_int_equal(g.n, 1);
}

/* In the caller's transaction: a rollback takes the findings away with everything else. */
static void
test_store_audit__in_caller_tx(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_CA };
	struct fx_findings g;
	int64_t run;
	cf_err err = CF_ERR_INIT;

	run = begin(fx, checks, 1);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	add(fx, run, CHK_CA, "ca:int-1");
	fx_findings(fx, run, &g); /* reads see the transaction's own rows */
	assert_int_equal(g.n, 1);
	cf_store_tx_rollback(fx->store);
	fx_findings(fx, run, &g);
	assert_int_equal(g.n, 0);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	add(fx, run, CHK_CA, "ca:int-1");
	finish(fx, run, CF_AUDIT_COMPLETED);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	fx_findings(fx, 0, &g);
	assert_int_equal(g.n, 1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define BIG 100000

/* One run's findings for BIG certificates (resources and details kept in one buffer). */
struct big {
	cf_store_finding f[BIG];
	char res[BIG][70];
};

static double
big_run(struct fixture *fx, struct big *b, const char *const *checks, int64_t *run_out)
{
	cf_err err = CF_ERR_INIT;
	double t0, t1;
	int64_t run;

	run = begin(fx, checks, 2);
	t0 = now_s();
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	if (cf_store_audit_findings_add(fx->store, run, b->f, BIG, &err) != 0)
		fail_msg("findings_add: %s", err.msg);
	print_message("audit: %d findings added in %.3f s\n", BIG, now_s() - t0);
	if (cf_store_audit_run_finish(fx->store, run, CF_AUDIT_COMPLETED, NULL, &err) != 0)
		fail_msg("run_finish: %s", err.msg);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	t1 = now_s();
	*run_out = run;
	return t1 - t0;
}

/*
 * 100,000 findings in one transaction, twice: the first run writes them
 * NEW, the second finds each in the first (OPEN). The time is printed; the
 * bound asserted is loose, for sanitizer builds.
 */
static void
test_store_audit__batch_100k(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { CHK_DEV, CHK_KEY };
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	struct big *b;
	struct fx_findings g;
	char id[65];
	double first, second;
	int64_t r1, r2;
	size_t i;
	cf_err err = CF_ERR_INIT;

	b = calloc(1, sizeof(*b));
	assert_non_null(b);
	for (i = 0; i < BIG; i++) {
		fx_id(id, i + 1);
		snprintf(b->res[i], sizeof(b->res[0]), "cert:%s", id);
		finding_init(&b->f[i], i % 10 == 0 ? CHK_KEY : CHK_DEV, b->res[i]);
		b->f[i].detail = "{\"days_left\":12}";
	}
	first = big_run(fx, b, checks, &r1);
	fx->now += 86400;
	second = big_run(fx, b, checks, &r2);
	print_message("audit: %d findings, added, resolved and committed in one transaction: "
		      "%.3f s (all NEW), %.3f s (all OPEN)\n",
		      BIG, first, second);
	assert_true(first < 10.0 && second < 10.0);
	/* Spot checks through the indexes. */
	memset(&g, 0, sizeof(g));
	filter.run_id = r2;
	filter.check = CHK_KEY;
	filter.state = CF_FINDING_OPEN;
	filter.limit = 5;
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 5);
	filter.state = CF_FINDING_NEW;
	memset(&g, 0, sizeof(g));
	assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, &g, &err), 0);
	assert_int_equal(g.n, 0);
	free(b);
}

int
test_audit_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_audit__new_open_resolved, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__check_subsets, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__failed_run_resolves_nothing,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__suppressions, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__suppression_on_cert_verifies,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__invalid_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__readonly_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__in_caller_tx, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_audit__batch_100k, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
