/*
 * store.c: the public registry interface. Checks arguments, picks the
 * backend by URI scheme and holds what every backend shares: status names,
 * the transition rules, the event hash and event details.
 */
#include "store_backend.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* A PostgreSQL backend adds one line here. */
static const struct cf_store_backend *const backends[] = {
	&cf_store__sqlite_backend,
};

static const char *const cert_status_names[] = {
	[CF_CERT_PENDING_ACTIVATION] = "PENDING_ACTIVATION",
	[CF_CERT_ACTIVE] = "ACTIVE",
	[CF_CERT_INACTIVE] = "INACTIVE",
	[CF_CERT_REVOKED] = "REVOKED",
};

static const char *const ca_status_names[] = {
	[CF_CA_ACTIVE] = "ACTIVE",
	[CF_CA_RETIRED] = "RETIRED",
	[CF_CA_REVOKED] = "REVOKED",
	[CF_CA_PENDING] = "PENDING",
};

static const char *const rotation_state_names[] = {
	[CF_ROTATION_REQUESTED] = "REQUESTED",
	[CF_ROTATION_ISSUED] = "ISSUED",
	[CF_ROTATION_COMPLETED] = "COMPLETED",
	[CF_ROTATION_FAILED] = "FAILED",
	[CF_ROTATION_TIMED_OUT] = "TIMED_OUT",
	[CF_ROTATION_CANCELLED] = "CANCELLED",
};

/* ---- statuses ------------------------------------------------------------ */

const char *
cf_cert_status_name(cf_cert_status status)
{
	if ((unsigned int)status >= CF_ARRAY_LEN(cert_status_names))
		return "UNKNOWN";
	return cert_status_names[status];
}

