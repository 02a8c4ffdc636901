/*
 * test_agent: libcertfleet-agent over a fake transport (driven through the
 * step API) and a throw-away OpenSSL CA made here: root -> intermediate ->
 * device certificates. No server code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "../../../agent/agent_int.h"

#define CLIENT "thing-1"
#define P      "management/topic/" CLIENT "/"

/* ---- a tiny CA ------------------------------------------------------------ */

struct ca {
	EVP_PKEY *key;
	X509 *cert;
};

static struct ca root, inter, rogue;
static char *root_pem_path;

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static X509 *
make_cert(EVP_PKEY *pub, const char *cn, const struct ca *issuer, bool is_ca, long days)
{
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char serial[16];
	BIGNUM *bn;

	assert_int_equal(RAND_bytes(serial, sizeof(serial)), 1);
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	X509_set_version(cert, 2);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				   0);
	X509_set_subject_name(cert, name);
	X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer->cert) : name);
	X509_gmtime_adj(X509_getm_notBefore(cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400);
	X509_set_pubkey(cert, pub);
	X509_NAME_free(name);
	if (is_ca) {
		add_ext(cert, issuer ? issuer->cert : cert, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(cert, issuer ? issuer->cert : cert, NID_key_usage,
			"critical,keyCertSign,cRLSign");
	} else {
		add_ext(cert, issuer->cert, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(cert, issuer->cert, NID_key_usage, "critical,digitalSignature");
		add_ext(cert, issuer->cert, NID_ext_key_usage, "clientAuth");
	}
	assert_true(X509_sign(cert, issuer != NULL ? issuer->key : pub, EVP_sha256()) > 0);
	return cert;
}

static void
ca_make(struct ca *ca, const char *cn, const struct ca *issuer)
{
	ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(ca->key);
	ca->cert = make_cert(ca->key, cn, issuer, true, 3650);
}

static char *
cert_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *copy;
	long n;

	PEM_write_bio_X509(bio, cert);
	n = BIO_get_mem_data(bio, &data);
	copy = malloc((size_t)n + 1);
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	BIO_free(bio);
	return copy;
}

/* Issue a device certificate for the public key of a PEM CSR. */
static X509 *
issue_for_csr(const char *csr_pem, const struct ca *issuer)
{
	BIO *bio = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	X509 *cert;

	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
	cert = make_cert(X509_REQ_get0_pubkey(req), CLIENT, issuer, false, 365);
	X509_REQ_free(req);
	BIO_free(bio);
	return cert;
}

static int
group_setup(void **state)
{
	char tmpl[] = "/tmp/cf-agent-ca-XXXXXX";
	int fd;
	char *pem;

	(void)state;
	ca_make(&root, "Test Root", NULL);
	ca_make(&inter, "Test Intermediate", &root);
	ca_make(&rogue, "Rogue Root", NULL);
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	pem = cert_pem(root.cert);
	assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
	close(fd);
	free(pem);
	root_pem_path = strdup(tmpl);
	return 0;
}

static int
group_teardown(void **state)
{
	struct ca *cas[] = { &root, &inter, &rogue };
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		EVP_PKEY_free(cas[i]->key);
		X509_free(cas[i]->cert);
	}
	unlink(root_pem_path);
	free(root_pem_path);
	return 0;
}

/* ---- the fixture: a state dir and a fake transport -------------------------- */

#define MAX_PUB 32

struct pub {
	char *topic;
	char *payload;
};

struct fx {
	char dir[64];
	cf_agent *agent;
	struct pub pubs[MAX_PUB];
	int npub;
	int nsub;
	int nconnect;
	cf_agent_slot last_slot;
	cf_agent_connect_result result[3]; /* what a CONNECT with each slot gets */
	int64_t now;
	EVP_PKEY *old_key;
	char old_id[65];
};

