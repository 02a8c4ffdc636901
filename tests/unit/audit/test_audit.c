/*
 * Unit tests for src/audit: every check with a case it must find and cases
 * it must leave alone, the one-pass engine (several checks, one run, the
 * summary), NEW -> OPEN -> RESOLVED across runs, suppressions, and refusals
 * before anything is written.
 */
#include "../store/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "../pki/helpers.h"
#include "audit/audit.h"

#define CA  "int-1"
#define DAY 86400LL

#define C_DEV_EXP   "DEVICE_CERTIFICATE_EXPIRING_CHECK"
#define C_CA_EXP    "CA_CERTIFICATE_EXPIRING_CHECK"
#define C_DEV_KEY   "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK"
#define C_CA_KEY    "CA_CERTIFICATE_KEY_QUALITY_CHECK"
#define C_REV_CA    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK"
#define C_INT_REV   "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK"
#define C_SHARED    "DEVICE_CERTIFICATE_SHARED_CHECK"
#define C_CONFLICT  "CONFLICTING_CLIENT_IDS_CHECK"
#define C_AGE       "DEVICE_CERTIFICATE_AGE_CHECK"
#define C_ROT       "ROTATION_FAILING_CHECK"
#define C_POLICY    "POLICY_OVERLY_PERMISSIVE_CHECK"
#define C_LOGGING   "LOGGING_DISABLED_CHECK"
#define C_REV_DEV   "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK"

/* Index of the finding on resource, or -1. */
static int
find(const struct fx_findings *g, const char *check, const char *resource)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		if (strcmp(g->check[i], check) == 0 && strcmp(g->resource[i], resource) == 0)
			return (int)i;
	return -1;
}

static const char *
cert_res(uint64_t n)
{
	static char buf[4][80];
	static int k;
	char id[65];

	k = (k + 1) % 4;
	fx_id(id, n);
	snprintf(buf[k], sizeof(buf[k]), "cert:%s", id);
	return buf[k];
}

/* Run the named checks (NULL: one check `one`) at fx->now; assert success; return the run. */
static int64_t
run1(struct fixture *fx, const cf_audit_config *cfg, const char *one, struct fx_findings *g)
{
	cf_audit_config def;
	cf_audit_summary sum;
	cf_err err = CF_ERR_INIT;
	int64_t run = 0;
	const char *names[1] = { one };

	if (cfg == NULL) {
		cf_audit_config_init(&def);
		cfg = &def;
	}
	if (cf_audit_run(&run, &sum, fx->store, cfg, CF_AUDIT_ON_DEMAND, names, one != NULL ? 1 : 0,
			 fx->now, &err) != 0)
		fail_msg("cf_audit_run: %s", err.msg);
	assert_true(run > 0);
	if (g != NULL)
		fx_findings(fx, run, g);
	return run;
}

/* The summary JSON of run (kept by the fixture until teardown). */
static const char *
run_summary(struct fixture *fx, int64_t run)
{
	static char text[2048];
	cf_store_audit_run r;
	cf_err err = CF_ERR_INIT;

	if (cf_store_audit_run_get(fx->store, &r, run, &err) != 0)
		fail_msg("run %lld: %s", (long long)run, err.msg);
	snprintf(text, sizeof(text), "%s", r.summary);
	cf_store_audit_run_clear(&r);
	return text;
}

/* A number of run's summary's eventsHead. */
static int64_t
summary_int(struct fixture *fx, int64_t run, const char *key)
{
	json_t *sum = json_loads(run_summary(fx, run), 0, NULL);
	json_t *v = json_object_get(json_object_get(sum, "eventsHead"), key);
	int64_t n;

	if (!json_is_integer(v))
		fail_msg("run %lld: no eventsHead.%s in %s", (long long)run, key,
			 run_summary(fx, run));
	n = (int64_t)json_integer_value(v);
	json_decref(sum);
	return n;
}

/* A CA with a parent and a key type of choice. */
static void
add_ca(struct fixture *fx, const char *name, const char *parent, const char *key_type,
       int64_t days)
{
	static uint64_t next = 2000000;
	cf_store_ca ca = { 0 };
	char id[65], subject[128];
	cf_err err = CF_ERR_INIT;

	fx_id(id, next++);
	snprintf(subject, sizeof(subject), "CN=%s", name);
	ca.name = (char *)(uintptr_t)name;
	ca.parent = (char *)(uintptr_t)parent;
	ca.status = CF_CA_ACTIVE;
	ca.cert_id = id;
	ca.subject = subject;
	ca.cert_pem = (char *)(uintptr_t)"-----BEGIN CERTIFICATE-----\nplaceholder\n";
	ca.key_type = (char *)(uintptr_t)key_type;
	ca.not_before = FX_T0 - DAY;
	ca.not_after = FX_T0 + days * DAY;
	if (cf_store_ca_insert(fx->store, &ca, &fx_actor, &err) != 0)
		fail_msg("ca_insert %s: %s", name, err.msg);
}

/* Insert certificate n with key facts and spki of choice. */
static void
add_cert_key(struct fixture *fx, uint64_t n, const char *thing, const char *key_type, int bits,
	     const char *sig_alg, uint64_t spki_n)
{
	struct fx_cert c;
	char spki[65];
	cf_err err = CF_ERR_INIT;

	fx_cert_init(&c, n, CA, thing, CF_CERT_ACTIVE, 200);
	fx_id(spki, spki_n);
	c.cert.key_type = (char *)(uintptr_t)key_type;
	c.cert.key_bits = bits;
	c.cert.sig_alg = (char *)(uintptr_t)sig_alg;
	c.cert.spki_sha256 = spki;
	if (cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0)
		fail_msg("cert_insert: %s", err.msg);
}

static void
device(struct fixture *fx, const char *thing, uint64_t n, cf_cert_status status, int64_t days)
{
	fx_add_thing(fx, thing);
	fx_add_cert(fx, n, CA, thing, status, days);
}

/* ---- checks ------------------------------------------------------------- */

static void
test_audit__device_expiring(void **state)
{
	struct fixture *fx = *state;
	struct fx_cert c;
	cf_err err = CF_ERR_INIT;
	struct fx_findings g;
	int i;

	fx_add_ca(fx, CA);
	device(fx, "soon", 1, CF_CERT_ACTIVE, 10);
	device(fx, "later", 2, CF_CERT_ACTIVE, 100);
	device(fx, "off", 3, CF_CERT_INACTIVE, 10);
	device(fx, "edge", 4, CF_CERT_ACTIVE, 30); /* exactly 30 days: not within */
	fx_add_thing(fx, "gone");
	fx_cert_init(&c, 5, CA, "gone", CF_CERT_ACTIVE, 10);
	c.cert.not_before = FX_T0 - 400 * DAY;
	c.cert.not_after = FX_T0 - DAY;
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 0);
	run1(fx, NULL, C_DEV_EXP, &g);
	assert_int_equal(g.n, 2);
	i = find(&g, C_DEV_EXP, cert_res(1));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_APPROACHING_EXPIRATION");
	assert_int_equal(g.severity[i], CF_SEVERITY_MEDIUM);
	assert_int_equal(g.state[i], CF_FINDING_NEW);
	assert_non_null(strstr(g.detail[i], "\"daysLeft\":10"));
	assert_non_null(strstr(g.detail[i], "\"thing\":\"soon\""));
	i = find(&g, C_DEV_EXP, cert_res(5));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_PAST_EXPIRATION");
	assert_non_null(strstr(g.detail[i], "\"daysLeft\":-1"));
	assert_int_equal(find(&g, C_DEV_EXP, cert_res(2)), -1);
	assert_int_equal(find(&g, C_DEV_EXP, cert_res(3)), -1);
	assert_int_equal(find(&g, C_DEV_EXP, cert_res(4)), -1);
}

