/*
 * store: the registry of CAs, things, certificates, policies and events,
 * the rotation engine's persisted state (rotations, the outbox), and the
 * broker's record of MQTT connections, and the audits' runs, findings and
 * suppressions.
 *
 * One interface over backends chosen by URI scheme ("sqlite:PATH" now,
 * "postgres://..." later). Every change is written together with its event
 * in one transaction; the event log is hash-chained so that an edited or
 * deleted row is detected by cf_store_events_verify(), which also checks
 * the certificate table and the policy attachments against the events. The
 * database refuses edits of the log through SQL (triggers, schema 2); that
 * stops mistakes, not an attacker with the file, who can drop them: the
 * chain and an anchor recorded elsewhere (cf_store_event_anchor) are what
 * detect tampering.
 *
 * Strings in records returned through an out-parameter are owned by the
 * record and released by its _clear() function; records handed to a list
 * callback are borrowed for the duration of the call.
 */
#ifndef CF_STORE_H
#define CF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct cf_store cf_store; /* opaque */

/* ---- statuses ------------------------------------------------------- */

typedef enum {
	CF_CERT_PENDING_ACTIVATION = 0,
	CF_CERT_ACTIVE,
	CF_CERT_INACTIVE,
	CF_CERT_REVOKED
} cf_cert_status;

typedef enum { CF_CA_ACTIVE = 0, CF_CA_RETIRED, CF_CA_REVOKED, CF_CA_PENDING } cf_ca_status;

/* "PENDING_ACTIVATION", "ACTIVE", "INACTIVE", "REVOKED". */
const char *cf_cert_status_name(cf_cert_status status);
/* Case-insensitive parse of the names above. CF_EINVAL otherwise. */
int cf_cert_status_parse(cf_cert_status *out, const char *name);
/* "ACTIVE", "RETIRED", "REVOKED", "PENDING". */
const char *cf_ca_status_name(cf_ca_status status);

/*
 * The one place certificate transitions are decided:
 * PENDING_ACTIVATION -> ACTIVE | INACTIVE | REVOKED; ACTIVE <-> INACTIVE;
 * any -> REVOKED; REVOKED is final. A transition to the same status is refused.
 */
bool cf_cert_transition_allowed(cf_cert_status from, cf_cert_status to);

/* ---- records -------------------------------------------------------- */

/*
 * Who made a change and why, written into the event. Every mutating
 * function requires an actor with a non-empty who (CF_EINVAL otherwise):
 * an audit log entry without an author is worth little.
 */
typedef struct cf_store_actor {
	const char *who; /* "cli:root", "certfleetd", "broker" */
	const char *why; /* free text, may be NULL */
} cf_store_actor;

typedef struct cf_store_ca {
	char *name;
	cf_ca_status status;
	bool is_default;    /* the default issuer of device certificates */
	bool is_root;       /* self-signed; its key is never in the data dir */
	bool external;      /* registered with proof of possession, no key here */
	char *parent;       /* name of the issuing CA, or NULL */
	char *cert_id;      /* SHA-256 of the CA certificate DER; NULL when PENDING */
	char *subject;
	char *cert_pem;     /* NULL when PENDING */
	char *key_ref;      /* key file path relative to the data dir, or NULL */
	char *key_type;     /* "EC-P256", ... */
	int64_t not_before; /* 0 when PENDING */
	int64_t not_after;
	int64_t created_at;
	int64_t updated_at;
	char *revoke_reason; /* NULL unless REVOKED */
} cf_store_ca;

void cf_store_ca_clear(cf_store_ca *ca);

typedef struct cf_store_thing {
	char *name;
	char *attributes; /* a JSON object as text, "{}" when none */
	int64_t created_at;
} cf_store_thing;

void cf_store_thing_clear(cf_store_thing *thing);

typedef struct cf_store_cert {
	char *id;     /* certificateId: SHA-256 hex of the DER */
	char *serial; /* lowercase hex */
	char *ca;     /* name of the issuing CA */
	char *thing;  /* bound thing, or NULL */
	cf_cert_status status;
	int64_t not_before;
	int64_t not_after;
	char *key_type; /* "EC-P256", ..., or "RSA-1024"-like facts for registered certs */
	int key_bits;
	char *sig_alg;
	char *spki_sha256;
	char *pem;
	int64_t created_at;
	int64_t updated_at;
	char *revoke_reason; /* NULL unless REVOKED */
	int64_t revoked_at;  /* 0 unless REVOKED */
	int64_t change_seq;  /* seq of the event that last inserted it, changed its status
				or policies, or deleted it; ignored by cf_store_cert_insert() */
	int64_t deleted_at;  /* 0 unless deleted (cf_store_cert_delete()); ignored by
				cf_store_cert_insert() */
	bool key_roca;       /* an RSA modulus with the ROCA fingerprint (cf_pki_cert_info's
				key_roca); set for older rows by migration 6 */
} cf_store_cert;

void cf_store_cert_clear(cf_store_cert *cert);

typedef struct cf_store_policy {
	char *name;
	char *document; /* the JSON text as created */
	int64_t created_at;
} cf_store_policy;

void cf_store_policy_clear(cf_store_policy *policy);

typedef struct cf_store_event {
	int64_t seq;
	int64_t time;
	char *actor;
	char *action;   /* "cert.issued", "cert.status", "ca.created", ... */
	char *resource; /* "cert:<id>", "thing:<name>", "ca:<name>", "policy:<name>" */
	char *detail;   /* a JSON object as text */
	char *prev_hash;
	char *hash;
} cf_store_event;

void cf_store_event_clear(cf_store_event *event);

/* ---- opening -------------------------------------------------------- */

/*
 * Open the store named by uri and bring its schema up to date (numbered
 * migrations, each in its own transaction). CF_EINVAL for an unknown
 * scheme; CF_ESTORE when the database cannot be opened or migrated, or
 * when its schema is newer than this build knows. The caller releases
 * *out with cf_store_close().
 *
 * SQLite URIs: "sqlite:PATH", where PATH is taken literally (relative to
 * the working directory unless it starts with '/'). The URL-like form
 * "sqlite://PATH" is accepted too and means the same PATH, so
 * "sqlite:///var/lib/certfleet/registry.db" names an absolute path.
 * PATH must not be empty; query strings and "file:" URIs are not parsed.
 * A missing file is created (read-write open only).
 */
int cf_store_open(cf_store **out, const char *uri, cf_err *err);

/*
 * Open read-only: no migrations, no writes (the broker plugin). CF_ESTORE
 * when the schema is older or newer than this build knows, or the file is
 * missing. Every mutating function on such a handle fails with CF_ESTATE.
 */
int cf_store_open_readonly(cf_store **out, const char *uri, cf_err *err);