static char *
path2(const struct fx *fx, const char *a, const char *b)
{
	size_t n = strlen(fx->dir) + strlen(a) + (b ? strlen(b) : 0) + 3;
	char *s = malloc(n);

	assert_non_null(s);
	if (snprintf(s, n, "%s/%s%s%s", fx->dir, a, b ? "/" : "", b ? b : "") < 0)
		fail();
	return s;
}

static bool
exists(const struct fx *fx, const char *a, const char *b)
{
	char *p = path2(fx, a, b);
	struct stat st;
	bool yes = stat(p, &st) == 0;

	free(p);
	return yes;
}

static void
write_file(const struct fx *fx, const char *a, const char *b, const char *text)
{
	char *p = path2(fx, a, b);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(p, 0600);
	free(p);
}

static void
rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[1024];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_rf(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void
agent_open(struct fx *fx)
{
	cf_agent_config cfg;
	cf_agent_err err = { 0, NULL, { 0 } };

	cf_agent_config_init(&cfg);
	cfg.client_id = CLIENT;
	cfg.state_dir = fx->dir;
	cfg.ca_file = root_pem_path;
	cfg.log_level = CF_AGENT_LOG_ERR;
	assert_int_equal(cf_agent_open(&fx->agent, &cfg, &err), 0);
}

static void
clear_pubs(struct fx *fx)
{
	int i;

	for (i = 0; i < fx->npub; i++) {
		free(fx->pubs[i].topic);
		free(fx->pubs[i].payload);
	}
	fx->npub = 0;
}

/* Do every action the agent asks for, as a broker would answer. */
static void
drain(struct fx *fx)
{
	cf_agent_action act;
	int guard;

	for (guard = 0; guard < 100; guard++) {
		(void)cf_agent_tick(fx->agent, fx->now);
		if (cf_agent_next_action(&act, fx->agent) != 1)
			return;
		switch (act.type) {
		case CF_AGENT_ACTION_CONNECT:
			assert_non_null(act.identity.ssl_ctx);
			assert_string_equal(act.identity.client_id, CLIENT);
			fx->nconnect++;
			fx->last_slot = act.identity.slot;
			cf_agent_connect_done(fx->agent, act.id, fx->result[act.identity.slot],
					      fx->now);
			break;
		case CF_AGENT_ACTION_SUBSCRIBE:
			fx->nsub++;
			break;
		case CF_AGENT_ACTION_PUBLISH:
			assert_true(fx->npub < MAX_PUB);
			fx->pubs[fx->npub].topic = strdup(act.topic);
			fx->pubs[fx->npub].payload = strdup(act.payload);
			assert_int_equal(strlen(act.payload), act.payload_len);
			fx->npub++;
			cf_agent_publish_done(fx->agent, act.id, 1);
			break;
		default:
			fail();
		}
	}
	fail_msg("the agent never settles");
}

/* The string field name of the last publish on topic P+leaf, or NULL. */
static char *
last_field(struct fx *fx, const char *leaf, const char *name)
{
	cf_agent__json_field f[1] = { { name, CF_AGENT__JSON_STR, false, false, NULL, 0 } };
	char topic[128];
	int i;

	snprintf(topic, sizeof(topic), P "%s", leaf);
	for (i = fx->npub - 1; i >= 0; i--) {
		if (strcmp(fx->pubs[i].topic, topic) != 0)
			continue;
		assert_int_equal(cf_agent__json_read(fx->pubs[i].payload,
						     strlen(fx->pubs[i].payload), f, 1, NULL),
				 0);
		return f[0].str; /* the caller frees */
	}
	return NULL;
}

static int
count_pubs(const struct fx *fx, const char *leaf)
{
	char topic[128];
	int i, n = 0;

	snprintf(topic, sizeof(topic), P "%s", leaf);
	for (i = 0; i < fx->npub; i++)
		n += strcmp(fx->pubs[i].topic, topic) == 0;
	return n;
}

static void
message(struct fx *fx, const char *leaf, const char *payload, int expect_rc)
{
	char topic[128];

	snprintf(topic, sizeof(topic), P "%s", leaf);
	assert_int_equal(cf_agent_handle_message(fx->agent, topic, payload, strlen(payload), NULL),
			 expect_rc);
	drain(fx);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	X509 *cert;
	char *pem, *key_pem;
	size_t key_len;
	STACK_OF(X509) *one = sk_X509_new_null();

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cf-agent-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	/* Provisioning: copy key.pem and cert.pem into current/. */
	fx->old_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	cert = make_cert(fx->old_key, CLIENT, &inter, false, 30);
	assert_int_equal(cf_agent__cert_id(fx->old_id, cert, NULL), 0);
	sk_X509_push(one, cert);
	sk_X509_push(one, inter.cert);
	X509_up_ref(inter.cert);
	assert_int_equal(cf_agent__certs_to_pem(&pem, NULL, one, NULL), 0);
	assert_int_equal(cf_agent__key_to_pem(&key_pem, &key_len, fx->old_key, NULL), 0);
	{
		char *cur = path2(fx, "current", NULL);

		mkdir(cur, 0700);
		free(cur);
	}
	write_file(fx, "current", "key.pem", key_pem);
	write_file(fx, "current", "cert.pem", pem);
	cf_agent__secret_free(key_pem, key_len);
	free(pem);
	sk_X509_pop_free(one, X509_free);
	fx->now = 1000;
	agent_open(fx);
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	assert_int_equal(fx->nconnect, 1);
	assert_int_equal(fx->nsub, 3);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	cf_agent_free(fx->agent);
	clear_pubs(fx);
	EVP_PKEY_free(fx->old_key);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

/* Answer the last csr_res with a crt from issuer; returns the certificateId. */
static void
send_crt(struct fx *fx, const struct ca *issuer, const char *rotation, char id_out[65],
	 const char *override_csr)
{
	char *csr = override_csr ? strdup(override_csr) : last_field(fx, "csr_res", "CSR");
	X509 *cert;
	char *leaf, *chain, *payload;
	size_t len;

	assert_non_null(csr);
	cert = issue_for_csr(csr, issuer);
	assert_int_equal(cf_agent__cert_id(id_out, cert, NULL), 0);
	leaf = cert_pem(cert);
	chain = cert_pem(issuer->cert);
	assert_int_equal(cf_agent__json_object(&payload, &len, "certificateId", id_out,
					       "certificatePem", leaf, "caChainPem", chain,
					       "rotationId", rotation, (const char *)NULL),
			 0);
	message(fx, "crt", payload, 0);
	free(payload);
	free(leaf);
	free(chain);
	free(csr);
	X509_free(cert);
}

static void
assert_mode_0600(const struct fx *fx)
{
	const char *slots[] = { "current", "staging", "previous" };
	size_t i;

	for (i = 0; i < 3; i++) {
		char *d = path2(fx, slots[i], NULL);
		DIR *dir = opendir(d);
		struct dirent *de;

		free(d);
		if (dir == NULL)
			continue;
		while ((de = readdir(dir)) != NULL) {
			char *p;
			struct stat st;

			if (de->d_name[0] == '.')
				continue;
			p = path2(fx, slots[i], de->d_name);
			assert_int_equal(stat(p, &st), 0);
			assert_int_equal(st.st_mode & 0777, 0600);
			free(p);
		}
		closedir(dir);
	}
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_agent_rotation__happy_path(void **state)
{
	struct fx *fx = *state;
	char id[65], *s;

	message(fx, "csr_req", "{\"rotationId\":\"r1\",\"extra\":[1,{\"x\":null}]}", 0);
	assert_int_equal(count_pubs(fx, "csr_res"), 1);
	s = last_field(fx, "csr_res", "rotationId");
	assert_string_equal(s, "r1");
	free(s);
	assert_true(exists(fx, "staging", "key.pem"));
	assert_mode_0600(fx);

	send_crt(fx, &inter, "r1", id, NULL);
	/* Reconnected with staging, promoted, acknowledged. */
	assert_int_equal(fx->nconnect, 2);
	assert_int_equal(fx->last_slot, CF_AGENT_SLOT_STAGING);
	assert_int_equal(count_pubs(fx, "crt_ack"), 1);
	s = last_field(fx, "crt_ack", "rotationId");
	assert_string_equal(s, "r1");
	free(s);
	s = last_field(fx, "crt_ack", "certificateId");
	assert_string_equal(s, id);
	free(s);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), id);
	assert_false(exists(fx, "staging", NULL));
	assert_true(exists(fx, "previous", "cert.pem"));
	assert_false(exists(fx, "current", CF_AGENT__ACK_FILE)); /* removed after PUBACK */
	assert_mode_0600(fx);

	/* A reopened agent boots with the new certificate and sends nothing more. */
	cf_agent_free(fx->agent);
	clear_pubs(fx);
	agent_open(fx);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), id);
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	assert_int_equal(fx->npub, 0);
}

