/*
 * The agent: rotation state machine over the on-disk slots.
 *
 * How it works
 * ------------
 * The state directory holds up to three slots, each a directory with
 * key.pem and cert.pem (leaf first, then intermediates), all files 0600:
 *
 *   current/   the identity the device connects with
 *   staging/   key.pem, csr.pem and rotation.json ({"rotationId",
 *              "keyType"}) after csr_req; cert.pem and certificateId in
 *              rotation.json after a checked crt; ack_pending.json once the
 *              new identity has connected (the promotion commit point)
 *   previous/  the pair replaced by the last rotation (fallback)
 *
 * A rotation:
 *   csr_req  -> staging/ made fresh (or kept, for a re-sent csr_req of the
 *               same rotation: the same key and CSR go out again), csr_res.
 *   crt      -> certificate checked (public key == staged key, chains to the
 *               trust anchors with caChainPem as untrusted intermediates,
 *               TLS client purpose), cert.pem written, then CONNECT(staging).
 *   connected with staging ->
 *               1. staging/ack_pending.json written (commit point)
 *               2. previous/ removed (renamed to previous.old, then deleted)
 *               3. current/ renamed to previous/
 *               4. staging/ renamed to current/
 *               5. crt_ack published; current/ack_pending.json removed once
 *                  the broker acknowledged it (PUBACK).
 *   refused or unreachable with staging ->
 *               staging/ discarded, CONNECT(current), crt_err published.
 *
 * Each step is one atomic file write or directory rename followed by an
 * fsync of the directory, so cf_agent_open() sees one of a few states after
 * a power loss and recovers like this:
 *
 *   R1  *.tmp files are half-written files: deleted. previous.old/ and
 *       refused/ are leftovers of finished decisions: deleted.
 *   R2  staging/ack_pending.json exists: the new certificate connected, and
 *       so was ACTIVE on the server; the old one is still ACTIVE too (no
 *       crt_ack went out). Finish steps 2-4 (each skipped when already
 *       done), boot with the new current/ and send crt_ack.
 *   R3  staging/cert.pem without ack_pending.json: the new certificate was
 *       stored but never confirmed by a connect. current/ is still ACTIVE
 *       (no crt_ack was sent), so boot with it, discard staging/ and send
 *       crt_err "INTERRUPTED" so that the server fails this rotation now
 *       instead of at its deadline; the next audit starts a new one.
 *   R4  staging/ with key.pem and csr.pem only: a CSR went out (or was
 *       about to). Keep it, so a re-sent csr_req of the same rotation gets
 *       the same CSR and therefore the same certificate.
 *   R5  any other staging/ (half made): discarded.
 *   R6  no current/ but previous/ and no staging/: a fall-back (below) was
 *       interrupted between its two renames: previous/ becomes current/.
 *   R7  current/ack_pending.json: crt_ack is sent again after connecting.
 *
 * Fall-back: when the broker refuses current/ and previous/ exists, the
 * agent tries previous/ once; if it connects, current/ is moved to refused/
 * (deleted) and previous/ becomes current/. This covers a crt_ack that
 * never reached the server before the rotation's deadline: the server then
 * set the new certificate INACTIVE and kept the old one ACTIVE.
 */
#include "agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

/* Refused connects with a new certificate before it is given up (crt_err). */
#define STAGED_TRIES 3
#define FILE_MAX (64 * 1024)

enum conn_state { CONN_IDLE = 0, CONN_WAIT, CONN_CONNECTING, CONN_UP };

struct node {
	struct node *next;
	cf_agent_action_type type;
	unsigned long id;
	cf_agent_slot slot;
	char *topic;
	char *payload;
	size_t payload_len;
};

struct cf_agent {
	char *client_id;
	char *state_dir;
	char *ca_file;
	char *dir[3];      /* by cf_agent_slot */
	char *key_path[3];
	char *cert_path[3];
	char *dir_old;     /* previous.old */
	char *dir_refused; /* refused */
	char *t_csr_req, *t_crt, *t_csr_rej, *t_csr_res, *t_crt_ack, *t_crt_err;
	X509_STORE *store;
	SSL_CTX *ssl[3];
	/*
	 * The key in staging/key.pem, kept from the csr_req that made it so
	 * that the crt check need not decode it again (OpenSSL 3.0's PEM
	 * decoders cost ~1 ms, which a simulator of thousands pays in full).
	 * NULL after a restart: the file is read then.
	 */
	EVP_PKEY *staged_key;
	cf_agent_key_type key_type;
	size_t max_payload;
	int backoff_min, backoff_max, backoff;
	cf_agent_log_level log_level;
	cf_agent_log_cb log;
	void *log_payload;
	cf_agent_event_cb event;
	void *event_payload;
	char current_id[65];

	enum conn_state conn;
	cf_agent_slot conn_slot;
	unsigned long connect_id;
	int64_t now;
	int64_t connect_at;
	bool fallback_tried;
	int staged_refusals; /* refused connects with the staged identity, this rotation */

	char *err_pending; /* crt_err payload to publish once connected */
	unsigned long err_pub_id;
	unsigned long ack_pub_id;

	struct node *head, *tail, *cur;
	unsigned long next_id;
};

/* ---- errors and logging -------------------------------------------------- */

static int err_vset(cf_agent_err *err, int code, const char *reason, const char *fmt,
		    va_list ap) CF_AGENT__PRINTF(4, 0);

static int
err_vset(cf_agent_err *err, int code, const char *reason, const char *fmt, va_list ap)
{
	if (err == NULL)
		return code;
	err->code = code;
	err->reason = reason;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int
cf_agent__err_set(cf_agent_err *err, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, code, reason, fmt, ap);
	va_end(ap);
	return code;
}

int
cf_agent__err_ossl(cf_agent_err *err, int code, const char *reason, const char *fmt, ...)
{
	unsigned long e;
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, code, reason, fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0) {
		if (err != NULL) {
			size_t n = strlen(err->msg);
			char buf[160];

			ERR_error_string_n(e, buf, sizeof(buf));
			if (n + 3 < sizeof(err->msg))
				snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", buf);
		}
	}
	return code;
}

const char *
cf_agent_strerror(int code)
{
	switch (code) {
	case CF_AGENT_OK: return "ok";
	case CF_AGENT_ENOMEM: return "out of memory";
	case CF_AGENT_EINVAL: return "invalid";
	case CF_AGENT_ENOTFOUND: return "not found";
	case CF_AGENT_ESTATE: return "wrong state";
	case CF_AGENT_EPROTO: return "protocol";
	case CF_AGENT_ECRYPTO: return "crypto";
	case CF_AGENT_EIO: return "i/o";
	default: return "unknown";
	}
}

