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
 *   cert.registered create a certificate with the "status" and "policies"
 *   of their detail, cert.status moves it "from" -> "to", policy.attached
 *   and policy.detached add or remove their "policy", cert.deleted marks
 *   an INACTIVE or REVOKED one deleted (never to be ACTIVE again). Each of
 *   these six sets the certificate's change_seq, as the backends do. The result
 *   lives in an open addressing hash table keyed by the 32-byte id (the 64
 *   hex digits decoded): 56 bytes a slot, at most half of the slots used,
 *   so 112 to 224 bytes per certificate, and one pass over a log of
 *   millions of events without a query per certificate.
 * - Policy attachments are kept as sets, interned: a policy name is a
 *   number (names[]), a set of policies a sorted array of those numbers
 *   stored once (sets[], pool[]), and a slot holds 4 bytes, the number of
 *   its set. A million certificates that all carry the same policy share
 *   one set; an attach or a detach interns the set with one more or one
 *   fewer member.
 * - Then every row of the certificate table is compared with the table (a
 *   row without an issuing event, a status, a deletion or a change_seq the
 *   events do not give), then every row of the attachment table, arriving grouped
 *   by certificate: each must be in the certificate's set, and when the
 *   group ends (marks[]) every member of the set must have had its row.
 *   At the end, an issued certificate without a row, or with policies
 *   but no attachment row at all, is tampering too.
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
	int64_t last_seq;   /* seq of the last event about it; 0: the slot is empty */
	int64_t change_seq; /* seq of the last event that changed it */
	uint32_t pset;      /* its policies: index into sets[] (0: none) */
	unsigned char status;
	bool deleted; /* cert.deleted */
	bool seen;   /* its row was found */
	bool linked; /* its attachment rows were read */
};

/* A set of policies: n sorted name numbers at pool[off]. */
struct pset {
	uint32_t off;
	uint32_t n;
};

/*
 * An open addressing index over entries numbered from 0 (names or sets):
 * a slot holds the entry's number + 1, 0 when empty.
 */
struct index {
	uint32_t *slots;
	size_t nslots; /* a power of two, or 0 */
};

struct cf_store__verify {
	cf_store *store; /* for the hash */
	bool has_anchor;
	bool chain_only; /* cf_store_events_verify_chain(): from the anchor, no replay */
	cf_store_event_anchor anchor;
	int64_t expect; /* next seq */
	char prev[65];  /* hash the next event must point at */
	int64_t count;
	struct slot *slots;
	size_t nslots; /* a power of two */
	size_t used;

	char **names; /* interned policy names */
	uint32_t nnames;
	size_t names_cap;
	struct index name_index;
	struct pset *sets; /* interned policy sets; sets[0] is the empty set */
	uint32_t nsets;
	size_t sets_cap;
	struct index set_index;
	uint32_t *pool; /* the members of every set */
	size_t npool, pool_cap;
	uint32_t *scratch; /* the set being built */
	size_t scratch_cap;

	struct slot *cur;     /* the certificate whose attachment rows are being read */
	unsigned char *marks; /* per member of cur's set: its row was read */
	size_t marks_cap;
};

/* p grown to hold at least need elements of size bytes, or NULL (p untouched). */
static void *
array_grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap < 16 ? 16 : *cap;

	if (need <= *cap && p != NULL)
		return p;
	while (n < need)
		n *= 2;
	if (n > SIZE_MAX / size)
		return NULL;
	p = realloc(p, n * size);
	if (p != NULL)
		*cap = n;
	return p;
}