static void
test_agent_rotation__rekey_false_reuses_key(void **state)
{
	struct fx *fx = *state;
	char *csr;
	BIO *bio;
	X509_REQ *req;
	char id[65];

	message(fx, "csr_req", "{\"rekey\":false}", 0);
	csr = last_field(fx, "csr_res", "CSR");
	assert_non_null(csr);
	bio = BIO_new_mem_buf(csr, -1);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	assert_non_null(req);
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), fx->old_key), 1);
	X509_REQ_free(req);
	BIO_free(bio);
	free(csr);
	assert_null(last_field(fx, "csr_res", "rotationId"));
	send_crt(fx, &inter, NULL, id, NULL);
	assert_int_equal(count_pubs(fx, "crt_ack"), 1);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), id);
}

static void
test_agent_rotation__other_key_is_crt_err(void **state)
{
	struct fx *fx = *state;
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *csr = NULL, *err;
	char id[65];
	size_t len;

	message(fx, "csr_req", "{\"rotationId\":\"r2\"}", 0);
	assert_int_equal(cf_agent__csr_make(&csr, &len, other, CLIENT, NULL), 0);
	send_crt(fx, &inter, "r2", id, csr);
	assert_int_equal(count_pubs(fx, "crt_err"), 1);
	err = last_field(fx, "crt_err", "error");
	assert_non_null(strstr(err, "KEY_MISMATCH"));
	free(err);
	err = last_field(fx, "crt_err", "rotationId");
	assert_string_equal(err, "r2");
	free(err);
	assert_int_equal(fx->nconnect, 1); /* no reconnect */
	assert_false(exists(fx, "staging", NULL));
	assert_string_equal(cf_agent_current_cert_id(fx->agent), fx->old_id);
	free(csr);
	EVP_PKEY_free(other);
}

