/*
 * Unit tests for src/audit/actions.c: the mitigation actions over a real
 * registry (the store fixture) and a rotation engine, the refusals of an
 * action that does not fit the resource, the lookup of a finding by id and
 * the check -> actions bindings of the config.
 */
#include "../store/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "rotation/rotation.h"

#define CA  "int-1"
#define WHO "audit"

struct afx {
	struct fixture *fx;
	cf_authority *auth;
	cf_rotation_engine *eng;
};

static int
setup(void **state)
{
	struct afx *a = calloc(1, sizeof(*a));
	cf_authority_config ac;
	cf_rotation_config rc;
	cf_err err = CF_ERR_INIT;
	void *inner = NULL;

	assert_non_null(a);
	assert_int_equal(fx_setup(&inner), 0);
	a->fx = inner;
	memset(&ac, 0, sizeof(ac));
	ac.data_dir = "/nonexistent";
	ac.ca_passphrase_file = "/nonexistent/pass";
	cf_pki_profile_init(&ac.profile);
	cf_pki_key_policy_init(&ac.key_policy);
	if (cf_authority_new(&a->auth, a->fx->store, &ac, &err) != 0)
		fail_msg("authority_new: %s", err.msg);
	cf_rotation_config_init(&rc);
	rc.clock = fx_clock;
	rc.clock_payload = a->fx;
	if (cf_rotation_engine_new(&a->eng, a->fx->store, a->auth, &rc, &err) != 0)
		fail_msg("engine_new: %s", err.msg);
	fx_add_ca(a->fx, CA);
	fx_add_thing(a->fx, "dev-1");
	fx_add_thing(a->fx, "dev-2");
	fx_add_cert(a->fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 20);
	fx_add_cert(a->fx, 2, CA, "dev-1", CF_CERT_ACTIVE, 200);
	fx_add_cert(a->fx, 3, CA, "dev-2", CF_CERT_ACTIVE, 300);
	fx_add_cert(a->fx, 4, CA, NULL, CF_CERT_ACTIVE, 300);
	*state = a;
	return 0;
}

static int
teardown(void **state)
{
	struct afx *a = *state;
	void *inner = a->fx;

	cf_rotation_engine_free(a->eng);
	cf_authority_free(a->auth);
	free(a);
	return fx_teardown(&inner);
}

/* A finding by hand on resource. */
static cf_store_finding
finding(const char *check, const char *resource)
{
	cf_store_finding f;

	memset(&f, 0, sizeof(f));
	f.run_id = 7;
	f.finding_id = "0123456789abcdef0123456789abcdef";
	f.check = check;
	f.resource = resource;
	return f;
}

static void
cert_res(char out[80], uint64_t n)
{
	char id[65];

	fx_id(id, n);
	snprintf(out, 80, "cert:%s", id);
}

/* The newest event of resource was written by WHO and names the finding. */
static int
newest_cb(const cf_store_event *ev, void *payload)
{
	char *actor_and_detail = payload;

	snprintf(actor_and_detail, 600, "%s %s", ev->actor, ev->detail);
	return 1;
}

static void
assert_audit_event(struct fixture *fx, const char *resource)
{
	cf_store_event_filter filter = { resource, 0, 1, true };
	cf_err err = CF_ERR_INIT;
	char got[600] = "";

	assert_true(cf_store_events_list(fx->store, &filter, newest_cb, got, &err) >= 0);
	assert_true(strncmp(got, WHO " ", strlen(WHO) + 1) == 0);
	assert_non_null(strstr(got, "audit finding 0123456789abcdef"));
}

static void
test_audit_actions__names_parse(void **state)
{
	cf_audit_action a;

	(void)state;
	assert_int_equal(cf_audit_action_parse(&a, "QUARANTINE_THING"), 0);
	assert_int_equal(a, CF_AUDIT_QUARANTINE_THING);
	assert_string_equal(cf_audit_action_name(CF_AUDIT_NOTIFY), "NOTIFY");
	assert_int_equal(cf_audit_action_parse(&a, "rotate_device_certificate"), CF_EINVAL);
	assert_null(cf_audit_action_name(CF_AUDIT_ACTION_COUNT));
}

static size_t
index_of(const char *check)
{
	size_t i;

	for (i = 0; cf_audit_check_at(i) != NULL; i++)
		if (strcmp(cf_audit_check_at(i)->name, check) == 0)
			return i;
	fail_msg("no check %s", check);
	return 0;
}

