/*
 * rotation: the certificate rotation engine of protocol.md.
 *
 * A state machine persisted in the store (cf_store_rotation: REQUESTED,
 * ISSUED, then COMPLETED, FAILED, TIMED_OUT or CANCELLED), driven by four
 * inputs: an operator or audit opening rotations (cf_rotation_start,
 * cf_rotation_start_many) or cancelling one (cf_rotation_cancel), a device
 * message (cf_rotation_handle) and the clock (cf_rotation_tick). Pure over
 * the store, the authority and a clock: it never touches sockets. Every
 * message a transition causes is written to the store's outbox in the same
 * transaction as the transition; the MQTT binding publishes and deletes
 * them after the commit, so a daemon killed at any instant resumes
 * correctly.
 *
 * The replaced certificate goes INACTIVE on crt_ack and is deleted from the
 * active registry (cf_store_cert_delete) at once, or by the tick once the
 * grace period is over. Not here: notifications (protocol.md's crt_err
 * notification). docs/rotation.md tells the whole story.
 *
 * An engine is used by one thread at a time.
 */
#ifndef CF_ROTATION_H
#define CF_ROTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authority/authority.h"
#include "store/store.h"
#include "util/util.h"

/* Rotations handled by one cf_rotation_tick() call at most. */
#define CF_ROTATION_TICK_MAX 1000
/* A device's crt_err text is kept to this many bytes (cut at a UTF-8 boundary). */
#define CF_ROTATION_ERROR_MAX 200
/* Longest accepted topic prefix, in bytes. */
#define CF_ROTATION_PREFIX_MAX 256

/* Seconds since the epoch; payload is the config's clock_payload. */
typedef int64_t (*cf_rotation_clock_fn)(void *payload);

typedef struct cf_rotation_config {
	const char *topic_prefix;   /* "management/topic": P of protocol.md, no '+', '#' */
	int64_t resend_interval;    /* csr_req re-send period in seconds, 300 */
	int64_t deadline;           /* a rotation times out this many seconds after start, 86400 */
	size_t max_payload;         /* larger device messages are refused unparsed, 64 KiB */
	bool rekey;                 /* csr_req "rekey", and KEY_REUSE checks; true */
	const char *key_type;       /* csr_req "keyType" ("EC-P384", ...), or NULL to omit */
	unsigned int csr_max;       /* csr_res accepted per rotation before RATE_LIMITED, 5 */
	int64_t grace;              /* the old certificate is deleted this many seconds after
				       crt_ack; 0 (the default): in the crt_ack transaction */
	const char *actor;          /* who the engine's own changes are by, "certfleetd" */
	cf_rotation_clock_fn clock; /* NULL: cf_time_now() */
	void *clock_payload;
} cf_rotation_config;

/* Fill cfg with the defaults above. */
void cf_rotation_config_init(cf_rotation_config *cfg);

typedef struct cf_rotation_engine cf_rotation_engine; /* opaque */

/*
 * Make an engine over store and auth (both borrowed: they must outlive the
 * engine; auth must be over the same store). The config strings are
 * copied. The caller frees *out with cf_rotation_engine_free(). CF_EINVAL
 * for a bad config (empty or over-long prefix, a prefix with a wildcard,
 * non-positive timers, a negative grace, an unknown key type, csr_max 0);
 * CF_ENOMEM.
 */
int cf_rotation_engine_new(cf_rotation_engine **out, cf_store *store, cf_authority *auth,
			   const cf_rotation_config *cfg, cf_err *err);

/* Release. NULL is accepted. */
void cf_rotation_engine_free(cf_rotation_engine *eng);

/*
 * Open a rotation for thing and queue its csr_req, in one transaction.
 * old_cert names the certificate to replace (a full id or a unique prefix;
 * it must be ACTIVE and bound to thing), or NULL for the thing's ACTIVE
 * certificate that expires soonest. id_out gets the rotation id.
 * CF_EEXISTS when the thing already has an open rotation; CF_ENOTFOUND
 * for an unknown thing or no ACTIVE certificate; CF_ESTATE when old_cert
 * is not ACTIVE; CF_EINVAL for a bad name or a certificate of another
 * thing; CF_EBUSY, CF_ESTORE.
 */
int cf_rotation_start(cf_rotation_engine *eng, char id_out[33], const char *thing,
		      const char *old_cert, const cf_store_actor *actor, cf_err *err);

