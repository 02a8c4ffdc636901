/*
 * Integration: rotation end to end over a real Mosquitto with mutual TLS,
 * between the real certfleetd, certfleet-sim devices and, where a case needs
 * exact control of what a device sends, a device played by the test with
 * mosquitto_pub / mosquitto_sub (issue 3, "Tests against the real broker").
 *
 * Each case gets a temp dir holding a quickstart data dir D with a service
 * identity made by `certfleet service create certfleetd`, a broker
 * (support/broker.h) trusting the certfleet root and intermediate for
 * client certificates and loading the certfleet broker plugin on D's
 * registry (docs/broker.md: a client connects only with an ACTIVE
 * certificate of the thing its client id names, and publishes, subscribes
 * and receives only what its certificate's policies allow), and
 * D/certfleet.conf pointed at it with short timers. A spy records every
 * protocol message under P/#: mosquitto_sub as a service principal of its
 * own, e2e-spy, whose certificate has a second policy, spy, that allows
 * subscribe and receive on P/# (policies add up: certfleet-service alone
 * allows only P/+/csr_res, P/+/crt_ack and P/+/crt_err). The registry is
 * read with the sqlite3 command (rotations, certificates) and the
 * certfleet CLI; new certificates are checked with the openssl command.
 *
 * A device played by the test is one MQTT connection made here with
 * libmosquitto (client id = thing name, persistent session, QoS 1), that
 * subscribes to its own topics and publishes its answers, and reconnects
 * with its new certificate before it acks, as a device must: the plugin
 * admits one connection per client id and certificate, so mosquitto_sub
 * and mosquitto_pub cannot share the device's identity.
 *
 * Timers: rotation_resend_interval 2s (the deadline case: a deadline of
 * a few seconds). Every wait is a bounded wait for a condition.
 *
 * The audit case (issue 5) lets certfleetd find the expiring certificates
 * itself: scheduled audits every 2 s, the default audit_actions, and its
 * webhook received by an HTTP server in the test (support/httpd.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <mosquitto.h>

#include "support/broker.h"
#include "support/fleet.h"
#include "support/httpd.h"
#include "support/run.h"

#define MAX_ARGV 64
#define MAX_DEV  4
#define WAIT_MS  30000 /* one protocol step, generous for ASan on a busy machine */

#define P "management/topic/"

/*
 * A device played by the test: its first identity (id), the pair it
 * connects with now (cert, key), and its connection. The libmosquitto
 * thread appends what arrives to sub_out as "TOPIC PAYLOAD" lines (as
 * mosquitto_sub -v prints them) and what the broker answered to events
 * ("cN connack RC", "cN suback QOS QOS QOS", "cN puback MID", N counting
 * the connections); the test waits on those files.
 */
struct dev {
	const char *name, *id, *cert0, *key0; /* the thing, its first certificate */
	const char *cert, *key;               /* the pair it connects with now */
	const char *sub_out, *events;
	struct mosquitto *mosq;
	int out_fd, events_fd; /* written by the libmosquitto thread only */
	int conn;              /* connections made so far */
};

/* A certfleet-sim state dir and the run over it: its output and its --summary. */
struct sim {
	cf_test_bg *run;
	const char *state, *log, *summary;
};

struct fx {
	cf_test_fleet f; /* T, D, the last run, the root and intermediate (support/fleet.h) */

	cf_test_broker *broker;
	cf_test_bg *daemon;  /* certfleetd */
	struct sim sim;      /* the simulated fleet */
	struct sim sim2;     /* devices run apart, to be killed alone (the audit case) */
	cf_test_bg *spy;     /* mosquitto_sub P/# as e2e-spy */
	cf_test_httpd *hook; /* the webhook's receiver, when a case configures one */
	struct dev dev[MAX_DEV];
	size_t ndev;
	size_t daemon_starts; /* event=mqtt_connected lines expected so far */
	size_t ncrt;          /* crt messages checked, for their file names */
	const char *dev_ca;
	const char *svc_cert, *svc_key;
	const char *spy_cert, *spy_key;
	const char *daemon_log, *spy_out, *db;
};

static char *g_cli, *g_daemon, *g_sim;

static void dump_logs(struct fx *fx);
static void dev_disconnect(struct dev *d);
static void assert_no_denials(struct fx *fx);
static int connect_probe(struct fx *fx, const char *cert, const char *key, const char *client_id);

/* ---- fixture ----------------------------------------------------------------- */

static int
group_setup(void **state)
{
	const char *bdir = getenv("CF_BINARY_DIR");

	(void)state;
	g_cli = cf_test_binary("cli/certfleet");
	g_daemon = cf_test_binary("src/daemon/certfleetd");
	if (g_cli == NULL || g_daemon == NULL)
		return -1;
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
		return -1;
	/* The simulator is checked by the cases that run it (sim_provision). */
	g_sim = cf_test_printf("%s/sim/certfleet-sim", bdir);
	return g_sim != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	mosquitto_lib_cleanup();
	free(g_cli);
	free(g_daemon);
	free(g_sim);
	return 0;
}

/* A failed command shows the logs of the world too. */
static void
on_fail(void *payload)
{
	dump_logs(payload);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if (cf_test_fleet_init(&fx->f, "certfleet-e2e", g_cli) != 0) {
		free(fx);
		return -1;
	}
	fx->f.on_fail = on_fail;
	fx->f.on_fail_payload = fx;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	size_t i;
	int rc;

	if (fx == NULL)
		return 0;
	/* Every process first, whatever happened in the case. */
	cf_test_bg_free(fx->sim.run);
	cf_test_bg_free(fx->sim2.run);
	cf_test_bg_free(fx->daemon);
	cf_test_bg_free(fx->spy);
	for (i = 0; i < fx->ndev; i++)
		dev_disconnect(&fx->dev[i]);
	cf_test_httpd_free(fx->hook);
	cf_test_broker_free(fx->broker);
	rc = cf_test_fleet_clear(&fx->f);
	free(fx);
	return rc;
}

/* The tail of a file (at most max bytes) on stderr, for the log of a failed case. */
static void
dump_file(const char *what, const char *path, size_t max)
{
	char *text = NULL;
	size_t len = 0;

	if (path == NULL || cf_test_file_read(&text, &len, path, 256 * 1024 * 1024) != 0)
		return;
	fprintf(stderr, "---- %s (%s)%s\n%s\n", what, path, len > max ? ", tail" : "",
		len > max ? text + len - max : text);
	free(text);
}

static void
dump_logs(struct fx *fx)
{
	size_t i;

	dump_file("certfleetd log", fx->daemon_log, 16384);
	dump_file("certfleet-sim output", fx->sim.log, 16384);
	dump_file("certfleet-sim output (apart)", fx->sim2.log, 8192);
	dump_file("spy (mosquitto_sub P/#)", fx->spy_out, 8192);
	for (i = 0; i < fx->ndev; i++) {
		dump_file(fx->dev[i].name, fx->dev[i].sub_out, 4096);
		dump_file(fx->dev[i].name, fx->dev[i].events, 4096);
	}
	if (fx->broker != NULL)
		dump_file("broker log", cf_test_broker_log_file(fx->broker), 8192);
}

/* ---- running ----------------------------------------------------------------- */

/* sqlite3 -json over the registry (read-only, waiting out the daemon's locks). */
static json_t *
sql(struct fx *fx, const char *query)
{
	const char *argv[] = { "sqlite3",        "-readonly", "-json", "-cmd",
			       ".timeout 10000", fx->db,      query,   NULL };

	cf_test_fleet_run(&fx->f, argv, 0);
	/* No rows: sqlite3 prints nothing. */
	if (fx->f.r.out[0] == '\0')
		return cf_test_jkeep(&fx->f, json_array());
	return cf_test_json_parse(&fx->f, fx->f.r.out);
}

/* No sanitizer report in a log of ours. */
static void
assert_no_sanitizer_report(struct fx *fx, const char *path)
{
	static const char *const marks[] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					     "runtime error:", NULL };
	size_t i;

	for (i = 0; marks[i] != NULL; i++) {
		if (path != NULL && cf_test_file_count(path, marks[i]) != 0) {
			dump_logs(fx);
			fail_msg("%s has a sanitizer report ('%s')", path, marks[i]);
		}
	}
}

/* ---- the world --------------------------------------------------------------- */

static void
broker_restart(struct fx *fx)
{
	if (cf_test_broker_restart(fx->broker) != 0) {
		dump_logs(fx);
		fail_msg("the broker did not stop cleanly and start again");
	}
}

/*
 * Quickstart CA, the service identities, the broker with the plugin,
 * certfleet.conf pointed at it with short timers, and the spy. certfleetd
 * is not started yet, so that a case may change the config first.
 */
static void
world(struct fx *fx)
{
	static const char *const spy_topics[] = { P "#", NULL };
	const char *chain, *spy_policy;
	char port[16], *plugin;
	int rc;

	fx->db = cf_test_dpath(&fx->f, "registry.db");
	fx->daemon_log = cf_test_tpath(&fx->f, "certfleetd.log");
	fx->sim.state = cf_test_tpath(&fx->f, "sim-state");
	fx->sim.log = cf_test_tpath(&fx->f, "sim.log");
	fx->sim.summary = cf_test_tpath(&fx->f, "summary.json");
	fx->sim2.state = cf_test_tpath(&fx->f, "sim2-state");
	fx->sim2.log = cf_test_tpath(&fx->f, "sim2.log");
	fx->sim2.summary = cf_test_tpath(&fx->f, "sim2-summary.json");
	cf_test_certfleet(&fx->f, 0, "init", "--quickstart", NULL);
	cf_test_certfleet(&fx->f, 0, "service", "create", "certfleetd", NULL);
	fx->svc_cert = cf_test_dpath(&fx->f, "service/certfleetd.pem");
	fx->svc_key = cf_test_dpath(&fx->f, "service/certfleetd.key");
	assert_int_equal(cf_test_file_mode(fx->svc_key), 0600);
	/* The service chain is leaf then intermediate, and openssl trusts it. */
	cf_test_fleet_ca_files(&fx->f);
	cf_test_openssl(&fx->f, 0, "verify", "-CAfile", fx->f.root, "-untrusted", fx->svc_cert,
			fx->svc_cert, NULL);

	/*
	 * The spy: a service principal of its own (its client id must be its
	 * thing's name, and certfleetd's is taken by certfleetd), and a second
	 * policy on its certificate for all of P/#.
	 */
	cf_test_certfleet(&fx->f, 0, "service", "create", "e2e-spy", "--out-dir",
			  cf_test_tpath(&fx->f, "spy"), NULL);
	fx->spy_cert = cf_test_tpath(&fx->f, "spy/e2e-spy.pem");
	fx->spy_key = cf_test_tpath(&fx->f, "spy/e2e-spy.key");
	spy_policy = cf_test_tpath(&fx->f, "spy-policy.json");
	cf_test_write_text(spy_policy,
			   "{\"version\": 1, \"statements\": [{\"effect\": \"allow\", "
			   "\"actions\": [\"subscribe\", \"receive\"], "
			   "\"resources\": [\"" P "#\"]}]}",
			   0644);
	cf_test_certfleet(&fx->f, 0, "policy", "create", "spy", "--file", spy_policy, NULL);
	cf_test_certfleet(&fx->f, 0, "policy", "attach", "spy", "--cert",
			  cf_test_ossl_cert_id(&fx->f, fx->spy_cert), NULL);

	/* Made after the principals, so that the plugin's first index has them. */
	chain = cf_test_tpath(&fx->f, "certfleet-chain.pem");
	cf_test_cat(&fx->f, chain, 0644, fx->f.root, fx->f.inter, NULL);
	plugin = cf_test_broker_plugin_conf(fx->db, 100);
	assert_non_null(plugin);
	rc = cf_test_broker_start(&fx->broker, cf_test_tpath(&fx->f, "broker"), chain, plugin);
	free(plugin);
	assert_int_equal(rc, 0);
	cf_test_cat(&fx->f, cf_test_dpath(&fx->f, "broker-ca.pem"), 0644,
		    cf_test_broker_ca_file(fx->broker), NULL);
	fx->dev_ca = cf_test_tpath(&fx->f, "device-ca.pem");
	cf_test_cat(&fx->f, fx->dev_ca, 0644, cf_test_broker_ca_file(fx->broker), fx->f.root, NULL);

	snprintf(port, sizeof(port), "%d", cf_test_broker_port(fx->broker));
	cf_test_config_set(&fx->f, "mqtt_host", "127.0.0.1", 0600);
	cf_test_config_set(&fx->f, "mqtt_port", port, 0600);
	cf_test_config_set(&fx->f, "mqtt_reconnect_max", "2s", 0600);
	cf_test_config_set(&fx->f, "rotation_resend_interval", "2s", 0600);
	cf_test_config_set(&fx->f, "rotation_deadline", "5m", 0600);

	fx->spy_out = cf_test_tpath(&fx->f, "spy.out");
	assert_int_equal(cf_test_mqtt_sub_start(&fx->spy, fx->broker, fx->spy_cert, fx->spy_key,
						"e2e-spy", spy_topics, fx->spy_out),
			 0);
	/* P/# granted: certfleet-service alone would not (the plugin logs "denied subscribe"). */
	assert_int_equal(
		cf_test_file_count(cf_test_broker_log_file(fx->broker), "certfleet: denied"), 0);
}

