/*
 * libcertfleet-agent: the device side of certfleet's certificate rotation.
 *
 * A small C library for IoT firmware. It keeps the device's key and
 * certificate pairs on disk, answers the server's csr_req with a CSR for a
 * freshly made key, checks the certificate it gets back against the staged
 * key and the trusted CA, reconnects with the new identity, and promotes it
 * or falls back to the old one exactly as protocol.md's "Device obligations"
 * say, surviving a power loss at any instant. See docs/agent.md.
 *
 * Dependencies: OpenSSL 3 (libcrypto, libssl) for the library logic, and
 * libmosquitto for the default MQTT transport only. Nothing of the certfleet
 * server is linked in.
 *
 * JSON: the agent reads only a handful of flat string and bool fields, so it
 * carries its own small parser instead of depending on jansson: firmware
 * images then need nothing beyond OpenSSL. The parser is strict (RFC 8259
 * syntax, UTF-8 checked), bounded (payload size, nesting depth
 * CF_AGENT_JSON_MAX_DEPTH, no recursion) and ignores unknown fields.
 *
 * Threads: the agent never starts a thread and never blocks forever. One
 * cf_agent is used from one thread at a time; different agents are
 * independent, so a simulator may drive thousands of them from one loop.
 *
 * Two ways to drive an agent:
 *
 *  1. Stepping, from an external event loop (a simulator, a firmware main
 *     loop with its own MQTT client):
 *
 *	cf_agent_open(&agent, &cfg, &err);
 *	cf_agent_start(agent, now_ms);
 *	for (;;) {
 *		while (cf_agent_next_action(&act, agent) == 1)
 *			... do act (CONNECT / SUBSCRIBE / PUBLISH), then report:
 *			cf_agent_connect_done(), cf_agent_publish_done() ...
 *		... on an incoming message: cf_agent_handle_message()
 *		... on a lost connection: cf_agent_connection_lost()
 *		... when the returned deadline passes: cf_agent_tick()
 *	}
 *
 *  2. The blocking convenience runner cf_agent_run() over a
 *     cf_agent_transport (the certfleet-agent program uses it with the
 *     libmosquitto transport).
 *
 * This header compiles alone under -std=c99 -pedantic. It does not include
 * OpenSSL headers: SSL_CTX and X509_STORE appear as their struct tags.
 */
#ifndef CERTFLEET_AGENT_H
#define CERTFLEET_AGENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one export macro: the library is built with -fvisibility=hidden. */
#if defined(__GNUC__)
#define CF_AGENT_EXTERN __attribute__((visibility("default")))
#else
#define CF_AGENT_EXTERN
#endif

#define CF_AGENT_VERSION_MAJOR 0
#define CF_AGENT_VERSION_MINOR 1

/* Largest MQTT payload the agent accepts (default of max_payload). */
#define CF_AGENT_PAYLOAD_MAX (64 * 1024)
/* Deepest JSON nesting accepted; deeper payloads are malformed. */
#define CF_AGENT_JSON_MAX_DEPTH 16
/* Default topic prefix (protocol.md "P"). */
#define CF_AGENT_DEFAULT_PREFIX "management/topic"

struct ssl_ctx_st;   /* OpenSSL SSL_CTX */
struct x509_store_st; /* OpenSSL X509_STORE */

/* Return codes: 0 or one of these (same values as the server's CF_E*). */
enum {
	CF_AGENT_OK = 0,
	CF_AGENT_ENOMEM = -1,   /* out of memory */
	CF_AGENT_EINVAL = -2,   /* bad argument, malformed message or file */
	CF_AGENT_ENOTFOUND = -3, /* missing file or slot */
	CF_AGENT_ESTATE = -5,   /* not allowed in the current state */
	CF_AGENT_EPROTO = -6,   /* a message broke the protocol (bad certificate, ...) */
	CF_AGENT_ECRYPTO = -7,  /* OpenSSL failed */
	CF_AGENT_EIO = -8       /* file system or network */
};

/* Error record filled by a failing call (may be passed as NULL). */
typedef struct cf_agent_err {
	int code;           /* what the call returned */
	const char *reason; /* stable token also sent in crt_err ("KEY_MISMATCH"), or NULL */
	char msg[256];      /* detail for logs */
} cf_agent_err;