int
cf_store__verify_new(cf_store__verify **out, cf_store *store, const cf_store_event_anchor *anchor,
		     bool chain_only, cf_err *err)
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
	v->sets = calloc(1, sizeof(*v->sets)); /* the empty set, number 0 */
	if (v->sets == NULL) {
		cf_store__verify_free(v);
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy sets");
	}
	v->sets_cap = 1;
	v->nsets = 1;
	/* Never NULL, so that an empty set still points somewhere. */
	v->pool = array_grow(NULL, &v->pool_cap, 16, sizeof(*v->pool));
	v->scratch = array_grow(NULL, &v->scratch_cap, 16, sizeof(*v->scratch));
	if (v->pool == NULL || v->scratch == NULL) {
		cf_store__verify_free(v);
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy sets");
	}
	v->store = store;
	v->expect = 1;
	memcpy(v->prev, CF_STORE_GENESIS_HASH, sizeof(v->prev));
	if (anchor != NULL) {
		v->has_anchor = true;
		v->anchor = *anchor;
	}
	v->chain_only = chain_only;
	if (chain_only && anchor != NULL && anchor->seq > 0)
		v->expect = anchor->seq;
	*out = v;
	return CF_OK;
}

void
cf_store__verify_free(cf_store__verify *v)
{
	uint32_t i;

	if (v == NULL)
		return;
	free(v->slots);
	for (i = 0; i < v->nnames; i++)
		free(v->names[i]);
	free(v->names);
	free(v->name_index.slots);
	free(v->sets);
	free(v->set_index.slots);
	free(v->pool);
	free(v->scratch);
	free(v->marks);
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

/* ---- the policy sets ----------------------------------------------------- */

/* FNV-1a, 64 bits. */
static size_t
fnv(const void *data, size_t len)
{
	const unsigned char *b = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return (size_t)(h ^ h >> 32);
}

static size_t
name_hash(const cf_store__verify *v, uint32_t k)
{
	return fnv(v->names[k], strlen(v->names[k]));
}

static size_t
set_hash(const cf_store__verify *v, uint32_t k)
{
	return fnv(v->pool + v->sets[k].off, v->sets[k].n * sizeof(uint32_t));
}

/* Make room in ix for entry number count (entries 0 .. count - 1 are in it). */
static int
index_reserve(cf_store__verify *v, struct index *ix, uint32_t count,
	      size_t (*hash)(const cf_store__verify *v, uint32_t k))
{
	size_t n = ix->nslots == 0 ? 64 : ix->nslots, j;
	uint32_t *slots, k;

	if (ix->nslots != 0 && (size_t)count + 1 <= ix->nslots / 2)
		return CF_OK;
	while ((size_t)count + 1 > n / 2)
		n *= 2;
	slots = calloc(n, sizeof(*slots));
	if (slots == NULL)
		return CF_ENOMEM;
	for (k = 0; k < count; k++) {
		j = hash(v, k) & (n - 1);
		while (slots[j] != 0)
			j = (j + 1) & (n - 1);
		slots[j] = k + 1;
	}
	free(ix->slots);
	ix->slots = slots;
	ix->nslots = n;
	return CF_OK;
}

/* The index slot of name: its number + 1, or the empty slot where it would go. */
static uint32_t *
name_probe(const cf_store__verify *v, const char *name)
{
	size_t mask = v->name_index.nslots - 1, i = fnv(name, strlen(name)) & mask;
	uint32_t *slots = v->name_index.slots;

	while (slots[i] != 0 && strcmp(v->names[slots[i] - 1], name) != 0)
		i = (i + 1) & mask;
	return &slots[i];
}

/* The number of a policy name seen in the events; false when none named it. */
static bool
name_find(const cf_store__verify *v, uint32_t *out, const char *name)
{
	uint32_t *slot;

	if (v->name_index.nslots == 0)
		return false;
	slot = name_probe(v, name);
	if (*slot == 0)
		return false;
	*out = *slot - 1;
	return true;
}

static int
name_intern(cf_store__verify *v, uint32_t *out, const char *name, cf_err *err)
{
	uint32_t *slot;
	char **names;

	if (index_reserve(v, &v->name_index, v->nnames, name_hash) != CF_OK)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy names");
	slot = name_probe(v, name);
	if (*slot != 0) {
		*out = *slot - 1;
		return CF_OK;
	}
	names = array_grow(v->names, &v->names_cap, (size_t)v->nnames + 1, sizeof(*names));
	if (names == NULL || v->nnames == UINT32_MAX - 1)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy names");
	v->names = names;
	names[v->nnames] = strdup(name);
	if (names[v->nnames] == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy names");
	*out = v->nnames++;
	*slot = v->nnames;
	return CF_OK;
}

/* The number of the set of the n sorted ids, added if new. ids is not in pool. */
static int
set_intern(cf_store__verify *v, uint32_t *out, const uint32_t *ids, uint32_t n, cf_err *err)
{
	size_t mask, i, bytes = n * sizeof(uint32_t);
	struct pset *sets;
	uint32_t *pool, *slots;

	if (index_reserve(v, &v->set_index, v->nsets, set_hash) != CF_OK)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy sets");
	slots = v->set_index.slots;
	mask = v->set_index.nslots - 1;
	for (i = fnv(ids, bytes) & mask; slots[i] != 0; i = (i + 1) & mask) {
		const struct pset *ps = &v->sets[slots[i] - 1];

		if (ps->n == n && memcmp(v->pool + ps->off, ids, bytes) == 0) {
			*out = slots[i] - 1;
			return CF_OK;
		}
	}
	sets = array_grow(v->sets, &v->sets_cap, (size_t)v->nsets + 1, sizeof(*sets));
	if (sets == NULL || v->nsets == UINT32_MAX - 1 || v->npool + n > UINT32_MAX)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy sets");
	v->sets = sets;
	pool = array_grow(v->pool, &v->pool_cap, v->npool + n, sizeof(*pool));
	if (pool == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy sets");
	v->pool = pool;
	if (n > 0)
		memcpy(pool + v->npool, ids, bytes);
	sets[v->nsets].off = (uint32_t)v->npool;
	sets[v->nsets].n = n;
	v->npool += n;
	*out = v->nsets++;
	slots[i] = v->nsets;
	return CF_OK;
}

/* Where id is in the set, or (false) where it would go. */
static bool
set_pos(const cf_store__verify *v, uint32_t set, uint32_t id, uint32_t *pos)
{
	const uint32_t *ids = v->pool + v->sets[set].off;
	uint32_t lo = 0, hi = v->sets[set].n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return lo < v->sets[set].n && ids[lo] == id;
}

static int
scratch_reserve(cf_store__verify *v, size_t n, cf_err *err)
{
	uint32_t *p = array_grow(v->scratch, &v->scratch_cap, n, sizeof(*p));

	if (p == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy sets");
	v->scratch = p;
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

/* The set of the detail's "policies" (an array of names, each at most once). */
static int
detail_policies(cf_store__verify *v, uint32_t *out, const cf_store_event *ev, json_t *detail,
		cf_err *err)
{
	json_t *list = json_object_get(detail, "policies"), *item;
	const char *name;
	uint32_t n = 0, id, pos;
	size_t i;
	int rc;

	if (!json_is_array(list))
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: %s without a policies list", (long long)ev->seq,
				  ev->action);
	rc = scratch_reserve(v, json_array_size(list), err);
	if (rc != CF_OK)
		return rc;
	json_array_foreach (list, i, item) {
		name = json_string_value(item);
		if (name == NULL)
			return cf_err_set(err, CF_EINTEGRITY, NULL,
					  "event %lld: a policy that is not a string",
					  (long long)ev->seq);
		rc = name_intern(v, &id, name, err);
		if (rc != CF_OK)
			return rc;
		/* Insertion sort: a certificate has a policy or two. */
		for (pos = n; pos > 0 && v->scratch[pos - 1] > id; pos--)
			v->scratch[pos] = v->scratch[pos - 1];
		if (pos > 0 && v->scratch[pos - 1] == id)
			return cf_err_set(err, CF_EINTEGRITY, NULL,
					  "event %lld: policy '%.64s' is listed twice",
					  (long long)ev->seq, name);
		v->scratch[pos] = id;
		n++;
	}
	return set_intern(v, out, v->scratch, n, err);
}

/* s: the slot of id, with room in the table for one more. */
static int
replay_issued(cf_store__verify *v, const cf_store_event *ev, struct slot *s,
	      const unsigned char id[32], json_t *detail, int64_t *bad_seq, cf_err *err)
{
	cf_cert_status status;
	uint32_t pset;
	int rc;

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
	rc = detail_policies(v, &pset, ev, detail, err);
	if (rc != CF_OK)
		return rc;
	memcpy(s->id, id, 32);
	s->last_seq = ev->seq;
	s->status = (unsigned char)status;
	s->pset = pset;
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
	if (to == CF_CERT_ACTIVE && s->deleted)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: certificate %.16s goes ACTIVE after it was deleted",
				  (long long)ev->seq, ev->resource + CERT_PREFIX_LEN);
	s->status = (unsigned char)to;
	*bad_seq = 0;
	return CF_OK;
}

/* cert.deleted: once, and only of a certificate that is no longer in use. */
static int
replay_deleted(const cf_store_event *ev, struct slot *s, int64_t *bad_seq, cf_err *err)
{
	*bad_seq = ev->seq;
	if (s->deleted)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: certificate %.16s is deleted twice",
				  (long long)ev->seq, ev->resource + CERT_PREFIX_LEN);
	if (s->status != CF_CERT_INACTIVE && s->status != CF_CERT_REVOKED)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: certificate %.16s is deleted while %s",
				  (long long)ev->seq, ev->resource + CERT_PREFIX_LEN,
				  cf_cert_status_name((cf_cert_status)s->status));
	s->deleted = true;
	*bad_seq = 0;
	return CF_OK;
}

/* policy.attached / policy.detached: the set with one more or one fewer member. */
static int
replay_link(cf_store__verify *v, const cf_store_event *ev, struct slot *s, json_t *detail,
	    bool attach, int64_t *bad_seq, cf_err *err)
{
	const char *name = json_string_value(json_object_get(detail, "policy"));
	const uint32_t *ids;
	uint32_t id = 0, pos = 0, n;
	bool has;
	int rc;

	*bad_seq = ev->seq;
	if (name == NULL)
		return cf_err_set(err, CF_EINTEGRITY, NULL, "event %lld: %s without a policy",
				  (long long)ev->seq, ev->action);
	if (attach) {
		rc = name_intern(v, &id, name, err);
		if (rc != CF_OK)
			return rc;
	}
	has = (attach || name_find(v, &id, name)) && set_pos(v, s->pset, id, &pos);
	if (attach == has)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "event %lld: policy '%.64s' %s certificate %.16s, which %s it",
				  (long long)ev->seq, name,
				  attach ? "attached to" : "detached from",
				  ev->resource + CERT_PREFIX_LEN,
				  attach ? "already has" : "does not have");
	n = v->sets[s->pset].n;
	rc = scratch_reserve(v, (size_t)n + 1, err);
	if (rc != CF_OK)
		return rc;
	ids = v->pool + v->sets[s->pset].off;
	memcpy(v->scratch, ids, pos * sizeof(*ids));
	if (attach) {
		v->scratch[pos] = id;
		memcpy(v->scratch + pos + 1, ids + pos, (n - pos) * sizeof(*ids));
		n++;
	} else {
		memcpy(v->scratch + pos, ids + pos + 1, (n - pos - 1) * sizeof(*ids));
		n--;
	}
	rc = set_intern(v, &s->pset, v->scratch, n, err);
	if (rc != CF_OK)
		return rc;
	*bad_seq = 0;
	return CF_OK;
}