static void
daemon_start(struct fx *fx)
{
	const char *argv[] = { g_daemon, "--data-dir", fx->f.data, NULL };

	assert_null(fx->daemon);
	assert_int_equal(cf_test_bg_start(&fx->daemon, argv, fx->daemon_log, fx->daemon_log), 0);
	fx->daemon_starts++;
	if (cf_test_file_wait(fx->daemon_log, "event=mqtt_connected", fx->daemon_starts, WAIT_MS) !=
	    0) {
		dump_logs(fx);
		fail_msg("certfleetd: no event=mqtt_connected within %d ms (start %zu)", WAIT_MS,
			 fx->daemon_starts);
	}
}

/* SIGKILL certfleetd, as a crash at this instant. */
static void
daemon_kill(struct fx *fx)
{
	assert_int_equal(cf_test_bg_signal(fx->daemon, SIGKILL), 0);
	assert_int_equal(cf_test_bg_wait(fx->daemon, 10000), 128 + SIGKILL);
	cf_test_bg_free(fx->daemon);
	fx->daemon = NULL;
}

/* SIGTERM: certfleetd drains and exits 0 (a leak report under ASan would change that). */
static void
daemon_stop(struct fx *fx)
{
	int status = cf_test_bg_stop(fx->daemon, 20000);

	cf_test_bg_free(fx->daemon);
	fx->daemon = NULL;
	if (status != 0) {
		dump_logs(fx);
		fail_msg("certfleetd exited with %d after SIGTERM", status);
	}
	assert_no_sanitizer_report(fx, fx->daemon_log);
	assert_no_denials(fx);
}

/*
 * n simulated devices PREFIX00001.. in s's state dir, with certificates
 * expiring in expires_in (whole days); returns once the broker admits the
 * last one (the plugin reads a certificate it does not know yet from the
 * registry, so this is at once: a check that the provisioned identities
 * are admissible, before the simulator depends on them).
 */
static void
sim_provision_in(struct fx *fx, struct sim *s, const char *prefix, int n, const char *expires_in)
{
	const char *argv[] = { g_sim,          "provision", "--data-dir", fx->f.data, "--state-dir",
			       s->state,       "--devices", NULL,         "--prefix", prefix,
			       "--expires-in", expires_in,  NULL };
	const char *last, *name;
	int64_t deadline;

	if (access(g_sim, X_OK) != 0)
		fail_msg("no simulator at %s", g_sim);
	argv[7] = cf_test_keep(&fx->f, cf_test_printf("%d", n));
	cf_test_fleet_run(&fx->f, argv, 0);
	/* The plugin reads the registry's changes in order: the last one seen, all are. */
	name = cf_test_keep(&fx->f, cf_test_printf("%s%05d", prefix, n));
	last = cf_test_keep(&fx->f, cf_test_printf("%s/%s/current/", s->state, name));
	deadline = cf_test_now_ms() + WAIT_MS;
	while (connect_probe(fx, cf_test_keep(&fx->f, cf_test_printf("%scert.pem", last)),
			     cf_test_keep(&fx->f, cf_test_printf("%skey.pem", last)), name) != 0) {
		if (cf_test_now_ms() > deadline) {
			dump_logs(fx);
			fail_msg("%s not admitted by the broker within %d ms", name, WAIT_MS);
		}
		usleep(50 * 1000);
	}
}

/* The fleet of most cases: n devices sim-00001.. expiring in 10 days. */
static void
sim_provision(struct fx *fx, int n)
{
	sim_provision_in(fx, &fx->sim, "sim-", n, "10d");
}

/*
 * certfleet-sim run over the first n devices of s's state dir, with extra
 * arguments ap (NULL-terminated), in the background.
 */
static void
sim_startv(struct fx *fx, struct sim *s, int n, va_list ap)
{
	const char *argv[MAX_ARGV];
	size_t k = 0;

	assert_null(s->run);
	argv[k++] = g_sim;
	argv[k++] = "run";
	argv[k++] = "--state-dir";
	argv[k++] = s->state;
	argv[k++] = "--host";
	argv[k++] = "127.0.0.1";
	argv[k++] = "--port";
	argv[k++] = cf_test_keep(&fx->f, cf_test_printf("%d", cf_test_broker_port(fx->broker)));
	argv[k++] = "--ca-file";
	argv[k++] = fx->dev_ca;
	argv[k++] = "--devices";
	argv[k++] = cf_test_keep(&fx->f, cf_test_printf("%d", n));
	argv[k++] = "--summary";
	argv[k++] = s->summary;
	cf_test_argv_collect(argv, k, MAX_ARGV, ap);
	assert_int_equal(cf_test_bg_start(&s->run, argv, s->log, s->log), 0);
}

/* certfleet-sim run over the fleet's first n devices, with extra arguments (NULL-terminated). */
static CF_TEST_SENTINEL void
sim_start(struct fx *fx, int n, ...)
{
	va_list ap;

	va_start(ap, n);
	sim_startv(fx, &fx->sim, n, ap);
	va_end(ap);
}

/* The same over s's state dir. */
static CF_TEST_SENTINEL void
sim_start_in(struct fx *fx, struct sim *s, int n, ...)
{
	va_list ap;

	va_start(ap, n);
	sim_startv(fx, s, n, ap);
	va_end(ap);
}

/* Wait for the simulator run of s to end by itself: its exit status. */
static int
sim_wait_in(struct fx *fx, struct sim *s, int timeout_ms)
{
	int status = cf_test_bg_wait(s->run, timeout_ms);

	if (status < 0) {
		dump_logs(fx);
		fail_msg("certfleet-sim (%s) still running after %d ms", s->state, timeout_ms);
	}
	cf_test_bg_free(s->run);
	s->run = NULL;
	assert_no_sanitizer_report(fx, s->log);
	return status;
}

static int
sim_wait(struct fx *fx, int timeout_ms)
{
	return sim_wait_in(fx, &fx->sim, timeout_ms);
}

/*
 * Stop a simulator run with SIGTERM. Its documented exits: 0 without a
 * goal (--duration), 3 when stopped before its --until-rotated goal.
 */
static void
sim_stop(struct fx *fx)
{
	int status = cf_test_bg_stop(fx->sim.run, 20000);

	cf_test_bg_free(fx->sim.run);
	fx->sim.run = NULL;
	if (status != 0 && status != 3) {
		dump_logs(fx);
		fail_msg("certfleet-sim exited with %d after SIGTERM", status);
	}
	assert_no_sanitizer_report(fx, fx->sim.log);
}

