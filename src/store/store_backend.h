/*
 * store_backend.h: the contract between store.c and a backend. Private to
 * src/store/.
 *
 * How it works: store.c owns the public functions. It checks arguments,
 * refuses writes on a read-only handle, and then calls the backend through
 * the table below. A backend does the SQL and nothing else it can avoid:
 * status transitions, event hashing and event details come from the shared
 * cf_store__* helpers below, so that SQLite and PostgreSQL decide the same
 * way and write byte-identical events. Adding a backend means one new file,
 * one new table, and one line in store.c's list of backends.
 *
 * Every mutating entry point runs in its own transaction when called alone
 * and in a savepoint of the caller's transaction between tx_begin and
 * tx_commit, so that a failed operation undoes only itself.
 *
 * Every mutating entry point must write its event in the same transaction
 * as the change, through a backend-private "append event" step that reads
 * the chain head inside the transaction, computes the hash with
 * cf_store__event_hash() and updates the head.
 */
#ifndef CF_STORE_BACKEND_H
#define CF_STORE_BACKEND_H

#include <openssl/evp.h>

#include "store.h"

/* Bumped whenever the table below changes shape. */
#define CF_STORE_BACKEND_VERSION 7


/* Every handle, whatever the backend. */
struct cf_store {
	const struct cf_store_backend *backend;
	void *impl; /* backend state, owned by the backend */
	bool readonly;
	cf_store_clock_fn now;
	void *now_payload;
	EVP_MD *sha256;     /* for the event chain, fetched once */
	EVP_MD_CTX *md_ctx; /* reused: a handle is used by one thread at a time */
};

/* How a handle is opened: cf_store_open(), _open_existing(), _open_readonly(). */
typedef enum {
	CF_STORE_OPEN_MIGRATE = 0, /* read-write; create a missing file, migrate the schema */
	CF_STORE_OPEN_EXISTING,    /* read-write; the file and exactly this schema must exist */
	CF_STORE_OPEN_READONLY     /* read-only; the file and exactly this schema must exist */
} cf_store__open_mode;

/*
 * A backend. Arguments have been checked by store.c: strings are non-NULL
 * where the public header requires them, names are valid, actor->who is set,
 * the handle is writable for mutating calls.
 */
struct cf_store_backend {
	unsigned int version; /* CF_STORE_BACKEND_VERSION */
	const char *scheme;   /* matched against the URI up to ':' */

	/* Fill store->impl. uri is the whole URI, scheme included. */
	int (*open)(cf_store *store, const char *uri, cf_store__open_mode mode, cf_err *err);
	void (*close)(cf_store *store);
	int (*schema_version)(cf_store *store, int *out, cf_err *err);

	/* The caller's transaction: see cf_store_tx_begin(). */
	int (*tx_begin)(cf_store *store, cf_err *err);
	int (*tx_commit)(cf_store *store, cf_err *err);
	void (*tx_rollback)(cf_store *store);

	int (*ca_insert)(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor,
			 cf_err *err);
	int (*ca_activate)(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor,
			   cf_err *err);
	/* by is "name", "cert_id" or "default" (key then ignored). */
	int (*ca_get)(cf_store *store, cf_store_ca *out, const char *by, const char *key,
		      cf_err *err);
	int (*ca_list)(cf_store *store, cf_store_ca_cb cb, void *payload, cf_err *err);
	int (*ca_set_default)(cf_store *store, const char *name, const cf_store_actor *actor,
			      cf_err *err);
	int (*ca_set_status)(cf_store *store, const char *name, cf_ca_status to,
			     const char *reason, const cf_store_actor *actor, cf_err *err);
	/* digest: lowercase hex SHA-256 of the code. */
	int (*regcode_create)(cf_store *store, const char *digest, int64_t expires_at,
			      const cf_store_actor *actor, cf_err *err);
	int (*ca_register)(cf_store *store, const cf_store_ca *ca, const char *digest,
			   const cf_store_actor *actor, cf_err *err);

	int (*thing_insert)(cf_store *store, const char *name, const char *attributes,
			    const cf_store_actor *actor, cf_err *err);
	int (*thing_get)(cf_store *store, cf_store_thing *out, const char *name, cf_err *err);
	int (*thing_list)(cf_store *store, cf_store_thing_cb cb, void *payload, cf_err *err);
	int (*thing_delete)(cf_store *store, const char *name, const cf_store_actor *actor,
			    cf_err *err);

