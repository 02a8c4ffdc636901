/*
 * The rotation engine over a real SQLite store in a mkdtemp() directory, a
 * real authority (root + intermediate made here, the intermediate's key
 * encrypted on disk) and a fake clock. Devices are played with OpenSSL:
 * keys, CSRs, and a chain check of what the engine sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "authority/authority.h"
#include "pki/pki.h"
#include "rotation/rotation.h"
#include "store/store.h"
#include "util/util.h"

#define PASSPHRASE "rotation-test-passphrase"
#define PREFIX     "management/topic"
#define DEVICE_POLICY                                                                              \
	"{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"connect\"],"          \
	"\"resources\":[\"${clientid}\"]}]}"
#define EXTRA_POLICY                                                                               \
	"{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"          \
	"\"resources\":[\"extra/${thing}\"]}]}"

static const cf_store_actor actor = { "test", NULL };

/* The CA hierarchy, made once: key encryption costs 600,000 PBKDF2 rounds. */
static struct {
	char dir[256];
	char pass[320];
	X509 *root;
	X509 *inter;
} g;

struct fx {
	char dir[256];
	int64_t now;
	cf_store *store;
	cf_authority *auth;
	cf_rotation_engine *eng;
	EVP_PKEY *old_key[2]; /* dev-1, dev-2 */
	char old_id[2][65];
};

struct outbox {
	size_t n;
	char *topic[64];
	char *payload[64];
};

static int64_t
fake_clock(void *payload)
{
	return ((struct fx *)payload)->now;
}

static void
check(int rc, const cf_err *err, const char *what)
{
	if (rc != 0)
		fail_msg("%s: rc %d: %s", what, rc, err->msg);
}

static EVP_PKEY *
key_p256(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(key);
	return key;
}

/* A PEM CSR for key, as a device makes it; free() it. */
static char *
csr_pem(EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	char *pem;

	assert_non_null(req);
	assert_non_null(bio);
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
						    MBSTRING_ASC, (const unsigned char *)"device",
						    -1, -1, 0),
			 1);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
	BIO_get_mem_ptr(bio, &mem);
	pem = calloc(1, mem->length + 1);
	assert_non_null(pem);
	memcpy(pem, mem->data, mem->length);
	BIO_free(bio);
	X509_REQ_free(req);
	return pem;
}

/* {"CSR": pem} (and "rotationId" when not NULL); free() it. */
static char *
csr_res_payload(const char *pem, const char *rotation_id)
{
	json_t *obj = json_object();
	char *text;

	assert_int_equal(json_object_set_new(obj, "CSR", json_string(pem)), 0);
	if (rotation_id != NULL)
		assert_int_equal(json_object_set_new(obj, "rotationId", json_string(rotation_id)),
				 0);
	text = json_dumps(obj, JSON_COMPACT);
	assert_non_null(text);
	json_decref(obj);
	return text;
}

static int
handle(struct fx *fx, const char *thing, const char *kind, const char *payload, cf_err *err)
{
	char topic[256];

	snprintf(topic, sizeof(topic), PREFIX "/%s/%s", thing, kind);
	cf_err_clear(err);
	return cf_rotation_handle(fx->eng, topic, payload, strlen(payload), err);
}

/* A fresh P-256 key's csr_res for thing; asserts CF_OK. The key is returned (or freed). */
static EVP_PKEY *
send_csr(struct fx *fx, const char *thing, EVP_PKEY *key)
{
	cf_err err = CF_ERR_INIT;
	char *pem, *payload;

	if (key == NULL)
		key = key_p256();
	pem = csr_pem(key);
	payload = csr_res_payload(pem, NULL);
	check(handle(fx, thing, "csr_res", payload, &err), &err, "csr_res");
	free(payload);
	free(pem);
	return key;
}

static int
outbox_cb(const cf_store_outbox_msg *msg, void *payload)
{
	struct outbox *ob = payload;

	assert_true(ob->n < CF_ARRAY_LEN(ob->topic));
	ob->topic[ob->n] = cf_strdup(msg->topic);
	ob->payload[ob->n] = cf_strdup(msg->payload);
	ob->n++;
	return 0;
}

static void
outbox_get(struct fx *fx, struct outbox *ob)
{
	cf_err err = CF_ERR_INIT;

	memset(ob, 0, sizeof(*ob));
	check(cf_store_outbox_list(fx->store, 0, outbox_cb, ob, &err), &err, "outbox_list");
}

static void
outbox_clear(struct outbox *ob)
{
	size_t i;

	for (i = 0; i < ob->n; i++) {
		free(ob->topic[i]);
		free(ob->payload[i]);
	}
	memset(ob, 0, sizeof(*ob));
}

static size_t
outbox_count(struct fx *fx)
{
	struct outbox ob;
	size_t n;

	outbox_get(fx, &ob);
	n = ob.n;
	outbox_clear(&ob);
	return n;
}

static int
outbox_id_cb(const cf_store_outbox_msg *msg, void *payload)
{
	int64_t *ids = payload;

	assert_true(ids[0] < 63);
	ids[++ids[0]] = msg->id;
	return 0;
}

/* What the binding does: take the pending messages (into *ob) and delete them. */
static void
outbox_take(struct fx *fx, struct outbox *ob)
{
	cf_err err = CF_ERR_INIT;
	int64_t ids[64] = { 0 };
	int64_t i;

	outbox_get(fx, ob);
	check(cf_store_outbox_list(fx->store, 0, outbox_id_cb, ids, &err), &err, "outbox ids");
	for (i = 1; i <= ids[0]; i++)
		check(cf_store_outbox_delete(fx->store, ids[i], &err), &err, "outbox delete");
}

/* The newest outbox message: its topic must be P/thing/kind; json_decref() the payload. */
static json_t *
outbox_last(struct fx *fx, const char *thing, const char *kind)
{
	struct outbox ob;
	char topic[256];
	json_t *obj;

	outbox_get(fx, &ob);
	assert_true(ob.n > 0);
	snprintf(topic, sizeof(topic), PREFIX "/%s/%s", thing, kind);
	assert_string_equal(ob.topic[ob.n - 1], topic);
	obj = json_loads(ob.payload[ob.n - 1], 0, NULL);
	assert_non_null(obj);
	assert_true(json_is_object(obj));
	outbox_clear(&ob);
	return obj;
}

