/*
 * Integration: certfleetd against a real Mosquitto over mutual TLS.
 *
 * What is certfleetd's own (the rotation protocol itself is
 * test_rotation_e2e.c): a bad config refused at start with its file and
 * line, TLS files checked at start, the service connection, a device
 * message answered, reconnection after a broker restart, messages queued
 * by the broker while certfleetd was down (persistent session), SIGHUP
 * with a bad and a good file, SIGTERM, and the webhook notifier against an
 * HTTP server in the test process (support/httpd.h).
 *
 * The group fixture makes one data dir (certfleet init --quickstart), the
 * service principal and one device identity (keys and CSRs by the openssl
 * command, certificates by certfleet), and starts the broker.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "support/broker.h"
#include "support/fleet.h"
#include "support/httpd.h"
#include "support/run.h"

#define WAIT_MS 20000

struct group {
	cf_test_fleet fleet; /* T, D = T/data, the root and intermediate (support/fleet.h) */
	char *conf, *conf_orig;
	char *certfleet, *certfleetd;
	const char *dev_cert, *dev_key; /* device "dev1": chain and key */
	cf_test_broker *broker;
};

static struct group g;

/* An identity for thing (support/fleet.h) with chain = leaf + intermediate: its key. */
static const char *
identity_make(const char *thing, const char *chain)
{
	cf_test_identity id;

	cf_test_identity_new(&id, &g.fleet, thing, "/CN=ignored", NULL);
	cf_test_cat(&g.fleet, chain, 0644, id.cert, g.fleet.inter, NULL);
	return id.key;
}

static int
group_setup(void **state)
{
	const char *client_ca, *bdir_path, *svc_key;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	g.certfleet = cf_test_binary("cli/certfleet");
	g.certfleetd = cf_test_binary("src/daemon/certfleetd");
	if (g.certfleet == NULL || g.certfleetd == NULL)
		return -1;
	if (cf_test_fleet_init(&g.fleet, "certfleetd-it", g.certfleet) != 0)
		return -1;
	g.fleet.timeout_s = 120;
	g.conf = cf_test_printf("%s/certfleet.conf", g.fleet.data);
	cf_test_certfleet(&g.fleet, 0, "init", "--quickstart", NULL);
	cf_test_fleet_ca_files(&g.fleet);
	assert_int_equal(mkdir(cf_test_dpath(&g.fleet, "service"), 0777), 0);
	svc_key = identity_make("certfleetd", cf_test_dpath(&g.fleet, "service/certfleetd.pem"));
	cf_test_cat(&g.fleet, cf_test_dpath(&g.fleet, "service/certfleetd.key"), 0600, svc_key,
		    NULL);
	g.dev_cert = cf_test_tpath(&g.fleet, "dev1-chain.pem");
	g.dev_key = identity_make("dev1", g.dev_cert);

	client_ca = cf_test_tpath(&g.fleet, "client-ca.pem");
	cf_test_cat(&g.fleet, client_ca, 0644, g.fleet.root, g.fleet.inter, NULL);
	bdir_path = cf_test_tpath(&g.fleet, "broker");
	if (cf_test_broker_start(&g.broker, bdir_path, client_ca, NULL) != 0)
		return -1;
	/* certfleetd trusts the broker's CA and talks to its port. */
	text = cf_test_printf("mqtt_port = %d\nmqtt_ca_file = %s\nmqtt_reconnect_max = 2s\n",
			      cf_test_broker_port(g.broker), cf_test_broker_ca_file(g.broker));
	assert_int_equal(cf_test_file_append(g.conf, text), 0);
	free(text);
	assert_int_equal(cf_test_file_read(&text, &len, g.conf, 1 << 20), 0);
	g.conf_orig = text;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	cf_test_broker_free(g.broker);
	cf_test_fleet_clear(&g.fleet);
	free(g.conf);
	free(g.conf_orig);
	free(g.certfleet);
	free(g.certfleetd);
	return 0;
}