static void
test_audit__device_expiring_parameter(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	struct fx_findings g;

	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 50);
	cf_audit_config_init(&cfg);
	run1(fx, &cfg, C_DEV_EXP, &g);
	assert_int_equal(g.n, 0);
	cfg.device_expiring_days = 60;
	run1(fx, &cfg, C_DEV_EXP, &g);
	assert_int_equal(g.n, 1);
}

static void
test_audit__ca_expiring(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	struct fx_findings g;
	int i;

	add_ca(fx, "old", NULL, "EC-P256", 60);
	add_ca(fx, "young", NULL, "EC-P256", 1000);
	add_ca(fx, "retired", NULL, "EC-P256", 10);
	assert_int_equal(cf_store_ca_set_status(fx->store, "retired", CF_CA_RETIRED, NULL,
						&fx_actor, &err),
			 0);
	run1(fx, NULL, C_CA_EXP, &g);
	assert_int_equal(g.n, 1);
	i = find(&g, C_CA_EXP, "ca:old");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_APPROACHING_EXPIRATION");
	assert_non_null(strstr(g.detail[i], "\"daysLeft\":60"));
	/* 61 days on, it has expired. */
	fx->now += 61 * DAY;
	run1(fx, NULL, C_CA_EXP, &g);
	i = find(&g, C_CA_EXP, "ca:old");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_PAST_EXPIRATION");
	assert_int_equal(find(&g, C_CA_EXP, "ca:young"), -1);
}

static void
test_audit__device_key_quality(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;
	int i;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	fx_add_thing(fx, "b");
	fx_add_thing(fx, "c");
	fx_add_thing(fx, "d");
	add_cert_key(fx, 1, "a", "RSA-1024", 1024, "sha256WithRSAEncryption", 101);
	add_cert_key(fx, 2, "a", "RSA-2048", 2048, "sha1WithRSAEncryption", 102);
	add_cert_key(fx, 3, "a", "EC-secp256k1", 256, "ecdsa-with-SHA256", 103);
	add_cert_key(fx, 4, "b", "EC-P256", 256, "ecdsa-with-SHA256", 104); /* fine */
	add_cert_key(fx, 5, "c", "RSA-2048", 2048, "sha256WithRSAEncryption", 105); /* fine */
	add_cert_key(fx, 6, "c", "EC-P256", 256, "ecdsa-with-SHA256", 200); /* shared c/d */
	add_cert_key(fx, 7, "d", "EC-P256", 256, "ecdsa-with-SHA256", 200);
	add_cert_key(fx, 8, "b", "EC-P256", 256, "ecdsa-with-SHA256", 104); /* same thing: fine */
	add_cert_key(fx, 9, "d", "ED25519", 256, "ED25519", 106); /* fine */
	run1(fx, NULL, C_DEV_KEY, &g);
	assert_int_equal(g.n, 5);
	i = find(&g, C_DEV_KEY, cert_res(1));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "WEAK_KEY");
	assert_int_equal(g.severity[i], CF_SEVERITY_CRITICAL);
	i = find(&g, C_DEV_KEY, cert_res(2));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "WEAK_SIGNATURE");
	i = find(&g, C_DEV_KEY, cert_res(3));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "WEAK_KEY");
	i = find(&g, C_DEV_KEY, cert_res(6));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "KEY_REUSE");
	assert_non_null(strstr(g.detail[i], "\"d\""));
	assert_non_null(strstr(g.detail[i], "\"c\""));
	assert_true(find(&g, C_DEV_KEY, cert_res(7)) >= 0);
	assert_int_equal(find(&g, C_DEV_KEY, cert_res(4)), -1);
	assert_int_equal(find(&g, C_DEV_KEY, cert_res(8)), -1);
	assert_int_equal(find(&g, C_DEV_KEY, cert_res(9)), -1);
}

/* Insert certificate n, an RSA-2048 key signed with SHA-256, with key_roca of choice. */
static void
add_rsa_cert(struct fixture *fx, uint64_t n, const char *thing, bool roca)
{
	struct fx_cert c;
	char spki[65];
	cf_err err = CF_ERR_INIT;

	fx_cert_init(&c, n, CA, thing, CF_CERT_ACTIVE, 200);
	fx_id(spki, 500 + n);
	c.cert.key_type = (char *)(uintptr_t)"RSA-2048";
	c.cert.key_bits = 2048;
	c.cert.sig_alg = (char *)(uintptr_t)"sha256WithRSAEncryption";
	c.cert.spki_sha256 = spki;
	c.cert.key_roca = roca;
	if (cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0)
		fail_msg("cert_insert: %s", err.msg);
}

/*
 * The registry's key_roca makes an otherwise fine RSA-2048 key WEAK_KEY;
 * the same columns without it pass, whatever order the scan meets them in
 * (the verdict cache must tell the two apart).
 */
static void
test_audit__device_key_roca(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;
	int i;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	add_rsa_cert(fx, 1, "a", false);
	add_rsa_cert(fx, 2, "a", true);
	add_rsa_cert(fx, 3, "a", false);
	run1(fx, NULL, C_DEV_KEY, &g);
	assert_int_equal(g.n, 1);
	i = find(&g, C_DEV_KEY, cert_res(2));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "WEAK_KEY");
	assert_int_equal(g.severity[i], CF_SEVERITY_CRITICAL);
	assert_non_null(strstr(g.detail[i], "ROCA"));
	assert_non_null(strstr(g.detail[i], "\"keyType\":\"RSA-2048\""));
	assert_int_equal(find(&g, C_DEV_KEY, cert_res(1)), -1);
	assert_int_equal(find(&g, C_DEV_KEY, cert_res(3)), -1);
}

static void
test_audit__ca_key_quality(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;

	add_ca(fx, "weak", NULL, "RSA-1024", 1000);
	add_ca(fx, "strong", NULL, "EC-P384", 1000);
	add_ca(fx, "rsa", NULL, "RSA-3072", 1000);
	run1(fx, NULL, C_CA_KEY, &g);
	assert_int_equal(g.n, 1);
	assert_true(find(&g, C_CA_KEY, "ca:weak") >= 0);
	assert_string_equal(g.reason[0], "WEAK_KEY");
}

static void
test_audit__revoked_ca(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	struct fx_findings g;
	int i;

	add_ca(fx, "root", NULL, "EC-P384", 3000);
	add_ca(fx, "bad", "root", "EC-P256", 1000);
	add_ca(fx, "child", "bad", "EC-P256", 1000);
	add_ca(fx, CA, "root", "EC-P256", 1000);
	fx_add_thing(fx, "a");
	fx_add_thing(fx, "b");
	fx_add_thing(fx, "c");
	fx_add_cert(fx, 1, "bad", "a", CF_CERT_ACTIVE, 100);
	fx_add_cert(fx, 2, "bad", "a", CF_CERT_INACTIVE, 100);
	fx_add_cert(fx, 3, "child", "b", CF_CERT_ACTIVE, 100);
	fx_add_cert(fx, 4, CA, "c", CF_CERT_ACTIVE, 100);
	run1(fx, NULL, C_REV_CA, &g);
	assert_int_equal(g.n, 0);
	run1(fx, NULL, C_INT_REV, &g);
	assert_int_equal(g.n, 0);
	assert_int_equal(cf_store_ca_set_status(fx->store, "bad", CF_CA_REVOKED, "keyCompromise",
						&fx_actor, &err),
			 0);
	run1(fx, NULL, C_REV_CA, &g);
	assert_int_equal(g.n, 1);
	i = find(&g, C_REV_CA, "ca:bad");
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], "\"activeCertificates\":1"));
	run1(fx, NULL, C_INT_REV, &g);
	assert_int_equal(g.n, 2);
	assert_true(find(&g, C_INT_REV, cert_res(1)) >= 0);
	i = find(&g, C_INT_REV, cert_res(3)); /* under a revoked ancestor */
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], "\"revokedCa\":\"bad\""));
	assert_int_equal(find(&g, C_INT_REV, cert_res(4)), -1);
	/* Deactivated: no longer a finding. */
	assert_int_equal(cf_store_cert_transition(fx->store, cert_res(1) + 5, CF_CERT_INACTIVE,
						  NULL, &fx_actor, &err),
			 0);
	run1(fx, NULL, C_REV_CA, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.state[0], CF_FINDING_RESOLVED);
}