/* The code of the newest csr_rej for thing. */
static void
assert_rejected(struct fx *fx, const char *thing, const char *code)
{
	json_t *obj = outbox_last(fx, thing, "csr_rej");

	assert_string_equal(json_string_value(json_object_get(obj, "code")), code);
	assert_true(json_string_length(json_object_get(obj, "message")) > 0);
	json_decref(obj);
}

static int
count_cb(const cf_store_cert *cert, void *payload)
{
	(void)cert;
	(*(size_t *)payload)++;
	return 0;
}

static size_t
cert_count(struct fx *fx)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	size_t n = 0;

	check(cf_store_cert_list(fx->store, &filter, count_cb, &n, &err), &err, "cert_list");
	return n;
}

static cf_cert_status
cert_status(struct fx *fx, const char *id)
{
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;
	cf_cert_status status;

	check(cf_store_cert_get(fx->store, &cert, id, &err), &err, "cert_get");
	status = cert.status;
	cf_store_cert_clear(&cert);
	return status;
}

/* Fetch rotation id into *rot (cf_store_rotation_clear() it). */
static void
rot_get(struct fx *fx, cf_store_rotation *rot, const char *id)
{
	cf_err err = CF_ERR_INIT;

	check(cf_store_rotation_get(fx->store, rot, id, &err), &err, "rotation_get");
}

static cf_rotation_state
rot_state(struct fx *fx, const char *id)
{
	cf_store_rotation rot;
	cf_rotation_state state;

	rot_get(fx, &rot, id);
	state = rot.state;
	cf_store_rotation_clear(&rot);
	return state;
}

static void
start(struct fx *fx, char id[33], const char *thing)
{
	cf_err err = CF_ERR_INIT;

	check(cf_rotation_start(fx->eng, id, thing, NULL, &actor, &err), &err, "start");
	assert_int_equal(strlen(id), 32);
}

static void
events_ok(struct fx *fx)
{
	cf_err err = CF_ERR_INIT;
	int64_t count = 0, bad = 0;

	check(cf_store_events_verify(fx->store, &count, &bad, NULL, &err), &err, "events_verify");
	assert_true(count > 0);
}

/* ---- fixture ------------------------------------------------------ */

static void
ca_row(cf_store *store, X509 *cert, const char *name, const char *parent, const char *key_ref)
{
	cf_err err = CF_ERR_INIT;
	cf_pki_cert_info info;
	cf_store_ca rec;
	char *pem = NULL, name_b[32], parent_b[32], key_ref_b[64], key_type[] = "EC-P256";
	size_t len;

	memset(&rec, 0, sizeof(rec));
	snprintf(name_b, sizeof(name_b), "%s", name);
	check(cf_pki_cert_info_get(&info, cert, &err), &err, "cert_info");
	check(cf_pki_cert_to_pem(&pem, &len, cert, &err), &err, "cert_to_pem");
	rec.name = name_b;
	rec.status = CF_CA_ACTIVE;
	rec.is_root = parent == NULL;
	if (parent != NULL) {
		snprintf(parent_b, sizeof(parent_b), "%s", parent);
		rec.parent = parent_b;
	}
	if (key_ref != NULL) {
		snprintf(key_ref_b, sizeof(key_ref_b), "%s", key_ref);
		rec.key_ref = key_ref_b;
	}
	rec.cert_id = info.id;
	rec.subject = info.subject;
	rec.cert_pem = pem;
	rec.key_type = key_type;
	rec.not_before = info.not_before;
	rec.not_after = info.not_after;
	check(cf_store_ca_insert(store, &rec, &actor, &err), &err, "ca_insert");
	free(pem);
}