static void
test_agent_rotation__untrusted_is_crt_err(void **state)
{
	struct fx *fx = *state;
	char id[65], *err;

	message(fx, "csr_req", "{\"rotationId\":\"r3\"}", 0);
	send_crt(fx, &rogue, "r3", id, NULL);
	err = last_field(fx, "crt_err", "error");
	assert_non_null(err);
	assert_non_null(strstr(err, "UNTRUSTED"));
	free(err);
	err = last_field(fx, "crt_err", "certificateId");
	assert_string_equal(err, id);
	free(err);
	assert_int_equal(fx->nconnect, 1);
	assert_false(exists(fx, "staging", NULL));
	assert_int_equal(count_pubs(fx, "crt_ack"), 0);
}

static void
test_agent_rotation__refused_new_cert_falls_back(void **state)
{
	struct fx *fx = *state;
	char id[65], *err;

	fx->result[CF_AGENT_SLOT_STAGING] = CF_AGENT_CONNECT_REFUSED;
	message(fx, "csr_req", "{\"rotationId\":\"r4\"}", 0);
	send_crt(fx, &inter, "r4", id, NULL);
	/*
	 * A refusal may be a broker restarting under the handshake: the new
	 * certificate gets three tries, with backoff, before crt_err.
	 */
	assert_int_equal(fx->nconnect, 2);
	assert_int_equal(count_pubs(fx, "crt_err"), 0);
	assert_true(exists(fx, "staging", "cert.pem"));
	fx->now += 60 * 1000;
	drain(fx);
	assert_int_equal(fx->nconnect, 3);
	assert_int_equal(count_pubs(fx, "crt_err"), 0);
	fx->now += 60 * 1000;
	drain(fx);
	/* The third refusal: staging given up, current again. */
	assert_int_equal(fx->nconnect, 5);
	assert_int_equal(fx->last_slot, CF_AGENT_SLOT_CURRENT);
	err = last_field(fx, "crt_err", "error");
	assert_non_null(strstr(err, "NEW_CERT_REFUSED"));
	free(err);
	err = last_field(fx, "crt_err", "rotationId");
	assert_string_equal(err, "r4");
	free(err);
	assert_int_equal(count_pubs(fx, "crt_ack"), 0);
	assert_false(exists(fx, "staging", NULL));
	assert_false(exists(fx, "previous", NULL));
	assert_string_equal(cf_agent_current_cert_id(fx->agent), fx->old_id);
}