	/* items are checked by store.c; each gets rc and err. */
	int (*cert_insert_batch)(cf_store *store, cf_store_cert_new *items, size_t n,
				 const cf_store_actor *actor, cf_err *err);
	/* id: lowercase hex, 64 digits (exact) or 8-63 (unique prefix). */
	int (*cert_get)(cf_store *store, cf_store_cert *out, const char *id, cf_err *err);
	int (*cert_get_by_serial)(cf_store *store, cf_store_cert *out, const char *ca,
				  const char *serial, cf_err *err);
	int (*cert_list)(cf_store *store, const cf_store_cert_filter *filter, cf_store_cert_cb cb,
			 void *payload, cf_err *err);
	/* status: a valid cf_cert_status or -1 (checked by store.c). Borrowed columns, no copies. */
	int (*cert_scan)(cf_store *store, const char *policy, int status, bool include_deleted,
			 cf_store_cert_facts_cb cb, void *payload, cf_err *err);
	/* id: a full id, resolved by store.c. */
	int (*cert_transition)(cf_store *store, const char *id, cf_cert_status to,
			       const char *reason, const cf_store_actor *actor, cf_err *err);
	int (*cert_changes)(cf_store *store, int64_t after_seq, int64_t limit,
			    cf_store_cert_cb cb, void *payload, cf_err *err);
	/* id: a full id, resolved by store.c. The status rule is checked by the backend. */
	int (*cert_delete)(cf_store *store, const char *id, const cf_store_actor *actor,
			   cf_err *err);

	int (*policy_insert)(cf_store *store, const char *name, const char *document,
			     const cf_store_actor *actor, cf_err *err);
	int (*policy_get)(cf_store *store, cf_store_policy *out, const char *name, cf_err *err);
	int (*policy_list)(cf_store *store, const char *cert_id, cf_store_policy_cb cb,
			   void *payload, cf_err *err);
	int (*policy_attach)(cf_store *store, const char *name, const char *cert_id,
			     const cf_store_actor *actor, cf_err *err);
	int (*policy_detach)(cf_store *store, const char *name, const char *cert_id,
			     const cf_store_actor *actor, cf_err *err);

	/* rot is checked by store.c (id, thing, old_cert, state REQUESTED). */
	int (*rotation_insert)(cf_store *store, const cf_store_rotation *rot,
			       const cf_store_actor *actor, cf_err *err);
	/*
	 * open false: key is an id (32 hex digits) or a unique prefix (8-31);
	 * open true: key is a thing, its open rotation.
	 */
	int (*rotation_get)(cf_store *store, cf_store_rotation *out, const char *key, bool open,
			    cf_err *err);
	/* rot is checked by store.c; the transition rule is checked by the backend. */
	int (*rotation_update)(cf_store *store, const cf_store_rotation *rot,
			       cf_rotation_state expect, const cf_store_actor *actor, cf_err *err);
	int (*rotation_list)(cf_store *store, const cf_store_rotation_filter *filter,
			     cf_store_rotation_cb cb, void *payload, cf_err *err);
	/* id: a full id; action: checked by store.c. */
	int (*rotation_event)(cf_store *store, const char *id, const char *action,
			      const char *code, const char *cert_id, const cf_store_actor *actor,
			      cf_err *err);
	int (*outbox_add)(cf_store *store, const char *topic, const char *payload,
			  int64_t *id_out, cf_err *err);
	int (*outbox_list)(cf_store *store, int64_t limit, cf_store_outbox_cb cb, void *payload,
			   cf_err *err);
	int (*outbox_delete)(cf_store *store, int64_t id, cf_err *err);
	int (*outbox_pending)(cf_store *store, const char *topic, bool *out, cf_err *err);
	int (*set_durable)(cf_store *store, bool full, cf_err *err);
	/* ms >= 0. */
	int (*set_busy_timeout)(cf_store *store, int ms, cf_err *err);
	int (*set_autocheckpoint)(cf_store *store, int pages, cf_err *err);
	int (*checkpoint)(cf_store *store, cf_err *err);