static int
group_setup(void **state)
{
	cf_err err = CF_ERR_INIT;
	EVP_PKEY *root_key = NULL, *int_key = NULL;
	cf_pki_ca *root_ca = NULL;
	char tmpl[] = "/tmp/cf-rotation-ca-XXXXXX", path[320];

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(g.dir, sizeof(g.dir), "%s", tmpl);
	if (cf_pki_key_generate(&root_key, CF_KEY_EC_P256, &err) != 0 ||
	    cf_pki_root_create(&g.root, root_key, "Rotation Test Root", NULL, 3650, &err) != 0 ||
	    cf_pki_ca_new(&root_ca, g.root, root_key, &err) != 0 ||
	    cf_pki_key_generate(&int_key, CF_KEY_EC_P256, &err) != 0 ||
	    cf_pki_intermediate_sign(&g.inter, root_ca, int_key, "Rotation Test Issuing CA", NULL,
				     1825, &err) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/int.key.pem", g.dir);
	if (cf_pki_key_write_encrypted(path, int_key, PASSPHRASE, strlen(PASSPHRASE), &err) != 0)
		return -1;
	snprintf(g.pass, sizeof(g.pass), "%s/ca.pass", g.dir);
	if (cf_file_write_atomic(g.pass, PASSPHRASE "\n", strlen(PASSPHRASE) + 1, 0600, false,
				 &err) != 0)
		return -1;
	cf_pki_ca_free(root_ca);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(int_key);
	return 0;
}

static int
group_teardown(void **state)
{
	char path[320];

	(void)state;
	snprintf(path, sizeof(path), "%s/int.key.pem", g.dir);
	unlink(path);
	unlink(g.pass);
	rmdir(g.dir);
	X509_free(g.root);
	X509_free(g.inter);
	return 0;
}

/* dev-i gets an ACTIVE certificate issued for a fresh key, with the policy "extra" only. */
static void
add_device(struct fx *fx, int i)
{
	static const char *const extra[] = { "extra" };
	cf_authority_request req;
	cf_authority_result res;
	cf_err err = CF_ERR_INIT;
	char thing[16], *pem;

	snprintf(thing, sizeof(thing), "dev-%d", i + 1);
	check(cf_store_thing_insert(fx->store, thing, NULL, &actor, &err), &err, "thing_insert");
	fx->old_key[i] = key_p256();
	pem = csr_pem(fx->old_key[i]);
	memset(&req, 0, sizeof(req));
	req.thing = thing;
	req.csr = pem;
	req.csr_len = strlen(pem);
	req.policies = extra;
	req.npolicies = 1;
	req.status = CF_CERT_ACTIVE;
	check(cf_authority_issue(fx->auth, &res, &req, &actor, &err), &err, "issue old");
	memcpy(fx->old_id[i], res.id, sizeof(fx->old_id[i]));
	cf_authority_result_clear(&res);
	free(pem);
}

static int
engine_make(struct fx *fx, const cf_rotation_config *base)
{
	cf_rotation_config cfg;
	cf_err err = CF_ERR_INIT;

	if (base != NULL)
		cfg = *base;
	else
		cf_rotation_config_init(&cfg);
	cfg.clock = fake_clock;
	cfg.clock_payload = fx;
	cf_rotation_engine_free(fx->eng);
	fx->eng = NULL;
	return cf_rotation_engine_new(&fx->eng, fx->store, fx->auth, &cfg, &err);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	cf_authority_config ac;
	cf_err err = CF_ERR_INIT;
	char tmpl[] = "/tmp/cf-rotation-XXXXXX", uri[320];

	assert_non_null(fx);
	assert_non_null(mkdtemp(tmpl));
	snprintf(fx->dir, sizeof(fx->dir), "%s", tmpl);
	snprintf(uri, sizeof(uri), "sqlite:%s/registry.db", fx->dir);
	check(cf_store_open(&fx->store, uri, &err), &err, "store_open");
	fx->now = cf_time_now();
	cf_store_set_clock(fx->store, fake_clock, fx);
	ca_row(fx->store, g.root, "root", NULL, NULL);
	ca_row(fx->store, g.inter, "issuing", "root", "int.key.pem");
	check(cf_store_ca_set_default(fx->store, "issuing", &actor, &err), &err, "set_default");
	check(cf_store_policy_insert(fx->store, "certfleet-device", DEVICE_POLICY, &actor, &err),
	      &err, "policy device");
	check(cf_store_policy_insert(fx->store, "extra", EXTRA_POLICY, &actor, &err), &err,
	      "policy extra");
	memset(&ac, 0, sizeof(ac));
	ac.data_dir = g.dir;
	ac.ca_passphrase_file = g.pass;
	cf_pki_profile_init(&ac.profile);
	cf_pki_key_policy_init(&ac.key_policy);
	ac.default_policy = "certfleet-device";
	check(cf_authority_new(&fx->auth, fx->store, &ac, &err), &err, "authority_new");
	add_device(fx, 0);
	add_device(fx, 1);
	assert_int_equal(engine_make(fx, NULL), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char path[320];
	static const char *const files[] = { "registry.db", "registry.db-wal", "registry.db-shm",
					     "registry.db-journal" };
	size_t i;

	cf_rotation_engine_free(fx->eng);
	cf_authority_free(fx->auth);
	cf_store_close(fx->store);
	for (i = 0; i < CF_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", fx->dir, files[i]);
		unlink(path);
	}
	rmdir(fx->dir);
	EVP_PKEY_free(fx->old_key[0]);
	EVP_PKEY_free(fx->old_key[1]);
	free(fx);
	return 0;
}

/* ---- cases -------------------------------------------------------- */

static void
test_rotation_engine__start_queues_one_csr_req(void **state)
{
	struct fx *fx = *state;
	struct outbox ob;
	cf_store_rotation rot;
	char id[33], want[128];

	start(fx, id, "dev-1");
	outbox_get(fx, &ob);
	assert_int_equal(ob.n, 1);
	assert_string_equal(ob.topic[0], "management/topic/dev-1/csr_req");
	snprintf(want, sizeof(want), "{\"rotationId\":\"%s\",\"rekey\":true}", id);
	assert_string_equal(ob.payload[0], want);
	outbox_clear(&ob);

	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_REQUESTED);
	assert_string_equal(rot.thing, "dev-1");
	assert_string_equal(rot.old_cert, fx->old_id[0]);
	assert_int_equal(rot.sends, 1);
	assert_int_equal(rot.deadline, fx->now + 86400);
	assert_int_equal(rot.next_send_at, fx->now + 300);
	assert_true(rot.rekey);
	assert_null(rot.key_type);
	cf_store_rotation_clear(&rot);
}

static void
test_rotation_engine__start_with_key_type_and_no_rekey(void **state)
{
	struct fx *fx = *state;
	cf_rotation_config cfg;
	json_t *obj;
	char id[33];

	cf_rotation_config_init(&cfg);
	cfg.key_type = "EC-P384";
	cfg.rekey = false;
	assert_int_equal(engine_make(fx, &cfg), 0);
	start(fx, id, "dev-2");
	obj = outbox_last(fx, "dev-2", "csr_req");
	assert_string_equal(json_string_value(json_object_get(obj, "rotationId")), id);
	assert_true(json_is_false(json_object_get(obj, "rekey")));
	assert_string_equal(json_string_value(json_object_get(obj, "keyType")), "EC-P384");
	json_decref(obj);

	/* Without rekey, the old key is accepted. */
	send_csr(fx, "dev-2", fx->old_key[1]);
	assert_int_equal(rot_state(fx, id), CF_ROTATION_ISSUED);

	cfg.key_type = "EC-P521";
	assert_int_equal(engine_make(fx, &cfg), CF_EINVAL);
}

static int
policy_cb(const cf_store_policy *policy, void *payload)
{
	char *names = payload;
	size_t len = strlen(names);

	snprintf(names + len, 128 - len, "%s%s", len > 0 ? "," : "", policy->name);
	return 0;
}

/* certificatePem must chain to the root through caChainPem. */
static void
assert_chain_verifies(const char *cert_pem, const char *chain_pem)
{
	X509_STORE *trust = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	BIO *bio;
	X509 *cert, *x;
	int n = 0;

	assert_non_null(trust);
	assert_non_null(ctx);
	assert_non_null(untrusted);
	assert_int_equal(X509_STORE_add_cert(trust, g.root), 1);
	bio = BIO_new_mem_buf(chain_pem, -1);
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		assert_true(sk_X509_push(untrusted, x) > 0);
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	assert_int_equal(n, 2); /* the issuing CA, then the root */
	assert_int_equal(X509_cmp(sk_X509_value(untrusted, 0), g.inter), 0);
	assert_int_equal(X509_cmp(sk_X509_value(untrusted, 1), g.root), 0);
	bio = BIO_new_mem_buf(cert_pem, -1);
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(cert);
	assert_int_equal(X509_STORE_CTX_init(ctx, trust, cert, untrusted), 1);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(ctx) != 1)
		fail_msg("verify: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_free(cert);
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(trust);
}

static void
test_rotation_engine__happy_path(void **state)
{
	struct fx *fx = *state;
	cf_store_rotation rot;
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;
	EVP_PKEY *key;
	json_t *crt;
	char id[33], id2[33], new_id[65], names[128] = "", spki[CF_PKI_ID_LEN];
	size_t certs;

	start(fx, id, "dev-1");
	certs = cert_count(fx);
	key = send_csr(fx, "dev-1", NULL);
	assert_int_equal(cert_count(fx), certs + 1);
	assert_int_equal(outbox_count(fx), 2);

	crt = outbox_last(fx, "dev-1", "crt");
	assert_string_equal(json_string_value(json_object_get(crt, "rotationId")), id);
	snprintf(new_id, sizeof(new_id), "%s",
		 json_string_value(json_object_get(crt, "certificateId")));
	assert_int_equal(strlen(new_id), 64);
	assert_chain_verifies(json_string_value(json_object_get(crt, "certificatePem")),
			      json_string_value(json_object_get(crt, "caChainPem")));
	json_decref(crt);

	/* ACTIVE, the old certificate's policies (not the default), for the CSR's key. */
	check(cf_store_cert_get(fx->store, &cert, new_id, &err), &err, "cert_get");
	assert_int_equal(cert.status, CF_CERT_ACTIVE);
	assert_string_equal(cert.thing, "dev-1");
	assert_string_equal(cert.ca, "issuing");
	check(cf_pki_key_spki_sha256(spki, key, &err), &err, "spki");
	assert_string_equal(cert.spki_sha256, spki);
	cf_store_cert_clear(&cert);
	check(cf_store_policy_list(fx->store, new_id, policy_cb, names, &err), &err, "policies");
	assert_string_equal(names, "extra");
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_ISSUED);
	assert_string_equal(rot.new_cert, new_id);
	assert_string_equal(rot.csr_spki, spki);
	cf_store_rotation_clear(&rot);

	/* The same csr_res again: the same certificate, no second issuance. */
	send_csr(fx, "dev-1", key);
	assert_int_equal(cert_count(fx), certs + 1);
	assert_int_equal(outbox_count(fx), 3);
	crt = outbox_last(fx, "dev-1", "crt");
	assert_string_equal(json_string_value(json_object_get(crt, "certificateId")), new_id);
	json_decref(crt);

	/* crt_ack: old INACTIVE, COMPLETED; nothing sent back. */
	check(handle(fx, "dev-1", "crt_ack", "{}", &err), &err, "crt_ack");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_COMPLETED);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_INACTIVE);
	assert_int_equal(cert_status(fx, new_id), CF_CERT_ACTIVE);
	assert_int_equal(outbox_count(fx), 3);

	/* A re-sent ack is a no-op. */
	check(handle(fx, "dev-1", "crt_ack", "{}", &err), &err, "crt_ack again");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_COMPLETED);
	assert_int_equal(outbox_count(fx), 3);
	events_ok(fx);

	/* After COMPLETED a new rotation can start: it replaces the new certificate. */
	start(fx, id2, "dev-1");
	assert_string_not_equal(id, id2);
	rot_get(fx, &rot, id2);
	assert_string_equal(rot.old_cert, new_id);
	cf_store_rotation_clear(&rot);
	EVP_PKEY_free(key);
}