static void
connect(struct fixture *fx, int64_t at, uint64_t cert, const char *client, const char *addr,
	const char *outcome)
{
	cf_store_connection rec = { 0 };
	char id[65];
	cf_err err = CF_ERR_INIT;

	fx_id(id, cert);
	rec.at = at;
	rec.cert_id = id;
	rec.client_id = client;
	rec.address = addr;
	rec.outcome = outcome;
	if (cf_store_connections_record(fx->store, &rec, 1, 0, &err) != 0)
		fail_msg("connections_record: %s", err.msg);
}

/*
 * Open a rotation (REQUESTED) for thing, replacing certificate n, into rot
 * (its id and old certificate in id and old, which must outlive it).
 */
static void
open_rotation_into(struct fixture *fx, cf_store_rotation *rot, char id[33], char old[65],
		   const char *thing, uint64_t n)
{
	cf_err err = CF_ERR_INIT;

	memset(rot, 0, sizeof(*rot));
	assert_int_equal(cf_store_rotation_id_random(id, NULL), 0);
	fx_id(old, n);
	rot->id = id;
	rot->thing = (char *)(uintptr_t)thing;
	rot->old_cert = old;
	rot->state = CF_ROTATION_REQUESTED;
	rot->rekey = true;
	rot->deadline = fx->now + DAY;
	rot->next_send_at = fx->now + 300;
	if (cf_store_rotation_insert(fx->store, rot, &fx_actor, &err) != 0)
		fail_msg("rotation_insert: %s", err.msg);
}

static void
open_rotation(struct fixture *fx, const char *thing, uint64_t n)
{
	cf_store_rotation rot;
	char id[33], old[65];

	open_rotation_into(fx, &rot, id, old, thing, n);
}

static void
test_audit__device_shared(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;
	int i;

	fx->now = FX_T0 + DAY;
	connect(fx, fx->now - 100, 1, "a", "10.0.0.1", "accepted");
	connect(fx, fx->now - 90, 1, "b", "10.0.0.2", "client_id_mismatch");
	connect(fx, fx->now - 80, 2, "c", "10.0.0.3", "accepted");
	connect(fx, fx->now - 70, 2, "c", "10.0.0.3", "accepted");
	/* One device that moved to another address: not shared. */
	connect(fx, fx->now - 60, 3, "d", "10.0.0.4", "accepted");
	connect(fx, fx->now - 50, 3, "d", "10.0.0.5", "accepted");
	connect(fx, fx->now - 2 * DAY, 4, "e", "10.0.0.6", "accepted"); /* outside the window */
	connect(fx, fx->now - 40, 4, "f", "10.0.0.6", "accepted");
	/* Two copies taking the session from each other: the addresses take turns. */
	connect(fx, fx->now - 35, 5, "g", "10.0.0.7", "accepted");
	connect(fx, fx->now - 30, 5, "g", "10.0.0.8", "accepted");
	connect(fx, fx->now - 25, 5, "g", "10.0.0.7", "accepted");
	connect(fx, fx->now - 20, 5, "g", "10.0.0.8", "accepted");
	connect(fx, fx->now - 15, 5, "g", "10.0.0.7", "accepted");
	/* One device back on its first network once (Wi-Fi, LTE, Wi-Fi): not shared. */
	connect(fx, fx->now - 35, 6, "h", "10.0.0.9", "accepted");
	connect(fx, fx->now - 30, 6, "h", "10.0.0.10", "accepted");
	connect(fx, fx->now - 25, 6, "h", "10.0.0.9", "accepted");
	run1(fx, NULL, C_SHARED, &g);
	assert_int_equal(g.n, 2);
	i = find(&g, C_SHARED, cert_res(1));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_SHARED_BY_CLIENT_IDS");
	i = find(&g, C_SHARED, cert_res(5));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_SHARED_BY_ADDRESSES");
	assert_int_equal(find(&g, C_SHARED, cert_res(2)), -1);
	assert_int_equal(find(&g, C_SHARED, cert_res(3)), -1);
	assert_int_equal(find(&g, C_SHARED, cert_res(4)), -1);
	assert_int_equal(find(&g, C_SHARED, cert_res(6)), -1);
}

static void
test_audit__conflicting_client_ids(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;
	int i;

	fx->now = FX_T0 + DAY;
	connect(fx, fx->now - 100, 1, "dev-1", "10.0.0.1", "accepted");
	connect(fx, fx->now - 90, 2, "dev-1", "10.0.0.2", "status_INACTIVE");
	connect(fx, fx->now - 80, 3, "dev-2", "10.0.0.3", "accepted");
	connect(fx, fx->now - 70, 3, "dev-2", "10.0.0.3", "accepted");
	connect(fx, fx->now - 2 * DAY, 5, "dev-3", "10.0.0.4", "accepted");
	connect(fx, fx->now - 60, 6, "dev-3", "10.0.0.4", "accepted");
	/*
	 * Certificates the registry knows. rot: rotated, old one INACTIVE, new
	 * ACTIVE: no conflict. dual: two ACTIVE of its own, no rotation: one.
	 * dual-rot: the same while a rotation is open: none. mixed: its own
	 * and another thing's: one.
	 */
	fx_add_ca(fx, CA);
	device(fx, "rot", 10, CF_CERT_INACTIVE, 100);
	fx_add_cert(fx, 11, CA, "rot", CF_CERT_ACTIVE, 400);
	device(fx, "dual", 12, CF_CERT_ACTIVE, 100);
	fx_add_cert(fx, 13, CA, "dual", CF_CERT_ACTIVE, 400);
	device(fx, "dual-rot", 14, CF_CERT_ACTIVE, 100);
	fx_add_cert(fx, 15, CA, "dual-rot", CF_CERT_ACTIVE, 400);
	open_rotation(fx, "dual-rot", 14);
	device(fx, "mixed", 16, CF_CERT_ACTIVE, 100);
	device(fx, "other", 17, CF_CERT_ACTIVE, 100);
	connect(fx, fx->now - 50, 10, "rot", "10.0.1.1", "accepted");
	connect(fx, fx->now - 40, 11, "rot", "10.0.1.1", "accepted");
	connect(fx, fx->now - 50, 12, "dual", "10.0.1.2", "accepted");
	connect(fx, fx->now - 40, 13, "dual", "10.0.1.3", "accepted");
	connect(fx, fx->now - 50, 14, "dual-rot", "10.0.1.4", "accepted");
	connect(fx, fx->now - 40, 15, "dual-rot", "10.0.1.4", "accepted");
	connect(fx, fx->now - 50, 16, "mixed", "10.0.1.5", "accepted");
	connect(fx, fx->now - 40, 17, "mixed", "10.0.1.6", "client_id_mismatch");
	run1(fx, NULL, C_CONFLICT, &g);
	assert_int_equal(g.n, 3);
	i = find(&g, C_CONFLICT, "client:dev-1");
	assert_true(i >= 0);
	assert_int_equal(g.severity[i], CF_SEVERITY_HIGH);
	assert_true(find(&g, C_CONFLICT, "client:dual") >= 0);
	assert_true(find(&g, C_CONFLICT, "client:mixed") >= 0);
	assert_int_equal(find(&g, C_CONFLICT, "client:rot"), -1);
	assert_int_equal(find(&g, C_CONFLICT, "client:dual-rot"), -1);
}