/* Key and certificate slots under the state directory. */
typedef enum {
	CF_AGENT_SLOT_CURRENT = 0, /* current/: the identity in use */
	CF_AGENT_SLOT_STAGING,     /* staging/: the key (and certificate) being rotated in */
	CF_AGENT_SLOT_PREVIOUS     /* previous/: the pair replaced by the last rotation */
} cf_agent_slot;

/* Key types of protocol.md's csr_req "keyType". */
typedef enum {
	CF_AGENT_KEY_EC_P256 = 0,
	CF_AGENT_KEY_EC_P384,
	CF_AGENT_KEY_ED25519,
	CF_AGENT_KEY_RSA_2048,
	CF_AGENT_KEY_RSA_3072
} cf_agent_key_type;

typedef enum {
	CF_AGENT_LOG_ERR = 0,
	CF_AGENT_LOG_WARN,
	CF_AGENT_LOG_INFO,
	CF_AGENT_LOG_DEBUG
} cf_agent_log_level;

/* One logfmt-style line without newline ("event=csr_res rotation=r1"). */
typedef void (*cf_agent_log_cb)(cf_agent_log_level level, const char *line, void *payload);

/* What happened, for the application (LEDs, metrics, the simulator's tally). */
typedef enum {
	CF_AGENT_EVENT_CSR_SENT = 0,   /* csr_res published; detail: rotationId or "" */
	CF_AGENT_EVENT_CERT_STAGED,    /* a checked certificate is in staging/ */
	CF_AGENT_EVENT_ROTATED,        /* staging promoted to current; detail: certificateId */
	CF_AGENT_EVENT_ROTATION_FAILED, /* crt_err queued; detail: the error text */
	CF_AGENT_EVENT_CSR_REJECTED,   /* csr_rej received; detail: the code */
	CF_AGENT_EVENT_FELL_BACK       /* current was refused, previous restored as current */
} cf_agent_event;

typedef void (*cf_agent_event_cb)(cf_agent_event event, const char *detail, void *payload);

/* Agent configuration. Fill with cf_agent_config_init(), then set fields. */
typedef struct cf_agent_config {
	const char *client_id; /* MQTT client id = thing name (required) */
	const char *state_dir; /* directory holding current/, staging/, previous/ (required) */
	const char *ca_file;   /* PEM bundle of trust anchors (required unless trust_store) */
	/*
	 * Optional ready trust store used instead of reading ca_file (a
	 * simulator shares one among all its agents). Borrowed: the agent
	 * takes its own reference.
	 */
	struct x509_store_st *trust_store;
	const char *topic_prefix;   /* NULL: CF_AGENT_DEFAULT_PREFIX */
	cf_agent_key_type key_type; /* when csr_req has no keyType; default EC-P256 */
	size_t max_payload;         /* 0: CF_AGENT_PAYLOAD_MAX */
	int backoff_min_ms;         /* first reconnect delay; default 1000 */
	int backoff_max_ms;         /* reconnect delay cap; default 60000 */
	cf_agent_log_level log_level; /* lines above it are dropped; default INFO */
	cf_agent_log_cb log;        /* NULL: lines go to stderr */
	void *log_payload;
	cf_agent_event_cb event;    /* optional */
	void *event_payload;
} cf_agent_config;

typedef struct cf_agent cf_agent; /* opaque */

/*
 * An identity to connect with. Everything is borrowed from the agent and
 * valid until the next call that changes the slots (handle_message,
 * connect_done, connection_lost, tick, free). ssl_ctx is a ready client
 * context: the slot's certificate chain and key, the trust anchors,
 * SSL_VERIFY_PEER; it is built once per identity and reused for every
 * connect with it. A transport that needs files uses the paths instead;
 * cert_path holds the leaf followed by its intermediates.
 */
typedef struct cf_agent_identity {
	cf_agent_slot slot;
	const char *client_id;
	const char *key_path;
	const char *cert_path;
	const char *ca_file; /* NULL when the agent was given a trust_store */
	struct ssl_ctx_st *ssl_ctx;
} cf_agent_identity;