/*
 * Open an existing registry read-write without migrating it (the broker
 * plugin, which records connections and must not change a schema that
 * certfleetd owns). CF_ESTORE when the file is missing (it is not
 * created) or its schema is not exactly CF_STORE_SCHEMA_VERSION, as for
 * cf_store_open_readonly(). Otherwise the handle is like one from
 * cf_store_open(), busy timeout (which the open itself may wait out) and
 * automatic checkpoints included: see cf_store_set_busy_timeout(),
 * cf_store_set_autocheckpoint() and cf_store_checkpoint(). The caller releases *out with
 * cf_store_close().
 */
int cf_store_open_existing(cf_store **out, const char *uri, cf_err *err);

/* Release a handle. NULL is accepted and does nothing. */
void cf_store_close(cf_store *store);

/* The schema version the store is at. */
int cf_store_schema_version(cf_store *store, int *out, cf_err *err);

/* The schema version this build migrates to and expects. */
#define CF_STORE_SCHEMA_VERSION 6

/*
 * The clock used for created_at, updated_at, event times and registration
 * code expiry. Returns seconds since the epoch.
 */
typedef int64_t (*cf_store_clock_fn)(void *payload);

/*
 * Replace the handle's clock (cf_time_now() by default); now == NULL
 * restores the default. For tests and simulations: the rotation engine and
 * the audits already take a clock, and the registry must agree with them.
 */
void cf_store_set_clock(cf_store *store, cf_store_clock_fn now, void *payload);

/* The handle's clock: what the registry will write as now. */
int64_t cf_store_now(const cf_store *store);

/*
 * Durability of this handle's commits. full: a commit is on disk when it
 * returns, so what it decided (a certificate handed out, an outbox message
 * published) survives a power loss; one fsync per commit. Not full (the
 * default of a handle): SQLite's WAL with synchronous=NORMAL, where a power
 * loss or an OS crash may roll back the last commits (a process crash
 * never does). CF_ESTATE on a read-only handle.
 */
int cf_store_set_durable(cf_store *store, bool full, cf_err *err);

/*
 * How long this handle waits for a lock another process holds (the write
 * lock, mostly) before the call fails with CF_EBUSY: ms milliseconds, 5000
 * by default, 0 to fail at once, for a thread that must never sleep on a
 * lock (the broker's). A read rarely waits (WAL readers do not block on
 * writers). CF_EINVAL for a negative ms.
 */
int cf_store_set_busy_timeout(cf_store *store, int ms, cf_err *err);

/*
 * After how many pages of write-ahead log this handle's commits copy it back
 * into the database file (SQLite's automatic checkpoint): pages, or 0 for
 * never. 10,000 by default. The checkpoint costs an fsync and runs in the
 * committing thread, so a latency-sensitive thread (the broker plugin) sets
 * a small value: short checkpoints, and a log that stays small even when no
 * other process commits. CF_EINVAL for a negative count; CF_ESTATE on a
 * read-only handle, which never checkpoints.
 */
int cf_store_set_autocheckpoint(cf_store *store, int pages, cf_err *err);

/*
 * Copy the whole write-ahead log into the database file and empty the log
 * file (SQLite: wal_checkpoint(TRUNCATE)), now. For a registry file that
 * is about to be, or has just been, replaced under this handle: SQLite's
 * own checkpoint at the last close is skipped for a file renamed over, and
 * a log left beside the new file would be replayed into it and corrupt it.
 * Works through the handle's open file whatever the path names now.
 * CF_EBUSY when another connection is reading or writing (its busy timeout
 * applies); CF_ESTATE on a read-only handle.
 */
int cf_store_checkpoint(cf_store *store, cf_err *err);

/* ---- transactions --------------------------------------------------- */

/*
 * Group several changes into one transaction: everything between
 * cf_store_tx_begin() and cf_store_tx_commit() is written together or not
 * at all (the rotation engine: a certificate, a rotation's new state and
 * the outbox messages it causes). Every function of this header keeps
 * working inside: a change runs in a savepoint of the caller's transaction
 * instead of its own, so a change that fails (a refused transition, a
 * taken name) undoes only itself and the transaction stays usable; the
 * caller decides whether to commit the rest. Reads see the transaction's
 * own uncommitted changes.
 *
 * One open transaction per handle. The write lock is held from
 * cf_store_tx_begin() (BEGIN IMMEDIATE on SQLite) to the commit or
 * rollback, and other writers, the CLI included, wait for it: keep it
 * short, and never wait on the network inside one. Closing the handle
 * rolls back an open transaction.
 *
 * cf_store_tx_begin(): CF_ESTATE when a transaction is already open or the
 * handle is read-only; CF_EBUSY when the write lock is not free within the
 * busy timeout; CF_ESTORE.
 */
int cf_store_tx_begin(cf_store *store, cf_err *err);

/*
 * Commit the open transaction. CF_ESTATE when none is open. On any other
 * failure (CF_ESTORE, CF_EBUSY) nothing was written and the transaction is
 * closed.
 */
int cf_store_tx_commit(cf_store *store, cf_err *err);

/* Undo the open transaction. Does nothing when none is open; NULL is accepted. */
void cf_store_tx_rollback(cf_store *store);

/* ---- CAs ------------------------------------------------------------ */

/* Insert a CA. CF_EEXISTS for a taken name or certificate. Event "ca.created". */
int cf_store_ca_insert(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor,
		       cf_err *err);

/*
 * Complete a PENDING CA with its signed certificate: sets cert_id, subject,
 * cert_pem, validity, parent, status ACTIVE. CF_ESTATE if not PENDING.
 */
int cf_store_ca_activate(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor,
			 cf_err *err);

/* Fetch by name. CF_ENOTFOUND. */
int cf_store_ca_get(cf_store *store, cf_store_ca *out, const char *name, cf_err *err);

/* Fetch by certificate id (CA certificate SHA-256). CF_ENOTFOUND. */
int cf_store_ca_get_by_cert(cf_store *store, cf_store_ca *out, const char *cert_id, cf_err *err);

/* Fetch the default issuer. CF_ENOTFOUND when none is set. */
int cf_store_ca_get_default(cf_store *store, cf_store_ca *out, cf_err *err);

typedef int (*cf_store_ca_cb)(const cf_store_ca *ca, void *payload);

/* Call cb for every CA by name; a non-zero return from cb stops and is returned. */
int cf_store_ca_list(cf_store *store, cf_store_ca_cb cb, void *payload, cf_err *err);

/* Make name the only default issuer. CF_ESTATE unless it is ACTIVE and not a root. */
int cf_store_ca_set_default(cf_store *store, const char *name, const cf_store_actor *actor,
			    cf_err *err);