/* Distinct client ids with prefix that the broker sent a SUBACK to. */
static size_t
subscribed_clients(struct fx *fx, const char *prefix)
{
	static const char mark[] = "Sending SUBACK to ";
	char *text = NULL, **names = NULL;
	const char *p, *end;
	size_t n = 0, cap = 0, i, len;
	bool seen;

	if (cf_test_file_read(&text, NULL, cf_test_broker_log_file(fx->broker),
			      256 * 1024 * 1024) != 0)
		return 0;
	for (p = strstr(text, mark); p != NULL; p = strstr(end, mark)) {
		p += strlen(mark);
		end = strchr(p, '\n');
		if (end == NULL)
			break;
		len = (size_t)(end - p);
		if (strncmp(p, prefix, strlen(prefix)) != 0)
			continue;
		seen = false;
		for (i = 0; i < n && !seen; i++)
			seen = strlen(names[i]) == len && strncmp(names[i], p, len) == 0;
		if (seen)
			continue;
		if (n == cap) {
			char **grown = realloc(names, (cap + 64) * sizeof(*names));

			assert_non_null(grown);
			names = grown;
			cap += 64;
		}
		names[n] = strndup(p, len);
		assert_non_null(names[n]);
		n++;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(text);
	return n;
}

struct subs_wait {
	struct fx *fx;
	const char *prefix;
	size_t n;
};

static bool
subs_reached(void *payload)
{
	struct subs_wait *w = payload;

	return subscribed_clients(w->fx, w->prefix) >= w->n;
}

/* Wait until n simulated devices have subscribed (so a csr_req reaches them at once). */
static void
wait_sim_subscribed(struct fx *fx, size_t n)
{
	struct subs_wait w = { fx, "sim-", n };

	if (cf_test_wait_until(subs_reached, &w, 100, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("only %zu of %zu simulated devices subscribed within %d ms",
			 subscribed_clients(fx, "sim-"), n, WAIT_MS);
	}
}

/* ---- the registry ------------------------------------------------------------ */

/* Every rotation: id, thing, old_cert, new_cert, state, error; by thing, then creation. */
static json_t *
rotations(struct fx *fx)
{
	return sql(fx, "SELECT id, thing, old_cert, new_cert, state, error FROM rotations "
		       "ORDER BY thing, created_at, id");
}

struct rot_wait {
	struct fx *fx;
	const char *state;
	size_t n;
};

/* Rotations in state; NULL: all of them. */
static size_t
rotations_in(struct fx *fx, const char *state)
{
	json_t *rows =
		sql(fx, state == NULL ? "SELECT COUNT(*) AS n FROM rotations"
				      : cf_test_keep(&fx->f,
						     cf_test_printf("SELECT COUNT(*) AS n FROM "
								    "rotations WHERE state = '%s'",
								    state)));

	return (size_t)cf_test_jint(json_array_get(rows, 0), "n");
}

static bool
rot_reached(void *payload)
{
	struct rot_wait *w = payload;

	return rotations_in(w->fx, w->state) >= w->n;
}

/* Wait until n rotations are in state (NULL: until there are n). */
static void
wait_rotations(struct fx *fx, const char *state, size_t n, int timeout_ms)
{
	struct rot_wait w = { fx, state, n };

	if (cf_test_wait_until(rot_reached, &w, 200, timeout_ms) != 0) {
		json_t *rows = rotations(fx);
		char *dump = json_dumps(rows, JSON_INDENT(1));

		dump_logs(fx);
		fprintf(stderr, "rotations:\n%s\n", dump != NULL ? dump : "?");
		free(dump);
		fail_msg("%zu rotations %s after %d ms, wanted %zu", rotations_in(fx, state),
			 state != NULL ? state : "in all", timeout_ms, n);
	}
}

/* Certificates ever issued for thing (soft-deleted ones included). */
static size_t
certs_of(struct fx *fx, const char *thing)
{
	json_t *rows =
		sql(fx, cf_test_keep(&fx->f, cf_test_printf("SELECT COUNT(*) AS n FROM certs "
							    "WHERE thing = '%s'",
							    thing)));

	return (size_t)cf_test_jint(json_array_get(rows, 0), "n");
}

static size_t
certs_total(struct fx *fx)
{
	return (size_t)cf_test_jint(json_array_get(sql(fx, "SELECT COUNT(*) AS n FROM certs"), 0),
				    "n");
}

static const char *
cert_status(struct fx *fx, const char *id)
{
	json_t *rows = sql(
		fx, cf_test_keep(&fx->f,
				 cf_test_printf("SELECT status FROM certs WHERE id = '%s'", id)));

	assert_int_equal(json_array_size(rows), 1);
	return cf_test_jstr(json_array_get(rows, 0), "status");
}

/* Whether `certfleet cert list --status ACTIVE` lists id. */
static bool
listed_active(struct fx *fx, const char *id)
{
	json_t *rows = cf_test_certfleet_json(&fx->f, "cert", "list", "--status", "ACTIVE", NULL),
	       *row;
	size_t i;

	assert_true(json_is_array(rows));
	json_array_foreach (rows, i, row) {
		if (strcmp(cf_test_jstr(row, "certificateId"), id) == 0)
			return true;
	}
	return false;
}

/* The registry's PEM of id (`certfleet cert pem`), written to T/cert-ID16.pem: its path. */
static const char *
cert_file(struct fx *fx, const char *id)
{
	json_t *o = cf_test_certfleet_json(&fx->f, "cert", "pem", id, NULL);
	const char *pem =
		cf_test_tpath(&fx->f, cf_test_keep(&fx->f, cf_test_printf("cert-%.16s.pem", id)));

	cf_test_write_text(pem, cf_test_jstr(o, "certificatePem"), 0644);
	return pem;
}

/* The registry's PEM of id, checked with openssl verify against root + intermediate. */
static void
verify_issued(struct fx *fx, const char *id)
{
	const char *pem = cert_file(fx, id);

	assert_string_equal(cf_test_ossl_cert_id(&fx->f, pem), id);
	cf_test_openssl(&fx->f, 0, "verify", "-CAfile", fx->f.root, "-untrusted", fx->f.inter, pem,
			NULL);
	cf_test_assert_contains(fx->f.r.out, ": OK");
}

/*
 * Every rotation COMPLETED, one per thing, each with its own new
 * certificate that is the thing's only ACTIVE one, issued exactly once
 * (the thing has its old and its new certificate, nothing more), the old
 * one INACTIVE and not listed ACTIVE.
 */
static void
assert_all_completed(struct fx *fx, size_t n, bool check_cli_each)
{
	json_t *rows = rotations(fx), *row;
	size_t i;

	assert_int_equal(json_array_size(rows), n);
	json_array_foreach (rows, i, row) {
		const char *thing = cf_test_jstr(row, "thing"),
			   *old_id = cf_test_jstr(row, "old_cert");
		const char *new_id = cf_test_jstr(row, "new_cert");
		json_t *active;

		if (strcmp(cf_test_jstr(row, "state"), "COMPLETED") != 0)
			fail_msg("rotation of %s is %s (error %s)", thing,
				 cf_test_jstr(row, "state"),
				 json_is_string(json_object_get(row, "error"))
					 ? cf_test_jstr(row, "error")
					 : "-");
		assert_string_not_equal(old_id, new_id);
		assert_int_equal(certs_of(fx, thing), 2);
		assert_string_equal(cert_status(fx, new_id), "ACTIVE");
		assert_string_not_equal(cert_status(fx, old_id), "ACTIVE");
		active = sql(fx,
			     cf_test_keep(&fx->f,
					  cf_test_printf("SELECT id FROM certs WHERE thing = '%s' "
							 "AND status = 'ACTIVE'",
							 thing)));
		assert_int_equal(json_array_size(active), 1);
		assert_string_equal(cf_test_jstr(json_array_get(active, 0), "id"), new_id);
		if (check_cli_each || i == 0)
			assert_false(listed_active(fx, old_id));
	}
}

/* ---- devices played by the test ---------------------------------------------- */

/*
 * One line to fd in one write(), so that a reader polling the file never
 * takes half a line for a whole one. Runs on the libmosquitto thread: no
 * cmocka calls here.
 */
static void
line_write(int fd, const char *head, const void *body, size_t body_len)
{
	size_t head_len = strlen(head);
	char *buf = malloc(head_len + body_len + 1);

	if (buf == NULL)
		return;
	memcpy(buf, head, head_len);
	if (body_len > 0)
		memcpy(buf + head_len, body, body_len);
	buf[head_len + body_len] = '\n';
	if (write(fd, buf, head_len + body_len + 1) < 0)
		perror("dev: write");
	free(buf);
}

static void
dev_on_connect(struct mosquitto *mosq, void *payload, int rc)
{
	struct dev *d = payload;
	char head[64], t0[256], t1[256], t2[256];
	char *topics[3] = { t0, t1, t2 };

	snprintf(head, sizeof(head), "c%d connack %d", d->conn, rc);
	line_write(d->events_fd, head, NULL, 0);
	if (rc != 0) {
		/* Refused: stop here (the loop would retry with the same certificate). */
		mosquitto_disconnect(mosq);
		return;
	}
	/* On every connect, as the agent does: the session may have been lost. */
	snprintf(t0, sizeof(t0), P "%s/csr_req", d->name);
	snprintf(t1, sizeof(t1), P "%s/crt", d->name);
	snprintf(t2, sizeof(t2), P "%s/csr_rej", d->name);
	if (mosquitto_subscribe_multiple(mosq, NULL, 3, topics, 1, 0, NULL) != MOSQ_ERR_SUCCESS)
		line_write(d->events_fd, "subscribe failed", NULL, 0);
}

static void
dev_on_subscribe(struct mosquitto *mosq, void *payload, int mid, int n, const int *granted)
{
	struct dev *d = payload;
	char head[128];
	size_t len;
	int i;

	(void)mosq;
	(void)mid;
	len = (size_t)snprintf(head, sizeof(head), "c%d suback", d->conn);
	for (i = 0; i < n && len < sizeof(head) - 8; i++)
		len += (size_t)snprintf(head + len, sizeof(head) - len, " %d", granted[i]);
	line_write(d->events_fd, head, NULL, 0);
}

static void
dev_on_publish(struct mosquitto *mosq, void *payload, int mid)
{
	struct dev *d = payload;
	char head[64];

	(void)mosq;
	snprintf(head, sizeof(head), "c%d puback %d", d->conn, mid);
	line_write(d->events_fd, head, NULL, 0);
}

static void
dev_on_message(struct mosquitto *mosq, void *payload, const struct mosquitto_message *m)
{
	struct dev *d = payload;
	char *head;

	(void)mosq;
	head = cf_test_printf("%s ", m->topic);
	if (head != NULL)
		line_write(d->out_fd, head, m->payload,
			   m->payloadlen > 0 ? (size_t)m->payloadlen : 0);
	free(head);
}

/* Wait for this connection's line "cN what" in the device's events file; false on timeout. */
static bool
dev_event_wait(struct fx *fx, struct dev *d, const char *what, int timeout_ms)
{
	return cf_test_file_wait(d->events,
				 cf_test_keep(&fx->f, cf_test_printf("c%d %s", d->conn, what)), 1,
				 timeout_ms) == 0;
}

/* Close the device's connection (DISCONNECT: its session stays on the broker). */
static void
dev_disconnect(struct dev *d)
{
	if (d->mosq != NULL) {
		mosquitto_disconnect(d->mosq);
		mosquitto_loop_stop(d->mosq, false);
		mosquitto_destroy(d->mosq);
		d->mosq = NULL;
	}
	if (d->out_fd > 0)
		close(d->out_fd);
	if (d->events_fd > 0)
		close(d->events_fd);
	d->out_fd = -1;
	d->events_fd = -1;
}

/*
 * Connect as the device with cert and key, and subscribe to its three
 * topics. false when the broker refused the connection (the plugin has not
 * seen the certificate yet, or will not admit it); the case fails when the
 * broker does not answer or refuses a subscription.
 */
static bool
dev_connect(struct fx *fx, struct dev *d, const char *cert, const char *key)
{
	struct mosquitto *mosq;

	assert_null(d->mosq);
	d->conn++;
	d->out_fd = open(d->sub_out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	d->events_fd = open(d->events, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(d->out_fd > 0 && d->events_fd > 0);
	mosq = mosquitto_new(d->name, false, d);
	assert_non_null(mosq);
	d->mosq = mosq;
	mosquitto_connect_callback_set(mosq, dev_on_connect);
	mosquitto_subscribe_callback_set(mosq, dev_on_subscribe);
	mosquitto_publish_callback_set(mosq, dev_on_publish);
	mosquitto_message_callback_set(mosq, dev_on_message);
	assert_int_equal(
		mosquitto_tls_set(mosq, cf_test_broker_ca_file(fx->broker), NULL, cert, key, NULL),
		MOSQ_ERR_SUCCESS);
	assert_int_equal(
		mosquitto_connect_async(mosq, "127.0.0.1", cf_test_broker_port(fx->broker), 60),
		MOSQ_ERR_SUCCESS);
	assert_int_equal(mosquitto_loop_start(mosq), MOSQ_ERR_SUCCESS);
	if (!dev_event_wait(fx, d, "connack ", WAIT_MS)) {
		dump_logs(fx);
		fail_msg("%s: no CONNACK within %d ms", d->name, WAIT_MS);
	}
	if (!dev_event_wait(fx, d, "connack 0\n", 0)) {
		dev_disconnect(d);
		return false;
	}
	/* All three granted at QoS 1: the plugin refuses a subscription with 0x80 (128). */
	if (!dev_event_wait(fx, d, "suback 1 1 1\n", WAIT_MS)) {
		dump_logs(fx);
		fail_msg("%s: its subscriptions were not granted within %d ms", d->name, WAIT_MS);
	}
	d->cert = cert;
	d->key = key;
	return true;
}

/*
 * Connect with cert and key, waiting for the plugin to see the
 * certificate: it reads the registry every 100 ms here, and a certificate
 * it has not read yet is refused (reason=unknown_certificate).
 */
static void
dev_connect_wait(struct fx *fx, struct dev *d, const char *cert, const char *key)
{
	int64_t deadline = cf_test_now_ms() + WAIT_MS;

	while (!dev_connect(fx, d, cert, key)) {
		if (cf_test_now_ms() > deadline) {
			dump_logs(fx);
			fail_msg("%s: refused by the broker for %d ms", d->name, WAIT_MS);
		}
		usleep(50 * 1000);
	}
}

/* A thing with a certificate certfleet issued from an openssl CSR, connected as it. */
static struct dev *
dev_new(struct fx *fx, const char *name)
{
	cf_test_identity id;
	struct dev *d;

	assert_true(fx->ndev < MAX_DEV);
	d = &fx->dev[fx->ndev++];
	d->out_fd = -1;
	d->events_fd = -1;
	cf_test_identity_new(&id, &fx->f, name,
			     cf_test_keep(&fx->f, cf_test_printf("/CN=%s", name)), NULL);
	assert_string_equal(id.id, cf_test_ossl_cert_id(&fx->f, id.cert));
	d->name = name;
	d->id = id.id;
	d->cert0 = id.cert;
	d->key0 = id.key;
	d->sub_out = cf_test_tpath(&fx->f, cf_test_keep(&fx->f, cf_test_printf("%s.sub", name)));
	d->events = cf_test_tpath(&fx->f, cf_test_keep(&fx->f, cf_test_printf("%s.events", name)));
	dev_connect_wait(fx, d, id.cert, id.key);
	return d;
}

/*
 * The device takes its new certificate: it disconnects and connects with
 * it (the same client id and session), as the agent does before crt_ack.
 */
static void
dev_use(struct fx *fx, struct dev *d, const char *cert, const char *key)
{
	dev_disconnect(d);
	dev_connect_wait(fx, d, cert, key);
}

/* Publish as the device to P/name/kind, QoS 1; returns once the broker acknowledged it. */
static void
dev_pub(struct fx *fx, struct dev *d, const char *kind, const char *payload)
{
	const char *topic = cf_test_keep(&fx->f, cf_test_printf(P "%s/%s", d->name, kind));
	int mid = 0;

	assert_non_null(d->mosq);
	assert_int_equal(
		mosquitto_publish(d->mosq, &mid, topic, (int)strlen(payload), payload, 1, false),
		MOSQ_ERR_SUCCESS);
	if (!dev_event_wait(fx, d, cf_test_keep(&fx->f, cf_test_printf("puback %d\n", mid)),
			    WAIT_MS)) {
		dump_logs(fx);
		fail_msg("publish as %s to %s: no PUBACK within %d ms", d->name, topic, WAIT_MS);
	}
}

/*
 * Connect with cert and key as client_id with mosquitto_sub -E (which
 * exits once its subscription to the device's csr_req is acknowledged,
 * publishing nothing): its exit status, 0 when the broker admitted it. A
 * clean session: it ends the device's persistent session.
 */
static int
connect_probe(struct fx *fx, const char *cert, const char *key, const char *client_id)
{
	cf_test_result r = CF_TEST_RESULT_INIT;
	char port[16];
	int status;

	snprintf(port, sizeof(port), "%d", cf_test_broker_port(fx->broker));
	assert_int_equal(
		cf_test_runl(&r, 30, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "--cafile",
			     cf_test_broker_ca_file(fx->broker), "--cert", cert, "--key", key, "-i",
			     client_id, "-q", "1", "-t",
			     cf_test_keep(&fx->f, cf_test_printf(P "%s/csr_req", client_id)), "-E",
			     "-W", "10", NULL),
		0);
	status = r.status;
	cf_test_result_clear(&r);
	return status;
}

/*
 * After a completed rotation: the old certificate no longer connects as
 * the thing (once the plugin has read the change: polled, at most 10 s),
 * the new one does. Run when the device itself is offline: a probe
 * admitted as the thing would take its place.
 */
static void
assert_old_refused_new_admitted(struct fx *fx, const char *thing, const char *old_cert,
				const char *old_key, const char *new_cert, const char *new_key)
{
	const char *log = cf_test_broker_log_file(fx->broker);
	const char *refused =
		cf_test_keep(&fx->f, cf_test_printf("certfleet: refused client_id=%s ", thing));
	size_t before = cf_test_file_count(log, refused);
	int64_t t0 = cf_test_now_ms();
	int status;

	do {
		status = connect_probe(fx, old_cert, old_key, thing);
	} while (status == 0 && cf_test_now_ms() - t0 < 10000);
	if (status == 0) {
		dump_logs(fx);
		fail_msg("%s: the old certificate still connects 10 s after the rotation", thing);
	}
	/* The plugin refused it, for its status (INACTIVE, or deleted after the rotation). */
	assert_true(cf_test_file_count(log, refused) > before);
	assert_int_equal(connect_probe(fx, new_cert, new_key, thing), 0);
}

/*
 * What the broker log says of a run where everything was allowed: the
 * plugin was loaded, and it denied no publish, subscription or delivery.
 */
static void
assert_no_denials(struct fx *fx)
{
	const char *log = cf_test_broker_log_file(fx->broker);

	assert_true(cf_test_file_count(log, "certfleet: ") > 0);
	assert_true(cf_test_file_count(log, " certificates indexed") > 0);
	if (cf_test_file_count(log, "certfleet: denied") != 0 ||
	    cf_test_file_count(log, "topic refusals not logged") != 0) {
		dump_logs(fx);
		fail_msg("the broker denied a topic in a normal run (see its log)");
	}
}

/*
 * The broker admitted each of the simulated devices prefix00001..prefixN
 * at least min times: Mosquitto logs "New client connected ... as NAME
 * (p2, c0, k60)" only once the plugin's CONNECT check has passed; c0 is a
 * persistent session, the simulator's (the test's probes are c1).
 */
static void
assert_admitted(struct fx *fx, const char *prefix, size_t n, size_t min)
{
	const char *log = cf_test_file_text(&fx->f, cf_test_broker_log_file(fx->broker)), *p;
	char as[128];
	size_t i, seen;

	for (i = 1; i <= n; i++) {
		snprintf(as, sizeof(as), " as %s%05zu (p2, c0,", prefix, i);
		seen = 0;
		for (p = strstr(log, as); p != NULL && seen < min; p = strstr(p + 1, as))
			seen++;
		if (seen < min) {
			dump_logs(fx);
			fail_msg("the broker admitted%s%zu times, not %zu", as, seen, min);
		}
	}
}

/*
 * A simulated device after its rotation (the simulator stopped): its old
 * certificate (previous/) is refused, its new one (current/) admitted.
 */
static void
assert_sim_old_refused(struct fx *fx, const char *thing)
{
	const char *dir = cf_test_keep(&fx->f, cf_test_printf("%s/%s", fx->sim.state, thing));

	assert_old_refused_new_admitted(
		fx, thing, cf_test_keep(&fx->f, cf_test_printf("%s/previous/cert.pem", dir)),
		cf_test_keep(&fx->f, cf_test_printf("%s/previous/key.pem", dir)),
		cf_test_keep(&fx->f, cf_test_printf("%s/current/cert.pem", dir)),
		cf_test_keep(&fx->f, cf_test_printf("%s/current/key.pem", dir)));
}

/* The payload of the nth (from 1) "TOPIC PAYLOAD" line for topic in file, waiting for it. */
static json_t *
msg_in(struct fx *fx, const char *file, const char *topic, size_t nth)
{
	const char *prefix = cf_test_keep(&fx->f, cf_test_printf("%s ", topic)), *text, *p, *end;
	size_t seen = 0;

	if (cf_test_file_wait(file, prefix, nth, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("no message %zu on %s within %d ms", nth, topic, WAIT_MS);
	}
	text = cf_test_file_text(&fx->f, file);
	for (p = text; p != NULL && *p != '\0'; p = end != NULL ? end + 1 : NULL) {
		end = strchr(p, '\n');
		if (strncmp(p, prefix, strlen(prefix)) != 0 || ++seen < nth)
			continue;
		p += strlen(prefix);
		return cf_test_json_parse(
			&fx->f, cf_test_keep(&fx->f, strndup(p, end != NULL ? (size_t)(end - p)
									    : strlen(p))));
	}
	fail_msg("message %zu on %s vanished", nth, topic);
	return NULL;
}

static size_t
msg_count(struct fx *fx, const char *file, const char *topic)
{
	return cf_test_file_count(file, cf_test_keep(&fx->f, cf_test_printf("%s ", topic)));
}

/* What the device's mosquitto_sub received on P/name/kind, the nth time. */
static json_t *
dev_msg(struct fx *fx, struct dev *d, const char *kind, size_t nth)
{
	return msg_in(fx, d->sub_out,
		      cf_test_keep(&fx->f, cf_test_printf(P "%s/%s", d->name, kind)), nth);
}

static size_t
dev_count(struct fx *fx, struct dev *d, const char *kind)
{
	return msg_count(fx, d->sub_out,
			 cf_test_keep(&fx->f, cf_test_printf(P "%s/%s", d->name, kind)));
}

/* A fresh key and CSR (openssl) for the device: the csr_res payload for rotation rid. */
static const char *
dev_csr_res(struct fx *fx, struct dev *d, const char *tag, const char *keyspec, const char *rid)
{
	const char *name = cf_test_keep(&fx->f, cf_test_printf("%s-%s", d->name, tag));

	return cf_test_csr_res(&fx->f, cf_test_csr_new(&fx->f, name, keyspec, "/CN=ignored"), rid);
}

/* certfleet rotate start --thing NAME: the rotation id it prints. */
static const char *
rotate_start(struct fx *fx, const char *thing)
{
	const char *id;

	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--thing", thing, NULL);
	id = cf_test_chomp(&fx->f, fx->f.r.out);
	assert_int_equal(strlen(id), 32);
	return id;
}

/* Check a crt message: its certificate is for key_path's key, chains, and has the right id. */
static const char *
check_crt(struct fx *fx, json_t *crt, const char *rid, const char *csr_key)
{
	size_t n = fx->ncrt++;
	const char *pem =
		cf_test_tpath(&fx->f, cf_test_keep(&fx->f, cf_test_printf("crt-%zu.pem", n)));
	const char *chain =
		cf_test_tpath(&fx->f, cf_test_keep(&fx->f, cf_test_printf("chain-%zu.pem", n)));
	const char *id = cf_test_jstr(crt, "certificateId");

	assert_string_equal(cf_test_jstr(crt, "rotationId"), rid);
	cf_test_write_text(pem, cf_test_jstr(crt, "certificatePem"), 0644);
	cf_test_write_text(chain, cf_test_jstr(crt, "caChainPem"), 0644);
	assert_string_equal(cf_test_ossl_cert_id(&fx->f, pem), id);
	assert_string_equal(cf_test_ossl_pubkey(&fx->f, "x509", pem),
			    cf_test_ossl_pubkey(&fx->f, "pkey", csr_key));
	cf_test_openssl(&fx->f, 0, "verify", "-CAfile", fx->f.root, "-untrusted", chain, pem, NULL);
	cf_test_assert_contains(fx->f.r.out, ": OK");
	return id;
}

static json_t *
rotation_row(struct fx *fx, const char *rid)
{
	json_t *rows =
		sql(fx, cf_test_keep(&fx->f,
				     cf_test_printf("SELECT id, thing, old_cert, new_cert, "
						    "state, error FROM rotations WHERE id = '%s'",
						    rid)));

	assert_int_equal(json_array_size(rows), 1);
	return json_array_get(rows, 0);
}

struct state_wait {
	struct fx *fx;
	const char *rid, *state;
};

static bool
state_reached(void *payload)
{
	struct state_wait *w = payload;

	return strcmp(cf_test_jstr(rotation_row(w->fx, w->rid), "state"), w->state) == 0;
}

/* COMPLETED or FAILED. */
static bool
settled(void *payload)
{
	struct state_wait *w = payload;
	const char *st = cf_test_jstr(rotation_row(w->fx, w->rid), "state");

	return strcmp(st, "COMPLETED") == 0 || strcmp(st, "FAILED") == 0;
}

static void
wait_state(struct fx *fx, const char *rid, const char *state, int timeout_ms)
{
	struct state_wait w = { fx, rid, state };

	if (cf_test_wait_until(state_reached, &w, 100, timeout_ms) != 0) {
		dump_logs(fx);
		fail_msg("rotation %s is %s, not %s, after %d ms", rid,
			 cf_test_jstr(rotation_row(fx, rid), "state"), state, timeout_ms);
	}
}

/* ---- cases: the simulator ---------------------------------------------------- */

/* One simulated device, rotated end to end; the CLI's rotate verbs see it. */
static void
test_rotation_e2e__happy_path_one(void **state)
{
	struct fx *fx = *state;
	json_t *rows, *sum, *pols;
	const char *rid, *policy;
	size_t before;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 1);
	/* An extra policy on the old certificate: the new one must inherit both. */
	rows = cf_test_certfleet_json(&fx->f, "cert", "list", "--status", "ACTIVE", "--thing",
				      "sim-00001", NULL);
	assert_int_equal(json_array_size(rows), 1);
	policy = cf_test_tpath(&fx->f, "telemetry.json");
	cf_test_write_text(policy,
			   "{\"version\": 1, \"statements\": [{\"effect\": \"allow\", "
			   "\"actions\": [\"publish\"], \"resources\": "
			   "[\"telemetry/${clientid}/data\"]}]}",
			   0644);
	cf_test_certfleet(&fx->f, 0, "policy", "create", "telemetry", "--file", policy, NULL);
	cf_test_certfleet(&fx->f, 0, "policy", "attach", "telemetry", "--cert",
			  cf_test_jstr(json_array_get(rows, 0), "certificateId"), NULL);
	before = certs_total(fx);
	sim_start(fx, 1, "--until-rotated", "1", "--timeout", "90s", NULL);
	wait_sim_subscribed(fx, 1);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	rid = cf_test_chomp(&fx->f, fx->f.r.out);
	assert_int_equal(strlen(rid), 32);
	assert_int_equal(sim_wait(fx, 100000), 0);
	wait_rotations(fx, "COMPLETED", 1, WAIT_MS);
	assert_all_completed(fx, 1, true);
	assert_int_equal(certs_total(fx), before + 1);
	rows = rotations(fx);
	assert_string_equal(cf_test_jstr(json_array_get(rows, 0), "id"), rid);
	verify_issued(fx, cf_test_jstr(json_array_get(rows, 0), "new_cert"));
	pols = json_object_get(cf_test_certfleet_json(&fx->f, "cert", "describe",
						      cf_test_jstr(json_array_get(rows, 0),
								   "new_cert"),
						      NULL),
			       "policies");
	assert_int_equal(json_array_size(pols), 2);
	cf_test_assert_contains(cf_test_keep(&fx->f, json_dumps(pols, JSON_COMPACT)),
				"\"telemetry\"");
	cf_test_assert_contains(cf_test_keep(&fx->f, json_dumps(pols, JSON_COMPACT)),
				"\"certfleet-device\"");
	/* The protocol as the spy saw it: one csr_res, one crt, one crt_ack. */
	assert_true(
		msg_count(fx, fx->spy_out,
			  cf_test_keep(&fx->f, cf_test_printf(P "%s/crt_ack",
							      cf_test_jstr(json_array_get(rows, 0),
									   "thing")))) >= 1);
	/* The CLI agrees with the registry. */
	rows = cf_test_certfleet_json(&fx->f, "rotate", "list", "--state", "COMPLETED", NULL);
	assert_int_equal(json_array_size(rows), 1);
	assert_true(
		json_is_object(cf_test_certfleet_json(&fx->f, "rotate", "describe", rid, NULL)));
	sum = cf_test_json_parse(&fx->f, cf_test_file_text(&fx->f, fx->sim.summary));
	assert_int_equal(cf_test_jint(sum, "rotated"), 1);
	assert_int_equal(cf_test_jint(sum, "failed"), 0);
	assert_string_equal(cf_test_jstr(sum, "outcome"), "until_rotated");
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	/* The plugin admitted the device with its old, then its new certificate; now only the new.
	 */
	assert_admitted(fx, "sim-", 1, 2);
	assert_sim_old_refused(fx, "sim-00001");
	daemon_stop(fx);
}

/*
 * The broker restarts in the middle of a mass rotation: devices lose their
 * connections under the csr_req / crt / reconnect exchange, and a handshake
 * cut short looks like a refused certificate. Every rotation still
 * completes, none fails, one new certificate each.
 */
static void
test_rotation_e2e__broker_restart_mid_rotation(void **state)
{
	struct fx *fx = *state;
	json_t *sum;
	size_t before;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 100);
	before = certs_total(fx);
	sim_start(fx, 100, "--until-rotated", "100", "--timeout", "150s", NULL);
	wait_sim_subscribed(fx, 100);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	/* A third of the certificates are out: devices are reconnecting with them. */
	assert_int_equal(cf_test_file_wait(fx->spy_out, "/crt {", 33, WAIT_MS), 0);
	broker_restart(fx);
	assert_int_equal(sim_wait(fx, 160000), 0);
	sum = cf_test_json_parse(&fx->f, cf_test_file_text(&fx->f, fx->sim.summary));
	assert_int_equal(cf_test_jint(sum, "rotated"), 100);
	assert_int_equal(cf_test_jint(sum, "failed"), 0);
	wait_rotations(fx, "COMPLETED", 100, WAIT_MS);
	assert_all_completed(fx, 100, false);
	assert_int_equal(certs_total(fx), before + 100);
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	daemon_stop(fx);
}

/* 200 simulated devices whose certificates expire in 10 days, all rotated. */
static void
test_rotation_e2e__happy_path_200(void **state)
{
	struct fx *fx = *state;
	json_t *rows;
	size_t before;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 200);
	before = certs_total(fx);
	sim_start(fx, 200, "--until-rotated", "200", "--timeout", "150s", NULL);
	wait_sim_subscribed(fx, 200);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	assert_int_equal(sim_wait(fx, 160000), 0);
	assert_int_equal(
		cf_test_jint(cf_test_json_parse(&fx->f, cf_test_file_text(&fx->f, fx->sim.summary)),
			     "rotated"),
		200);
	wait_rotations(fx, "COMPLETED", 200, WAIT_MS);
	assert_all_completed(fx, 200, false);
	/* Exactly one new certificate per rotation. */
	assert_int_equal(certs_total(fx), before + 200);
	rows = rotations(fx);
	verify_issued(fx, cf_test_jstr(json_array_get(rows, 0), "new_cert"));
	verify_issued(fx, cf_test_jstr(json_array_get(rows, 199), "new_cert"));
	assert_int_equal(json_array_size(cf_test_certfleet_json(&fx->f, "rotate", "list", "--state",
								"COMPLETED", NULL)),
			 200);
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	/* Every device was admitted with its old and its new certificate; the old ones are out. */
	assert_admitted(fx, "sim-", 200, 2);
	assert_sim_old_refused(fx, "sim-00001");
	assert_sim_old_refused(fx, "sim-00200");
	daemon_stop(fx);
}

/* The device refuses the new certificate: crt_err, rotation FAILED, new cert INACTIVE. */
static void
test_rotation_e2e__crt_err(void **state)
{
	struct fx *fx = *state;
	json_t *row;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 1);
	sim_start(fx, 1, "--fault", "refuse_cert", "--duration", "90s", NULL);
	wait_sim_subscribed(fx, 1);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	wait_rotations(fx, "FAILED", 1, WAIT_MS);
	sim_stop(fx);
	row = json_array_get(rotations(fx), 0);
	assert_true(json_is_string(json_object_get(row, "new_cert")));
	assert_true(strlen(cf_test_jstr(row, "error")) > 0);
	/* The device's crt_err went through the broker. */
	assert_int_equal(
		msg_count(fx, fx->spy_out,
			  cf_test_keep(&fx->f,
				       cf_test_printf(P "%s/crt_err", cf_test_jstr(row, "thing")))),
		1);
	assert_string_equal(cert_status(fx, cf_test_jstr(row, "new_cert")), "INACTIVE");
	assert_string_equal(cert_status(fx, cf_test_jstr(row, "old_cert")), "ACTIVE");
	assert_true(listed_active(fx, cf_test_jstr(row, "old_cert")));
	assert_false(listed_active(fx, cf_test_jstr(row, "new_cert")));
	assert_int_equal(certs_of(fx, cf_test_jstr(row, "thing")), 2);
	daemon_stop(fx);
}

/* A CSR with a weak key (fault weak_csr): csr_rej WEAK_KEY, nothing issued. */
static void
test_rotation_e2e__weak_key(void **state)
{
	struct fx *fx = *state;
	json_t *row, *rej;
	const char *thing;
	size_t before;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 1);
	before = certs_total(fx);
	sim_start(fx, 1, "--fault", "weak_csr", "--duration", "90s", NULL);
	wait_sim_subscribed(fx, 1);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	row = json_array_get(rotations(fx), 0);
	thing = cf_test_jstr(row, "thing");
	rej = msg_in(fx, fx->spy_out, cf_test_keep(&fx->f, cf_test_printf(P "%s/csr_rej", thing)),
		     1);
	assert_string_equal(cf_test_jstr(rej, "code"), "WEAK_KEY");
	sim_stop(fx);
	assert_int_equal(certs_total(fx), before);
	row = json_array_get(rotations(fx), 0);
	assert_string_equal(cf_test_jstr(row, "state"), "REQUESTED");
	assert_string_equal(cert_status(fx, cf_test_jstr(row, "old_cert")), "ACTIVE");
	daemon_stop(fx);
}