	/* Every record checked by store.c; n may be 0; keep >= 0. */
	int (*connections_record)(cf_store *store, const cf_store_connection *recs, size_t n,
				  int64_t keep, cf_err *err);
	/*
	 * filter checked by store.c: cert_id is NULL or 8 to 64 lowercase hex digits,
	 * matched as a prefix; since and limit >= 0.
	 */
	int (*connection_list)(cf_store *store, const cf_store_connection_filter *filter,
			       cf_store_connection_cb cb, void *payload, cf_err *err);

	/* checks_json: a JSON array of 1+ valid, distinct check names, built by store.c. */
	int (*audit_run_begin)(int64_t *id_out, cf_store *store, cf_audit_trigger trigger,
			       const char *checks_json, cf_err *err);
	/*
	 * Every item checked by store.c (detail may be NULL: "{}"); n may be 0.
	 * The backend checks the run (exists, IN_PROGRESS, runs each item's
	 * check) and computes finding ids with cf_store__finding_id().
	 */
	int (*audit_findings_add)(cf_store *store, int64_t run_id, const cf_store_finding *items,
				  size_t n, cf_err *err);
	/* status: COMPLETED or FAILED; summary: a JSON object as text. */
	int (*audit_run_finish)(cf_store *store, int64_t run_id, cf_audit_status status,
				const char *summary, cf_err *err);
	int (*audit_run_get)(cf_store *store, cf_store_audit_run *out, int64_t id, cf_err *err);
	/* limit >= 0. */
	int (*audit_run_list)(cf_store *store, int64_t limit, cf_store_audit_run_cb cb,
			      void *payload, cf_err *err);
	/* filter checked by store.c: run_id, limit >= 0; severity, state valid or -1. */
	int (*audit_finding_list)(cf_store *store, const cf_store_finding_filter *filter,
				  cf_store_finding_cb cb, void *payload, cf_err *err);
	/* Checked by store.c, expires_at after the store's clock included. */
	int (*audit_suppress)(cf_store *store, const char *check, const char *resource,
			      int64_t expires_at, const char *reason, const cf_store_actor *actor,
			      cf_err *err);
	int (*audit_notified)(cf_store *store, const cf_store_finding *finding,
			      const cf_store_actor *actor, cf_err *err);
	int (*audit_unsuppress)(cf_store *store, const char *check, const char *resource,
				const cf_store_actor *actor, cf_err *err);
	int (*audit_suppression_list)(cf_store *store, cf_store_audit_suppression_cb cb,
				      void *payload, cf_err *err);

	int (*events_list)(cf_store *store, const cf_store_event_filter *filter,
			   cf_store_event_cb cb, void *payload, cf_err *err);
	/* The chain head as stored: seq 0 and CF_STORE_GENESIS_HASH for an empty log. */
	int (*events_head)(cf_store *store, int64_t *seq, char hash[65], cf_err *err);
	/*
	 * Read the head, every event in seq order and every certificate row
	 * from one snapshot and hand them to the cf_store__verify_* helpers
	 * below, which decide. anchor: checked by store.c, or NULL.
	 */
	int (*events_verify)(cf_store *store, const cf_store_event_anchor *anchor, int64_t *count,
			     int64_t *bad_seq, cf_err *err);
	/* cf_store_events_verify_chain(): anchor checked by store.c, or NULL; last not NULL. */
	int (*events_verify_chain)(cf_store *store, const cf_store_event_anchor *anchor,
				   int64_t limit, cf_store_event_anchor *last, int64_t *count,
				   int64_t *bad_seq, cf_err *err);
};

extern const struct cf_store_backend cf_store__sqlite_backend;

/* ---- shared helpers (store.c) ------------------------------------------ */

/* The handle's clock. */
int64_t cf_store__now(const cf_store *store);

/*
 * The event hash: lowercase hex SHA-256 over an encoding where every string
 * is preceded by its length as 8 bytes big-endian and every integer is 8
 * bytes big-endian two's complement:
 *   str("certfleet-event-v1") str(prev_hash) int(seq) int(time)
 *   str(actor) str(action) str(resource) str(detail)
 * Length prefixes make the encoding unambiguous: no choice of field values
 * can produce the bytes of a different choice.
 */