static void
test_rotation_engine__no_rotation(void **state)
{
	struct fx *fx = *state;
	char id[33], *payload, *pem;
	EVP_PKEY *key = key_p256();
	cf_err err = CF_ERR_INIT;
	json_t *rej;
	size_t certs = cert_count(fx);

	send_csr(fx, "dev-1", key);
	assert_int_equal(outbox_count(fx), 1);
	assert_rejected(fx, "dev-1", "NO_ROTATION");

	/* A rotationId that is not the open rotation's is no rotation either. */
	start(fx, id, "dev-1");
	pem = csr_pem(key);
	payload = csr_res_payload(pem, "00000000000000000000000000000000");
	check(handle(fx, "dev-1", "csr_res", payload, &err), &err, "csr_res");
	rej = outbox_last(fx, "dev-1", "csr_rej");
	assert_string_equal(json_string_value(json_object_get(rej, "code")), "NO_ROTATION");
	assert_string_equal(json_string_value(json_object_get(rej, "rotationId")),
			    "00000000000000000000000000000000");
	json_decref(rej);
	assert_int_equal(rot_state(fx, id), CF_ROTATION_REQUESTED);
	assert_int_equal(cert_count(fx), certs);

	/* Acks without a rotation are ignored quietly. */
	check(handle(fx, "dev-2", "crt_ack", "{}", &err), &err, "crt_ack");
	check(handle(fx, "dev-2", "crt_err", "{\"error\":\"x\"}", &err), &err, "crt_err");
	assert_int_equal(outbox_count(fx), 3);
	free(payload);
	free(pem);
	EVP_PKEY_free(key);
}

static void
test_rotation_engine__refused_csrs(void **state)
{
	struct fx *fx = *state;
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	cf_err err = CF_ERR_INIT;
	char id[33], *payload;
	size_t certs = cert_count(fx);

	assert_non_null(weak);
	start(fx, id, "dev-1");
	send_csr(fx, "dev-1", weak);
	assert_rejected(fx, "dev-1", "WEAK_KEY");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_REQUESTED);

	send_csr(fx, "dev-1", fx->old_key[0]);
	assert_rejected(fx, "dev-1", "KEY_REUSE");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_REQUESTED);

	payload = csr_res_payload("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
				  "-----END CERTIFICATE REQUEST-----\n",
				  id);
	check(handle(fx, "dev-1", "csr_res", payload, &err), &err, "bad csr");
	assert_rejected(fx, "dev-1", "BAD_CSR");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_REQUESTED);
	assert_int_equal(cert_count(fx), certs);
	assert_int_equal(outbox_count(fx), 4);

	/* A corrected CSR is still accepted. */
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	assert_int_equal(rot_state(fx, id), CF_ROTATION_ISSUED);
	assert_int_equal(cert_count(fx), certs + 1);
	free(payload);
	EVP_PKEY_free(weak);
}