static void logf_(cf_agent *a, cf_agent_log_level level, const cf_agent_err *err, const char *fmt,
		  ...) CF_AGENT__PRINTF(4, 5);

static void
logf_(cf_agent *a, cf_agent_log_level level, const cf_agent_err *err, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[640];
	size_t n;
	int w;
	va_list ap;

	if (level > a->log_level)
		return;
	w = snprintf(line, sizeof(line), "thing=%s ", a->client_id);
	n = w > 0 ? (size_t)w : 0;
	va_start(ap, fmt);
	if (n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (err != NULL && err->msg[0] != '\0' && n < sizeof(line))
		snprintf(line + n, sizeof(line) - n, " error=\"%s\"", err->msg);
	if (a->log != NULL)
		a->log(level, line, a->log_payload);
	else
		fprintf(stderr, "level=%s agent %s\n", names[level], line);
}

void
cf_agent__log_err(cf_agent *a, const cf_agent_err *err, const char *what)
{
	logf_(a, CF_AGENT_LOG_WARN, err, "event=transport op=%s", what);
}

static void
emit(cf_agent *a, cf_agent_event ev, const char *detail)
{
	if (a->event != NULL)
		a->event(ev, detail != NULL ? detail : "", a->event_payload);
}

/* ---- the action queue ------------------------------------------------------ */

static void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	free(n->topic);
	free(n->payload);
	free(n);
}

static struct node *
push(cf_agent *a, cf_agent_action_type type, const char *topic, char *payload, size_t len)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n == NULL) {
		free(payload);
		return NULL;
	}
	n->type = type;
	n->id = ++a->next_id;
	n->payload = payload; /* owned now */
	n->payload_len = len;
	if (topic != NULL) {
		n->topic = malloc(strlen(topic) + 1);
		if (n->topic == NULL) {
			node_free(n);
			return NULL;
		}
		memcpy(n->topic, topic, strlen(topic) + 1);
	}
	if (a->tail != NULL)
		a->tail->next = n;
	else
		a->head = n;
	a->tail = n;
	return n;
}