/*
 * Change a CA's status: ACTIVE -> RETIRED, ACTIVE|RETIRED -> REVOKED
 * (reason required). A retired or revoked CA stops being the default.
 * CF_ESTATE for anything else.
 */
int cf_store_ca_set_status(cf_store *store, const char *name, cf_ca_status to,
			   const char *reason, const cf_store_actor *actor, cf_err *err);

/* ---- registration codes (bring your own CA) -------------------------- */

/*
 * Hand out a fresh random registration code (hex, 32 chars) valid for ttl
 * seconds. The code must appear as the CN of a verification certificate
 * signed by the CA's key.
 */
int cf_store_regcode_create(cf_store *store, char out[65], int64_t ttl, const cf_store_actor *actor,
			    cf_err *err);

/*
 * Consume a registration code: CF_ENOTFOUND when unknown, used or expired.
 * Done in the same transaction as inserting the CA: see cf_store_ca_register().
 */
int cf_store_ca_register(cf_store *store, const cf_store_ca *ca, const char *code,
			 const cf_store_actor *actor, cf_err *err);

/* ---- things --------------------------------------------------------- */

/* Insert. CF_EEXISTS. attributes may be NULL for "{}". Event "thing.created". */
int cf_store_thing_insert(cf_store *store, const char *name, const char *attributes,
			  const cf_store_actor *actor, cf_err *err);

int cf_store_thing_get(cf_store *store, cf_store_thing *out, const char *name, cf_err *err);

/*
 * Whether thing name is a service principal (its attribute role is
 * "service": certfleetd and other back-end identities, never rotated or
 * audited as devices). CF_ENOTFOUND when there is no such thing.
 */
int cf_store_thing_is_service(cf_store *store, bool *out, const char *name, cf_err *err);

typedef int (*cf_store_thing_cb)(const cf_store_thing *thing, void *payload);

int cf_store_thing_list(cf_store *store, cf_store_thing_cb cb, void *payload, cf_err *err);

/*
 * Delete a thing. CF_ENOTFOUND; CF_ESTATE while it has a certificate that
 * is ACTIVE or PENDING_ACTIVATION. Its other certificates stay in history
 * and keep the thing's name in cert->thing (certs.thing is deliberately
 * not a foreign key), so the record still says whom a certificate was for.
 * Such a certificate can no longer become ACTIVE: see
 * cf_store_cert_transition().
 */
int cf_store_thing_delete(cf_store *store, const char *name, const cf_store_actor *actor,
			  cf_err *err);

/* ---- certificates --------------------------------------------------- */

/*
 * Insert a certificate with its policies, in one transaction with the event
 * "cert.issued" (or "cert.registered" when registered is set). CF_EEXISTS
 * when the id, or the serial for that CA, is taken; CF_ENOTFOUND when the
 * CA, the thing or a policy does not exist; CF_ESTATE when the CA is not
 * ACTIVE (issued) or REVOKED (registered).
 */
int cf_store_cert_insert(cf_store *store, const cf_store_cert *cert, const char *const *policies,
			 size_t npolicies, bool registered, const cf_store_actor *actor,
			 cf_err *err);

/* One certificate of cf_store_cert_insert_batch(). */
typedef struct cf_store_cert_new {
	const cf_store_cert *cert;   /* in */
	const char *const *policies; /* in */
	size_t npolicies;            /* in */
	bool registered;             /* in: "cert.registered" rather than "cert.issued" */
	int rc;                      /* out: CF_OK, or why this certificate was not written */
	cf_err err;                  /* out: detail when rc is not CF_OK */
} cf_store_cert_new;

/*
 * Insert n certificates in one transaction (group commit), each in its own
 * savepoint with its event, under the rules of cf_store_cert_insert(): a
 * refused certificate (its rc and err say why) does not undo the others.
 * Returns CF_OK when the transaction committed, even if some items were
 * refused. When the transaction itself fails (CF_EBUSY, CF_ESTORE), nothing
 * is written and every item's rc is that failure.
 */
int cf_store_cert_insert_batch(cf_store *store, cf_store_cert_new *items, size_t n,
			       const cf_store_actor *actor, cf_err *err);

/*
 * Fetch by id, or by a unique id prefix of at least 8 hex digits. Deleted
 * certificates are found too (deleted_at says so): they stay in history.
 * CF_ENOTFOUND; CF_EINVAL for an ambiguous prefix.
 */
int cf_store_cert_get(cf_store *store, cf_store_cert *out, const char *id, cf_err *err);

/*
 * Fetch the certificate CA ca issued with serial (lowercase hex without
 * leading zeros, as cf_store_cert's serial), deleted ones included.
 * CF_ENOTFOUND; CF_EINVAL for a malformed serial.
 */
int cf_store_cert_get_by_serial(cf_store *store, cf_store_cert *out, const char *ca,
				const char *serial, cf_err *err);

typedef struct cf_store_cert_filter {
	const char *thing;        /* NULL: any */
	const char *ca;           /* NULL: any */
	int status;               /* a cf_cert_status, or -1: any */
	int64_t not_after_before; /* 0: any; else only certificates with not_after < this */
	int64_t limit;            /* 0: no limit */
	bool include_deleted;     /* false: deleted certificates are left out */
} cf_store_cert_filter;

#define CF_STORE_CERT_FILTER_INIT { NULL, NULL, -1, 0, 0, false }

typedef int (*cf_store_cert_cb)(const cf_store_cert *cert, void *payload);

/* Call cb for every matching certificate, soonest expiry first. */
int cf_store_cert_list(cf_store *store, const cf_store_cert_filter *filter, cf_store_cert_cb cb,
		       void *payload, cf_err *err);

/*
 * The facts of one certificate as cf_store_cert_scan() hands them out: no
 * PEM, no history columns. Every pointer is borrowed from the backend and
 * valid only during the callback; copy what must outlive it.
 */
typedef struct cf_store_cert_facts {
	const char *id;
	const char *ca;
	const char *thing; /* NULL when unbound */
	cf_cert_status status;
	int64_t not_before;
	int64_t not_after;
	const char *key_type;
	int key_bits;
	const char *sig_alg;
	const char *spki_sha256;
	int64_t created_at;
	int64_t deleted_at; /* 0 unless deleted */
	bool key_roca;
} cf_store_cert_facts;

typedef int (*cf_store_cert_facts_cb)(const cf_store_cert_facts *facts, void *payload);

/*
 * The lean full pass for whole-fleet work (the audit): call cb for every
 * certificate with status (a cf_cert_status, or -1: any), deleted ones left
 * out unless include_deleted, in storage order (no sort, no index). Faster
 * and smaller than cf_store_cert_list() because nothing is copied. A
 * non-zero return of cb stops the pass and is returned. CF_EINVAL for a bad
 * status; CF_ESTORE, CF_EBUSY.
 */
