/*
 * certfleet_broker: the Mosquitto 2.0 plugin (API v5) that lets a client
 * connect only with an ACTIVE certificate bound to the thing its client id
 * names (docs/broker.md).
 *
 * How it works
 * ------------
 * The registry is opened read-only. An in-memory index maps each
 * certificate id (SHA-256 hex of the DER) to its status, thing, expiry and
 * deletion; it is loaded once at start and then kept current from the
 * store's change feed (cf_store_cert_changes() after the last change_seq
 * seen), every refresh_ms on the broker's tick, so a connect never waits on
 * a scan and a status change is seen within refresh_ms.
 *
 * On MOSQ_EVT_BASIC_AUTH (called for every CONNECT when the listener has
 * use_identity_as_username and use_subject_as_username off) the peer's
 * certificate is hashed and looked up; anything but an ACTIVE, unexpired,
 * undeleted certificate whose thing equals the client id is refused, with
 * a log line that says why.
 *
 * Sessions are counted per certificate (connect admitted, disconnect), so
 * that when a certificate in use leaves ACTIVE (deactivated, revoked,
 * replaced after crt_ack, deleted) its client is disconnected at the next
 * refresh. A device that reconnected with its new certificate before the
 * old one was deactivated is not touched: its session uses the new one.
 *
 * Not yet here (issue 4 goes on): topic ACLs from the policies, connection
 * records.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "index.h"
#include "store/store.h"
#include "util/util.h"

#define REFRESH_MS_DEFAULT 250

struct plugin {
	mosquitto_plugin_id_t *pid;
	cf_store *store;
	cf_broker_index idx;
	int refresh_ms;
	int64_t next_refresh_ms;
};

static struct plugin plugin;

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A certificate in use left ACTIVE: its session goes (client id == thing, checked at CONNECT). */
static void
on_left(const char *thing, const char *id, const char *why, void *payload)
{
	(void)payload;
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "certfleet: disconnecting client_id=%s cert=%.16s reason=%s", thing, id,
			     why);
	mosquitto_kick_client_by_clientid(thing, false);
}

static void
refresh(struct plugin *p)
{
	cf_err err = CF_ERR_INIT;

	if (cf_broker_index_refresh(&p->idx, p->store, on_left, p, &err) != CF_OK)
		mosquitto_log_printf(MOSQ_LOG_WARNING, "certfleet: registry refresh failed: %s",
				     err.msg);
}

/* certificateId of the peer's certificate into id; false when there is none. */
static bool
peer_cert_id(char id[CF_BROKER_ID_LEN], struct mosquitto *client)
{
	X509 *cert = mosquitto_client_certificate(client);
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int len;
	bool ok;

	if (cert == NULL)
		return false;
	len = i2d_X509(cert, &der);
	ok = len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1 &&
	     mdlen == sizeof(md);
	if (ok)
		cf_hex_encode(id, md, sizeof(md));
	OPENSSL_free(der);
	X509_free(cert);
	return ok;
}

static int
on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	const char *addr = mosquitto_client_address(ed->client);
	char id[CF_BROKER_ID_LEN], qid[160];
	const char *why;

	(void)event;
	/* The client id is the client's own text: quoted, so that it cannot forge a log line. */
	cf_log_quote(qid, sizeof(qid), client_id != NULL ? client_id : "-");
	if (!peer_cert_id(id, ed->client)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     "certfleet: refused client_id=%s addr=%s reason=no_certificate",
				     qid, addr != NULL ? addr : "-");
		return MOSQ_ERR_AUTH;
	}
	why = cf_broker_index_check(&p->idx, id, client_id, cf_time_now());
	if (why != NULL) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     "certfleet: refused client_id=%s addr=%s cert=%.16s reason=%s",
				     qid, addr != NULL ? addr : "-", id, why);
		return MOSQ_ERR_AUTH;
	}
	cf_broker_index_session(&p->idx, id, 1);
	return MOSQ_ERR_SUCCESS;
}

/* A session ended (any client: the count of a certificate never admitted stays 0). */
static int
on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct plugin *p = userdata;
	char id[CF_BROKER_ID_LEN];

	(void)event;
	if (peer_cert_id(id, ed->client))
		cf_broker_index_session(&p->idx, id, -1);
	return MOSQ_ERR_SUCCESS;
}