/* A CSR for the old key while rekey is required (fault reuse_key): csr_rej KEY_REUSE. */
static void
test_rotation_e2e__key_reuse(void **state)
{
	struct fx *fx = *state;
	json_t *row, *rej;
	size_t before;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 1);
	before = certs_total(fx);
	sim_start(fx, 1, "--fault", "reuse_key", "--duration", "90s", NULL);
	wait_sim_subscribed(fx, 1);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	row = json_array_get(rotations(fx), 0);
	rej = msg_in(
		fx, fx->spy_out,
		cf_test_keep(&fx->f, cf_test_printf(P "%s/csr_rej", cf_test_jstr(row, "thing"))),
		1);
	assert_string_equal(cf_test_jstr(rej, "code"), "KEY_REUSE");
	assert_string_equal(cf_test_jstr(rej, "rotationId"), cf_test_jstr(row, "id"));
	sim_stop(fx);
	assert_int_equal(certs_total(fx), before);
	assert_string_equal(cf_test_jstr(json_array_get(rotations(fx), 0), "state"), "REQUESTED");
	daemon_stop(fx);
}

/*
 * A device offline while its csr_req is sent: the broker keeps it in the
 * device's persistent session. The re-send timer is set to an hour, so
 * the rotation can only complete through the queued message.
 */
