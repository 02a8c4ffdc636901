/*
 * Integration: the certfleet-agent program against a real Mosquitto over
 * mutual TLS, with the test playing the server.
 *
 * Each case gets a temp dir with a quickstart data dir, a broker
 * (support/broker.h) whose listener requires client certificates chaining
 * to the certfleet root, and two identities issued by the real
 * `certfleet cert issue` from CSRs made by `openssl req`: the device dev1
 * (copied into the agent's state dir) and a service client svc. The test
 * speaks the server's side of protocol.md with mosquitto_pub and
 * mosquitto_sub as svc, issues the device's new certificate with the
 * certfleet CLI from the CSR the agent sent, and checks the result with the
 * openssl command. No certfleetd here: the agent is checked against the
 * protocol, not against our server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
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
#include "support/run.h"

#define MAX_ARGV 64
#define MAX_KEEP 1024
#define WAIT_MS  20000 /* one protocol step, generous for ASan on a busy machine */

#define P "management/topic/"

struct fx {
	char *tmp;        /* this case's temp dir */
	char *data;       /* tmp/data: the certfleet data dir */
	cf_test_result r; /* the last run */
	char *keep[MAX_KEEP];
	size_t nkeep;
	json_t *jkeep[MAX_KEEP];
	size_t njkeep;

	cf_test_broker *broker;
	cf_test_bg *sub;          /* mosquitto_sub as svc: csr_res, crt_ack, crt_err */
	cf_test_bg *agent;        /* certfleet-agent as dev1 */
	const char *root, *inter; /* certfleet root and intermediate (PEM files) */
	const char *svc_cert, *svc_key;
	const char *dev_key, *dev_cert, *dev_id; /* the device's first identity */
	const char *state, *agent_conf, *agent_log, *sub_out;
};

static char *g_cli;
static char *g_agent;

/* ---- fixture ----------------------------------------------------------------- */

