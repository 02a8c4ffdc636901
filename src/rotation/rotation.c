/*
 * The rotation engine: protocol.md's rotation, one transaction per step.
 *
 * How it works
 * ------------
 * A rotation lives in the store (cf_store_rotation) and moves through:
 *
 *   from               input      to          and, in the same transaction
 *   -                  start      REQUESTED   csr_req queued
 *   REQUESTED          csr_res    ISSUED      certificate issued ACTIVE, crt queued
 *   REQUESTED          csr_res    REQUESTED   refused: csr_rej (BAD_CSR, WEAK_KEY,
 *                                             KEY_REUSE, RATE_LIMITED, ...)
 *   REQUESTED          tick       REQUESTED   next_send_at passed: csr_req again
 *   ISSUED             csr_res    ISSUED      same key: the same crt again
 *   ISSUED             tick       ISSUED      next_send_at passed: the crt again (a
 *                                             device that promoted it acks again)
 *   ISSUED             crt_ack    COMPLETED   old certificate INACTIVE, and deleted
 *                                             at once (grace 0) or due at now + grace
 *   REQUESTED, ISSUED  crt_err    FAILED      an ISSUED (never confirmed)
 *   REQUESTED, ISSUED  deadline   TIMED_OUT   certificate goes INACTIVE
 *   REQUESTED, ISSUED  cancel     CANCELLED   (the same)
 *   COMPLETED          tick       COMPLETED   grace over: old certificate deleted
 *   (none open)        csr_res    -           csr_rej NO_ROTATION; acks are ignored
 *
 * Each row is one store transaction that writes the state change, the
 * certificate changes it implies and the outbox messages it causes
 * together: after a crash either all of it happened (and the binding
 * publishes what is left in the outbox) or none of it (and the device's
 * retry, or the next tick, does it again). The update is a compare-and-set
 * on the state read inside the same transaction, so two engines, or an
 * operator's cancel, never both win.
 *
 * Idempotence is what makes the retries safe:
 * - a csr_res for an ISSUED rotation with the key the certificate was
 *   issued for (csr_spki) re-sends that certificate; it never issues a
 *   second one;
 * - a crt_ack for a rotation already COMPLETED, or for none, does nothing;
 * - a refused CSR leaves the rotation REQUESTED, so the device may send a
 *   corrected one, at most csr_max csr_res per rotation (RATE_LIMITED).
 *
 * The csr_res counts are kept in memory, per rotation id (the store has no
 * field for them): a restart resets them, which lets a device at most
 * csr_max more attempts per restart.
 *
 * Events: the store writes rotation.opened and rotation.state with every
 * change of state, and the certificate events with every certificate
 * change. Steps that change no row get their own: rotation.csr_rejected
 * (with the code) and rotation.crt_resent. Both are bounded per rotation
 * by csr_max (a device going on past it gets one RATE_LIMITED event, then
 * only csr_rej). Not evented: csr_req re-sends (periodic, up to 288 a day
 * per offline device; the row's sends and next_send_at say how many and
 * when), and messages that match no open rotation (NO_ROTATION, stray
 * acks), which a device could send without end and which change nothing.
 */
#include "rotation/rotation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "pki/pki.h"

/* How far up a CA chain caChainPem goes, as a guard against a parent loop. */
#define CHAIN_MAX 8

struct csr_count {
	char id[33];
	unsigned int n;
};

struct cf_rotation_engine {
	cf_store *store;
	cf_authority *auth;
	char *prefix;
	char *key_type;
	char *actor;
	int64_t resend_interval;
	int64_t deadline;
	size_t max_payload;
	unsigned int csr_max;
	int64_t grace;
	bool rekey;
	cf_rotation_clock_fn clock;
	void *clock_payload;
	struct csr_count *counts; /* csr_res seen per open rotation */
	size_t ncounts, capcounts;
};

enum msg_kind { MSG_CSR_RES, MSG_CRT_ACK, MSG_CRT_ERR };

/* A device message, validated: what the handlers see. Strings borrowed from json. */
struct msg {
	enum msg_kind kind;
	char thing[CF_NAME_MAX + 1];
	const char *rotation_id; /* optional */
	const char *csr;         /* csr_res */
	size_t csr_len;
	const char *cert_id; /* crt_ack, crt_err: optional */
	const char *error;   /* crt_err: optional */
	json_t *json;
};

static const char *const key_types[] = { "EC-P256", "EC-P384", "ED25519", "RSA-2048", "RSA-3072" };

static int64_t
now(const cf_rotation_engine *eng)
{
	return eng->clock != NULL ? eng->clock(eng->clock_payload) : cf_time_now();
}

void
cf_rotation_config_init(cf_rotation_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->topic_prefix = "management/topic";
	cfg->resend_interval = 300;
	cfg->deadline = 86400;
	cfg->max_payload = 64 * 1024;
	cfg->rekey = true;
	cfg->key_type = NULL;
	cfg->csr_max = 5;
	cfg->grace = 0;
	cfg->actor = "certfleetd";
	cfg->clock = NULL;
	cfg->clock_payload = NULL;
}

static bool
key_type_known(const char *name)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(key_types); i++) {
		if (strcmp(name, key_types[i]) == 0)
			return true;
	}
	return false;
}

static int
check_config(const cf_rotation_config *cfg, cf_err *err)
{
	size_t plen;

	if (cfg->topic_prefix == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "topic_prefix is NULL");
	plen = strlen(cfg->topic_prefix);
	if (plen == 0 || plen > CF_ROTATION_PREFIX_MAX)
		return cf_err_set(err, CF_EINVAL, NULL, "topic_prefix must be 1 to %d bytes",
				  CF_ROTATION_PREFIX_MAX);
	if (strpbrk(cfg->topic_prefix, "+#") != NULL || cfg->topic_prefix[plen - 1] == '/')
		return cf_err_set(err, CF_EINVAL, NULL,
				  "topic_prefix '%s' has a wildcard or a trailing '/'",
				  cfg->topic_prefix);
	if (cfg->resend_interval <= 0 || cfg->deadline <= 0)
		return cf_err_set(err, CF_EINVAL, NULL, "resend_interval and deadline must be > 0");
	if (cfg->grace < 0)
		return cf_err_set(err, CF_EINVAL, NULL, "grace must be >= 0");
	if (cfg->max_payload == 0 || cfg->csr_max == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "max_payload and csr_max must be > 0");
	if (cfg->key_type != NULL && !key_type_known(cfg->key_type))
		return cf_err_set(err, CF_EINVAL, NULL, "unknown key type '%s'", cfg->key_type);
	if (cfg->actor == NULL || cfg->actor[0] == '\0')
		return cf_err_set(err, CF_EINVAL, NULL, "actor is empty");
	return CF_OK;
}