static void
test_agent_rotation__csr_rej_discards_staging(void **state)
{
	struct fx *fx = *state;

	message(fx, "csr_req", "{\"rotationId\":\"r5\"}", 0);
	assert_true(exists(fx, "staging", NULL));
	/* A rejection for another rotation leaves staging alone. */
	message(fx, "csr_rej", "{\"code\":\"WEAK_KEY\",\"message\":\"x\",\"rotationId\":\"zz\"}", 0);
	assert_true(exists(fx, "staging", NULL));
	message(fx, "csr_rej", "{\"code\":\"WEAK_KEY\",\"message\":\"too weak\",\"rotationId\":\"r5\"}",
		0);
	assert_false(exists(fx, "staging", NULL));
	assert_int_equal(count_pubs(fx, "crt_err"), 0);
}

static void
test_agent_message__malformed_and_oversized_ignored(void **state)
{
	static const char *const bad[] = {
		"", "{", "}", "[]", "null", "{\"rotationId\":1}", "{\"rekey\":\"no\"}",
		"{\"rotationId\":\"a\",\"rotationId\":\"b\"}", "{\"a\":1,}", "{\"a\" 1}",
		"{\"a\":01}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\u0000\"}",
		"{\"a\":tru}", "{} x", "{\"a\":\"\x01\"}", "{\"a\":\"\xc3\x28\"}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}", "{\"a\":-}", "{\"a\":1.}",
		"{\"a\":[1 2]}", "{'a':1}",
	};
	struct fx *fx = *state;
	char *big;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		message(fx, "csr_req", bad[i], CF_AGENT_EINVAL);
	message(fx, "crt", "{\"certificatePem\":", CF_AGENT_EINVAL);
	message(fx, "csr_req", "{\"keyType\":\"DSA-512\"}", CF_AGENT_EINVAL);
	big = malloc(CF_AGENT_PAYLOAD_MAX + 2);
	memset(big, ' ', CF_AGENT_PAYLOAD_MAX + 1);
	big[0] = '{';
	big[CF_AGENT_PAYLOAD_MAX] = '}';
	big[CF_AGENT_PAYLOAD_MAX + 1] = '\0';
	message(fx, "csr_req", big, CF_AGENT_EINVAL);
	free(big);
	/* Topics of others are ignored. */
	assert_int_equal(cf_agent_handle_message(fx->agent, "management/topic/thing-2/csr_req",
						 "{}", 2, NULL),
			 0);
	drain(fx);
	assert_int_equal(fx->npub, 0);
	assert_false(exists(fx, "staging", NULL));
	/* A crt without certificatePem is a protocol error answered with crt_err. */
	message(fx, "crt", "{\"rotationId\":\"q\"}", 0);
	assert_int_equal(count_pubs(fx, "crt_err"), 1);
}