/*
 * Apply one chained event about a certificate. The six actions above set
 * change_seq, as the backends do; any other event about a certificate only
 * moves last_seq.
 */
static int
replay(cf_store__verify *v, const cf_store_event *ev, int64_t *bad_seq, cf_err *err)
{
	bool issued, status, attach, detach, deleted;
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
	attach = strcmp(ev->action, "policy.attached") == 0;
	detach = strcmp(ev->action, "policy.detached") == 0;
	deleted = strcmp(ev->action, "cert.deleted") == 0;
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
	if (issued || status || attach || detach || deleted) {
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
	else if (attach || detach)
		rc = replay_link(v, ev, s, detail, attach, bad_seq, err);
	else if (deleted)
		rc = replay_deleted(ev, s, bad_seq, err);
	if (rc == CF_OK) {
		s->last_seq = ev->seq;
		if (detail != NULL)
			s->change_seq = ev->seq;
	}
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
		if (v->chain_only && v->count == 0 && v->has_anchor && v->anchor.seq > 0)
			return cf_err_set(err, CF_EINTEGRITY, NULL,
					  "the log no longer holds event %lld, the anchor: it was "
					  "truncated or rewritten since",
					  (long long)v->expect);
		return cf_err_set(err, CF_EINTEGRITY, NULL, "event %lld is missing (next is %lld)",
				  (long long)v->expect, (long long)ev->seq);
	}
	/*
	 * A walk from an anchor starts at the anchor's event: its own link is
	 * taken as stored, and its hash, compared with the anchor's below, vouches
	 * for it.
	 */
	if (v->chain_only && v->count == 0 && v->has_anchor && v->anchor.seq > 0)
		snprintf(v->prev, sizeof(v->prev), "%s", ev->prev_hash != NULL ? ev->prev_hash : "");
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
	if (!v->chain_only) {
		rc = replay(v, ev, bad_seq, err);
		if (rc != CF_OK)
			return rc;
	}
	memcpy(v->prev, hash, sizeof(hash));
	v->expect++;
	v->count++;
	return CF_OK;
}