int cf_store_cert_scan(cf_store *store, int status, bool include_deleted,
		       cf_store_cert_facts_cb cb, void *payload, cf_err *err);

/*
 * The same for the certificates policy is attached to, deleted ones left
 * out: one pass over the attachments, not over the certificates.
 */
int cf_store_cert_scan_policy(cf_store *store, const char *policy, int status,
			      cf_store_cert_facts_cb cb, void *payload, cf_err *err);

/*
 * Move a certificate to status to, if cf_cert_transition_allowed() says so,
 * with the event "cert.status" (from, to, reason, why). id is a full id or a
 * unique prefix as for cf_store_cert_get(). reason is the RFC 5280 reason
 * for REVOKED ("unspecified" when NULL) and ignored otherwise. CF_ENOTFOUND;
 * CF_ESTATE for a refused transition (err->msg names both statuses), and
 * for -> ACTIVE when the certificate's thing, or the certificate itself,
 * has been deleted. A certificate made ACTIVE again is no longer due for
 * deletion by a rotation (delete_old_at of cf_store_rotation).
 */
int cf_store_cert_transition(cf_store *store, const char *id, cf_cert_status to,
			     const char *reason, const cf_store_actor *actor, cf_err *err);

/*
 * Delete a certificate from the active registry: a soft delete that sets
 * deleted_at and change_seq, with the event "cert.deleted" (status, why).
 * The row, its policies and its events stay as history; cf_store_cert_list()
 * leaves it out unless asked, and it can never become ACTIVE again (it can
 * still be revoked). A rotation waiting to delete it (delete_old_at) is
 * settled in the same transaction. id as for cf_store_cert_get().
 * CF_ENOTFOUND; CF_ESTATE unless the certificate is INACTIVE or REVOKED, or
 * when it is deleted already.
 */
int cf_store_cert_delete(cf_store *store, const char *id, const cf_store_actor *actor,
			 cf_err *err);

/*
 * The change feed the broker plugin polls: call cb, in change_seq order, for
 * every certificate inserted, or whose status or policies changed, or that
 * was deleted (deleted_at), after
 * after_seq (pass the largest cert->change_seq seen so far; 0 for
 * everything). Only the latest change of each certificate is reported;
 * change_seq is the seq of that change's event. limit 0: no limit.
 */
int cf_store_cert_changes(cf_store *store, int64_t after_seq, int64_t limit, cf_store_cert_cb cb,
			  void *payload, cf_err *err);

/* ---- policies ------------------------------------------------------- */

/*
 * Check a policy document: {"version": 1, "statements": [{"effect":
 * "allow"|"deny", "actions": ["connect"|"publish"|"subscribe"|"receive"|"*"],
 * "resources": ["<topic filter with ${clientid} / ${thing}>", ...]}, ...]}.
 * CF_EINVAL with a message that says what is wrong and where.
 */
int cf_store_policy_validate(const char *document, cf_err *err);

/*
 * The policies certfleet creates, for topic prefix (protocol.md's P), as
 * compact JSON freed with free(); NULL when out of memory or the prefix is
 * longer than 200 bytes.
 * device: what a device may do, exactly its own rotation topics: publish
 *   P/${clientid}/{csr_res,crt_ack,crt_err}, subscribe to and receive
 *   P/${clientid}/{csr_req,crt,csr_rej} ('certfleet init' creates it).
 * service: the other side, for every device: publish P/+/{csr_req,crt,
 *   csr_rej}, subscribe to and receive P/+/{csr_res,crt_ack,crt_err}
 *   ('certfleet service create').
 */
char *cf_store_policy_device_document(const char *prefix);
char *cf_store_policy_service_document(const char *prefix);

/*
 * The MQTT topic filter algebra (MQTT 3.1.1 4.7) the policies are decided
 * with: the broker (broker/policy.c) decides each request with it, the
 * audit (POLICY_OVERLY_PERMISSIVE_CHECK) judges the documents with it.
 * Filters as validated above ('+' and '#' whole levels, '#' last); pure.
 */

/*
 * Whether topic (a name) matches filter. With dollar_rule, MQTT 4.7.2: a
 * filter whose first level is a wildcard does not match a topic starting
 * with '$' (an allow applies it; a deny does not, to fail closed).
 */
bool cf_store_topic_matches(const char *filter, const char *topic, bool dollar_rule);

/* Whether every topic that sub (a filter) can match also matches filter. */
bool cf_store_topic_filter_covers(const char *filter, const char *sub);

/* Whether some topic matches both filters. */
bool cf_store_topic_filters_overlap(const char *a, const char *b);

/* The longest filter cf_store_topic_expand() writes, with its NUL. */
#define CF_STORE_TOPIC_EXPANDED_MAX 1024

/*
 * resource with ${clientid} and ${thing} replaced by client_id and thing,
 * into buf. false when too long, or when a value it needs is NULL, empty
 * or holds '/', '+' or '#' (it would widen the filter: names in the
 * registry never hold them).
 */
bool cf_store_topic_expand(char buf[CF_STORE_TOPIC_EXPANDED_MAX], const char *resource,
			   const char *client_id, const char *thing);

/* Validate and insert. CF_EEXISTS. Event "policy.created". */
int cf_store_policy_insert(cf_store *store, const char *name, const char *document,
			   const cf_store_actor *actor, cf_err *err);

int cf_store_policy_get(cf_store *store, cf_store_policy *out, const char *name, cf_err *err);

typedef int (*cf_store_policy_cb)(const cf_store_policy *policy, void *payload);

/* Every policy, or only those attached to cert_id when it is not NULL. */
int cf_store_policy_list(cf_store *store, const char *cert_id, cf_store_policy_cb cb,
			 void *payload, cf_err *err);

/* Attach. CF_ENOTFOUND for either side; CF_EEXISTS when already attached. */
int cf_store_policy_attach(cf_store *store, const char *name, const char *cert_id,
			   const cf_store_actor *actor, cf_err *err);

/* Detach. CF_ENOTFOUND when not attached. */
int cf_store_policy_detach(cf_store *store, const char *name, const char *cert_id,
			   const cf_store_actor *actor, cf_err *err);

/* ---- rotations ------------------------------------------------------ */

/*
 * The states of a certificate rotation (protocol.md): REQUESTED (csr_req
 * sent, re-sent on a timer), ISSUED (a certificate was issued for the
 * device's CSR and sent), then one final state: COMPLETED (crt_ack),
 * FAILED (crt_err, or a refused CSR), TIMED_OUT (deadline passed),
 * CANCELLED (by an operator).
 */