/* Drop queued publishes and subscribes: they belong to a connection that is gone. */
static void
drop_io(cf_agent *a)
{
	struct node **pp = &a->head;

	a->tail = NULL;
	while (*pp != NULL) {
		struct node *n = *pp;

		if (n->type == CF_AGENT_ACTION_CONNECT) {
			a->tail = n;
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		node_free(n);
	}
	a->ack_pub_id = 0;
	a->err_pub_id = 0;
}

static unsigned long
publish(cf_agent *a, const char *topic, char *payload, size_t len)
{
	struct node *n = push(a, CF_AGENT_ACTION_PUBLISH, topic, payload, len);

	if (n == NULL) {
		logf_(a, CF_AGENT_LOG_ERR, NULL, "event=publish topic=%s error=ENOMEM", topic);
		return 0;
	}
	return n->id;
}

/* ---- slots ----------------------------------------------------------------- */

static void
ssl_drop(cf_agent *a, cf_agent_slot slot)
{
	SSL_CTX_free(a->ssl[slot]);
	a->ssl[slot] = NULL;
}

/* Load a slot's pair and build its SSL_CTX once. */
static int
ssl_get(cf_agent *a, cf_agent_slot slot, cf_agent_err *err)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	int rc;

	if (a->ssl[slot] != NULL)
		return CF_AGENT_OK;
	rc = cf_agent__key_load(&key, a->dir[slot], err);
	if (rc != CF_AGENT_OK)
		goto out;
	rc = cf_agent__certs_load(&chain, a->dir[slot], err);
	if (rc != CF_AGENT_OK)
		goto out;
	rc = cf_agent__ssl_ctx_new(&a->ssl[slot], a->store, chain, key, err);
out:
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

/* current_id from current/: the certificate of its SSL_CTX when built, else the file. */
static int
read_current_id(cf_agent *a, cf_agent_err *err)
{
	STACK_OF(X509) *chain = NULL;
	SSL_CTX *ctx = a->ssl[CF_AGENT_SLOT_CURRENT];
	int rc;

	a->current_id[0] = '\0';
	if (ctx != NULL && SSL_CTX_get0_certificate(ctx) != NULL)
		return cf_agent__cert_id(a->current_id, SSL_CTX_get0_certificate(ctx), err);
	rc = cf_agent__certs_load(&chain, a->dir[CF_AGENT_SLOT_CURRENT], err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__cert_id(a->current_id, sk_X509_value(chain, 0), err);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

static void
staging_discard(cf_agent *a)
{
	cf_agent_err e = { 0, NULL, { 0 } };

	ssl_drop(a, CF_AGENT_SLOT_STAGING);
	EVP_PKEY_free(a->staged_key);
	a->staged_key = NULL;
	if (cf_agent__dir_remove(a->dir[CF_AGENT_SLOT_STAGING], &e) != CF_AGENT_OK)
		logf_(a, CF_AGENT_LOG_ERR, &e, "event=staging_discard");
}

/* rotation.json fields of staging/, or of the ack marker. */
enum { ROT_ID = 0, ROT_CERT_ID, ROT_KEY_TYPE, ROT_N };

static int
rot_read(cf_agent__json_field f[ROT_N], const char *dir, const char *name, cf_agent_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	f[ROT_ID] = (cf_agent__json_field){ "rotationId", CF_AGENT__JSON_STR, false, false, NULL, 0 };
	f[ROT_CERT_ID] =
		(cf_agent__json_field){ "certificateId", CF_AGENT__JSON_STR, false, false, NULL, 0 };
	f[ROT_KEY_TYPE] =
		(cf_agent__json_field){ "keyType", CF_AGENT__JSON_STR, false, false, NULL, 0 };
	rc = cf_agent__file_read(&text, &len, dir, name, FILE_MAX, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__json_read(text, len, f, ROT_N, err);
	free(text);
	return rc;
}

/*
 * Promotion, steps 2-4 of the block comment. Each step is skipped when a
 * crash already did it, so recovery calls the same function.
 */
static int
promote(cf_agent *a, cf_agent_err *err)
{
	const char *cur = a->dir[CF_AGENT_SLOT_CURRENT];
	const char *prev = a->dir[CF_AGENT_SLOT_PREVIOUS];
	int rc;

	if (cf_agent__dir_exists(cur)) {
		if (cf_agent__dir_exists(prev)) {
			rc = cf_agent__dir_rename(prev, a->dir_old, err);
			if (rc != CF_AGENT_OK)
				return rc;
			rc = cf_agent__dir_remove(a->dir_old, err);
			if (rc != CF_AGENT_OK)
				return rc;
		}
		rc = cf_agent__dir_rename(cur, prev, err);
		if (rc != CF_AGENT_OK)
			return rc;
	}
	rc = cf_agent__dir_rename(a->dir[CF_AGENT_SLOT_STAGING], cur, err);
	if (rc != CF_AGENT_OK)
		return rc;
	ssl_drop(a, CF_AGENT_SLOT_PREVIOUS);
	a->ssl[CF_AGENT_SLOT_PREVIOUS] = a->ssl[CF_AGENT_SLOT_CURRENT];
	a->ssl[CF_AGENT_SLOT_CURRENT] = a->ssl[CF_AGENT_SLOT_STAGING];
	a->ssl[CF_AGENT_SLOT_STAGING] = NULL;
	EVP_PKEY_free(a->staged_key);
	a->staged_key = NULL;
	return read_current_id(a, err);
}

/* previous/ becomes current/ (fall-back); current/ goes to refused/ and is deleted. */
static int
restore_previous(cf_agent *a, cf_agent_err *err)
{
	const char *cur = a->dir[CF_AGENT_SLOT_CURRENT];
	int rc;

	if (cf_agent__dir_exists(cur)) {
		rc = cf_agent__dir_rename(cur, a->dir_refused, err);
		if (rc != CF_AGENT_OK)
			return rc;
	}
	rc = cf_agent__dir_rename(a->dir[CF_AGENT_SLOT_PREVIOUS], cur, err);
	if (rc != CF_AGENT_OK)
		return rc;
	(void)cf_agent__dir_remove(a->dir_refused, NULL);
	ssl_drop(a, CF_AGENT_SLOT_CURRENT);
	a->ssl[CF_AGENT_SLOT_CURRENT] = a->ssl[CF_AGENT_SLOT_PREVIOUS];
	a->ssl[CF_AGENT_SLOT_PREVIOUS] = NULL;
	return read_current_id(a, err);
}

/* ---- connection scheduling ---------------------------------------------- */

static void
queue_connect(cf_agent *a)
{
	struct node *n;

	n = push(a, CF_AGENT_ACTION_CONNECT, NULL, NULL, 0);
	if (n == NULL) {
		a->conn = CONN_WAIT;
		a->connect_at = a->now + a->backoff;
		return;
	}
	n->slot = a->conn_slot;
	a->conn = CONN_CONNECTING;
	a->connect_id = n->id;
}

static void
schedule_connect(cf_agent *a, cf_agent_slot slot, int delay_ms)
{
	drop_io(a);
	/* A CONNECT still queued is replaced by this one. */
	if (a->conn == CONN_CONNECTING) {
		struct node **pp = &a->head;

		while (*pp != NULL) {
			struct node *n = *pp;

			if (n->type == CF_AGENT_ACTION_CONNECT) {
				*pp = n->next;
				node_free(n);
				continue;
			}
			pp = &n->next;
		}
		a->tail = NULL;
		for (pp = &a->head; *pp != NULL; pp = &(*pp)->next)
			a->tail = *pp;
	}
	a->conn_slot = slot;
	a->connect_id = 0;
	if (delay_ms <= 0) {
		queue_connect(a);
		return;
	}
	a->conn = CONN_WAIT;
	a->connect_at = a->now + delay_ms;
}

static int
next_backoff(cf_agent *a)
{
	int d = a->backoff;

	a->backoff = a->backoff >= a->backoff_max / 2 ? a->backoff_max : a->backoff * 2;
	return d;
}

static void
queue_ack(cf_agent *a)
{
	cf_agent__json_field f[ROT_N];
	char *payload = NULL;
	size_t len = 0;
	cf_agent_err e = { 0, NULL, { 0 } };

	if (rot_read(f, a->dir[CF_AGENT_SLOT_CURRENT], CF_AGENT__ACK_FILE, &e) != CF_AGENT_OK) {
		logf_(a, CF_AGENT_LOG_WARN, &e, "event=crt_ack note=\"unreadable marker\"");
	}
	if (cf_agent__json_object(&payload, &len, "rotationId", f[ROT_ID].str, "certificateId",
				  a->current_id, (const char *)NULL) == CF_AGENT_OK) {
		a->ack_pub_id = publish(a, a->t_crt_ack, payload, len);
		logf_(a, CF_AGENT_LOG_INFO, NULL, "event=crt_ack rotation=%s cert=%s",
		      f[ROT_ID].str != NULL ? f[ROT_ID].str : "-", a->current_id);
	}
	cf_agent__json_fields_clear(f, ROT_N);
}

static void
on_connected(cf_agent *a)
{
	size_t len;
	char *copy;

	a->conn = CONN_UP;
	a->backoff = a->backoff_min;
	a->fallback_tried = false;
	push(a, CF_AGENT_ACTION_SUBSCRIBE, a->t_csr_req, NULL, 0);
	push(a, CF_AGENT_ACTION_SUBSCRIBE, a->t_crt, NULL, 0);
	push(a, CF_AGENT_ACTION_SUBSCRIBE, a->t_csr_rej, NULL, 0);
	if (cf_agent__file_exists(a->dir[CF_AGENT_SLOT_CURRENT], CF_AGENT__ACK_FILE))
		queue_ack(a);
	if (a->err_pending != NULL) {
		len = strlen(a->err_pending);
		copy = malloc(len + 1);
		if (copy != NULL) {
			memcpy(copy, a->err_pending, len + 1);
			a->err_pub_id = publish(a, a->t_crt_err, copy, len);
		}
	}
}

/* The rotation failed: remember crt_err, discard staging/. */
static void
rotation_fail(cf_agent *a, const char *reason, const char *detail, const char *rotation_id,
	      const char *cert_id)
{
	char text[300];
	char *payload = NULL;

	snprintf(text, sizeof(text), "%s%s%s", reason, detail != NULL ? ": " : "",
		 detail != NULL ? detail : "");
	logf_(a, CF_AGENT_LOG_WARN, NULL, "event=crt_err rotation=%s reason=%s detail=\"%s\"",
	      rotation_id != NULL ? rotation_id : "-", reason, detail != NULL ? detail : "");
	if (cf_agent__json_object(&payload, NULL, "error", text, "rotationId", rotation_id,
				  "certificateId", cert_id, (const char *)NULL) == CF_AGENT_OK) {
		free(a->err_pending);
		a->err_pending = payload;
	}
	staging_discard(a);
	emit(a, CF_AGENT_EVENT_ROTATION_FAILED, text);
	if (a->conn == CONN_UP && a->err_pending != NULL) {
		size_t len = strlen(a->err_pending);
		char *copy = malloc(len + 1);

		if (copy != NULL) {
			memcpy(copy, a->err_pending, len + 1);
			a->err_pub_id = publish(a, a->t_crt_err, copy, len);
		}
	}
}

/* ---- lifecycle ------------------------------------------------------------- */

void
cf_agent_config_init(cf_agent_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->key_type = CF_AGENT_KEY_EC_P256;
	cfg->backoff_min_ms = 1000;
	cfg->backoff_max_ms = 60000;
	cfg->log_level = CF_AGENT_LOG_INFO;
}

static char *
dup_str(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = malloc(strlen(s) + 1);
	if (d != NULL)
		memcpy(d, s, strlen(s) + 1);
	return d;
}

static char *
topic(const char *prefix, const char *id, const char *leaf)
{
	size_t n = strlen(prefix) + strlen(id) + strlen(leaf) + 3;
	char *t = malloc(n);

	if (t != NULL)
		snprintf(t, n, "%s/%s/%s", prefix, id, leaf);
	return t;
}

static bool
client_id_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return n > 0 && n <= 128;
}

/* Crash recovery, rules R1-R7 of the block comment. */
static int
recover(cf_agent *a, cf_agent_err *err)
{
	const char *stg = a->dir[CF_AGENT_SLOT_STAGING];
	const char *cur = a->dir[CF_AGENT_SLOT_CURRENT];
	const char *prev = a->dir[CF_AGENT_SLOT_PREVIOUS];
	int rc, i;

	for (i = 0; i < 3; i++)
		cf_agent__dir_clean_tmp(a->dir[i]); /* R1 */
	rc = cf_agent__dir_remove(a->dir_old, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__dir_remove(a->dir_refused, err);
	if (rc != CF_AGENT_OK)
		return rc;
	if (cf_agent__dir_exists(stg)) {
		if (cf_agent__file_exists(stg, CF_AGENT__ACK_FILE)) { /* R2 */
			logf_(a, CF_AGENT_LOG_INFO, NULL, "event=recover rule=R2 "
			      "note=\"finishing an interrupted promotion\"");
			rc = promote(a, err);
			if (rc != CF_AGENT_OK)
				return rc;
		} else if (cf_agent__file_exists(stg, CF_AGENT__CERT_FILE)) { /* R3 */
			cf_agent__json_field f[ROT_N];

			logf_(a, CF_AGENT_LOG_WARN, NULL, "event=recover rule=R3 "
			      "note=\"new certificate never confirmed; keeping current\"");
			(void)rot_read(f, stg, CF_AGENT__ROT_FILE, NULL);
			rotation_fail(a, "INTERRUPTED",
				      "restarted before the new certificate was confirmed",
				      f[ROT_ID].str, f[ROT_CERT_ID].str);
			cf_agent__json_fields_clear(f, ROT_N);
		} else if (cf_agent__file_exists(stg, CF_AGENT__KEY_FILE) &&
			   cf_agent__file_exists(stg, CF_AGENT__CSR_FILE)) { /* R4 */
			logf_(a, CF_AGENT_LOG_INFO, NULL, "event=recover rule=R4 "
			      "note=\"keeping the staged key for a re-sent csr_req\"");
		} else { /* R5 */
			logf_(a, CF_AGENT_LOG_INFO, NULL, "event=recover rule=R5 "
			      "note=\"discarding a half-made staging slot\"");
			staging_discard(a);
		}
	} else if (!cf_agent__dir_exists(cur) && cf_agent__dir_exists(prev)) { /* R6 */
		logf_(a, CF_AGENT_LOG_INFO, NULL, "event=recover rule=R6");
		rc = cf_agent__dir_rename(prev, cur, err);
		if (rc != CF_AGENT_OK)
			return rc;
	}
	if (!cf_agent__file_exists(cur, CF_AGENT__KEY_FILE) ||
	    !cf_agent__file_exists(cur, CF_AGENT__CERT_FILE))
		return cf_agent__err_set(err, CF_AGENT_ENOTFOUND, NULL,
					 "no %s/key.pem and cert.pem: provision the device first",
					 cur);
	return read_current_id(a, err);
}

int
cf_agent_open(cf_agent **out, const cf_agent_config *cfg, cf_agent_err *err)
{
	static const char *const names[3] = { "current", "staging", "previous" };
	const char *prefix;
	cf_agent *a = NULL;
	int rc, i;

	*out = NULL;
	if (cfg == NULL || cfg->client_id == NULL || !client_id_valid(cfg->client_id) ||
	    cfg->state_dir == NULL || (cfg->ca_file == NULL && cfg->trust_store == NULL) ||
	    (unsigned int)cfg->key_type > CF_AGENT_KEY_RSA_3072) {
		rc = cf_agent__err_set(err, CF_AGENT_EINVAL, NULL,
				       "client_id ([A-Za-z0-9_.:-]{1,128}), state_dir and ca_file "
				       "are required");
		goto out;
	}
	prefix = cfg->topic_prefix != NULL ? cfg->topic_prefix : CF_AGENT_DEFAULT_PREFIX;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "agent");
		goto out;
	}
	a->client_id = dup_str(cfg->client_id);
	a->state_dir = dup_str(cfg->state_dir);
	a->ca_file = dup_str(cfg->ca_file);
	a->key_type = cfg->key_type;
	a->max_payload = cfg->max_payload ? cfg->max_payload : CF_AGENT_PAYLOAD_MAX;
	a->backoff_min = cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : 1000;
	a->backoff_max = cfg->backoff_max_ms >= a->backoff_min ? cfg->backoff_max_ms : a->backoff_min;
	a->backoff = a->backoff_min;
	a->log_level = cfg->log_level;
	a->log = cfg->log;
	a->log_payload = cfg->log_payload;
	a->event = cfg->event;
	a->event_payload = cfg->event_payload;
	a->t_csr_req = topic(prefix, cfg->client_id, "csr_req");
	a->t_crt = topic(prefix, cfg->client_id, "crt");
	a->t_csr_rej = topic(prefix, cfg->client_id, "csr_rej");
	a->t_csr_res = topic(prefix, cfg->client_id, "csr_res");
	a->t_crt_ack = topic(prefix, cfg->client_id, "crt_ack");
	a->t_crt_err = topic(prefix, cfg->client_id, "crt_err");
	a->dir_old = cf_agent__path(cfg->state_dir, "previous.old");
	a->dir_refused = cf_agent__path(cfg->state_dir, "refused");
	if (a->client_id == NULL || a->state_dir == NULL ||
	    (cfg->ca_file != NULL && a->ca_file == NULL) || a->t_csr_req == NULL ||
	    a->t_crt == NULL || a->t_csr_rej == NULL || a->t_csr_res == NULL ||
	    a->t_crt_ack == NULL || a->t_crt_err == NULL || a->dir_old == NULL ||
	    a->dir_refused == NULL) {
		rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "agent");
		goto out;
	}
	for (i = 0; i < 3; i++) {
		a->dir[i] = cf_agent__path(cfg->state_dir, names[i]);
		a->key_path[i] = a->dir[i] ? cf_agent__path(a->dir[i], CF_AGENT__KEY_FILE) : NULL;
		a->cert_path[i] = a->dir[i] ? cf_agent__path(a->dir[i], CF_AGENT__CERT_FILE) : NULL;
		if (a->key_path[i] == NULL || a->cert_path[i] == NULL) {
			rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "agent");
			goto out;
		}
	}
	if (cfg->trust_store != NULL) {
		if (X509_STORE_up_ref(cfg->trust_store) != 1) {
			rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "X509_STORE_up_ref");
			goto out;
		}
		a->store = cfg->trust_store;
	} else {
		a->store = X509_STORE_new();
		if (a->store == NULL || X509_STORE_load_file(a->store, cfg->ca_file) != 1) {
			rc = cf_agent__err_ossl(err, CF_AGENT_EINVAL, NULL,
						"cannot load the CA bundle %s", cfg->ca_file);
			goto out;
		}
	}
	rc = recover(a, err);
	if (rc != CF_AGENT_OK)
		goto out;
	logf_(a, CF_AGENT_LOG_INFO, NULL, "event=open cert=%s", a->current_id);
	*out = a;
	a = NULL;