static void
test_audit__device_age(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;

	fx_add_ca(fx, CA);
	device(fx, "old", 1, CF_CERT_ACTIVE, 500);
	device(fx, "old-expiring", 2, CF_CERT_ACTIVE, 400);
	device(fx, "old-off", 3, CF_CERT_INACTIVE, 500);
	run1(fx, NULL, C_AGE, &g);
	assert_int_equal(g.n, 0); /* all issued just now */
	fx->now += 380 * DAY;
	run1(fx, NULL, C_AGE, &g);
	assert_int_equal(g.n, 1);
	assert_true(find(&g, C_AGE, cert_res(1)) >= 0);
	assert_int_equal(g.severity[0], CF_SEVERITY_LOW);
	assert_non_null(strstr(g.detail[0], "\"ageDays\":380"));
}

/* Open a rotation for thing (old certificate n) and finish it in state `to`. */
static void
rotation(struct fixture *fx, const char *thing, uint64_t n, cf_rotation_state to)
{
	cf_store_rotation rot;
	char id[33], old[65], newc[65];
	cf_err err = CF_ERR_INIT;

	fx->now += 60;
	open_rotation_into(fx, &rot, id, old, thing, n);
	rot.state = to;
	rot.error = (char *)(uintptr_t)(to == CF_ROTATION_FAILED ? "crt_err: STORAGE" : NULL);
	if (to == CF_ROTATION_COMPLETED) {
		rot.state = CF_ROTATION_ISSUED;
		fx_id(newc, n); /* any existing certificate will do */
		rot.new_cert = newc;
		assert_int_equal(cf_store_rotation_update(fx->store, &rot, CF_ROTATION_REQUESTED,
							  &fx_actor, &err),
				 0);
		rot.state = CF_ROTATION_COMPLETED;
		if (cf_store_rotation_update(fx->store, &rot, CF_ROTATION_ISSUED, &fx_actor, &err) !=
		    0)
			fail_msg("rotation_update: %s", err.msg);
		return;
	}
	if (cf_store_rotation_update(fx->store, &rot, CF_ROTATION_REQUESTED, &fx_actor, &err) != 0)
		fail_msg("rotation_update: %s", err.msg);
}

static void
test_audit__rotation_failing(void **state)
{
	struct fixture *fx = *state;
	struct fx_findings g;
	int i;

	fx_add_ca(fx, CA);
	device(fx, "bad", 1, CF_CERT_ACTIVE, 20);
	device(fx, "recovered", 2, CF_CERT_ACTIVE, 20);
	device(fx, "twice", 3, CF_CERT_ACTIVE, 20);
	rotation(fx, "bad", 1, CF_ROTATION_COMPLETED);
	rotation(fx, "bad", 1, CF_ROTATION_FAILED);
	rotation(fx, "bad", 1, CF_ROTATION_TIMED_OUT);
	rotation(fx, "bad", 1, CF_ROTATION_FAILED);
	rotation(fx, "recovered", 2, CF_ROTATION_FAILED);
	rotation(fx, "recovered", 2, CF_ROTATION_FAILED);
	rotation(fx, "recovered", 2, CF_ROTATION_FAILED);
	rotation(fx, "recovered", 2, CF_ROTATION_COMPLETED);
	rotation(fx, "twice", 3, CF_ROTATION_FAILED);
	rotation(fx, "twice", 3, CF_ROTATION_CANCELLED);
	rotation(fx, "twice", 3, CF_ROTATION_FAILED);
	run1(fx, NULL, C_ROT, &g);
	assert_int_equal(g.n, 1);
	i = find(&g, C_ROT, "thing:bad");
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], "\"failuresInARow\":3"));
}

/* ---- revocation lists ----------------------------------------------------- */

/*
 * A root CA in the registry with a real certificate (CN=name, O=certfleet)
 * for key: the CRL check verifies CRL signatures with it. *out keeps it.
 */
static void
add_real_ca(struct fixture *fx, const char *name, EVP_PKEY *key, X509 **out)
{
	cf_store_ca ca = { 0 };
	char id[CF_PKI_ID_LEN], subject[128];
	char *pem = NULL;
	size_t len = 0;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_pki_root_create(out, key, name, "certfleet", 3650, NULL), 0);
	assert_int_equal(cf_pki_cert_id(id, *out, NULL), 0);
	assert_int_equal(cf_pki_cert_to_pem(&pem, &len, *out, NULL), 0);
	snprintf(subject, sizeof(subject), "CN=%s,O=certfleet", name);
	ca.name = (char *)(uintptr_t)name;
	ca.status = CF_CA_ACTIVE;
	ca.is_root = true;
	ca.cert_id = id;
	ca.subject = subject;
	ca.cert_pem = pem;
	ca.key_type = (char *)(uintptr_t)"EC-P256";
	ca.not_before = FX_T0 - DAY;
	ca.not_after = FX_T0 + 3650 * DAY;
	if (cf_store_ca_insert(fx->store, &ca, &fx_actor, &err) != 0)
		fail_msg("ca_insert %s: %s", name, err.msg);
	free(pem);
}

/* Certificate n of ca with a serial of choice. */
static void
add_cert_serial(struct fixture *fx, uint64_t n, const char *ca, const char *thing,
		cf_cert_status status, const char *serial)
{
	struct fx_cert c;
	cf_err err = CF_ERR_INIT;

	fx_add_thing(fx, thing);
	fx_cert_init(&c, n, ca, thing, status, 200);
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	if (cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0)
		fail_msg("cert_insert %llu: %s", (unsigned long long)n, err.msg);
}

/* path in the fixture's directory (fx_teardown() removes the *.crl names it knows). */
static const char *
crl_path(struct fixture *fx, char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", fx->dir, name);
	return buf;
}

/*
 * A CRL entry names an ACTIVE certificate of the registry CA that signed
 * the CRL: CERTIFICATE_REVOKED_BY_CA with its reason. Not for an INACTIVE
 * certificate, one not on the CRL, a removeFromCRL entry, or the same
 * serial under another CA. A file that cannot be used (not a CRL, missing,
 * signed by a key the registry does not have under that name) is
 * CRL_UNUSABLE and the run goes on; a CRL past its nextUpdate is
 * CRL_EXPIRED and its entries still count.
 */