typedef enum {
	CF_AGENT_ACTION_NONE = 0,
	/*
	 * Disconnect if connected, then connect as identity.client_id with
	 * identity, clean session off; report with cf_agent_connect_done().
	 */
	CF_AGENT_ACTION_CONNECT,
	CF_AGENT_ACTION_SUBSCRIBE, /* subscribe to topic, QoS 1 (no report needed) */
	/* Publish payload to topic, QoS 1, not retained; report with cf_agent_publish_done(). */
	CF_AGENT_ACTION_PUBLISH
} cf_agent_action_type;

/* One thing for the caller to do. Borrowed: valid until the next cf_agent_* call. */
typedef struct cf_agent_action {
	cf_agent_action_type type;
	unsigned long id;     /* to pass back to *_done() */
	const char *topic;    /* SUBSCRIBE, PUBLISH */
	const char *payload;  /* PUBLISH: JSON text, NUL-terminated */
	size_t payload_len;
	cf_agent_identity identity; /* CONNECT */
} cf_agent_action;

/* Outcome of a CONNECT action. */
typedef enum {
	CF_AGENT_CONNECT_OK = 0,
	CF_AGENT_CONNECT_REFUSED,    /* TLS handshake or CONNACK refused the identity */
	CF_AGENT_CONNECT_UNREACHABLE /* network, DNS, timeout: says nothing of the identity */
} cf_agent_connect_result;

/* Defaults: key EC-P256, prefix management/topic, backoff 1 s..60 s, log INFO. */
CF_AGENT_EXTERN void cf_agent_config_init(cf_agent_config *cfg);

/*
 * Open the agent over cfg->state_dir and recover from any interrupted
 * rotation (docs/agent.md "Crash recovery"). current/key.pem and
 * current/cert.pem must exist (provisioned by copying them in). The
 * config's strings are copied. The caller frees *out with cf_agent_free().
 * Errors: CF_AGENT_EINVAL (bad config), CF_AGENT_ENOTFOUND (no current
 * pair), CF_AGENT_EIO / CF_AGENT_ECRYPTO (unreadable state).
 */
CF_AGENT_EXTERN int cf_agent_open(cf_agent **out, const cf_agent_config *cfg, cf_agent_err *err);

/* Release the agent. NULL is accepted. Keys in memory are freed (OpenSSL wipes them). */
CF_AGENT_EXTERN void cf_agent_free(cf_agent *agent);

/* Queue the first CONNECT (with current/). now_ms: any monotonic clock in ms. */
CF_AGENT_EXTERN void cf_agent_start(cf_agent *agent, int64_t now_ms);

/*
 * Take the next action. Returns 1 and fills *out, or 0 when there is
 * nothing to do now. The strings in *out are valid until the next call.
 */
CF_AGENT_EXTERN int cf_agent_next_action(cf_agent_action *out, cf_agent *agent);

/* Report how CONNECT action id went. */
CF_AGENT_EXTERN void cf_agent_connect_done(cf_agent *agent, unsigned long id,
					   cf_agent_connect_result result, int64_t now_ms);

/*
 * Report a PUBLISH action: ok non-zero once the broker acknowledged it
 * (PUBACK), or once handed to a client that guarantees delivery.
 */
CF_AGENT_EXTERN void cf_agent_publish_done(cf_agent *agent, unsigned long id, int ok);

/* Report that an established connection was lost; a reconnect is scheduled with backoff. */
CF_AGENT_EXTERN void cf_agent_connection_lost(cf_agent *agent, int64_t now_ms);

/*
 * Let timers run (reconnect backoff). Returns the number of ms after which
 * tick wants to be called again (at most 1000), 0 when an action is ready.
 */
CF_AGENT_EXTERN int64_t cf_agent_tick(cf_agent *agent, int64_t now_ms);

/*
 * Hand an incoming message to the agent. Topics other than
 * P/{clientId}/csr_req, crt and csr_rej are ignored (returns 0).
 * Errors: CF_AGENT_EINVAL for a malformed or oversized payload (the message
 * is dropped and logged; nothing is published), CF_AGENT_EIO /
 * CF_AGENT_ECRYPTO when the state could not be written (nothing published;
 * the server re-sends). A certificate that fails the checks is not an
 * error of this call: it queues crt_err.
 */
