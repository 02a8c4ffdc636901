/*
 * The broker plugin's index of certificates: id -> status, thing, validity,
 * deletion and compiled policies. Kept current from the registry's change
 * feed; looked up on every CONNECT and every topic check. Pure over the
 * store (unit-tested without a broker in tests/unit/broker/test_index.c).
 *
 * Policies: a certificate's attached policies are read when it changes (an
 * attach or detach is a change in the feed) and compiled once per distinct
 * set of names: documents never change once created (the store has no
 * update), so the set of names identifies its compiled policy, and a fleet
 * that shares one device policy shares one compiled copy.
 */
#ifndef CF_BROKER_INDEX_H
#define CF_BROKER_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "policy.h"
#include "store/store.h"
#include "util/util.h"

#define CF_BROKER_ID_LEN 65 /* 64 hex digits and the NUL */

typedef struct cf_broker_cert {
	char id[CF_BROKER_ID_LEN];
	char *thing; /* NULL when unbound */
	cf_cert_status status;
	int64_t not_before, not_after;
	bool deleted;
	/* Its policies (owned by the index); NULL when none is attached or it cannot connect. */
	const cf_broker_policy *policy;
} cf_broker_cert;

typedef struct cf_broker_index {
	cf_broker_map certs;    /* id -> cf_broker_cert */
	cf_broker_map policies; /* policy names, sorted, '\n'-joined -> cf_broker_policy */
	int64_t seq;            /* the largest change_seq seen */
	/* Why the last policy that failed to compile did, for the caller to log; "" when none. */
	char policy_error[384];
} cf_broker_index;

#define CF_BROKER_INDEX_INIT { CF_BROKER_MAP_INIT, CF_BROKER_MAP_INIT, 0, "" }

/*
 * Called for a certificate that could connect and no longer can; why: its
 * status, "deleted", or "policy_denied" (a policy attached to it denies connect).
 */
typedef void (*cf_broker_left_fn)(const cf_broker_cert *cert, const char *why, void *payload);

/*
 * Read what changed since the last call (everything the first time); left
 * (may be NULL) is called for every certificate that stopped being
 * admissible (left ACTIVE, deleted, a policy denying connect attached). A
 * set of policies that fails to compile (a document the store would
 * refuse) allows nothing; its error is
 * left in idx->policy_error for the caller to log.
 * CF_ENOMEM, CF_ESTORE.
 */
int cf_broker_index_refresh(cf_broker_index *idx, cf_store *store, cf_broker_left_fn left,
			    void *payload, cf_err *err);

/*
 * Read one certificate straight from the registry into the index, without
 * moving the change feed position: for a CONNECT with a certificate the
 * index does not know yet (issued since the last refresh, typically the
 * new certificate of a rotation, presented milliseconds after its commit).
 * CF_ENOTFOUND when the registry does not know it either; CF_ESTORE.
 */
int cf_broker_index_fetch(cf_broker_index *idx, cf_store *store, const char *id, cf_err *err);

/* The certificate, or NULL. Borrowed: valid until the next refresh or clear. */
const cf_broker_cert *cf_broker_index_get(const cf_broker_index *idx, const char *id);

/*
 * NULL when a client with certificate id and client_id may connect at time
 * now; else the reason: "unknown_certificate", "status_INACTIVE" (or the
 * status), "deleted", "expired", "not_yet_valid", "no_thing",
 * "client_id_mismatch", "policy_denied" (a deny statement on connect).
 */
const char *cf_broker_index_check(const cf_broker_index *idx, const char *id,
				  const char *client_id, int64_t now);

/* The number of certificates, and of distinct compiled policies. */
size_t cf_broker_index_size(const cf_broker_index *idx);
size_t cf_broker_index_policies(const cf_broker_index *idx);

void cf_broker_index_clear(cf_broker_index *idx);

#endif