out:
	cf_agent_free(a);
	return rc;
}

void
cf_agent_free(cf_agent *a)
{
	int i;

	if (a == NULL)
		return;
	while (a->head != NULL) {
		struct node *n = a->head;

		a->head = n->next;
		node_free(n);
	}
	node_free(a->cur);
	for (i = 0; i < 3; i++) {
		SSL_CTX_free(a->ssl[i]);
		free(a->dir[i]);
		free(a->key_path[i]);
		free(a->cert_path[i]);
	}
	X509_STORE_free(a->store);
	EVP_PKEY_free(a->staged_key);
	free(a->err_pending);
	free(a->t_csr_req);
	free(a->t_crt);
	free(a->t_csr_rej);
	free(a->t_csr_res);
	free(a->t_crt_ack);
	free(a->t_crt_err);
	free(a->dir_old);
	free(a->dir_refused);
	free(a->client_id);
	free(a->state_dir);
	free(a->ca_file);
	free(a);
}

void
cf_agent_start(cf_agent *a, int64_t now_ms)
{
	a->now = now_ms;
	a->fallback_tried = false;
	schedule_connect(a, CF_AGENT_SLOT_CURRENT, 0);
}

cf_agent_slot
cf_agent_active_slot(const cf_agent *a)
{
	return a->conn_slot;
}