static void
test_audit__revoked_device_by_crl(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *k_ca = NULL, *k_other = NULL, *k_rogue = NULL;
	X509 *x_ca = NULL, *x_other = NULL, *x_rogue = NULL;
	X509_CRL *x_crl;
	char good[320], other[320], rogue[320], expired[320], garbage[320], missing[320], res[330];
	const char *files[6];
	const struct pki_test_revoked on_good[] = {
		{ "ff", FX_T0 - 100, 1 },  /* cert 1, ACTIVE: found */
		{ "abc", FX_T0 - 200, 1 }, /* cert 2, INACTIVE */
		{ "def", FX_T0 - 300, 1 }, /* cert 4's serial, but cert 4 is other-ca's */
		{ "99", FX_T0 - 400, 8 },  /* cert 7, removeFromCRL */
		{ "4242", FX_T0, 1 },      /* no certificate at all */
	};
	const struct pki_test_revoked on_other[] = { { "abcd", FX_T0 - 500, -1 } }; /* cert 9 */
	const struct pki_test_revoked on_rogue[] = { { "77", FX_T0 - 600, 1 } };    /* cert 6 */
	const struct pki_test_revoked on_expired[] = { { "5a", FX_T0 - 700, 4 } };  /* cert 5 */
	cf_audit_config cfg;
	cf_err err = CF_ERR_INIT;
	struct fx_findings g;
	char id[65];
	int64_t run = 0;
	int i;

	fx_require_sqlite(fx); /* the CRL files live in the fixture's directory */
	fx_add_ca(fx, CA); /* a placeholder certificate: no CRL can be its */
	assert_int_equal(cf_pki_key_generate(&k_ca, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&k_other, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&k_rogue, CF_KEY_EC_P256, NULL), 0);
	add_real_ca(fx, "crl-ca", k_ca, &x_ca);
	add_real_ca(fx, "other-ca", k_other, &x_other);
	/* Not in the registry: crl-ca's name on another key. */
	assert_int_equal(cf_pki_root_create(&x_rogue, k_rogue, "crl-ca", "certfleet", 3650, NULL),
			 0);

	add_cert_serial(fx, 1, "crl-ca", "a", CF_CERT_ACTIVE, "ff");
	add_cert_serial(fx, 2, "crl-ca", "b", CF_CERT_INACTIVE, "abc");
	add_cert_serial(fx, 3, "crl-ca", "c", CF_CERT_ACTIVE, "123");
	add_cert_serial(fx, 4, "other-ca", "d", CF_CERT_ACTIVE, "def");
	add_cert_serial(fx, 5, "crl-ca", "e", CF_CERT_ACTIVE, "5a");
	add_cert_serial(fx, 6, "crl-ca", "f", CF_CERT_ACTIVE, "77");
	add_cert_serial(fx, 7, "crl-ca", "g", CF_CERT_ACTIVE, "99");
	add_cert_serial(fx, 8, "other-ca", "h", CF_CERT_ACTIVE, "ff");
	add_cert_serial(fx, 9, "other-ca", "i", CF_CERT_ACTIVE, "abcd");

	x_crl = pki_test_crl(k_ca, x_ca, on_good, CF_ARRAY_LEN(on_good), FX_T0 - DAY,
			     FX_T0 + 7 * DAY);
	pki_test_crl_write(x_crl, crl_path(fx, good, sizeof(good), "good.crl"), false);
	X509_CRL_free(x_crl);
	x_crl = pki_test_crl(k_other, x_other, on_other, 1, FX_T0 - DAY, FX_T0 + 7 * DAY);
	pki_test_crl_write(x_crl, crl_path(fx, other, sizeof(other), "other.crl"), true);
	X509_CRL_free(x_crl);
	x_crl = pki_test_crl(k_rogue, x_rogue, on_rogue, 1, FX_T0 - DAY, FX_T0 + 7 * DAY);
	pki_test_crl_write(x_crl, crl_path(fx, rogue, sizeof(rogue), "rogue.crl"), false);
	X509_CRL_free(x_crl);
	/* nextUpdate exactly now: no longer current. */
	x_crl = pki_test_crl(k_ca, x_ca, on_expired, 1, FX_T0 - 8 * DAY, fx->now);
	pki_test_crl_write(x_crl, crl_path(fx, expired, sizeof(expired), "expired.crl"), true);
	X509_CRL_free(x_crl);
	crl_path(fx, garbage, sizeof(garbage), "garbage.crl");
	{
		FILE *f = fopen(garbage, "w");

		assert_non_null(f);
		assert_true(fputs("<html>404 Not Found</html>\n", f) >= 0);
		assert_int_equal(fclose(f), 0);
	}
	crl_path(fx, missing, sizeof(missing), "missing.crl");

	/* No CRL configured: the check has nothing to read. */
	cf_audit_config_init(&cfg);
	run1(fx, &cfg, C_REV_DEV, &g);
	assert_int_equal(g.n, 0);

	files[0] = good;
	files[1] = other;
	files[2] = rogue;
	files[3] = expired;
	files[4] = garbage;
	files[5] = missing;
	cfg.crl_files = files;
	cfg.ncrl_files = CF_ARRAY_LEN(files);
	run1(fx, &cfg, C_REV_DEV, &g);
	assert_int_equal(g.n, 7);

	i = find(&g, C_REV_DEV, cert_res(1));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_REVOKED_BY_CA");
	assert_int_equal(g.severity[i], CF_SEVERITY_CRITICAL);
	assert_int_equal(g.state[i], CF_FINDING_NEW);
	assert_non_null(strstr(g.detail[i], "\"crlReason\":\"keyCompromise\""));
	assert_non_null(strstr(g.detail[i], "\"serial\":\"ff\""));
	assert_non_null(strstr(g.detail[i], "\"ca\":\"crl-ca\""));
	assert_non_null(strstr(g.detail[i], "\"thing\":\"a\""));
	assert_non_null(strstr(g.detail[i], "\"revokedAt\":1699999900"));
	assert_non_null(strstr(g.detail[i], "good.crl"));
	/* The other CA's own CRL, DER, is matched with that CA. */
	i = find(&g, C_REV_DEV, cert_res(9));
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CERTIFICATE_REVOKED_BY_CA");
	assert_non_null(strstr(g.detail[i], "\"ca\":\"other-ca\""));
	assert_non_null(strstr(g.detail[i], "\"crlReason\":\"unspecified\""));
	/* The expired CRL: reported, and its entry still found. */
	snprintf(res, sizeof(res), "file:%s", expired);
	i = find(&g, C_REV_DEV, res);
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CRL_EXPIRED");
	assert_non_null(strstr(g.detail[i], "\"ca\":\"crl-ca\""));
	assert_non_null(strstr(g.detail[i], "\"nextUpdate\":1700000000"));
	i = find(&g, C_REV_DEV, cert_res(5));
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], "\"crlReason\":\"superseded\""));
	/* Same issuer name, another key: not crl-ca's CRL, and not a reason to revoke cert 6. */
	snprintf(res, sizeof(res), "file:%s", rogue);
	i = find(&g, C_REV_DEV, res);
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CRL_UNUSABLE");
	assert_non_null(strstr(g.detail[i], "no CA of the registry signed it"));
	assert_non_null(strstr(g.detail[i], "CN=crl-ca,O=certfleet"));
	snprintf(res, sizeof(res), "file:%s", garbage);
	i = find(&g, C_REV_DEV, res);
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CRL_UNUSABLE");
	snprintf(res, sizeof(res), "file:%s", missing);
	i = find(&g, C_REV_DEV, res);
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "CRL_UNUSABLE");
	snprintf(res, sizeof(res), "file:%s", good);
	assert_int_equal(find(&g, C_REV_DEV, res), -1);
	assert_int_equal(find(&g, C_REV_DEV, cert_res(2)), -1);
	assert_int_equal(find(&g, C_REV_DEV, cert_res(3)), -1);
	assert_int_equal(find(&g, C_REV_DEV, cert_res(4)), -1);
	assert_int_equal(find(&g, C_REV_DEV, cert_res(6)), -1);
	assert_int_equal(find(&g, C_REV_DEV, cert_res(7)), -1);
	assert_int_equal(find(&g, C_REV_DEV, cert_res(8)), -1);

	/* Cert 1 deactivated: its finding is resolved on the next run. */
	fx->now += 60;
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_INACTIVE, NULL, &fx_actor,
						  &err),
			 0);
	run1(fx, &cfg, C_REV_DEV, &g);
	i = find(&g, C_REV_DEV, cert_res(1));
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_RESOLVED);
	i = find(&g, C_REV_DEV, cert_res(9));
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_OPEN);

	/*
	 * The same CRL twice (or a certificate on two CRLs): one finding per
	 * resource, not a run failed on a duplicate.
	 */
	files[1] = good;
	files[2] = expired;
	run1(fx, &cfg, C_REV_DEV, &g);
	i = find(&g, C_REV_DEV, cert_res(9));
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_RESOLVED); /* other.crl is not read now */
	assert_true(find(&g, C_REV_DEV, cert_res(5)) >= 0);

	/* Files without the list to hold them is a configuration error. */
	cfg.crl_files = NULL;
	assert_int_equal(cf_audit_run(&run, NULL, fx->store, &cfg, CF_AUDIT_ON_DEMAND, NULL, 0,
				      fx->now, &err),
			 CF_EINVAL);

	X509_free(x_rogue);
	X509_free(x_other);
	X509_free(x_ca);
	EVP_PKEY_free(k_rogue);
	EVP_PKEY_free(k_other);
	EVP_PKEY_free(k_ca);
}