static void
test_audit_actions__bindings(void **state)
{
	cf_audit_bindings b;
	cf_err err = CF_ERR_INIT;
	size_t exp = index_of("DEVICE_CERTIFICATE_EXPIRING_CHECK");
	size_t key = index_of("DEVICE_CERTIFICATE_KEY_QUALITY_CHECK");
	size_t i, bound = 0;

	(void)state;
	assert_int_equal(cf_audit_bindings_parse(&b, CF_AUDIT_ACTIONS_DEFAULT, &err), 0);
	assert_int_equal(b.actions[exp], 1u << CF_AUDIT_ROTATE_DEVICE_CERTIFICATE);
	for (i = 0; i < CF_AUDIT_CHECKS_MAX; i++)
		bound += b.actions[i] != 0;
	assert_int_equal(bound, 1);
	assert_int_equal(cf_audit_bindings_parse(&b,
						 " DEVICE_CERTIFICATE_KEY_QUALITY_CHECK:NOTIFY ,"
						 "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK:"
						 "REVOKE_DEVICE_CERTIFICATE ",
						 &err),
			 0);
	assert_int_equal(b.actions[key], (1u << CF_AUDIT_NOTIFY) |
						 (1u << CF_AUDIT_REVOKE_DEVICE_CERTIFICATE));
	assert_int_equal(b.actions[exp], 0);
	assert_int_equal(cf_audit_bindings_parse(&b, "none", &err), 0);
	assert_int_equal(b.actions[exp], 0);
	assert_int_equal(cf_audit_bindings_parse(&b, "NO_SUCH_CHECK:NOTIFY", &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "NO_SUCH_CHECK"));
	/* Blanks around the colon are fine; an action that fits no finding of the check is not. */
	assert_int_equal(cf_audit_bindings_parse(&b, "ROTATION_FAILING_CHECK : QUARANTINE_THING",
						 &err),
			 0);
	assert_int_equal(b.actions[index_of("ROTATION_FAILING_CHECK")],
			 1u << CF_AUDIT_QUARANTINE_THING);
	assert_int_equal(cf_audit_bindings_parse(&b, "DEVICE_CERTIFICATE_EXPIRING_CHECK:"
						     "DEACTIVATE_CA_CERTIFICATE",
						 &err),
			 CF_EINVAL);
	assert_non_null(strstr(err.msg, "cannot act on"));
	assert_int_equal(cf_audit_bindings_parse(&b, "LOGGING_DISABLED_CHECK:ROTATE_DEVICE_CERTIFICATE",
						 &err),
			 CF_EINVAL);
	assert_true(cf_audit_action_fits(CF_AUDIT_REVOKE_DEVICE_CERTIFICATE, "cert:ab"));
	assert_false(cf_audit_action_fits(CF_AUDIT_REVOKE_DEVICE_CERTIFICATE, "file:/x.crl"));
	assert_true(cf_audit_action_fits(CF_AUDIT_NOTIFY, "config:notifiers"));
	assert_int_equal(cf_audit_bindings_parse(&b, "DEVICE_CERTIFICATE_EXPIRING_CHECK:EXPLODE",
						 &err),
			 CF_EINVAL);
	assert_int_equal(cf_audit_bindings_parse(&b, "DEVICE_CERTIFICATE_EXPIRING_CHECK", &err),
			 CF_EINVAL);
}

