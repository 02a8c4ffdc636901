/* certfleetd's broker connection: libmosquitto, mutual TLS, one loop. */
#include "mqtt/mqtt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef enum { MQ_IDLE, MQ_CONNECTING, MQ_UP } mq_state;

struct inflight {
	int mid;
	int64_t tag;
};

struct cf_mqtt {
	cf_mqtt_config cfg; /* its strings point to the copies below */
	char *host, *client_id, *ca_file, *cert_file, *key_file;
	char **topics;
	cf_mqtt_callbacks cb;
	SSL_CTX *ssl_ctx;
	struct stat tls_files[3]; /* the CA, certificate and key files ssl_ctx was built from */
	struct mosquitto *mosq;
	mq_state state;
	bool tcp_up;            /* the TCP connect finished (CONNECTING) */
	bool failed;            /* set by a callback; acted on after the loop returns */
	int64_t next_attempt_ms;
	int64_t connect_deadline_ms;
	int backoff_ms;
	uint32_t jitter_seed;
	struct inflight *inflight;
	unsigned int ninflight;
};

/* ---- TLS context --------------------------------------------------- */

/* A key file must not be readable by group or others. */
static int
key_file_check(const char *path, cf_err *err)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return cf_err_set(err, CF_ENOTFOUND, NULL, "%s: cannot read the key file", path);
	if ((st.st_mode & 077) != 0)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "%s: key file is readable by others (mode %03o): chmod 600 it",
				  path, (unsigned int)(st.st_mode & 0777));
	return CF_OK;
}

/* The broker's certificate must name host: an IP SAN for an address, else a DNS name. */
static int
expect_host(SSL_CTX *ctx, const char *host, cf_err *err)
{
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
	unsigned char addr[16];
	int ok;

	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
	else
		ok = X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (ok != 1)
		return cf_err_set_ossl(err, CF_EINVAL, NULL, "broker host '%s'", host);
	return CF_OK;
}

static int
tls_context(SSL_CTX **out, const cf_mqtt_config *cfg, cf_err *err)
{
	SSL_CTX *ctx;
	int rc;

	rc = key_file_check(cfg->key_file, err);
	if (rc != CF_OK)
		return rc;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "SSL_CTX_new");
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "TLS 1.2 minimum");
	} else if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL, "%s: cannot load the broker's CA",
				     cfg->ca_file);
	} else if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL, "%s: cannot load the certificate",
				     cfg->cert_file);
	} else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL, "%s: cannot load the key",
				     cfg->key_file);
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL, "%s does not match %s", cfg->key_file,
				     cfg->cert_file);
	} else {
		rc = expect_host(ctx, cfg->host, err);
	}
	if (rc != CF_OK) {
		SSL_CTX_free(ctx);
		return rc;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	*out = ctx;
	return CF_OK;
}

/* stat() of the CA, certificate and key files (zeroed when missing). */
static void
tls_files_stat(struct stat st[3], const cf_mqtt_config *cfg)
{
	const char *paths[3] = { cfg->ca_file, cfg->cert_file, cfg->key_file };
	size_t i;

	for (i = 0; i < 3; i++) {
		if (stat(paths[i], &st[i]) != 0)
			memset(&st[i], 0, sizeof(st[i]));
	}
}

static bool
tls_files_same(const struct stat a[3], const struct stat b[3])
{
	size_t i;

	for (i = 0; i < 3; i++) {
		if (a[i].st_ino != b[i].st_ino || a[i].st_size != b[i].st_size ||
		    a[i].st_mtim.tv_sec != b[i].st_mtim.tv_sec ||
		    a[i].st_mtim.tv_nsec != b[i].st_mtim.tv_nsec)
			return false;
	}
	return true;
}

/*
 * Before a (re)connect: when the files changed since the context was built
 * (`certfleet service create` renewed the identity), build it again, so a
 * renewed certificate is used at the next connect without a restart. A
 * context that cannot be built is logged and the previous one kept.
 */
static void
tls_refresh(cf_mqtt *m)
{
	struct stat now[3];
	cf_err err = CF_ERR_INIT;
	SSL_CTX *ctx = NULL;

	tls_files_stat(now, &m->cfg);
	if (tls_files_same(now, m->tls_files))
		return;
	if (tls_context(&ctx, &m->cfg, &err) != CF_OK) {
		cf_log_warn_err(&err, "event=mqtt_tls_reload_failed why=\"kept the previous identity\"");
		return;
	}
	SSL_CTX_free(m->ssl_ctx);
	m->ssl_ctx = ctx;
	memcpy(m->tls_files, now, sizeof(now));
	cf_log_info("event=mqtt_tls_reloaded cert=%s", m->cfg.cert_file);
}