/* Every case starts from the fixture's config. */
static int
setup(void **state)
{
	(void)state;
	return cf_test_file_write(g.conf, g.conf_orig, strlen(g.conf_orig), 0600);
}

static void
conf_append(const char *line)
{
	assert_int_equal(cf_test_file_append(g.conf, line), 0);
}

/* Start certfleetd with its log in log_path. */
static cf_test_bg *
daemon_start(const char *log_path)
{
	cf_test_bg *d = NULL;

	unlink(log_path);
	assert_int_equal(
		cf_test_bg_start(&d,
				 (const char *const[]){ g.certfleetd, "--data-dir", g.fleet.data,
							"--log-file", log_path, NULL },
				 NULL, log_path),
		0);
	return d;
}

/* A csr_res from dev1 for its current key (no rotation id). */
static const char *
csr_res_payload(void)
{
	const char *csr = cf_test_tpath(&g.fleet, "dev1-res.csr");

	cf_test_openssl(&g.fleet, 0, "req", "-new", "-key", g.dev_key, "-subj", "/CN=dev1", "-out",
			csr, NULL);
	return cf_test_csr_res(&g.fleet, csr, NULL);
}

/* ---- cases -------------------------------------------------------------- */

/* A bad config stops certfleetd at start with the file, the line and the reason. */
static void
test_daemon__bad_config_refused_with_file_and_line(void **state)
{
	static const struct {
		const char *line;
		const char *expect;
	} cases[] = {
		{ "rotation_deadline = soon\n", "rotation_deadline must be a duration" },
		{ "mqtt_port = 0\n", "mqtt_port must be a whole number from 1 to 65535" },
		{ "topic_prefix = management/#\n", "topic_prefix must be a topic" },
		{ "no_such_key = 1\n", "unknown key 'no_such_key'" },
	};
	cf_test_result r = CF_TEST_RESULT_INIT;
	size_t i, lines = 0;
	const char *p;

	(void)state;
	for (p = g.conf_orig; *p != '\0'; p++)
		lines += *p == '\n';
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *where = cf_test_printf("%s:%zu: ", g.conf, lines + 1);

		setup(NULL);
		conf_append(cases[i].line);
		assert_int_equal(
			cf_test_runl(&r, 60, g.certfleetd, "--data-dir", g.fleet.data, NULL), 0);
		assert_int_equal(r.status, 6);
		if (strstr(r.err, where) == NULL || strstr(r.err, cases[i].expect) == NULL)
			fail_msg("case %zu: stderr '%s' lacks '%s%s'", i, r.err, where,
				 cases[i].expect);
		cf_test_result_clear(&r);
		free(where);
	}
}

/* The TLS files are checked before anything runs: a key readable by others is refused. */
static void
test_daemon__tls_files_checked_at_start(void **state)
{
	char *key = cf_test_printf("%s/service/certfleetd.key", g.fleet.data);
	cf_test_result r = CF_TEST_RESULT_INIT;

	(void)state;
	assert_int_equal(cf_test_runl(&r, 60, g.certfleetd, "--data-dir", g.fleet.data,
				      "--check-config", NULL),
			 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "configuration ok"));
	cf_test_result_clear(&r);

	assert_int_equal(chmod(key, 0644), 0);
	assert_int_equal(cf_test_runl(&r, 60, g.certfleetd, "--data-dir", g.fleet.data,
				      "--check-config", NULL),
			 0);
	assert_int_equal(chmod(key, 0600), 0);
	assert_int_equal(r.status, 6);
	assert_non_null(strstr(r.err, "readable by others"));
	cf_test_result_clear(&r);

	conf_append("mqtt_cert_file = /nonexistent/cert.pem\n");
	assert_int_equal(cf_test_runl(&r, 60, g.certfleetd, "--data-dir", g.fleet.data,
				      "--check-config", NULL),
			 0);
	assert_int_not_equal(r.status, 0);
	assert_non_null(strstr(r.err, "/nonexistent/cert.pem"));
	cf_test_result_clear(&r);
	free(key);
}

/*
 * certfleetd answers a device, reconnects after a broker restart, and gets
 * what devices sent while it was stopped (its persistent session).
 */
