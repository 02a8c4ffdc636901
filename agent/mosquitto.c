/*
 * The default transport over libmosquitto.
 *
 * One mosquitto client object per connection (destroyed on disconnect), so
 * that each connect hands libmosquitto the identity's ready SSL_CTX through
 * MOSQ_OPT_SSL_CTX: libmosquitto then reads no file per connect. The
 * broker's certificate is checked against the trust anchors in that context
 * and its name against the configured host (X509_VERIFY_PARAM_set1_host,
 * since libmosquitto skips its own host check for a caller's SSL_CTX).
 * Messages that arrive while waiting for a CONNACK, SUBACK or PUBACK are
 * kept and handed to the agent on the next poll.
 */
#include "agent_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

struct msg {
	struct msg *next;
	char *topic;
	void *payload;
	size_t len;
};

struct mq {
	struct mosquitto *mosq;
	char *host;
	int port;
	int keepalive;
	bool got_connack;
	int connack_rc;
	int wait_mid; /* the SUBACK or PUBACK waited for */
	bool mid_done;
	struct msg *head, *tail;
	size_t queued;
};

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct mq *mq = obj;

	(void)mosq;
	mq->got_connack = true;
	mq->connack_rc = rc;
}

static void
on_mid(struct mosquitto *mosq, void *obj, int mid)
{
	struct mq *mq = obj;

	(void)mosq;
	if (mid == mq->wait_mid)
		mq->mid_done = true;
}

static void
on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted)
{
	(void)qos_count;
	(void)granted;
	on_mid(mosq, obj, mid);
}

/* Keep a copy for the next poll (bounded: a flood beyond 64 messages is dropped). */
static void
on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
	struct mq *mq = obj;
	struct msg *n;

	(void)mosq;
	if (mq->queued >= 64 || m->payloadlen < 0)
		return;
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return;
	n->topic = malloc(strlen(m->topic) + 1);
	n->payload = malloc((size_t)m->payloadlen + 1);
	if (n->topic == NULL || n->payload == NULL) {
		free(n->topic);
		free(n->payload);
		free(n);
		return;
	}
	memcpy(n->topic, m->topic, strlen(m->topic) + 1);
	if (m->payloadlen > 0)
		memcpy(n->payload, m->payload, (size_t)m->payloadlen);
	n->len = (size_t)m->payloadlen;
	if (mq->tail != NULL)
		mq->tail->next = n;
	else
		mq->head = n;
	mq->tail = n;
	mq->queued++;
}

static void
deliver(struct mq *mq, cf_agent *agent)
{
	while (mq->head != NULL) {
		struct msg *n = mq->head;

		mq->head = n->next;
		if (mq->head == NULL)
			mq->tail = NULL;
		mq->queued--;
		if (agent != NULL)
			(void)cf_agent_handle_message(agent, n->topic, n->payload, n->len, NULL);
		free(n->topic);
		free(n->payload);
		free(n);
	}
}

int
cf_agent__expect_host(struct ssl_ctx_st *ctx, const char *host)
{
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
	unsigned char addr[16];

	/* An address is matched against IP SANs, a name against DNS SANs. */
	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(param, host);
	return X509_VERIFY_PARAM_set1_host(param, host, 0);
}

static void
mq_disconnect(void *ctx)
{
	struct mq *mq = ctx;

	if (mq == NULL || mq->mosq == NULL)
		return;
	mosquitto_disconnect(mq->mosq);
	(void)mosquitto_loop(mq->mosq, 10, 1);
	mosquitto_destroy(mq->mosq);
	mq->mosq = NULL;
}

/* Run the network loop until *flag or the deadline. MOSQ_ERR_* of the loop. */
static int
wait_for(struct mq *mq, const bool *flag, int timeout_ms)
{
	int64_t end = cf_agent__now_ms() + timeout_ms;
	int rc;

	while (!*flag) {
		int64_t left = end - cf_agent__now_ms();

		if (left <= 0)
			return MOSQ_ERR_TLS_HANDSHAKE; /* our "timed out" */
		rc = mosquitto_loop(mq->mosq, left < 100 ? (int)left : 100, 1);
		if (rc != MOSQ_ERR_SUCCESS)
			return rc;
	}
	return MOSQ_ERR_SUCCESS;
}