/* ---- the engine --------------------------------------------------------- */

static void
test_audit__unknown_check_writes_nothing(void **state)
{
	struct fixture *fx = *state;
	const char *names[2] = { C_DEV_EXP, "NO_SUCH_CHECK" };
	const char *twice[2] = { C_DEV_EXP, C_DEV_EXP };
	cf_audit_config cfg;
	cf_store_audit_run r;
	cf_err err = CF_ERR_INIT;
	int64_t run = 7;

	cf_audit_config_init(&cfg);
	assert_int_equal(cf_audit_run(&run, NULL, fx->store, &cfg, CF_AUDIT_ON_DEMAND, names, 2,
				      fx->now, &err),
			 CF_EINVAL);
	assert_int_equal(run, 0);
	assert_non_null(strstr(err.msg, "NO_SUCH_CHECK"));
	assert_int_equal(cf_audit_run(&run, NULL, fx->store, &cfg, CF_AUDIT_ON_DEMAND, twice, 2,
				      fx->now, &err),
			 CF_EINVAL);
	cfg.device_expiring_days = 0;
	assert_int_equal(cf_audit_run(&run, NULL, fx->store, &cfg, CF_AUDIT_ON_DEMAND, NULL, 0,
				      fx->now, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_audit_run_get(fx->store, &r, 1, &err), CF_ENOTFOUND);
	assert_null(cf_audit_check_find("NO_SUCH_CHECK"));
	assert_non_null(cf_audit_check_find(C_ROT));
	assert_int_equal(cf_audit_check_count(), 13);
	assert_non_null(cf_audit_check_find(C_POLICY));
	assert_non_null(cf_audit_check_find(C_LOGGING));
}

static void
test_audit__one_run_every_check(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	cf_audit_summary sum;
	cf_store_audit_run r;
	cf_err err = CF_ERR_INIT;
	int64_t run = 0;
	struct fx_findings g;

	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 10);
	device(fx, "b", 2, CF_CERT_ACTIVE, 100);
	fx_add_thing(fx, "w");
	add_cert_key(fx, 3, "w", "RSA-1024", 1024, "sha256WithRSAEncryption", 300);
	cf_audit_config_init(&cfg);
	cfg.notifier_configured = true; /* else LOGGING_DISABLED_CHECK finds config:notifiers */
	assert_int_equal(cf_audit_run(&run, &sum, fx->store, &cfg, CF_AUDIT_SCHEDULED, NULL, 0,
				      fx->now, &err),
			 0);
	assert_int_equal(sum.certificates, 3);
	assert_int_equal(sum.cas, 1);
	assert_int_equal(sum.findings, 2);
	assert_int_equal(sum.by_severity[CF_SEVERITY_MEDIUM], 1);
	assert_int_equal(sum.by_severity[CF_SEVERITY_CRITICAL], 1);
	assert_true(sum.ran[0] && sum.ran[9] && sum.ran[10] && sum.ran[11]);
	assert_int_equal(cf_store_audit_run_get(fx->store, &r, run, &err), 0);
	assert_int_equal(r.status, CF_AUDIT_COMPLETED);
	assert_int_equal(r.trigger, CF_AUDIT_SCHEDULED);
	assert_non_null(strstr(r.summary, "\"findings\":2"));
	assert_non_null(strstr(r.summary, "\"" C_DEV_EXP "\":1"));
	assert_non_null(strstr(r.checks, C_ROT));
	cf_store_audit_run_clear(&r);
	fx_findings(fx, run, &g);
	assert_int_equal(g.n, 2);
}

static int
count_cb(const cf_store_finding *f, void *payload)
{
	(void)f;
	(*(int64_t *)payload)++;
	return 0;
}

/* More findings than one batch: several batches, one transaction, all written. */
static void
test_audit__batches(void **state)
{
	struct fixture *fx = *state;
	cf_store_cert_new *items;
	struct fx_cert *certs;
	cf_audit_summary sum;
	cf_audit_config cfg;
	cf_err err = CF_ERR_INIT;
	const size_t n = 4500;
	const char *names[1] = { C_DEV_EXP };
	int64_t run = 0, count = 0;
	size_t i;

	fx_add_ca(fx, CA);
	items = calloc(n, sizeof(*items));
	certs = calloc(n, sizeof(*certs));
	assert_non_null(items);
	assert_non_null(certs);
	for (i = 0; i < n; i++) {
		fx_cert_init(&certs[i], 10 + i, CA, NULL, CF_CERT_ACTIVE, i % 2 == 0 ? 5 : 500);
		items[i].cert = &certs[i].cert;
	}
	assert_int_equal(cf_store_cert_insert_batch(fx->store, items, n, &fx_actor, &err), 0);
	cf_audit_config_init(&cfg);
	assert_int_equal(cf_audit_run(&run, &sum, fx->store, &cfg, CF_AUDIT_ON_DEMAND, names, 1,
				      fx->now, &err),
			 0);
	assert_int_equal(sum.findings, (int64_t)(n / 2));
	{
		cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;

		filter.run_id = run;
		assert_int_equal(cf_store_audit_finding_list(fx->store, &filter, count_cb, &count,
							     &err),
				 0);
	}
	assert_int_equal(count, (int64_t)(n / 2));
	free(items);
	free(certs);
}

static void
test_audit__new_open_resolved_and_suppressed(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	struct fx_findings g;
	int i;

	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 10);
	device(fx, "b", 2, CF_CERT_ACTIVE, 10);
	run1(fx, NULL, C_DEV_EXP, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.state[0], CF_FINDING_NEW);
	assert_int_equal(g.state[1], CF_FINDING_NEW);
	fx->now += 3600;
	assert_int_equal(cf_store_audit_suppress(fx->store, C_DEV_EXP, cert_res(2), fx->now + DAY,
						 "replacement shipped", &fx_actor, &err),
			 0);
	run1(fx, NULL, C_DEV_EXP, &g);
	assert_int_equal(g.n, 2);
	i = find(&g, C_DEV_EXP, cert_res(1));
	assert_int_equal(g.state[i], CF_FINDING_OPEN);
	assert_false(g.suppressed[i]);
	i = find(&g, C_DEV_EXP, cert_res(2));
	assert_true(g.suppressed[i]);
	/* Deactivated: RESOLVED by the next run. */
	assert_int_equal(cf_store_cert_transition(fx->store, cert_res(1) + 5, CF_CERT_INACTIVE,
						  NULL, &fx_actor, &err),
			 0);
	fx->now += 3600;
	run1(fx, NULL, C_DEV_EXP, &g);
	i = find(&g, C_DEV_EXP, cert_res(1));
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_RESOLVED);
	/* A run of another check neither opens nor resolves it. */
	run1(fx, NULL, C_AGE, &g);
	assert_int_equal(g.n, 0);
}

