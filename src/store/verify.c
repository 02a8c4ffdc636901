/*
 * verify.c: cf_store_events_verify()'s checks, shared by every backend. The
 * backend reads the rows; the decisions are made here, once.
 *
 * How it works:
 * - Events arrive in seq order. Each must follow the previous one (no gap),
 *   point at its hash and hash to its own hash column (the chain).
 * - When the caller passed an anchor (a head recorded earlier), the event
 *   at the anchor's seq must carry exactly the anchor's hash: the head row
 *   lives in the same file as the log, so a log truncated (or rewritten and
 *   rehashed) together with its head is only caught against an outside
 *   record.
 * - The certificate events are replayed as they pass: cert.issued and
 *   cert.registered create a certificate with the "status" of their detail,
 *   cert.status moves it "from" -> "to". The result lives in an open
 *   addressing hash table keyed by the 32-byte id (the 64 hex digits
 *   decoded): 48 bytes a slot, at most half of the slots used, so about
 *   100 bytes per certificate, and one pass over a log of millions of
 *   events without a query per certificate.
 * - Then every row of the certificate table is compared with the table:
 *   a row without an issuing event, a status the events do not give, and
 *   (at the end) an issued certificate without a row are tampering.
 */
#include "store_backend.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define CERT_PREFIX     "cert:"
#define CERT_PREFIX_LEN (sizeof(CERT_PREFIX) - 1)
#define MIN_SLOTS       1024

/* One replayed certificate. */
struct slot {
	unsigned char id[32];
	int64_t last_seq; /* seq of the last event about it; 0: the slot is empty */
	unsigned char status;
	bool seen; /* its row was found */
};

struct cf_store__verify {
	cf_store *store; /* for the hash */
	bool has_anchor;
	cf_store_event_anchor anchor;
	int64_t expect; /* next seq */
	char prev[65];  /* hash the next event must point at */
	int64_t count;
	struct slot *slots;
	size_t nslots; /* a power of two */
	size_t used;
};

int
cf_store__verify_new(cf_store__verify **out, cf_store *store, const cf_store_event_anchor *anchor,
		     cf_err *err)
{
	cf_store__verify *v;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify");
	v->slots = calloc(MIN_SLOTS, sizeof(*v->slots));
	if (v->slots == NULL) {
		free(v);
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: certificate table");
	}
	v->nslots = MIN_SLOTS;
	v->store = store;
	v->expect = 1;
	memcpy(v->prev, CF_STORE_GENESIS_HASH, sizeof(v->prev));
	if (anchor != NULL) {
		v->has_anchor = true;
		v->anchor = *anchor;
	}
	*out = v;
	return CF_OK;
}

void
cf_store__verify_free(cf_store__verify *v)
{
	if (v == NULL)
		return;
	free(v->slots);
	free(v);
}

int64_t
cf_store__verify_count(const cf_store__verify *v)
{
	return v->count;
}

/* ---- the certificate table ----------------------------------------------- */