static void
test_agent_json__reader_and_writer(void **state)
{
	cf_agent__json_field f[3] = {
		{ "s", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "b", CF_AGENT__JSON_BOOL, false, false, NULL, 0 },
		{ "n", CF_AGENT__JSON_STR, false, false, NULL, 0 },
	};
	const char *text = " {\"x\":{\"s\":1},\"s\":\"a\\\"\\u00e9\\ud83d\\ude00\\n\",\"b\":false,"
			   "\"n\":null,\"z\":-1.5e+3} ";
	char *out = NULL;
	size_t len;

	(void)state;
	assert_int_equal(cf_agent__json_read(text, strlen(text), f, 3, NULL), 0);
	assert_true(f[0].present);
	assert_string_equal(f[0].str, "a\"\xc3\xa9\xf0\x9f\x98\x80\n");
	assert_true(f[1].present);
	assert_false(f[1].boolean);
	assert_false(f[2].present);
	assert_int_equal(cf_agent__json_object(&out, &len, "k", f[0].str, "skip", NULL, "t",
					       "\x01", (const char *)NULL),
			 0);
	assert_string_equal(out, "{\"k\":\"a\\\"\xc3\xa9\xf0\x9f\x98\x80\\n\",\"t\":\"\\u0001\"}");
	cf_agent__json_fields_clear(f, 3);
	/* The writer's output reads back. */
	assert_int_equal(cf_agent__json_read(out, len, f, 1, NULL), 0);
	cf_agent__json_fields_clear(f, 3);
	free(out);
}

static void
test_agent_rotation__duplicate_csr_req_same_csr(void **state)
{
	struct fx *fx = *state;
	char *a, *b;
	const char *c;

	message(fx, "csr_req", "{\"rotationId\":\"r6\"}", 0);
	message(fx, "csr_req", "{\"rotationId\":\"r6\"}", 0);
	assert_int_equal(count_pubs(fx, "csr_res"), 2);
	a = strdup(fx->pubs[fx->npub - 2].payload);
	b = strdup(fx->pubs[fx->npub - 1].payload);
	assert_string_equal(a, b);
	/* Also after a restart (rule R4). */
	cf_agent_free(fx->agent);
	agent_open(fx);
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	message(fx, "csr_req", "{\"rotationId\":\"r6\"}", 0);
	assert_string_equal(fx->pubs[fx->npub - 1].payload, a);
	/* Another rotation gets a new key. */
	message(fx, "csr_req", "{\"rotationId\":\"r7\"}", 0);
	c = fx->pubs[fx->npub - 1].payload;
	assert_string_not_equal(c, a);
	free(a);
	free(b);
}

/* Crash: half-written staging (key.pem and a .tmp only): discarded (R1, R5). */
static void
test_agent_crash__half_written_staging(void **state)
{
	struct fx *fx = *state;

	message(fx, "csr_req", "{\"rotationId\":\"c1\"}", 0);
	cf_agent_free(fx->agent);
	fx->agent = NULL;
	{
		char *p = path2(fx, "staging", "csr.pem");

		unlink(p);
		free(p);
	}
	write_file(fx, "staging", "csr.pem.tmp", "-----BEGIN CERT");
	agent_open(fx);
	assert_false(exists(fx, "staging", NULL));
	assert_string_equal(cf_agent_current_cert_id(fx->agent), fx->old_id);
}

