/* The broker plugin's certificate index: an open-addressing table by certificate id. */
#include "index.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cf_broker_entry {
	char id[CF_BROKER_ID_LEN]; /* "" for a free slot */
	char *thing;               /* NULL when unbound */
	cf_cert_status status;
	int64_t not_before, not_after;
	bool deleted;
	unsigned int sessions; /* connected clients using it */
};

/* FNV-1a over the hex id: SHA-256 digits are uniform, any mix will do. */
static size_t
slot_of(const char *id, size_t cap)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (size_t)h & (cap - 1);
}

static cf_broker_entry *
find(const cf_broker_index *idx, const char *id)
{
	size_t i;

	if (idx->cap == 0)
		return NULL;
	for (i = slot_of(id, idx->cap);; i = (i + 1) & (idx->cap - 1)) {
		if (idx->slots[i].id[0] == '\0')
			return NULL;
		if (strcmp(idx->slots[i].id, id) == 0)
			return &idx->slots[i];
	}
}

/* The slot for id: its entry, or the free slot where it goes. */
static cf_broker_entry *
slot_for(cf_broker_index *idx, const char *id)
{
	size_t i;

	for (i = slot_of(id, idx->cap);; i = (i + 1) & (idx->cap - 1)) {
		if (idx->slots[i].id[0] == '\0' || strcmp(idx->slots[i].id, id) == 0)
			return &idx->slots[i];
	}
}

/* Keep the load under a half: double, and put every entry again. */
static int
grow(cf_broker_index *idx)
{
	cf_broker_index bigger = { NULL, idx->cap != 0 ? idx->cap * 2 : 1024, idx->n, idx->seq };
	size_t i;

	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return CF_ENOMEM;
	for (i = 0; i < idx->cap; i++) {
		if (idx->slots[i].id[0] != '\0')
			*slot_for(&bigger, idx->slots[i].id) = idx->slots[i];
	}
	free(idx->slots);
	*idx = bigger;
	return CF_OK;
}

struct refresh_ctx {
	cf_broker_index *idx;
	cf_broker_left_fn left;
	void *payload;
};

static int
upsert(const cf_store_cert *cert, void *payload)
{
	struct refresh_ctx *rc = payload;
	cf_broker_index *idx = rc->idx;
	cf_broker_entry *e;
	char *thing = NULL;
	bool was_in, is_in;

	if (strlen(cert->id) != CF_BROKER_ID_LEN - 1)
		return CF_OK; /* not a certificate id: never matches a peer */
	if ((idx->n + 1) * 2 > idx->cap && grow(idx) != CF_OK)
		return CF_ENOMEM;
	if (cert->thing != NULL && (thing = strdup(cert->thing)) == NULL)
		return CF_ENOMEM;
	e = slot_for(idx, cert->id);
	if (e->id[0] == '\0') {
		memcpy(e->id, cert->id, CF_BROKER_ID_LEN);
		idx->n++;
	}
	was_in = e->status == CF_CERT_ACTIVE && !e->deleted;
	is_in = cert->status == CF_CERT_ACTIVE && cert->deleted_at == 0;
	free(e->thing);
	e->thing = thing;
	e->status = cert->status;
	e->not_before = cert->not_before;
	e->not_after = cert->not_after;
	e->deleted = cert->deleted_at != 0;
	if (cert->change_seq > idx->seq)
		idx->seq = cert->change_seq;
	if (was_in && !is_in && e->sessions > 0 && e->thing != NULL && rc->left != NULL)
		rc->left(e->thing, e->id, e->deleted ? "deleted" : cf_cert_status_name(e->status),
			 rc->payload);
	return CF_OK;
}

int
cf_broker_index_refresh(cf_broker_index *idx, cf_store *store, cf_broker_left_fn left,
			void *payload, cf_err *err)
{
	struct refresh_ctx ctx = { idx, left, payload };
	int rc = cf_store_cert_changes(store, idx->seq, 0, upsert, &ctx, err);

	if (rc == CF_ENOMEM)
		return cf_err_set(err, CF_ENOMEM, NULL, "certificate index");
	return rc;
}

const char *
cf_broker_index_check(const cf_broker_index *idx, const char *id, const char *client_id,
		      int64_t now)
{
	const cf_broker_entry *e = find(idx, id);

	if (e == NULL)
		return "unknown_certificate";
	if (e->deleted)
		return "deleted";
	if (e->status != CF_CERT_ACTIVE)
		return e->status == CF_CERT_REVOKED ? "status_REVOKED"
		       : e->status == CF_CERT_INACTIVE ? "status_INACTIVE"
						       : "status_PENDING_ACTIVATION";
	if (now > e->not_after)
		return "expired";
	if (now < e->not_before)
		return "not_yet_valid";
	if (e->thing == NULL)
		return "no_thing";
	if (client_id == NULL || strcmp(client_id, e->thing) != 0)
		return "client_id_mismatch";
	return NULL;
}

void
cf_broker_index_session(cf_broker_index *idx, const char *id, int delta)
{
	cf_broker_entry *e = find(idx, id);

	if (e == NULL)
		return;
	if (delta > 0)
		e->sessions++;
	else if (e->sessions > 0)
		e->sessions--;
}

size_t
cf_broker_index_size(const cf_broker_index *idx)
{
	return idx->n;
}

void
cf_broker_index_clear(cf_broker_index *idx)
{
	size_t i;

	for (i = 0; i < idx->cap; i++)
		free(idx->slots[i].thing);
	free(idx->slots);
	memset(idx, 0, sizeof(*idx));
}