static int
group_setup(void **state)
{
	const char *bdir = getenv("CF_BINARY_DIR");

	(void)state;
	if (bdir == NULL) {
		fprintf(stderr, "CF_BINARY_DIR must be set (run through ctest)\n");
		return -1;
	}
	g_cli = cf_test_printf("%s/cli/certfleet", bdir);
	g_agent = cf_test_printf("%s/agent/certfleet-agent", bdir);
	if (g_cli == NULL || g_agent == NULL || access(g_cli, X_OK) != 0 ||
	    access(g_agent, X_OK) != 0) {
		fprintf(stderr, "no certfleet or certfleet-agent binary under %s\n", bdir);
		return -1;
	}
	return 0;
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
	fx->r = (cf_test_result)CF_TEST_RESULT_INIT;
	if (cf_test_tmpdir_new(&fx->tmp, "certfleet-agent-it") != 0) {
		free(fx);
		return -1;
	}
	fx->data = cf_test_printf("%s/data", fx->tmp);
	if (fx->data == NULL) {
		cf_test_tmpdir_remove(fx->tmp);
		free(fx->tmp);
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
	size_t i;
	int rc = 0;

	if (fx == NULL)
		return 0;
	/* Processes first, whatever happened in the case. */
	cf_test_bg_free(fx->agent);
	cf_test_bg_free(fx->sub);
	if (fx->broker != NULL && getenv("CF_TEST_KEEP") != NULL)
		fprintf(stderr, "keeping %s\n", fx->tmp);
	cf_test_broker_free(fx->broker);
	for (i = 0; i < fx->nkeep; i++)
		free(fx->keep[i]);
	for (i = 0; i < fx->njkeep; i++)
		json_decref(fx->jkeep[i]);
	cf_test_result_clear(&fx->r);
	if (getenv("CF_TEST_KEEP") == NULL)
		rc = cf_test_tmpdir_remove(fx->tmp);
	free(fx->tmp);
	free(fx->data);
	free(fx);
	return rc;
}

static const char *
keep(struct fx *fx, char *s)
{
	assert_non_null(s);
	assert_true(fx->nkeep < MAX_KEEP);
	fx->keep[fx->nkeep++] = s;
	return s;
}

static json_t *
jkeep(struct fx *fx, json_t *j)
{
	assert_non_null(j);
	assert_true(fx->njkeep < MAX_KEEP);
	fx->jkeep[fx->njkeep++] = j;
	return j;
}

static const char *
tpath(struct fx *fx, const char *name)
{
	return keep(fx, cf_test_printf("%s/%s", fx->tmp, name));
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

/* ---- running ----------------------------------------------------------------- */

static void
show(struct fx *fx, const char *const *argv)
{
	size_t i;

	fprintf(stderr, "command:");
	for (i = 0; argv[i] != NULL; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\nexit: %d%s\nstdout:\n%s\nstderr:\n%s\n", fx->r.status,
		fx->r.timed_out ? " (timed out)" : "", fx->r.out != NULL ? fx->r.out : "",
		fx->r.err != NULL ? fx->r.err : "");
}

/* Run argv into fx->r; fail on a timeout, or when want >= 0 and the exit differs. */
static int
run_argv(struct fx *fx, const char **argv, int want)
{
	cf_test_run(&fx->r, argv, CF_TEST_TIMEOUT);
	if (fx->r.timed_out || (want >= 0 && fx->r.status != want)) {
		show(fx, argv);
		if (want >= 0)
			fprintf(stderr, "expected exit %d\n", want);
		fail_msg("%s: unexpected result", argv[0]);
	}
	return fx->r.status;
}

static void
collect(const char **argv, size_t n, va_list ap)
{
	const char *a;

	for (;;) {
		a = va_arg(ap, const char *);
		if (a == NULL)
			break;
		assert_true(n < MAX_ARGV - 1);
		argv[n++] = a;
	}
	argv[n] = NULL;
}

/* certfleet --data-dir D ARGS..., which must exit 0. */
static CF_TEST_SENTINEL void
cli(struct fx *fx, ...)
{
	const char *argv[MAX_ARGV];
	va_list ap;

	argv[0] = g_cli;
	argv[1] = "--data-dir";
	argv[2] = fx->data;
	va_start(ap, fx);
	collect(argv, 3, ap);
	va_end(ap);
	run_argv(fx, argv, 0);
}

/* certfleet --output json ARGS..., which must exit 0: its parsed output. */
static CF_TEST_SENTINEL json_t *
cli_json(struct fx *fx, ...)
{
	const char *argv[MAX_ARGV];
	json_error_t jerr;
	va_list ap;
	json_t *j;

	argv[0] = g_cli;
	argv[1] = "--data-dir";
	argv[2] = fx->data;
	argv[3] = "--output";
	argv[4] = "json";
	va_start(ap, fx);
	collect(argv, 5, ap);
	va_end(ap);
	run_argv(fx, argv, 0);
	j = json_loads(fx->r.out, JSON_DECODE_ANY, &jerr);
	if (j == NULL)
		fail_msg("stdout is not JSON: %s\n%s", jerr.text, fx->r.out);
	return jkeep(fx, j);
}

/* openssl ARGS..., which must exit want (-1: any): the exit status. */
static CF_TEST_SENTINEL int
ossl(struct fx *fx, int want, ...)
{
	const char *argv[MAX_ARGV];
	va_list ap;

	argv[0] = "openssl";
	va_start(ap, want);
	collect(argv, 1, ap);
	va_end(ap);
	return run_argv(fx, argv, want);
}

/* ---- small checks ------------------------------------------------------------ */

static const char *
chomp(struct fx *fx, const char *s)
{
	char *c = strdup(s);
	size_t n;

	assert_non_null(c);
	n = strlen(c);
	while (n > 0 && isspace((unsigned char)c[n - 1]))
		c[--n] = '\0';
	return keep(fx, c);
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL) {
		fprintf(stderr, "in:\n%s\n", hay);
		fail_msg("'%s' not found", needle);
	}
}

static const char *
jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v)) {
		char *dump = json_dumps(obj, JSON_ENCODE_ANY);

		fprintf(stderr, "object: %s\n", dump != NULL ? dump : "?");
		free(dump);
		fail_msg("no string '%s'", key);
	}
	return json_string_value(v);
}