int cf_store__event_hash(cf_store *store, char out[65], const char *prev_hash, int64_t seq,
			 int64_t time, const char *actor, const char *action,
			 const char *resource, const char *detail, cf_err *err);

/*
 * Build an event detail: a JSON object of the given string pairs (a NULL
 * key ends the list; a NULL value leaves the key out) plus "why" from the
 * actor when set, dumped compact with sorted keys. *out is freed with free().
 */
int cf_store__detail(char **out, const cf_store_actor *actor, cf_err *err, ...);

/* The detail of cert.issued / cert.registered: serial, ca, thing, status, policies. */
int cf_store__detail_cert(char **out, const cf_store_cert *cert, const char *const *policies,
			  size_t npolicies, const cf_store_actor *actor, cf_err *err);

/*
 * A finding's stable id: the first 32 lowercase hex digits of SHA-256 over
 * check "\n" resource. CF_ECRYPTO.
 */
int cf_store__finding_id(cf_store *store, char out[33], const char *check, const char *resource,
			 cf_err *err);

/* The names of cf_audit_status and cf_finding_state as stored; parse CF_EINVAL otherwise. */
int cf_store__audit_status_parse(cf_audit_status *out, const char *name);
int cf_store__audit_trigger_parse(cf_audit_trigger *out, const char *name);

/* CA statuses a backend may move to: ACTIVE -> RETIRED, ACTIVE|RETIRED -> REVOKED. */
bool cf_store__ca_transition_allowed(cf_ca_status from, cf_ca_status to);

/* Parse a CA status name as stored. CF_EINVAL for anything else. */
int cf_store__ca_status_parse(cf_ca_status *out, const char *name);

/* ---- events verify (verify.c) ------------------------------------------ */

/*
 * The state of one cf_store_events_verify() run: the chain so far, the
 * anchor, and the certificate statuses and policy attachments replayed from
 * the events. A backend feeds it in this order, all from one snapshot: every
 * event by seq (cf_store__verify_event), the head (cf_store__verify_head),
 * every certificate row (cf_store__verify_cert), every policy attachment row
 * (cf_store__verify_link), then cf_store__verify_end. Each returns
 * CF_EINTEGRITY with *bad_seq as documented for cf_store_events_verify(), or
 * CF_ENOMEM / CF_ECRYPTO.
 */
typedef struct cf_store__verify cf_store__verify;

/*
 * anchor may be NULL. chain_only: for cf_store_events_verify_chain(), the
 * events are fed from anchor->seq on, nothing is replayed, and no rows
 * follow the head. Freed with cf_store__verify_free().
 */
int cf_store__verify_new(cf_store__verify **out, cf_store *store,
			 const cf_store_event_anchor *anchor, bool chain_only, cf_err *err);
void cf_store__verify_free(cf_store__verify *v);
/* Events that passed cf_store__verify_event(). */
int64_t cf_store__verify_count(const cf_store__verify *v);
int cf_store__verify_event(cf_store__verify *v, const cf_store_event *ev, int64_t *bad_seq,
			   cf_err *err);
int cf_store__verify_head(cf_store__verify *v, int64_t head_seq, const char *head_hash,
			  int64_t *bad_seq, cf_err *err);
/* The last event that passed, as an anchor (seq 0 and the genesis hash before any); its seq. */
int64_t cf_store__verify_last(const cf_store__verify *v, cf_store_event_anchor *out);
/*
 * One row of the certificate table: its id and status as stored (either may
 * be NULL), its change_seq, and whether it is deleted (deleted_at != 0).
 */
int cf_store__verify_cert(cf_store__verify *v, const char *id, const char *status,
			  int64_t change_seq, bool deleted, int64_t *bad_seq, cf_err *err);
/*
 * One row of the policy attachments (cert_policies): certificate id and
 * policy name as stored (either may be NULL). The rows of one certificate
 * must come one after the other (ORDER BY cert_id); CF_ESTORE otherwise.
 */
int cf_store__verify_link(cf_store__verify *v, const char *cert_id, const char *policy,
			  int64_t *bad_seq, cf_err *err);
int cf_store__verify_end(cf_store__verify *v, int64_t *bad_seq, cf_err *err);

#endif
