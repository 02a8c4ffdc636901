/*
 * test_sim: certfleet-sim's command lines, fault selection, reports and
 * provisioning (into a data dir made by `certfleet init --quickstart`, then
 * opened with cf_agent_open()). No broker: the event loop is exercised by
 * the end-to-end tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sim.h"
#include "support/run.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A writable copy of an argument list (getopt wants char **). */
static char **
argv_dup(const char *const *v, int n)
{
	char **a = calloc((size_t)n + 1, sizeof(*a));
	int i;

	assert_non_null(a);
	for (i = 0; i < n; i++) {
		a[i] = strdup(v[i]);
		assert_non_null(a[i]);
	}
	return a;
}

static void
argv_free(char **a, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

/* The parsed options point into argv: the copies live until copies_free(). */
static struct {
	char **argv;
	int argc;
} copies[16];
static size_t ncopies;

static char **
keep(const char *const *v, int n)
{
	assert_true(ncopies < CF_ARRAY_LEN(copies));
	copies[ncopies].argv = argv_dup(v, n);
	copies[ncopies].argc = n;
	return copies[ncopies++].argv;
}

static void
copies_free(void)
{
	while (ncopies > 0) {
		ncopies--;
		argv_free(copies[ncopies].argv, copies[ncopies].argc);
	}
}

static int
parse_provision(sim_provision_opts *o, const char *const *v, int n, cf_err *err)
{
	return sim_provision_opts_parse(o, n, keep(v, n), err);
}

static int
parse_run(sim_run_opts *o, const char *const *v, int n, cf_err *err)
{
	return sim_run_opts_parse(o, n, keep(v, n), err);
}

/* ---- durations and fractions ---------------------------------------------------- */

static void
test_sim_options__durations(void **state)
{
	static const char *const bad[] = { "",
					   "10",
					   "-5s",
					   "5x",
					   "0s",
					   "ms",
					   "0ms",
					   "5 s",
					   "5s5",
					   "1.5s",
					   "99999999999999999999d" };
	int64_t ms;
	size_t i;

	(void)state;
	assert_int_equal(sim_duration_parse_ms(&ms, "500ms"), CF_OK);
	assert_int_equal(ms, 500);
	assert_int_equal(sim_duration_parse_ms(&ms, "30s"), CF_OK);
	assert_int_equal(ms, 30000);
	assert_int_equal(sim_duration_parse_ms(&ms, "5m"), CF_OK);
	assert_int_equal(ms, 300000);
	assert_int_equal(sim_duration_parse_ms(&ms, "2h"), CF_OK);
	assert_int_equal(ms, 7200000);
	for (i = 0; i < CF_ARRAY_LEN(bad); i++)
		assert_int_equal(sim_duration_parse_ms(&ms, bad[i]), CF_EINVAL);
	assert_int_equal(sim_duration_parse_ms(&ms, NULL), CF_EINVAL);
}

static void
test_sim_options__fractions(void **state)
{
	static const char *const bad[] = { "",     "-0.1", "1.5", "101%", "abc",
					   "0.1x", "nan",  "inf", "%" };
	double f;
	size_t i;

	(void)state;
	assert_int_equal(sim_fraction_parse(&f, "0.25"), CF_OK);
	assert_true(f == 0.25);
	assert_int_equal(sim_fraction_parse(&f, "10%"), CF_OK);
	assert_true(f > 0.0999 && f < 0.1001);
	assert_int_equal(sim_fraction_parse(&f, "1"), CF_OK);
	assert_true(f == 1.0);
	assert_int_equal(sim_fraction_parse(&f, "0"), CF_OK);
	assert_true(f == 0.0);
	for (i = 0; i < CF_ARRAY_LEN(bad); i++)
		assert_int_equal(sim_fraction_parse(&f, bad[i]), CF_EINVAL);
}

/* ---- command lines ----------------------------------------------------------------- */

static void
test_sim_options__provision(void **state)
{
	const char *const ok[] = { "provision", "--data-dir", "d",    "--state-dir",
				   "s",         "--devices",  "10",   "--expires-in",
				   "2w",        "--prefix",   "dev-", "--skip-existing" };
	const char *const missing[] = { "provision", "--data-dir", "d", "--devices", "10" };
	const char *const hours[] = { "provision", "--data-dir", "d", "--state-dir",
				      "s",         "--devices",  "1", "--expires-in",
				      "36h" };
	const char *const zero[] = { "provision", "--data-dir", "d", "--state-dir",
				     "s",         "--devices",  "0" };
	const char *const unknown[] = { "provision", "--data-dir", "d", "--state-dir",
					"s",         "--devices",  "1", "--bogus" };
	const char *const help[] = { "provision", "--help" };
	sim_provision_opts o;
	cf_err err = CF_ERR_INIT;

	(void)state;
	assert_int_equal(parse_provision(&o, ok, ARGC(ok), &err), CF_OK);
	assert_string_equal(o.data_dir, "d");
	assert_string_equal(o.state_dir, "s");
	assert_string_equal(o.prefix, "dev-");
	assert_int_equal(o.devices, 10);
	assert_int_equal(o.days, 14);
	assert_true(o.skip_existing);
	assert_int_equal(parse_provision(&o, missing, ARGC(missing), &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "--state-dir"));
	assert_int_equal(parse_provision(&o, hours, ARGC(hours), &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "whole days"));
	assert_int_equal(parse_provision(&o, zero, ARGC(zero), &err), CF_EINVAL);
	assert_int_equal(parse_provision(&o, unknown, ARGC(unknown), &err), CF_EINVAL);
	assert_int_equal(parse_provision(&o, help, ARGC(help), &err), 1);
	copies_free();
}

static void
test_sim_options__run(void **state)
{
	const char *const ok[] = { "run",
				   "--state-dir",
				   "s",
				   "--host",
				   "127.0.0.1",
				   "--port",
				   "8883",
				   "--ca-file",
				   "b.pem",
				   "--devices",
				   "200",
				   "--fault",
				   "bad_csr=0.1",
				   "--fault",
				   "offline=30s@sim-00001,sim-00002",
				   "--until-rotated",
				   "150",
				   "--timeout",
				   "5m",
				   "--summary",
				   "out.json",
				   "--progress" };
	sim_run_opts o;
	cf_err err = CF_ERR_INIT;

	(void)state;
	assert_int_equal(parse_run(&o, ok, ARGC(ok), &err), CF_OK);
	assert_string_equal(o.state_dir, "s");
	assert_string_equal(o.host, "127.0.0.1");
	assert_int_equal(o.port, 8883);
	assert_string_equal(o.ca_file, "b.pem");
	assert_int_equal(o.devices, 200);
	assert_int_equal(o.nfaults, 2);
	assert_int_equal(o.faults[0].kind, SIM_FAULT_BAD_CSR);
	assert_true(o.faults[0].fraction > 0.0999 && o.faults[0].fraction < 0.1001);
	assert_int_equal(o.faults[1].kind, SIM_FAULT_OFFLINE);
	assert_int_equal(o.faults[1].offline_ms, 30000);
	assert_int_equal(o.faults[1].nnames, 2);
	assert_int_equal(o.until_rotated, 150);
	assert_int_equal(o.timeout_ms, 300000);
	assert_string_equal(o.summary_path, "out.json");
	assert_true(o.progress);
	assert_int_equal(o.duration_ms, 0);
	assert_string_equal(o.topic_prefix, CF_AGENT_DEFAULT_PREFIX);
	sim_run_opts_clear(&o);
	copies_free();
}

static void
test_sim_options__run_errors(void **state)
{
	const char *const both[] = { "run", "--state-dir",     "s", "--host",
				     "h",   "--port",          "1", "--ca-file",
				     "b",   "--until-rotated", "5", "--duration",
				     "10s" };
	const char *const noport[] = { "run", "--state-dir", "s", "--host", "h", "--ca-file", "b" };
	const char *const badport[] = { "run",    "--state-dir", "s",         "--host", "h",
					"--port", "70000",       "--ca-file", "b" };
	const char *const baddur[] = { "run", "--state-dir", "s", "--host",    "h", "--port",
				       "1",   "--ca-file",   "b", "--timeout", "10" };
	const char *const toomuch[] = { "run",         "--state-dir", "s",           "--host",
					"h",           "--port",      "1",           "--ca-file",
					"b",           "--fault",     "bad_csr=0.6", "--fault",
					"weak_csr=50%" };
	const char *const badfault[] = { "run", "--state-dir", "s", "--host",  "h",      "--port",
					 "1",   "--ca-file",   "b", "--fault", "explode" };
	const char *const morethan[] = { "run", "--state-dir", "s", "--host",
					 "h",   "--port",      "1", "--ca-file",
					 "b",   "--devices",   "5", "--until-rotated",
					 "6" };
	const char *const extra[] = { "run",    "--state-dir", "s",         "--host", "h",
				      "--port", "1",           "--ca-file", "b",      "stray" };
	const char *const *cases[] = { both,    noport,   badport,  baddur,
				       toomuch, badfault, morethan, extra };
	int counts[] = { ARGC(both),    ARGC(noport),   ARGC(badport),  ARGC(baddur),
			 ARGC(toomuch), ARGC(badfault), ARGC(morethan), ARGC(extra) };
	sim_run_opts o;
	cf_err err = CF_ERR_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(cases); i++) {
		cf_err_clear(&err);
		assert_int_equal(parse_run(&o, cases[i], counts[i], &err), CF_EINVAL);
		assert_true(err.msg[0] != '\0');
		sim_run_opts_clear(&o);
	}
	copies_free();
}