static const char *
file_text(struct fx *fx, const char *path)
{
	char *text = NULL;

	if (cf_test_file_read(&text, NULL, path, 4 * 1024 * 1024) != 0)
		fail_msg("cannot read %s", path);
	return keep(fx, text);
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
	assert_int_equal(cf_test_file_write(path, text, strlen(text), mode), 0);
}

/* The certificateId of a PEM file's first certificate, by openssl: SHA-256 of the DER. */
static const char *
ossl_cert_id(struct fx *fx, const char *pem)
{
	const char *line;
	char *id;
	size_t i;

	ossl(fx, 0, "x509", "-in", pem, "-noout", "-fingerprint", "-sha256", NULL);
	/* "sha256 Fingerprint=AB:CD:..." */
	line = strchr(fx->r.out, '=');
	assert_non_null(line);
	id = calloc(65, 1);
	assert_non_null(id);
	for (i = 0, line++; *line != '\0' && *line != '\n' && i < 64; line++) {
		if (*line != ':')
			id[i++] = (char)tolower((unsigned char)*line);
	}
	assert_int_equal(i, 64);
	return keep(fx, id);
}

/* The public key of a certificate (x509), CSR (req) or private key (pkey) as PEM. */
static const char *
ossl_pubkey(struct fx *fx, const char *what, const char *path)
{
	if (strcmp(what, "pkey") == 0)
		ossl(fx, 0, "pkey", "-in", path, "-pubout", NULL);
	else
		ossl(fx, 0, what, "-in", path, "-pubkey", "-noout", NULL);
	return keep(fx, strdup(fx->r.out));
}

/* ---- the world: CA, broker, identities, agent -------------------------------- */

/* A key and CSR made by openssl (EC P-256): the CSR path; the key is NAME.key. */
static const char *
make_csr(struct fx *fx, const char *name)
{
	const char *csr = tpath(fx, keep(fx, cf_test_printf("%s.csr", name)));
	const char *key = tpath(fx, keep(fx, cf_test_printf("%s.key", name)));

	ossl(fx, 0, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
	     "-keyout", key, "-out", csr, "-subj", keep(fx, cf_test_printf("/CN=%s", name)), NULL);
	return csr;
}

/* certfleet cert issue for thing from csr into out: the printed certificate id. */
static const char *
issue(struct fx *fx, const char *thing, const char *csr, const char *replaces, const char *out)
{
	const char *id;

	if (replaces != NULL)
		cli(fx, "cert", "issue", "--thing", thing, "--csr", csr, "--replaces", replaces,
		    "--out", out, NULL);
	else
		cli(fx, "cert", "issue", "--thing", thing, "--csr", csr, "--out", out, NULL);
	id = chomp(fx, fx->r.out);
	assert_int_equal(strlen(id), 64);
	/* What certfleet says is what openssl computes. */
	assert_string_equal(id, ossl_cert_id(fx, out));
	return id;
}

static void
start_agent(struct fx *fx)
{
	const char *argv[] = { g_agent, "-c", fx->agent_conf, NULL };

	assert_null(fx->agent);
	assert_int_equal(cf_test_bg_start(&fx->agent, argv, fx->agent_log, fx->agent_log), 0);
}

