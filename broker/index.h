/*
 * The broker plugin's index of certificates: id -> status, thing, expiry,
 * deletion. Kept current from the registry's change feed; looked up on
 * every CONNECT. Pure over the store (unit-tested without a broker).
 */
#ifndef CF_BROKER_INDEX_H
#define CF_BROKER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/util.h"

#define CF_BROKER_ID_LEN 65 /* 64 hex digits and the NUL */

typedef struct cf_broker_entry cf_broker_entry; /* opaque */

typedef struct cf_broker_index {
	cf_broker_entry *slots; /* open addressing, a power of two */
	size_t cap, n;
	int64_t seq; /* the largest change_seq seen */
} cf_broker_index;

/* Called for a certificate in use by a session that may no longer connect. */
typedef void (*cf_broker_left_fn)(const char *thing, const char *id, const char *why,
				  void *payload);

/*
 * Read what changed since the last call (everything the first time). For
 * every certificate that a session uses (cf_broker_index_session()) and
 * that stopped being admissible (left ACTIVE, deleted), left is called
 * (may be NULL). CF_ENOMEM, CF_ESTORE.
 */
int cf_broker_index_refresh(cf_broker_index *idx, cf_store *store, cf_broker_left_fn left,
			    void *payload, cf_err *err);

/* A session with certificate id began (delta 1) or ended (-1). Unknown ids are ignored. */
void cf_broker_index_session(cf_broker_index *idx, const char *id, int delta);

/*
 * NULL when a client with certificate id and client_id may connect at time
 * now; else the reason: "unknown_certificate", "status_INACTIVE" (or the
 * status), "deleted", "expired", "not_yet_valid", "no_thing",
 * "client_id_mismatch".
 */
const char *cf_broker_index_check(const cf_broker_index *idx, const char *id,
				  const char *client_id, int64_t now);

size_t cf_broker_index_size(const cf_broker_index *idx);

void cf_broker_index_clear(cf_broker_index *idx);

#endif