const char *
cf_agent_current_cert_id(const cf_agent *a)
{
	return a->current_id;
}

int
cf_agent_next_action(cf_agent_action *out, cf_agent *a)
{
	struct node *n = a->head;
	cf_agent_err e = { 0, NULL, { 0 } };

	memset(out, 0, sizeof(*out));
	node_free(a->cur);
	a->cur = NULL;
	while (n != NULL) {
		if (n->type != CF_AGENT_ACTION_CONNECT && a->conn != CONN_UP)
			return 0; /* held until connected */
		a->head = n->next;
		if (a->head == NULL)
			a->tail = NULL;
		n->next = NULL;
		if (n->type != CF_AGENT_ACTION_CONNECT)
			break;
		/* Build the identity now: the slot may have changed since it was queued. */
		if (ssl_get(a, n->slot, &e) == CF_AGENT_OK)
			break;
		logf_(a, CF_AGENT_LOG_ERR, &e, "event=connect slot=%d note=\"unusable identity\"",
		      (int)n->slot);
		node_free(n);
		n = NULL;
		if (a->conn_slot == CF_AGENT_SLOT_STAGING) {
			rotation_fail(a, "BAD_IDENTITY", e.msg, NULL, NULL);
			schedule_connect(a, CF_AGENT_SLOT_CURRENT, 0);
		} else {
			schedule_connect(a, CF_AGENT_SLOT_CURRENT, next_backoff(a));
		}
		n = a->head;
	}
	if (n == NULL)
		return 0;
	a->cur = n;
	out->type = n->type;
	out->id = n->id;
	out->topic = n->topic;
	out->payload = n->payload;
	out->payload_len = n->payload_len;
	if (n->type == CF_AGENT_ACTION_CONNECT) {
		out->identity.slot = n->slot;
		out->identity.client_id = a->client_id;
		out->identity.key_path = a->key_path[n->slot];
		out->identity.cert_path = a->cert_path[n->slot];
		out->identity.ca_file = a->ca_file;
		out->identity.ssl_ctx = a->ssl[n->slot];
	}
	return 1;
}