static int
mq_connect(void *ctx, const cf_agent_identity *id, int timeout_ms, cf_agent_err *err)
{
	struct mq *mq = ctx;
	int rc;

	mq_disconnect(mq);
	if (id->ssl_ctx == NULL) {
		cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "no SSL_CTX for the identity");
		return CF_AGENT_CONNECT_REFUSED;
	}
	mq->mosq = mosquitto_new(id->client_id, false, mq);
	if (mq->mosq == NULL) {
		cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "mosquitto_new");
		return CF_AGENT_CONNECT_UNREACHABLE;
	}
	/* Checked by OpenSSL during the handshake; idempotent on a shared context. */
	if (cf_agent__expect_host(id->ssl_ctx, mq->host) != 1) {
		cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "broker host '%s'", mq->host);
		return CF_AGENT_CONNECT_UNREACHABLE;
	}
	mosquitto_int_option(mq->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	mosquitto_int_option(mq->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	/* Use the context as built: libmosquitto's defaults would want file paths. */
	mosquitto_int_option(mq->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	mosquitto_void_option(mq->mosq, MOSQ_OPT_SSL_CTX, id->ssl_ctx);
	mosquitto_connect_callback_set(mq->mosq, on_connect);
	mosquitto_publish_callback_set(mq->mosq, on_mid);
	mosquitto_subscribe_callback_set(mq->mosq, on_subscribe);
	mosquitto_message_callback_set(mq->mosq, on_message);
	mq->got_connack = false;
	mq->connack_rc = -1;
	rc = mosquitto_connect(mq->mosq, mq->host, mq->port, mq->keepalive);
	if (rc == MOSQ_ERR_TLS) {
		cf_agent__err_ossl(err, CF_AGENT_EIO, NULL, "TLS handshake with %s failed",
				   mq->host);
		mq_disconnect(mq);
		return CF_AGENT_CONNECT_REFUSED;
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		cf_agent__err_set(err, CF_AGENT_EIO, NULL, "cannot connect to %s:%d: %s",
				  mq->host, mq->port, mosquitto_strerror(rc));
		mq_disconnect(mq);
		return CF_AGENT_CONNECT_UNREACHABLE;
	}
	rc = wait_for(mq, &mq->got_connack, timeout_ms);
	if (rc == MOSQ_ERR_TLS_HANDSHAKE) {
		cf_agent__err_set(err, CF_AGENT_EIO, NULL, "no CONNACK from %s", mq->host);
		mq_disconnect(mq);
		return CF_AGENT_CONNECT_UNREACHABLE;
	}
	/*
	 * With TLS 1.3 a refused client certificate shows up as an alert
	 * after the handshake: a lost connection before the CONNACK is a refusal.
	 */
	if (rc != MOSQ_ERR_SUCCESS || mq->connack_rc != 0) {
		cf_agent__err_set(err, CF_AGENT_EIO, NULL, "%s refused the connection: %s",
				  mq->host,
				  rc != MOSQ_ERR_SUCCESS ? mosquitto_strerror(rc)
							 : mosquitto_connack_string(mq->connack_rc));
		mq_disconnect(mq);
		return CF_AGENT_CONNECT_REFUSED;
	}
	return CF_AGENT_CONNECT_OK;
}

static int
mq_subscribe(void *ctx, const char *topic, int timeout_ms, cf_agent_err *err)
{
	struct mq *mq = ctx;
	int rc;

	if (mq->mosq == NULL)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "not connected");
	mq->mid_done = false;
	rc = mosquitto_subscribe(mq->mosq, &mq->wait_mid, topic, 1);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = wait_for(mq, &mq->mid_done, timeout_ms);
	if (rc != MOSQ_ERR_SUCCESS)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "subscribe %s: %s", topic,
					 mosquitto_strerror(rc));
	return CF_AGENT_OK;
}

static int
mq_publish(void *ctx, const char *topic, const void *payload, size_t len, int timeout_ms,
	   cf_agent_err *err)
{
	struct mq *mq = ctx;
	int rc;

	if (mq->mosq == NULL)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "not connected");
	if (len > (size_t)CF_AGENT_PAYLOAD_MAX * 4)
		return cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "payload too large");
	mq->mid_done = false;
	rc = mosquitto_publish(mq->mosq, &mq->wait_mid, topic, (int)len, payload, 1, false);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = wait_for(mq, &mq->mid_done, timeout_ms);
	if (rc != MOSQ_ERR_SUCCESS)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "publish %s: %s", topic,
					 mosquitto_strerror(rc));
	return CF_AGENT_OK;
}

static int
mq_poll(void *ctx, cf_agent *agent, int timeout_ms, cf_agent_err *err)
{
	struct mq *mq = ctx;
	int rc;

	deliver(mq, agent);
	if (mq->mosq == NULL)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "not connected");
	rc = mosquitto_loop(mq->mosq, timeout_ms, 1);
	deliver(mq, agent);
	if (rc != MOSQ_ERR_SUCCESS)
		return cf_agent__err_set(err, CF_AGENT_EIO, NULL, "connection lost: %s",
					 mosquitto_strerror(rc));
	return CF_AGENT_OK;
}

static void
mq_destroy(void *ctx)
{
	struct mq *mq = ctx;

	if (mq == NULL)
		return;
	mq_disconnect(mq);
	deliver(mq, NULL);
	free(mq->host);
	free(mq);
}

static const cf_agent_transport mosquitto_ops = {
	CF_AGENT_TRANSPORT_VERSION, mq_connect, mq_disconnect, mq_subscribe,
	mq_publish,                 mq_poll,    mq_destroy,
};

const cf_agent_transport *
cf_agent_mosquitto_transport(void)
{
	return &mosquitto_ops;
}

int
cf_agent_mosquitto_new(void **ctx_out, const cf_agent_mosquitto_config *cfg, cf_agent_err *err)
{
	static bool lib_ready;
	struct mq *mq;

	*ctx_out = NULL;
	if (cfg == NULL || cfg->host == NULL || cfg->host[0] == '\0' || cfg->port < 0 ||
	    cfg->port > 65535)
		return cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "broker host and port");
	if (!lib_ready) {
		mosquitto_lib_init();
		lib_ready = true;
	}
	mq = calloc(1, sizeof(*mq));
	if (mq == NULL)
		return cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "transport");
	mq->host = malloc(strlen(cfg->host) + 1);
	if (mq->host == NULL) {
		free(mq);
		return cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "transport");
	}
	memcpy(mq->host, cfg->host, strlen(cfg->host) + 1);
	mq->port = cfg->port ? cfg->port : 8883;
	mq->keepalive = cfg->keepalive > 0 ? cfg->keepalive : 60;
	*ctx_out = mq;
	return CF_AGENT_OK;
}