static void
test_rotation_e2e__offline_device_gets_queued_csr_req(void **state)
{
	struct fx *fx = *state;
	json_t *row;
	const char *topic;

	world(fx);
	cf_test_config_set(&fx->f, "rotation_resend_interval", "1h", 0600);
	daemon_start(fx);
	sim_provision(fx, 1);
	/* A first run makes the device's session and subscriptions, then it goes away. */
	sim_start(fx, 1, "--duration", "2s", NULL);
	wait_sim_subscribed(fx, 1);
	assert_int_equal(sim_wait(fx, 30000), 0);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	row = json_array_get(rotations(fx), 0);
	topic = cf_test_keep(&fx->f, cf_test_printf(P "%s/csr_req", cf_test_jstr(row, "thing")));
	/* The daemon published csr_req (the spy saw it) while the device was offline. */
	msg_in(fx, fx->spy_out, topic, 1);
	sim_start(fx, 1, "--until-rotated", "1", "--timeout", "60s", NULL);
	assert_int_equal(sim_wait(fx, 70000), 0);
	wait_rotations(fx, "COMPLETED", 1, WAIT_MS);
	assert_all_completed(fx, 1, true);
	/* No re-send happened: the one queued csr_req did it. */
	assert_int_equal(msg_count(fx, fx->spy_out, topic), 1);

	/* The simulator's own offline fault: the device drops away and comes back. */
	daemon_stop(fx);
	cf_test_config_set(&fx->f, "rotation_resend_interval", "2s", 0600);
	daemon_start(fx);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "400d", NULL);
	sim_start(fx, 1, "--fault", "offline=3s", "--until-rotated", "1", "--timeout", "90s", NULL);
	assert_int_equal(sim_wait(fx, 100000), 0);
	wait_rotations(fx, "COMPLETED", 2, WAIT_MS);
	daemon_stop(fx);
}

/*
 * A device killed between storing the new certificate and crt_ack (fault
 * crash_before_ack: after switching to the new certificate; crash_after_store:
 * before using it): it comes back with a certificate the server accepts, and
 * the rotation completes or fails cleanly, with exactly one ACTIVE
 * certificate for the thing; a later rotation of the device completes.
 */