static int
on_tick(int event, void *event_data, void *userdata)
{
	struct plugin *p = userdata;
	int64_t now = mono_ms();

	(void)event;
	(void)event_data;
	if (now >= p->next_refresh_ms) {
		refresh(p);
		p->next_refresh_ms = now + p->refresh_ms;
	}
	return MOSQ_ERR_SUCCESS;
}

int
mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for (i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5)
			return 5;
	}
	return -1;
}

/* Options: registry (a store URI or an SQLite path), refresh_ms (10 to 1000). */
static int
options_read(const char **registry, int *refresh_ms, struct mosquitto_opt *options,
	     int option_count)
{
	int i;

	*registry = NULL;
	*refresh_ms = REFRESH_MS_DEFAULT;
	for (i = 0; i < option_count; i++) {
		if (strcmp(options[i].key, "registry") == 0) {
			*registry = options[i].value;
		} else if (strcmp(options[i].key, "refresh_ms") == 0) {
			int64_t v;

			if (cf_parse_int64(&v, options[i].value, 10, 1000) != CF_OK) {
				mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: plugin_opt_refresh_ms "
								   "must be 10 to 1000");
				return MOSQ_ERR_INVAL;
			}
			*refresh_ms = (int)v;
		} else {
			mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: unknown option plugin_opt_%s",
					     options[i].key);
			return MOSQ_ERR_INVAL;
		}
	}
	if (*registry == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: plugin_opt_registry is required "
						   "(the registry, e.g. sqlite:/var/lib/certfleet/registry.db)");
		return MOSQ_ERR_INVAL;
	}
	return MOSQ_ERR_SUCCESS;
}

int
mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		      struct mosquitto_opt *options, int option_count)
{
	struct plugin *p = &plugin;
	cf_err err = CF_ERR_INIT;
	const char *registry;
	char *uri;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = options_read(&registry, &p->refresh_ms, options, option_count);
	if (rc != MOSQ_ERR_SUCCESS)
		return rc;
	/* A bare path is an SQLite file. */
	uri = malloc(strlen(registry) + sizeof("sqlite:"));
	if (uri == NULL)
		return MOSQ_ERR_NOMEM;
	snprintf(uri, strlen(registry) + sizeof("sqlite:"), "%s%s",
		 strncmp(registry, "sqlite:", 7) == 0 ? "" : "sqlite:", registry);
	rc = cf_store_open_readonly(&p->store, uri, &err);
	free(uri);
	if (rc != CF_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: cannot open the registry: %s",
				     err.msg);
		return MOSQ_ERR_UNKNOWN;
	}
	rc = cf_broker_index_refresh(&p->idx, p->store, NULL, NULL, &err);
	if (rc != CF_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: cannot read the registry: %s",
				     err.msg);
		cf_store_close(p->store);
		return MOSQ_ERR_UNKNOWN;
	}
	p->pid = identifier;
	p->next_refresh_ms = mono_ms() + p->refresh_ms;
	*userdata = p;
	if (mosquitto_callback_register(p->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p) !=
		    MOSQ_ERR_SUCCESS ||
	    mosquitto_callback_register(p->pid, MOSQ_EVT_TICK, on_tick, NULL, p) !=
		    MOSQ_ERR_SUCCESS ||
	    mosquitto_callback_register(p->pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, p) !=
		    MOSQ_ERR_SUCCESS)
		return MOSQ_ERR_UNKNOWN;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "certfleet: %zu certificates indexed, refresh every "
					      "%d ms",
			     cf_broker_index_size(&p->idx), p->refresh_ms);
	return MOSQ_ERR_SUCCESS;
}

int
mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct plugin *p = userdata;

	(void)options;
	(void)option_count;
	if (p == NULL)
		return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(p->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(p->pid, MOSQ_EVT_TICK, on_tick, NULL);
	mosquitto_callback_unregister(p->pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	cf_broker_index_clear(&p->idx);
	cf_store_close(p->store);
	p->store = NULL;
	return MOSQ_ERR_SUCCESS;
}