int64_t
cf_store__verify_last(const cf_store__verify *v, cf_store_event_anchor *out)
{
	out->seq = v->expect - 1;
	memcpy(out->hash, v->prev, sizeof(out->hash));
	return out->seq;
}

int
cf_store__verify_head(cf_store__verify *v, int64_t head_seq, const char *head_hash,
		      int64_t *bad_seq, cf_err *err)
{
	/* A walk from an anchor that found no event at all: the log ends before it. */
	if (v->chain_only && v->count == 0 && v->has_anchor && v->anchor.seq > 0) {
		*bad_seq = v->anchor.seq;
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "the log ends at event %lld, before the anchor (event %lld): "
				  "the log was truncated or rewritten before the anchor",
				  (long long)head_seq, (long long)v->anchor.seq);
	}
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
cf_store__verify_cert(cf_store__verify *v, const char *id, const char *status, int64_t change_seq,
		      bool deleted, int64_t *bad_seq, cf_err *err)
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
	if (deleted != s->deleted)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "certificate %s is %s in the registry, but its events "
				  "(last: %lld) %s",
				  id, deleted ? "deleted" : "not deleted", (long long)s->last_seq,
				  s->deleted ? "deleted it" : "never deleted it");
	if (change_seq != s->change_seq)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "certificate %s has change_seq %lld in the registry, but its "
				  "last change is event %lld",
				  id, (long long)change_seq, (long long)s->change_seq);
	s->seen = true;
	*bad_seq = 0;
	return CF_OK;
}