/* Insert policy name with document (asserts success). */
static void
add_policy(struct fixture *fx, const char *name, const char *document)
{
	cf_err err = CF_ERR_INIT;

	if (cf_store_policy_insert(fx->store, name, document, &fx_actor, &err) != 0)
		fail_msg("policy_insert %s: %s", name, err.msg);
}

/* Certificate n of a new thing (attributes may be NULL) with status and one policy. */
static void
device_with_policy(struct fixture *fx, const char *thing, const char *attributes, uint64_t n,
		   cf_cert_status status, const char *policy)
{
	struct fx_cert c;
	cf_err err = CF_ERR_INIT;
	const char *policies[1] = { policy };

	if (cf_store_thing_insert(fx->store, thing, attributes, &fx_actor, &err) != 0)
		fail_msg("thing_insert %s: %s", thing, err.msg);
	fx_cert_init(&c, n, CA, thing, status, 200);
	if (cf_store_cert_insert(fx->store, &c.cert, policies, 1, false, &fx_actor, &err) != 0)
		fail_msg("cert_insert: %s", err.msg);
}

#define ALLOW(actions, resource)                                                               \
	"{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[" actions "],"       \
	"\"resources\":[\"" resource "\"]}]}"

static void
test_audit__policy_overly_permissive(void **state)
{
	struct fixture *fx = *state;
	char *device_doc = cf_store_policy_device_document("management/topic");
	char *service_doc = cf_store_policy_service_document("management/topic");
	struct fx_findings g;
	int i;

	assert_non_null(device_doc);
	assert_non_null(service_doc);
	fx_add_ca(fx, CA);
	/* Left alone: the default device policy, a ${thing} tree, connect only, deny only. */
	add_policy(fx, "device", device_doc);
	device_with_policy(fx, "d-device", NULL, 1, CF_CERT_ACTIVE, "device");
	add_policy(fx, "own-tree", ALLOW("\"publish\", \"receive\"", "fleet/${thing}/#"));
	device_with_policy(fx, "d-own", NULL, 2, CF_CERT_ACTIVE, "own-tree");
	add_policy(fx, "connect-only", ALLOW("\"connect\"", "#"));
	device_with_policy(fx, "d-connect", NULL, 3, CF_CERT_ACTIVE, "connect-only");
	add_policy(fx, CF_AUDIT_QUARANTINE_POLICY, CF_AUDIT_QUARANTINE_DOCUMENT);
	device_with_policy(fx, "d-quarantined", NULL, 4, CF_CERT_ACTIVE,
			   CF_AUDIT_QUARANTINE_POLICY);
	/* Left alone: wide, but only on a service principal, an INACTIVE certificate, nobody. */
	add_policy(fx, "service", service_doc);
	device_with_policy(fx, "svc", "{\"role\":\"service\"}", 5, CF_CERT_ACTIVE, "service");
	add_policy(fx, "everything-inactive", ALLOW("\"*\"", "#"));
	device_with_policy(fx, "d-inactive", NULL, 6, CF_CERT_INACTIVE, "everything-inactive");
	add_policy(fx, "unattached", ALLOW("\"*\"", "#"));
	/* Found. */
	add_policy(fx, "everything", ALLOW("\"*\"", "#"));
	device_with_policy(fx, "d-all", NULL, 7, CF_CERT_ACTIVE, "everything");
	add_policy(fx, "csr-req", ALLOW("\"subscribe\", \"receive\"", "management/topic/+/csr_req"));
	device_with_policy(fx, "d-csr", NULL, 8, CF_CERT_ACTIVE, "csr-req");
	add_policy(fx, "status", ALLOW("\"publish\"", "telemetry/status"));
	device_with_policy(fx, "d-status", NULL, 9, CF_CERT_ACTIVE, "status");
	add_policy(fx, "wild-above", ALLOW("\"publish\"", "+/+/${clientid}/x"));
	device_with_policy(fx, "d-wild", NULL, 10, CF_CERT_ACTIVE, "wild-above");
	/* The service policy on a device is found too. */
	assert_int_equal(cf_store_policy_attach(fx->store, "service", cert_res(1) + 5, &fx_actor,
						NULL),
			 0);

	run1(fx, NULL, C_POLICY, &g);
	assert_int_equal(g.n, 5);
	i = find(&g, C_POLICY, "policy:everything");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "RESOURCE_WITHOUT_CLIENT_ID");
	assert_int_equal(g.severity[i], CF_SEVERITY_HIGH);
	assert_non_null(strstr(g.detail[i], "\"thing\":\"d-all\""));
	assert_non_null(strstr(g.detail[i], "\"resource\":\"#\""));
	i = find(&g, C_POLICY, "policy:csr-req");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "RESOURCE_WITHOUT_CLIENT_ID");
	assert_non_null(strstr(g.detail[i], "\"actions\":[\"subscribe\",\"receive\"]"));
	i = find(&g, C_POLICY, "policy:status");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "RESOURCE_WITHOUT_CLIENT_ID");
	i = find(&g, C_POLICY, "policy:wild-above");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "WILDCARD_ABOVE_CLIENT_ID");
	i = find(&g, C_POLICY, "policy:service");
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], cert_res(1) + 5)); /* d-device's, not svc's */
	assert_int_equal(find(&g, C_POLICY, "policy:device"), -1);
	assert_int_equal(find(&g, C_POLICY, "policy:own-tree"), -1);
	assert_int_equal(find(&g, C_POLICY, "policy:connect-only"), -1);
	assert_int_equal(find(&g, C_POLICY, "policy:" CF_AUDIT_QUARANTINE_POLICY), -1);
	assert_int_equal(find(&g, C_POLICY, "policy:everything-inactive"), -1);
	assert_int_equal(find(&g, C_POLICY, "policy:unattached"), -1);
	/* Detached from the device: RESOLVED. */
	assert_int_equal(cf_store_policy_detach(fx->store, "service", cert_res(1) + 5, &fx_actor,
						NULL),
			 0);
	fx->now += 60;
	run1(fx, NULL, C_POLICY, &g);
	i = find(&g, C_POLICY, "policy:service");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_RESOLVED);
	free(device_doc);
	free(service_doc);
}

