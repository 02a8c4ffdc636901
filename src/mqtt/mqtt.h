/*
 * mqtt: certfleetd's connection to the broker, over libmosquitto with
 * mutual TLS.
 *
 * One connection, driven from the caller's loop by cf_mqtt_step(): no
 * thread, every callback runs inside cf_mqtt_step(). The TLS context is
 * built once from the files (libmosquitto would re-read them on every
 * connect) and the broker's name is checked against the host (a DNS name
 * or an IP address). The session is persistent (clean session off), the
 * subscriptions QoS 1; a lost connection is retried with exponential
 * backoff and jitter.
 *
 * Each connection gets a fresh libmosquitto client, so that nothing is
 * re-sent behind the caller's back: publishes that were in flight when the
 * connection was lost are forgotten, and the caller (the daemon's outbox)
 * publishes them again. Delivery is at least once.
 *
 * Knows nothing of the store or the rotation engine.
 */
#ifndef CF_MQTT_H
#define CF_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Publishes awaiting their PUBACK, at most (default of max_inflight). */
#define CF_MQTT_INFLIGHT_DEFAULT 256

typedef struct cf_mqtt_callbacks {
	/* The session is up and the subscriptions were sent. */
	void (*connected)(void *payload);
	/* The connection is gone (or a connect failed): in-flight publishes are forgotten. */
	void (*lost)(void *payload);
	/* A message on a subscribed topic (QoS 1: the broker may deliver it again). */
	void (*message)(void *payload, const char *topic, const void *data, size_t len);
	/* The broker acknowledged the publish made with this tag. */
	void (*delivered)(void *payload, int64_t tag);
	void *payload;
} cf_mqtt_callbacks;

typedef struct cf_mqtt_config {
	const char *host;       /* broker host name or IP address, checked in its certificate */
	int port;
	const char *client_id;
	int keepalive;          /* seconds */
	const char *ca_file;    /* PEM trust anchors for the broker */
	const char *cert_file;  /* client certificate, then its chain */
	const char *key_file;   /* client key (unencrypted PEM, mode 0600 or stricter) */
	const char *const *topics; /* subscribed at QoS 1 on every connect */
	size_t ntopics;
	int reconnect_min_ms;   /* first retry delay, doubled up to reconnect_max_ms */
	int reconnect_max_ms;
	int connect_timeout_ms; /* TCP + TLS + CONNACK */
	unsigned int max_inflight; /* 0: CF_MQTT_INFLIGHT_DEFAULT */
} cf_mqtt_config;

typedef struct cf_mqtt cf_mqtt; /* opaque */

/*
 * Make a client (not connected yet: the first cf_mqtt_step() connects).
 * Reads and checks the TLS files now, so that a bad certificate, a key
 * that does not match it, or a key file readable by others is refused at
 * start: CF_EINVAL / CF_ECRYPTO / CF_ENOTFOUND with the file in err->msg.
 * The strings are copied; cb is copied.
 */
int cf_mqtt_new(cf_mqtt **out, const cf_mqtt_config *cfg, const cf_mqtt_callbacks *cb,
		cf_err *err);

/* Disconnect cleanly (DISCONNECT sent) and release. NULL is accepted. */
void cf_mqtt_free(cf_mqtt *m);

/*
 * Connect when a connect is due, then run the network for at most
 * timeout_ms (calling back for what happens). now_ms is a monotonic clock.
 */
void cf_mqtt_step(cf_mqtt *m, int64_t now_ms, int timeout_ms);

/* The session is up (CONNACK accepted). */
bool cf_mqtt_connected(const cf_mqtt *m);

/* Publishes in flight (sent, no PUBACK yet). */
unsigned int cf_mqtt_inflight(const cf_mqtt *m);

/*
 * Publish at QoS 1, not retained. tag comes back through delivered() once
 * the broker has it. CF_EBUSY when not connected or max_inflight publishes
 * are in flight (try after the next step); CF_EINVAL for a payload over
 * 256 MiB; CF_EIO when libmosquitto refuses (the connection is then
 * treated as lost).
 */
int cf_mqtt_publish(cf_mqtt *m, const char *topic, const void *data, size_t len, int64_t tag,
		    cf_err *err);

/*
 * The CA, certificate or key file changed since the TLS context was built.
 * Every connect rebuilds the context from changed files first (a renewed
 * identity is used without a restart; a context that cannot be built is
 * logged and the previous one kept).
 */
bool cf_mqtt_tls_files_changed(const cf_mqtt *m);

/* Send DISCONNECT and drop the connection; the next step reconnects at once. */
void cf_mqtt_reconnect_now(cf_mqtt *m);

#endif