/* ---- life ------------------------------------------------------------ */

static void
config_strings_free(cf_mqtt *m)
{
	size_t i;

	free(m->host);
	free(m->client_id);
	free(m->ca_file);
	free(m->cert_file);
	free(m->key_file);
	for (i = 0; m->topics != NULL && i < m->cfg.ntopics; i++)
		free(m->topics[i]);
	free(m->topics);
}

static int
config_copy(cf_mqtt *m, const cf_mqtt_config *cfg)
{
	size_t i;

	m->cfg = *cfg;
	m->cfg.host = m->host = strdup(cfg->host);
	m->cfg.client_id = m->client_id = strdup(cfg->client_id);
	m->cfg.ca_file = m->ca_file = strdup(cfg->ca_file);
	m->cfg.cert_file = m->cert_file = strdup(cfg->cert_file);
	m->cfg.key_file = m->key_file = strdup(cfg->key_file);
	m->topics = calloc(cfg->ntopics + 1, sizeof(*m->topics));
	if (m->host == NULL || m->client_id == NULL || m->ca_file == NULL ||
	    m->cert_file == NULL || m->key_file == NULL || m->topics == NULL)
		return CF_ENOMEM;
	for (i = 0; i < cfg->ntopics; i++) {
		m->topics[i] = strdup(cfg->topics[i]);
		if (m->topics[i] == NULL)
			return CF_ENOMEM;
	}
	m->cfg.topics = (const char *const *)m->topics;
	if (m->cfg.max_inflight == 0)
		m->cfg.max_inflight = CF_MQTT_INFLIGHT_DEFAULT;
	if (m->cfg.connect_timeout_ms <= 0)
		m->cfg.connect_timeout_ms = 10000;
	return CF_OK;
}

int
cf_mqtt_new(cf_mqtt **out, const cf_mqtt_config *cfg, const cf_mqtt_callbacks *cb, cf_err *err)
{
	cf_mqtt *m;
	int rc;

	if (cfg->host == NULL || cfg->client_id == NULL || cfg->ca_file == NULL ||
	    cfg->cert_file == NULL || cfg->key_file == NULL || cfg->port <= 0 ||
	    cfg->port > 65535 || cfg->reconnect_min_ms <= 0 ||
	    cfg->reconnect_max_ms < cfg->reconnect_min_ms)
		return cf_err_set(err, CF_EINVAL, NULL, "mqtt: incomplete configuration");
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "mqtt");
	if (config_copy(m, cfg) != CF_OK) {
		cf_mqtt_free(m);
		return cf_err_set(err, CF_ENOMEM, NULL, "mqtt");
	}
	m->inflight = calloc(m->cfg.max_inflight, sizeof(*m->inflight));
	if (m->inflight == NULL) {
		cf_mqtt_free(m);
		return cf_err_set(err, CF_ENOMEM, NULL, "mqtt");
	}
	tls_files_stat(m->tls_files, &m->cfg);
	rc = tls_context(&m->ssl_ctx, &m->cfg, err);
	if (rc != CF_OK) {
		cf_mqtt_free(m);
		return rc;
	}
	m->cb = *cb;
	m->backoff_ms = m->cfg.reconnect_min_ms;
	m->jitter_seed = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
	*out = m;
	return CF_OK;
}

/* Forget the connection: its client, its in-flight publishes. */
static void
drop(cf_mqtt *m, int64_t now_ms, bool graceful)
{
	bool was_connected = m->state != MQ_IDLE;
	uint32_t jitter;

	if (m->mosq != NULL) {
		if (graceful && m->state == MQ_UP) {
			mosquitto_disconnect(m->mosq);
			(void)mosquitto_loop(m->mosq, 10, 1);
		}
		mosquitto_destroy(m->mosq);
		m->mosq = NULL;
	}
	m->state = MQ_IDLE;
	m->failed = false;
	m->tcp_up = false;
	m->ninflight = 0;
	if (graceful) {
		m->next_attempt_ms = now_ms;
	} else {
		/* Exponential backoff with up to 25% jitter, so that restarts do not align. */
		m->jitter_seed = m->jitter_seed * 1103515245u + 12345u;
		jitter = (m->jitter_seed >> 16) % (uint32_t)(m->backoff_ms / 4 + 1);
		m->next_attempt_ms = now_ms + m->backoff_ms + jitter;
		m->backoff_ms = m->backoff_ms * 2 > m->cfg.reconnect_max_ms ? m->cfg.reconnect_max_ms
									    : m->backoff_ms * 2;
	}
	if (was_connected && m->cb.lost != NULL)
		m->cb.lost(m->cb.payload);
}