static void
test_audit_actions__misfit_refused(void **state)
{
	struct afx *a = *state;
	cf_audit_mitigation m;
	cf_err err = CF_ERR_INIT;
	char res[80];
	cf_store_finding f;
	int64_t events = fx_count_events(a->fx, NULL);

	cert_res(res, 1);
	f = finding("DEVICE_CERTIFICATE_EXPIRING_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_DEACTIVATE_CA_CERTIFICATE, WHO, &err),
			 CF_EINVAL);
	assert_non_null(strstr(err.msg, "a ca: resource"));
	f = finding("CA_CERTIFICATE_EXPIRING_CHECK", "ca:" CA);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_REVOKE_DEVICE_CERTIFICATE, WHO, &err),
			 CF_EINVAL);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 CF_EINVAL);
	f = finding("CONFLICTING_CLIENT_IDS_CHECK", "client:dev-1");
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_QUARANTINE_THING, WHO, &err),
			 CF_EINVAL);
	/* ROTATE without an engine, and of a certificate bound to no thing. */
	cert_res(res, 1);
	f = finding("DEVICE_CERTIFICATE_EXPIRING_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 CF_EINVAL);
	cert_res(res, 4);
	f = finding("DEVICE_CERTIFICATE_EXPIRING_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 CF_EINVAL);
	assert_int_equal(fx_count_events(a->fx, NULL), events);
}

static void
test_audit_actions__deactivate_revoke_ca(void **state)
{
	struct afx *a = *state;
	cf_audit_mitigation m;
	cf_err err = CF_ERR_INIT;
	char res[80], id[65];
	cf_store_finding f;
	cf_store_ca ca;

	cert_res(res, 2);
	fx_id(id, 2);
	f = finding("DEVICE_CERTIFICATE_KEY_QUALITY_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f,
					   CF_AUDIT_DEACTIVATE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_int_equal(m.changed, 1);
	assert_int_equal(fx_status(a->fx, id), CF_CERT_INACTIVE);
	assert_audit_event(a->fx, res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f,
					   CF_AUDIT_DEACTIVATE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_true(m.already);
	assert_int_equal(m.changed, 0);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f,
					   CF_AUDIT_REVOKE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_int_equal(fx_status(a->fx, id), CF_CERT_REVOKED);

	f = finding("CA_CERTIFICATE_EXPIRING_CHECK", "ca:" CA);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f,
					   CF_AUDIT_DEACTIVATE_CA_CERTIFICATE, WHO, &err),
			 0);
	assert_int_equal(m.changed, 1);
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(cf_store_ca_get(a->fx->store, &ca, CA, &err), 0);
	assert_int_equal(ca.status, CF_CA_RETIRED);
	cf_store_ca_clear(&ca);
	assert_audit_event(a->fx, "ca:" CA);
	fx_verify_ok(a->fx);
}

static int
policy_names_cb(const cf_store_policy *p, void *payload)
{
	int *n = payload;

	if (strcmp(p->name, CF_AUDIT_QUARANTINE_POLICY) == 0)
		(*n)++;
	return 0;
}

static int
quarantined(struct afx *a, uint64_t n)
{
	cf_err err = CF_ERR_INIT;
	char id[65];
	int found = 0;

	fx_id(id, n);
	assert_true(cf_store_policy_list(a->fx->store, id, policy_names_cb, &found, &err) >= 0);
	return found;
}

static void
test_audit_actions__quarantine_thing(void **state)
{
	struct afx *a = *state;
	cf_audit_mitigation m;
	cf_err err = CF_ERR_INIT;
	cf_store_policy pol;
	char res[80];
	cf_store_finding f;

	f = finding("ROTATION_FAILING_CHECK", "thing:dev-1");
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f, CF_AUDIT_QUARANTINE_THING,
					   WHO, &err),
			 0);
	assert_int_equal(m.changed, 2);
	assert_int_equal(quarantined(a, 1), 1);
	assert_int_equal(quarantined(a, 2), 1);
	assert_int_equal(quarantined(a, 3), 0);
	memset(&pol, 0, sizeof(pol));
	assert_int_equal(cf_store_policy_get(a->fx->store, &pol, CF_AUDIT_QUARANTINE_POLICY, &err),
			 0);
	assert_non_null(strstr(pol.document, "\"deny\""));
	cf_store_policy_clear(&pol);
	/* Again: nothing more to attach. */
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f, CF_AUDIT_QUARANTINE_THING,
					   WHO, &err),
			 0);
	assert_true(m.already);
	/* Through a certificate: its thing. */
	cert_res(res, 3);
	f = finding("DEVICE_CERTIFICATE_SHARED_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, NULL, &f, CF_AUDIT_QUARANTINE_THING,
					   WHO, &err),
			 0);
	assert_int_equal(m.changed, 1);
	assert_int_equal(quarantined(a, 3), 1);
	fx_verify_ok(a->fx);
}