/* Stop the agent with SIGTERM: it must exit 0 (ASan reports leaks with another status). */
static void
stop_agent(struct fx *fx)
{
	int status = cf_test_bg_stop(fx->agent, 0);

	cf_test_bg_free(fx->agent);
	fx->agent = NULL;
	if (status != 0) {
		dump_logs(fx);
		fail_msg("certfleet-agent exited with status %d after SIGTERM", status);
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
 * Quickstart CA, broker, svc and dev1 identities, the subscriber, and the
 * agent connected and subscribed.
 */
static void
start_world(struct fx *fx)
{
	static const char *const topics[] = { P "+/csr_res", P "+/crt_ack", P "+/crt_err", NULL };
	const char *chain, *dev_csr, *svc_csr, *conf;
	json_t *ca;

	cli(fx, "init", "--quickstart", NULL);
	fx->root = keep(fx, cf_test_printf("%s/offline-root/root.pem", fx->data));
	ca = cli_json(fx, "ca", "describe", "default", NULL);
	fx->inter = tpath(fx, "intermediate.pem");
	write_text(fx->inter, jstr(ca, "certificatePem"), 0644);

	/* The broker trusts the certfleet root and intermediate for client certificates. */
	chain = tpath(fx, "certfleet-chain.pem");
	write_text(
		chain,
		keep(fx, cf_test_printf("%s%s", file_text(fx, fx->root), file_text(fx, fx->inter))),
		0644);
	assert_int_equal(cf_test_broker_start(&fx->broker, tpath(fx, "broker"), chain, NULL), 0);

	/* The service client: a thing of its own, key and CSR by openssl, cert by certfleet. */
	cli(fx, "thing", "create", "svc", NULL);
	svc_csr = make_csr(fx, "svc");
	fx->svc_key = tpath(fx, "svc.key");
	fx->svc_cert = tpath(fx, "svc.pem");
	issue(fx, "svc", svc_csr, NULL, fx->svc_cert);

	/* The device's first identity, copied into the agent's state dir. */
	cli(fx, "thing", "create", "dev1", NULL);
	dev_csr = make_csr(fx, "dev1");
	fx->dev_key = tpath(fx, "dev1.key");
	fx->dev_cert = tpath(fx, "dev1.pem");
	fx->dev_id = issue(fx, "dev1", dev_csr, NULL, fx->dev_cert);
	fx->state = tpath(fx, "state");
	assert_int_equal(mkdir(fx->state, 0700), 0);
	assert_int_equal(mkdir(tpath(fx, "state/current"), 0700), 0);
	write_text(tpath(fx, "state/current/key.pem"), file_text(fx, fx->dev_key), 0600);
	write_text(tpath(fx, "state/current/cert.pem"),
		   keep(fx, cf_test_printf("%s%s", file_text(fx, fx->dev_cert),
					   file_text(fx, fx->inter))),
		   0600);
	/* The device trusts the broker CA (server) and the certfleet root (new certificates). */
	write_text(
		tpath(fx, "device-ca.pem"),
		keep(fx, cf_test_printf("%s%s", file_text(fx, cf_test_broker_ca_file(fx->broker)),
					file_text(fx, fx->root))),
		0644);

	fx->sub_out = tpath(fx, "sub.out");
	assert_int_equal(cf_test_mqtt_sub_start(&fx->sub, fx->broker, fx->svc_cert, fx->svc_key,
						"svc-sub", topics, fx->sub_out),
			 0);

	fx->agent_conf = tpath(fx, "agent.conf");
	fx->agent_log = tpath(fx, "agent.log");
	conf = keep(fx, cf_test_printf("broker_host = 127.0.0.1\n"
				       "broker_port = %d\n"
				       "client_id = dev1\n"
				       "state_dir = %s\n"
				       "ca_file = %s\n"
				       "log_level = debug\n",
				       cf_test_broker_port(fx->broker), fx->state,
				       tpath(fx, "device-ca.pem")));
	write_text(fx->agent_conf, conf, 0644);
	start_agent(fx);
	/* Connected, and its three subscriptions acknowledged. */
	wait_agent_log(fx, "event=connected", 1);
	wait_broker_log(fx, "Sending SUBACK to dev1\n", 3);
}

/* ---- the server's side ------------------------------------------------------- */

static void
pub(struct fx *fx, const char *topic, const char *payload)
{
	if (cf_test_mqtt_pub(fx->broker, fx->svc_cert, fx->svc_key, topic, payload) != 0) {
		dump_logs(fx);
		fail_msg("mosquitto_pub to %s failed", topic);
	}
}

/*
 * The payload of the nth (from 1) message on topic that mosquitto_sub
 * printed, waiting for it at most WAIT_MS.
 */
static json_t *
sub_msg(struct fx *fx, const char *topic, size_t nth)
{
	const char *prefix = keep(fx, cf_test_printf("%s ", topic)), *text, *p, *end;
	json_error_t jerr;
	size_t seen = 0;
	json_t *j;

	if (cf_test_file_wait(fx->sub_out, prefix, nth, WAIT_MS) != 0) {
		dump_logs(fx);
		fail_msg("no message %zu on %s within %d ms", nth, topic, WAIT_MS);
	}
	/* Wait for the end of its line too: a line is written in one piece, but be sure. */
	text = file_text(fx, fx->sub_out);
	for (p = text; p != NULL && *p != '\0'; p = end != NULL ? end + 1 : NULL) {
		end = strchr(p, '\n');
		if (strncmp(p, prefix, strlen(prefix)) != 0 || ++seen < nth)
			continue;
		p += strlen(prefix);
		j = json_loadb(p, end != NULL ? (size_t)(end - p) : strlen(p), 0, &jerr);
		if (j == NULL)
			fail_msg("message on %s is not JSON: %s", topic, jerr.text);
		return jkeep(fx, j);
	}
	fail_msg("message %zu on %s vanished", nth, topic);
	return NULL;
}

static size_t
sub_count(struct fx *fx, const char *topic)
{
	return cf_test_file_count(fx->sub_out, keep(fx, cf_test_printf("%s ", topic)));
}

/* Publish csr_req for rotation rid, wait for csr_res number nth: the CSR written to a file. */
static const char *
csr_round(struct fx *fx, const char *rid, size_t nth)
{
	json_t *res;
	const char *csr = tpath(fx, keep(fx, cf_test_printf("agent-%s-%zu.csr", rid, nth)));

	pub(fx, P "dev1/csr_req", keep(fx, cf_test_printf("{\"rotationId\":\"%s\"}", rid)));
	res = sub_msg(fx, P "dev1/csr_res", nth);
	assert_string_equal(jstr(res, "rotationId"), rid);
	write_text(csr, jstr(res, "CSR"), 0644);
	/* The CSR is a valid PKCS#10 request whose self-signature verifies. */
	ossl(fx, 0, "req", "-in", csr, "-verify", "-noout", NULL);
	assert_contains(fx->r.err, "verify OK");
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
	json_object_set_new(msg, "certificatePem", json_string(file_text(fx, pem_path)));
	json_object_set_new(msg, "caChainPem", json_string(file_text(fx, fx->inter)));
	json_object_set_new(msg, "rotationId", json_string(rid));
	payload = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	assert_non_null(payload);
	pub(fx, P "dev1/crt", keep(fx, payload));
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
		path = keep(fx, cf_test_printf("%s/%s", dir, e->d_name));
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
	assert_string_not_equal(ossl_pubkey(fx, "req", csr), ossl_pubkey(fx, "pkey", fx->dev_key));
	assert_string_equal(ossl_pubkey(fx, "req", csr),
			    ossl_pubkey(fx, "pkey", tpath(fx, "state/staging/key.pem")));
	assert_private_dir(fx, tpath(fx, "state/staging"));
	assert_string_equal(ossl_cert_id(fx, tpath(fx, "state/current/cert.pem")), fx->dev_id);

	/* The server's part: issue from the CSR, refusing the old key, and send crt. */
	new_pem = tpath(fx, "dev1-new.pem");
	new_id = issue(fx, "dev1", csr, fx->dev_id, new_pem);
	connects = broker_count(fx, " as dev1 ");
	send_crt(fx, "r1", new_id, new_pem);

	ack = sub_msg(fx, P "dev1/crt_ack", 1);
	assert_string_equal(jstr(ack, "rotationId"), "r1");
	assert_string_equal(jstr(ack, "certificateId"), new_id);
	assert_int_equal(sub_count(fx, P "dev1/crt_err"), 0);
	/* It reconnected (with the new identity) before acking. */
	assert_true(broker_count(fx, " as dev1 ") > connects);
	wait_agent_log(fx, keep(fx, cf_test_printf("event=rotated cert=%s", new_id)), 1);

	/* current/ holds the new pair, previous/ the old one, staging/ is gone; all 0600. */
	cur = tpath(fx, "state/current/cert.pem");
	assert_string_equal(ossl_cert_id(fx, cur), new_id);
	assert_string_equal(ossl_pubkey(fx, "pkey", tpath(fx, "state/current/key.pem")),
			    ossl_pubkey(fx, "req", csr));
	assert_string_equal(ossl_cert_id(fx, tpath(fx, "state/previous/cert.pem")), fx->dev_id);
	assert_string_equal(ossl_pubkey(fx, "pkey", tpath(fx, "state/previous/key.pem")),
			    ossl_pubkey(fx, "pkey", fx->dev_key));
	assert_int_equal(access(tpath(fx, "state/staging"), F_OK), -1);
	assert_private_dir(fx, tpath(fx, "state/current"));
	assert_private_dir(fx, tpath(fx, "state/previous"));
	assert_int_equal(cf_test_file_mode(fx->state), 0700);
	/* The new certificate chains to the certfleet root through the intermediate. */
	ossl(fx, 0, "verify", "-CAfile", fx->root, "-untrusted", fx->inter, cur, NULL);
	assert_contains(fx->r.out, ": OK");

	/* Still connected and subscribed with the new identity: the next csr_req is answered. */
	csr = csr_round(fx, "r2", 2);
	assert_string_not_equal(ossl_pubkey(fx, "req", csr),
				ossl_pubkey(fx, "pkey", tpath(fx, "state/current/key.pem")));
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
	other_pem = tpath(fx, "other.pem");
	other_id = issue(fx, "dev1", make_csr(fx, "other"), fx->dev_id, other_pem);
	send_crt(fx, "r1", other_id, other_pem);

	err = sub_msg(fx, P "dev1/crt_err", 1);
	assert_contains(jstr(err, "error"), "KEY_MISMATCH");
	assert_string_equal(jstr(err, "rotationId"), "r1");
	assert_int_equal(sub_count(fx, P "dev1/crt_ack"), 0);
	/* The old identity stays current; nothing was promoted, staging is discarded. */
	assert_string_equal(ossl_cert_id(fx, tpath(fx, "state/current/cert.pem")), fx->dev_id);
	assert_string_equal(ossl_pubkey(fx, "pkey", tpath(fx, "state/current/key.pem")),
			    ossl_pubkey(fx, "pkey", fx->dev_key));
	assert_int_equal(access(tpath(fx, "state/previous"), F_OK), -1);
	assert_int_equal(access(tpath(fx, "state/staging"), F_OK), -1);
	assert_private_dir(fx, tpath(fx, "state/current"));
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
	rogue_key = tpath(fx, "rogue.key");
	rogue_ca = tpath(fx, "rogue.pem");
	ossl(fx, 0, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
	     "-nodes", "-keyout", rogue_key, "-out", rogue_ca, "-subj", "/CN=rogue CA", "-days",
	     "2", NULL);
	pem = tpath(fx, "rogue-leaf.pem");
	ossl(fx, 0, "x509", "-req", "-in", csr, "-CA", rogue_ca, "-CAkey", rogue_key, "-set_serial",
	     "7", "-days", "2", "-out", pem, NULL);
	id = ossl_cert_id(fx, pem);
	send_crt(fx, "r1", id, pem);

	err = sub_msg(fx, P "dev1/crt_err", 1);
	assert_contains(jstr(err, "error"), "UNTRUSTED");
	assert_int_equal(sub_count(fx, P "dev1/crt_ack"), 0);
	assert_string_equal(ossl_cert_id(fx, tpath(fx, "state/current/cert.pem")), fx->dev_id);
	assert_int_equal(access(tpath(fx, "state/staging"), F_OK), -1);
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
	assert_string_equal(jstr(res, "rotationId"), "r-offline");
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