void
cf_agent_connect_done(cf_agent *a, unsigned long id, cf_agent_connect_result result,
		      int64_t now_ms)
{
	cf_agent_err e = { 0, NULL, { 0 } };
	cf_agent_slot slot = a->conn_slot;

	a->now = now_ms;
	if (a->conn != CONN_CONNECTING || id != a->connect_id)
		return;
	if (result == CF_AGENT_CONNECT_OK) {
		if (slot == CF_AGENT_SLOT_STAGING) {
			/* The commit point: the new certificate works. */
			char *rot = NULL;
			size_t len = 0;

			if (cf_agent__file_read(&rot, &len, a->dir[slot], CF_AGENT__ROT_FILE,
						FILE_MAX, &e) != CF_AGENT_OK ||
			    cf_agent__file_write(a->dir[slot], CF_AGENT__ACK_FILE, rot, len, &e) !=
				    CF_AGENT_OK ||
			    promote(a, &e) != CF_AGENT_OK) {
				free(rot);
				logf_(a, CF_AGENT_LOG_ERR, &e, "event=promote");
				rotation_fail(a, "STORAGE", e.msg, NULL, NULL);
				schedule_connect(a, CF_AGENT_SLOT_CURRENT, 0);
				return;
			}
			free(rot);
			a->conn_slot = CF_AGENT_SLOT_CURRENT;
			logf_(a, CF_AGENT_LOG_INFO, NULL, "event=rotated cert=%s", a->current_id);
			emit(a, CF_AGENT_EVENT_ROTATED, a->current_id);
		} else if (slot == CF_AGENT_SLOT_PREVIOUS) {
			if (restore_previous(a, &e) != CF_AGENT_OK) {
				logf_(a, CF_AGENT_LOG_ERR, &e, "event=fall_back");
			} else {
				logf_(a, CF_AGENT_LOG_WARN, NULL,
				      "event=fall_back cert=%s note=\"current was refused\"",
				      a->current_id);
				emit(a, CF_AGENT_EVENT_FELL_BACK, a->current_id);
			}
			a->conn_slot = CF_AGENT_SLOT_CURRENT;
		} else {
			logf_(a, CF_AGENT_LOG_INFO, NULL, "event=connected cert=%s", a->current_id);
		}
		on_connected(a);
		return;
	}
	if (slot == CF_AGENT_SLOT_STAGING &&
	    (result == CF_AGENT_CONNECT_UNREACHABLE || ++a->staged_refusals < STAGED_TRIES)) {
		/*
		 * Not a verdict yet: a broker restarting under the handshake looks
		 * like a refusal, and an unreachable broker says nothing of the
		 * certificate (the old one would not connect either).
		 */
		logf_(a, CF_AGENT_LOG_WARN, NULL,
		      "event=connect_failed slot=staging result=%s tries=%d retry_ms=%d",
		      result == CF_AGENT_CONNECT_REFUSED ? "refused" : "unreachable",
		      a->staged_refusals, a->backoff);
		schedule_connect(a, CF_AGENT_SLOT_STAGING, next_backoff(a));
		return;
	}
	if (slot == CF_AGENT_SLOT_STAGING) {
		cf_agent__json_field f[ROT_N];

		(void)rot_read(f, a->dir[slot], CF_AGENT__ROT_FILE, NULL);
		rotation_fail(a, "NEW_CERT_REFUSED", "the broker refused the new certificate",
			      f[ROT_ID].str, f[ROT_CERT_ID].str);
		cf_agent__json_fields_clear(f, ROT_N);
		schedule_connect(a, CF_AGENT_SLOT_CURRENT, 0);
		return;
	}
	if (slot == CF_AGENT_SLOT_CURRENT && result == CF_AGENT_CONNECT_REFUSED &&
	    !a->fallback_tried && cf_agent__dir_exists(a->dir[CF_AGENT_SLOT_PREVIOUS])) {
		a->fallback_tried = true;
		logf_(a, CF_AGENT_LOG_WARN, NULL, "event=connect_refused note=\"trying previous\"");
		schedule_connect(a, CF_AGENT_SLOT_PREVIOUS, 0);
		return;
	}
	logf_(a, CF_AGENT_LOG_WARN, NULL, "event=connect_failed result=%s retry_ms=%d",
	      result == CF_AGENT_CONNECT_REFUSED ? "refused" : "unreachable", a->backoff);
	schedule_connect(a, CF_AGENT_SLOT_CURRENT, next_backoff(a));
}

void
cf_agent_publish_done(cf_agent *a, unsigned long id, int ok)
{
	cf_agent_err e = { 0, NULL, { 0 } };

	if (id == 0 || !ok)
		return;
	if (id == a->ack_pub_id) {
		a->ack_pub_id = 0;
		if (cf_agent__file_remove(a->dir[CF_AGENT_SLOT_CURRENT], CF_AGENT__ACK_FILE, &e) !=
		    CF_AGENT_OK)
			logf_(a, CF_AGENT_LOG_ERR, &e, "event=crt_ack_done");
	} else if (id == a->err_pub_id) {
		a->err_pub_id = 0;
		free(a->err_pending);
		a->err_pending = NULL;
	}
}

void
cf_agent_connection_lost(cf_agent *a, int64_t now_ms)
{
	a->now = now_ms;
	if (a->conn != CONN_UP)
		return;
	logf_(a, CF_AGENT_LOG_WARN, NULL, "event=connection_lost retry_ms=%d", a->backoff);
	schedule_connect(a, CF_AGENT_SLOT_CURRENT, next_backoff(a));
}

int64_t
cf_agent_tick(cf_agent *a, int64_t now_ms)
{
	int64_t left;

	a->now = now_ms;
	if (a->conn == CONN_WAIT && now_ms >= a->connect_at)
		queue_connect(a);
	if (a->head != NULL && (a->conn == CONN_UP || a->head->type == CF_AGENT_ACTION_CONNECT))
		return 0;
	if (a->conn == CONN_WAIT) {
		left = a->connect_at - now_ms;
		return left < 1000 ? left : 1000;
	}
	return 1000;
}

/* ---- messages ---------------------------------------------------------------- */