static int
hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 64 lowercase hex digits, nothing after them, into 32 bytes. */
static bool
id_decode(unsigned char out[32], const char *hex)
{
	int hi, lo;
	size_t i;

	for (i = 0; i < 32; i++) {
		hi = hex_val(hex[2 * i]);
		lo = hi < 0 ? -1 : hex_val(hex[2 * i + 1]);
		if (lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return hex[64] == '\0';
}

/*
 * Ids are SHA-256 digests, but the table must not degrade on ids that are
 * not (tests, a forged row): mix all 32 bytes with splitmix64's finalizer.
 */
static size_t
id_hash(const unsigned char id[32])
{
	uint64_t h = 0, w;
	size_t i, j;

	for (i = 0; i < 32; i += 8) {
		w = 0;
		for (j = 0; j < 8; j++)
			w = w << 8 | id[i + j];
		h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return (size_t)h;
}

/* The slot of id: its entry, or the empty slot where it would go. */
static struct slot *
slot_find(struct slot *slots, size_t nslots, const unsigned char id[32])
{
	size_t i = id_hash(id) & (nslots - 1);

	while (slots[i].last_seq != 0 && memcmp(slots[i].id, id, 32) != 0)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

/* Double the table when it is half full: linear probing stays short. */
static int
table_grow(cf_store__verify *v, cf_err *err)
{
	struct slot *slots, *s;
	size_t n = v->nslots * 2, i;

	if (v->used + 1 <= v->nslots / 2)
		return CF_OK;
	slots = calloc(n, sizeof(*slots));
	if (slots == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: %zu certificates",
				  v->used);
	for (i = 0; i < v->nslots; i++) {
		if (v->slots[i].last_seq == 0)
			continue;
		s = slot_find(slots, n, v->slots[i].id);
		*s = v->slots[i];
	}
	free(v->slots);
	v->slots = slots;
	v->nslots = n;
	return CF_OK;
}

/* ---- replaying events ---------------------------------------------------- */

/* A status name from an event detail. */
static int
detail_status(cf_cert_status *out, json_t *detail, const char *key)
{
	const char *name = json_string_value(json_object_get(detail, key));

	if (name == NULL || cf_cert_status_parse(out, name) != CF_OK ||
	    strcmp(name, cf_cert_status_name(*out)) != 0)
		return CF_EINVAL;
	return CF_OK;
}

/* s: the slot of id, with room in the table for one more. */
static int
replay_issued(cf_store__verify *v, const cf_store_event *ev, struct slot *s,
	      const unsigned char id[32], json_t *detail, int64_t *bad_seq, cf_err *err)
{
	cf_cert_status status;

	*bad_seq = ev->seq;
	if (s->last_seq != 0)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: certificate %.16s was already issued by event %lld",
				  (long long)ev->seq, ev->resource + CERT_PREFIX_LEN,
				  (long long)s->last_seq);
	if (detail_status(&status, detail, "status") != CF_OK)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: %s without a valid status", (long long)ev->seq,
				  ev->action);
	memcpy(s->id, id, 32);
	s->last_seq = ev->seq;
	s->status = (unsigned char)status;
	v->used++;
	*bad_seq = 0;
	return CF_OK;
}

static int
replay_status(const cf_store_event *ev, struct slot *s, json_t *detail, int64_t *bad_seq,
	      cf_err *err)
{
	cf_cert_status from, to;

	*bad_seq = ev->seq;
	if (detail_status(&from, detail, "from") != CF_OK ||
	    detail_status(&to, detail, "to") != CF_OK)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: cert.status without valid from and to",
				  (long long)ev->seq);
	if (from != (cf_cert_status)s->status)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: certificate %.16s goes from %s, but the events "
				  "before left it %s",
				  (long long)ev->seq, ev->resource + CERT_PREFIX_LEN,
				  cf_cert_status_name(from),
				  cf_cert_status_name((cf_cert_status)s->status));
	s->status = (unsigned char)to;
	*bad_seq = 0;
	return CF_OK;
}

/*
 * Apply one chained event about a certificate. Other events about a
 * certificate (policy.attached, policy.detached) only move last_seq.
 */
static int
replay(cf_store__verify *v, const cf_store_event *ev, int64_t *bad_seq, cf_err *err)
{
	bool issued, status;
	unsigned char id[32];
	json_t *detail = NULL;
	struct slot *s;
	int rc = CF_OK;

	if (strncmp(ev->resource, CERT_PREFIX, CERT_PREFIX_LEN) != 0)
		return CF_OK;
	if (!id_decode(id, ev->resource + CERT_PREFIX_LEN)) {
		*bad_seq = ev->seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL, "event %lld: bad certificate id",
				  (long long)ev->seq);
	}
	issued = strcmp(ev->action, "cert.issued") == 0 ||
		 strcmp(ev->action, "cert.registered") == 0;
	status = strcmp(ev->action, "cert.status") == 0;
	if (issued) {
		rc = table_grow(v, err);
		if (rc != CF_OK)
			return rc;
	}
	s = slot_find(v->slots, v->nslots, id);
	if (!issued && s->last_seq == 0) {
		*bad_seq = ev->seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: %s for certificate %.16s, which was never issued",
				  (long long)ev->seq, ev->action, ev->resource + CERT_PREFIX_LEN);
	}
	if (issued || status) {
		detail = json_loads(ev->detail, 0, NULL);
		if (!json_is_object(detail)) {
			json_decref(detail);
			*bad_seq = ev->seq;
			return cf_err_set(err, CF_EINTEGRITY, NULL,
					  "event %lld: detail is not a JSON object",
					  (long long)ev->seq);
		}
	}
	if (issued)
		rc = replay_issued(v, ev, s, id, detail, bad_seq, err);
	else if (status)
		rc = replay_status(ev, s, detail, bad_seq, err);
	else
		s->last_seq = ev->seq;
	if (rc == CF_OK && status)
		s->last_seq = ev->seq;
	json_decref(detail);
	return rc;
}

/* ---- the chain ----------------------------------------------------------- */