int
cf_rotation_engine_new(cf_rotation_engine **out, cf_store *store, cf_authority *auth,
		       const cf_rotation_config *cfg, cf_err *err)
{
	cf_rotation_engine *eng = NULL;
	int rc;

	*out = NULL;
	if (store == NULL || auth == NULL || cfg == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	rc = check_config(cfg, err);
	if (rc != CF_OK)
		return rc;
	eng = calloc(1, sizeof(*eng));
	if (eng == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "rotation engine");
	eng->store = store;
	eng->auth = auth;
	eng->prefix = cf_strdup(cfg->topic_prefix);
	eng->key_type = cf_strdup(cfg->key_type);
	eng->actor = cf_strdup(cfg->actor);
	eng->resend_interval = cfg->resend_interval;
	eng->deadline = cfg->deadline;
	eng->max_payload = cfg->max_payload;
	eng->csr_max = cfg->csr_max;
	eng->grace = cfg->grace;
	eng->rekey = cfg->rekey;
	eng->clock = cfg->clock;
	eng->clock_payload = cfg->clock_payload;
	if (eng->prefix == NULL || eng->actor == NULL ||
	    (cfg->key_type != NULL && eng->key_type == NULL)) {
		cf_rotation_engine_free(eng);
		return cf_err_set(err, CF_ENOMEM, NULL, "rotation engine");
	}
	*out = eng;
	return CF_OK;
}

void
cf_rotation_engine_free(cf_rotation_engine *eng)
{
	if (eng == NULL)
		return;
	free(eng->prefix);
	free(eng->key_type);
	free(eng->actor);
	free(eng->counts);
	free(eng);
}

/* ---- csr_res counts ----------------------------------------------- */

/* Count one more csr_res for rotation id; returns the new count (0 on ENOMEM). */
static unsigned int
count_csr(cf_rotation_engine *eng, const char *id)
{
	struct csr_count *grown;
	size_t i, cap;

	for (i = 0; i < eng->ncounts; i++) {
		if (strcmp(eng->counts[i].id, id) == 0)
			return ++eng->counts[i].n;
	}
	if (eng->ncounts == eng->capcounts) {
		cap = eng->capcounts == 0 ? 16 : eng->capcounts * 2;
		grown = realloc(eng->counts, cap * sizeof(*grown));
		if (grown == NULL)
			return 0;
		eng->counts = grown;
		eng->capcounts = cap;
	}
	snprintf(eng->counts[eng->ncounts].id, sizeof(eng->counts[0].id), "%s", id);
	eng->counts[eng->ncounts].n = 1;
	eng->ncounts++;
	return 1;
}

/* A rotation left the open states: its count is no longer needed. */
static void
count_forget(cf_rotation_engine *eng, const char *id)
{
	size_t i;

	for (i = 0; i < eng->ncounts; i++) {
		if (strcmp(eng->counts[i].id, id) == 0) {
			eng->counts[i] = eng->counts[--eng->ncounts];
			return;
		}
	}
}

/* ---- outbox messages ---------------------------------------------- */

static int
topic_make(char *buf, size_t size, const cf_rotation_engine *eng, const char *thing,
	   const char *suffix, cf_err *err)
{
	int n = snprintf(buf, size, "%s/%s/%s", eng->prefix, thing, suffix);

	if (n < 0 || (size_t)n >= size)
		return cf_err_set(err, CF_EINVAL, NULL, "topic for '%s' too long", thing);
	return CF_OK;
}

/* Serialize obj (a reference taken over) and queue it on P/{thing}/{suffix}. */
static int
outbox_put(cf_rotation_engine *eng, const char *thing, const char *suffix, json_t *obj, cf_err *err)
{
	char topic[CF_ROTATION_PREFIX_MAX + CF_NAME_MAX + 32];
	char *text = NULL;
	int rc;

	if (obj == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "building %s", suffix);
		goto out;
	}
	rc = topic_make(topic, sizeof(topic), eng, thing, suffix, err);
	if (rc != CF_OK)
		goto out;
	text = json_dumps(obj, JSON_COMPACT);
	if (text == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "serializing %s", suffix);
		goto out;
	}
	rc = cf_store_outbox_add(eng->store, topic, text, NULL, err);
out:
	free(text);
	json_decref(obj);
	return rc;
}

/* Set key to a new string value; false on ENOMEM. */
static bool
set_str(json_t *obj, const char *key, const char *value)
{
	return json_object_set_new(obj, key, json_string(value)) == 0;
}

static int
send_csr_req(cf_rotation_engine *eng, const cf_store_rotation *rot, cf_err *err)
{
	json_t *obj = json_object();

	if (obj != NULL && (!set_str(obj, "rotationId", rot->id) ||
			    json_object_set_new(obj, "rekey", json_boolean(rot->rekey)) != 0 ||
			    (rot->key_type != NULL && !set_str(obj, "keyType", rot->key_type)))) {
		json_decref(obj);
		obj = NULL;
	}
	return outbox_put(eng, rot->thing, "csr_req", obj, err);
}

/* csr_rej; rotation_id may be NULL (not known). message is sent to the device: keep it safe. */
static int
send_csr_rej(cf_rotation_engine *eng, const char *thing, const char *code, const char *message,
	     const char *rotation_id, cf_err *err)
{
	json_t *obj = json_object();

	if (obj != NULL && (!set_str(obj, "code", code) || !set_str(obj, "message", message) ||
			    (rotation_id != NULL && !set_str(obj, "rotationId", rotation_id)))) {
		json_decref(obj);
		obj = NULL;
	}
	return outbox_put(eng, thing, "csr_rej", obj, err);
}

/* The issuing CA's PEM, then its parents' up to the root, into a new string. */
static int
chain_pem(char **out, cf_store *store, const char *ca, cf_err *err)
{
	cf_store_ca rec;
	char *chain = NULL, *grown, *name = NULL;
	size_t len = 0, add;
	int rc = CF_OK, depth;

	*out = NULL;
	memset(&rec, 0, sizeof(rec));
	name = cf_strdup(ca);
	if (name == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "CA chain");
	for (depth = 0; name != NULL && depth < CHAIN_MAX; depth++) {
		rc = cf_store_ca_get(store, &rec, name, err);
		if (rc != CF_OK)
			goto out;
		if (rec.cert_pem == NULL) {
			rc = cf_err_set(err, CF_ESTATE, NULL, "CA '%s' has no certificate", name);
			goto out;
		}
		add = strlen(rec.cert_pem);
		grown = realloc(chain, len + add + 2);
		if (grown == NULL) {
			rc = cf_err_set(err, CF_ENOMEM, NULL, "CA chain");
			goto out;
		}
		chain = grown;
		memcpy(chain + len, rec.cert_pem, add);
		len += add;
		if (len > 0 && chain[len - 1] != '\n')
			chain[len++] = '\n';
		chain[len] = '\0';
		free(name);
		name = rec.parent; /* moved: rec no longer owns it */
		rec.parent = NULL;
		cf_store_ca_clear(&rec);
	}
	if (name != NULL) {
		rc = cf_err_set(err, CF_EINTEGRITY, NULL, "CA chain of '%s' longer than %d", ca,
				CHAIN_MAX);
		goto out;
	}
	*out = chain;
	chain = NULL;
out:
	cf_store_ca_clear(&rec);
	free(name);
	free(chain);
	return rc;
}