CF_AGENT_EXTERN int cf_agent_handle_message(cf_agent *agent, const char *topic,
					    const void *payload, size_t len, cf_agent_err *err);

/* The slot the agent is connected (or connecting) with. */
CF_AGENT_EXTERN cf_agent_slot cf_agent_active_slot(const cf_agent *agent);

/* certificateId (lowercase hex SHA-256 of the DER) of current/cert.pem; never NULL. */
CF_AGENT_EXTERN const char *cf_agent_current_cert_id(const cf_agent *agent);

/* Name of a CF_AGENT_* code ("invalid"). Never NULL. */
CF_AGENT_EXTERN const char *cf_agent_strerror(int code);

/* ---- transports and the blocking runner ------------------------------ */

#define CF_AGENT_TRANSPORT_VERSION 1

/*
 * An MQTT client behind the agent. Every call returns within the timeout
 * it is given. ctx is the transport's own state.
 */
typedef struct cf_agent_transport {
	unsigned int version; /* CF_AGENT_TRANSPORT_VERSION */
	/*
	 * Disconnect if connected, then connect with id (clean session off)
	 * and wait for the CONNACK. Returns a cf_agent_connect_result.
	 */
	int (*connect)(void *ctx, const cf_agent_identity *id, int timeout_ms, cf_agent_err *err);
	void (*disconnect)(void *ctx);
	/* Subscribe at QoS 1 and wait for the SUBACK. 0 or CF_AGENT_EIO. */
	int (*subscribe)(void *ctx, const char *topic, int timeout_ms, cf_agent_err *err);
	/* Publish at QoS 1 and wait for the PUBACK. 0 or CF_AGENT_EIO. */
	int (*publish)(void *ctx, const char *topic, const void *payload, size_t len,
		       int timeout_ms, cf_agent_err *err);
	/*
	 * Run network I/O for at most timeout_ms and give every incoming
	 * message to cf_agent_handle_message(agent, ...). Returns 0, or
	 * CF_AGENT_EIO when the connection is lost.
	 */
	int (*poll)(void *ctx, cf_agent *agent, int timeout_ms, cf_agent_err *err);
	/* Release ctx. NULL is accepted. */
	void (*destroy)(void *ctx);
} cf_agent_transport;

/* Settings of the libmosquitto transport. */
typedef struct cf_agent_mosquitto_config {
	const char *host; /* broker host; also the name checked in its certificate */
	int port;         /* 0: 8883 */
	int keepalive;    /* seconds; 0: 60 */
} cf_agent_mosquitto_config;

/*
 * The default transport: libmosquitto, mutual TLS from the identity's
 * ready SSL_CTX (MOSQ_OPT_SSL_CTX, so no file is re-read per connect),
 * the broker's certificate checked against host, TCP_NODELAY, MQTT 3.1.1,
 * clean session off, QoS 1. Returns the operations; *ctx_out gets a new
 * client state freed with ops->destroy().
 * Errors: CF_AGENT_EINVAL (no host), CF_AGENT_ENOMEM.
 */
CF_AGENT_EXTERN const cf_agent_transport *cf_agent_mosquitto_transport(void);
CF_AGENT_EXTERN int cf_agent_mosquitto_new(void **ctx_out, const cf_agent_mosquitto_config *cfg,
					   cf_agent_err *err);

/*
 * Blocking convenience runner: cf_agent_start(), then execute actions over
 * transport, poll it, tick, reconnect with backoff, until *stop becomes
 * non-zero (set it from a signal handler). Wakes at least once a second.
 * Returns 0 after a clean stop (disconnected), or an error code when the
 * agent cannot go on (state not writable).
 */
CF_AGENT_EXTERN int cf_agent_run(cf_agent *agent, const cf_agent_transport *transport,
				 void *transport_ctx, const volatile sig_atomic_t *stop,
				 cf_agent_err *err);

#ifdef __cplusplus
}
#endif

#endif