static void
test_rotation_engine__rate_limited(void **state)
{
	struct fx *fx = *state;
	struct outbox ob;
	EVP_PKEY *key;
	char id[33];
	size_t before;
	int i;

	start(fx, id, "dev-1");
	for (i = 0; i < 5; i++) {
		send_csr(fx, "dev-1", fx->old_key[0]);
		assert_rejected(fx, "dev-1", "KEY_REUSE");
	}
	/* The sixth, even a good one, is refused. */
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	assert_rejected(fx, "dev-1", "RATE_LIMITED");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_REQUESTED);
	assert_int_equal(outbox_count(fx), 7);

	/* Counted per rotation: dev-2 is not limited. */
	start(fx, id, "dev-2");
	key = send_csr(fx, "dev-2", NULL);
	assert_int_equal(rot_state(fx, id), CF_ROTATION_ISSUED);

	/*
	 * The same key, again and again (a device back from hours offline
	 * answers every queued csr_req): always the same certificate, never
	 * RATE_LIMITED, never a second certificate.
	 */
	before = outbox_count(fx);
	for (i = 0; i < 12; i++)
		send_csr(fx, "dev-2", key);
	outbox_get(fx, &ob);
	assert_int_equal(ob.n, before + 12);
	for (i = 0; i < 12; i++) {
		assert_non_null(strstr(ob.topic[before + (size_t)i], "/dev-2/crt"));
		assert_string_equal(ob.payload[before + (size_t)i], ob.payload[before - 1]);
	}
	outbox_clear(&ob);
	/* Another key counts, with the first csr_res: the sixth in all is RATE_LIMITED. */
	for (i = 0; i < 4; i++) {
		EVP_PKEY_free(send_csr(fx, "dev-2", NULL));
		assert_rejected(fx, "dev-2", "BAD_CSR");
	}
	EVP_PKEY_free(send_csr(fx, "dev-2", NULL));
	assert_rejected(fx, "dev-2", "RATE_LIMITED");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_ISSUED);
	EVP_PKEY_free(key);
}

static void
test_rotation_engine__crt_err(void **state)
{
	struct fx *fx = *state;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char id[33], id2[33], payload[512], longtext[301];

	/* ISSUED: the new certificate goes INACTIVE. */
	start(fx, id, "dev-1");
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	check(handle(fx, "dev-1", "crt_err", "{\"error\":\"TLS handshake failed\"}", &err), &err,
	      "crt_err");
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_FAILED);
	assert_string_equal(rot.error, "TLS handshake failed");
	assert_int_equal(cert_status(fx, rot.new_cert), CF_CERT_INACTIVE);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_ACTIVE);
	cf_store_rotation_clear(&rot);

	/* REQUESTED, with a long error: kept to 200 bytes. */
	start(fx, id2, "dev-2");
	memset(longtext, 'x', 300);
	longtext[300] = '\0';
	snprintf(payload, sizeof(payload), "{\"error\":\"%s\",\"rotationId\":\"%s\"}", longtext,
		 id2);
	check(handle(fx, "dev-2", "crt_err", payload, &err), &err, "crt_err long");
	rot_get(fx, &rot, id2);
	assert_int_equal(rot.state, CF_ROTATION_FAILED);
	assert_int_equal(strlen(rot.error), 200);
	assert_null(rot.new_cert);
	cf_store_rotation_clear(&rot);
	events_ok(fx);
}

static void
test_rotation_engine__deadline(void **state)
{
	struct fx *fx = *state;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char id1[33], id2[33];
	size_t handled = 99;

	start(fx, id1, "dev-1");
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL)); /* ISSUED */
	start(fx, id2, "dev-2");                    /* REQUESTED */
	fx->now += 86399;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	/* Both were due for re-sends (csr_req, crt), not yet timed out. */
	assert_int_equal(handled, 2);
	assert_int_equal(rot_state(fx, id2), CF_ROTATION_REQUESTED);

	fx->now += 1;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 2);
	rot_get(fx, &rot, id1);
	assert_int_equal(rot.state, CF_ROTATION_TIMED_OUT);
	assert_string_equal(rot.error, "deadline");
	assert_int_equal(cert_status(fx, rot.new_cert), CF_CERT_INACTIVE);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_ACTIVE);
	cf_store_rotation_clear(&rot);
	rot_get(fx, &rot, id2);
	assert_int_equal(rot.state, CF_ROTATION_TIMED_OUT);
	assert_string_equal(rot.error, "deadline");
	cf_store_rotation_clear(&rot);

	/* Nothing left to do; a late ack changes nothing. */
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	check(handle(fx, "dev-1", "crt_ack", "{}", &err), &err, "late ack");
	assert_int_equal(rot_state(fx, id1), CF_ROTATION_TIMED_OUT);
	events_ok(fx);
}

static void
test_rotation_engine__resend(void **state)
{
	struct fx *fx = *state;
	struct outbox ob, first;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char id[33];
	size_t handled = 99;
	int64_t t0 = fx->now;

	start(fx, id, "dev-1");
	outbox_take(fx, &first); /* the binding published the csr_req */
	assert_int_equal(first.n, 1);
	fx->now = t0 + 299;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	assert_int_equal(outbox_count(fx), 0);

	fx->now = t0 + 300;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 1);
	outbox_take(fx, &ob);
	assert_int_equal(ob.n, 1);
	assert_string_equal(ob.topic[0], first.topic[0]);
	assert_string_equal(ob.payload[0], first.payload[0]);
	outbox_clear(&ob);
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_REQUESTED);
	assert_int_equal(rot.sends, 2);
	assert_int_equal(rot.next_send_at, t0 + 600);
	cf_store_rotation_clear(&rot);

	/*
	 * Not published (certfleetd away from the broker): the timer moves on,
	 * but the outbox keeps one copy, however many periods pass.
	 */
	fx->now = t0 + 600;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	fx->now = t0 + 900;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 1);
	fx->now = t0 + 1200;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	outbox_take(fx, &ob);
	assert_int_equal(ob.n, 1);
	outbox_clear(&ob);
	rot_get(fx, &rot, id);
	assert_int_equal(rot.sends, 3);
	assert_int_equal(rot.next_send_at, t0 + 1500);
	cf_store_rotation_clear(&rot);

	/*
	 * Once ISSUED, the crt is what goes out again, in case the device
	 * promoted it and its crt_ack was lost; csr_req is not sent again.
	 */
	fx->now = t0 + 1300;
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	outbox_clear(&first);
	outbox_take(fx, &first);
	assert_int_equal(first.n, 1);
	assert_non_null(strstr(first.topic[0], "/dev-1/crt"));
	fx->now = t0 + 1599;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	fx->now = t0 + 1600;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 1);
	outbox_take(fx, &ob);
	assert_int_equal(ob.n, 1);
	assert_string_equal(ob.topic[0], first.topic[0]);
	assert_string_equal(ob.payload[0], first.payload[0]);
	outbox_clear(&ob);
	outbox_clear(&first);
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_ISSUED);
	assert_int_equal(rot.sends, 3);
	assert_int_equal(rot.next_send_at, t0 + 1900);
	cf_store_rotation_clear(&rot);
	/* The device acknowledges it (again): completed, and no more re-sends. */
	check(handle(fx, "dev-1", "crt_ack", "{}", &err), &err, "ack");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_COMPLETED);
	fx->now = t0 + 5000;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	assert_int_equal(outbox_count(fx), 0);
	events_ok(fx);
}