/* Stop an agent after the certificate is stored and before the reconnect. */
static void
crash_after_crt_stored(struct fx *fx, char id[65])
{
	fx->result[CF_AGENT_SLOT_STAGING] = CF_AGENT_CONNECT_UNREACHABLE;
	message(fx, "csr_req", "{\"rotationId\":\"c2\"}", 0);
	/* Hand in the crt but do not drain: the CONNECT(staging) is never run. */
	{
		char *csr = last_field(fx, "csr_res", "CSR");
		X509 *cert = issue_for_csr(csr, &inter);
		char *leaf = cert_pem(cert), *chain = cert_pem(inter.cert), *payload;

		cf_agent__cert_id(id, cert, NULL);
		cf_agent__json_object(&payload, NULL, "certificatePem", leaf, "caChainPem", chain,
				      "rotationId", "c2", (const char *)NULL);
		assert_int_equal(cf_agent_handle_message(fx->agent, P "crt", payload,
							 strlen(payload), NULL),
				 0);
		free(payload);
		free(leaf);
		free(chain);
		free(csr);
		X509_free(cert);
	}
	assert_true(exists(fx, "staging", "cert.pem"));
	cf_agent_free(fx->agent);
	fx->agent = NULL;
	clear_pubs(fx);
	fx->result[CF_AGENT_SLOT_STAGING] = CF_AGENT_CONNECT_OK;
}

/* Crash: cert stored, never reconnected: boot with current, crt_err INTERRUPTED (R3). */
static void
test_agent_crash__stored_not_reconnected(void **state)
{
	struct fx *fx = *state;
	char id[65], *s;

	crash_after_crt_stored(fx, id);
	agent_open(fx);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), fx->old_id);
	assert_false(exists(fx, "staging", NULL));
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	assert_int_equal(fx->last_slot, CF_AGENT_SLOT_CURRENT);
	s = last_field(fx, "crt_err", "error");
	assert_non_null(strstr(s, "INTERRUPTED"));
	free(s);
	s = last_field(fx, "crt_err", "certificateId");
	assert_string_equal(s, id);
	free(s);
}

/* Crash: connected with the new certificate, marker written, nothing renamed (R2). */
static void
test_agent_crash__connected_before_promotion(void **state)
{
	struct fx *fx = *state;
	char id[65], *s;

	crash_after_crt_stored(fx, id);
	write_file(fx, "staging", CF_AGENT__ACK_FILE, "{\"rotationId\":\"c2\"}");
	agent_open(fx);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), id);
	assert_true(exists(fx, "previous", "cert.pem"));
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	s = last_field(fx, "crt_ack", "rotationId");
	assert_string_equal(s, "c2");
	free(s);
	assert_false(exists(fx, "current", CF_AGENT__ACK_FILE));
	assert_mode_0600(fx);
}

/* Crash: between current -> previous and staging -> current (R2, no current/). */
static void
test_agent_crash__between_renames(void **state)
{
	struct fx *fx = *state;
	char id[65], *cur, *prev, *s;

	crash_after_crt_stored(fx, id);
	write_file(fx, "staging", CF_AGENT__ACK_FILE, "{\"rotationId\":\"c2\"}");
	cur = path2(fx, "current", NULL);
	prev = path2(fx, "previous", NULL);
	assert_int_equal(rename(cur, prev), 0);
	free(cur);
	free(prev);
	write_file(fx, "previous", "stray.tmp", "x");
	agent_open(fx);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), id);
	assert_false(exists(fx, "previous", "stray.tmp"));
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	s = last_field(fx, "crt_ack", "certificateId");
	assert_string_equal(s, id);
	free(s);
}