/* crt for the certificate cert_id of rotation rot. */
static int
send_crt(cf_rotation_engine *eng, const cf_store_rotation *rot, const char *cert_id, cf_err *err)
{
	cf_store_cert cert;
	char *chain = NULL;
	json_t *obj = NULL;
	int rc;

	memset(&cert, 0, sizeof(cert));
	rc = cf_store_cert_get(eng->store, &cert, cert_id, err);
	if (rc == CF_OK)
		rc = chain_pem(&chain, eng->store, cert.ca, err);
	if (rc != CF_OK)
		goto out;
	obj = json_object();
	if (obj != NULL &&
	    (!set_str(obj, "certificateId", cert.id) || !set_str(obj, "certificatePem", cert.pem) ||
	     !set_str(obj, "caChainPem", chain) || !set_str(obj, "rotationId", rot->id))) {
		json_decref(obj);
		obj = NULL;
	}
	rc = outbox_put(eng, rot->thing, "crt", obj, err);
out:
	free(chain);
	cf_store_cert_clear(&cert);
	return rc;
}

/* ---- small store helpers ------------------------------------------ */

/*
 * Move certificate id to INACTIVE unless it already is (or is REVOKED):
 * the rotation's outcome must not depend on what an operator did meanwhile.
 * who: the actor of the change that causes it.
 */
static int
deactivate(cf_rotation_engine *eng, const char *id, const char *who, const char *why, cf_err *err)
{
	cf_store_actor actor = { who, why };
	cf_store_cert cert;
	int rc;

	memset(&cert, 0, sizeof(cert));
	rc = cf_store_cert_get(eng->store, &cert, id, err);
	if (rc == CF_OK && cf_cert_transition_allowed(cert.status, CF_CERT_INACTIVE))
		rc = cf_store_cert_transition(eng->store, id, CF_CERT_INACTIVE, NULL, &actor, err);
	cf_store_cert_clear(&cert);
	return rc;
}

/*
 * Delete a replaced certificate from the active registry, unless it is
 * deleted already or was made ACTIVE again by an operator (the grace
 * period is what lets one do that). *deleted (may be NULL) says whether it was.
 */
static int
delete_old(cf_rotation_engine *eng, const char *id, const char *why, bool *deleted, cf_err *err)
{
	cf_store_actor actor = { eng->actor, why };
	cf_store_cert cert;
	bool due;
	int rc;

	memset(&cert, 0, sizeof(cert));
	rc = cf_store_cert_get(eng->store, &cert, id, err);
	due = rc == CF_OK && cert.deleted_at == 0 &&
	      (cert.status == CF_CERT_INACTIVE || cert.status == CF_CERT_REVOKED);
	if (due)
		rc = cf_store_cert_delete(eng->store, id, &actor, err);
	if (deleted != NULL)
		*deleted = due && rc == CF_OK;
	cf_store_cert_clear(&cert);
	return rc;
}

/*
 * Close an open rotation unsuccessfully (FAILED, TIMED_OUT, CANCELLED), inside the
 * caller's transaction: a certificate issued for it was never confirmed, so
 * it goes INACTIVE with the rotation.
 */
static int
rotation_abandon(cf_rotation_engine *eng, cf_store_rotation *rot, cf_rotation_state to,
		 char *error, const char *why, const cf_store_actor *actor, cf_err *err)
{
	cf_rotation_state from = rot->state;
	int rc = CF_OK;

	if (from == CF_ROTATION_ISSUED && rot->new_cert != NULL)
		rc = deactivate(eng, rot->new_cert, actor->who, why, err);
	if (rc != CF_OK)
		return rc;
	free(rot->error);
	rot->error = error; /* borrowed for the update only */
	rot->state = to;
	rc = cf_store_rotation_update(eng->store, rot, from, actor, err);
	rot->error = NULL;
	return rc;
}

static int
end_tx(cf_store *store, int rc, cf_err *err)
{
	if (rc == CF_OK)
		return cf_store_tx_commit(store, err);
	cf_store_tx_rollback(store);
	return rc;
}

/*
 * Close a tick step's transaction: commit when it did its work (*done),
 * roll back otherwise. A rotation that vanished or moved meanwhile
 * (CF_ENOTFOUND, CF_ESTATE) means someone else got there first: not an error.
 */
static int
step_end(cf_store *store, int rc, bool *done, cf_err *err)
{
	if (rc == CF_ENOTFOUND || rc == CF_ESTATE)
		rc = CF_OK;
	if (!*done) {
		cf_store_tx_rollback(store);
		return rc;
	}
	rc = end_tx(store, rc, err);
	*done = rc == CF_OK;
	return rc;
}

/* ---- start -------------------------------------------------------- */

static int
first_cert_cb(const cf_store_cert *cert, void *payload)
{
	char *id = payload;

	snprintf(id, CF_PKI_ID_LEN, "%s", cert->id);
	return 1; /* the first is the soonest to expire */
}

/* The certificate to replace: full id into id. */
static int
pick_old_cert(cf_rotation_engine *eng, char id[CF_PKI_ID_LEN], const char *thing,
	      const char *old_cert, cf_err *err)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	cf_store_cert cert;
	int rc;

	id[0] = '\0';
	if (old_cert == NULL) {
		filter.thing = thing;
		filter.status = CF_CERT_ACTIVE;
		filter.limit = 1;
		rc = cf_store_cert_list(eng->store, &filter, first_cert_cb, id, err);
		if (rc < 0)
			return rc;
		if (id[0] == '\0')
			return cf_err_set(err, CF_ENOTFOUND, NULL,
					  "thing '%s' has no ACTIVE certificate", thing);
		return CF_OK;
	}
	memset(&cert, 0, sizeof(cert));
	rc = cf_store_cert_get(eng->store, &cert, old_cert, err);
	if (rc != CF_OK)
		return rc;
	if (cert.thing == NULL || strcmp(cert.thing, thing) != 0)
		rc = cf_err_set(err, CF_EINVAL, NULL, "certificate %.16s is not bound to '%s'",
				cert.id, thing);
	else if (cert.status != CF_CERT_ACTIVE)
		rc = cf_err_set(err, CF_ESTATE, NULL, "certificate %.16s is %s, not ACTIVE",
				cert.id, cf_cert_status_name(cert.status));
	else
		snprintf(id, CF_PKI_ID_LEN, "%s", cert.id);
	cf_store_cert_clear(&cert);
	return rc;
}