int
cf_cert_status_parse(cf_cert_status *out, const char *name)
{
	size_t i;

	if (name == NULL)
		return CF_EINVAL;
	for (i = 0; i < CF_ARRAY_LEN(cert_status_names); i++) {
		if (strcasecmp(name, cert_status_names[i]) == 0) {
			*out = (cf_cert_status)i;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

const char *
cf_ca_status_name(cf_ca_status status)
{
	if ((unsigned int)status >= CF_ARRAY_LEN(ca_status_names))
		return "UNKNOWN";
	return ca_status_names[status];
}

int
cf_store__ca_status_parse(cf_ca_status *out, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < CF_ARRAY_LEN(ca_status_names); i++) {
		if (strcmp(name, ca_status_names[i]) == 0) {
			*out = (cf_ca_status)i;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

static bool
cert_status_valid(int status)
{
	return status >= 0 && (size_t)status < CF_ARRAY_LEN(cert_status_names);
}

bool
cf_cert_transition_allowed(cf_cert_status from, cf_cert_status to)
{
	if (!cert_status_valid((int)from) || !cert_status_valid((int)to) || from == to)
		return false;
	if (from == CF_CERT_REVOKED)
		return false; /* terminal */
	if (to == CF_CERT_REVOKED)
		return true; /* anything alive may be revoked */
	switch (from) {
	case CF_CERT_PENDING_ACTIVATION:
		return to == CF_CERT_ACTIVE || to == CF_CERT_INACTIVE;
	case CF_CERT_ACTIVE:
		return to == CF_CERT_INACTIVE;
	case CF_CERT_INACTIVE:
		/* Never back to PENDING: that state only exists before first use. */
		return to == CF_CERT_ACTIVE;
	default:
		return false;
	}
}

bool
cf_store__ca_transition_allowed(cf_ca_status from, cf_ca_status to)
{
	if (to == CF_CA_RETIRED)
		return from == CF_CA_ACTIVE;
	if (to == CF_CA_REVOKED)
		return from == CF_CA_ACTIVE || from == CF_CA_RETIRED;
	return false; /* PENDING -> ACTIVE is cf_store_ca_activate()'s job */
}

static bool
rotation_state_valid(int state)
{
	return state >= 0 && (size_t)state < CF_ARRAY_LEN(rotation_state_names);
}

const char *
cf_rotation_state_name(cf_rotation_state state)
{
	if (!rotation_state_valid((int)state))
		return "UNKNOWN";
	return rotation_state_names[state];
}

int
cf_rotation_state_parse(cf_rotation_state *out, const char *name)
{
	size_t i;

	if (name == NULL)
		return CF_EINVAL;
	for (i = 0; i < CF_ARRAY_LEN(rotation_state_names); i++) {
		if (strcasecmp(name, rotation_state_names[i]) == 0) {
			*out = (cf_rotation_state)i;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

bool
cf_rotation_state_open(cf_rotation_state state)
{
	return state == CF_ROTATION_REQUESTED || state == CF_ROTATION_ISSUED;
}

bool
cf_rotation_transition_allowed(cf_rotation_state from, cf_rotation_state to)
{
	if (!rotation_state_valid((int)from) || !rotation_state_valid((int)to))
		return false;
	switch (from) {
	case CF_ROTATION_REQUESTED:
		/* REQUESTED -> REQUESTED is a re-send of csr_req: new timer, one more send. */
		return to != CF_ROTATION_COMPLETED;
	case CF_ROTATION_ISSUED:
		/* ISSUED -> ISSUED is a re-send of crt (a crt_ack may have been lost). */
		return to != CF_ROTATION_REQUESTED;
	default:
		return false; /* COMPLETED, FAILED, TIMED_OUT, CANCELLED are final */
	}
}

/* ---- records ------------------------------------------------------------- */

void
cf_store_ca_clear(cf_store_ca *ca)
{
	if (ca == NULL)
		return;
	free(ca->name);
	free(ca->parent);
	free(ca->cert_id);
	free(ca->subject);
	free(ca->cert_pem);
	free(ca->key_ref);
	free(ca->key_type);
	free(ca->revoke_reason);
	memset(ca, 0, sizeof(*ca));
}

void
cf_store_thing_clear(cf_store_thing *thing)
{
	if (thing == NULL)
		return;
	free(thing->name);
	free(thing->attributes);
	memset(thing, 0, sizeof(*thing));
}

void
cf_store_cert_clear(cf_store_cert *cert)
{
	if (cert == NULL)
		return;
	free(cert->id);
	free(cert->serial);
	free(cert->ca);
	free(cert->thing);
	free(cert->key_type);
	free(cert->sig_alg);
	free(cert->spki_sha256);
	free(cert->pem);
	free(cert->revoke_reason);
	memset(cert, 0, sizeof(*cert));
}

void
cf_store_policy_clear(cf_store_policy *policy)
{
	if (policy == NULL)
		return;
	free(policy->name);
	free(policy->document);
	memset(policy, 0, sizeof(*policy));
}

void
cf_store_rotation_clear(cf_store_rotation *rot)
{
	if (rot == NULL)
		return;
	free(rot->id);
	free(rot->thing);
	free(rot->old_cert);
	free(rot->new_cert);
	free(rot->csr_spki);
	free(rot->key_type);
	free(rot->error);
	memset(rot, 0, sizeof(*rot));
}

void
cf_store_event_clear(cf_store_event *event)
{
	if (event == NULL)
		return;
	free(event->actor);
	free(event->action);
	free(event->resource);
	free(event->detail);
	free(event->prev_hash);
	free(event->hash);
	memset(event, 0, sizeof(*event));
}

/* ---- shared helpers ------------------------------------------------------ */

int64_t
cf_store_now(const cf_store *store)
{
	return cf_store__now(store);
}

int64_t
cf_store__now(const cf_store *store)
{
	if (store->now != NULL)
		return store->now(store->now_payload);
	return cf_time_now();
}

static void
put_be64(unsigned char out[8], uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/*
 * The event hash's input, gathered in a buffer and handed to the digest in
 * as few updates as fit: each EVP_DigestUpdate() costs OpenSSL 3.0 about as
 * much as hashing a short field, and a verify walk hashes a million events.
 * The bytes, and so the hash, are those of one update per field.
 */
struct hash_buf {
	EVP_MD_CTX *ctx;
	unsigned char buf[1024];
	size_t n;
	bool ok;
};

static void
hash_put(struct hash_buf *h, const void *data, size_t len)
{
	if (!h->ok)
		return;
	if (h->n + len > sizeof(h->buf)) {
		h->ok = EVP_DigestUpdate(h->ctx, h->buf, h->n) == 1;
		h->n = 0;
	}
	if (len > sizeof(h->buf))
		h->ok = h->ok && EVP_DigestUpdate(h->ctx, data, len) == 1;
	else if (h->ok && len > 0)
		memcpy(h->buf + h->n, data, len);
	if (len <= sizeof(h->buf))
		h->n += len;
}

static void
hash_int(struct hash_buf *h, int64_t v)
{
	unsigned char buf[8];

	put_be64(buf, (uint64_t)v);
	hash_put(h, buf, sizeof(buf));
}

/* A string as its length (8 bytes, big-endian), then its bytes. */
static void
hash_str(struct hash_buf *h, const char *s)
{
	size_t len = strlen(s);

	hash_int(h, (int64_t)len);
	hash_put(h, s, len);
}

int
cf_store__event_hash(cf_store *store, char out[65], const char *prev_hash, int64_t seq,
		     int64_t time, const char *actor, const char *action, const char *resource,
		     const char *detail, cf_err *err)
{
	struct hash_buf h;
	unsigned char md[32];
	unsigned int mdlen = 0;

	out[0] = '\0';
	h.ctx = store->md_ctx;
	h.n = 0;
	h.ok = EVP_DigestInit_ex(h.ctx, store->sha256, NULL) == 1;
	hash_str(&h, "certfleet-event-v1");
	hash_str(&h, prev_hash);
	hash_int(&h, seq);
	hash_int(&h, time);
	hash_str(&h, actor);
	hash_str(&h, action);
	hash_str(&h, resource);
	hash_str(&h, detail);
	if (!h.ok || (h.n > 0 && EVP_DigestUpdate(h.ctx, h.buf, h.n) != 1) ||
	    EVP_DigestFinal_ex(h.ctx, md, &mdlen) != 1 || mdlen != sizeof(md))
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "event hash");
	cf_hex_encode(out, md, sizeof(md));
	return CF_OK;
}

/* Dump obj (not consumed) compact and sorted, so the text hashes the same everywhere. */
static int
detail_dump(char **out, json_t *obj, const cf_store_actor *actor, cf_err *err)
{
	char *text;

	if (actor->why != NULL && json_object_set_new(obj, "why", json_string(actor->why)) != 0)
		return cf_err_set(err, CF_ENOMEM, NULL, "event detail: cannot add why");
	text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "event detail: json_dumps failed");
	*out = text;
	return CF_OK;
}

int
cf_store__detail(char **out, const cf_store_actor *actor, cf_err *err, ...)
{
	json_t *obj = NULL;
	const char *key, *value;
	va_list ap;
	int rc = CF_OK;

	*out = NULL;
	obj = json_object();
	if (obj == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "event detail: json_object");
	va_start(ap, err);
	for (;;) {
		key = va_arg(ap, const char *);
		if (key == NULL)
			break;
		value = va_arg(ap, const char *);
		if (value == NULL)
			continue;
		if (json_object_set_new(obj, key, json_string(value)) != 0) {
			rc = cf_err_set(err, CF_EINVAL, NULL, "event detail: bad value for %s",
					key);
			break;
		}
	}
	va_end(ap);
	if (rc == CF_OK)
		rc = detail_dump(out, obj, actor, err);
	json_decref(obj);
	return rc;
}

int
cf_store__detail_cert(char **out, const cf_store_cert *cert, const char *const *policies,
		      size_t npolicies, const cf_store_actor *actor, cf_err *err)
{
	json_t *obj = NULL, *list = NULL;
	size_t i;
	int rc;

	*out = NULL;
	obj = json_pack("{s:s, s:s, s:s?, s:s}", "serial", cert->serial, "ca", cert->ca, "thing",
			cert->thing, "status", cf_cert_status_name(cert->status));
	list = json_array();
	if (obj == NULL || list == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "event detail: json_pack");
		goto out;
	}
	for (i = 0; i < npolicies; i++) {
		if (json_array_append_new(list, json_string(policies[i])) != 0) {
			rc = cf_err_set(err, CF_ENOMEM, NULL, "event detail: policies");
			goto out;
		}
	}
	if (json_object_set(obj, "policies", list) != 0) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "event detail: policies");
		goto out;
	}
	rc = detail_dump(out, obj, actor, err);
out:
	json_decref(list);
	json_decref(obj);
	return rc;
}

/* ---- argument checks ----------------------------------------------------- */

static int
check_writable(cf_store *store, const cf_store_actor *actor, cf_err *err)
{
	if (store == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "store is NULL");
	if (store->readonly)
		return cf_err_set(err, CF_ESTATE, NULL, "store opened read-only");
	if (actor == NULL || actor->who == NULL || actor->who[0] == '\0')
		return cf_err_set(err, CF_EINVAL, NULL, "a change needs an actor");
	return CF_OK;
}

static int
check_name(const char *what, const char *name, cf_err *err)
{
	if (!cf_name_valid(name))
		return cf_err_set(err, CF_EINVAL, NULL, "invalid %s name '%s'", what,
				  name == NULL ? "(null)" : name);
	return CF_OK;
}

/* A JSON object as text, or NULL. */
static int
check_json_object(const char *what, const char *text, cf_err *err)
{
	json_t *doc = NULL;
	json_error_t jerr;
	int rc = CF_OK;

	if (text == NULL)
		return CF_OK;
	doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL || !json_is_object(doc))
		rc = cf_err_set(err, CF_EINVAL, NULL, "%s must be a JSON object", what);
	json_decref(doc);
	return rc;
}

static bool
is_hex_lower(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[len] == '\0';
}

/* Lowercase a certificate id or prefix into buf; 8..64 hex digits. */
static int
normalize_cert_id(char buf[65], const char *id, cf_err *err)
{
	size_t len, i;

	len = id == NULL ? 0 : strnlen(id, 65);
	if (len < 8 || len > 64)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "certificate id must be 8 to 64 hex digits");
	for (i = 0; i < len; i++)
		buf[i] = (char)tolower((unsigned char)id[i]);
	buf[len] = '\0';
	if (!is_hex_lower(buf, len))
		return cf_err_set(err, CF_EINVAL, NULL, "certificate id must be hex");
	return CF_OK;
}

static int
check_cert(const cf_store_cert *cert, cf_err *err)
{
	if (cert == NULL || cert->id == NULL || strlen(cert->id) != 64 ||
	    !is_hex_lower(cert->id, 64))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "certificate id must be 64 lowercase hex digits");
	/* As cf_pki_cert_info writes it, and cf_store_cert_get_by_serial() finds it. */
	if (cert->serial == NULL || cert->serial[0] == '\0' || strlen(cert->serial) > 40 ||
	    !is_hex_lower(cert->serial, strlen(cert->serial)) ||
	    (cert->serial[0] == '0' && cert->serial[1] != '\0'))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "serial must be 1 to 40 lowercase hex digits without leading zeros");
	if (check_name("CA", cert->ca, err) != CF_OK)
		return CF_EINVAL;
	if (cert->thing != NULL && check_name("thing", cert->thing, err) != CF_OK)
		return CF_EINVAL;
	if (!cert_status_valid((int)cert->status) || cert->status == CF_CERT_REVOKED)
		return cf_err_set(err, CF_EINVAL, NULL, "a new certificate cannot be %s",
				  cf_cert_status_name(cert->status));
	if (cert->key_type == NULL || cert->sig_alg == NULL || cert->spki_sha256 == NULL ||
	    cert->pem == NULL)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "key_type, sig_alg, spki_sha256 and pem are required");
	if (strlen(cert->spki_sha256) != 64 || !is_hex_lower(cert->spki_sha256, 64))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "spki_sha256 must be 64 lowercase hex digits");
	if (cert->not_after <= cert->not_before)
		return cf_err_set(err, CF_EINVAL, NULL, "not_after must follow not_before");
	return CF_OK;
}

