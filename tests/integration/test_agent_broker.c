/*
 * Integration: the certfleet-agent program against a real Mosquitto over
 * mutual TLS, with the test playing the server.
 *
 * Each case gets a temp dir with a quickstart data dir, a broker
 * (support/broker.h) whose listener requires client certificates chaining
 * to the certfleet root and that loads the certfleet broker plugin on the
 * registry (docs/broker.md: a client connects only with an ACTIVE
 * certificate of the thing its client id names, and publishes and
 * subscribes only as its certificate's policies allow), the device dev1
 * (its certificate issued by the real `certfleet cert issue` from a CSR
 * made by `openssl req`, copied into the agent's state dir) and two service
 * principals made by `certfleet service create`: svc publishes as the
 * server, svc-sub subscribes (one client id each: a second connection with
 * the same client id would take the first one's place). The test speaks
 * the server's side of protocol.md with mosquitto_pub and mosquitto_sub,
 * issues the device's new certificate with the certfleet CLI from the CSR
 * the agent sent, and checks the result with the openssl command. No
 * certfleetd here: the agent is checked against the protocol, not against
 * our server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
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
#include "support/run.h"

#define WAIT_MS 20000 /* one protocol step, generous for ASan on a busy machine */

#define P "management/topic/"

struct fx {
	cf_test_fleet f; /* T, D, the last run, the root and intermediate (support/fleet.h) */

	cf_test_broker *broker;
	cf_test_bg *sub;   /* mosquitto_sub as svc-sub: csr_res, crt_ack, crt_err */
	cf_test_bg *agent; /* certfleet-agent as dev1 */
	const char *svc_cert, *svc_key; /* the service principal svc, which publishes */
	const char *svc_sub_cert, *svc_sub_key; /* svc-sub, which subscribes */
	const char *dev_key, *dev_cert, *dev_id; /* the device's first identity */
	const char *state, *agent_conf, *agent_log, *sub_out;
};

static char *g_cli;
static char *g_agent;

/* ---- fixture ----------------------------------------------------------------- */