/* Crash: promoted but crt_ack never acknowledged: re-sent at boot (R7). */
static void
test_agent_crash__promoted_not_acked(void **state)
{
	struct fx *fx = *state;
	char id[65], *s;

	message(fx, "csr_req", "{\"rotationId\":\"c3\"}", 0);
	send_crt(fx, &inter, "c3", id, NULL);
	/* As if power went before the PUBACK: the marker is back. */
	write_file(fx, "current", CF_AGENT__ACK_FILE, "{\"rotationId\":\"c3\"}");
	cf_agent_free(fx->agent);
	clear_pubs(fx);
	agent_open(fx);
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	assert_int_equal(count_pubs(fx, "crt_ack"), 1);
	s = last_field(fx, "crt_ack", "rotationId");
	assert_string_equal(s, "c3");
	free(s);
	assert_false(exists(fx, "current", CF_AGENT__ACK_FILE));
	/* A leftover previous.old/ from an interrupted step 2 is cleaned too. */
	{
		char *p = path2(fx, "previous.old", NULL);

		mkdir(p, 0700);
		free(p);
	}
	cf_agent_free(fx->agent);
	agent_open(fx);
	assert_false(exists(fx, "previous.old", NULL));
}

/* The new certificate was set INACTIVE (ack lost past the deadline): fall back to previous. */
static void
test_agent_crash__refused_current_falls_back_to_previous(void **state)
{
	struct fx *fx = *state;
	char id[65];

	message(fx, "csr_req", "{\"rotationId\":\"c4\"}", 0);
	send_crt(fx, &inter, "c4", id, NULL);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), id);
	cf_agent_free(fx->agent);
	clear_pubs(fx);
	agent_open(fx);
	fx->result[CF_AGENT_SLOT_CURRENT] = CF_AGENT_CONNECT_REFUSED;
	fx->nconnect = 0;
	cf_agent_start(fx->agent, fx->now);
	drain(fx);
	assert_int_equal(fx->nconnect, 2);
	assert_int_equal(fx->last_slot, CF_AGENT_SLOT_PREVIOUS);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), fx->old_id);
	assert_false(exists(fx, "previous", NULL));
	/* A fall-back interrupted between its renames is finished at boot (R6). */
	cf_agent_free(fx->agent);
	{
		char *cur = path2(fx, "current", NULL), *prev = path2(fx, "previous", NULL);

		assert_int_equal(rename(cur, prev), 0);
		free(cur);
		free(prev);
	}
	agent_open(fx);
	assert_string_equal(cf_agent_current_cert_id(fx->agent), fx->old_id);
}

static void
test_agent_connect__backoff(void **state)
{
	struct fx *fx = *state;
	int64_t wait;

	cf_agent_connection_lost(fx->agent, fx->now);
	fx->result[CF_AGENT_SLOT_CURRENT] = CF_AGENT_CONNECT_UNREACHABLE;
	fx->nconnect = 0;
	drain(fx);
	assert_int_equal(fx->nconnect, 0); /* waits the backoff */
	wait = cf_agent_tick(fx->agent, fx->now);
	assert_true(wait > 0 && wait <= 1000);
	fx->now += 1000;
	drain(fx);
	assert_int_equal(fx->nconnect, 1);
	fx->now += 1000; /* the next delay doubled: not yet */
	drain(fx);
	assert_int_equal(fx->nconnect, 1);
	fx->result[CF_AGENT_SLOT_CURRENT] = CF_AGENT_CONNECT_OK;
	fx->now += 1000;
	drain(fx);
	assert_int_equal(fx->nconnect, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_json__reader_and_writer),
		cmocka_unit_test_setup_teardown(test_agent_rotation__happy_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_rotation__rekey_false_reuses_key, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_rotation__other_key_is_crt_err, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_rotation__untrusted_is_crt_err, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_rotation__refused_new_cert_falls_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_rotation__csr_rej_discards_staging,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_message__malformed_and_oversized_ignored,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_rotation__duplicate_csr_req_same_csr,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_crash__half_written_staging, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_crash__stored_not_reconnected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_crash__connected_before_promotion, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_crash__between_renames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_crash__promoted_not_acked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_agent_crash__refused_current_falls_back_to_previous, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_connect__backoff, setup, teardown),
	};

	return cmocka_run_group_tests_name("agent", tests, group_setup, group_teardown);
}