static void
test_rotation_engine__bad_input_changes_nothing(void **state)
{
	struct fx *fx = *state;
	static const char *const topics[] = {
		"other/dev-1/csr_res",     PREFIX "/dev-1/csr_req",
		PREFIX "/dev-1/crt",       PREFIX "/dev 1/csr_res",
		PREFIX "/-dev/csr_res",    PREFIX "//csr_res",
		PREFIX "/dev-1/csr_res/x", PREFIX "/dev-1",
		PREFIX "dev-1/csr_res",    "management/topicx/dev-1/csr_res",
	};
	static const char *const payloads[] = {
		"not json",
		"[1,2]",
		"\"CSR\"",
		"{}",
		"{\"CSR\":42}",
		"{\"CSR\":\"x\",\"rotationId\":7}",
		"{\"CSR\":\"x\",\"CSR\":\"y\"}",
		"",
	};
	cf_err err = CF_ERR_INIT;
	char id[33], *pem, *good, *big;
	EVP_PKEY *key = key_p256();
	size_t i, certs, big_len = 64 * 1024 + 1;

	start(fx, id, "dev-1");
	certs = cert_count(fx);
	pem = csr_pem(key);
	good = csr_res_payload(pem, NULL);
	for (i = 0; i < CF_ARRAY_LEN(topics); i++) {
		cf_err_clear(&err);
		assert_int_equal(cf_rotation_handle(fx->eng, topics[i], good, strlen(good), &err),
				 CF_EINVAL);
		assert_true(err.msg[0] != '\0');
	}
	for (i = 0; i < CF_ARRAY_LEN(payloads); i++)
		assert_int_equal(handle(fx, "dev-1", "csr_res", payloads[i], &err), CF_EINVAL);
	assert_int_equal(handle(fx, "dev-1", "crt_ack", "{\"rotationId\":[]}", &err), CF_EINVAL);
	assert_int_equal(handle(fx, "dev-1", "crt_err", "{\"error\":{}}", &err), CF_EINVAL);
	assert_int_equal(handle(fx, "dev-1", "crt_ack", "null", &err), CF_EINVAL);

	/* Oversized: refused before parsing, even though it is valid JSON. */
	big = malloc(big_len + 1);
	assert_non_null(big);
	memset(big, ' ', big_len);
	memcpy(big, good, strlen(good));
	big[big_len] = '\0';
	assert_int_equal(handle(fx, "dev-1", "csr_res", big, &err), CF_EINVAL);
	assert_int_equal(
		cf_rotation_handle(fx->eng, PREFIX "/dev-1/csr_res", good, strlen(good), &err),
		CF_OK); /* the same without the padding is fine */

	/* Only the last, good one changed anything. */
	assert_int_equal(cert_count(fx), certs + 1);
	assert_int_equal(outbox_count(fx), 2);
	assert_int_equal(rot_state(fx, id), CF_ROTATION_ISSUED);
	free(big);
	free(good);
	free(pem);
	EVP_PKEY_free(key);
}

static void
test_rotation_engine__start_refusals(void **state)
{
	struct fx *fx = *state;
	cf_err err = CF_ERR_INIT;
	char id[33], id2[33];

	start(fx, id, "dev-1");
	assert_int_equal(cf_rotation_start(fx->eng, id2, "dev-1", NULL, &actor, &err), CF_EEXISTS);
	assert_int_equal(cf_rotation_start(fx->eng, id2, "dev-2", fx->old_id[0], &actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_rotation_start(fx->eng, id2, "no such", NULL, &actor, &err), CF_EINVAL);
	assert_int_equal(cf_rotation_start(fx->eng, id2, "ghost", NULL, &actor, &err),
			 CF_ENOTFOUND);
	assert_int_equal(outbox_count(fx), 1);

	/* An explicit old certificate, by prefix. */
	fx->old_id[1][16] = '\0';
	check(cf_rotation_start(fx->eng, id2, "dev-2", fx->old_id[1], &actor, &err), &err,
	      "start by id");
	assert_int_equal(outbox_count(fx), 2);
}

/* ---- cancel, bulk start, grace, events ------------------------------ */

struct action_count {
	const char *action;
	size_t n;
};

static int
event_cb(const cf_store_event *ev, void *payload)
{
	struct action_count *c = payload;

	if (strcmp(ev->action, c->action) == 0)
		c->n++;
	return 0;
}

/* How many events with action are about rotation id. */
static size_t
events_of(struct fx *fx, const char *id, const char *action)
{
	cf_store_event_filter filter = CF_STORE_EVENT_FILTER_INIT;
	struct action_count c = { action, 0 };
	char resource[64];
	cf_err err = CF_ERR_INIT;

	snprintf(resource, sizeof(resource), "rotation:%s", id);
	filter.resource = resource;
	check(cf_store_events_list(fx->store, &filter, event_cb, &c, &err), &err, "events");
	return c.n;
}

static int64_t
cert_deleted_at(struct fx *fx, const char *id)
{
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;
	int64_t at;

	check(cf_store_cert_get(fx->store, &cert, id, &err), &err, "cert_get");
	at = cert.deleted_at;
	cf_store_cert_clear(&cert);
	return at;
}

/* Start, csr_res, crt_ack for dev-1: the new certificate's id into new_id. */
static void
rotate_fully(struct fx *fx, char id[33], char new_id[65])
{
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;

	start(fx, id, "dev-1");
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	check(handle(fx, "dev-1", "crt_ack", "{}", &err), &err, "crt_ack");
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_COMPLETED);
	snprintf(new_id, 65, "%s", rot.new_cert);
	cf_store_rotation_clear(&rot);
}