static void
test_daemon__answers_reconnects_and_keeps_its_session(void **state)
{
	char *log = cf_test_printf("%s/d1.log", g.fleet.tmp);
	char *sub_out = cf_test_printf("%s/d1.sub", g.fleet.tmp);
	const char *payload = csr_res_payload();
	const char *topics[] = { "management/topic/dev1/csr_rej", NULL };
	cf_test_bg *d, *sub = NULL;

	(void)state;
	unlink(sub_out);
	d = daemon_start(log);
	assert_int_equal(cf_test_file_wait(log, "event=mqtt_connected", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_mqtt_sub_start(&sub, g.broker, g.dev_cert, g.dev_key, "dev1-sub",
						topics, sub_out),
			 0);

	/* No rotation is open for dev1: the answer is NO_ROTATION. */
	assert_int_equal(cf_test_mqtt_pub(g.broker, g.dev_cert, g.dev_key,
					  "management/topic/dev1/csr_res", payload),
			 0);
	assert_int_equal(cf_test_file_wait(sub_out, "\"code\":\"NO_ROTATION\"", 1, WAIT_MS), 0);

	/* Broker restart: certfleetd connects again by itself. */
	assert_int_equal(cf_test_broker_restart(g.broker), 0);
	assert_int_equal(cf_test_file_wait(log, "event=mqtt_connected", 2, WAIT_MS), 0);
	assert_true(cf_test_bg_running(d));

	/* Stopped cleanly, then a device message arrives: the broker keeps it for certfleetd. */
	assert_int_equal(cf_test_bg_stop(d, 0), 0);
	assert_int_equal(cf_test_file_count(log, "event=stopped exit=0"), 1);
	cf_test_bg_free(sub);
	sub = NULL;
	assert_int_equal(cf_test_mqtt_sub_start(&sub, g.broker, g.dev_cert, g.dev_key, "dev1-sub",
						topics, sub_out),
			 0);
	assert_int_equal(cf_test_mqtt_pub(g.broker, g.dev_cert, g.dev_key,
					  "management/topic/dev1/csr_res", payload),
			 0);
	cf_test_bg_free(d);
	d = daemon_start(log);
	assert_int_equal(cf_test_file_wait(sub_out, "\"code\":\"NO_ROTATION\"", 2, WAIT_MS), 0);

	/* Bad input is logged and dropped; certfleetd goes on. */
	assert_int_equal(cf_test_mqtt_pub(g.broker, g.dev_cert, g.dev_key,
					  "management/topic/dev1/csr_res", "not json"),
			 0);
	assert_int_equal(cf_test_file_wait(log, "event=message_refused", 1, WAIT_MS), 0);
	assert_true(cf_test_bg_running(d));
	assert_int_equal(cf_test_bg_stop(d, 0), 0);
	cf_test_bg_free(d);
	cf_test_bg_free(sub);
	free(log);
	free(sub_out);
}

/* Write a file again with the same content: what a renewal looks like to a stat(). */
static void
rewrite(const char *path)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(cf_test_file_read(&text, &len, path, 1 << 20), 0);
	usleep(10 * 1000); /* a new mtime even on a coarse clock */
	assert_int_equal(cf_test_file_write(path, text, len, 0644), 0);
	free(text);
}