static int
group_setup(void **state)
{
	(void)state;
	g_cli = cf_test_binary("cli/certfleet");
	g_agent = cf_test_binary("agent/certfleet-agent");
	return g_cli != NULL && g_agent != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	free(g_cli);
	free(g_agent);
	return 0;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	if (cf_test_fleet_init(&fx->f, "certfleet-agent-it", g_cli) != 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

/* Print a file on failure, for the log of the failed case. */
static void
dump_file(const char *what, const char *path)
{
	char *text = NULL;

	if (path == NULL || cf_test_file_read(&text, NULL, path, 4 * 1024 * 1024) != 0)
		return;
	fprintf(stderr, "---- %s (%s)\n%s\n", what, path, text);
	free(text);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	int rc;

	if (fx == NULL)
		return 0;
	/* Processes first, whatever happened in the case. */
	cf_test_bg_free(fx->agent);
	cf_test_bg_free(fx->sub);
	cf_test_broker_free(fx->broker);
	rc = cf_test_fleet_clear(&fx->f);
	free(fx);
	return rc;
}

/* Everything a failing case should show: the agent's, the subscriber's and the broker's logs. */
static void
dump_logs(struct fx *fx)
{
	dump_file("agent log", fx->agent_log);
	dump_file("mosquitto_sub output", fx->sub_out);
	if (fx->broker != NULL)
		dump_file("broker log", cf_test_broker_log_file(fx->broker));
}

/* ---- the world: CA, broker, identities, agent -------------------------------- */

/*
 * certfleet cert issue for thing from csr into out (replacing the
 * certificate replaces unless NULL): the printed certificate id.
 */
static const char *
issue(struct fx *fx, const char *thing, const char *csr, const char *replaces, const char *out)
{
	const char *id;

	if (replaces != NULL)
		id = cf_test_cert_issue(&fx->f, thing, csr, out, "--replaces", replaces, NULL);
	else
		id = cf_test_cert_issue(&fx->f, thing, csr, out, NULL);
	/* What certfleet says is what openssl computes. */
	assert_string_equal(id, cf_test_ossl_cert_id(&fx->f, out));
	return id;
}

static void
start_agent(struct fx *fx)
{
	const char *argv[] = { g_agent, "-c", fx->agent_conf, NULL };

	assert_null(fx->agent);
	assert_int_equal(cf_test_bg_start(&fx->agent, argv, fx->agent_log, fx->agent_log), 0);
}

/*
 * Stop the agent with SIGTERM: it must exit 0 (ASan reports leaks with
 * another status). Nothing the agent or the server did so far went beyond
 * their policies: the plugin denied no topic.
 */
static void
stop_agent(struct fx *fx)
{
	int status = cf_test_bg_stop(fx->agent, 0);
	const char *log = cf_test_broker_log_file(fx->broker);

	cf_test_bg_free(fx->agent);
	fx->agent = NULL;
	if (status != 0) {
		dump_logs(fx);
		fail_msg("certfleet-agent exited with status %d after SIGTERM", status);
	}
	if (cf_test_file_count(log, "certfleet: denied") != 0 ||
	    cf_test_file_count(log, "topic refusals not logged") != 0) {
		dump_logs(fx);
		fail_msg("the broker plugin denied a topic (see its log)");
	}
}

/* Wait until the broker log holds needle n times. */
static void
wait_broker_log(struct fx *fx, const char *needle, size_t n)
{
	if (cf_test_file_wait(cf_test_broker_log_file(fx->broker), needle, n, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("broker log: '%s' not seen %zu times within %d ms", needle, n, WAIT_MS);
	}
}

static size_t
broker_count(struct fx *fx, const char *needle)
{
	return cf_test_file_count(cf_test_broker_log_file(fx->broker), needle);
}

static void
wait_agent_log(struct fx *fx, const char *needle, size_t n)
{
	if (cf_test_file_wait(fx->agent_log, needle, n, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("agent log: '%s' not seen %zu times within %d ms", needle, n, WAIT_MS);
	}
}

/*
 * Quickstart CA, the svc and svc-sub service principals, dev1's identity,
 * the broker with the plugin, the subscriber, and the agent connected and
 * subscribed. Every identity exists before the broker starts, so that the
 * plugin's index has them from the start.
 */
static void
start_world(struct fx *fx)
{
	static const char *const topics[] = { P "+/csr_res", P "+/crt_ack", P "+/crt_err", NULL };
	const char *chain, *conf, *svc_dir;
	char *plugin;
	cf_test_identity dev;

	cf_test_certfleet(&fx->f, 0, "init", "--quickstart", NULL);
	cf_test_fleet_ca_files(&fx->f);

	/* The server: two service principals (policy certfleet-service), keys made by certfleet. */
	svc_dir = cf_test_tpath(&fx->f, "svc");
	cf_test_certfleet(&fx->f, 0, "service", "create", "svc", "--out-dir", svc_dir, NULL);
	cf_test_certfleet(&fx->f, 0, "service", "create", "svc-sub", "--out-dir", svc_dir, NULL);
	fx->svc_cert = cf_test_tpath(&fx->f, "svc/svc.pem");
	fx->svc_key = cf_test_tpath(&fx->f, "svc/svc.key");
	fx->svc_sub_cert = cf_test_tpath(&fx->f, "svc/svc-sub.pem");
	fx->svc_sub_key = cf_test_tpath(&fx->f, "svc/svc-sub.key");
	assert_int_equal(cf_test_file_mode(fx->svc_key), 0600);

	/* The device's first identity (policy certfleet-device), for the agent's state dir. */
	cf_test_identity_new(&dev, &fx->f, "dev1", "/CN=dev1", NULL);
	assert_string_equal(dev.id, cf_test_ossl_cert_id(&fx->f, dev.cert));
	fx->dev_key = dev.key;
	fx->dev_cert = dev.cert;
	fx->dev_id = dev.id;

	/* The broker trusts the certfleet root and intermediate, and asks the registry. */
	chain = cf_test_tpath(&fx->f, "certfleet-chain.pem");
	cf_test_cat(&fx->f, chain, 0644, fx->f.root, fx->f.inter, NULL);
	plugin = cf_test_broker_plugin_conf(cf_test_dpath(&fx->f, "registry.db"), 100);
	assert_non_null(plugin);
	assert_int_equal(
		cf_test_broker_start(&fx->broker, cf_test_tpath(&fx->f, "broker"), chain, plugin),
		0);
	free(plugin);

	fx->state = cf_test_tpath(&fx->f, "state");
	assert_int_equal(mkdir(fx->state, 0700), 0);
	assert_int_equal(mkdir(cf_test_tpath(&fx->f, "state/current"), 0700), 0);
	cf_test_write_text(cf_test_tpath(&fx->f, "state/current/key.pem"),
			   cf_test_file_text(&fx->f, fx->dev_key), 0600);
	cf_test_cat(&fx->f, cf_test_tpath(&fx->f, "state/current/cert.pem"), 0600, fx->dev_cert,
		    fx->f.inter, NULL);
	/* The device trusts the broker CA (server) and the certfleet root (new certificates). */
	cf_test_cat(&fx->f, cf_test_tpath(&fx->f, "device-ca.pem"), 0644,
		    cf_test_broker_ca_file(fx->broker), fx->f.root, NULL);

	fx->sub_out = cf_test_tpath(&fx->f, "sub.out");
	assert_int_equal(cf_test_mqtt_sub_start(&fx->sub, fx->broker, fx->svc_sub_cert,
						fx->svc_sub_key, "svc-sub", topics, fx->sub_out),
			 0);

	fx->agent_conf = cf_test_tpath(&fx->f, "agent.conf");
	fx->agent_log = cf_test_tpath(&fx->f, "agent.log");
	conf = cf_test_keep(&fx->f, cf_test_printf("broker_host = 127.0.0.1\n"
						   "broker_port = %d\n"
						   "client_id = dev1\n"
						   "state_dir = %s\n"
						   "ca_file = %s\n"
						   "log_level = debug\n",
						   cf_test_broker_port(fx->broker), fx->state,
						   cf_test_tpath(&fx->f, "device-ca.pem")));
	cf_test_write_text(fx->agent_conf, conf, 0644);
	start_agent(fx);
	/* Connected, and its three subscriptions acknowledged. */
	wait_agent_log(fx, "event=connected", 1);
	wait_broker_log(fx, "Sending SUBACK to dev1\n", 3);
}

/* ---- the server's side ------------------------------------------------------- */

/*
 * mosquitto_pub -q 1 as svc (client id svc: the plugin admits a certificate
 * only under its thing's name); returns once the broker acknowledged it.
 */
static void
pub(struct fx *fx, const char *topic, const char *payload)
{
	cf_test_result r = CF_TEST_RESULT_INIT;
	char port[16];

	snprintf(port, sizeof(port), "%d", cf_test_broker_port(fx->broker));
	if (cf_test_runl(&r, 30, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile",
			 cf_test_broker_ca_file(fx->broker), "--cert", fx->svc_cert, "--key",
			 fx->svc_key, "-i", "svc", "-q", "1", "-t", topic, "-m", payload,
			 NULL) != 0 ||
	    r.status != 0) {
		dump_logs(fx);
		fprintf(stderr, "mosquitto_pub (exit %d):\n%s%s\n", r.status,
			r.out != NULL ? r.out : "", r.err != NULL ? r.err : "");
		cf_test_result_clear(&r);
		fail_msg("mosquitto_pub to %s failed", topic);
	}
	cf_test_result_clear(&r);
}

/*
 * The payload of the nth (from 1) message on topic that mosquitto_sub
 * printed, waiting for it at most WAIT_MS.
 */
static json_t *
sub_msg(struct fx *fx, const char *topic, size_t nth)
{
	const char *prefix = cf_test_keep(&fx->f, cf_test_printf("%s ", topic)), *text, *p, *end;
	json_error_t jerr;
	size_t seen = 0;
	json_t *j;

	if (cf_test_file_wait(fx->sub_out, prefix, nth, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("no message %zu on %s within %d ms", nth, topic, WAIT_MS);
	}
	/* Wait for the end of its line too: a line is written in one piece, but be sure. */
	text = cf_test_file_text(&fx->f, fx->sub_out);
	for (p = text; p != NULL && *p != '\0'; p = end != NULL ? end + 1 : NULL) {
		end = strchr(p, '\n');
		if (strncmp(p, prefix, strlen(prefix)) != 0 || ++seen < nth)
			continue;
		p += strlen(prefix);
		j = json_loadb(p, end != NULL ? (size_t)(end - p) : strlen(p), 0, &jerr);
		if (j == NULL)
			fail_msg("message on %s is not JSON: %s", topic, jerr.text);
		return cf_test_jkeep(&fx->f, j);
	}
	fail_msg("message %zu on %s vanished", nth, topic);
	return NULL;
}

static size_t
sub_count(struct fx *fx, const char *topic)
{
	return cf_test_file_count(fx->sub_out, cf_test_keep(&fx->f, cf_test_printf("%s ", topic)));
}

/* Publish csr_req for rotation rid, wait for csr_res number nth: the CSR written to a file. */
static const char *
csr_round(struct fx *fx, const char *rid, size_t nth)
{
	json_t *res;
	const char *csr = cf_test_tpath(
		&fx->f, cf_test_keep(&fx->f, cf_test_printf("agent-%s-%zu.csr", rid, nth)));

	pub(fx, P "dev1/csr_req",
	    cf_test_keep(&fx->f, cf_test_printf("{\"rotationId\":\"%s\"}", rid)));
	res = sub_msg(fx, P "dev1/csr_res", nth);
	assert_string_equal(cf_test_jstr(res, "rotationId"), rid);
	cf_test_write_text(csr, cf_test_jstr(res, "CSR"), 0644);
	/* The CSR is a valid PKCS#10 request whose self-signature verifies. */
	cf_test_openssl(&fx->f, 0, "req", "-in", csr, "-verify", "-noout", NULL);
	cf_test_assert_contains(fx->f.r.err, "verify OK");
	return csr;
}

/* Publish crt with the certificate in pem_path (and the intermediate as chain). */
static void
send_crt(struct fx *fx, const char *rid, const char *id, const char *pem_path)
{
	json_t *msg = json_object();
	char *payload;

	assert_non_null(msg);
	json_object_set_new(msg, "certificateId", json_string(id));
	json_object_set_new(msg, "certificatePem",
			    json_string(cf_test_file_text(&fx->f, pem_path)));
	json_object_set_new(msg, "caChainPem", json_string(cf_test_file_text(&fx->f, fx->f.inter)));
	json_object_set_new(msg, "rotationId", json_string(rid));
	payload = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	assert_non_null(payload);
	pub(fx, P "dev1/crt", cf_test_keep(&fx->f, payload));
}

/* Mode of every entry under dir (not recursive): files 0600, directories 0700. */
static void
assert_private_dir(struct fx *fx, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t files = 0;

	if (d == NULL)
		fail_msg("no directory %s", dir);
	assert_int_equal(cf_test_file_mode(dir), 0700);
	while ((e = readdir(d)) != NULL) {
		const char *path;
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		path = cf_test_keep(&fx->f, cf_test_printf("%s/%s", dir, e->d_name));
		assert_int_equal(lstat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			assert_int_equal(st.st_mode & 07777, 0700);
		} else {
			if ((st.st_mode & 07777) != 0600)
				fail_msg("%s has mode %o, not 0600", path, st.st_mode & 07777);
			files++;
		}
	}
	closedir(d);
	assert_true(files > 0);
}

/* ---- cases ------------------------------------------------------------------- */

/*
 * csr_req -> csr_res with a fresh key; crt of a certificate certfleet issued
 * from that CSR -> the agent reconnects with it, promotes it and acks.
 */
static void
test_agent_broker__rotation(void **state)
{
	struct fx *fx = *state;
	const char *csr, *new_pem, *new_id, *cur;
	json_t *ack;
	size_t connects;

	start_world(fx);
	csr = csr_round(fx, "r1", 1);
	/* A new key (rekey is the default), the one in staging/, never the current one. */
	assert_string_not_equal(cf_test_ossl_pubkey(&fx->f, "req", csr),
				cf_test_ossl_pubkey(&fx->f, "pkey", fx->dev_key));
	assert_string_equal(cf_test_ossl_pubkey(&fx->f, "req", csr),
			    cf_test_ossl_pubkey(&fx->f, "pkey",
						cf_test_tpath(&fx->f, "state/staging/key.pem")));
	assert_private_dir(fx, cf_test_tpath(&fx->f, "state/staging"));
	assert_string_equal(
		cf_test_ossl_cert_id(&fx->f, cf_test_tpath(&fx->f, "state/current/cert.pem")),
		fx->dev_id);

	/* The server's part: issue from the CSR, refusing the old key, and send crt. */
	new_pem = cf_test_tpath(&fx->f, "dev1-new.pem");
	new_id = issue(fx, "dev1", csr, fx->dev_id, new_pem);
	connects = broker_count(fx, " as dev1 ");
	send_crt(fx, "r1", new_id, new_pem);

	ack = sub_msg(fx, P "dev1/crt_ack", 1);
	assert_string_equal(cf_test_jstr(ack, "rotationId"), "r1");
	assert_string_equal(cf_test_jstr(ack, "certificateId"), new_id);
	assert_int_equal(sub_count(fx, P "dev1/crt_err"), 0);
	/* It reconnected (with the new identity) before acking. */
	assert_true(broker_count(fx, " as dev1 ") > connects);
	wait_agent_log(fx, cf_test_keep(&fx->f, cf_test_printf("event=rotated cert=%s", new_id)),
		       1);

	/* current/ holds the new pair, previous/ the old one, staging/ is gone; all 0600. */
	cur = cf_test_tpath(&fx->f, "state/current/cert.pem");
	assert_string_equal(cf_test_ossl_cert_id(&fx->f, cur), new_id);
	assert_string_equal(
		cf_test_ossl_pubkey(&fx->f, "pkey", cf_test_tpath(&fx->f, "state/current/key.pem")),
		cf_test_ossl_pubkey(&fx->f, "req", csr));
	assert_string_equal(
		cf_test_ossl_cert_id(&fx->f, cf_test_tpath(&fx->f, "state/previous/cert.pem")),
		fx->dev_id);
	assert_string_equal(cf_test_ossl_pubkey(&fx->f, "pkey",
						cf_test_tpath(&fx->f, "state/previous/key.pem")),
			    cf_test_ossl_pubkey(&fx->f, "pkey", fx->dev_key));
	assert_int_equal(access(cf_test_tpath(&fx->f, "state/staging"), F_OK), -1);
	assert_private_dir(fx, cf_test_tpath(&fx->f, "state/current"));
	assert_private_dir(fx, cf_test_tpath(&fx->f, "state/previous"));
	assert_int_equal(cf_test_file_mode(fx->state), 0700);
	/* The new certificate chains to the certfleet root through the intermediate. */
	cf_test_openssl(&fx->f, 0, "verify", "-CAfile", fx->f.root, "-untrusted", fx->f.inter, cur,
			NULL);
	cf_test_assert_contains(fx->f.r.out, ": OK");

	/* Still connected and subscribed with the new identity: the next csr_req is answered. */
	csr = csr_round(fx, "r2", 2);
	assert_string_not_equal(
		cf_test_ossl_pubkey(&fx->f, "req", csr),
		cf_test_ossl_pubkey(&fx->f, "pkey",
				    cf_test_tpath(&fx->f, "state/current/key.pem")));
	stop_agent(fx);
}

/* A crt for another key -> crt_err KEY_MISMATCH, and the agent stays on its certificate. */
static void
test_agent_broker__wrong_key_refused(void **state)
{
	struct fx *fx = *state;
	const char *other_pem, *other_id;
	json_t *err;

	start_world(fx);
	csr_round(fx, "r1", 1);
	/* A real certfleet certificate for dev1, but for a key the agent never made. */
	other_pem = cf_test_tpath(&fx->f, "other.pem");
	other_id = issue(fx, "dev1", cf_test_csr_new(&fx->f, "other", "ec", "/CN=other"),
			 fx->dev_id, other_pem);
	send_crt(fx, "r1", other_id, other_pem);

	err = sub_msg(fx, P "dev1/crt_err", 1);
	cf_test_assert_contains(cf_test_jstr(err, "error"), "KEY_MISMATCH");
	assert_string_equal(cf_test_jstr(err, "rotationId"), "r1");
	assert_int_equal(sub_count(fx, P "dev1/crt_ack"), 0);
	/* The old identity stays current; nothing was promoted, staging is discarded. */
	assert_string_equal(
		cf_test_ossl_cert_id(&fx->f, cf_test_tpath(&fx->f, "state/current/cert.pem")),
		fx->dev_id);
	assert_string_equal(
		cf_test_ossl_pubkey(&fx->f, "pkey", cf_test_tpath(&fx->f, "state/current/key.pem")),
		cf_test_ossl_pubkey(&fx->f, "pkey", fx->dev_key));
	assert_int_equal(access(cf_test_tpath(&fx->f, "state/previous"), F_OK), -1);
	assert_int_equal(access(cf_test_tpath(&fx->f, "state/staging"), F_OK), -1);
	assert_private_dir(fx, cf_test_tpath(&fx->f, "state/current"));
	/* And it still answers on the old connection. */
	csr_round(fx, "r2", 2);
	stop_agent(fx);
}

/* A certificate for the staged key from a CA outside the trust anchors -> crt_err UNTRUSTED. */
static void
test_agent_broker__untrusted_issuer_refused(void **state)
{
	struct fx *fx = *state;
	const char *csr, *rogue_key, *rogue_ca, *pem, *id;
	json_t *err;

	start_world(fx);
	csr = csr_round(fx, "r1", 1);
	rogue_key = cf_test_tpath(&fx->f, "rogue.key");
	rogue_ca = cf_test_tpath(&fx->f, "rogue.pem");
	cf_test_openssl(&fx->f, 0, "req", "-x509", "-newkey", "ec", "-pkeyopt",
			"ec_paramgen_curve:P-256", "-nodes", "-keyout", rogue_key, "-out", rogue_ca,
			"-subj", "/CN=rogue CA", "-days", "2", NULL);
	pem = cf_test_tpath(&fx->f, "rogue-leaf.pem");
	cf_test_openssl(&fx->f, 0, "x509", "-req", "-in", csr, "-CA", rogue_ca, "-CAkey", rogue_key,
			"-set_serial", "7", "-days", "2", "-out", pem, NULL);
	id = cf_test_ossl_cert_id(&fx->f, pem);
	send_crt(fx, "r1", id, pem);

	err = sub_msg(fx, P "dev1/crt_err", 1);
	cf_test_assert_contains(cf_test_jstr(err, "error"), "UNTRUSTED");
	assert_int_equal(sub_count(fx, P "dev1/crt_ack"), 0);
	assert_string_equal(
		cf_test_ossl_cert_id(&fx->f, cf_test_tpath(&fx->f, "state/current/cert.pem")),
		fx->dev_id);
	assert_int_equal(access(cf_test_tpath(&fx->f, "state/staging"), F_OK), -1);
	stop_agent(fx);
}

/*
 * Persistent sessions: a csr_req published while the agent is stopped is
 * queued by the broker, survives a broker restart (SIGTERM, persistence
 * file), and is answered once the agent is back.
 */
static void
test_agent_broker__offline_csr_req_survives_broker_restart(void **state)
{
	struct fx *fx = *state;
	json_t *res;
	int port;

	start_world(fx);
	stop_agent(fx);
	pub(fx, P "dev1/csr_req", "{\"rotationId\":\"r-offline\"}");
	port = cf_test_broker_port(fx->broker);
	assert_int_equal(cf_test_broker_restart(fx->broker), 0);
	assert_int_equal(cf_test_broker_port(fx->broker), port);
	assert_true(cf_test_broker_running(fx->broker));
	start_agent(fx);
	res = sub_msg(fx, P "dev1/csr_res", 1);
	assert_string_equal(cf_test_jstr(res, "rotationId"), "r-offline");
	assert_int_equal(sub_count(fx, P "dev1/csr_res"), 1);
	stop_agent(fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_agent_broker__rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_broker__wrong_key_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_broker__untrusted_issuer_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_agent_broker__offline_csr_req_survives_broker_restart, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