static void
test_rotation_engine__cancel_requested(void **state)
{
	struct fx *fx = *state;
	cf_store_actor op = { "cli:op", "wrong batch" };
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char id[33], prefix[9];
	size_t certs = cert_count(fx), sent;

	start(fx, id, "dev-1");
	sent = outbox_count(fx);
	memcpy(prefix, id, 8);
	prefix[8] = '\0';
	check(cf_rotation_cancel(fx->eng, prefix, "wrong batch", &op, &err), &err, "cancel");
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_CANCELLED);
	assert_string_equal(rot.error, "cancelled: wrong batch");
	cf_store_rotation_clear(&rot);
	/* Nothing is sent for a cancel, and the timers leave it alone. */
	assert_int_equal(outbox_count(fx), sent);
	fx->now += 86400;
	check(cf_rotation_tick(fx->eng, NULL, &err), &err, "tick");
	assert_int_equal(outbox_count(fx), sent);
	assert_int_equal(rot_state(fx, id), CF_ROTATION_CANCELLED);
	/* A late csr_res is told there is no rotation; nothing is issued. */
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	assert_rejected(fx, "dev-1", "NO_ROTATION");
	assert_int_equal(cert_count(fx), certs);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_ACTIVE);

	/* Refusals change nothing. */
	assert_int_equal(cf_rotation_cancel(fx->eng, id, NULL, &op, &err), CF_ESTATE);
	assert_int_equal(cf_rotation_cancel(fx->eng, "0123456789abcdef0123456789abcdef", NULL, &op,
					    &err),
			 CF_ENOTFOUND);
	assert_int_equal(cf_rotation_cancel(fx->eng, "xyz", NULL, &op, &err), CF_EINVAL);
	assert_int_equal(cf_rotation_cancel(fx->eng, id, NULL, NULL, &err), CF_EINVAL);
	/* A new rotation may start at once. */
	start(fx, id, "dev-1");
	events_ok(fx);
}

static void
test_rotation_engine__cancel_issued(void **state)
{
	struct fx *fx = *state;
	cf_store_actor op = { "cli:op", NULL };
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char id[33];

	start(fx, id, "dev-1");
	EVP_PKEY_free(send_csr(fx, "dev-1", NULL));
	check(cf_rotation_cancel(fx->eng, id, NULL, &op, &err), &err, "cancel");
	rot_get(fx, &rot, id);
	assert_int_equal(rot.state, CF_ROTATION_CANCELLED);
	assert_string_equal(rot.error, "cancelled");
	/* The unconfirmed certificate is shut; the old one stays in use. */
	assert_int_equal(cert_status(fx, rot.new_cert), CF_CERT_INACTIVE);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_ACTIVE);
	/* The device's ack comes too late: ignored. */
	check(handle(fx, "dev-1", "crt_ack", "{}", &err), &err, "crt_ack");
	assert_int_equal(rot_state(fx, id), CF_ROTATION_CANCELLED);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_ACTIVE);
	cf_store_rotation_clear(&rot);
	events_ok(fx);
}

static void
test_rotation_engine__no_grace_deletes_on_ack(void **state)
{
	struct fx *fx = *state;
	cf_store_rotation rot;
	char id[33], new_id[65];

	rotate_fully(fx, id, new_id);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_INACTIVE);
	assert_int_equal(cert_deleted_at(fx, fx->old_id[0]), fx->now);
	assert_int_equal(cert_deleted_at(fx, new_id), 0);
	rot_get(fx, &rot, id);
	assert_int_equal(rot.delete_old_at, 0);
	cf_store_rotation_clear(&rot);
	/* No longer listed: dev-1 has one certificate in the active registry. */
	assert_int_equal(cert_count(fx), 2);
	events_ok(fx);
}

static void
test_rotation_engine__grace_period(void **state)
{
	struct fx *fx = *state;
	cf_rotation_config cfg;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char id[33], new_id[65];
	size_t handled = 99;
	int64_t acked;

	cf_rotation_config_init(&cfg);
	cfg.grace = 3600;
	assert_int_equal(engine_make(fx, &cfg), 0);
	rotate_fully(fx, id, new_id);
	acked = fx->now;
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_INACTIVE);
	assert_int_equal(cert_deleted_at(fx, fx->old_id[0]), 0);
	rot_get(fx, &rot, id);
	assert_int_equal(rot.delete_old_at, acked + 3600);
	cf_store_rotation_clear(&rot);

	fx->now = acked + 3599;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	assert_int_equal(cert_deleted_at(fx, fx->old_id[0]), 0);
	fx->now = acked + 3600;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 1);
	assert_int_equal(cert_deleted_at(fx, fx->old_id[0]), acked + 3600);
	rot_get(fx, &rot, id);
	assert_int_equal(rot.delete_old_at, 0);
	cf_store_rotation_clear(&rot);
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	events_ok(fx);

	cfg.grace = -1;
	assert_int_equal(engine_make(fx, &cfg), CF_EINVAL);
}

static void
test_rotation_engine__grace_reactivated_old_cert_stays(void **state)
{
	struct fx *fx = *state;
	cf_rotation_config cfg;
	cf_err err = CF_ERR_INIT;
	char id[33], new_id[65];
	size_t handled = 99;

	cf_rotation_config_init(&cfg);
	cfg.grace = 60;
	assert_int_equal(engine_make(fx, &cfg), 0);
	rotate_fully(fx, id, new_id);
	/* The new certificate misbehaves in the field; the operator goes back. */
	check(cf_store_cert_transition(fx->store, fx->old_id[0], CF_CERT_ACTIVE, NULL, &actor,
				       &err),
	      &err, "reactivate");
	fx->now += 61;
	check(cf_rotation_tick(fx->eng, &handled, &err), &err, "tick");
	assert_int_equal(handled, 0);
	assert_int_equal(cert_status(fx, fx->old_id[0]), CF_CERT_ACTIVE);
	assert_int_equal(cert_deleted_at(fx, fx->old_id[0]), 0);
}