void
cf_mqtt_free(cf_mqtt *m)
{
	if (m == NULL)
		return;
	if (m->mosq != NULL) {
		m->cb.lost = NULL;
		drop(m, 0, true);
	}
	SSL_CTX_free(m->ssl_ctx);
	free(m->inflight);
	config_strings_free(m);
	free(m);
}

/* ---- libmosquitto callbacks (inside mosquitto_loop) ------------------- */

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	cf_mqtt *m = obj;
	int mid;

	if (rc != 0) {
		cf_log_warn("event=mqtt_refused host=%s port=%d reason=\"%s\"", m->cfg.host,
			    m->cfg.port, mosquitto_connack_string(rc));
		m->failed = true;
		return;
	}
	if (m->cfg.ntopics > 0 &&
	    mosquitto_subscribe_multiple(mosq, &mid, (int)m->cfg.ntopics, m->topics, 1, 0,
					 NULL) != MOSQ_ERR_SUCCESS) {
		cf_log_warn("event=mqtt_subscribe_failed");
		m->failed = true;
		return;
	}
	m->state = MQ_UP;
	m->backoff_ms = m->cfg.reconnect_min_ms;
	cf_log_info("event=mqtt_connected host=%s port=%d client_id=%s", m->cfg.host,
		    m->cfg.port, m->cfg.client_id);
	if (m->cb.connected != NULL)
		m->cb.connected(m->cb.payload);
}

static void
on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	cf_mqtt *m = obj;

	(void)mosq;
	if (rc == 0)
		return;
	/* Two clients with one id take the session from each other: say so. */
	cf_log_warn("event=mqtt_lost host=%s port=%d reason=\"%s\" retry_ms=%d", m->cfg.host,
		    m->cfg.port, mosquitto_strerror(rc), m->backoff_ms);
	m->failed = true;
}

static void
on_publish(struct mosquitto *mosq, void *obj, int mid)
{
	cf_mqtt *m = obj;
	unsigned int i;

	(void)mosq;
	for (i = 0; i < m->ninflight; i++) {
		if (m->inflight[i].mid == mid) {
			int64_t tag = m->inflight[i].tag;

			m->inflight[i] = m->inflight[--m->ninflight];
			if (m->cb.delivered != NULL)
				m->cb.delivered(m->cb.payload, tag);
			return;
		}
	}
}