static void
test_audit_actions__rotate_once(void **state)
{
	struct afx *a = *state;
	cf_audit_mitigation m;
	cf_err err = CF_ERR_INIT;
	char res[80];
	cf_store_finding f;

	cert_res(res, 1);
	f = finding("DEVICE_CERTIFICATE_EXPIRING_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_int_equal(m.changed, 1);
	assert_int_equal(strlen(m.rotation_id), 32);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_true(m.already);
	assert_int_equal(m.changed, 0);
	f = finding("ROTATION_FAILING_CHECK", "thing:dev-2");
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_int_equal(m.changed, 1);
	/* NOTIFY changes nothing but the log: its event is what certfleetd sends on. */
	assert_int_equal(fx_count_events(a->fx, "finding:0123456789abcdef0123456789abcdef"), 0);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f, CF_AUDIT_NOTIFY, WHO,
					   &err),
			 0);
	assert_int_equal(m.changed, 1);
	assert_int_equal(fx_count_events(a->fx, "finding:0123456789abcdef0123456789abcdef"), 1);
	/* An expired certificate's device cannot connect: no rotation is opened for it. */
	fx_add_thing(a->fx, "dev-9");
	fx_add_cert(a->fx, 9, CA, "dev-9", CF_CERT_ACTIVE, 1);
	a->fx->now += 2 * 86400;
	cert_res(res, 9);
	f = finding("DEVICE_CERTIFICATE_EXPIRING_CHECK", res);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &f,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 CF_ESTATE);
	assert_non_null(strstr(err.msg, "expired"));
	assert_int_equal(m.changed, 0);
	fx_verify_ok(a->fx);
}

static int
first_id_cb(const cf_store_finding *f, void *payload)
{
	snprintf(payload, 33, "%s", f->finding_id);
	return 1;
}

static void
test_audit_actions__find_after_run(void **state)
{
	struct afx *a = *state;
	static const char *const checks[] = { "DEVICE_CERTIFICATE_EXPIRING_CHECK" };
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	cf_audit_config cfg;
	cf_audit_finding_ref ref;
	cf_audit_mitigation m;
	cf_err err = CF_ERR_INIT;
	char res[80], id[33] = "", prefix[9];
	int64_t run = 0;

	cf_audit_config_init(&cfg);
	if (cf_audit_run(&run, NULL, a->fx->store, &cfg, CF_AUDIT_ON_DEMAND, checks, 1,
			 a->fx->now, &err) != 0)
		fail_msg("audit run: %s", err.msg);
	assert_int_equal(cf_audit_finding_find(&ref, a->fx->store, 0, "zzzzzzzz", &err),
			 CF_EINVAL);
	assert_int_equal(cf_audit_finding_find(&ref, a->fx->store, 0, "abc", &err), CF_EINVAL);
	/* Only certificate 1 expires within 30 days. */
	filter.run_id = run;
	assert_true(cf_store_audit_finding_list(a->fx->store, &filter, first_id_cb, id, &err) >= 0);
	assert_int_equal(strlen(id), 32);
	snprintf(prefix, sizeof(prefix), "%.8s", id);
	assert_int_equal(cf_audit_finding_find(&ref, a->fx->store, 0, prefix, &err), 0);
	assert_string_equal(ref.finding.finding_id, id);
	assert_int_equal(ref.finding.run_id, run);
	cert_res(res, 1);
	assert_string_equal(ref.finding.resource, res);
	assert_string_equal(ref.finding.check, "DEVICE_CERTIFICATE_EXPIRING_CHECK");
	assert_int_equal(cf_audit_finding_find(&ref, a->fx->store, run + 1, prefix, &err),
			 CF_ENOTFOUND);
	assert_int_equal(cf_audit_finding_find(&ref, a->fx->store, run, id, &err), 0);
	assert_int_equal(cf_audit_mitigate(&m, a->fx->store, a->eng, &ref.finding,
					   CF_AUDIT_ROTATE_DEVICE_CERTIFICATE, WHO, &err),
			 0);
	assert_int_equal(m.changed, 1);
}