/* svc-1, a service principal (attribute role=service) with an ACTIVE certificate. */
static void
add_service(struct fx *fx)
{
	cf_authority_request req;
	cf_authority_result res;
	cf_err err = CF_ERR_INIT;
	EVP_PKEY *key = key_p256();
	char *pem = csr_pem(key);

	check(cf_store_thing_insert(fx->store, "svc-1", "{\"role\":\"service\"}", &actor, &err),
	      &err, "thing_insert");
	memset(&req, 0, sizeof(req));
	req.thing = "svc-1";
	req.csr = pem;
	req.csr_len = strlen(pem);
	req.status = CF_CERT_ACTIVE;
	check(cf_authority_issue(fx->auth, &res, &req, &actor, &err), &err, "issue svc");
	cf_authority_result_clear(&res);
	free(pem);
	EVP_PKEY_free(key);
}

static void
started_cb(const char *rotation_id, const char *thing, void *payload)
{
	size_t *n = payload;

	assert_int_equal(strlen(rotation_id), 32);
	assert_true(strncmp(thing, "dev-", 4) == 0);
	(*n)++;
}

static void
test_rotation_engine__start_many_expiring(void **state)
{
	struct fx *fx = *state;
	cf_rotation_select sel = { 0, NULL };
	cf_rotation_bulk bulk;
	cf_err err = CF_ERR_INIT;
	cf_store_rotation rot;
	char id[33];
	size_t seen = 0;

	add_service(fx);
	/* The certificates are valid for 365 days: none expires within 30. */
	sel.expiring_within = 30 * 86400;
	check(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, started_cb, &seen, &err), &err,
	      "start_many");
	assert_int_equal(bulk.things, 0);
	assert_int_equal(bulk.started, 0);
	assert_int_equal(outbox_count(fx), 0);

	sel.expiring_within = 366 * 86400;
	check(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, started_cb, &seen, &err), &err,
	      "start_many");
	assert_int_equal(bulk.things, 3);
	assert_int_equal(bulk.started, 2);
	assert_int_equal(bulk.skipped_service, 1);
	assert_int_equal(bulk.skipped_open, 0);
	assert_int_equal(seen, 2);
	assert_int_equal(outbox_count(fx), 2);
	check(cf_store_rotation_get_open(fx->store, &rot, "dev-2", &err), &err, "open");
	assert_string_equal(rot.old_cert, fx->old_id[1]);
	cf_store_rotation_clear(&rot);

	/* Again: both are open already; nothing new is sent. */
	check(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, NULL, NULL, &err), &err,
	      "start_many again");
	assert_int_equal(bulk.started, 0);
	assert_int_equal(bulk.skipped_open, 2);
	assert_int_equal(outbox_count(fx), 2);
	/* Named explicitly, a service principal is rotated. */
	start(fx, id, "svc-1");
	events_ok(fx);
}

static void
test_rotation_engine__start_many_by_ca(void **state)
{
	struct fx *fx = *state;
	cf_rotation_select sel = { 0, "issuing" };
	cf_rotation_bulk bulk;
	cf_err err = CF_ERR_INIT;
	char id[33];

	start(fx, id, "dev-1"); /* already open */
	check(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, NULL, NULL, &err), &err,
	      "start_many");
	assert_int_equal(bulk.things, 2);
	assert_int_equal(bulk.started, 1);
	assert_int_equal(bulk.skipped_open, 1);

	/* Both criteria: issued by that CA and expiring soon; none is. */
	sel.expiring_within = 86400;
	check(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, NULL, NULL, &err), &err,
	      "start_many both");
	assert_int_equal(bulk.things, 0);

	/* Refusals: no criterion (the whole fleet), an unknown CA. */
	sel.expiring_within = 0;
	sel.ca = NULL;
	assert_int_equal(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, NULL, NULL, &err),
			 CF_EINVAL);
	sel.ca = "ghost";
	assert_int_equal(cf_rotation_start_many(fx->eng, &bulk, &sel, &actor, NULL, NULL, &err),
			 CF_ENOTFOUND);
	assert_int_equal(bulk.started, 0);
	assert_int_equal(outbox_count(fx), 2);
}

static void
test_rotation_engine__step_events(void **state)
{
	struct fx *fx = *state;
	char id[33];
	EVP_PKEY *key;
	int i;

	start(fx, id, "dev-1");
	/* Each refusal within csr_max is an event, with its code. */
	send_csr(fx, "dev-1", fx->old_key[0]); /* KEY_REUSE */
	assert_int_equal(events_of(fx, id, "rotation.csr_rejected"), 1);
	for (i = 0; i < 4; i++)
		send_csr(fx, "dev-1", fx->old_key[0]);
	assert_int_equal(events_of(fx, id, "rotation.csr_rejected"), 5);
	/* Past csr_max: one RATE_LIMITED event, then only csr_rej. */
	for (i = 0; i < 3; i++) {
		send_csr(fx, "dev-1", fx->old_key[0]);
		assert_rejected(fx, "dev-1", "RATE_LIMITED");
	}
	assert_int_equal(events_of(fx, id, "rotation.csr_rejected"), 6);

	/* A duplicate csr_res answered with the same certificate is an event too. */
	start(fx, id, "dev-2");
	key = send_csr(fx, "dev-2", NULL);
	assert_int_equal(events_of(fx, id, "rotation.crt_resent"), 0);
	send_csr(fx, "dev-2", key);
	assert_int_equal(events_of(fx, id, "rotation.crt_resent"), 1);
	assert_int_equal(events_of(fx, id, "rotation.state"), 1); /* ISSUED */
	EVP_PKEY_free(key);
	events_ok(fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rotation_engine__start_queues_one_csr_req,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_rotation_engine__start_with_key_type_and_no_rekey, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__happy_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__no_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__refused_csrs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__rate_limited, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__crt_err, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__bad_input_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__start_refusals, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__cancel_requested, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__cancel_issued, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__no_grace_deletes_on_ack,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__grace_period, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_rotation_engine__grace_reactivated_old_cert_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__start_many_expiring, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__start_many_by_ca, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_engine__step_events, setup,
						teardown),
	};

	cf_log_set_level(CF_LOG_ERR);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