/* ---- faults ------------------------------------------------------------------------- */

static void
test_sim_faults__parse(void **state)
{
	static const char *const bad[] = { "nope",           "bad_csr=",         "bad_csr=2",
					   "bad_csr=@",      "bad_csr=@ok,-bad", "offline",
					   "offline=",       "offline=5",        "offline=5s:",
					   "offline=5s:1.5", "weak_csr=x" };
	sim_fault f;
	cf_err err = CF_ERR_INIT;
	size_t i;

	(void)state;
	assert_int_equal(sim_fault_parse(&f, "ignore_csr_req", &err), CF_OK);
	assert_int_equal(f.kind, SIM_FAULT_IGNORE_CSR_REQ);
	assert_true(f.fraction == 1.0);
	assert_null(f.names);
	assert_int_equal(sim_fault_parse(&f, "refuse_cert=25%", &err), CF_OK);
	assert_int_equal(f.kind, SIM_FAULT_REFUSE_CERT);
	assert_true(f.fraction == 0.25);
	assert_int_equal(sim_fault_parse(&f, "crash_before_ack=@a,b,c", &err), CF_OK);
	assert_int_equal(f.kind, SIM_FAULT_CRASH_BEFORE_ACK);
	assert_int_equal(f.nnames, 3);
	assert_string_equal(f.names[2], "c");
	sim_fault_clear(&f);
	assert_int_equal(sim_fault_parse(&f, "reuse_key@x", &err), CF_OK);
	assert_int_equal(f.nnames, 1);
	sim_fault_clear(&f);
	assert_int_equal(sim_fault_parse(&f, "offline=2m", &err), CF_OK);
	assert_int_equal(f.offline_ms, 120000);
	assert_true(f.fraction == 1.0);
	assert_int_equal(sim_fault_parse(&f, "offline=500ms:0.5", &err), CF_OK);
	assert_int_equal(f.offline_ms, 500);
	assert_true(f.fraction == 0.5);
	assert_int_equal(sim_fault_parse(&f, "offline=10s:@d1", &err), CF_OK);
	assert_int_equal(f.nnames, 1);
	sim_fault_clear(&f);
	for (i = 0; i < CF_ARRAY_LEN(bad); i++) {
		cf_err_clear(&err);
		assert_int_equal(sim_fault_parse(&f, bad[i], &err), CF_EINVAL);
		assert_true(err.msg[0] != '\0');
		assert_null(f.names);
	}
}