/* ---- the policy attachment rows ------------------------------------------ */

/* A policy of s's set without a row. */
static int
link_missing(cf_store__verify *v, const struct slot *s, uint32_t member, int64_t *bad_seq,
	     cf_err *err)
{
	char hex[65];

	cf_hex_encode(hex, s->id, 32);
	*bad_seq = s->last_seq;
	return cf_err_set(err, CF_EINTEGRITY, NULL,
			  "policy '%s' is attached to certificate %s by its events (last: %lld), "
			  "but not in the registry",
			  v->names[v->pool[v->sets[s->pset].off + member]], hex,
			  (long long)s->last_seq);
}

/* The rows of v->cur are all read: each member of its set must have had one. */
static int
link_group_end(cf_store__verify *v, int64_t *bad_seq, cf_err *err)
{
	const struct slot *s = v->cur;
	uint32_t k;

	if (s == NULL)
		return CF_OK;
	v->cur = NULL;
	for (k = 0; k < v->sets[s->pset].n; k++) {
		if (!v->marks[k])
			return link_missing(v, s, k, bad_seq, err);
	}
	return CF_OK;
}

/* The next certificate's rows begin. */
static int
link_group_begin(cf_store__verify *v, struct slot *s, int64_t *bad_seq, cf_err *err)
{
	unsigned char *marks;
	uint32_t n = v->sets[s->pset].n;
	int rc;

	rc = link_group_end(v, bad_seq, err);
	if (rc != CF_OK)
		return rc;
	*bad_seq = 0;
	if (s->linked)
		return cf_err_set(err, CF_ESTORE, NULL,
				  "events verify: the policy attachments of a certificate do not "
				  "come together");
	marks = array_grow(v->marks, &v->marks_cap, n, sizeof(*marks));
	if (marks == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "events verify: policy attachments");
	v->marks = marks;
	memset(marks, 0, n);
	s->linked = true;
	v->cur = s;
	return CF_OK;
}

