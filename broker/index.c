/* broker/index.c: the plugin's certificate index (index.h). */
#include "index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The policies attached to one certificate, as the store lists them. */
struct attached {
	cf_store_policy *items;
	size_t n, cap;
};

struct refresh_ctx {
	cf_broker_index *idx;
	cf_store *store;
	cf_broker_left_fn left;
	void *payload;
	cf_err *err;
	bool feed; /* from the change feed: moves idx->seq; a single fetch does not */
};

static int
collect_policy(const cf_store_policy *policy, void *payload)
{
	struct attached *a = payload;
	cf_store_policy *grown;

	if (a->n == a->cap) {
		grown = realloc(a->items, (a->cap != 0 ? a->cap * 2 : 4) * sizeof(*grown));
		if (grown == NULL)
			return CF_ENOMEM;
		a->items = grown;
		a->cap = a->cap != 0 ? a->cap * 2 : 4;
	}
	a->items[a->n].name = strdup(policy->name);
	a->items[a->n].document = strdup(policy->document);
	a->n++;
	if (a->items[a->n - 1].name == NULL || a->items[a->n - 1].document == NULL)
		return CF_ENOMEM;
	return CF_OK;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const cf_store_policy *)a)->name, ((const cf_store_policy *)b)->name);
}

/* "name\nname..." of the sorted set: the key of its compiled policy. */
static char *
set_key(const struct attached *a)
{
	size_t i, n, len = 1, at = 0;
	char *key;

	for (i = 0; i < a->n; i++)
		len += strlen(a->items[i].name) + 1;
	key = malloc(len);
	if (key == NULL)
		return NULL;
	for (i = 0; i < a->n; i++) {
		if (i > 0)
			key[at++] = '\n';
		n = strlen(a->items[i].name);
		memcpy(key + at, a->items[i].name, n);
		at += n;
	}
	key[at] = '\0';
	return key;
}

/* The compiled policy of a set, from the cache or compiled into it now. */
static int
compiled(const cf_broker_policy **out, cf_broker_index *idx, const struct attached *a)
{
	cf_broker_policy *policy = NULL;
	const char **docs = NULL;
	cf_err why = CF_ERR_INIT;
	char *key = NULL;
	size_t i;
	int rc = CF_ENOMEM;

	key = set_key(a);
	docs = calloc(a->n, sizeof(*docs));
	if (key == NULL || docs == NULL)
		goto out;
	policy = cf_broker_map_get(&idx->policies, key);
	if (policy != NULL) {
		*out = policy;
		rc = CF_OK;
		goto out;
	}
	for (i = 0; i < a->n; i++)
		docs[i] = a->items[i].document;
	rc = cf_broker_policy_compile(&policy, docs, a->n, &why);
	if (rc == CF_EINVAL) {
		/* Refused by the store's own check: nothing is allowed, and the caller says why. */
		snprintf(idx->policy_error, sizeof(idx->policy_error), "policies %.64s: %.255s",
			 a->items[0].name, why.msg);
		rc = cf_broker_policy_compile(&policy, NULL, 0, &why);
	}
	if (rc != CF_OK)
		goto out;
	rc = cf_broker_map_put(&idx->policies, key, policy);
	if (rc != CF_OK) {
		cf_broker_policy_free(policy);
		goto out;
	}
	*out = policy;
out:
	free(docs);
	free(key);
	return rc;
}

/* The compiled policies attached to cert_id; NULL when there are none. */
static int
policy_of(const cf_broker_policy **out, struct refresh_ctx *ctx, const char *cert_id)
{
	struct attached a = { NULL, 0, 0 };
	size_t i;
	int rc;

	*out = NULL;
	rc = cf_store_policy_list(ctx->store, cert_id, collect_policy, &a, ctx->err);
	if (rc == CF_OK && a.n > 0) {
		qsort(a.items, a.n, sizeof(*a.items), by_name);
		rc = compiled(out, ctx->idx, &a);
	}
	for (i = 0; i < a.n; i++)
		cf_store_policy_clear(&a.items[i]);
	free(a.items);
	return rc;
}

/* Whether it may connect: ACTIVE, not deleted, and no policy of its denies connecting. */
static bool
admissible(const cf_broker_cert *e)
{
	return e->status == CF_CERT_ACTIVE && !e->deleted &&
	       (e->thing == NULL ||
		cf_broker_policy_allows(e->policy, CF_BROKER_CONNECT, e->thing, e->thing, e->thing));
}

/* Why a certificate that could connect no longer can. */
static const char *
left_why(const cf_broker_cert *e)
{
	if (e->deleted)
		return "deleted";
	if (e->status != CF_CERT_ACTIVE)
		return cf_cert_status_name(e->status);
	return "policy_denied";
}