/* n names "sim-00001".. in a NULL-terminated array. */
static char **
names_new(size_t n)
{
	char **names = calloc(n + 1, sizeof(*names));
	size_t i;

	assert_non_null(names);
	for (i = 0; i < n; i++) {
		names[i] = malloc(16);
		assert_non_null(names[i]);
		snprintf(names[i], 16, "sim-%05zu", i + 1);
	}
	return names;
}

static size_t
count_kind(const sim_fault_set *sets, size_t n, sim_fault_kind kind)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += SIM_HAS(sets[i], kind);
	return c;
}

static void
test_sim_faults__fractions_exact_and_disjoint(void **state)
{
	enum { N = 1000 };
	char **names = names_new(N);
	sim_fault faults[3];
	sim_fault_set *a = calloc(N, sizeof(*a)), *b = calloc(N, sizeof(*b));
	cf_err err = CF_ERR_INIT;
	size_t i, first_half = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(sim_fault_parse(&faults[0], "bad_csr=0.1", &err), CF_OK);
	assert_int_equal(sim_fault_parse(&faults[1], "refuse_cert=3.3%", &err), CF_OK);
	assert_int_equal(sim_fault_parse(&faults[2], "offline=5s:0.5", &err), CF_OK);
	assert_int_equal(sim_faults_assign(a, (const char *const *)names, N, faults, 3, &err),
			 CF_OK);
	assert_int_equal(count_kind(a, N, SIM_FAULT_BAD_CSR), 100);
	assert_int_equal(count_kind(a, N, SIM_FAULT_REFUSE_CERT), 33);
	assert_int_equal(count_kind(a, N, SIM_FAULT_OFFLINE), 500);
	for (i = 0; i < N; i++) {
		/* Disjoint: never two fraction faults on one device. */
		assert_true(a[i].mask == 0 || (a[i].mask & (a[i].mask - 1)) == 0);
		if (SIM_HAS(a[i], SIM_FAULT_OFFLINE))
			assert_int_equal(a[i].offline_ms, 5000);
		if (i < N / 2 && SIM_HAS(a[i], SIM_FAULT_BAD_CSR))
			first_half++;
	}
	/* Spread over the fleet, not the first 100 names. */
	assert_true(first_half > 25 && first_half < 75);
	/* Deterministic: the same selection again. */
	assert_int_equal(sim_faults_assign(b, (const char *const *)names, N, faults, 3, &err),
			 CF_OK);
	assert_memory_equal(a, b, N * sizeof(*a));
	for (i = 0; i < 3; i++)
		sim_fault_clear(&faults[i]);
	for (i = 0; i < N; i++)
		free(names[i]);
	free(names);
	free(a);
	free(b);
}