/* What cf_rotation_start_many() opens rotations for; at least one is required. */
typedef struct cf_rotation_select {
	int64_t expiring_within; /* > 0: certificates with not_after <= now + this, seconds */
	const char *ca;          /* not NULL: certificates issued by this CA */
} cf_rotation_select;

/* What cf_rotation_start_many() did. */
typedef struct cf_rotation_bulk {
	size_t things;          /* things with a matching certificate */
	size_t started;         /* rotations opened */
	size_t skipped_open;    /* the thing already had an open rotation */
	size_t skipped_service; /* service principals: things with the attribute role=service */
	size_t skipped_changed; /* the certificate or the thing changed meanwhile */
} cf_rotation_bulk;

/* Called for each rotation opened by cf_rotation_start_many(). */
typedef void (*cf_rotation_started_fn)(const char *rotation_id, const char *thing, void *payload);

/*
 * Open one rotation per thing that has an ACTIVE certificate matching sel
 * (both criteria when both are set), replacing the thing's soonest-expiring
 * matching certificate, each as cf_rotation_start() does, in its own
 * transaction. Certificates without a thing and service principals (a
 * thing named explicitly to cf_rotation_start() is rotated whatever its
 * role) are skipped. The matches are collected first (about 140 bytes per
 * matching certificate), then the rotations opened; cb (may be NULL) hears
 * of each. *out counts what happened, also on failure (what was started
 * stays started). CF_EINVAL for an empty sel; CF_ENOTFOUND for an unknown
 * CA; CF_ENOMEM, CF_EBUSY, CF_ESTORE.
 */
int cf_rotation_start_many(cf_rotation_engine *eng, cf_rotation_bulk *out,
			   const cf_rotation_select *sel, const cf_store_actor *actor,
			   cf_rotation_started_fn cb, void *payload, cf_err *err);

/*
 * Cancel an open rotation: CANCELLED, with error "cancelled" (": why" when
 * why is not NULL), and a certificate issued for it but never confirmed
 * goes INACTIVE, in one transaction. id is a full rotation id or a unique
 * prefix. No message goes to the device: a later csr_res is answered
 * NO_ROTATION, and a device holding the unconfirmed certificate cannot
 * connect with it and falls back to its old one (docs/rotation.md).
 * CF_ENOTFOUND; CF_ESTATE when the rotation is no longer open; CF_EINVAL
 * for a bad or ambiguous id; CF_EBUSY, CF_ESTORE.
 */
int cf_rotation_cancel(cf_rotation_engine *eng, const char *id, const char *why,
		       const cf_store_actor *actor, cf_err *err);

/*
 * The timers: open rotations past their deadline become TIMED_OUT (error
 * "deadline"; an issued, never confirmed certificate goes INACTIVE), then
 * open rotations whose next_send_at has come get their message again
 * (csr_req while REQUESTED, the issued crt while ISSUED: its crt_ack may
 * have been lost, and an agent acknowledges its current certificate again),
 * then the old certificates of COMPLETED rotations whose grace period is
 * over are deleted.
 * Each rotation in its own transaction; at most CF_ROTATION_TICK_MAX per
 * call, their number in *handled_out (may be NULL): call again at once when
 * it equals the maximum. A rotation moved meanwhile by someone else is
 * skipped. CF_EBUSY, CF_ESTORE (what was handled before stays done).
 */
int cf_rotation_tick(cf_rotation_engine *eng, size_t *handled_out, cf_err *err);

/*
 * Handle one device message: topic "P/{clientId}/csr_res", ".../crt_ack"
 * or ".../crt_err" with its JSON payload (len bytes, NUL not needed).
 * Protocol refusals (NO_ROTATION, BAD_CSR, BAD_SIGNATURE, WEAK_KEY,
 * KEY_REUSE, RATE_LIMITED) are answered with a csr_rej in the outbox and
 * return CF_OK: the message was handled. A refusal for an open rotation
 * writes the event "rotation.csr_rejected" (RATE_LIMITED only the first
 * time), a certificate sent again "rotation.crt_resent". Acks that match nothing are
 * ignored with CF_OK. Bad input changes nothing: CF_EINVAL for another
 * topic, a clientId that is not a valid name, a payload over max_payload,
 * not JSON, not an object, or a field of the wrong type (a missing "CSR").
 * CF_ENOTFOUND / CF_ESTATE when the registry refuses the issuance (no
 * default issuer, a retired CA); CF_EBUSY, CF_ESTORE.
 */
int cf_rotation_handle(cf_rotation_engine *eng, const char *topic, const void *payload, size_t len,
		       cf_err *err);

#endif