static void
on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	cf_mqtt *m = obj;

	(void)mosq;
	if (msg->payloadlen < 0 || m->cb.message == NULL)
		return;
	m->cb.message(m->cb.payload, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

/* ---- the loop ---------------------------------------------------------- */

static void
connect_start(cf_mqtt *m, int64_t now_ms)
{
	int rc;

	tls_refresh(m);
	m->mosq = mosquitto_new(m->cfg.client_id, false, m);
	if (m->mosq == NULL) {
		cf_log_error("event=mqtt_connect_failed reason=\"out of memory\"");
		drop(m, now_ms, false);
		return;
	}
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_int_option(m->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	mosquitto_void_option(m->mosq, MOSQ_OPT_SSL_CTX, m->ssl_ctx);
	mosquitto_max_inflight_messages_set(m->mosq, m->cfg.max_inflight);
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_callback_set(m->mosq, on_publish);
	mosquitto_message_callback_set(m->mosq, on_message);
	m->state = MQ_CONNECTING;
	m->connect_deadline_ms = now_ms + m->cfg.connect_timeout_ms;
	rc = mosquitto_connect_async(m->mosq, m->cfg.host, m->cfg.port, m->cfg.keepalive);
	if (rc != MOSQ_ERR_SUCCESS) {
		cf_log_warn("event=mqtt_connect_failed host=%s port=%d reason=\"%s\" retry_ms=%d",
			    m->cfg.host, m->cfg.port,
			    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
			    m->backoff_ms);
		drop(m, now_ms, false);
	}
}

/*
 * libmosquitto does not notice a refused non-blocking connect (the error is
 * read away by its loop, which then waits for the CONNACK until the
 * timeout): wait for the TCP connect here, before its loop sees the socket.
 * Returns false when the connect failed (logged, m->failed set) or is
 * still under way; true once the socket is connected.
 */
static bool
tcp_connected(cf_mqtt *m, int timeout_ms)
{
	struct pollfd pfd = { mosquitto_socket(m->mosq), POLLOUT, 0 };
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (pfd.fd < 0 || poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	if (getsockopt(pfd.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	/* Some kernels report a refused connect as a hang-up with no socket error. */
	if (soerr == 0 && (pfd.revents & (POLLERR | POLLHUP)) != 0)
		soerr = ECONNREFUSED;
	if (soerr == 0)
		return true;
	cf_log_warn("event=mqtt_connect_failed host=%s port=%d reason=\"%s\" retry_ms=%d",
		    m->cfg.host, m->cfg.port, strerror(soerr), m->backoff_ms);
	m->failed = true;
	return false;
}

void
cf_mqtt_step(cf_mqtt *m, int64_t now_ms, int timeout_ms)
{
	int rc;

	if (m->state == MQ_IDLE) {
		if (now_ms < m->next_attempt_ms) {
			int64_t wait = m->next_attempt_ms - now_ms;

			if (timeout_ms > 0)
				usleep((useconds_t)(wait < timeout_ms ? wait : timeout_ms) * 1000);
			return;
		}
		connect_start(m, now_ms);
		if (m->state == MQ_IDLE)
			return;
	}
	rc = MOSQ_ERR_SUCCESS;
	if (m->state == MQ_CONNECTING && !m->tcp_up) {
		m->tcp_up = tcp_connected(m, timeout_ms);
		timeout_ms = 0;
	}
	if (!m->failed && (m->state != MQ_CONNECTING || m->tcp_up))
		rc = mosquitto_loop(m->mosq, timeout_ms, 1);
	if (m->failed || rc != MOSQ_ERR_SUCCESS) {
		if (!m->failed)
			cf_log_warn("event=mqtt_lost host=%s port=%d reason=\"%s\" retry_ms=%d",
				    m->cfg.host, m->cfg.port,
				    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
				    m->backoff_ms);
		drop(m, now_ms, false);
	} else if (m->state == MQ_CONNECTING && now_ms > m->connect_deadline_ms) {
		cf_log_warn("event=mqtt_connect_timeout host=%s port=%d retry_ms=%d", m->cfg.host,
			    m->cfg.port, m->backoff_ms);
		drop(m, now_ms, false);
	}
}

bool
cf_mqtt_connected(const cf_mqtt *m)
{
	return m->state == MQ_UP;
}

unsigned int
cf_mqtt_inflight(const cf_mqtt *m)
{
	return m->ninflight;
}

int
cf_mqtt_publish(cf_mqtt *m, const char *topic, const void *data, size_t len, int64_t tag,
		cf_err *err)
{
	int mid = 0, rc;

	if (m->state != MQ_UP || m->ninflight >= m->cfg.max_inflight)
		return cf_err_set(err, CF_EBUSY, NULL, "mqtt: not ready to publish");
	if (len > 256u * 1024 * 1024)
		return cf_err_set(err, CF_EINVAL, NULL, "mqtt: payload too large");
	rc = mosquitto_publish(m->mosq, &mid, topic, (int)len, data, 1, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		m->failed = true;
		return cf_err_set(err, CF_EIO, NULL, "publish %s: %s", topic,
				  mosquitto_strerror(rc));
	}
	m->inflight[m->ninflight].mid = mid;
	m->inflight[m->ninflight].tag = tag;
	m->ninflight++;
	return CF_OK;
}

bool
cf_mqtt_tls_files_changed(const cf_mqtt *m)
{
	struct stat now[3];

	tls_files_stat(now, &m->cfg);
	return !tls_files_same(now, m->tls_files);
}

void
cf_mqtt_reconnect_now(cf_mqtt *m)
{
	if (m->state != MQ_IDLE)
		drop(m, 0, true);
	m->next_attempt_ms = 0;
}