typedef enum {
	CF_ROTATION_REQUESTED = 0,
	CF_ROTATION_ISSUED,
	CF_ROTATION_COMPLETED,
	CF_ROTATION_FAILED,
	CF_ROTATION_TIMED_OUT,
	CF_ROTATION_CANCELLED
} cf_rotation_state;

/* "REQUESTED", "ISSUED", "COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED"; "UNKNOWN" otherwise. */
const char *cf_rotation_state_name(cf_rotation_state state);
/* Case-insensitive parse of the names above. CF_EINVAL otherwise. */
int cf_rotation_state_parse(cf_rotation_state *out, const char *name);
/* REQUESTED and ISSUED are open: a thing has at most one open rotation. */
bool cf_rotation_state_open(cf_rotation_state state);

/*
 * The one place rotation transitions are decided:
 * REQUESTED -> REQUESTED (a re-send) | ISSUED | FAILED | TIMED_OUT | CANCELLED;
 * ISSUED -> ISSUED (a re-send of crt) | COMPLETED | FAILED | TIMED_OUT |
 * CANCELLED; the other four are final.
 */
bool cf_rotation_transition_allowed(cf_rotation_state from, cf_rotation_state to);

typedef struct cf_store_rotation {
	char *id;       /* 32 lowercase hex digits: cf_store_rotation_id_random() */
	char *thing;
	char *old_cert; /* the certificate being replaced (a full id) */
	char *new_cert; /* the certificate issued for it, NULL until ISSUED */
	char *csr_spki; /* SPKI SHA-256 (hex) of the CSR new_cert was issued for, or NULL */
	cf_rotation_state state;
	bool rekey;          /* the device must make a new key (csr_req "rekey") */
	char *key_type;      /* csr_req "keyType", or NULL for the device's default */
	char *error;         /* why it FAILED / TIMED_OUT / was CANCELLED, or NULL */
	int64_t created_at;  /* set by the store */
	int64_t updated_at;  /* set by the store */
	int64_t deadline;    /* after this, the rotation times out */
	int64_t next_send_at; /* when csr_req (REQUESTED) or crt (ISSUED) is sent again */
	int64_t sends;       /* csr_req sent so far */
	int64_t delete_old_at; /* COMPLETED only: when old_cert is to be deleted (the grace
				  period), 0 when nothing is pending */
} cf_store_rotation;

void cf_store_rotation_clear(cf_store_rotation *rot);

/* A fresh rotation id from RAND_bytes: 32 lowercase hex digits. CF_ECRYPTO. */
int cf_store_rotation_id_random(char out[33], cf_err *err);

/*
 * Open a rotation: writes id, thing, old_cert, rekey, key_type, deadline,
 * next_send_at and sends from rot, state REQUESTED (rot->state must say so),
 * created_at and updated_at from the store's clock; new_cert, csr_spki and
 * error are ignored. Event "rotation.opened" on "rotation:<id>". CF_EEXISTS
 * when the thing already has an open rotation (or the id is taken);
 * CF_ENOTFOUND for an unknown thing or old certificate; CF_EINVAL for a bad
 * record, or an old certificate bound to another thing.
 */
int cf_store_rotation_insert(cf_store *store, const cf_store_rotation *rot,
			     const cf_store_actor *actor, cf_err *err);

/*
 * Fetch by id, or by a unique id prefix of at least 8 hex digits, into *out
 * (release with cf_store_rotation_clear()). CF_ENOTFOUND; CF_EINVAL for an
 * ambiguous prefix or one that is not lowercase hex.
 */
int cf_store_rotation_get(cf_store *store, cf_store_rotation *out, const char *id, cf_err *err);

/* Fetch the thing's open (REQUESTED or ISSUED) rotation. CF_ENOTFOUND when it has none. */
int cf_store_rotation_get_open(cf_store *store, cf_store_rotation *out, const char *thing,
			       cf_err *err);

/*
 * Compare-and-set: if the stored rotation rot->id is in state expect and
 * cf_rotation_transition_allowed(expect, rot->state), write rot's state,
 * new_cert, csr_spki, error, next_send_at, sends and delete_old_at (only a
 * COMPLETED rotation may have one), and updated_at from
 * the store's clock (the other fields cannot change). A change of state
 * writes the event "rotation.state" (from, to, error, new_cert, why); a
 * re-send (REQUESTED -> REQUESTED, ISSUED -> ISSUED) writes none. CF_ENOTFOUND for an
 * unknown rotation or new certificate; CF_ESTATE when the stored state is
 * not expect (someone else moved it) or the transition is refused (err->msg
 * names both states); CF_EINVAL for a bad record (ISSUED and COMPLETED need
 * new_cert).
 */
int cf_store_rotation_update(cf_store *store, const cf_store_rotation *rot,
			     cf_rotation_state expect, const cf_store_actor *actor, cf_err *err);

typedef struct cf_store_rotation_filter {
	int state;          /* a cf_rotation_state, or -1: any */
	const char *thing;  /* NULL: any */
	int64_t due_by;     /* 0: any; else only open ones with next_send_at <= this */
	int64_t expired_by; /* 0: any; else only open ones with deadline <= this */
	int64_t limit;      /* 0: no limit */
	int64_t delete_due_by; /* 0: any; else only those with 0 < delete_old_at <= this */
} cf_store_rotation_filter;

#define CF_STORE_ROTATION_FILTER_INIT { -1, NULL, 0, 0, 0, 0 }

typedef int (*cf_store_rotation_cb)(const cf_store_rotation *rot, void *payload);

/*
 * Call cb for every matching rotation: soonest next_send_at first with
 * due_by, else soonest deadline first with expired_by, else soonest
 * delete_old_at first with delete_due_by, else oldest first.
 * A non-zero return from cb stops and is returned. The timer scan: collect
 * the ids, then update each (in one transaction or several). CF_EINVAL for
 * a bad filter.
 */
int cf_store_rotation_list(cf_store *store, const cf_store_rotation_filter *filter,
			   cf_store_rotation_cb cb, void *payload, cf_err *err);

/*
 * Record a protocol step of rotation id that changes no row, with its event
 * on "rotation:<id>": action "rotation.csr_rejected" (code: the csr_rej
 * code) or "rotation.crt_resent" (cert: the certificate sent again); code
 * and cert_id may be NULL. CF_ENOTFOUND for an unknown rotation; CF_EINVAL
 * for another action.
 */
int cf_store_rotation_event(cf_store *store, const char *id, const char *action, const char *code,
			    const char *cert_id, const cf_store_actor *actor, cf_err *err);

/* ---- outbox --------------------------------------------------------- */