static void
test_sim_faults__names_and_rounding(void **state)
{
	char **names = names_new(7);
	sim_fault faults[2];
	sim_fault_set sets[7];
	cf_err err = CF_ERR_INIT;
	size_t i;

	(void)state;
	/* 7 * 0.5 = 3.5 rounds to 4; named devices add on top (overlap allowed). */
	assert_int_equal(sim_fault_parse(&faults[0], "weak_csr=0.5", &err), CF_OK);
	assert_int_equal(sim_fault_parse(&faults[1], "offline=1s@sim-00003,sim-00007", &err),
			 CF_OK);
	assert_int_equal(sim_faults_assign(sets, (const char *const *)names, 7, faults, 2, &err),
			 CF_OK);
	assert_int_equal(count_kind(sets, 7, SIM_FAULT_WEAK_CSR), 4);
	assert_true(SIM_HAS(sets[2], SIM_FAULT_OFFLINE));
	assert_true(SIM_HAS(sets[6], SIM_FAULT_OFFLINE));
	assert_int_equal(count_kind(sets, 7, SIM_FAULT_OFFLINE), 2);
	sim_fault_clear(&faults[1]);
	/* A name outside the run. */
	assert_int_equal(sim_fault_parse(&faults[1], "refuse_cert=@sim-00099", &err), CF_OK);
	assert_int_equal(sim_faults_assign(sets, (const char *const *)names, 7, faults, 2, &err),
			 CF_EINVAL);
	assert_non_null(strstr(err.msg, "sim-00099"));
	sim_fault_clear(&faults[0]);
	sim_fault_clear(&faults[1]);
	for (i = 0; i < 7; i++)
		free(names[i]);
	free(names);
}