static void
crash_case(struct fx *fx, const char *fault)
{
	struct state_wait w = { NULL, NULL, NULL };
	json_t *row, *active;
	const char *thing, *st, *rid;
	size_t connects;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 1);
	sim_start(fx, 1, "--fault", fault, "--duration", "90s", NULL);
	wait_sim_subscribed(fx, 1);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	rid = cf_test_chomp(&fx->f, fx->f.r.out);
	row = rotation_row(fx, rid);
	thing = cf_test_jstr(row, "thing");
	w.fx = fx;
	w.rid = rid;
	/* Wait for the end state, whichever it is. */
	if (cf_test_wait_until(settled, &w, 200, 60000) != 0) {
		dump_logs(fx);
		fail_msg("rotation after %s is %s after 60 s", fault,
			 cf_test_jstr(rotation_row(fx, rid), "state"));
	}
	st = cf_test_jstr(rotation_row(fx, rid), "state");
	sim_stop(fx);
	/* The fault did happen: the simulator counted the crash. */
	assert_int_equal(
		cf_test_jint(cf_test_json_parse(&fx->f, cf_test_file_text(&fx->f, fx->sim.summary)),
			     "crashes"),
		1);
	row = rotation_row(fx, rid);
	assert_int_equal(certs_of(fx, thing), 2);
	active = sql(fx, cf_test_keep(&fx->f,
				      cf_test_printf("SELECT id FROM certs WHERE thing = '%s' AND "
						     "status = 'ACTIVE'",
						     thing)));
	assert_int_equal(json_array_size(active), 1);
	assert_string_equal(
		cf_test_jstr(json_array_get(active, 0), "id"),
		cf_test_jstr(row, strcmp(st, "COMPLETED") == 0 ? "new_cert" : "old_cert"));

	/* The device works with what it kept: a new rotation completes without faults. */
	connects = cf_test_file_count(cf_test_broker_log_file(fx->broker),
				      cf_test_keep(&fx->f, cf_test_printf(" as %s ", thing)));
	rid = rotate_start(fx, thing);
	sim_start(fx, 1, "--until-rotated", "1", "--timeout", "60s", NULL);
	assert_int_equal(sim_wait(fx, 70000), 0);
	wait_state(fx, rid, "COMPLETED", WAIT_MS);
	assert_true(cf_test_file_count(cf_test_broker_log_file(fx->broker),
				       cf_test_keep(&fx->f, cf_test_printf(" as %s ", thing))) >
		    connects);
	daemon_stop(fx);
}

static void
test_rotation_e2e__crash_before_ack(void **state)
{
	crash_case(*state, "crash_before_ack");
}

static void
test_rotation_e2e__crash_after_store(void **state)
{
	crash_case(*state, "crash_after_store");
}

/*
 * certfleetd SIGKILLed after each protocol step the spy sees (csr_req out,
 * csr_res in, crt out, crt_ack in, at growing counts so that the kills
 * spread over the run) and restarted each time, under 20 simulated
 * devices: every rotation still completes, with one certificate each.
 */
static void
test_rotation_e2e__daemon_sigkill_each_step(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *step;
		size_t n;
	} kills[] = { { "/csr_req ", 1 },
		      { "/csr_res ", 1 },
		      { "/crt ", 5 },
		      { "/crt_ack ", 10 },
		      { "/crt_ack ", 15 } };
	size_t before, i;

	world(fx);
	daemon_start(fx);
	sim_provision(fx, 20);
	before = certs_total(fx);
	sim_start(fx, 20, "--until-rotated", "20", "--timeout", "150s", NULL);
	wait_sim_subscribed(fx, 20);
	cf_test_certfleet(&fx->f, 0, "rotate", "start", "--expiring-within", "30d", NULL);
	for (i = 0; i < sizeof(kills) / sizeof(kills[0]); i++) {
		if (cf_test_file_wait(fx->spy_out, kills[i].step, kills[i].n, WAIT_MS) != 0) {
			dump_logs(fx);
			fail_msg("fewer than %zu '%s' messages", kills[i].n, kills[i].step);
		}
		daemon_kill(fx);
		daemon_start(fx);
	}
	assert_int_equal(sim_wait(fx, 160000), 0);
	wait_rotations(fx, "COMPLETED", 20, WAIT_MS);
	assert_all_completed(fx, 20, false);
	assert_int_equal(certs_total(fx), before + 20);
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	daemon_stop(fx);
}

/* ---- cases: audits ----------------------------------------------------------- */

#define EXPIRING "DEVICE_CERTIFICATE_EXPIRING_CHECK"
#define CRASHER  "sim-crash-00001"
/* Long enough for the fleet's rotations under ASan on a busy machine; the crasher's times out. */
#define AUDIT_DEADLINE_S 40

/* The first row of rows whose key is the string value, or NULL. */
static json_t *
row_with(json_t *rows, const char *key, const char *value)
{
	json_t *row;
	size_t i;

	json_array_foreach (rows, i, row) {
		if (strcmp(cf_test_jstr(row, key), value) == 0)
			return row;
	}
	return NULL;
}

/* What the case waits for in the webhook's requests: see hook_seen(). */
struct hook_wait {
	struct fx *fx;
	const char *event, *key, *value;
	json_t *body; /* found, kept */
};

/* A request for event whose body's key (a string or an integer) reads value. */
static bool
hook_seen(void *payload)
{
	struct hook_wait *w = payload;
	cf_test_http_req r;
	char num[32];
	json_t *body, *v;
	long i;

	for (i = cf_test_httpd_find(w->fx->hook, 0, w->event); i >= 0;
	     i = cf_test_httpd_find(w->fx->hook, (size_t)i + 1, w->event)) {
		assert_int_equal(cf_test_httpd_get(w->fx->hook, (size_t)i, &r), 0);
		body = json_loads(r.body, 0, NULL);
		cf_test_http_req_clear(&r);
		v = json_object_get(body, w->key);
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if ((json_is_string(v) && strcmp(json_string_value(v), w->value) == 0) ||
		    (json_is_integer(v) && strcmp(num, w->value) == 0)) {
			w->body = cf_test_jkeep(&w->fx->f, body);
			return true;
		}
		json_decref(body);
	}
	return false;
}