/*
 * Messages to publish, written in the same transaction as the change that
 * causes them (cf_store_tx_begin()), published after the commit, and
 * deleted once the broker has them: a message is pending exactly while its
 * row exists, so a daemon restarted at any instant publishes what is left.
 * No events: the change that caused a message has its own.
 */
typedef struct cf_store_outbox_msg {
	int64_t id; /* increasing: the order of cf_store_outbox_add() */
	char *topic;
	char *payload;
	int64_t created_at;
} cf_store_outbox_msg;

/* Queue a message; *id_out (may be NULL) gets its id. CF_EINVAL; CF_ESTATE read-only. */
int cf_store_outbox_add(cf_store *store, const char *topic, const char *payload,
			int64_t *id_out, cf_err *err);

typedef int (*cf_store_outbox_cb)(const cf_store_outbox_msg *msg, void *payload);

/*
 * Call cb for the pending messages, oldest first, at most limit of them
 * (0: all). A non-zero return from cb stops and is returned.
 */
int cf_store_outbox_list(cf_store *store, int64_t limit, cf_store_outbox_cb cb, void *payload,
			 cf_err *err);

/* *out: a message to topic is still pending (not yet acknowledged by the broker). */
int cf_store_outbox_pending(cf_store *store, const char *topic, bool *out, cf_err *err);

/* Forget a sent message. CF_ENOTFOUND when it is already gone. */
int cf_store_outbox_delete(cf_store *store, int64_t id, cf_err *err);

/* ---- connections ---------------------------------------------------- */

/*
 * The broker plugin's record of MQTT connections, accepted and refused,
 * for the audits that find one certificate used by several devices or one
 * client id with several certificates. Not part of the event log: no
 * actor, no events, no hash chain (cf_store_events_verify() ignores the
 * table), and the writer prunes it to the newest rows it wants to keep.
 */

/* The longest client_id and address a record takes, in bytes (the caller truncates). */
#define CF_STORE_CONNECTION_TEXT_MAX 256
/* The longest outcome token, in bytes. */
#define CF_STORE_CONNECTION_OUTCOME_MAX 64

typedef struct cf_store_connection {
	int64_t id;            /* out: increasing in the order recorded; ignored when recording */
	int64_t at;            /* when, seconds since the epoch, > 0 */
	const char *cert_id;   /* the certificate presented (64 lowercase hex), NULL for none */
	const char *client_id; /* the MQTT client id as sent, may be "" */
	const char *address;   /* the peer's address as the broker saw it, may be "" */
	const char *outcome;   /* "accepted", or why it was refused ("status_INACTIVE",
				  "client_id_mismatch", ...): 1 to 64 of [A-Za-z0-9_.:-] */
} cf_store_connection;

/*
 * Insert n records (n may be 0) in one transaction, then delete all but
 * the newest keep rows (keep 0: delete nothing). Every record is checked
 * first: CF_EINVAL, with err->msg naming the first bad record by its
 * index, and nothing is written. CF_EBUSY when another process holds the
 * write lock for longer than the busy timeout (cf_store_set_busy_timeout()):
 * nothing was written, so the caller keeps the records and tries again
 * later. CF_ESTATE on a read-only handle; CF_ESTORE.
 */
int cf_store_connections_record(cf_store *store, const cf_store_connection *recs, size_t n,
				int64_t keep, cf_err *err);

typedef struct cf_store_connection_filter {
	const char *cert_id;   /* a certificate id or a prefix of 8+ hex digits; NULL: any */
	const char *client_id; /* exactly this client id; NULL: any */
	int64_t since;         /* only at >= since; 0: any */
	int64_t limit;         /* 0: no limit */
} cf_store_connection_filter;

#define CF_STORE_CONNECTION_FILTER_INIT { NULL, NULL, 0, 0 }

/* conn and its strings are borrowed for the duration of the call. */
typedef int (*cf_store_connection_cb)(const cf_store_connection *conn, void *payload);

/*
 * Call cb for the matching records, newest (highest id) first; filter
 * NULL: all. A non-zero return from cb stops and is returned. CF_EINVAL for
 * a bad filter (a cert_id that is not 8 to 64 hex digits, a negative since
 * or limit); CF_EBUSY, CF_ESTORE.
 */
int cf_store_connection_list(cf_store *store, const cf_store_connection_filter *filter,
			     cf_store_connection_cb cb, void *payload, cf_err *err);

/* ---- audits --------------------------------------------------------- */

/*
 * The audits' record: runs, the findings of each run, and suppressions.
 * Runs and findings are not part of the event log (no actor, no events,
 * like connections); creating and removing a suppression is an operator
 * action and writes an event ("audit.suppressed", "audit.unsuppressed") on
 * the resource "suppression:<check>:<resource>".
 *
 * A finding is one check's complaint about one resource. Its finding_id is
 * stable across runs: the first 32 lowercase hex digits of SHA-256 over
 * check "\n" resource. Relative to the latest earlier COMPLETED run that ran
 * the same check, a finding is NEW (that run did not have it, or had it
 * RESOLVED, or there is no such run), OPEN (that run had it NEW or OPEN), or
 * RESOLVED (that run had it NEW or OPEN, this one does not: a row written by
 * cf_store_audit_run_finish()). A finding of a check a run did not run is
 * neither open nor resolved by that run.
 */

typedef enum { CF_AUDIT_SCHEDULED = 0, CF_AUDIT_ON_DEMAND } cf_audit_trigger;
typedef enum { CF_AUDIT_IN_PROGRESS = 0, CF_AUDIT_COMPLETED, CF_AUDIT_FAILED } cf_audit_status;
typedef enum {
	CF_SEVERITY_CRITICAL = 0,
	CF_SEVERITY_HIGH,
	CF_SEVERITY_MEDIUM,
	CF_SEVERITY_LOW
} cf_audit_severity;
typedef enum { CF_FINDING_NEW = 0, CF_FINDING_OPEN, CF_FINDING_RESOLVED } cf_finding_state;

/* "SCHEDULED", "ON_DEMAND"; "UNKNOWN" otherwise. */
const char *cf_audit_trigger_name(cf_audit_trigger trigger);
/* "IN_PROGRESS", "COMPLETED", "FAILED"; "UNKNOWN" otherwise. */
const char *cf_audit_status_name(cf_audit_status status);
/* "CRITICAL", "HIGH", "MEDIUM", "LOW"; "UNKNOWN" otherwise. */
const char *cf_audit_severity_name(cf_audit_severity severity);
/* Case-insensitive parse of the names above. CF_EINVAL otherwise. */
int cf_audit_severity_parse(cf_audit_severity *out, const char *name);
/* "NEW", "OPEN", "RESOLVED"; "UNKNOWN" otherwise. */
const char *cf_finding_state_name(cf_finding_state state);
/* Case-insensitive parse of the names above. CF_EINVAL otherwise. */
int cf_finding_state_parse(cf_finding_state *out, const char *name);