static void
test_sim_faults__messages(void **state)
{
	static const char req[] = "{\"rotationId\":\"r-1\",\"rekey\":true}";
	static const char crt[] = "{\"rotationId\":\"r-2\",\"certificateId\":\"abc\"}";
	json_t *j;
	char *t;

	(void)state;
	t = sim_fault_bad_csr_res(req, strlen(req));
	j = json_loads(t, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "rotationId")), "r-1");
	assert_non_null(strstr(json_string_value(json_object_get(j, "CSR")), "BEGIN"));
	json_decref(j);
	free(t);

	t = sim_fault_weak_csr_res(req, strlen(req), "sim-00001");
	assert_non_null(t);
	j = json_loads(t, 0, NULL);
	{
		const char *pem = json_string_value(json_object_get(j, "CSR"));
		BIO *bio = BIO_new_mem_buf(pem, -1);
		X509_REQ *csr = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
		EVP_PKEY *pub;
		char curve[32] = "";

		assert_non_null(csr);
		pub = X509_REQ_get0_pubkey(csr);
		assert_int_equal(
			EVP_PKEY_get_utf8_string_param(pub, "group", curve, sizeof(curve), NULL),
			1);
		assert_string_equal(curve, "prime192v1");
		X509_REQ_free(csr);
		BIO_free(bio);
	}
	json_decref(j);
	free(t);

	t = sim_fault_refuse_crt(crt, strlen(crt));
	j = json_loads(t, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "rotationId")), "r-2");
	assert_string_equal(json_string_value(json_object_get(j, "certificateId")), "abc");
	assert_non_null(json_string_value(json_object_get(j, "error")));
	json_decref(j);
	free(t);

	t = sim_fault_reuse_key_req(req, strlen(req));
	j = json_loads(t, 0, NULL);
	assert_true(json_is_false(json_object_get(j, "rekey")));
	assert_string_equal(json_string_value(json_object_get(j, "rotationId")), "r-1");
	json_decref(j);
	free(t);
	assert_null(sim_fault_reuse_key_req("[1]", 3));
}

/* ---- reports -------------------------------------------------------------------------- */

static void
test_sim_report__tally_and_json(void **state)
{
	sim_stats s;
	json_t *j;
	int i;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.devices = 10;
	s.rotated = 8;
	s.fault_devices[SIM_FAULT_BAD_CSR] = 2;
	s.start_ms = 1000;
	s.end_ms = 11000;
	s.first_csr_req_ms = 2000;
	s.last_rotated_ms = 6000;
	s.outcome = "until_rotated";
	sim_tally_add(&s.rejected, "BAD_CSR");
	sim_tally_add(&s.rejected, "BAD_CSR");
	sim_tally_add(&s.failed, "NEW_CERT_REFUSED: could not connect");
	sim_tally_add(&s.failed, "");
	for (i = 0; i < 40; i++) {
		char tok[16];

		snprintf(tok, sizeof(tok), "R%d", i);
		sim_tally_add(&s.failed, tok);
	}
	assert_int_equal(s.failed.total, 42);
	assert_int_equal(s.failed.n, SIM_TALLY_MAX);
	assert_string_equal(s.failed.e[0].name, "NEW_CERT_REFUSED");
	assert_string_equal(s.failed.e[1].name, "UNKNOWN");
	j = sim_report_json(&s);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "devices")), 10);
	assert_int_equal(json_integer_value(json_object_get(j, "rotated")), 8);
	assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "rejected_by_code"),
							    "BAD_CSR")),
			 2);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(j, "faults"), "bad_csr")), 2);
	assert_true(json_real_value(json_object_get(j, "elapsed_seconds")) == 10.0);
	assert_true(json_real_value(json_object_get(j, "rotations_per_second")) == 2.0);
	assert_string_equal(json_string_value(json_object_get(j, "outcome")), "until_rotated");
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(j, "failed_by_reason"), "OTHER")),
			 42 - (SIM_TALLY_MAX - 1));
	json_decref(j);
}

/* ---- provisioning ------------------------------------------------------------------------ */

struct fx {
	char *dir, *data, *state;
};

static int
setup_data_dir(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *bin = getenv("CF_BINARY_DIR");
	cf_test_result res = CF_TEST_RESULT_INIT;
	char *certfleet;

	if (fx == NULL || bin == NULL || cf_test_tmpdir_new(&fx->dir, "cf-sim") != 0)
		return -1;
	fx->data = cf_test_printf("%s/data", fx->dir);
	fx->state = cf_test_printf("%s/state", fx->dir);
	certfleet = cf_test_printf("%s/cli/certfleet", bin);
	if (cf_test_runl(&res, 120, certfleet, "--data-dir", fx->data, "init", "--quickstart",
			 (char *)NULL) != 0 ||
	    res.status != 0) {
		fprintf(stderr, "certfleet init failed: %s\n", res.err ? res.err : "");
		cf_test_result_clear(&res);
		free(certfleet);
		return -1;
	}
	cf_test_result_clear(&res);
	free(certfleet);
	*state = fx;
	return 0;
}