int
cf_rotation_start(cf_rotation_engine *eng, char id_out[33], const char *thing, const char *old_cert,
		  const cf_store_actor *actor, cf_err *err)
{
	cf_store_rotation rot;
	char id[33], old_id[CF_PKI_ID_LEN], thing_buf[CF_NAME_MAX + 1], key_type[16];
	int64_t t;
	int rc;

	if (eng == NULL || id_out == NULL || thing == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	id_out[0] = '\0';
	if (!cf_name_valid(thing))
		return cf_err_set(err, CF_EINVAL, NULL, "invalid thing name");
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = pick_old_cert(eng, old_id, thing, old_cert, err);
	if (rc == CF_OK)
		rc = cf_store_rotation_id_random(id, err);
	if (rc != CF_OK)
		goto out;
	t = now(eng);
	snprintf(thing_buf, sizeof(thing_buf), "%s", thing);
	memset(&rot, 0, sizeof(rot));
	rot.id = id;
	rot.thing = thing_buf;
	rot.old_cert = old_id;
	rot.state = CF_ROTATION_REQUESTED;
	rot.rekey = eng->rekey;
	if (eng->key_type != NULL) {
		snprintf(key_type, sizeof(key_type), "%s", eng->key_type);
		rot.key_type = key_type;
	}
	rot.deadline = t + eng->deadline;
	rot.next_send_at = t + eng->resend_interval;
	rot.sends = 1;
	rc = cf_store_rotation_insert(eng->store, &rot, actor, err);
	if (rc == CF_OK)
		rc = send_csr_req(eng, &rot, err);
out:
	rc = end_tx(eng->store, rc, err);
	if (rc == CF_OK) {
		memcpy(id_out, id, sizeof(id));
		cf_log_debug("rotation=%s thing=%s cert=%.16s state=REQUESTED", id, thing, old_id);
	}
	return rc;
}

/* ---- cancel ------------------------------------------------------- */

/* "cancelled" or "cancelled: why", cut at a UTF-8 boundary to fit the record. */
static void
cancel_error(char out[CF_ROTATION_ERROR_MAX + 1], const char *why)
{
	char buf[CF_ROTATION_ERROR_MAX + 16];
	size_t n;

	if (why == NULL || why[0] == '\0')
		snprintf(buf, sizeof(buf), "cancelled");
	else
		snprintf(buf, sizeof(buf), "cancelled: %s", why);
	n = strlen(buf);
	if (n > CF_ROTATION_ERROR_MAX) {
		n = CF_ROTATION_ERROR_MAX;
		while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, buf, n);
	out[n] = '\0';
}

int
cf_rotation_cancel(cf_rotation_engine *eng, const char *id, const char *why,
		   const cf_store_actor *actor, cf_err *err)
{
	cf_store_rotation rot;
	char error[CF_ROTATION_ERROR_MAX + 1];
	bool done = false;
	int rc;

	if (eng == NULL || id == NULL || actor == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(&rot, 0, sizeof(rot));
	cancel_error(error, why);
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_store_rotation_get(eng->store, &rot, id, err);
	if (rc == CF_OK && !cf_rotation_state_open(rot.state))
		rc = cf_err_set(err, CF_ESTATE, NULL, "rotation %s is %s, no longer open", rot.id,
				cf_rotation_state_name(rot.state));
	if (rc == CF_OK)
		rc = rotation_abandon(eng, &rot, CF_ROTATION_CANCELLED, error,
				      "rotation cancelled: never confirmed", actor, err);
	done = rc == CF_OK;
	rc = end_tx(eng->store, rc, err);
	if (rc == CF_OK && done) {
		count_forget(eng, rot.id);
		cf_log_info("event=rotation_cancelled rotation=%s thing=%s", rot.id, rot.thing);
	}
	cf_store_rotation_clear(&rot);
	return rc;
}

/* ---- start many --------------------------------------------------- */

/* A thing to rotate: the certificate to replace, and its place in expiry order. */
struct cand {
	char thing[CF_NAME_MAX + 1];
	char cert[CF_PKI_ID_LEN];
	size_t order;
};

struct cands {
	struct cand *v;
	size_t n, cap;
	bool nomem;
};

static int
cand_cb(const cf_store_cert *cert, void *payload)
{
	struct cands *c = payload;
	struct cand *grown;
	size_t cap;

	if (cert->thing == NULL)
		return 0; /* not a device's */
	if (c->n == c->cap) {
		cap = c->cap == 0 ? 256 : c->cap * 2;
		grown = realloc(c->v, cap * sizeof(*grown));
		if (grown == NULL) {
			c->nomem = true;
			return 1;
		}
		c->v = grown;
		c->cap = cap;
	}
	snprintf(c->v[c->n].thing, sizeof(c->v[0].thing), "%s", cert->thing);
	snprintf(c->v[c->n].cert, sizeof(c->v[0].cert), "%s", cert->id);
	c->v[c->n].order = c->n;
	c->n++;
	return 0;
}

static int
cand_by_thing(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int d = strcmp(x->thing, y->thing);

	if (d != 0)
		return d;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int
cand_by_order(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->order < y->order ? -1 : x->order > y->order;
}

/* Keep each thing's first (soonest-expiring) candidate, in expiry order. */
static void
cands_one_per_thing(struct cands *c)
{
	size_t i, kept = 0;

	if (c->n == 0)
		return; /* c->v is NULL: qsort() must not see it */
	qsort(c->v, c->n, sizeof(*c->v), cand_by_thing);
	for (i = 0; i < c->n; i++) {
		if (kept > 0 && strcmp(c->v[kept - 1].thing, c->v[i].thing) == 0)
			continue;
		c->v[kept++] = c->v[i];
	}
	c->n = kept;
	qsort(c->v, c->n, sizeof(*c->v), cand_by_order);
}

/* The ACTIVE certificates sel matches, one per thing. */
static int
cands_collect(cf_rotation_engine *eng, struct cands *c, const cf_rotation_select *sel,
	      cf_err *err)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	cf_store_ca ca;
	int rc;

	memset(&ca, 0, sizeof(ca));
	if (sel->ca != NULL) {
		rc = cf_store_ca_get(eng->store, &ca, sel->ca, err);
		cf_store_ca_clear(&ca);
		if (rc != CF_OK)
			return rc;
	}
	filter.status = CF_CERT_ACTIVE;
	filter.ca = sel->ca;
	if (sel->expiring_within > 0) /* not_after <= now + within */
		filter.not_after_before = now(eng) + sel->expiring_within + 1;
	rc = cf_store_cert_list(eng->store, &filter, cand_cb, c, err);
	if (c->nomem)
		return cf_err_set(err, CF_ENOMEM, NULL, "%zu certificates to rotate", c->n);
	if (rc < 0)
		return rc;
	cands_one_per_thing(c);
	return CF_OK;
}


/* Start one candidate's rotation and count what happened; CF_OK unless the store failed. */
static int
start_cand(cf_rotation_engine *eng, cf_rotation_bulk *out, const struct cand *c,
	   const cf_store_actor *actor, cf_rotation_started_fn cb, void *payload, cf_err *err)
{
	cf_err e = CF_ERR_INIT;
	char id[33];
	bool service = false;
	int rc;

	rc = cf_store_thing_is_service(eng->store, &service, c->thing, &e);
	if (rc == CF_OK && service) {
		out->skipped_service++;
		return CF_OK;
	}
	if (rc == CF_OK)
		rc = cf_rotation_start(eng, id, c->thing, c->cert, actor, &e);
	if (rc == CF_OK) {
		out->started++;
		if (cb != NULL)
			cb(id, c->thing, payload);
	} else if (rc == CF_EEXISTS) {
		out->skipped_open++;
	} else if (rc == CF_ENOTFOUND || rc == CF_ESTATE || rc == CF_EINVAL) {
		out->skipped_changed++;
		cf_log_debug("thing=%s cert=%.16s skipped: %s", c->thing, c->cert, e.msg);
	} else {
		if (err != NULL)
			*err = e;
		return rc;
	}
	return CF_OK;
}

int
cf_rotation_start_many(cf_rotation_engine *eng, cf_rotation_bulk *out,
		       const cf_rotation_select *sel, const cf_store_actor *actor,
		       cf_rotation_started_fn cb, void *payload, cf_err *err)
{
	struct cands c;
	size_t i;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (eng == NULL || out == NULL || sel == NULL || actor == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	if (sel->expiring_within <= 0 && sel->ca == NULL)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "select by expiry, by CA, or both: not the whole fleet");
	memset(&c, 0, sizeof(c));
	rc = cands_collect(eng, &c, sel, err);
	if (rc == CF_OK)
		out->things = c.n;
	for (i = 0; rc == CF_OK && i < c.n; i++)
		rc = start_cand(eng, out, &c.v[i], actor, cb, payload, err);
	free(c.v);
	return rc;
}

/* ---- tick --------------------------------------------------------- */

struct idlist {
	char (*ids)[33];
	size_t n, cap;
};

static int
collect_cb(const cf_store_rotation *rot, void *payload)
{
	struct idlist *l = payload;

	if (l->n == l->cap)
		return 1;
	snprintf(l->ids[l->n++], 33, "%s", rot->id);
	return 0;
}

/* One timed-out rotation, in its own transaction. *done: it was still due. */
static int
time_out_one(cf_rotation_engine *eng, const char *id, int64_t t, bool *done, cf_err *err)
{
	cf_store_actor actor = { eng->actor, "deadline" };
	cf_store_rotation rot;
	char error[] = "deadline";
	int rc;

	*done = false;
	memset(&rot, 0, sizeof(rot));
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_store_rotation_get(eng->store, &rot, id, err);
	if (rc != CF_OK || !cf_rotation_state_open(rot.state) || rot.deadline > t)
		goto out; /* moved meanwhile: nothing to do */
	rc = rotation_abandon(eng, &rot, CF_ROTATION_TIMED_OUT, error, "rotation timed out",
			      &actor, err);
	if (rc == CF_OK)
		*done = true;
out:
	rc = step_end(eng->store, rc, done, err);
	if (*done) {
		count_forget(eng, id);
		cf_log_warn("event=rotation_timed_out rotation=%s thing=%s new_cert=%.16s", id,
			    rot.thing, rot.new_cert != NULL ? rot.new_cert : "-");
	}
	cf_store_rotation_clear(&rot);
	return rc;
}

/*
 * One re-send, in its own transaction: csr_req while REQUESTED; the issued
 * certificate while ISSUED (the device may have promoted it and lost its
 * crt_ack: the agent acknowledges its current certificate again).
 */
static int
resend_one(cf_rotation_engine *eng, const char *id, int64_t t, bool *done, cf_err *err)
{
	cf_store_actor actor = { eng->actor, "re-send" };
	cf_store_rotation rot;
	cf_rotation_state state;
	char topic[CF_ROTATION_PREFIX_MAX + CF_NAME_MAX + 16];
	bool pending = false;
	int rc;

	*done = false;
	memset(&rot, 0, sizeof(rot));
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_store_rotation_get(eng->store, &rot, id, err);
	if (rc != CF_OK || !cf_rotation_state_open(rot.state) || rot.next_send_at > t ||
	    rot.deadline <= t)
		goto out;
	state = rot.state;
	rot.next_send_at = t + eng->resend_interval;
	/*
	 * The previous copy still unpublished (certfleetd away from the broker):
	 * one copy is enough, the timer just moves on.
	 */
	rc = topic_make(topic, sizeof(topic), eng, rot.thing,
			state == CF_ROTATION_REQUESTED ? "csr_req" : "crt", err);
	if (rc == CF_OK)
		rc = cf_store_outbox_pending(eng->store, topic, &pending, err);
	if (rc == CF_OK && !pending && state == CF_ROTATION_REQUESTED) {
		rot.sends++;
		rc = send_csr_req(eng, &rot, err);
	} else if (rc == CF_OK && !pending) {
		rc = send_crt(eng, &rot, rot.new_cert, err);
	}
	if (rc == CF_OK)
		rc = cf_store_rotation_update(eng->store, &rot, state, &actor, err);
	if (rc == CF_OK)
		*done = true;
out:
	rc = step_end(eng->store, rc, done, err);
	if (*done)
		cf_log_debug("rotation=%s thing=%s sends=%lld", id, rot.thing,
			     (long long)rot.sends);
	cf_store_rotation_clear(&rot);
	return rc;
}

/* One old certificate whose grace period is over, in its own transaction. */
static int
delete_one(cf_rotation_engine *eng, const char *id, int64_t t, bool *done, cf_err *err)
{
	cf_store_rotation rot;
	int rc;

	*done = false;
	memset(&rot, 0, sizeof(rot));
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_store_rotation_get(eng->store, &rot, id, err);
	if (rc != CF_OK || rot.state != CF_ROTATION_COMPLETED || rot.delete_old_at == 0 ||
	    rot.delete_old_at > t)
		goto out; /* settled meanwhile */
	/* Deleting the certificate settles delete_old_at (the store does it). */
	rc = delete_old(eng, rot.old_cert, "grace period over", done, err);
out:
	rc = step_end(eng->store, rc, done, err);
	if (*done)
		cf_log_debug("rotation=%s thing=%s cert=%.16s deleted", id, rot.thing,
			     rot.old_cert);
	cf_store_rotation_clear(&rot);
	return rc;
}

/* The filter of tick pass 0 (deadlines), 1 (re-sends) or 2 (deletions). */
static void
tick_filter(cf_store_rotation_filter *filter, int pass, int64_t t, size_t room)
{
	*filter = (cf_store_rotation_filter)CF_STORE_ROTATION_FILTER_INIT;
	if (pass == 0) {
		filter->expired_by = t;
	} else if (pass == 1) {
		filter->due_by = t;
	} else {
		filter->delete_due_by = t;
	}
	filter->limit = (int64_t)room;
}

static int
tick_one(cf_rotation_engine *eng, int pass, const char *id, int64_t t, bool *done, cf_err *err)
{
	if (pass == 0)
		return time_out_one(eng, id, t, done, err);
	if (pass == 1)
		return resend_one(eng, id, t, done, err);
	return delete_one(eng, id, t, done, err);
}

int
cf_rotation_tick(cf_rotation_engine *eng, size_t *handled_out, cf_err *err)
{
	cf_store_rotation_filter filter = CF_STORE_ROTATION_FILTER_INIT;
	struct idlist l;
	size_t i, handled = 0;
	int64_t t;
	bool done;
	int rc, pass;

	if (handled_out != NULL)
		*handled_out = 0;
	if (eng == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	memset(&l, 0, sizeof(l));
	l.ids = calloc(CF_ROTATION_TICK_MAX, sizeof(*l.ids));
	if (l.ids == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "tick");
	t = now(eng);
	rc = CF_OK;
	/* Deadlines first: a rotation both due and expired times out, it is not re-sent. */
	for (pass = 0; pass < 3 && rc == CF_OK && handled < CF_ROTATION_TICK_MAX; pass++) {
		tick_filter(&filter, pass, t, CF_ROTATION_TICK_MAX - handled);
		l.n = 0;
		l.cap = CF_ROTATION_TICK_MAX - handled;
		rc = cf_store_rotation_list(eng->store, &filter, collect_cb, &l, err);
		if (rc > 0)
			rc = CF_OK;
		for (i = 0; rc == CF_OK && i < l.n; i++) {
			rc = tick_one(eng, pass, l.ids[i], t, &done, err);
			if (rc == CF_OK && done)
				handled++;
		}
	}
	free(l.ids);
	if (handled_out != NULL)
		*handled_out = handled;
	return rc;
}

/* ---- device messages ---------------------------------------------- */

/* Split "P/{clientId}/{kind}" into m->thing and m->kind. */
static int
parse_topic(struct msg *m, const cf_rotation_engine *eng, const char *topic, cf_err *err)
{
	size_t plen = strlen(eng->prefix), tlen;
	const char *rest, *slash;

	if (topic == NULL || strncmp(topic, eng->prefix, plen) != 0 || topic[plen] != '/')
		return cf_err_set(err, CF_EINVAL, NULL, "topic outside the prefix");
	rest = topic + plen + 1;
	slash = strchr(rest, '/');
	if (slash == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "topic without a message kind");
	tlen = (size_t)(slash - rest);
	if (tlen == 0 || tlen > CF_NAME_MAX)
		return cf_err_set(err, CF_EINVAL, NULL, "topic clientId length %zu", tlen);
	memcpy(m->thing, rest, tlen);
	m->thing[tlen] = '\0';
	if (!cf_name_valid(m->thing))
		return cf_err_set(err, CF_EINVAL, NULL, "topic clientId is not a valid name");
	slash++;
	if (strcmp(slash, "csr_res") == 0)
		m->kind = MSG_CSR_RES;
	else if (strcmp(slash, "crt_ack") == 0)
		m->kind = MSG_CRT_ACK;
	else if (strcmp(slash, "crt_err") == 0)
		m->kind = MSG_CRT_ERR;
	else
		return cf_err_set(err, CF_EINVAL, NULL, "unknown message kind on thing=%s",
				  m->thing);
	return CF_OK;
}

/* An optional string field: absent is fine, anything but a string is not. */
static int
opt_string(const char **out, size_t *len_out, json_t *obj, const char *key, cf_err *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return CF_OK;
	if (!json_is_string(v))
		return cf_err_set(err, CF_EINVAL, NULL, "\"%s\" is not a string", key);
	*out = json_string_value(v);
	if (len_out != NULL)
		*len_out = json_string_length(v);
	return CF_OK;
}

static int
parse_msg(struct msg *m, const cf_rotation_engine *eng, const char *topic, const void *payload,
	  size_t len, cf_err *err)
{
	json_error_t jerr;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = parse_topic(m, eng, topic, err);
	if (rc != CF_OK)
		return rc;
	if (payload == NULL || len > eng->max_payload)
		return cf_err_set(err, CF_EINVAL, NULL, "thing=%s payload of %zu bytes (max %zu)",
				  m->thing, len, eng->max_payload);
	m->json = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (m->json == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "thing=%s payload is not JSON: %s",
				  m->thing, jerr.text);
	if (!json_is_object(m->json))
		return cf_err_set(err, CF_EINVAL, NULL, "thing=%s payload is not a JSON object",
				  m->thing);
	rc = opt_string(&m->rotation_id, NULL, m->json, "rotationId", err);
	if (rc == CF_OK && m->kind != MSG_CSR_RES)
		rc = opt_string(&m->cert_id, NULL, m->json, "certificateId", err);
	if (rc == CF_OK && m->kind == MSG_CRT_ERR)
		rc = opt_string(&m->error, NULL, m->json, "error", err);
	if (rc == CF_OK && m->kind == MSG_CSR_RES) {
		rc = opt_string(&m->csr, &m->csr_len, m->json, "CSR", err);
		if (rc == CF_OK && m->csr == NULL)
			rc = cf_err_set(err, CF_EINVAL, NULL, "thing=%s csr_res without \"CSR\"",
					m->thing);
	}
	return rc;
}

/*
 * The thing's open rotation the message is about, into *rot; *found false
 * when it has none, or the message names another rotation.
 */
static int
open_rotation(cf_rotation_engine *eng, cf_store_rotation *rot, bool *found, const struct msg *m,
	      cf_err *err)
{
	int rc;

	*found = false;
	rc = cf_store_rotation_get_open(eng->store, rot, m->thing, err);
	if (rc == CF_ENOTFOUND) {
		cf_err_clear(err);
		return CF_OK;
	}
	if (rc != CF_OK)
		return rc;
	if (m->rotation_id != NULL && strcmp(m->rotation_id, rot->id) != 0) {
		cf_store_rotation_clear(rot);
		return CF_OK;
	}
	*found = true;
	return CF_OK;
}

struct names {
	char **v;
	size_t n, cap;
};

static int
policy_name_cb(const cf_store_policy *policy, void *payload)
{
	struct names *names = payload;
	char **grown;

	if (names->n == names->cap) {
		names->cap = names->cap == 0 ? 4 : names->cap * 2;
		grown = realloc(names->v, names->cap * sizeof(*grown));
		if (grown == NULL)
			return 1; /* stops the list: ENOMEM */
		names->v = grown;
	}
	names->v[names->n] = cf_strdup(policy->name);
	if (names->v[names->n] == NULL)
		return 1;
	names->n++;
	return 0;
}

static void
names_clear(struct names *names)
{
	size_t i;

	for (i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	memset(names, 0, sizeof(*names));
}

/* A short message for a device: never err->msg, which is for logs. */
static const char *
reject_message(const char *code)
{
	if (strcmp(code, "BAD_CSR") == 0)
		return "the CSR is not a valid certificate request";
	if (strcmp(code, "BAD_SIGNATURE") == 0)
		return "the CSR signature does not verify";
	if (strcmp(code, "WEAK_KEY") == 0)
		return "the CSR key or signature is weaker than policy allows";
	if (strcmp(code, "KEY_REUSE") == 0)
		return "the CSR reuses the key of the certificate being replaced";
	if (strcmp(code, "RATE_LIMITED") == 0)
		return "too many CSRs for this rotation";
	if (strcmp(code, "NO_ROTATION") == 0)
		return "no rotation is open for this thing";
	return "the CSR was refused";
}

/* Issue for a REQUESTED rotation (inside the caller's transaction). */
static int
issue_for(cf_rotation_engine *eng, cf_store_rotation *rot, const struct msg *m, const char **reject,
	  cf_err *err)
{
	cf_store_actor actor = { eng->actor, "rotation" };
	cf_authority_request req;
	cf_authority_result res;
	cf_store_cert old, issued;
	struct names pol;
	int rc;

	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	memset(&old, 0, sizeof(old));
	memset(&issued, 0, sizeof(issued));
	memset(&pol, 0, sizeof(pol));
	*reject = NULL;
	rc = cf_store_cert_get(eng->store, &old, rot->old_cert, err);
	if (rc != CF_OK)
		goto out;
	rc = cf_store_policy_list(eng->store, old.id, policy_name_cb, &pol, err);
	if (rc != CF_OK) {
		if (rc > 0)
			rc = cf_err_set(err, CF_ENOMEM, NULL, "policy names");
		goto out;
	}
	req.thing = m->thing;
	req.csr = m->csr;
	req.csr_len = m->csr_len;
	req.ca = NULL;
	req.policies = (const char *const *)pol.v;
	req.npolicies = pol.n; /* 0: the authority's default policy */
	req.status = CF_CERT_ACTIVE;
	req.reject_spki = rot->rekey ? old.spki_sha256 : NULL;
	rc = cf_authority_issue(eng->auth, &res, &req, &actor, err);
	if (rc == CF_EPROTO && err != NULL && err->reason != NULL) {
		*reject = err->reason;
		goto out;
	}
	if (rc == CF_EPROTO) {
		*reject = "BAD_CSR";
		goto out;
	}
	if (rc != CF_OK)
		goto out;
	rc = cf_store_cert_get(eng->store, &issued, res.id, err);
	if (rc != CF_OK)
		goto out;
	rot->state = CF_ROTATION_ISSUED;
	rot->next_send_at = now(eng) + eng->resend_interval;
	rot->new_cert = cf_strdup(issued.id);
	rot->csr_spki = cf_strdup(issued.spki_sha256);
	if (rot->new_cert == NULL || rot->csr_spki == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "rotation record");
		goto out;
	}
	rc = cf_store_rotation_update(eng->store, rot, CF_ROTATION_REQUESTED, &actor, err);
	if (rc == CF_OK)
		rc = send_crt(eng, rot, issued.id, err);
	if (rc == CF_OK)
		cf_log_debug("rotation=%s thing=%s cert=%.16s state=ISSUED", rot->id, rot->thing,
			     issued.id);
out:
	names_clear(&pol);
	cf_store_cert_clear(&old);
	cf_store_cert_clear(&issued);
	cf_authority_result_clear(&res);
	return rc;
}

/* csr_res for an ISSUED rotation: the same key gets the same certificate again. */
static int
reissue_for(cf_rotation_engine *eng, const cf_store_rotation *rot, const struct msg *m,
	    const char **reject, cf_err *err)
{
	cf_store_actor actor = { eng->actor, "duplicate csr_res" };
	cf_pki_csr *csr = NULL;
	cf_err perr = CF_ERR_INIT;
	const char *spki;
	int rc;

	*reject = NULL;
	rc = cf_pki_csr_parse(&csr, m->csr, m->csr_len, &perr);
	if (rc != CF_OK) {
		*reject = perr.reason != NULL ? perr.reason : "BAD_CSR";
		cf_log_debug("rotation=%s thing=%s reason=%s %s", rot->id, rot->thing, *reject,
			     perr.msg);
		return CF_OK;
	}
	spki = cf_pki_csr_spki_sha256(csr);
	if (rot->csr_spki == NULL || rot->new_cert == NULL ||
	    strlen(rot->csr_spki) != strlen(spki) ||
	    CRYPTO_memcmp(rot->csr_spki, spki, strlen(spki)) != 0) {
		/*
		 * A different key after issuance (the device lost its staged
		 * key): issuing again would make two certificates for one
		 * rotation. Refused with BAD_CSR, the nearest of protocol.md's
		 * codes; the rotation then fails or times out, and a new one
		 * can be opened (docs/rotation.md).
		 */
		*reject = "BAD_CSR";
		cf_log_debug("rotation=%s thing=%s a certificate was issued for another key",
			     rot->id, rot->thing);
	} else {
		rc = send_crt(eng, rot, rot->new_cert, err);
		if (rc == CF_OK)
			rc = cf_store_rotation_event(eng->store, rot->id, "rotation.crt_resent",
						     NULL, rot->new_cert, &actor, err);
	}
	cf_pki_csr_free(csr);
	return rc;
}

/*
 * The event of a refused csr_res for an open rotation: each refusal within
 * csr_max, and the first RATE_LIMITED, so that a device cannot flood the log.
 */
static int
note_rejected(cf_rotation_engine *eng, const cf_store_rotation *rot, const char *code,
	      unsigned int n, cf_err *err)
{
	cf_store_actor actor = { eng->actor, "csr_res refused" };

	if (n > eng->csr_max + 1)
		return CF_OK;
	return cf_store_rotation_event(eng->store, rot->id, "rotation.csr_rejected", code, NULL,
				       &actor, err);
}

static int
handle_csr_res(cf_rotation_engine *eng, const struct msg *m, cf_err *err)
{
	cf_store_rotation rot;
	cf_pki_ca *signer;
	const char *reject = NULL, *message;
	unsigned int n = 0;
	bool found;
	int rc;

	memset(&rot, 0, sizeof(rot));
	/* Decrypt the CA key (once) before taking the write lock, not under it. */
	(void)cf_authority_signer(&signer, eng->auth, NULL, NULL);
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = open_rotation(eng, &rot, &found, m, err);
	if (rc != CF_OK)
		goto out;
	if (!found) {
		reject = "NO_ROTATION";
	} else if (rot.state == CF_ROTATION_ISSUED) {
		/*
		 * The same key gets the same certificate, however often it asks
		 * (a device offline for hours answers every queued csr_req):
		 * only another key counts against csr_max.
		 */
		rc = reissue_for(eng, &rot, m, &reject, err);
		if (rc == CF_OK && reject != NULL && (n = count_csr(eng, rot.id)) > eng->csr_max)
			reject = "RATE_LIMITED";
	} else if ((n = count_csr(eng, rot.id)) > eng->csr_max) {
		reject = "RATE_LIMITED";
	} else {
		rc = issue_for(eng, &rot, m, &reject, err);
		if (reject != NULL) {
			cf_log_info_err(err, "event=csr_rejected rotation=%s thing=%s code=%s",
					rot.id, rot.thing, reject);
			rc = CF_OK;
			cf_err_clear(err);
		}
	}
	if (rc == CF_OK && reject != NULL) {
		message = reject_message(reject);
		rc = send_csr_rej(eng, m->thing, reject, message, found ? rot.id : m->rotation_id,
				  err);
		if (rc == CF_OK && found)
			rc = note_rejected(eng, &rot, reject, n, err);
	}
out:
	rc = end_tx(eng->store, rc, err);
	cf_store_rotation_clear(&rot);
	return rc;
}

static int
handle_crt_ack(cf_rotation_engine *eng, const struct msg *m, cf_err *err)
{
	cf_store_actor actor = { eng->actor, NULL };
	cf_store_rotation rot;
	char why[96];
	bool found;
	int rc;

	memset(&rot, 0, sizeof(rot));
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = open_rotation(eng, &rot, &found, m, err);
	if (rc != CF_OK)
		goto out;
	if (!found || rot.state != CF_ROTATION_ISSUED || rot.new_cert == NULL ||
	    (m->cert_id != NULL && strcmp(m->cert_id, rot.new_cert) != 0)) {
		/* A re-sent ack, or one for nothing we issued: acks get no answer. */
		cf_log_debug("thing=%s crt_ack ignored: no issued rotation matches", m->thing);
		goto out;
	}
	snprintf(why, sizeof(why), "rotated to %s", rot.new_cert);
	rc = deactivate(eng, rot.old_cert, eng->actor, why, err);
	if (rc == CF_OK && eng->grace == 0)
		rc = delete_old(eng, rot.old_cert, "rotated: no grace period", NULL, err);
	if (rc != CF_OK)
		goto out;
	rot.delete_old_at = eng->grace > 0 ? now(eng) + eng->grace : 0;
	rot.state = CF_ROTATION_COMPLETED;
	actor.why = "crt_ack";
	rc = cf_store_rotation_update(eng->store, &rot, CF_ROTATION_ISSUED, &actor, err);
out:
	rc = end_tx(eng->store, rc, err);
	if (rc == CF_OK && found && rot.state == CF_ROTATION_COMPLETED) {
		count_forget(eng, rot.id);
		cf_log_info("event=rotation_completed rotation=%s thing=%s new_cert=%.16s", rot.id,
			    rot.thing, rot.new_cert);
	}
	cf_store_rotation_clear(&rot);
	return rc;
}

/* Copy at most CF_ROTATION_ERROR_MAX bytes of text, not cutting a UTF-8 sequence. */
static void
error_copy(char out[CF_ROTATION_ERROR_MAX + 1], const char *text)
{
	size_t n = strlen(text);

	if (n > CF_ROTATION_ERROR_MAX) {
		n = CF_ROTATION_ERROR_MAX;
		while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, text, n);
	out[n] = '\0';
}

static int
handle_crt_err(cf_rotation_engine *eng, const struct msg *m, cf_err *err)
{
	cf_store_actor actor = { eng->actor, "crt_err" };
	cf_store_rotation rot;
	char error[CF_ROTATION_ERROR_MAX + 1];
	bool found, done = false;
	int rc;

	memset(&rot, 0, sizeof(rot));
	error_copy(error, m->error != NULL && m->error[0] != '\0' ? m->error : "no error given");
	rc = cf_store_tx_begin(eng->store, err);
	if (rc != CF_OK)
		return rc;
	rc = open_rotation(eng, &rot, &found, m, err);
	if (rc != CF_OK)
		goto out;
	if (!found || (m->cert_id != NULL &&
		       (rot.new_cert == NULL || strcmp(m->cert_id, rot.new_cert) != 0))) {
		cf_log_debug("thing=%s crt_err ignored: no open rotation matches", m->thing);
		goto out;
	}
	rc = rotation_abandon(eng, &rot, CF_ROTATION_FAILED, error, "crt_err: never confirmed",
			      &actor, err);
	done = rc == CF_OK;
out:
	rc = end_tx(eng->store, rc, err);
	if (rc == CF_OK && done) {
		count_forget(eng, rot.id);
		char qerror[2 * CF_ROTATION_ERROR_MAX + 3];

		cf_log_warn("event=rotation_failed rotation=%s thing=%s error=%s", rot.id, rot.thing,
			    cf_log_quote(qerror, sizeof(qerror), error));
	}
	cf_store_rotation_clear(&rot);
	return rc;
}

int
cf_rotation_handle(cf_rotation_engine *eng, const char *topic, const void *payload, size_t len,
		   cf_err *err)
{
	struct msg m;
	int rc;

	if (eng == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "NULL argument");
	rc = parse_msg(&m, eng, topic, payload, len, err);
	if (rc == CF_OK) {
		switch (m.kind) {
		case MSG_CSR_RES:
			rc = handle_csr_res(eng, &m, err);
			break;
		case MSG_CRT_ACK:
			rc = handle_crt_ack(eng, &m, err);
			break;
		case MSG_CRT_ERR:
			rc = handle_crt_err(eng, &m, err);
			break;
		}
	}
	json_decref(m.json);
	return rc;
}