/* The most checks one run takes; the longest check name and reason, in bytes. */
#define CF_STORE_AUDIT_CHECKS_MAX 64
#define CF_STORE_AUDIT_TOKEN_MAX  64
/* The longest resource, suppression reason and finding detail, in bytes. */
#define CF_STORE_AUDIT_RESOURCE_MAX 300
#define CF_STORE_AUDIT_REASON_MAX   1024
#define CF_STORE_AUDIT_DETAIL_MAX   4096

typedef struct cf_store_audit_run {
	int64_t id;
	int64_t started_at;  /* the store's clock at cf_store_audit_run_begin() */
	int64_t finished_at; /* 0 while IN_PROGRESS */
	cf_audit_trigger trigger;
	cf_audit_status status;
	char *checks;  /* the check names run, a JSON array as text */
	char *summary; /* the engine's counts, a JSON object as text, "{}" until finished */
} cf_store_audit_run;

void cf_store_audit_run_clear(cf_store_audit_run *run);

/*
 * One finding. cf_store_audit_findings_add() reads check, resource,
 * severity, reason and detail and ignores the rest; a list callback gets
 * every field, borrowed for the duration of the call.
 */
typedef struct cf_store_finding {
	int64_t run_id;
	const char *finding_id; /* 32 lowercase hex digits */
	const char *check;      /* "DEVICE_CERTIFICATE_EXPIRING_CHECK": 1 to 64 of [A-Z0-9_] */
	const char *resource;   /* "cert:<id>" (64 lowercase hex), "ca:<name>", "thing:<name>",
				   "policy:<name>" (names as cf_name_valid()), "client:<client id>"
				   (1 to 256 bytes, no control characters), "file:<path>"
				   (a file the audit reads; no control characters), and for
				   the deployment "registry:<name>", "config:<name>" */
	cf_audit_severity severity;
	const char *reason;     /* "CERTIFICATE_APPROACHING_EXPIRATION": 1 to 64 of [A-Z0-9_] */
	const char *detail;     /* a JSON object as text; NULL for "{}" when adding */
	cf_finding_state state;
	bool suppressed;        /* a suppression of (check, resource) applied at the run's start */
} cf_store_finding;

/*
 * Start a run of the n checks named (1 to CF_STORE_AUDIT_CHECKS_MAX
 * distinct check names): status IN_PROGRESS, started_at from the store's
 * clock. *id_out gets its id (increasing). CF_EINVAL for a bad trigger or
 * check list; CF_ESTATE on a read-only handle; CF_EBUSY, CF_ESTORE.
 */
int cf_store_audit_run_begin(int64_t *id_out, cf_store *store, cf_audit_trigger trigger,
			     const char *const *checks, size_t n, cf_err *err);

/*
 * Add n findings (n may be 0) to the IN_PROGRESS run run_id, for checks it
 * runs. The store computes each finding_id, its state (NEW or OPEN, see
 * above) and whether a suppression applies (one of the same check and
 * resource with expires_at > the run's started_at). Call it as often as
 * needed (batches of a few thousand); one transaction per call, or a
 * savepoint of the caller's transaction (cf_store_tx_begin()), which is
 * what makes a million findings cheap. Every item is checked first, and a
 * refused batch writes nothing: CF_EINVAL for a bad item (err->msg names
 * it by index), a check the run does not run, or a finding given twice in
 * the run; CF_ENOTFOUND for an unknown run; CF_ESTATE when the run is
 * finished or the handle read-only; CF_EBUSY, CF_ESTORE.
 */
int cf_store_audit_findings_add(cf_store *store, int64_t run_id, const cf_store_finding *items,
				size_t n, cf_err *err);

/*
 * Finish the IN_PROGRESS run run_id with status COMPLETED or FAILED and
 * summary_json (a JSON object as text; NULL for "{}"); finished_at from the
 * store's clock. COMPLETED also writes a RESOLVED row for every finding the
 * previous COMPLETED run of each of its checks had NEW or OPEN that this run
 * does not have. FAILED resolves nothing, and a later run compares with the
 * last COMPLETED one. CF_EINVAL for another status or a bad summary;
 * CF_ENOTFOUND; CF_ESTATE when the run is already finished or the handle
 * read-only; CF_EBUSY, CF_ESTORE.
 */
int cf_store_audit_run_finish(cf_store *store, int64_t run_id, cf_audit_status status,
			      const char *summary_json, cf_err *err);

/* Fetch run id into *out (release with cf_store_audit_run_clear()). CF_ENOTFOUND. */
int cf_store_audit_run_get(cf_store *store, cf_store_audit_run *out, int64_t id, cf_err *err);

/* run is borrowed for the duration of the call. */
typedef int (*cf_store_audit_run_cb)(const cf_store_audit_run *run, void *payload);

/*
 * Call cb for the runs, newest first, at most limit of them (0: all). A
 * non-zero return from cb stops and is returned. CF_EINVAL for a negative
 * limit.
 */
int cf_store_audit_run_list(cf_store *store, int64_t limit, cf_store_audit_run_cb cb,
			    void *payload, cf_err *err);

typedef struct cf_store_finding_filter {
	int64_t run_id;          /* 0: the latest COMPLETED run */
	const char *check;       /* NULL: any */
	int severity;            /* a cf_audit_severity, or -1: any */
	int state;               /* a cf_finding_state, or -1: any */
	bool include_suppressed; /* false: suppressed findings are left out */
	int64_t limit;           /* 0: no limit */
} cf_store_finding_filter;

#define CF_STORE_FINDING_FILTER_INIT { 0, NULL, -1, -1, false, 0 }

/* finding and its strings are borrowed for the duration of the call. */
typedef int (*cf_store_finding_cb)(const cf_store_finding *finding, void *payload);

/*
 * Call cb for the matching findings of one run (filter NULL: the
 * unsuppressed findings of the latest COMPLETED run), by check, then
 * resource. A non-zero return from cb stops and is returned. CF_ENOTFOUND
 * for an unknown run, or when run_id is 0 and no run has completed;
 * CF_EINVAL for a bad filter.
 */
int cf_store_audit_finding_list(cf_store *store, const cf_store_finding_filter *filter,
				cf_store_finding_cb cb, void *payload, cf_err *err);

/*
 * Suppress the findings of check on resource until expires_at (seconds
 * since the epoch): runs started before then mark them suppressed. Replaces
 * an existing suppression of the pair. reason (1 to
 * CF_STORE_AUDIT_REASON_MAX bytes) is required. Event "audit.suppressed"
 * (check, resource, expires_at, reason, why). CF_EINVAL for a bad check or
 * resource, a missing reason, or expires_at not after the store's clock;
 * CF_ESTATE on a read-only handle.
 */
