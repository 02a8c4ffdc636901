/*
 * broker/auth.c: who may connect, and who must go.
 *
 * On MOSQ_EVT_BASIC_AUTH (every CONNECT, when the listener has
 * use_identity_as_username and use_subject_as_username off) the peer's
 * certificate is hashed and looked up in the index (read from the registry
 * on the spot when the index does not know it yet): anything but an ACTIVE,
 * valid, undeleted certificate whose thing is the client id is refused,
 * with a log line that says why. Every outcome is recorded (records.c).
 *
 * The sessions table maps each admitted client id to the certificate it
 * connected with and, while it is up, its connection. acl.c decides with
 * that certificate's policies; when a certificate leaves ACTIVE, the
 * session using it, if any, is disconnected. A device that already
 * reconnected with its new certificate is not touched when the old one
 * goes: its session names the new one.
 */
#include "broker_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

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

/* Remember that client_id is up on conn with certificate id. CF_ENOMEM. */
static int
session_begin(cf_broker_plugin *p, const char *client_id, const char *id,
	      const struct mosquitto *conn)
{
	cf_broker_session *s = cf_broker_map_get(&p->sessions, client_id);

	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL || cf_broker_map_put(&p->sessions, client_id, s) != CF_OK) {
			free(s);
			return CF_ENOMEM;
		}
	}
	if (s->conn != NULL && s->conn != conn)
		s->recent = s->conn; /* taken over: its will is still to come */
	memcpy(s->cert, id, CF_BROKER_ID_LEN);
	s->conn = conn;
	return CF_OK;
}

/*
 * A certificate the index does not know may have been issued since the last
 * refresh (a rotation's new certificate, presented milliseconds after its
 * commit): read it from the registry now rather than refuse it until then.
 */
static bool
fetched(cf_broker_plugin *p, const char *id)
{
	cf_err err = CF_ERR_INIT;
	int rc;

	if (p->store == NULL)
		return false;
	rc = cf_broker_index_fetch(&p->idx, p->store, id, &err);
	if (rc != CF_OK && rc != CF_ENOTFOUND)
		mosquitto_log_printf(MOSQ_LOG_WARNING, "certfleet: registry read failed: %s",
				     err.msg);
	return rc == CF_OK;
}

static void
refuse_log(const char *qid, const char *addr, const char *id, const char *why)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "certfleet: refused client_id=%s addr=%s cert=%.16s reason=%s", qid,
			     addr, id, why);
}

int
cf_broker__on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	cf_broker_plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	const char *addr = mosquitto_client_address(ed->client);
	char id[CF_BROKER_ID_LEN], qid[160];
	const char *why;

	(void)event;
	if (client_id == NULL)
		client_id = "";
	if (addr == NULL)
		addr = "-";
	/* The client id is the client's own text: quoted, so that it cannot forge a log line. */
	cf_log_quote(qid, sizeof(qid), client_id);
	if (!peer_cert_id(id, ed->client)) {
		refuse_log(qid, addr, "-", "no_certificate");
		cf_broker__records_add(p, NULL, client_id, addr, "no_certificate");
		return MOSQ_ERR_AUTH;
	}
	why = cf_broker_index_check(&p->idx, id, client_id, cf_time_now());
	if (why != NULL && strcmp(why, "unknown_certificate") == 0 && fetched(p, id))
		why = cf_broker_index_check(&p->idx, id, client_id, cf_time_now());
	if (why == NULL && session_begin(p, client_id, id, ed->client) != CF_OK)
		why = "out_of_memory";
	cf_broker__records_add(p, id, client_id, addr, why != NULL ? why : "accepted");
	if (why != NULL) {
		refuse_log(qid, addr, id, why);
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

/* A connection ended: its session is down, unless the client id is up on a newer one. */
int
cf_broker__on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	cf_broker_plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	cf_broker_session *s;

	(void)event;
	s = client_id != NULL ? cf_broker_map_get(&p->sessions, client_id) : NULL;
	if (s != NULL && s->conn == ed->client) {
		s->recent = s->conn;
		s->conn = NULL;
	}
	return MOSQ_ERR_SUCCESS;
}

static void
kick(const char *client_id, const char *id, const char *why)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "certfleet: disconnecting client_id=%s cert=%.16s reason=%s", client_id,
			     id, why);
	mosquitto_kick_client_by_clientid(client_id, false);
}

void
cf_broker__cert_left(const cf_broker_cert *cert, const char *why, void *payload)
{
	cf_broker_plugin *p = payload;
	cf_broker_session *s;

	/* An admitted client id is the certificate's thing (a registry name: safe to log). */
	if (cert->thing == NULL)
		return;
	s = cf_broker_map_get(&p->sessions, cert->thing);
	if (s != NULL && s->conn != NULL && strcmp(s->cert, cert->id) == 0)
		kick(cert->thing, cert->id, why);
}

struct recheck {
	cf_broker_plugin *p;
	char **ids; /* the client ids to disconnect, collected before any kick */
	size_t n, cap;
};

static void
recheck_one(const char *client_id, void *value, void *payload)
{
	struct recheck *r = payload;
	cf_broker_session *s = value;
	char **grown;

	if (s->conn == NULL ||
	    cf_broker_index_check(&r->p->idx, s->cert, client_id, cf_time_now()) == NULL)
		return;
	if (r->n == r->cap) {
		grown = realloc(r->ids, (r->cap != 0 ? r->cap * 2 : 16) * sizeof(*grown));
		if (grown == NULL)
			return; /* the next sweep, a minute later */
		r->ids = grown;
		r->cap = r->cap != 0 ? r->cap * 2 : 16;
	}
	r->ids[r->n] = strdup(client_id);
	if (r->ids[r->n] != NULL)
		r->n++;
}

void
cf_broker__sessions_recheck(cf_broker_plugin *p)
{
	struct recheck r = { p, NULL, 0, 0 };
	cf_broker_session *s;
	const char *why;
	size_t i;

	/* Collected first: a kick runs broker callbacks, which must not meet a map mid-walk. */
	cf_broker_map_each(&p->sessions, recheck_one, &r);
	for (i = 0; i < r.n; i++) {
		s = cf_broker_map_get(&p->sessions, r.ids[i]);
		why = s != NULL && s->conn != NULL
			      ? cf_broker_index_check(&p->idx, s->cert, r.ids[i], cf_time_now())
			      : NULL;
		if (why != NULL)
			kick(r.ids[i], s->cert, why);
		free(r.ids[i]);
	}
	free(r.ids);
}

void
cf_broker__sessions_clear(cf_broker_plugin *p)
{
	cf_broker_map_clear(&p->unadoptable, NULL);
	cf_broker_map_clear(&p->sessions, free);
}