/* The entry for id, created (PENDING, unbound) when missing. */
static cf_broker_cert *
entry_for(cf_broker_index *idx, const char *id, bool *fresh)
{
	cf_broker_cert *e = cf_broker_map_get(&idx->certs, id);

	*fresh = e == NULL;
	if (e != NULL)
		return e;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	memcpy(e->id, id, CF_BROKER_ID_LEN);
	e->status = CF_CERT_PENDING_ACTIVATION;
	if (cf_broker_map_put(&idx->certs, id, e) != CF_OK) {
		free(e);
		return NULL;
	}
	return e;
}

static int
upsert(const cf_store_cert *cert, void *payload)
{
	struct refresh_ctx *ctx = payload;
	const cf_broker_policy *policy = NULL;
	cf_broker_cert *e;
	char *thing = NULL;
	bool fresh, was_in;
	int rc;

	if (strlen(cert->id) != CF_BROKER_ID_LEN - 1)
		return CF_OK; /* not a certificate id: never matches a peer */
	/* Only a certificate that can connect needs its policies: history costs nothing. */
	if (cert->status == CF_CERT_ACTIVE && cert->deleted_at == 0) {
		rc = policy_of(&policy, ctx, cert->id);
		if (rc != CF_OK)
			return rc;
	}
	if (cert->thing != NULL) {
		thing = strdup(cert->thing);
		if (thing == NULL)
			return CF_ENOMEM;
	}
	e = entry_for(ctx->idx, cert->id, &fresh);
	if (e == NULL) {
		free(thing);
		return CF_ENOMEM;
	}
	was_in = !fresh && admissible(e);
	free(e->thing);
	e->thing = thing;
	e->status = cert->status;
	e->not_before = cert->not_before;
	e->not_after = cert->not_after;
	e->deleted = cert->deleted_at != 0;
	e->policy = policy;
	if (ctx->feed && cert->change_seq > ctx->idx->seq)
		ctx->idx->seq = cert->change_seq;
	if (was_in && !admissible(e) && ctx->left != NULL)
		ctx->left(e, left_why(e), ctx->payload);
	return CF_OK;
}

int
cf_broker_index_refresh(cf_broker_index *idx, cf_store *store, cf_broker_left_fn left,
			void *payload, cf_err *err)
{
	struct refresh_ctx ctx = { idx, store, left, payload, err, true };
	int rc = cf_store_cert_changes(store, idx->seq, 0, upsert, &ctx, err);

	if (rc == CF_ENOMEM)
		return cf_err_set(err, CF_ENOMEM, NULL, "certificate index");
	return rc;
}

int
cf_broker_index_fetch(cf_broker_index *idx, cf_store *store, const char *id, cf_err *err)
{
	struct refresh_ctx ctx = { idx, store, NULL, NULL, err, false };
	cf_store_cert cert;
	int rc;

	if (strlen(id) != CF_BROKER_ID_LEN - 1)
		return cf_err_set(err, CF_EINVAL, NULL, "not a certificate id");
	memset(&cert, 0, sizeof(cert));
	rc = cf_store_cert_get(store, &cert, id, err);
	if (rc == CF_OK)
		rc = upsert(&cert, &ctx);
	cf_store_cert_clear(&cert);
	if (rc == CF_ENOMEM)
		return cf_err_set(err, CF_ENOMEM, NULL, "certificate index");
	return rc;
}

const cf_broker_cert *
cf_broker_index_get(const cf_broker_index *idx, const char *id)
{
	return cf_broker_map_get(&idx->certs, id);
}

const char *
cf_broker_index_check(const cf_broker_index *idx, const char *id, const char *client_id,
		      int64_t now)
{
	const cf_broker_cert *e = cf_broker_index_get(idx, id);

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
	if (!cf_broker_policy_allows(e->policy, CF_BROKER_CONNECT, client_id, client_id, e->thing))
		return "policy_denied";
	return NULL;
}

size_t
cf_broker_index_size(const cf_broker_index *idx)
{
	return idx->certs.n;
}

size_t
cf_broker_index_policies(const cf_broker_index *idx)
{
	return idx->policies.n;
}

static void
cert_free(void *value)
{
	cf_broker_cert *e = value;

	free(e->thing);
	free(e);
}

static void
policy_free(void *value)
{
	cf_broker_policy_free(value);
}

void
cf_broker_index_clear(cf_broker_index *idx)
{
	cf_broker_map_clear(&idx->certs, cert_free);
	cf_broker_map_clear(&idx->policies, policy_free);
	idx->seq = 0;
	idx->policy_error[0] = '\0';
}