int
cf_store__verify_event(cf_store__verify *v, const cf_store_event *ev, int64_t *bad_seq,
		       cf_err *err)
{
	char hash[65];
	int rc;

	if (ev->seq != v->expect) {
		*bad_seq = v->expect;
		return cf_err_set(err, CF_EINTEGRITY, NULL, "event %lld is missing (next is %lld)",
				  (long long)v->expect, (long long)ev->seq);
	}
	if (strcmp(ev->prev_hash, v->prev) != 0) {
		*bad_seq = ev->seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld does not point at the previous hash",
				  (long long)ev->seq);
	}
	rc = cf_store__event_hash(v->store, hash, ev->prev_hash, ev->seq, ev->time, ev->actor,
				  ev->action, ev->resource, ev->detail, err);
	if (rc != CF_OK)
		return rc;
	if (strcmp(hash, ev->hash) != 0) {
		*bad_seq = ev->seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL, "event %lld was altered",
				  (long long)ev->seq);
	}
	if (v->has_anchor && ev->seq == v->anchor.seq && strcmp(hash, v->anchor.hash) != 0) {
		*bad_seq = ev->seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld differs from the anchor: the log was truncated or "
				  "rewritten before the anchor",
				  (long long)ev->seq);
	}
	rc = replay(v, ev, bad_seq, err);
	if (rc != CF_OK)
		return rc;
	memcpy(v->prev, hash, sizeof(hash));
	v->expect++;
	v->count++;
	return CF_OK;
}

int
cf_store__verify_head(cf_store__verify *v, int64_t head_seq, const char *head_hash,
		      int64_t *bad_seq, cf_err *err)
{
	if (head_seq >= v->expect) {
		*bad_seq = v->expect;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "events %lld to %lld are missing from the end of the log",
				  (long long)v->expect, (long long)head_seq);
	}
	if (head_seq != v->expect - 1 || strcmp(head_hash, v->prev) != 0) {
		*bad_seq = 0;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "the chain head (seq %lld) does not match the last event",
				  (long long)head_seq);
	}
	/* The anchor's own event was checked on the way; here it was never reached. */
	if (v->has_anchor && v->anchor.seq >= v->expect) {
		*bad_seq = v->expect;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "the log ends at event %lld, before the anchor (event %lld): "
				  "the log was truncated or rewritten before the anchor",
				  (long long)(v->expect - 1), (long long)v->anchor.seq);
	}
	if (v->has_anchor && v->anchor.seq == 0 &&
	    strcmp(v->anchor.hash, CF_STORE_GENESIS_HASH) != 0) {
		*bad_seq = 0;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "an anchor at seq 0 must carry the genesis hash");
	}
	return CF_OK;
}

/* ---- the certificate rows ------------------------------------------------ */

int
cf_store__verify_cert(cf_store__verify *v, const char *id, const char *status, int64_t *bad_seq,
		      cf_err *err)
{
	unsigned char raw[32];
	cf_cert_status st;
	struct slot *s;

	*bad_seq = 0;
	if (id == NULL || !id_decode(raw, id))
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "certificate row '%.64s' has no issuing event", id ? id : "");
	s = slot_find(v->slots, v->nslots, raw);
	if (s->last_seq == 0)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "certificate %s has a row but no issuing event", id);
	*bad_seq = s->last_seq;
	if (s->seen)
		return cf_err_set(err, CF_EINTEGRITY, NULL, "certificate %s has two rows", id);
	if (status == NULL || cf_cert_status_parse(&st, status) != CF_OK ||
	    st != (cf_cert_status)s->status || strcmp(status, cf_cert_status_name(st)) != 0)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "certificate %s is %.32s in the registry, but its events "
				  "(last: %lld) make it %s",
				  id, status ? status : "NULL", (long long)s->last_seq,
				  cf_cert_status_name((cf_cert_status)s->status));
	s->seen = true;
	*bad_seq = 0;
	return CF_OK;
}

int
cf_store__verify_end(cf_store__verify *v, int64_t *bad_seq, cf_err *err)
{
	char hex[65];
	size_t i;

	for (i = 0; i < v->nslots; i++) {
		if (v->slots[i].last_seq == 0 || v->slots[i].seen)
			continue;
		cf_hex_encode(hex, v->slots[i].id, 32);
		*bad_seq = v->slots[i].last_seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "certificate %s was issued by the events (last: %lld) but has "
				  "no row in the registry",
				  hex, (long long)v->slots[i].last_seq);
	}
	return CF_OK;
}