static void
test_audit_actions__schedule(void **state)
{
	cf_audit_schedule s;
	cf_err err = CF_ERR_INIT;
	const int64_t t = 1700000000; /* 2023-11-14 22:13:20 UTC */

	(void)state;
	assert_int_equal(cf_audit_schedule_parse(&s, "off", &err), 0);
	assert_int_equal(cf_audit_schedule_next(&s, 0, t), INT64_MAX);
	assert_int_equal(cf_audit_schedule_parse(&s, "daily", &err), 0);
	assert_int_equal(cf_audit_schedule_next(&s, 0, t), t); /* never ran: now */
	assert_int_equal(cf_audit_schedule_next(&s, t - 3600, t), t - 3600 + 86400);
	assert_int_equal(cf_audit_schedule_next(&s, t - 3 * 86400, t), t); /* missed: now, once */
	assert_int_equal(cf_audit_schedule_parse(&s, "weekly", &err), 0);
	assert_int_equal(s.interval, 7 * 86400);
	assert_int_equal(cf_audit_schedule_parse(&s, "2s", &err), 0);
	assert_int_equal(cf_audit_schedule_next(&s, t, t + 1), t + 2);
	assert_int_equal(cf_audit_schedule_parse(&s, "daily@03:30", &err), 0);
	assert_int_equal(s.at_minute, 210);
	/* Next 03:30 after 22:13 is tomorrow's. */
	assert_int_equal(cf_audit_schedule_next(&s, 0, t), 1700019000);
	assert_int_equal(cf_audit_schedule_next(&s, t - 60, t) % 86400, 210 * 60);
	assert_int_equal(cf_audit_schedule_parse(&s, "monthly", &err), 0);
	/* The 1st of the next month, 00:00 UTC: 2023-12-01, then from a 31st no drift. */
	assert_int_equal(cf_audit_schedule_next(&s, t, t), 1701388800);
	assert_int_equal(cf_audit_schedule_next(&s, 1706659200 /* 2024-01-31 */, 1706659200),
			 1706745600 /* 2024-02-01 */);
	assert_int_equal(cf_audit_schedule_next(&s, 1733011200 /* 2024-12-01 */, 1733011200),
			 1735689600 /* 2025-01-01 */);
	assert_int_equal(cf_audit_schedule_parse(&s, "366d", &err), 0);
	/* audit_checks: all, or names (blanks around them are fine). */
	{
		const char *names[CF_AUDIT_CHECKS_MAX];
		size_t n = 99;

		assert_int_equal(cf_audit_checks_parse(names, &n, "all", &err), 0);
		assert_int_equal(n, 0);
		assert_int_equal(cf_audit_checks_parse(names, &n,
						       " DEVICE_CERTIFICATE_EXPIRING_CHECK ,"
						       "LOGGING_DISABLED_CHECK",
						       &err),
				 0);
		assert_int_equal(n, 2);
		assert_string_equal(names[1], "LOGGING_DISABLED_CHECK");
		assert_int_equal(cf_audit_checks_parse(names, &n, "ALL", &err), CF_EINVAL);
		assert_int_equal(cf_audit_checks_parse(names, &n, "LOGGING_DISABLED_CHECK,", &err),
				 CF_EINVAL);
	}
	assert_int_equal(cf_audit_schedule_parse(&s, "367d", &err), CF_EINVAL);
	assert_int_equal(cf_audit_schedule_parse(&s, "153722867280912930m", &err), CF_EINVAL);
	assert_int_equal(cf_audit_schedule_parse(&s, "daily@24:00", &err), CF_EINVAL);
	assert_int_equal(cf_audit_schedule_parse(&s, "daily@3:30", &err), CF_EINVAL);
	assert_int_equal(cf_audit_schedule_parse(&s, "hourly", &err), CF_EINVAL);
	assert_int_equal(cf_audit_schedule_parse(&s, "0s", &err), CF_EINVAL);
}