int cf_store_audit_suppress(cf_store *store, const char *check, const char *resource,
			    int64_t expires_at, const char *reason, const cf_store_actor *actor,
			    cf_err *err);

/*
 * Record that finding (its run_id, finding_id, check and resource) was sent
 * to the notifiers by the NOTIFY action: the event "audit.notified" on
 * "finding:<id>". CF_EINVAL; CF_ESTATE on a read-only handle; CF_EBUSY,
 * CF_ESTORE.
 */
int cf_store_audit_notified(cf_store *store, const cf_store_finding *finding,
			    const cf_store_actor *actor, cf_err *err);

/*
 * Remove the suppression of check on resource, expired or not. Event
 * "audit.unsuppressed". CF_ENOTFOUND when there is none; CF_EINVAL;
 * CF_ESTATE on a read-only handle.
 */
int cf_store_audit_unsuppress(cf_store *store, const char *check, const char *resource,
			      const cf_store_actor *actor, cf_err *err);

typedef struct cf_store_audit_suppression {
	const char *check;
	const char *resource;
	int64_t expires_at;
	const char *reason;
	int64_t created_at;
	const char *created_by; /* the actor's who */
	bool expired;           /* expires_at <= the store's clock: no longer applied */
} cf_store_audit_suppression;

/* sup and its strings are borrowed for the duration of the call. */
typedef int (*cf_store_audit_suppression_cb)(const cf_store_audit_suppression *sup,
					     void *payload);

/*
 * Call cb for every suppression, expired ones included and flagged (an
 * operator sees what lapsed, and removes it with cf_store_audit_unsuppress()),
 * by check, then resource. A non-zero return from cb stops and is returned.
 */
int cf_store_audit_suppression_list(cf_store *store, cf_store_audit_suppression_cb cb,
				    void *payload, cf_err *err);

/* ---- events --------------------------------------------------------- */

typedef struct cf_store_event_filter {
	const char *resource; /* exact resource, or NULL */
	int64_t after_seq;    /* only seq > after_seq */
	int64_t limit;        /* 0: no limit */
	bool newest_first;
} cf_store_event_filter;

#define CF_STORE_EVENT_FILTER_INIT { NULL, 0, 0, false }

typedef int (*cf_store_event_cb)(const cf_store_event *event, void *payload);

int cf_store_events_list(cf_store *store, const cf_store_event_filter *filter,
			 cf_store_event_cb cb, void *payload, cf_err *err);

/*
 * An outside record of the log: the head at some moment (seq, hash). The
 * head row lives in the same file as the log, so deleting the newest events
 * and rolling the head back with them leaves a log that checks out on its
 * own; only a head recorded elsewhere shows it. Operators (and later the
 * audit notifications) record the head periodically with
 * cf_store_events_head(), keep it outside the registry, and pass it back
 * to cf_store_events_verify().
 */
/* The prev_hash of the first event, and the hash of an empty log's head (seq 0). */
#define CF_STORE_GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct cf_store_event_anchor {
	int64_t seq;   /* 0 for an empty log */
	char hash[65]; /* lowercase hex, NUL-terminated; 64 zeros at seq 0 */
} cf_store_event_anchor;

/*
 * The current chain head: the seq and hash of the newest event (0 and 64
 * zeros for an empty log), as an anchor for a later verify. CF_EINTEGRITY
 * when the head row is missing or malformed; CF_EBUSY, CF_ESTORE.
 */
int cf_store_events_head(cf_store *store, int64_t *seq, char hash[65], cf_err *err);

/*
 * Walk the whole chain and check the registry against it, from one snapshot:
 * - each event's hash must cover its fields and the previous hash, sequence
 *   numbers must have no gap, and the last event must match the chain head
 *   kept beside the log;
 * - with an anchor (NULL: none), the log must still hold event anchor->seq
 *   with exactly anchor->hash ("the log was truncated or rewritten before
 *   the anchor");
 * - the certificate events are replayed (cert.issued / cert.registered give
 *   the first status and policies, cert.status the next statuses,
 *   policy.attached / policy.detached the next policies, cert.deleted the
 *   deletion of an INACTIVE or REVOKED one) and every row of the
 *   certificate table must exist in the events with the replayed status,
 *   deleted exactly when the events deleted it, and a change_seq equal to
 *   the seq of the last of those events about it, and every issued
 *   certificate must have its row;
 * - every row of the policy attachments must have been attached by the
 *   events, and every policy the events leave attached must have its row.
 * Not covered: the rows of CAs, things, policies (their documents) and
 * registration codes are not compared with their events.
 * CF_EINTEGRITY with err->msg saying what is wrong and *bad_seq set to:
 * - a chain failure: the first bad or missing event (0 when only the head
 *   row is wrong);
 * - an anchor failure: the anchor's seq when that event differs, or the
 *   first missing seq when the log ends before it;
 * - a registry failure (err->msg names the certificate, and the policy for
 *   an attachment): the seq of the last event about that certificate, the
 *   state the row should show (0 for a row or an attachment of a
 *   certificate no event issued).
 * *count gets the number of events checked. CF_EINVAL for a malformed
 * anchor; CF_ENOMEM (the replay keeps about 120 bytes per certificate in
 * memory, 120 MB for a million, plus each distinct set of policies once),
 * CF_EBUSY, CF_ESTORE.
 */
int cf_store_events_verify(cf_store *store, int64_t *count, int64_t *bad_seq,
			   const cf_store_event_anchor *anchor, cf_err *err);

/*
 * The chain alone, from an anchor on: the events from anchor->seq (NULL or
 * seq 0: from the first) must link and hash as in cf_store_events_verify(),
 * and the event at anchor->seq must still have exactly anchor->hash. With
 * limit 0 the walk goes to the end and the head row must match the last
 * event; with limit > 0 it stops after that many events past the anchor
 * (the head row is checked if it got there). No replay and no registry
 * rows, so the cost is that of the events walked: the audit's check of a
 * log whose earlier part it verified before. *last (may be NULL) gets the
 * last event verified (the anchor when none came after it). *count counts
 * the anchor's own event too. CF_EINTEGRITY with *bad_seq and err->msg as
 * for cf_store_events_verify(); CF_EINVAL for a malformed anchor or a
 * negative limit; CF_EBUSY, CF_ESTORE.
 */
int cf_store_events_verify_chain(cf_store *store, const cf_store_event_anchor *anchor,
				 int64_t limit, cf_store_event_anchor *last, int64_t *count,
				 int64_t *bad_seq, cf_err *err);

#endif