/* The body of the webhook's request for event with key = value, waiting for it. */
static json_t *
hook_wait(struct fx *fx, const char *event, const char *key, const char *value)
{
	struct hook_wait w = { fx, event, key, value, NULL };

	if (cf_test_wait_until(hook_seen, &w, 100, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("no %s webhook with %s %s within %d ms (%zu requests)", event, key, value,
			 WAIT_MS, cf_test_httpd_count(fx->hook));
	}
	return w.body;
}

/*
 * Every request the webhook's receiver got is a POST of JSON to its path,
 * signed with secret, its X-Certfleet-Event the body's event. Returns how
 * many were rotation notifications (rotation.failed, rotation.timed_out).
 */
static size_t
assert_hooks_signed(struct fx *fx, const char *secret)
{
	size_t i, n = cf_test_httpd_count(fx->hook), rotations = 0;
	cf_test_http_req r;
	json_t *body;

	for (i = 0; i < n; i++) {
		assert_int_equal(cf_test_httpd_get(fx->hook, i, &r), 0);
		assert_string_equal(r.method, "POST");
		assert_string_equal(r.path, "/certfleet");
		assert_string_equal(r.content_type, "application/json");
		if (!cf_test_http_req_signed(&r, secret))
			fail_msg("webhook request %zu (%s): signature '%s' does not verify", i,
				 r.event, r.signature);
		body = cf_test_json_parse(&fx->f, r.body);
		assert_string_equal(cf_test_jstr(body, "event"), r.event);
		rotations += strncmp(r.event, "rotation.", 9) == 0;
		cf_test_http_req_clear(&r);
	}
	return rotations;
}

struct run_wait {
	struct fx *fx;
	int64_t after, found;
};

static bool
run_completed_after(void *payload)
{
	struct run_wait *w = payload;
	json_t *rows = sql(w->fx, cf_test_keep(&w->fx->f, cf_test_printf("SELECT MIN(id) AS id "
									 "FROM audit_runs WHERE "
									 "id > %lld AND status = "
									 "'COMPLETED'",
									 (long long)w->after)));
	json_t *id = json_object_get(json_array_get(rows, 0), "id");

	w->found = json_is_integer(id) ? json_integer_value(id) : 0;
	return w->found > 0;
}

/*
 * The first audit run begun after this call, once COMPLETED: its id. Run
 * ids only grow, so a run with a higher id than any run now was begun, and
 * read the registry, after what the case saw before calling this.
 */
static int64_t
next_audit_run(struct fx *fx)
{
	json_t *rows = sql(fx, "SELECT IFNULL(MAX(id), 0) AS id FROM audit_runs");
	struct run_wait w = { fx, cf_test_jint(json_array_get(rows, 0), "id"), 0 };

	if (cf_test_wait_until(run_completed_after, &w, 200, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("no audit run after run %lld within %d ms", (long long)w.after, WAIT_MS);
	}
	return w.found;
}

/*
 * The history of finding fid of EXPIRING over runs (every audit run, in
 * order) and rows (every finding of the check, by finding, then run), as
 * the store defines it: NEW in the first run, OPEN in each next one while
 * its certificate is still ACTIVE, RESOLVED in exactly one run, absent
 * after that; never suppressed. Returns the run that resolved it, and adds
 * the rows it accounted for to *seen.
 */
static int64_t
finding_history(json_t *runs, json_t *rows, const char *fid, size_t *seen)
{
	size_t i, j = 0, nrows = json_array_size(rows);
	int64_t run, resolved = 0;
	const char *st;
	json_t *row;

	while (j < nrows && strcmp(cf_test_jstr(json_array_get(rows, j), "finding_id"), fid) != 0)
		j++;
	for (i = 0; i < json_array_size(runs); i++) {
		run = cf_test_jint(json_array_get(runs, i), "id");
		row = json_array_get(rows, j);
		if (row != NULL && (strcmp(cf_test_jstr(row, "finding_id"), fid) != 0 ||
				    cf_test_jint(row, "run_id") != run))
			row = NULL;
		if (row == NULL) {
			if (resolved == 0)
				fail_msg("finding %s is missing from run %lld, before it was "
					 "resolved",
					 fid, (long long)run);
			continue;
		}
		j++;
		(*seen)++;
		st = cf_test_jstr(row, "state");
		if (resolved > 0)
			fail_msg("finding %s is %s in run %lld, after it was resolved in run %lld",
				 fid, st, (long long)run, (long long)resolved);
		if (i == 0)
			assert_string_equal(st, "NEW");
		else if (strcmp(st, "RESOLVED") == 0)
			resolved = run;
		else
			assert_string_equal(st, "OPEN");
		assert_int_equal(cf_test_jint(row, "suppressed"), 0);
	}
	if (resolved == 0)
		fail_msg("finding %s was never resolved", fid);
	return resolved;
}

/*
 * Issue 5 end to end: certfleetd's scheduled audits find the 50 of 200
 * simulated devices whose certificates expire in 20 days and rotate them
 * by the default audit_actions. One of them, the crasher, runs in a
 * certfleet-sim of its own and is SIGKILLed once its rotation has begun:
 * that rotation times out at rotation_deadline, which the webhook tells;
 * restarted from its state dir, the crasher is found again (OPEN, the same
 * finding) by a later audit, which opens a rotation that completes. Then
 * no finding of the check is open, each one's history is NEW, OPEN...,
 * RESOLVED; the 150 long-lived devices were never rotated; every webhook
 * request is signed with the secret; the event log verifies.
 */
static void
test_rotation_e2e__audit_200(void **state)
{
	struct fx *fx = *state;
	const char *secret = "whsec-e2e-audit-200", *secret_path, *crasher_cert, *crasher_id;
	const char *fid, *r1, *r2;
	const char *topic = P CRASHER "/csr_req", *why;
	json_t *expected, *first, *rows, *row, *body, *acted, *ev, *runs;
	char run_s[32], why_fid[33], why_check[65];
	long long why_run;
	int64_t run1, run_r2, run_w, resolved;
	size_t i, seen = 0;

	world(fx);
	assert_int_equal(cf_test_httpd_start(&fx->hook, NULL, 0), 0);
	secret_path = cf_test_tpath(&fx->f, "webhook.secret");
	cf_test_write_text(secret_path, cf_test_keep(&fx->f, cf_test_printf("%s\n", secret)), 0600);
	cf_test_config_set(&fx->f, "audit_schedule", "2s", 0600);
	cf_test_config_set(&fx->f, "rotation_deadline",
			   cf_test_keep(&fx->f, cf_test_printf("%ds", AUDIT_DEADLINE_S)), 0600);
	cf_test_config_set(&fx->f, "webhook_url",
			   cf_test_keep(&fx->f, cf_test_printf("http://127.0.0.1:%d/certfleet",
							       cf_test_httpd_port(fx->hook))),
			   0600);
	cf_test_config_set(&fx->f, "webhook_secret_file", secret_path, 0600);

	/*
	 * 49 + 1 expiring within audit_device_expiring_days (30, the default),
	 * 150 for a year: issued now, so neither expiring nor old. The names
	 * all start with sim- (wait_sim_subscribed()); the fleet's state dir
	 * sorts the expiring ones first, the crasher has a state dir of its own.
	 */
	sim_provision_in(fx, &fx->sim, "sim-exp-", 49, "20d");
	sim_provision_in(fx, &fx->sim, "sim-long-", 150, "365d");
	sim_provision_in(fx, &fx->sim2, "sim-crash-", 1, "20d");
	expected = sql(fx, "SELECT thing, id, 'cert:' || id AS resource FROM certs WHERE thing "
			   "LIKE 'sim-exp-%' OR thing = '" CRASHER "' ORDER BY thing");
	assert_int_equal(json_array_size(expected), 50);
	row = row_with(expected, "thing", CRASHER);
	crasher_cert = cf_test_jstr(row, "resource");
	crasher_id = cf_test_jstr(row, "id");

	sim_start(fx, 199, "--until-rotated", "49", "--timeout", "150s", NULL);
	sim_start_in(fx, &fx->sim2, 1, "--duration", "300s", NULL);
	wait_sim_subscribed(fx, 200);
	/* The crasher's own subscriptions (the provisioning probe subscribed to csr_req only). */
	if (cf_test_file_wait(cf_test_broker_log_file(fx->broker),
			      CRASHER " 1 " P CRASHER "/csr_rej\n", 1, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("%s did not subscribe within %d ms", CRASHER, WAIT_MS);
	}
	/*
	 * Stopped, it cannot answer the csr_req the first audit sends it, so
	 * the kill below comes after its rotation began and before it can end.
	 */
	assert_int_equal(cf_test_bg_signal(fx->sim2.run, SIGSTOP), 0);

	/* The first scheduled run is due at once: it opens 50 rotations. */
	daemon_start(fx);
	wait_rotations(fx, NULL, 50, WAIT_MS);
	runs = cf_test_certfleet_json(&fx->f, "audit", "list", "--limit", "1000", NULL);
	row = json_array_get(runs, json_array_size(runs) - 1);
	assert_string_equal(cf_test_jstr(row, "trigger"), "SCHEDULED");
	assert_string_equal(cf_test_jstr(row, "status"), "COMPLETED");
	run1 = cf_test_jint(row, "runId");
	snprintf(run_s, sizeof(run_s), "%lld", (long long)run1);
	first = cf_test_certfleet_json(&fx->f, "audit", "findings", "--run", run_s, "--check",
				       EXPIRING, NULL);
	assert_int_equal(json_array_size(first), 50);
	json_array_foreach (first, i, row) {
		if (row_with(expected, "resource", cf_test_jstr(row, "resource")) == NULL)
			fail_msg("run %s found %s, not an expiring device's", run_s,
				 cf_test_jstr(row, "resource"));
		assert_string_equal(cf_test_jstr(row, "state"), "NEW");
	}
	fid = cf_test_jstr(row_with(first, "resource", crasher_cert), "findingId");
	/* Its summary on the webhook: the 50 acted on, each with a rotation opened. */
	body = hook_wait(fx, "audit.run", "runId", run_s);
	json_array_foreach (json_object_get(body, "newFindings"), i, row)
		if (strcmp(cf_test_jstr(row, "check"), EXPIRING) == 0)
			seen++;
	assert_int_equal(seen, 50);
	seen = 0;
	assert_int_equal(cf_test_jint(body, "acted"), 50);
	assert_int_equal(cf_test_jint(body, "changed"), 50);
	acted = json_object_get(body, "findingsActedOn");
	assert_int_equal(json_array_size(acted), 50);
	json_array_foreach (acted, i, row) {
		assert_non_null(row_with(expected, "resource", cf_test_jstr(row, "resource")));
		assert_string_equal(cf_test_jstr(row, "action"), "ROTATE_DEVICE_CERTIFICATE");
		assert_string_equal(cf_test_jstr(row, "result"), "changed");
	}

	/* The crasher's csr_req went out; it dies with it unread. */
	rows = sql(fx, "SELECT id, state FROM rotations WHERE thing = '" CRASHER "'");
	assert_int_equal(json_array_size(rows), 1);
	r1 = cf_test_jstr(json_array_get(rows, 0), "id");
	msg_in(fx, fx->spy_out, topic, 1);
	assert_string_equal(cf_test_jstr(rotation_row(fx, r1), "state"), "REQUESTED");
	assert_int_equal(cf_test_bg_signal(fx->sim2.run, SIGKILL), 0);
	assert_int_equal(cf_test_bg_wait(fx->sim2.run, 10000), 128 + SIGKILL);
	cf_test_bg_free(fx->sim2.run);
	fx->sim2.run = NULL;

	/* The other 49 complete. */
	assert_int_equal(sim_wait(fx, 160000), 0);
	body = cf_test_json_parse(&fx->f, cf_test_file_text(&fx->f, fx->sim.summary));
	assert_int_equal(cf_test_jint(body, "rotated"), 49);
	assert_int_equal(cf_test_jint(body, "failed"), 0);
	wait_rotations(fx, "COMPLETED", 49, WAIT_MS);

	/* The crasher's times out, and the webhook says so; it comes back from its disk. */
	wait_state(fx, r1, "TIMED_OUT", AUDIT_DEADLINE_S * 1000 + WAIT_MS);
	sim_start_in(fx, &fx->sim2, 1, "--until-rotated", "1", "--timeout", "90s", NULL);
	body = hook_wait(fx, "rotation.timed_out", "rotationId", r1);
	assert_string_equal(cf_test_jstr(body, "thing"), CRASHER);
	assert_string_equal(cf_test_jstr(body, "state"), "TIMED_OUT");
	/* Timed out where the crash left it: the device never answered. */
	assert_string_equal(cf_test_jstr(body, "from"), "REQUESTED");
	assert_string_equal(cf_test_jstr(body, "oldCert"), crasher_id);

	/* A later audit finds it again and opens a new rotation, which completes. */
	assert_int_equal(sim_wait_in(fx, &fx->sim2, 100000), 0);
	body = cf_test_json_parse(&fx->f, cf_test_file_text(&fx->f, fx->sim2.summary));
	assert_int_equal(cf_test_jint(body, "rotated"), 1);
	rows = sql(fx, "SELECT id, state FROM rotations WHERE thing = '" CRASHER
		       "' ORDER BY created_at, rowid");
	assert_int_equal(json_array_size(rows), 2);
	assert_string_equal(cf_test_jstr(json_array_get(rows, 0), "id"), r1);
	r2 = cf_test_jstr(json_array_get(rows, 1), "id");
	wait_state(fx, r2, "COMPLETED", WAIT_MS);
	/* Opened by the audit, for the same finding, in a run that had it OPEN. */
	ev = json_array_get(cf_test_certfleet_json(
				    &fx->f, "events", "list", "--resource",
				    cf_test_keep(&fx->f, cf_test_printf("rotation:%s", r2)), NULL),
			    0);
	assert_string_equal(cf_test_jstr(ev, "action"), "rotation.opened");
	assert_string_equal(cf_test_jstr(ev, "actor"), "audit");
	why = cf_test_jstr(json_object_get(ev, "detail"), "why");
	if (sscanf(why, "audit finding %32[0-9a-f] of %64[A-Z_] (run %lld)", why_fid, why_check,
		   &why_run) != 3)
		fail_msg("rotation %s was opened for '%s'", r2, why);
	assert_string_equal(why_fid, fid);
	assert_string_equal(why_check, EXPIRING);
	run_r2 = why_run;
	assert_true(run_r2 > run1);
	snprintf(run_s, sizeof(run_s), "%lld", why_run);
	rows = cf_test_certfleet_json(&fx->f, "audit", "findings", "--run", run_s, "--check",
				      EXPIRING, NULL);
	row = row_with(rows, "findingId", fid);
	assert_non_null(row);
	assert_string_equal(cf_test_jstr(row, "state"), "OPEN");
	assert_string_equal(cf_test_jstr(row, "resource"), crasher_cert);
	body = hook_wait(fx, "audit.run", "runId", run_s);
	row = row_with(json_object_get(body, "findingsActedOn"), "findingId", fid);
	assert_non_null(row);
	assert_string_equal(cf_test_jstr(row, "rotationId"), r2);
	assert_string_equal(cf_test_jstr(row, "result"), "changed");

	/* A run after that has no open finding of the check: RESOLVED, or gone. */
	run_w = next_audit_run(fx);
	snprintf(run_s, sizeof(run_s), "%lld", (long long)run_w);
	rows = cf_test_certfleet_json(&fx->f, "audit", "findings", "--run", run_s, "--check",
				      EXPIRING, NULL);
	json_array_foreach (rows, i, row)
		assert_string_equal(cf_test_jstr(row, "state"), "RESOLVED");
	/*
	 * Nor did the rotations look like misuse: a device seen with its old
	 * and then its new certificate is no conflict, one certificate seen
	 * from one address no sharing, and with a webhook there is a notifier.
	 */
	rows = cf_test_certfleet_json(&fx->f, "audit", "findings", "--run", run_s, NULL);
	json_array_foreach (rows, i, row) {
		const char *check = cf_test_jstr(row, "check");

		if (strcmp(check, "CONFLICTING_CLIENT_IDS_CHECK") == 0 ||
		    strcmp(check, "DEVICE_CERTIFICATE_SHARED_CHECK") == 0 ||
		    strcmp(check, "LOGGING_DISABLED_CHECK") == 0)
			fail_msg("run %s: %s on %s", run_s, check, cf_test_jstr(row, "resource"));
	}
	daemon_stop(fx);

	/* Signed, all of them; one rotation notification, the crasher's timeout. */
	assert_true(cf_test_httpd_find(fx->hook, 0, "audit.run") >= 0);
	assert_int_equal(assert_hooks_signed(fx, secret), 1);
	assert_int_equal(cf_test_file_count(fx->daemon_log, secret), 0);

	/* Every finding's history, over every run; no other finding of the check. */
	runs = sql(fx, "SELECT id, status, \"trigger\" AS trig FROM audit_runs ORDER BY id");
	json_array_foreach (runs, i, row) {
		assert_string_equal(cf_test_jstr(row, "status"), "COMPLETED");
		assert_string_equal(cf_test_jstr(row, "trig"), "SCHEDULED");
	}
	rows = sql(fx, "SELECT run_id, finding_id, state, suppressed FROM audit_findings WHERE "
		       "check_name = '" EXPIRING "' ORDER BY finding_id, run_id");
	json_array_foreach (first, i, row) {
		resolved = finding_history(runs, rows, cf_test_jstr(row, "findingId"), &seen);
		/* The crasher's, only once its second rotation had completed. */
		if (strcmp(cf_test_jstr(row, "findingId"), fid) == 0)
			assert_true(resolved > run_r2 && resolved <= run_w);
	}
	assert_int_equal(seen, json_array_size(rows));

	/* One rotation per expiring device, the crasher's two; none for the 150. */
	rows = sql(fx, "SELECT thing, COUNT(*) AS n, SUM(state = 'COMPLETED') AS completed "
		       "FROM rotations GROUP BY thing ORDER BY thing");
	assert_int_equal(json_array_size(rows), 50);
	json_array_foreach (rows, i, row) {
		assert_non_null(row_with(expected, "thing", cf_test_jstr(row, "thing")));
		assert_int_equal(cf_test_jint(row, "n"),
				 strcmp(cf_test_jstr(row, "thing"), CRASHER) == 0 ? 2 : 1);
		assert_int_equal(cf_test_jint(row, "completed"), 1);
	}
	rows = sql(fx, "SELECT COUNT(*) AS n, SUM(status = 'ACTIVE') AS active FROM certs "
		       "WHERE thing LIKE 'sim-long-%'");
	assert_int_equal(cf_test_jint(json_array_get(rows, 0), "n"), 150);
	assert_int_equal(cf_test_jint(json_array_get(rows, 0), "active"), 150);
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
}

/* ---- cases: a device played by the test -------------------------------------- */

/*
 * The deadline: a device that never answers (REQUESTED), and one that gets
 * its certificate but never acks (ISSUED), both TIMED_OUT; the unconfirmed
 * certificate goes INACTIVE and the old ones stay ACTIVE.
 */
static void
test_rotation_e2e__deadline(void **state)
{
	struct fx *fx = *state;
	struct dev *quiet, *noack;
	const char *r1, *r2, *csr_res, *new_id;
	json_t *row;

	world(fx);
	cf_test_config_set(&fx->f, "rotation_deadline", "6s", 0600);
	daemon_start(fx);
	quiet = dev_new(fx, "quiet");
	noack = dev_new(fx, "noack");
	r1 = rotate_start(fx, "quiet");
	r2 = rotate_start(fx, "noack");
	assert_string_equal(cf_test_jstr(dev_msg(fx, noack, "csr_req", 1), "rotationId"), r2);
	csr_res = dev_csr_res(fx, noack, "new", "ec", r2);
	dev_pub(fx, noack, "csr_res", csr_res);
	new_id = check_crt(fx, dev_msg(fx, noack, "crt", 1), r2,
			   cf_test_tpath(&fx->f, "noack-new.key"));
	wait_state(fx, r2, "ISSUED", 5000);
	wait_state(fx, r1, "TIMED_OUT", 20000);
	wait_state(fx, r2, "TIMED_OUT", 20000);
	/* csr_req was re-sent to the quiet device on the 2 s timer before the deadline. */
	assert_true(dev_count(fx, quiet, "csr_req") >= 2);
	row = rotation_row(fx, r2);
	assert_string_equal(cf_test_jstr(row, "new_cert"), new_id);
	assert_string_equal(cert_status(fx, new_id), "INACTIVE");
	assert_string_equal(cert_status(fx, noack->id), "ACTIVE");
	assert_string_equal(cert_status(fx, quiet->id), "ACTIVE");
	assert_true(listed_active(fx, noack->id));
	/*
	 * A crt_ack after the deadline changes nothing. The csr_res after it is
	 * a barrier: certfleetd handles one connection's messages in order, so
	 * once its NO_ROTATION is back, the ack has been handled.
	 */
	dev_pub(fx, noack, "crt_ack",
		cf_test_keep(&fx->f,
			     cf_test_printf("{\"rotationId\":\"%s\",\"certificateId\":\"%s\"}", r2,
					    new_id)));
	dev_pub(fx, noack, "csr_res", csr_res);
	assert_string_equal(cf_test_jstr(dev_msg(fx, noack, "csr_rej", 1), "code"), "NO_ROTATION");
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	assert_string_equal(cf_test_jstr(rotation_row(fx, r2), "state"), "TIMED_OUT");
	assert_string_equal(cert_status(fx, new_id), "INACTIVE");
	daemon_stop(fx);
}

/*
 * The same csr_res twice (and once more after the crt): the same
 * certificate each time, issued once; then crt_ack completes the rotation
 * and the old certificate is no longer ACTIVE.
 */
static void
test_rotation_e2e__duplicate_csr_res(void **state)
{
	struct fx *fx = *state;
	struct dev *d;
	const char *rid, *csr_res, *id1, *id2, *id3;

	world(fx);
	daemon_start(fx);
	d = dev_new(fx, "dup");
	rid = rotate_start(fx, "dup");
	assert_string_equal(cf_test_jstr(dev_msg(fx, d, "csr_req", 1), "rotationId"), rid);
	csr_res = dev_csr_res(fx, d, "new", "ec", rid);
	dev_pub(fx, d, "csr_res", csr_res);
	dev_pub(fx, d, "csr_res", csr_res);
	id1 = check_crt(fx, dev_msg(fx, d, "crt", 1), rid, cf_test_tpath(&fx->f, "dup-new.key"));
	id2 = check_crt(fx, dev_msg(fx, d, "crt", 2), rid, cf_test_tpath(&fx->f, "dup-new.key"));
	assert_string_equal(id1, id2);
	dev_pub(fx, d, "csr_res", csr_res);
	id3 = check_crt(fx, dev_msg(fx, d, "crt", 3), rid, cf_test_tpath(&fx->f, "dup-new.key"));
	assert_string_equal(id1, id3);
	/* One issuance: the first certificate and the new one. */
	assert_int_equal(certs_of(fx, "dup"), 2);
	assert_int_equal(dev_count(fx, d, "csr_rej"), 0);
	assert_string_equal(cf_test_jstr(rotation_row(fx, rid), "state"), "ISSUED");

	/* Both ACTIVE until the ack; then only the new one. */
	assert_true(listed_active(fx, d->id));
	/* The device connects with its new certificate, then acks (as the agent does). */
	dev_use(fx, d, cert_file(fx, id1), cf_test_tpath(&fx->f, "dup-new.key"));
	dev_pub(fx, d, "crt_ack",
		cf_test_keep(&fx->f,
			     cf_test_printf("{\"rotationId\":\"%s\",\"certificateId\":\"%s\"}", rid,
					    id1)));
	wait_state(fx, rid, "COMPLETED", WAIT_MS);
	assert_false(listed_active(fx, d->id));
	assert_true(listed_active(fx, id1));
	assert_string_not_equal(cert_status(fx, d->id), "ACTIVE");
	assert_all_completed(fx, 1, true);
	/* A late duplicate after completion issues nothing: there is no open rotation. */
	dev_pub(fx, d, "csr_res", csr_res);
	assert_string_equal(cf_test_jstr(dev_msg(fx, d, "csr_rej", 1), "code"), "NO_ROTATION");
	assert_int_equal(certs_of(fx, "dup"), 2);
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	/* The old certificate went, and the device's session (on the new one) was left alone. */
	assert_int_equal(cf_test_file_count(cf_test_broker_log_file(fx->broker),
					    "disconnecting client_id=dup "),
			 0);
	dev_disconnect(d);
	assert_old_refused_new_admitted(fx, "dup", d->cert0, d->key0, d->cert, d->key);
	daemon_stop(fx);
}

/* csr_res without an open rotation: csr_rej NO_ROTATION to the device, nothing issued. */
static void
test_rotation_e2e__no_rotation(void **state)
{
	struct fx *fx = *state;
	struct dev *d;
	json_t *rej;

	world(fx);
	daemon_start(fx);
	d = dev_new(fx, "stray");
	dev_pub(fx, d, "csr_res", dev_csr_res(fx, d, "new", "ec", NULL));
	rej = dev_msg(fx, d, "csr_rej", 1);
	assert_string_equal(cf_test_jstr(rej, "code"), "NO_ROTATION");
	assert_true(json_is_string(json_object_get(rej, "message")));
	assert_int_equal(certs_of(fx, "stray"), 1);
	assert_int_equal(json_array_size(rotations(fx)), 0);
	assert_int_equal(dev_count(fx, d, "crt"), 0);
	daemon_stop(fx);
}

/*
 * More than rotation_csr_max csr_res in one rotation: RATE_LIMITED, even
 * for a good CSR once the limit is passed.
 */
static void
test_rotation_e2e__rate_limit(void **state)
{
	struct fx *fx = *state;
	struct dev *d;
	const char *rid, *weak;
	json_t *rej;
	size_t i;

	world(fx);
	cf_test_config_set(&fx->f, "rotation_csr_max", "3", 0600);
	daemon_start(fx);
	d = dev_new(fx, "chatty");
	rid = rotate_start(fx, "chatty");
	dev_msg(fx, d, "csr_req", 1);
	weak = dev_csr_res(fx, d, "weak", "rsa:1024", rid);
	for (i = 1; i <= 3; i++) {
		dev_pub(fx, d, "csr_res", weak);
		rej = dev_msg(fx, d, "csr_rej", i);
		assert_string_equal(cf_test_jstr(rej, "code"), "WEAK_KEY");
		assert_string_equal(cf_test_jstr(rej, "rotationId"), rid);
	}
	/* The fourth, a good one, is over the limit. */
	dev_pub(fx, d, "csr_res", dev_csr_res(fx, d, "good", "ec", rid));
	rej = dev_msg(fx, d, "csr_rej", 4);
	assert_string_equal(cf_test_jstr(rej, "code"), "RATE_LIMITED");
	assert_int_equal(dev_count(fx, d, "crt"), 0);
	assert_int_equal(certs_of(fx, "chatty"), 1);
	assert_string_equal(cf_test_jstr(rotation_row(fx, rid), "state"), "REQUESTED");
	daemon_stop(fx);
}

/*
 * certfleetd SIGKILLed after each step of one rotation driven by the test
 * (csr_req sent, crt sent, crt_ack handled) and restarted: the rotation
 * resumes, a csr_res re-sent after the crash gets the same certificate, and
 * exactly one certificate is issued.
 */
static void
test_rotation_e2e__daemon_sigkill_manual_steps(void **state)
{
	struct fx *fx = *state;
	struct dev *d;
	const char *rid, *csr_res, *id1, *id2;
	size_t n;

	world(fx);
	daemon_start(fx);
	d = dev_new(fx, "crashy");
	rid = rotate_start(fx, "crashy");
	dev_msg(fx, d, "csr_req", 1);
	daemon_kill(fx);
	/* The device answers while the daemon is down: the broker queues it for certfleetd. */
	csr_res = dev_csr_res(fx, d, "new", "ec", rid);
	dev_pub(fx, d, "csr_res", csr_res);
	daemon_start(fx);
	id1 = check_crt(fx, dev_msg(fx, d, "crt", 1), rid, cf_test_tpath(&fx->f, "crashy-new.key"));
	daemon_kill(fx);
	daemon_start(fx);
	n = dev_count(fx, d, "crt");
	dev_pub(fx, d, "csr_res", csr_res);
	id2 = check_crt(fx, dev_msg(fx, d, "crt", n + 1), rid,
			cf_test_tpath(&fx->f, "crashy-new.key"));
	assert_string_equal(id1, id2);
	assert_int_equal(certs_of(fx, "crashy"), 2);
	dev_use(fx, d, cert_file(fx, id1), cf_test_tpath(&fx->f, "crashy-new.key"));
	dev_pub(fx, d, "crt_ack",
		cf_test_keep(&fx->f,
			     cf_test_printf("{\"rotationId\":\"%s\",\"certificateId\":\"%s\"}", rid,
					    id1)));
	wait_state(fx, rid, "COMPLETED", WAIT_MS);
	daemon_kill(fx);
	daemon_start(fx);
	assert_string_equal(cf_test_jstr(rotation_row(fx, rid), "state"), "COMPLETED");
	assert_all_completed(fx, 1, true);
	cf_test_certfleet(&fx->f, 0, "events", "verify", NULL);
	daemon_stop(fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rotation_e2e__happy_path_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__happy_path_200, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__broker_restart_mid_rotation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__crt_err, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__duplicate_csr_res, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__no_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__weak_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__key_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_rotation_e2e__offline_device_gets_queued_csr_req, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__daemon_sigkill_each_step, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__daemon_sigkill_manual_steps,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__crash_before_ack, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__crash_after_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_e2e__audit_200, setup, teardown),
	};

	/* CF_TEST_FILTER=pattern (cmocka's * and ?) runs only the matching cases. */
	if (getenv("CF_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("CF_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