int
cf_store__verify_link(cf_store__verify *v, const char *cert_id, const char *policy,
		      int64_t *bad_seq, cf_err *err)
{
	unsigned char raw[32];
	uint32_t id = 0, pos = 0;
	struct slot *s;
	int rc;

	*bad_seq = 0;
	if (policy == NULL)
		policy = "";
	if (cert_id == NULL || !id_decode(raw, cert_id))
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "policy '%.64s' is attached to '%.64s', which is not a "
				  "certificate id",
				  policy, cert_id ? cert_id : "NULL");
	s = slot_find(v->slots, v->nslots, raw);
	if (s->last_seq == 0)
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "policy '%.64s' is attached to certificate %s, which no event "
				  "issued",
				  policy, cert_id);
	if (s != v->cur) {
		rc = link_group_begin(v, s, bad_seq, err);
		if (rc != CF_OK)
			return rc;
	}
	*bad_seq = s->last_seq;
	if (!name_find(v, &id, policy) || !set_pos(v, s->pset, id, &pos))
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "policy '%.64s' is attached to certificate %s in the registry, "
				  "but not by its events (last: %lld)",
				  policy, cert_id, (long long)s->last_seq);
	if (v->marks[pos])
		return cf_err_set(err, CF_EINTEGRITY, NULL,
				  "policy '%.64s' is attached to certificate %s twice", policy,
				  cert_id);
	v->marks[pos] = 1;
	*bad_seq = 0;
	return CF_OK;
}

int
cf_store__verify_end(cf_store__verify *v, int64_t *bad_seq, cf_err *err)
{
	const struct slot *s;
	char hex[65];
	size_t i;
	int rc;

	rc = link_group_end(v, bad_seq, err);
	if (rc != CF_OK)
		return rc;
	for (i = 0; i < v->nslots; i++) {
		s = &v->slots[i];
		if (s->last_seq == 0)
			continue;
		if (!s->seen) {
			cf_hex_encode(hex, s->id, 32);
			*bad_seq = s->last_seq;
			return cf_err_set(err, CF_EINTEGRITY, NULL,
					  "certificate %s was issued by the events (last: %lld) "
					  "but has no row in the registry",
					  hex, (long long)s->last_seq);
		}
		if (!s->linked && v->sets[s->pset].n > 0)
			return link_missing(v, s, 0, bad_seq, err);
	}
	return CF_OK;
}