/* Run sql on the registry file with a connection of its own, as an attacker would. */
static void
raw_sql(struct fixture *fx, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* The same with the log's guards dropped first (once per registry). */
static void
raw_tamper(struct fixture *fx, const char *sql)
{
	char buf[1024];

	snprintf(buf, sizeof(buf),
		 "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; "
		 "DROP TRIGGER event_head_no_delete; DROP TRIGGER event_head_forward_only; %s",
		 sql);
	raw_sql(fx, buf);
}

static void
test_audit__logging_disabled(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	struct fx_findings g;
	int64_t run, head;
	int i;

	fx_require_sqlite(fx);
	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 100);
	device(fx, "b", 2, CF_CERT_ACTIVE, 100);
	cf_audit_config_init(&cfg);
	assert_false(cfg.notifier_configured);
	/* No notifier (the default), the chain intact. */
	run1(fx, &cfg, C_LOGGING, &g);
	assert_int_equal(g.n, 1);
	i = find(&g, C_LOGGING, "config:notifiers");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "NO_NOTIFIER");
	assert_int_equal(g.severity[i], CF_SEVERITY_MEDIUM);
	/* A notifier, the chain intact: nothing; the head and the sweep's place are kept. */
	cfg.notifier_configured = true;
	run = run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "config:notifiers");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_RESOLVED);
	assert_int_equal(find(&g, C_LOGGING, "registry:events"), -1);
	head = summary_int(fx, run, "seq");
	assert_true(head >= 5);
	assert_int_equal(summary_int(fx, run, "sweepSeq"), 2); /* one event a run, at this size */
	/*
	 * The next run walks from that head (its event and the two new ones)
	 * and sweeps one older event on (the event it starts from, and one).
	 */
	device(fx, "c", 3, CF_CERT_ACTIVE, 100);
	run = run1(fx, &cfg, C_LOGGING, &g);
	assert_int_equal(find(&g, C_LOGGING, "registry:events"), -1);
	assert_int_equal(summary_int(fx, run, "seq"), head + 2);
	assert_int_equal(summary_int(fx, run, "checked"), 3 + 2);
	assert_int_equal(summary_int(fx, run, "sweepSeq"), 3);
	/* An old event rewritten in place, hash left alone: unseen until the sweep gets there. */
	raw_tamper(fx, "UPDATE events SET actor = 'someone-else' WHERE seq = 5");
	run = run1(fx, &cfg, C_LOGGING, &g);
	assert_int_equal(find(&g, C_LOGGING, "registry:events"), -1);
	assert_int_equal(summary_int(fx, run, "sweepSeq"), 4);
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "EVENT_CHAIN_BROKEN");
	assert_int_equal(g.state[i], CF_FINDING_NEW);
	assert_non_null(strstr(g.detail[i], "\"badSeq\":5"));
	/* It stays: the next run starts from the same, last good record. */
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_OPEN);
	/* With events_full_every 0 every run walks it all, and finds it at once. */
	cfg.events_full_every = 0;
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], "\"badSeq\":5"));
}

/* A week after the last run, the sweep covers the whole chain in one go. */
static void
test_audit__logging_sweep_by_time(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	struct fx_findings g;
	int64_t run;
	int n;

	fx_require_sqlite(fx);
	fx_add_ca(fx, CA);
	for (n = 1; n <= 20; n++) {
		char thing[16];

		snprintf(thing, sizeof(thing), "d%d", n);
		device(fx, thing, (uint64_t)n, CF_CERT_ACTIVE, 100);
	}
	cf_audit_config_init(&cfg);
	cfg.notifier_configured = true;
	run = run1(fx, &cfg, C_LOGGING, &g);
	/* A first run: a day's share of the 41 events (41 * 1/7 + 1). */
	assert_int_equal(summary_int(fx, run, "sweepSeq"), 6);
	assert_int_equal(summary_int(fx, run, "fullAt"), 0);
	fx->now += 2 * DAY;
	run = run1(fx, &cfg, C_LOGGING, &g);
	assert_int_equal(summary_int(fx, run, "sweepSeq"), 6 + 41 * 2 / 7 + 1);
	fx->now += 7 * DAY;
	run = run1(fx, &cfg, C_LOGGING, &g);
	assert_int_equal(summary_int(fx, run, "sweepSeq"), 0); /* round done, starts over */
	assert_int_equal(summary_int(fx, run, "fullAt"), fx->now);
	assert_int_equal(g.n, 0);
}

/*
 * The audit's own record edited (a forged fullAt) or removed: a finding that
 * stays (suppress it to acknowledge it). The walk goes on from the newest
 * good record, so what was hidden behind the edited one (here the log cut
 * back by one event) is not seen by the walk: the finding is the trace.
 */
static void
test_audit__logging_record_damaged(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	struct fx_findings g;
	int i;

	fx_require_sqlite(fx);
	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 100);
	device(fx, "b", 2, CF_CERT_ACTIVE, 100);
	cf_audit_config_init(&cfg);
	cfg.notifier_configured = true;
	run1(fx, &cfg, C_LOGGING, &g); /* run 1: a good record, head 5 */
	assert_int_equal(g.n, 0);
	device(fx, "c", 3, CF_CERT_ACTIVE, 100);
	run1(fx, &cfg, C_LOGGING, &g); /* run 2: head 7 */
	/* The log cut back to 6, run 2's record made unreadable to hide it. */
	raw_tamper(fx, "DELETE FROM events WHERE seq > 6; "
		       "UPDATE event_head SET seq = 6, hash = (SELECT hash FROM events WHERE seq = 6)");
	raw_sql(fx, "UPDATE audit_runs SET summary = json_set(summary, '$.eventsHead.fullAt', "
		    "-1) WHERE id = 2");
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_string_equal(g.reason[i], "EVENT_CHAIN_BROKEN");
	assert_non_null(strstr(g.detail[i], "run 2's record"));
	/* It stays, newer good records or not. */
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_OPEN);
	/* A record removed outright is the same. */
	raw_sql(fx, "UPDATE audit_runs SET summary = json_remove(summary, '$.eventsHead') "
		    "WHERE id = 1");
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_OPEN);
}

/* A walk that finds the chain broken records that, and the finding stays on later runs. */
static void
test_audit__logging_broken_stays(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	struct fx_findings g;
	int64_t run;
	int i;

	fx_require_sqlite(fx);
	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 100);
	cf_audit_config_init(&cfg);
	cfg.notifier_configured = true;
	run1(fx, &cfg, C_LOGGING, &g);
	device(fx, "b", 2, CF_CERT_ACTIVE, 100);
	/* A new event, after the verified head, altered: the walk from that head sees it. */
	raw_tamper(fx, "UPDATE events SET actor = 'someone-else' WHERE seq = (SELECT MAX(seq) "
		       "FROM events)");
	run = run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_NEW);
	assert_non_null(strstr(run_summary(fx, run), "\"broken\":true"));
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_int_equal(g.state[i], CF_FINDING_OPEN);
}

/* The newest events cut off with the head rolled back: the last verified head is gone. */
static void
test_audit__logging_truncated(void **state)
{
	struct fixture *fx = *state;
	cf_audit_config cfg;
	struct fx_findings g;
	int i;

	fx_require_sqlite(fx);
	fx_add_ca(fx, CA);
	device(fx, "a", 1, CF_CERT_ACTIVE, 100);
	device(fx, "b", 2, CF_CERT_ACTIVE, 100);
	cf_audit_config_init(&cfg);
	cfg.notifier_configured = true;
	run1(fx, &cfg, C_LOGGING, &g);
	assert_int_equal(g.n, 0);
	raw_tamper(fx, "DELETE FROM events WHERE seq > 2; "
		       "UPDATE event_head SET seq = 2, hash = (SELECT hash FROM events WHERE seq = 2)");
	run1(fx, &cfg, C_LOGGING, &g);
	i = find(&g, C_LOGGING, "registry:events");
	assert_true(i >= 0);
	assert_non_null(strstr(g.detail[i], "before the anchor"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_audit__device_expiring, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__device_expiring_parameter, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__ca_expiring, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__device_key_quality, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__device_key_roca, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__ca_key_quality, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__revoked_ca, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__revoked_device_by_crl, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__device_shared, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__conflicting_client_ids, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__device_age, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__rotation_failing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__policy_overly_permissive, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__logging_truncated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__logging_sweep_by_time, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__logging_record_damaged, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__logging_broken_stays, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__logging_disabled, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__unknown_check_writes_nothing, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__one_run_every_check, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__batches, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_audit__new_open_resolved_and_suppressed,
						fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