/* SIGHUP: a bad file is refused and the daemon goes on; a good one applies (JSON logs). */
static void
test_daemon__sighup_reload(void **state)
{
	char *log = cf_test_printf("%s/d2.log", g.fleet.tmp);
	char *cert = cf_test_printf("%s/service/certfleetd.pem", g.fleet.data);
	cf_test_bg *d;

	(void)state;
	d = daemon_start(log);
	assert_int_equal(cf_test_file_wait(log, "event=mqtt_connected", 1, WAIT_MS), 0);

	conf_append("rotation_csr_max = many\n");
	assert_int_equal(cf_test_bg_signal(d, SIGHUP), 0);
	assert_int_equal(cf_test_file_wait(log, "event=reload_refused", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_file_count(log, "rotation_csr_max must be a whole number"), 1);
	assert_true(cf_test_bg_running(d));

	setup(NULL);
	conf_append("log_format = json\nrotation_resend_interval = 10s\n");
	assert_int_equal(cf_test_bg_signal(d, SIGHUP), 0);
	assert_int_equal(cf_test_file_wait(log, "\"event\":\"reloaded\"", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_file_count(log, "\"broker_reconnect\":\"no\""), 1);

	/* A changed broker setting reconnects. */
	conf_append("mqtt_keepalive = 20s\n");
	assert_int_equal(cf_test_bg_signal(d, SIGHUP), 0);
	assert_int_equal(cf_test_file_wait(log, "\"broker_reconnect\":\"yes\"", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_file_wait(log, "\"event\":\"mqtt_connected\"", 1, WAIT_MS), 0);

	/* A renewed identity (the files rewritten, the config unchanged) reconnects too. */
	rewrite(cert);
	assert_int_equal(cf_test_bg_signal(d, SIGHUP), 0);
	assert_int_equal(cf_test_file_wait(log, "\"broker_reconnect\":\"yes\"", 2, WAIT_MS), 0);
	assert_int_equal(cf_test_file_wait(log, "\"event\":\"mqtt_connected\"", 2, WAIT_MS), 0);
	/* Nothing changed: no reconnect. */
	assert_int_equal(cf_test_bg_signal(d, SIGHUP), 0);
	assert_int_equal(cf_test_file_wait(log, "\"broker_reconnect\":\"no\"", 2, WAIT_MS), 0);

	assert_int_equal(cf_test_bg_stop(d, 0), 0);
	assert_int_equal(cf_test_file_count(log, "\"event\":\"stopped\""), 1);
	cf_test_bg_free(d);
	free(cert);
	free(log);
}

/*
 * Scheduled audits: with audit_schedule = 2s and the default audit_actions,
 * the certificates expiring in 20 days are found and rotated by certfleetd
 * alone, the next runs do not open them twice, the run's summary goes to
 * audit_notify_topic, and a restart does not run again before the time.
 */
static void
test_daemon__scheduled_audit_rotates_once(void **state)
{
	char *log = cf_test_printf("%s/d3.log", g.fleet.tmp);
	char *sub_out = cf_test_printf("%s/d3.sub", g.fleet.tmp);
	const char *topics[] = { "certfleet/audit", NULL };
	cf_test_identity e1, e2;
	const char *in_s;
	cf_test_bg *d, *sub = NULL;
	json_t *rows;
	size_t runs;

	(void)state;
	cf_test_identity_new(&e1, &g.fleet, "exp1", "/CN=exp1", "--days", "20", NULL);
	cf_test_identity_new(&e2, &g.fleet, "exp2", "/CN=exp2", "--days", "20", NULL);
	unlink(sub_out);
	assert_int_equal(cf_test_mqtt_sub_start(&sub, g.broker, g.dev_cert, g.dev_key,
						"dev1-audit", topics, sub_out),
			 0);
	conf_append("audit_schedule = 2s\naudit_notify_topic = certfleet/audit\n");
	d = daemon_start(log);
	assert_int_equal(cf_test_file_wait(log, "event=audit_run ", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_file_count(log, "action=ROTATE_DEVICE_CERTIFICATE result=changed"),
			 2);
	rows = cf_test_certfleet_json(&g.fleet, "rotate", "list", NULL);
	assert_int_equal(json_array_size(rows), 2);
	/*
	 * Two more runs: the findings are OPEN, their things already rotating,
	 * so the binding has nothing to act on.
	 */
	assert_int_equal(cf_test_file_wait(log, "event=audit_run ", 3, WAIT_MS), 0);
	assert_int_equal(cf_test_file_count(log, "action=ROTATE_DEVICE_CERTIFICATE result=changed"),
			 2);
	assert_true(cf_test_file_count(log, " acted=0 ") >= 2);
	rows = cf_test_certfleet_json(&g.fleet, "rotate", "list", NULL);
	assert_int_equal(json_array_size(rows), 2);
	/* The summaries went out through the outbox, the first with its NEW findings. */
	assert_int_equal(cf_test_file_wait(sub_out, "\"findingsActedOn\"", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_file_count(sub_out, "\"severity\":\"MEDIUM\",\"reason\":"
						     "\"CERTIFICATE_APPROACHING_EXPIRATION\""),
			 2);
	assert_int_equal(cf_test_bg_stop(d, 0), 0);
	cf_test_bg_free(d);

	/* Restarted with a longer schedule: the last run is recent, so none at start. */
	rows = cf_test_certfleet_json(&g.fleet, "audit", "list", "--limit", "1000", NULL);
	runs = json_array_size(rows);
	assert_true(runs >= 3);
	setup(NULL);
	conf_append("audit_schedule = 1h\n");
	d = daemon_start(log);
	/* The plan it logs at start: the next run an hour after the last, not now. */
	assert_int_equal(cf_test_file_wait(log, "event=audit_planned ", 1, WAIT_MS), 0);
	in_s = strstr(cf_test_file_text(&g.fleet, log), " in_s=");
	assert_non_null(in_s);
	assert_in_range(strtoll(in_s + 6, NULL, 10), 60, 3600);
	assert_int_equal(cf_test_file_count(log, "event=audit_run "), 0);
	assert_int_equal(cf_test_bg_stop(d, 0), 0);
	cf_test_bg_free(d);
	cf_test_bg_free(sub);
	rows = cf_test_certfleet_json(&g.fleet, "audit", "list", "--limit", "1000", NULL);
	assert_int_equal(json_array_size(rows), runs);
	free(log);
	free(sub_out);
}

/* Signed as docs/daemon.md says a receiver checks it (support/httpd.c, OpenSSL). */
static void
assert_signed(const cf_test_http_req *r, const char *secret)
{
	if (!cf_test_http_req_signed(r, secret))
		fail_msg("%s request: signature '%s' does not verify", r->event, r->signature);
	assert_string_equal(r->content_type, "application/json");
	assert_true(strtoll(r->timestamp, NULL, 10) > 1600000000);
}

struct find_ctx {
	cf_test_httpd *h;
	const char *event;
};

static bool
request_seen(void *payload)
{
	struct find_ctx *fc = payload;

	return cf_test_httpd_find(fc->h, 0, fc->event) >= 0;
}

/* The body of the first request of event, waited for and its signature checked. */
static json_t *
signed_body(cf_test_httpd *h, const char *event, const char *secret, const char *log)
{
	struct find_ctx fc = { h, event };
	cf_test_http_req r;
	json_t *body;

	if (cf_test_wait_until(request_seen, &fc, 50, WAIT_MS) != 0)
		fail_msg("no %s POSTed; see %s", event, log);
	assert_int_equal(cf_test_httpd_get(h, (size_t)cf_test_httpd_find(h, 0, event), &r), 0);
	assert_signed(&r, secret);
	body = json_loads(r.body, 0, NULL);
	assert_non_null(body);
	cf_test_http_req_clear(&r);
	return body;
}

/*
 * The webhook: a scheduled run's summary is POSTed, signed with the secret
 * file's key; the server's first answer (500) is retried with the same
 * body; a rotation opened by the audit that times out (rotation_deadline =
 * 2s) is POSTed as rotation.timed_out. The secret never reaches the log.
 */
static void
test_daemon__webhook_signed_and_retried(void **state)
{
	static const int script[] = { 500 };
	char *log = cf_test_printf("%s/d5.log", g.fleet.tmp);
	char *secret_path = cf_test_printf("%s/webhook.secret", g.fleet.tmp);
	const char *secret = "whsec-0123456789abcdef";
	cf_test_identity e3;
	cf_test_httpd *h = NULL;
	cf_test_http_req r0, r1;
	char *text, *secret_line;
	json_t *body;
	cf_test_bg *d;

	(void)state;
	cf_test_identity_new(&e3, &g.fleet, "exp3", "/CN=exp3", "--days", "20", NULL);
	secret_line = cf_test_printf("%s\n", secret);
	assert_int_equal(cf_test_file_write(secret_path, secret_line, strlen(secret_line), 0600),
			 0);
	free(secret_line);
	assert_int_equal(cf_test_httpd_start(&h, script, 1), 0);
	text = cf_test_printf("audit_schedule = 2s\nrotation_deadline = 2s\n"
			      "audit_actions = DEVICE_CERTIFICATE_EXPIRING_CHECK:"
			      "ROTATE_DEVICE_CERTIFICATE, DEVICE_CERTIFICATE_EXPIRING_CHECK : NOTIFY\n"
			      "webhook_url = http://127.0.0.1:%d/certfleet\n"
			      "webhook_secret_file = %s\nwebhook_timeout = 5s\n",
			      cf_test_httpd_port(h), secret_path);
	conf_append(text);
	free(text);
	d = daemon_start(log);
	assert_int_equal(cf_test_httpd_wait(h, 2, WAIT_MS), 0);
	assert_int_equal(cf_test_httpd_get(h, 0, &r0), 0);
	assert_int_equal(cf_test_httpd_get(h, 1, &r1), 0);
	assert_int_equal(r0.status, 500);
	assert_int_equal(r1.status, 200);
	assert_string_equal(r0.event, "audit.run");
	assert_string_equal(r1.body, r0.body);
	assert_signed(&r0, secret);
	assert_signed(&r1, secret);
	body = json_loads(r1.body, 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(body, "event")), "audit.run");
	assert_true(json_integer_value(json_object_get(body, "runId")) > 0);
	assert_true(json_is_array(json_object_get(body, "findingsActedOn")));
	assert_true(json_is_object(json_object_get(body, "bySeverity")));
	json_decref(body);
	assert_int_equal(cf_test_file_wait(log, "event=webhook_retry ", 1, WAIT_MS), 0);
	assert_int_equal(cf_test_file_wait(log, "event=webhook_sent ", 1, WAIT_MS), 0);

	/* exp3's rotation, opened by the audit, times out: a signed rotation.timed_out. */
	body = signed_body(h, "rotation.timed_out", secret, log);
	assert_string_equal(json_string_value(json_object_get(body, "event")), "rotation.timed_out");
	assert_string_equal(json_string_value(json_object_get(body, "state")), "TIMED_OUT");
	assert_non_null(json_string_value(json_object_get(body, "rotationId")));
	assert_non_null(json_string_value(json_object_get(body, "thing")));
	json_decref(body);

	/* NOTIFY, bound to the same check: the finding itself, signed, from the event log. */
	body = signed_body(h, "audit.finding", secret, log);
	assert_string_equal(json_string_value(json_object_get(body, "check")),
			    "DEVICE_CERTIFICATE_EXPIRING_CHECK");
	assert_int_equal(strlen(json_string_value(json_object_get(body, "findingId"))), 32);
	assert_string_equal(json_string_value(json_object_get(body, "by")), "audit");
	json_decref(body);

	assert_int_equal(cf_test_bg_stop(d, 0), 0);
	cf_test_bg_free(d);
	assert_int_equal(cf_test_file_count(log, secret), 0);
	cf_test_http_req_clear(&r0);
	cf_test_http_req_clear(&r1);
	cf_test_httpd_free(h);
	free(log);
	free(secret_path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_daemon__bad_config_refused_with_file_and_line, setup),
		cmocka_unit_test_setup(test_daemon__tls_files_checked_at_start, setup),
		cmocka_unit_test_setup(test_daemon__answers_reconnects_and_keeps_its_session, setup),
		cmocka_unit_test_setup(test_daemon__sighup_reload, setup),
		cmocka_unit_test_setup(test_daemon__scheduled_audit_rotates_once, setup),
		cmocka_unit_test_setup(test_daemon__webhook_signed_and_retried, setup),
	};

	return cmocka_run_group_tests_name("certfleetd", tests, group_setup, group_teardown);
}