static void
test_audit_actions__apply_bindings_once(void **state)
{
	struct afx *a = *state;
	static const char *const checks[] = { "DEVICE_CERTIFICATE_EXPIRING_CHECK" };
	cf_audit_config cfg;
	cf_audit_bindings b;
	cf_audit_applied ap;
	cf_err err = CF_ERR_INIT;
	int64_t run = 0, last = 0;

	/*
	 * dev-2's certificate 3 expires soon too, and service principal svc's;
	 * dev-7's has expired (its device cannot connect to be rotated).
	 */
	fx_add_cert(a->fx, 5, CA, "dev-2", CF_CERT_ACTIVE, 10);
	assert_int_equal(cf_store_thing_insert(a->fx->store, "svc", "{\"role\":\"service\"}",
					       &fx_actor, &err),
			 0);
	fx_add_cert(a->fx, 6, CA, "svc", CF_CERT_ACTIVE, 10);
	fx_add_thing(a->fx, "dev-7");
	fx_add_cert(a->fx, 7, CA, "dev-7", CF_CERT_ACTIVE, 1);
	a->fx->now += 2 * 86400;
	assert_int_equal(cf_audit_bindings_parse(&b, CF_AUDIT_ACTIONS_DEFAULT, &err), 0);
	cf_audit_config_init(&cfg);
	assert_int_equal(cf_audit_run(&run, NULL, a->fx->store, &cfg, CF_AUDIT_SCHEDULED, checks,
				      1, a->fx->now, &err),
			 0);
	assert_int_equal(cf_audit_last_scheduled(&last, a->fx->store, &err), 0);
	assert_int_equal(last, a->fx->now);
	assert_int_equal(cf_audit_apply_bindings(&ap, a->fx->store, a->eng, &b, run, WHO, NULL,
						 NULL, &err),
			 0);
	/* Only the two that can be rotated take a place, and nothing fails. */
	assert_int_equal(ap.findings, 2);
	assert_int_equal(ap.changed, 2);
	assert_int_equal(ap.skipped_service, 1);
	assert_int_equal(ap.skipped_expired, 1);
	assert_int_equal(ap.failed, 0);
	/*
	 * The next run has them OPEN: nothing is opened twice, and the two
	 * being rotated do not even take a place.
	 */
	a->fx->now += 60;
	assert_int_equal(cf_audit_run(&run, NULL, a->fx->store, &cfg, CF_AUDIT_SCHEDULED, checks,
				      1, a->fx->now, &err),
			 0);
	assert_int_equal(cf_audit_apply_bindings(&ap, a->fx->store, a->eng, &b, run, WHO, NULL,
						 NULL, &err),
			 0);
	assert_int_equal(ap.findings, 0);
	assert_int_equal(ap.skipped_service, 1);
	assert_int_equal(ap.skipped_expired, 1);
	assert_int_equal(ap.changed, 0);
	assert_int_equal(ap.failed, 0);
}

/*
 * ROTATE with NOTIFY on one check: an expired certificate and an unbound
 * one are not rotated (nothing fails), but NOTIFY still applies to them.
 */
static void
test_audit_actions__mixed_binding_skips(void **state)
{
	struct afx *a = *state;
	static const char *const checks[] = { "DEVICE_CERTIFICATE_EXPIRING_CHECK" };
	cf_audit_config cfg;
	cf_audit_bindings b;
	cf_audit_applied ap;
	cf_err err = CF_ERR_INIT;
	int64_t run = 0;

	fx_add_thing(a->fx, "dev-8");
	fx_add_cert(a->fx, 8, CA, "dev-8", CF_CERT_ACTIVE, 1);
	fx_add_cert(a->fx, 9, CA, NULL, CF_CERT_ACTIVE, 10);
	a->fx->now += 2 * 86400;
	assert_int_equal(cf_audit_bindings_parse(&b,
						 "DEVICE_CERTIFICATE_EXPIRING_CHECK:"
						 "ROTATE_DEVICE_CERTIFICATE,"
						 "DEVICE_CERTIFICATE_EXPIRING_CHECK:NOTIFY",
						 &err),
			 0);
	cf_audit_config_init(&cfg);
	assert_int_equal(cf_audit_run(&run, NULL, a->fx->store, &cfg, CF_AUDIT_SCHEDULED, checks,
				      1, a->fx->now, &err),
			 0);
	assert_int_equal(cf_audit_apply_bindings(&ap, a->fx->store, a->eng, &b, run, WHO, NULL,
						 NULL, &err),
			 0);
	assert_int_equal(ap.skipped_expired, 1);
	assert_int_equal(ap.skipped_unbound, 1);
	assert_int_equal(ap.failed, 0);
	/* Still acted on (NOTIFY), the expired and unbound ones included: one action each at least. */
	assert_true(ap.findings >= 2);
	assert_true(ap.actions >= ap.findings);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_audit_actions__names_parse),
		cmocka_unit_test(test_audit_actions__bindings),
		cmocka_unit_test_setup_teardown(test_audit_actions__misfit_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_audit_actions__deactivate_revoke_ca, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_audit_actions__quarantine_thing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_audit_actions__rotate_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_actions__mixed_binding_skips, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_audit_actions__find_after_run, setup,
						teardown),
		cmocka_unit_test(test_audit_actions__schedule),
		cmocka_unit_test_setup_teardown(test_audit_actions__apply_bindings_once, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