static int
check_ca(const cf_store_ca *ca, cf_err *err)
{
	if (ca == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "ca is NULL");
	if (check_name("CA", ca->name, err) != CF_OK)
		return CF_EINVAL;
	if (ca->parent != NULL && check_name("parent CA", ca->parent, err) != CF_OK)
		return CF_EINVAL;
	if ((unsigned int)ca->status >= CF_ARRAY_LEN(ca_status_names))
		return cf_err_set(err, CF_EINVAL, NULL, "bad CA status");
	if (ca->status != CF_CA_PENDING && (ca->cert_id == NULL || ca->cert_pem == NULL))
		return cf_err_set(err, CF_EINVAL, NULL, "a %s CA needs cert_id and cert_pem",
				  cf_ca_status_name(ca->status));
	if (ca->cert_id != NULL && (strlen(ca->cert_id) != 64 || !is_hex_lower(ca->cert_id, 64)))
		return cf_err_set(err, CF_EINVAL, NULL, "CA cert_id must be 64 lowercase hex");
	if (ca->is_default && (ca->status != CF_CA_ACTIVE || ca->is_root))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "only an ACTIVE intermediate can be the default issuer");
	return CF_OK;
}

/* ---- opening ------------------------------------------------------------- */

static const struct cf_store_backend *
backend_for(const char *uri)
{
	size_t i, n;

	for (i = 0; i < CF_ARRAY_LEN(backends); i++) {
		n = strlen(backends[i]->scheme);
		if (strncmp(uri, backends[i]->scheme, n) == 0 && uri[n] == ':')
			return backends[i];
	}
	return NULL;
}

static int
store_open(cf_store **out, const char *uri, cf_store__open_mode mode, cf_err *err)
{
	cf_store *store = NULL;
	const struct cf_store_backend *backend;
	int rc;

	*out = NULL;
	if (uri == NULL) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "store URI is NULL");
		goto out;
	}
	backend = backend_for(uri);
	if (backend == NULL) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "unknown store URI scheme in '%.64s'", uri);
		goto out;
	}
	/* A backend built against another contract must not be called at all. */
	if (backend->version != CF_STORE_BACKEND_VERSION) {
		rc = cf_err_set(err, CF_ESTORE, NULL, "store backend %s has version %u, want %u",
				backend->scheme, backend->version, CF_STORE_BACKEND_VERSION);
		goto out;
	}
	store = calloc(1, sizeof(*store));
	if (store == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "store handle");
		goto out;
	}
	store->backend = backend;
	store->readonly = mode == CF_STORE_OPEN_READONLY;
	/* Fetched once: an implicit fetch per event costs locks and allocations. */
	store->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	store->md_ctx = EVP_MD_CTX_new();
	if (store->sha256 == NULL || store->md_ctx == NULL) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "SHA-256 for the event log");
		goto out;
	}
	rc = backend->open(store, uri, mode, err);
	if (rc != CF_OK)
		goto out;
	*out = store;
	store = NULL;
out:
	/* A failed open leaves no impl behind. */
	if (store != NULL) {
		EVP_MD_CTX_free(store->md_ctx);
		EVP_MD_free(store->sha256);
	}
	free(store);
	return rc;
}

int
cf_store_open(cf_store **out, const char *uri, cf_err *err)
{
	return store_open(out, uri, CF_STORE_OPEN_MIGRATE, err);
}

int
cf_store_open_existing(cf_store **out, const char *uri, cf_err *err)
{
	return store_open(out, uri, CF_STORE_OPEN_EXISTING, err);
}

int
cf_store_open_readonly(cf_store **out, const char *uri, cf_err *err)
{
	return store_open(out, uri, CF_STORE_OPEN_READONLY, err);
}

void
cf_store_close(cf_store *store)
{
	if (store == NULL)
		return;
	store->backend->close(store);
	EVP_MD_CTX_free(store->md_ctx);
	EVP_MD_free(store->sha256);
	free(store);
}

void
cf_store_set_clock(cf_store *store, cf_store_clock_fn now, void *payload)
{
	store->now = now;
	store->now_payload = now == NULL ? NULL : payload;
}

int
cf_store_schema_version(cf_store *store, int *out, cf_err *err)
{
	if (store == NULL || out == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->schema_version(store, out, err);
}

/* ---- transactions -------------------------------------------------------- */

int
cf_store_tx_begin(cf_store *store, cf_err *err)
{
	if (store == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "store is NULL");
	if (store->readonly)
		return cf_err_set(err, CF_ESTATE, NULL, "store opened read-only");
	return store->backend->tx_begin(store, err);
}

int
cf_store_tx_commit(cf_store *store, cf_err *err)
{
	if (store == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "store is NULL");
	return store->backend->tx_commit(store, err);
}

void
cf_store_tx_rollback(cf_store *store)
{
	if (store != NULL)
		store->backend->tx_rollback(store);
}

/* ---- CAs ----------------------------------------------------------------- */

int
cf_store_ca_insert(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor,
		   cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_ca(ca, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->ca_insert(store, ca, actor, err);
}

int
cf_store_ca_activate(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor,
		     cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc != CF_OK)
		return rc;
	if (ca == NULL || check_name("CA", ca->name, err) != CF_OK)
		return cf_err_set(err, CF_EINVAL, NULL, "a CA name is required");
	if (ca->cert_id == NULL || strlen(ca->cert_id) != 64 || !is_hex_lower(ca->cert_id, 64) ||
	    ca->cert_pem == NULL || ca->subject == NULL || ca->not_after <= ca->not_before)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "activation needs cert_id, subject, cert_pem and validity");
	if (ca->parent != NULL && check_name("parent CA", ca->parent, err) != CF_OK)
		return CF_EINVAL;
	return store->backend->ca_activate(store, ca, actor, err);
}