static int
teardown_data_dir(void **state)
{
	struct fx *fx = *state;

	if (fx == NULL)
		return 0;
	cf_test_tmpdir_remove(fx->dir);
	free(fx->dir);
	free(fx->data);
	free(fx->state);
	free(fx);
	return 0;
}

static void
test_sim_provision__agent_opens_it(void **state)
{
	struct fx *fx = *state;
	sim_provision_opts o;
	sim_provision_result res;
	cf_err err = CF_ERR_INIT;
	cf_agent_config cfg;
	cf_agent_err aerr;
	cf_agent *agent = NULL;
	char *root = cf_test_printf("%s/offline-root/root.pem", fx->data);
	char *dev = cf_test_printf("%s/sim-00003", fx->state);
	char *key = cf_test_printf("%s/current/key.pem", dev);
	char *cert = cf_test_printf("%s/current/cert.pem", dev);
	char **names = NULL;
	size_t n = 0;
	BIO *bio;
	X509 *leaf, *issuer;
	int days = 0, secs = 0;

	memset(&o, 0, sizeof(o));
	o.data_dir = fx->data;
	o.state_dir = fx->state;
	o.prefix = "sim-";
	o.devices = 5;
	o.days = 10;
	assert_int_equal(sim_provision(&res, &o, &err), CF_OK);
	assert_int_equal(res.created, 5);
	assert_int_equal(res.skipped, 0);
	assert_int_equal(cf_test_file_mode(key), 0600);
	assert_int_equal(cf_test_file_mode(cert), 0600);

	/* cert.pem: the leaf for the thing, valid 10 days, then its issuer. */
	bio = BIO_new_file(cert, "r");
	assert_non_null(bio);
	leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	issuer = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(leaf);
	assert_non_null(issuer);
	assert_int_equal(X509_check_issued(issuer, leaf), X509_V_OK);
	assert_int_equal(
		ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)),
		1);
	assert_true(days == 10 || (days == 10 && secs > 0));
	X509_free(leaf);
	X509_free(issuer);
	BIO_free(bio);

	/* The agent library accepts the layout. */
	cf_agent_config_init(&cfg);
	cfg.client_id = "sim-00003";
	cfg.state_dir = dev;
	cfg.ca_file = root;
	cfg.log_level = CF_AGENT_LOG_ERR;
	memset(&aerr, 0, sizeof(aerr));
	assert_int_equal(cf_agent_open(&agent, &cfg, &aerr), CF_AGENT_OK);
	assert_int_equal(strlen(cf_agent_current_cert_id(agent)), 64);
	cf_agent_free(agent);

	/* The run finds the devices by name. */
	assert_int_equal(sim_state_names(&names, &n, fx->state, &err), CF_OK);
	assert_int_equal(n, 5);
	assert_string_equal(names[0], "sim-00001");
	assert_string_equal(names[4], "sim-00005");
	sim_names_free(names, n);

	/* Again: refused as existing, unless skipped; new ones are added. */
	o.devices = 7;
	assert_int_equal(sim_provision(&res, &o, &err), CF_EEXISTS);
	assert_non_null(strstr(err.msg, "sim-00001"));
	o.skip_existing = true;
	assert_int_equal(sim_provision(&res, &o, &err), CF_OK);
	assert_int_equal(res.created, 2);
	assert_int_equal(res.skipped, 5);

	/* No such data dir. */
	o.data_dir = dev;
	o.prefix = "other-";
	assert_int_equal(sim_provision(&res, &o, &err), CF_ENOTFOUND);
	free(root);
	free(dev);
	free(key);
	free(cert);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sim_options__durations),
		cmocka_unit_test(test_sim_options__fractions),
		cmocka_unit_test(test_sim_options__provision),
		cmocka_unit_test(test_sim_options__run),
		cmocka_unit_test(test_sim_options__run_errors),
		cmocka_unit_test(test_sim_faults__parse),
		cmocka_unit_test(test_sim_faults__fractions_exact_and_disjoint),
		cmocka_unit_test(test_sim_faults__names_and_rounding),
		cmocka_unit_test(test_sim_faults__messages),
		cmocka_unit_test(test_sim_report__tally_and_json),
		cmocka_unit_test_setup_teardown(test_sim_provision__agent_opens_it, setup_data_dir,
						teardown_data_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
