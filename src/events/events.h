/*
 * events: notifications leaving certfleetd. For now the webhook: an HTTP
 * POST of a JSON document, signed with HMAC-SHA256, through libcurl's multi
 * interface so that certfleetd's single thread never waits on it.
 *
 * The caller queues bodies with cf_events_webhook_post() and calls
 * cf_events_webhook_step() from its loop; a step never blocks. One request
 * is in flight at a time, so notifications arrive in the order they were
 * queued. Connection errors, timeouts, 5xx and 429 are retried with
 * exponential backoff and jitter up to max_attempts; any other answer
 * outside 2xx drops the notification at once. Every drop is logged with
 * a count. The secret is never logged. docs/daemon.md has the payloads and
 * how a receiver checks the signature.
 */
#ifndef CF_EVENTS_H
#define CF_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* The signature header: "sha256=" and the lowercase hex HMAC-SHA256 of the body. */
#define CF_EVENTS_SIGNATURE_HEADER "X-Certfleet-Signature"
/* Seconds since the epoch when the attempt was made (decimal). */
#define CF_EVENTS_TIMESTAMP_HEADER "X-Certfleet-Timestamp"
/* The payload's "event" ("audit.run", "rotation.failed", ...). */
#define CF_EVENTS_EVENT_HEADER "X-Certfleet-Event"

/* A monotonic clock in milliseconds; payload is the config's clock_payload. */
typedef int64_t (*cf_events_clock_fn)(void *payload);

typedef struct cf_events_webhook_config {
	const char *url;              /* http:// or https:// */
	const char *ca_file;          /* PEM trust anchors for https, NULL or "": the system's */
	const char *secret;           /* HMAC key, copied into the secure heap */
	size_t secret_len;
	int64_t connect_timeout_ms;   /* 5000 */
	int64_t timeout_ms;           /* whole request, 10000 */
	unsigned int max_attempts;    /* first try included, 6 */
	size_t queue_max;             /* queued notifications at most (oldest dropped), 1000 */
	int64_t backoff_base_ms;      /* delay before the first retry, about; 1000 */
	int64_t backoff_max_ms;       /* longest delay between attempts, 300000 */
	cf_events_clock_fn clock;     /* NULL: CLOCK_MONOTONIC */
	void *clock_payload;
} cf_events_webhook_config;

/* Fill cfg with the defaults above (url and secret NULL). */
void cf_events_webhook_config_init(cf_events_webhook_config *cfg);

typedef struct cf_events_webhook cf_events_webhook; /* opaque */

/* What a webhook did so far. */
typedef struct cf_events_webhook_stats {
	uint64_t queued;    /* accepted by cf_events_webhook_post() */
	uint64_t sent;      /* answered with 2xx */
	uint64_t attempts;  /* requests finished, whatever the outcome */
	uint64_t retried;   /* attempts that were followed by another */
	uint64_t dropped;   /* given up: attempts exhausted, refused (4xx), queue full */
} cf_events_webhook_stats;

/*
 * A webhook for cfg (copied). CF_EINVAL for a URL that is not http(s) or an
 * empty secret; CF_ENOMEM; CF_EIO when libcurl cannot be set up. Freed
 * with cf_events_webhook_free().
 */
int cf_events_webhook_new(cf_events_webhook **out, const cf_events_webhook_config *cfg,
			  cf_err *err);

/* Abort what is in flight, log what is dropped, wipe the secret. NULL is accepted. */
void cf_events_webhook_free(cf_events_webhook *wh);

/*
 * Queue body (len bytes of JSON, copied) for event (a short token for the
 * log and the X-Certfleet-Event header). A full queue drops its oldest
 * notification not in flight, with a log line. CF_EINVAL for an empty
 * body; CF_ENOMEM.
 */
int cf_events_webhook_post(cf_events_webhook *wh, const char *event, const char *body, size_t len,
			   cf_err *err);

/*
 * Replace the HMAC key (a secret file re-read on SIGHUP); what is queued
 * is signed with it from now on. CF_EINVAL for an empty secret; CF_ENOMEM.
 */
int cf_events_webhook_secret_set(cf_events_webhook *wh, const char *secret, size_t len,
				 cf_err *err);

/* Start, advance and finish requests; never blocks. */
void cf_events_webhook_step(cf_events_webhook *wh);

/* Notifications queued or in flight. */
size_t cf_events_webhook_pending(const cf_events_webhook *wh);

/* Notifications that can still be queued before the oldest would be dropped. */
size_t cf_events_webhook_room(const cf_events_webhook *wh);

/* Is a request in flight (the caller's loop should step again soon)? */
bool cf_events_webhook_busy(const cf_events_webhook *wh);

void cf_events_webhook_stats_get(cf_events_webhook_stats *out, const cf_events_webhook *wh);

/*
 * The signature of a request: lowercase hex HMAC-SHA256 with key over
 * timestamp, ".", then body (timestamp NULL: body alone), into out (65
 * bytes, NUL-terminated). The webhook signs its X-Certfleet-Timestamp so.
 * CF_ECRYPTO when OpenSSL fails.
 */
int cf_events_sign(char out[65], const void *key, size_t key_len, const char *timestamp,
		   const void *body, size_t len, cf_err *err);

/*
 * The delay before attempt + 1 after attempt (1-based) failed: base doubled
 * per attempt, capped at max, of which the upper half is random ("equal
 * jitter"): in [d/2, d] for d = min(base * 2^(attempt-1), max). rnd is a
 * random number (RAND_bytes in the webhook; fixed in tests).
 */
int64_t cf_events_backoff_ms(unsigned int attempt, int64_t base, int64_t max, uint32_t rnd);

/* Is a finished attempt with this outcome worth another? curl_rc is a CURLcode. */
bool cf_events_retryable(int curl_rc, long http_status);

#endif