int
cf_store_ca_get(cf_store *store, cf_store_ca *out, const char *name, cf_err *err)
{
	if (store == NULL || out == NULL || name == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->ca_get(store, out, "name", name, err);
}

int
cf_store_ca_get_by_cert(cf_store *store, cf_store_ca *out, const char *cert_id, cf_err *err)
{
	if (store == NULL || out == NULL || cert_id == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->ca_get(store, out, "cert_id", cert_id, err);
}

int
cf_store_ca_get_default(cf_store *store, cf_store_ca *out, cf_err *err)
{
	if (store == NULL || out == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->ca_get(store, out, "default", "", err);
}

int
cf_store_ca_list(cf_store *store, cf_store_ca_cb cb, void *payload, cf_err *err)
{
	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->ca_list(store, cb, payload, err);
}

int
cf_store_ca_set_default(cf_store *store, const char *name, const cf_store_actor *actor,
			cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_name("CA", name, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->ca_set_default(store, name, actor, err);
}

int
cf_store_ca_set_status(cf_store *store, const char *name, cf_ca_status to, const char *reason,
		       const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_name("CA", name, err);
	if (rc != CF_OK)
		return rc;
	if (to == CF_CA_REVOKED && (reason == NULL || reason[0] == '\0'))
		return cf_err_set(err, CF_EINVAL, NULL, "revoking a CA needs a reason");
	if (to != CF_CA_RETIRED && to != CF_CA_REVOKED)
		return cf_err_set(err, CF_ESTATE, NULL, "a CA cannot be set to %s",
				  cf_ca_status_name(to));
	return store->backend->ca_set_status(store, name, to, reason, actor, err);
}

/* ---- registration codes -------------------------------------------------- */

static int
regcode_digest(char out[65], const char *code, cf_err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (EVP_Digest(code, strlen(code), md, &mdlen, EVP_sha256(), NULL) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "sha256");
	cf_hex_encode(out, md, sizeof(md));
	return CF_OK;
}

int
cf_store_regcode_create(cf_store *store, char out[65], int64_t ttl, const cf_store_actor *actor,
			cf_err *err)
{
	unsigned char raw[16];
	char digest[65];
	int rc;

	out[0] = '\0';
	rc = check_writable(store, actor, err);
	if (rc != CF_OK)
		return rc;
	if (ttl <= 0 || ttl > 366 * 86400)
		return cf_err_set(err, CF_EINVAL, NULL, "registration code ttl out of range");
	if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "RAND_bytes");
	cf_hex_encode(out, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	rc = regcode_digest(digest, out, err);
	if (rc == CF_OK)
		rc = store->backend->regcode_create(store, digest, cf_store__now(store) + ttl,
						    actor, err);
	if (rc != CF_OK)
		OPENSSL_cleanse(out, 65);
	return rc;
}

int
cf_store_ca_register(cf_store *store, const cf_store_ca *ca, const char *code,
		     const cf_store_actor *actor, cf_err *err)
{
	char digest[65];
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_ca(ca, err);
	if (rc != CF_OK)
		return rc;
	if (code == NULL || code[0] == '\0')
		return cf_err_set(err, CF_ENOTFOUND, NULL, "no registration code");
	rc = regcode_digest(digest, code, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->ca_register(store, ca, digest, actor, err);
}

/* ---- things -------------------------------------------------------------- */

int
cf_store_thing_insert(cf_store *store, const char *name, const char *attributes,
		      const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_name("thing", name, err);
	if (rc == CF_OK)
		rc = check_json_object("thing attributes", attributes, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->thing_insert(store, name, attributes == NULL ? "{}" : attributes,
					    actor, err);
}

int
cf_store_thing_get(cf_store *store, cf_store_thing *out, const char *name, cf_err *err)
{
	if (store == NULL || out == NULL || name == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->thing_get(store, out, name, err);
}

int
cf_store_thing_is_service(cf_store *store, bool *out, const char *name, cf_err *err)
{
	cf_store_thing rec;
	json_t *attrs;
	const char *role;
	int rc;

	*out = false;
	memset(&rec, 0, sizeof(rec));
	rc = cf_store_thing_get(store, &rec, name, err);
	if (rc != CF_OK)
		return rc;
	attrs = json_loads(rec.attributes != NULL ? rec.attributes : "{}", 0, NULL);
	role = json_string_value(json_object_get(attrs, "role"));
	*out = role != NULL && strcmp(role, "service") == 0;
	json_decref(attrs);
	cf_store_thing_clear(&rec);
	return CF_OK;
}

int
cf_store_thing_list(cf_store *store, cf_store_thing_cb cb, void *payload, cf_err *err)
{
	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->thing_list(store, cb, payload, err);
}

int
cf_store_thing_delete(cf_store *store, const char *name, const cf_store_actor *actor,
		      cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_name("thing", name, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->thing_delete(store, name, actor, err);
}

/* ---- certificates -------------------------------------------------------- */

/* The argument checks of one certificate to insert. */
static int
check_cert_new(const cf_store_cert_new *item, cf_err *err)
{
	size_t i;
	int rc;

	rc = check_cert(item->cert, err);
	if (rc != CF_OK)
		return rc;
	if (item->npolicies > 0 && item->policies == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "policies is NULL");
	for (i = 0; i < item->npolicies; i++) {
		if (check_name("policy", item->policies[i], err) != CF_OK)
			return CF_EINVAL;
	}
	return CF_OK;
}

int
cf_store_cert_insert_batch(cf_store *store, cf_store_cert_new *items, size_t n,
			   const cf_store_actor *actor, cf_err *err)
{
	size_t i;
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK && n > 0 && items == NULL)
		rc = cf_err_set(err, CF_EINVAL, NULL, "items is NULL");
	if (rc != CF_OK)
		return rc;
	for (i = 0; i < n; i++) {
		cf_err_clear(&items[i].err);
		items[i].rc = check_cert_new(&items[i], &items[i].err);
	}
	return store->backend->cert_insert_batch(store, items, n, actor, err);
}

int
cf_store_cert_insert(cf_store *store, const cf_store_cert *cert, const char *const *policies,
		     size_t npolicies, bool registered, const cf_store_actor *actor,
		     cf_err *err)
{
	cf_store_cert_new item;
	int rc;

	memset(&item, 0, sizeof(item));
	item.cert = cert;
	item.policies = policies;
	item.npolicies = npolicies;
	item.registered = registered;
	rc = cf_store_cert_insert_batch(store, &item, 1, actor, err);
	if (rc != CF_OK)
		return rc;
	if (item.rc != CF_OK && err != NULL)
		*err = item.err;
	return item.rc;
}

int
cf_store_cert_get(cf_store *store, cf_store_cert *out, const char *id, cf_err *err)
{
	char buf[65];
	int rc;

	if (store == NULL || out == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	rc = normalize_cert_id(buf, id, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->cert_get(store, out, buf, err);
}

int
cf_store_cert_get_by_serial(cf_store *store, cf_store_cert *out, const char *ca,
			    const char *serial, cf_err *err)
{
	size_t len;

	if (store == NULL || out == NULL || ca == NULL || serial == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	len = strnlen(serial, 41);
	if (len == 0 || len > 40 || !is_hex_lower(serial, len) || (serial[0] == '0' && len > 1))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "a serial is 1 to 40 lowercase hex digits without leading zeros");
	return store->backend->cert_get_by_serial(store, out, ca, serial, err);
}

int
cf_store_cert_list(cf_store *store, const cf_store_cert_filter *filter, cf_store_cert_cb cb,
		   void *payload, cf_err *err)
{
	static const cf_store_cert_filter any = CF_STORE_CERT_FILTER_INIT;

	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (filter == NULL)
		filter = &any;
	if (filter->status != -1 && !cert_status_valid(filter->status))
		return cf_err_set(err, CF_EINVAL, NULL, "bad status filter %d", filter->status);
	if (filter->limit < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative limit");
	return store->backend->cert_list(store, filter, cb, payload, err);
}

int
cf_store_cert_scan(cf_store *store, int status, bool include_deleted, cf_store_cert_facts_cb cb,
		   void *payload, cf_err *err)
{
	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (status != -1 && !cert_status_valid(status))
		return cf_err_set(err, CF_EINVAL, NULL, "bad status filter %d", status);
	return store->backend->cert_scan(store, NULL, status, include_deleted, cb, payload, err);
}

int
cf_store_cert_scan_policy(cf_store *store, const char *policy, int status,
			  cf_store_cert_facts_cb cb, void *payload, cf_err *err)
{
	if (store == NULL || policy == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (status != -1 && !cert_status_valid(status))
		return cf_err_set(err, CF_EINVAL, NULL, "bad status filter %d", status);
	return store->backend->cert_scan(store, policy, status, false, cb, payload, err);
}

int
cf_store_cert_transition(cf_store *store, const char *id, cf_cert_status to, const char *reason,
			 const cf_store_actor *actor, cf_err *err)
{
	cf_store_cert cert = { 0 };
	int rc;

	rc = check_writable(store, actor, err);
	if (rc != CF_OK)
		return rc;
	if (!cert_status_valid((int)to))
		return cf_err_set(err, CF_EINVAL, NULL, "bad target status %d", (int)to);
	/* Resolve a prefix to the full id first; the backend works on full ids. */
	rc = cf_store_cert_get(store, &cert, id, err);
	if (rc != CF_OK)
		return rc;
	if (to != CF_CERT_REVOKED)
		reason = NULL;
	else if (reason == NULL || reason[0] == '\0')
		reason = "unspecified";
	rc = store->backend->cert_transition(store, cert.id, to, reason, actor, err);
	cf_store_cert_clear(&cert);
	return rc;
}

int
cf_store_cert_delete(cf_store *store, const char *id, const cf_store_actor *actor, cf_err *err)
{
	cf_store_cert cert = { 0 };
	int rc;

	rc = check_writable(store, actor, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_store_cert_get(store, &cert, id, err);
	if (rc != CF_OK)
		return rc;
	rc = store->backend->cert_delete(store, cert.id, actor, err);
	cf_store_cert_clear(&cert);
	return rc;
}

int
cf_store_cert_changes(cf_store *store, int64_t after_seq, int64_t limit, cf_store_cert_cb cb,
		      void *payload, cf_err *err)
{
	if (store == NULL || cb == NULL || after_seq < 0 || limit < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "bad argument");
	return store->backend->cert_changes(store, after_seq, limit, cb, payload, err);
}

/* ---- policies ------------------------------------------------------------ */

int
cf_store_policy_insert(cf_store *store, const char *name, const char *document,
		       const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_name("policy", name, err);
	if (rc == CF_OK)
		rc = cf_store_policy_validate(document, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->policy_insert(store, name, document, actor, err);
}

int
cf_store_policy_get(cf_store *store, cf_store_policy *out, const char *name, cf_err *err)
{
	if (store == NULL || out == NULL || name == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->policy_get(store, out, name, err);
}

int
cf_store_policy_list(cf_store *store, const char *cert_id, cf_store_policy_cb cb, void *payload,
		     cf_err *err)
{
	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->policy_list(store, cert_id, cb, payload, err);
}

static int
check_attach(cf_store *store, const char *name, const char *cert_id,
	     const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_name("policy", name, err);
	if (rc == CF_OK && cert_id == NULL)
		rc = cf_err_set(err, CF_EINVAL, NULL, "cert_id is NULL");
	return rc;
}

int
cf_store_policy_attach(cf_store *store, const char *name, const char *cert_id,
		       const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_attach(store, name, cert_id, actor, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->policy_attach(store, name, cert_id, actor, err);
}

int
cf_store_policy_detach(cf_store *store, const char *name, const char *cert_id,
		       const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_attach(store, name, cert_id, actor, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->policy_detach(store, name, cert_id, actor, err);
}

/* ---- rotations ----------------------------------------------------------- */

int
cf_store_rotation_id_random(char out[33], cf_err *err)
{
	unsigned char raw[16];

	out[0] = '\0';
	if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "RAND_bytes");
	cf_hex_encode(out, raw, sizeof(raw));
	return CF_OK;
}

static bool
is_hex_id(const char *s, size_t len)
{
	return s != NULL && strnlen(s, len + 1) == len && is_hex_lower(s, len);
}

/* NULL, or a non-empty string of at most max bytes. */
static bool
opt_text_ok(const char *s, size_t max)
{
	size_t len;

	if (s == NULL)
		return true;
	len = strnlen(s, max + 1);
	return len > 0 && len <= max;
}

/* The fields every rotation record must have right, for insert and update. */
static int
check_rotation_common(const cf_store_rotation *rot, cf_err *err)
{
	if (rot == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "rotation is NULL");
	if (!is_hex_id(rot->id, 32))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "rotation id must be 32 lowercase hex digits");
	if (!rotation_state_valid((int)rot->state))
		return cf_err_set(err, CF_EINVAL, NULL, "bad rotation state %d", (int)rot->state);
	if (rot->next_send_at < 0 || rot->sends < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "next_send_at and sends must be >= 0");
	return CF_OK;
}

static int
check_rotation_new(const cf_store_rotation *rot, cf_err *err)
{
	int rc;

	rc = check_rotation_common(rot, err);
	if (rc != CF_OK)
		return rc;
	if (rot->state != CF_ROTATION_REQUESTED)
		return cf_err_set(err, CF_EINVAL, NULL, "a new rotation is REQUESTED, not %s",
				  cf_rotation_state_name(rot->state));
	if (check_name("thing", rot->thing, err) != CF_OK)
		return CF_EINVAL;
	if (!is_hex_id(rot->old_cert, 64))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "old_cert must be 64 lowercase hex digits");
	if (!opt_text_ok(rot->key_type, 32))
		return cf_err_set(err, CF_EINVAL, NULL, "key_type must be NULL or 1-32 bytes");
	if (rot->deadline <= 0)
		return cf_err_set(err, CF_EINVAL, NULL, "a rotation needs a deadline");
	return CF_OK;
}

static int
check_rotation_change(const cf_store_rotation *rot, cf_rotation_state expect, cf_err *err)
{
	int rc;

	rc = check_rotation_common(rot, err);
	if (rc != CF_OK)
		return rc;
	if (!rotation_state_valid((int)expect))
		return cf_err_set(err, CF_EINVAL, NULL, "bad expected state %d", (int)expect);
	if (rot->new_cert != NULL && !is_hex_id(rot->new_cert, 64))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "new_cert must be 64 lowercase hex digits");
	if ((rot->state == CF_ROTATION_ISSUED || rot->state == CF_ROTATION_COMPLETED) &&
	    rot->new_cert == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "a %s rotation needs new_cert",
				  cf_rotation_state_name(rot->state));
	if (rot->csr_spki != NULL && !is_hex_id(rot->csr_spki, 64))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "csr_spki must be 64 lowercase hex digits");
	if (!opt_text_ok(rot->error, 1024))
		return cf_err_set(err, CF_EINVAL, NULL, "error must be NULL or 1-1024 bytes");
	if (rot->delete_old_at < 0 ||
	    (rot->delete_old_at != 0 && rot->state != CF_ROTATION_COMPLETED))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "only a COMPLETED rotation may have delete_old_at");
	return CF_OK;
}

int
cf_store_rotation_insert(cf_store *store, const cf_store_rotation *rot,
			 const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_rotation_new(rot, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->rotation_insert(store, rot, actor, err);
}

int
cf_store_rotation_get(cf_store *store, cf_store_rotation *out, const char *id, cf_err *err)
{
	size_t len;

	if (store == NULL || out == NULL || id == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	len = strnlen(id, 33);
	if (len < 8 || len > 32 || !is_hex_lower(id, len))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "a rotation id is 8 to 32 lowercase hex digits");
	return store->backend->rotation_get(store, out, id, false, err);
}

int
cf_store_rotation_get_open(cf_store *store, cf_store_rotation *out, const char *thing,
			   cf_err *err)
{
	if (store == NULL || out == NULL || thing == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	return store->backend->rotation_get(store, out, thing, true, err);
}

int
cf_store_rotation_update(cf_store *store, const cf_store_rotation *rot,
			 cf_rotation_state expect, const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_rotation_change(rot, expect, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->rotation_update(store, rot, expect, actor, err);
}

int
cf_store_rotation_list(cf_store *store, const cf_store_rotation_filter *filter,
		       cf_store_rotation_cb cb, void *payload, cf_err *err)
{
	static const cf_store_rotation_filter any = CF_STORE_ROTATION_FILTER_INIT;

	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (filter == NULL)
		filter = &any;
	if (filter->state != -1 && !rotation_state_valid(filter->state))
		return cf_err_set(err, CF_EINVAL, NULL, "bad state filter %d", filter->state);
	if (filter->limit < 0 || filter->due_by < 0 || filter->expired_by < 0 ||
	    filter->delete_due_by < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative limit or time");
	return store->backend->rotation_list(store, filter, cb, payload, err);
}

int
cf_store_rotation_event(cf_store *store, const char *id, const char *action, const char *code,
			const char *cert_id, const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc != CF_OK)
		return rc;
	if (!is_hex_id(id, 32))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "rotation id must be 32 lowercase hex digits");
	if (action == NULL || (strcmp(action, "rotation.csr_rejected") != 0 &&
			       strcmp(action, "rotation.crt_resent") != 0))
		return cf_err_set(err, CF_EINVAL, NULL, "unknown rotation event '%.40s'",
				  action != NULL ? action : "");
	if (!opt_text_ok(code, 64) || (cert_id != NULL && !is_hex_id(cert_id, 64)))
		return cf_err_set(err, CF_EINVAL, NULL, "bad code or certificate id");
	return store->backend->rotation_event(store, id, action, code, cert_id, actor, err);
}

/* ---- outbox -------------------------------------------------------------- */

/* The writes that carry no actor (the outbox): handle checks only. */
static int
check_writable_handle(cf_store *store, cf_err *err)
{
	if (store == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "store is NULL");
	if (store->readonly)
		return cf_err_set(err, CF_ESTATE, NULL, "store opened read-only");
	return CF_OK;
}

int
cf_store_set_durable(cf_store *store, bool full, cf_err *err)
{
	int rc = check_writable_handle(store, err);

	if (rc != CF_OK)
		return rc;
	return store->backend->set_durable(store, full, err);
}

int
cf_store_set_busy_timeout(cf_store *store, int ms, cf_err *err)
{
	if (store == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "store is NULL");
	if (ms < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative busy timeout %d", ms);
	return store->backend->set_busy_timeout(store, ms, err);
}

int
cf_store_set_autocheckpoint(cf_store *store, int pages, cf_err *err)
{
	int rc = check_writable_handle(store, err);

	if (rc != CF_OK)
		return rc;
	if (pages < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative checkpoint size %d", pages);
	return store->backend->set_autocheckpoint(store, pages, err);
}

int
cf_store_checkpoint(cf_store *store, cf_err *err)
{
	int rc = check_writable_handle(store, err);

	if (rc != CF_OK)
		return rc;
	return store->backend->checkpoint(store, err);
}

int
cf_store_outbox_add(cf_store *store, const char *topic, const char *payload, int64_t *id_out,
		    cf_err *err)
{
	int64_t id = 0;
	int rc;

	if (id_out != NULL)
		*id_out = 0;
	rc = check_writable_handle(store, err);
	if (rc != CF_OK)
		return rc;
	if (topic == NULL || topic[0] == '\0' || payload == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "a message needs a topic and a payload");
	rc = store->backend->outbox_add(store, topic, payload, &id, err);
	if (rc == CF_OK && id_out != NULL)
		*id_out = id;
	return rc;
}

int
cf_store_outbox_list(cf_store *store, int64_t limit, cf_store_outbox_cb cb, void *payload,
		     cf_err *err)
{
	if (store == NULL || cb == NULL || limit < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "bad argument");
	return store->backend->outbox_list(store, limit, cb, payload, err);
}

int
cf_store_outbox_pending(cf_store *store, const char *topic, bool *out, cf_err *err)
{
	if (store == NULL || topic == NULL || out == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "bad argument");
	return store->backend->outbox_pending(store, topic, out, err);
}

int
cf_store_outbox_delete(cf_store *store, int64_t id, cf_err *err)
{
	int rc;

	rc = check_writable_handle(store, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->outbox_delete(store, id, err);
}

/* ---- connections --------------------------------------------------------- */

/* 1 to max bytes of [A-Za-z0-9_.:-]: a token the broker chose, safe to print anywhere. */
static bool
is_token(const char *s, size_t max)
{
	size_t len, i;

	len = s == NULL ? 0 : strnlen(s, max + 1);
	if (len == 0 || len > max)
		return false;
	/* Not isalnum(): in another locale it takes bytes above 0x7f. */
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("_.:-", s[i]) != NULL))
			return false;
	}
	return true;
}

/* Text a device chose: any bytes, but present and at most CF_STORE_CONNECTION_TEXT_MAX. */
static bool
device_text_ok(const char *s)
{
	return s != NULL &&
	       strnlen(s, CF_STORE_CONNECTION_TEXT_MAX + 1) <= CF_STORE_CONNECTION_TEXT_MAX;
}

static int
check_connection(const cf_store_connection *c, size_t i, cf_err *err)
{
	if (c->at <= 0)
		return cf_err_set(err, CF_EINVAL, NULL, "connection record %zu: at must be > 0", i);
	if (c->cert_id != NULL && !is_hex_id(c->cert_id, 64))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "connection record %zu: cert_id must be NULL or 64 lowercase "
				  "hex digits",
				  i);
	if (!device_text_ok(c->client_id))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "connection record %zu: client_id must be set and at most %d "
				  "bytes",
				  i, CF_STORE_CONNECTION_TEXT_MAX);
	if (!device_text_ok(c->address))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "connection record %zu: address must be set and at most %d "
				  "bytes",
				  i, CF_STORE_CONNECTION_TEXT_MAX);
	if (!is_token(c->outcome, CF_STORE_CONNECTION_OUTCOME_MAX))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "connection record %zu: outcome must be 1 to %d of "
				  "[A-Za-z0-9_.:-]",
				  i, CF_STORE_CONNECTION_OUTCOME_MAX);
	return CF_OK;
}

int
cf_store_connections_record(cf_store *store, const cf_store_connection *recs, size_t n,
			    int64_t keep, cf_err *err)
{
	size_t i;
	int rc;

	rc = check_writable_handle(store, err);
	if (rc != CF_OK)
		return rc;
	if ((recs == NULL && n > 0) || keep < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "no records, or a negative keep");
	/* All checked before the transaction: a bad record means nothing is written. */
	for (i = 0; i < n; i++) {
		rc = check_connection(&recs[i], i, err);
		if (rc != CF_OK)
			return rc;
	}
	return store->backend->connections_record(store, recs, n, keep, err);
}

int
cf_store_connection_list(cf_store *store, const cf_store_connection_filter *filter,
			 cf_store_connection_cb cb, void *payload, cf_err *err)
{
	static const cf_store_connection_filter any = CF_STORE_CONNECTION_FILTER_INIT;
	cf_store_connection_filter f;
	char cert[65];
	int rc;

	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	f = filter != NULL ? *filter : any;
	if (f.since < 0 || f.limit < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative since or limit");
	if (f.cert_id != NULL) {
		rc = normalize_cert_id(cert, f.cert_id, err);
		if (rc != CF_OK)
			return rc;
		f.cert_id = cert;
	}
	return store->backend->connection_list(store, &f, cb, payload, err);
}

/* ---- events -------------------------------------------------------------- */

int
cf_store_events_list(cf_store *store, const cf_store_event_filter *filter, cf_store_event_cb cb,
		     void *payload, cf_err *err)
{
	static const cf_store_event_filter all = CF_STORE_EVENT_FILTER_INIT;

	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (filter == NULL)
		filter = &all;
	if (filter->limit < 0 || filter->after_seq < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative limit or after_seq");
	return store->backend->events_list(store, filter, cb, payload, err);
}

int
cf_store_events_head(cf_store *store, int64_t *seq, char hash[65], cf_err *err)
{
	if (store == NULL || seq == NULL || hash == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	*seq = 0;
	hash[0] = '\0';
	return store->backend->events_head(store, seq, hash, err);
}

int
cf_store_events_verify(cf_store *store, int64_t *count, int64_t *bad_seq,
		       const cf_store_event_anchor *anchor, cf_err *err)
{
	if (store == NULL || count == NULL || bad_seq == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	*count = 0;
	*bad_seq = 0;
	if (anchor != NULL && (anchor->seq < 0 || strnlen(anchor->hash, 65) != 64 ||
			       !is_hex_lower(anchor->hash, 64)))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "an anchor is a seq >= 0 and 64 lowercase hex digits");
	return store->backend->events_verify(store, anchor, count, bad_seq, err);
}

int
cf_store_events_verify_chain(cf_store *store, const cf_store_event_anchor *anchor, int64_t limit,
			     cf_store_event_anchor *last, int64_t *count, int64_t *bad_seq,
			     cf_err *err)
{
	cf_store_event_anchor local, from;

	if (store == NULL || count == NULL || bad_seq == NULL || limit < 0 || limit == INT64_MAX)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument or limit out of range");
	*count = 0;
	*bad_seq = 0;
	/* last may be anchor: the sweep hands its stopping place back in the same variable. */
	if (anchor != NULL) {
		from = *anchor;
		anchor = &from;
	}
	if (last == NULL)
		last = &local;
	memset(last, 0, sizeof(*last));
	if (anchor != NULL && (anchor->seq < 0 || strnlen(anchor->hash, 65) != 64 ||
			       !is_hex_lower(anchor->hash, 64)))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "an anchor is a seq >= 0 and 64 lowercase hex digits");
	return store->backend->events_verify_chain(store, anchor, limit, last, count, bad_seq, err);
}

/* ---- audits -------------------------------------------------------------- */

static const char *const audit_trigger_names[] = {
	[CF_AUDIT_SCHEDULED] = "SCHEDULED",
	[CF_AUDIT_ON_DEMAND] = "ON_DEMAND",
};

static const char *const audit_status_names[] = {
	[CF_AUDIT_IN_PROGRESS] = "IN_PROGRESS",
	[CF_AUDIT_COMPLETED] = "COMPLETED",
	[CF_AUDIT_FAILED] = "FAILED",
};

static const char *const severity_names[] = {
	[CF_SEVERITY_CRITICAL] = "CRITICAL",
	[CF_SEVERITY_HIGH] = "HIGH",
	[CF_SEVERITY_MEDIUM] = "MEDIUM",
	[CF_SEVERITY_LOW] = "LOW",
};

static const char *const finding_state_names[] = {
	[CF_FINDING_NEW] = "NEW",
	[CF_FINDING_OPEN] = "OPEN",
	[CF_FINDING_RESOLVED] = "RESOLVED",
};

static const char *
name_in(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n)
		return "UNKNOWN";
	return names[v];
}

/* The index of name in names, -1 when absent; caseless for user input, exact for stored text. */
static int
index_in(const char *const *names, size_t n, const char *name, bool caseless)
{
	size_t i;

	for (i = 0; name != NULL && i < n; i++) {
		if ((caseless ? strcasecmp(name, names[i]) : strcmp(name, names[i])) == 0)
			return (int)i;
	}
	return -1;
}

const char *
cf_audit_trigger_name(cf_audit_trigger trigger)
{
	return name_in(audit_trigger_names, CF_ARRAY_LEN(audit_trigger_names), (int)trigger);
}

const char *
cf_audit_status_name(cf_audit_status status)
{
	return name_in(audit_status_names, CF_ARRAY_LEN(audit_status_names), (int)status);
}

const char *
cf_audit_severity_name(cf_audit_severity severity)
{
	return name_in(severity_names, CF_ARRAY_LEN(severity_names), (int)severity);
}

const char *
cf_finding_state_name(cf_finding_state state)
{
	return name_in(finding_state_names, CF_ARRAY_LEN(finding_state_names), (int)state);
}

int
cf_audit_severity_parse(cf_audit_severity *out, const char *name)
{
	int i = index_in(severity_names, CF_ARRAY_LEN(severity_names), name, true);

	if (i < 0)
		return CF_EINVAL;
	*out = (cf_audit_severity)i;
	return CF_OK;
}

int
cf_finding_state_parse(cf_finding_state *out, const char *name)
{
	int i = index_in(finding_state_names, CF_ARRAY_LEN(finding_state_names), name, true);

	if (i < 0)
		return CF_EINVAL;
	*out = (cf_finding_state)i;
	return CF_OK;
}

int
cf_store__audit_status_parse(cf_audit_status *out, const char *name)
{
	int i = index_in(audit_status_names, CF_ARRAY_LEN(audit_status_names), name, false);

	if (i < 0)
		return CF_EINVAL;
	*out = (cf_audit_status)i;
	return CF_OK;
}

int
cf_store__audit_trigger_parse(cf_audit_trigger *out, const char *name)
{
	int i = index_in(audit_trigger_names, CF_ARRAY_LEN(audit_trigger_names), name, false);

	if (i < 0)
		return CF_EINVAL;
	*out = (cf_audit_trigger)i;
	return CF_OK;
}

void
cf_store_audit_run_clear(cf_store_audit_run *run)
{
	if (run == NULL)
		return;
	free(run->checks);
	free(run->summary);
	memset(run, 0, sizeof(*run));
}

int
cf_store__finding_id(cf_store *store, char out[33], const char *check, const char *resource,
		     cf_err *err)
{
	EVP_MD_CTX *ctx = store->md_ctx;
	unsigned char md[32];
	unsigned int mdlen = 0;

	out[0] = '\0';
	if (EVP_DigestInit_ex(ctx, store->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, check, strlen(check)) != 1 ||
	    EVP_DigestUpdate(ctx, "\n", 1) != 1 ||
	    EVP_DigestUpdate(ctx, resource, strlen(resource)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md))
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "finding id");
	cf_hex_encode(out, md, 16);
	return CF_OK;
}

/* 1 to CF_STORE_AUDIT_TOKEN_MAX of [A-Z0-9_], starting with a letter: a check name or reason. */
static bool
is_upper_token(const char *s)
{
	size_t len, i;

	len = s == NULL ? 0 : strnlen(s, CF_STORE_AUDIT_TOKEN_MAX + 1);
	if (len == 0 || len > CF_STORE_AUDIT_TOKEN_MAX || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	}
	return true;
}

/* 1 to max bytes, no control characters (the text is printed to terminals). */
static bool
is_printable_text(const char *s, size_t max)
{
	size_t len, i;

	len = s == NULL ? 0 : strnlen(s, max + 1);
	if (len == 0 || len > max)
		return false;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	}
	return true;
}

/*
 * "cert:<64 hex>", "ca:<name>", "thing:<name>", "policy:<name>", "client:<text>",
 * "file:<path>" (a file the audit reads, such as a CRL), and for findings
 * about the whole deployment "registry:<name>", "config:<name>".
 */
static bool
audit_resource_valid(const char *s)
{
	if (s == NULL || strnlen(s, CF_STORE_AUDIT_RESOURCE_MAX + 1) > CF_STORE_AUDIT_RESOURCE_MAX)
		return false;
	if (strncmp(s, "cert:", 5) == 0)
		return is_hex_id(s + 5, 64);
	if (strncmp(s, "ca:", 3) == 0)
		return cf_name_valid(s + 3);
	if (strncmp(s, "thing:", 6) == 0)
		return cf_name_valid(s + 6);
	if (strncmp(s, "policy:", 7) == 0)
		return cf_name_valid(s + 7);
	if (strncmp(s, "client:", 7) == 0)
		return is_printable_text(s + 7, CF_STORE_CONNECTION_TEXT_MAX);
	if (strncmp(s, "file:", 5) == 0)
		return is_printable_text(s + 5, CF_STORE_AUDIT_RESOURCE_MAX);
	if (strncmp(s, "registry:", 9) == 0)
		return cf_name_valid(s + 9);
	if (strncmp(s, "config:", 7) == 0)
		return cf_name_valid(s + 7);
	return false;
}

static int
check_audit_pair(const char *check, const char *resource, cf_err *err)
{
	if (!is_upper_token(check))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "a check name is 1 to %d of [A-Z0-9_], starting with a letter",
				  CF_STORE_AUDIT_TOKEN_MAX);
	if (!audit_resource_valid(resource))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "a resource is cert:<id>, ca:<name>, thing:<name>, "
				  "policy:<name>, client:<client id>, file:<path>, "
				  "registry:<name> or config:<name>");
	return CF_OK;
}

/* A JSON object as text of at most max bytes; NULL is fine (it means "{}"). */
static int
check_json_object_max(const char *what, const char *text, size_t max, cf_err *err)
{
	if (text != NULL && strnlen(text, max + 1) > max)
		return cf_err_set(err, CF_EINVAL, NULL, "%s is longer than %zu bytes", what, max);
	return check_json_object(what, text, err);
}

/* The check list as a JSON array, after checking it. *out is freed with free(). */
static int
checks_json(char **out, const char *const *checks, size_t n, cf_err *err)
{
	json_t *list = NULL;
	size_t i, j;
	int rc = CF_OK;

	*out = NULL;
	if (checks == NULL || n == 0 || n > CF_STORE_AUDIT_CHECKS_MAX)
		return cf_err_set(err, CF_EINVAL, NULL, "a run runs 1 to %d checks",
				  CF_STORE_AUDIT_CHECKS_MAX);
	list = json_array();
	if (list == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "check list");
	for (i = 0; rc == CF_OK && i < n; i++) {
		if (!is_upper_token(checks[i]))
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"check %zu: a check name is 1 to %d of [A-Z0-9_], "
					"starting with a letter",
					i, CF_STORE_AUDIT_TOKEN_MAX);
		for (j = 0; rc == CF_OK && j < i; j++) {
			if (strcmp(checks[i], checks[j]) == 0)
				rc = cf_err_set(err, CF_EINVAL, NULL, "check %s given twice",
						checks[i]);
		}
		if (rc == CF_OK && json_array_append_new(list, json_string(checks[i])) != 0)
			rc = cf_err_set(err, CF_ENOMEM, NULL, "check list");
	}
	if (rc == CF_OK) {
		*out = json_dumps(list, JSON_COMPACT);
		if (*out == NULL)
			rc = cf_err_set(err, CF_ENOMEM, NULL, "check list");
	}
	json_decref(list);
	return rc;
}

int
cf_store_audit_run_begin(int64_t *id_out, cf_store *store, cf_audit_trigger trigger,
			 const char *const *checks, size_t n, cf_err *err)
{
	char *list = NULL;
	int rc;

	if (id_out == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	*id_out = 0;
	rc = check_writable_handle(store, err);
	if (rc != CF_OK)
		return rc;
	if (trigger != CF_AUDIT_SCHEDULED && trigger != CF_AUDIT_ON_DEMAND)
		return cf_err_set(err, CF_EINVAL, NULL, "unknown audit trigger %d", (int)trigger);
	rc = checks_json(&list, checks, n, err);
	if (rc == CF_OK)
		rc = store->backend->audit_run_begin(id_out, store, trigger, list, err);
	free(list);
	return rc;
}

static int
check_finding(const cf_store_finding *f, size_t i, cf_err *err)
{
	cf_err sub = CF_ERR_INIT; /* err->msg cannot be formatted into itself */
	int rc;

	rc = check_audit_pair(f->check, f->resource, &sub);
	if (rc == CF_OK && (unsigned int)f->severity >= CF_ARRAY_LEN(severity_names))
		rc = cf_err_set(&sub, CF_EINVAL, NULL, "unknown severity %d", (int)f->severity);
	if (rc == CF_OK && !is_upper_token(f->reason))
		rc = cf_err_set(&sub, CF_EINVAL, NULL,
				"a reason is 1 to %d of [A-Z0-9_], starting with a letter",
				CF_STORE_AUDIT_TOKEN_MAX);
	if (rc == CF_OK)
		rc = check_json_object_max("detail", f->detail, CF_STORE_AUDIT_DETAIL_MAX, &sub);
	if (rc != CF_OK)
		return cf_err_set(err, rc, NULL, "finding %zu: %s", i, sub.msg);
	return CF_OK;
}

int
cf_store_audit_findings_add(cf_store *store, int64_t run_id, const cf_store_finding *items,
			    size_t n, cf_err *err)
{
	size_t i;
	int rc;

	rc = check_writable_handle(store, err);
	if (rc != CF_OK)
		return rc;
	if (run_id <= 0 || (items == NULL && n > 0))
		return cf_err_set(err, CF_EINVAL, NULL, "bad run id or no items");
	/* All checked before the transaction: a bad item means nothing is written. */
	for (i = 0; i < n; i++) {
		rc = check_finding(&items[i], i, err);
		if (rc != CF_OK)
			return rc;
	}
	return store->backend->audit_findings_add(store, run_id, items, n, err);
}

int
cf_store_audit_run_finish(cf_store *store, int64_t run_id, cf_audit_status status,
			  const char *summary_json, cf_err *err)
{
	int rc;

	rc = check_writable_handle(store, err);
	if (rc != CF_OK)
		return rc;
	if (run_id <= 0)
		return cf_err_set(err, CF_EINVAL, NULL, "bad run id");
	if (status != CF_AUDIT_COMPLETED && status != CF_AUDIT_FAILED)
		return cf_err_set(err, CF_EINVAL, NULL, "a run finishes COMPLETED or FAILED");
	rc = check_json_object_max("summary", summary_json, CF_STORE_AUDIT_DETAIL_MAX, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->audit_run_finish(store, run_id, status,
						summary_json != NULL ? summary_json : "{}", err);
}

int
cf_store_audit_run_get(cf_store *store, cf_store_audit_run *out, int64_t id, cf_err *err)
{
	if (store == NULL || out == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	return store->backend->audit_run_get(store, out, id, err);
}

int
cf_store_audit_run_list(cf_store *store, int64_t limit, cf_store_audit_run_cb cb, void *payload,
			cf_err *err)
{
	if (store == NULL || cb == NULL || limit < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument or negative limit");
	return store->backend->audit_run_list(store, limit, cb, payload, err);
}

int
cf_store_audit_finding_list(cf_store *store, const cf_store_finding_filter *filter,
			    cf_store_finding_cb cb, void *payload, cf_err *err)
{
	static const cf_store_finding_filter any = CF_STORE_FINDING_FILTER_INIT;
	const cf_store_finding_filter *f = filter != NULL ? filter : &any;

	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (f->run_id < 0 || f->limit < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "negative run id or limit");
	if (f->check != NULL && !is_upper_token(f->check))
		return cf_err_set(err, CF_EINVAL, NULL, "bad check name");
	if (f->severity < -1 || f->severity >= (int)CF_ARRAY_LEN(severity_names))
		return cf_err_set(err, CF_EINVAL, NULL, "unknown severity %d", f->severity);
	if (f->state < -1 || f->state >= (int)CF_ARRAY_LEN(finding_state_names))
		return cf_err_set(err, CF_EINVAL, NULL, "unknown finding state %d", f->state);
	return store->backend->audit_finding_list(store, f, cb, payload, err);
}

int
cf_store_audit_suppress(cf_store *store, const char *check, const char *resource,
			int64_t expires_at, const char *reason, const cf_store_actor *actor,
			cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_audit_pair(check, resource, err);
	if (rc != CF_OK)
		return rc;
	if (!is_printable_text(reason, CF_STORE_AUDIT_REASON_MAX))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "a suppression needs a reason: 1 to %d bytes, no control "
				  "characters",
				  CF_STORE_AUDIT_REASON_MAX);
	if (expires_at <= cf_store__now(store))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "the suppression's expiry is not in the future");
	return store->backend->audit_suppress(store, check, resource, expires_at, reason, actor,
					      err);
}

int
cf_store_audit_notified(cf_store *store, const cf_store_finding *finding,
			const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK && (finding == NULL || finding->finding_id == NULL ||
			    strnlen(finding->finding_id, 33) != 32 ||
			    !is_hex_lower(finding->finding_id, 32) || finding->run_id <= 0))
		rc = cf_err_set(err, CF_EINVAL, NULL, "a finding with its id and run");
	if (rc == CF_OK)
		rc = check_audit_pair(finding->check, finding->resource, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->audit_notified(store, finding, actor, err);
}

int
cf_store_audit_unsuppress(cf_store *store, const char *check, const char *resource,
			  const cf_store_actor *actor, cf_err *err)
{
	int rc;

	rc = check_writable(store, actor, err);
	if (rc == CF_OK)
		rc = check_audit_pair(check, resource, err);
	if (rc != CF_OK)
		return rc;
	return store->backend->audit_unsuppress(store, check, resource, actor, err);
}

int
cf_store_audit_suppression_list(cf_store *store, cf_store_audit_suppression_cb cb, void *payload,
				cf_err *err)
{
	if (store == NULL || cb == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	return store->backend->audit_suppression_list(store, cb, payload, err);
}