static bool
same_rotation(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
on_csr_req(cf_agent *a, const char *text, size_t len, cf_agent_err *err)
{
	cf_agent__json_field f[3] = {
		{ "rotationId", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "rekey", CF_AGENT__JSON_BOOL, false, false, NULL, 0 },
		{ "keyType", CF_AGENT__JSON_STR, false, false, NULL, 0 },
	};
	cf_agent__json_field st[ROT_N];
	const char *stg = a->dir[CF_AGENT_SLOT_STAGING];
	cf_agent_key_type type = a->key_type;
	EVP_PKEY *key = NULL;
	char *key_pem = NULL, *csr = NULL, *rot = NULL, *payload = NULL;
	size_t key_len = 0, csr_len = 0, rot_len = 0, payload_len = 0;
	bool rekey;
	int rc, t;

	memset(st, 0, sizeof(st));
	rc = cf_agent__json_read(text, len, f, 3, err);
	if (rc != CF_AGENT_OK)
		goto out;
	rekey = f[1].present ? f[1].boolean : true;
	if (f[2].present) {
		t = cf_agent__key_type_parse(f[2].str);
		if (t < 0) {
			rc = cf_agent__err_set(err, CF_AGENT_EINVAL, "UNSUPPORTED_KEY_TYPE",
					       "csr_req asks for key type %.40s", f[2].str);
			goto out;
		}
		type = (cf_agent_key_type)t;
	}
	/* A re-sent csr_req of the staged rotation gets the same CSR (same key). */
	if (cf_agent__file_exists(stg, CF_AGENT__KEY_FILE) &&
	    cf_agent__file_exists(stg, CF_AGENT__CSR_FILE) &&
	    rot_read(st, stg, CF_AGENT__ROT_FILE, NULL) == CF_AGENT_OK &&
	    same_rotation(st[ROT_ID].str, f[0].str)) {
		rc = cf_agent__file_read(&csr, &csr_len, stg, CF_AGENT__CSR_FILE, FILE_MAX, err);
		if (rc != CF_AGENT_OK)
			goto out;
		logf_(a, CF_AGENT_LOG_INFO, NULL, "event=csr_res rotation=%s note=\"re-sent\"",
		      f[0].str != NULL ? f[0].str : "-");
		goto publish;
	}
	staging_discard(a);
	if (rekey) {
		rc = cf_agent__key_generate(&key, type, err);
	} else {
		rc = cf_agent__key_load(&key, a->dir[CF_AGENT_SLOT_CURRENT], err);
		type = a->key_type; /* informational only */
	}
	if (rc != CF_AGENT_OK)
		goto out;
	rc = cf_agent__csr_make(&csr, &csr_len, key, a->client_id, err);
	if (rc != CF_AGENT_OK)
		goto out;
	rc = cf_agent__key_to_pem(&key_pem, &key_len, key, err);
	if (rc != CF_AGENT_OK)
		goto out;
	rc = cf_agent__json_object(&rot, &rot_len, "rotationId", f[0].str, "keyType",
				   rekey ? cf_agent__key_type_name(type) : "CURRENT",
				   (const char *)NULL);
	if (rc != CF_AGENT_OK)
		goto out;
	/* csr.pem last: a staging slot with csr.pem is complete (rule R4). */
	rc = cf_agent__dir_make(stg, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__file_write(stg, CF_AGENT__KEY_FILE, key_pem, key_len, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__file_write(stg, CF_AGENT__ROT_FILE, rot, rot_len, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__file_write(stg, CF_AGENT__CSR_FILE, csr, csr_len, err);
	if (rc != CF_AGENT_OK) {
		staging_discard(a);
		goto out;
	}
	if (EVP_PKEY_up_ref(key) == 1)
		a->staged_key = key;
	logf_(a, CF_AGENT_LOG_INFO, NULL, "event=csr_res rotation=%s rekey=%s",
	      f[0].str != NULL ? f[0].str : "-", rekey ? "true" : "false");
publish:
	rc = cf_agent__json_object(&payload, &payload_len, "CSR", csr, "rotationId", f[0].str,
				   (const char *)NULL);
	if (rc != CF_AGENT_OK)
		goto out;
	publish(a, a->t_csr_res, payload, payload_len);
	payload = NULL;
	emit(a, CF_AGENT_EVENT_CSR_SENT, f[0].str);
	rc = CF_AGENT_OK;
out:
	EVP_PKEY_free(key);
	cf_agent__secret_free(key_pem, key_len);
	free(csr);
	free(rot);
	free(payload);
	cf_agent__json_fields_clear(f, 3);
	cf_agent__json_fields_clear(st, ROT_N);
	return rc;
}

static int
on_crt(cf_agent *a, const char *text, size_t len, cf_agent_err *err)
{
	enum { F_PEM = 0, F_CHAIN, F_ID, F_ROT, F_N };
	cf_agent__json_field f[F_N] = {
		{ "certificatePem", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "caChainPem", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "certificateId", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "rotationId", CF_AGENT__JSON_STR, false, false, NULL, 0 },
	};
	cf_agent__json_field st[ROT_N];
	const char *stg = a->dir[CF_AGENT_SLOT_STAGING];
	STACK_OF(X509) *leaf = NULL, *chain = NULL, *store_chain = NULL;
	EVP_PKEY *key = NULL;
	cf_agent_err e = { 0, NULL, { 0 } };
	char id[65] = "";
	char *rot = NULL, *pem = NULL, *payload = NULL;
	const char *rotation_id;
	size_t rot_len = 0, pem_len = 0, payload_len = 0;
	int rc, i;

	memset(st, 0, sizeof(st));
	rc = cf_agent__json_read(text, len, f, F_N, err);
	if (rc != CF_AGENT_OK)
		goto out;
	(void)rot_read(st, stg, CF_AGENT__ROT_FILE, NULL);
	rotation_id = f[F_ROT].str != NULL ? f[F_ROT].str : st[ROT_ID].str;
	if (!f[F_PEM].present ||
	    cf_agent__certs_parse(&leaf, f[F_PEM].str, f[F_PEM].len, &e) != CF_AGENT_OK) {
		rotation_fail(a, "BAD_CERTIFICATE", "certificatePem is missing or not PEM",
			      rotation_id, f[F_ID].str);
		goto done;
	}
	(void)cf_agent__cert_id(id, sk_X509_value(leaf, 0), NULL);
	if (f[F_ID].present && strcmp(f[F_ID].str, id) != 0)
		logf_(a, CF_AGENT_LOG_WARN, NULL, "event=crt note=\"certificateId %.64s is not "
		      "the certificate's SHA-256\" cert=%s", f[F_ID].str, id);
	/* A duplicate delivery of the certificate already promoted: acknowledge again. */
	if (strcmp(id, a->current_id) == 0) {
		rc = cf_agent__json_object(&payload, &payload_len, "rotationId", rotation_id,
					   "certificateId", id, (const char *)NULL);
		if (rc != CF_AGENT_OK)
			goto out;
		publish(a, a->t_crt_ack, payload, payload_len);
		payload = NULL;
		goto done;
	}
	if (a->staged_key != NULL && EVP_PKEY_up_ref(a->staged_key) == 1)
		key = a->staged_key;
	if (!cf_agent__file_exists(stg, CF_AGENT__CSR_FILE) ||
	    (key == NULL && cf_agent__key_load(&key, stg, &e) != CF_AGENT_OK)) {
		rotation_fail(a, "NO_STAGED_KEY", "no csr_req was answered for this certificate",
			      rotation_id, id);
		goto done;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(leaf, 0)), key) != 1) {
		ERR_clear_error();
		rotation_fail(a, "KEY_MISMATCH", "the certificate is not for the staged key",
			      rotation_id, id);
		goto done;
	}
	/* Untrusted intermediates: caChainPem, plus anything after the leaf. */
	if (f[F_CHAIN].present && f[F_CHAIN].len > 0 &&
	    cf_agent__certs_parse(&chain, f[F_CHAIN].str, f[F_CHAIN].len, &e) != CF_AGENT_OK) {
		rotation_fail(a, "BAD_CERTIFICATE", "caChainPem is not PEM", rotation_id, id);
		goto done;
	}
	if (chain == NULL)
		chain = sk_X509_new_null();
	store_chain = sk_X509_new_null();
	if (chain == NULL || store_chain == NULL ||
	    sk_X509_push(store_chain, sk_X509_value(leaf, 0)) == 0) {
		rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "crt");
		goto out;
	}
	X509_up_ref(sk_X509_value(leaf, 0));
	for (i = 1; i < sk_X509_num(leaf); i++) {
		X509 *c = sk_X509_value(leaf, i);

		if (sk_X509_push(chain, c) == 0) {
			rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "crt");
			goto out;
		}
		X509_up_ref(c);
	}
	if (cf_agent__cert_verify(a->store, sk_X509_value(leaf, 0), chain, &e) != CF_AGENT_OK) {
		rotation_fail(a, "UNTRUSTED", e.msg, rotation_id, id);
		goto done;
	}
	/* cert.pem: the leaf, then the intermediates (self-signed roots left out). */
	for (i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);

		if (X509_check_issued(c, c) == X509_V_OK)
			continue;
		if (sk_X509_push(store_chain, c) == 0) {
			rc = cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "crt");
			goto out;
		}
		X509_up_ref(c);
	}
	rc = cf_agent__certs_to_pem(&pem, &pem_len, store_chain, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__json_object(&rot, &rot_len, "rotationId", rotation_id,
					   "certificateId", id, "keyType", st[ROT_KEY_TYPE].str,
					   (const char *)NULL);
	/* rotation.json first, cert.pem last: cert.pem present means "stored" (rule R3). */
	if (rc == CF_AGENT_OK)
		rc = cf_agent__file_write(stg, CF_AGENT__ROT_FILE, rot, rot_len, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__file_write(stg, CF_AGENT__CERT_FILE, pem, pem_len, err);
	if (rc != CF_AGENT_OK)
		goto out;
	/* The staged identity's context, from what was just checked (no file read again). */
	ssl_drop(a, CF_AGENT_SLOT_STAGING);
	if (cf_agent__ssl_ctx_new(&a->ssl[CF_AGENT_SLOT_STAGING], a->store, store_chain, key,
				  &e) != CF_AGENT_OK) {
		rotation_fail(a, "BAD_IDENTITY", e.msg, rotation_id, id);
		goto done;
	}
	logf_(a, CF_AGENT_LOG_INFO, NULL, "event=crt_stored rotation=%s cert=%s",
	      rotation_id != NULL ? rotation_id : "-", id);
	emit(a, CF_AGENT_EVENT_CERT_STAGED, id);
	a->staged_refusals = 0;
	schedule_connect(a, CF_AGENT_SLOT_STAGING, 0);
done:
	rc = CF_AGENT_OK;
out:
	sk_X509_pop_free(leaf, X509_free);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(store_chain, X509_free);
	EVP_PKEY_free(key);
	free(rot);
	free(pem);
	free(payload);
	cf_agent__json_fields_clear(f, F_N);
	cf_agent__json_fields_clear(st, ROT_N);
	return rc;
}

static int
on_csr_rej(cf_agent *a, const char *text, size_t len, cf_agent_err *err)
{
	cf_agent__json_field f[3] = {
		{ "code", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "message", CF_AGENT__JSON_STR, false, false, NULL, 0 },
		{ "rotationId", CF_AGENT__JSON_STR, false, false, NULL, 0 },
	};
	cf_agent__json_field st[ROT_N];
	int rc;

	memset(st, 0, sizeof(st));
	rc = cf_agent__json_read(text, len, f, 3, err);
	if (rc != CF_AGENT_OK)
		return rc;
	(void)rot_read(st, a->dir[CF_AGENT_SLOT_STAGING], CF_AGENT__ROT_FILE, NULL);
	if (f[2].present && st[ROT_ID].present && strcmp(f[2].str, st[ROT_ID].str) != 0) {
		logf_(a, CF_AGENT_LOG_INFO, NULL, "event=csr_rej rotation=%.64s note=\"not the "
		      "staged rotation; ignored\"", f[2].str);
	} else {
		logf_(a, CF_AGENT_LOG_WARN, NULL, "event=csr_rej rotation=%.64s code=%.40s "
		      "message=\"%.120s\"", f[2].present ? f[2].str : "-",
		      f[0].present ? f[0].str : "-", f[1].present ? f[1].str : "");
		staging_discard(a);
		emit(a, CF_AGENT_EVENT_CSR_REJECTED, f[0].present ? f[0].str : "");
	}
	cf_agent__json_fields_clear(f, 3);
	cf_agent__json_fields_clear(st, ROT_N);
	return CF_AGENT_OK;
}

int
cf_agent_handle_message(cf_agent *a, const char *t, const void *payload, size_t len,
			cf_agent_err *err)
{
	int (*handler)(cf_agent *, const char *, size_t, cf_agent_err *);
	cf_agent_err local = { 0, NULL, { 0 } };
	int rc;

	if (err == NULL)
		err = &local;
	if (t == NULL)
		return CF_AGENT_OK;
	if (strcmp(t, a->t_csr_req) == 0)
		handler = on_csr_req;
	else if (strcmp(t, a->t_crt) == 0)
		handler = on_crt;
	else if (strcmp(t, a->t_csr_rej) == 0)
		handler = on_csr_rej;
	else
		return CF_AGENT_OK;
	if (len > a->max_payload || (len > 0 && payload == NULL)) {
		rc = cf_agent__err_set(err, CF_AGENT_EINVAL, "TOO_LARGE",
				       "payload of %zu bytes (limit %zu)", len, a->max_payload);
		logf_(a, CF_AGENT_LOG_ERR, err, "event=message topic=%s note=dropped", t);
		return rc;
	}
	rc = handler(a, payload, len, err);
	if (rc != CF_AGENT_OK)
		logf_(a, CF_AGENT_LOG_ERR, err, "event=message topic=%s note=dropped", t);
	return rc;
}
