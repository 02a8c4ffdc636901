/*
 * broker/acl.c: every PUBLISH, SUBSCRIBE and delivery is checked against the
 * policies of the certificate the client connected with (policy.h gives
 * the rules; docs/broker.md the examples).
 *
 * The session comes from the sessions table by client id (auth.c), not
 * from the connection: Mosquitto also asks before it queues a message for a
 * persistent session that is offline, when there is no connection and no
 * certificate to read. After a broker restart such a session is not in the
 * table yet, and after a rotation done while the device was offline its
 * certificate can no longer connect; either way it is adopted from the
 * registry: the newest admissible certificate of the thing that the client
 * id names. A certificate that expired during a session acts no more (and
 * the session goes at the next minute's sweep).
 */
#include "broker_int.h"

#include <stdlib.h>
#include <string.h>

struct newest {
	const cf_broker_index *idx;
	const cf_broker_cert *best;
};

static int
pick_newest(const cf_store_cert *cert, void *payload)
{
	struct newest *n = payload;
	const cf_broker_cert *e = cf_broker_index_get(n->idx, cert->id);

	if (e != NULL && e->policy != NULL && (n->best == NULL || e->not_before > n->best->not_before))
		n->best = e;
	return CF_OK;
}

/*
 * The session of an offline client id, from the registry: when the table
 * does not know it (a broker restart), or its certificate can no longer
 * connect (rotated while the device was offline). NULL when the thing has no
 * admissible certificate.
 */
static cf_broker_session *
adopt(cf_broker_plugin *p, const char *client_id, cf_broker_session *s)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	struct newest n = { &p->idx, NULL };
	cf_err err = CF_ERR_INIT;

	if (p->store == NULL || !cf_name_valid(client_id))
		return NULL;
	if (p->unadoptable_seq != p->idx.seq) {
		cf_broker_map_clear(&p->unadoptable, NULL);
		p->unadoptable_seq = p->idx.seq;
	}
	if (cf_broker_map_get(&p->unadoptable, client_id) != NULL)
		return NULL;
	filter.thing = client_id;
	filter.status = CF_CERT_ACTIVE;
	if (cf_store_cert_list(p->store, &filter, pick_newest, &n, &err) != CF_OK) {
		mosquitto_log_printf(MOSQ_LOG_WARNING, "certfleet: registry read failed: %s",
				     err.msg);
		return NULL;
	}
	if (n.best == NULL) {
		cf_broker_map_put(&p->unadoptable, client_id, p); /* any non-NULL value */
		return NULL;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL || cf_broker_map_put(&p->sessions, client_id, s) != CF_OK) {
			free(s);
			return NULL;
		}
	}
	memcpy(s->cert, n.best->id, CF_BROKER_ID_LEN);
	return s;
}

/* The certificate of a session if it may still act: admissible and not expired. */
static const cf_broker_cert *
usable(const cf_broker_plugin *p, const cf_broker_session *s)
{
	const cf_broker_cert *cert = cf_broker_index_get(&p->idx, s->cert);

	if (cert == NULL || cert->policy == NULL || cf_time_now() > cert->not_after)
		return NULL;
	return cert;
}

/*
 * Whether this connection may act for the session: the admitted one; for a
 * delivery also none (a persistent session offline); for a publish also the
 * one that just ended or was taken over (its will).
 */
static bool
speaks_for(const cf_broker_session *s, const struct mosquitto *client, cf_broker_action action)
{
	if (client == s->conn)
		return true;
	if (action == CF_BROKER_RECEIVE)
		return s->conn == NULL;
	return action == CF_BROKER_PUBLISH && client == s->recent;
}

/* At most ten refusal lines a second: a client looping on a refused topic must not flood the log. */
static void
refusal_log(cf_broker_plugin *p, const char *client_id, const char *what, const char *topic)
{
	int64_t second = cf_time_mono_ms() / 1000;
	char qid[160], qtopic[300];

	if (second != p->acl_log_second) {
		if (p->acl_suppressed > 0)
			mosquitto_log_printf(MOSQ_LOG_NOTICE,
					     "certfleet: %u more topic refusals not logged",
					     p->acl_suppressed);
		p->acl_log_second = second;
		p->acl_logged = 0;
		p->acl_suppressed = 0;
	}
	if (p->acl_logged >= 10) {
		p->acl_suppressed++;
		return;
	}
	p->acl_logged++;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "certfleet: denied %s client_id=%s topic=%s", what,
			     cf_log_quote(qid, sizeof(qid), client_id),
			     cf_log_quote(qtopic, sizeof(qtopic), topic));
}

int
cf_broker__on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	cf_broker_plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	cf_broker_session *s;
	const cf_broker_cert *cert;
	cf_broker_action action;
	const char *what;

	(void)event;
	switch (ed->access) {
	case MOSQ_ACL_UNSUBSCRIBE:
		return MOSQ_ERR_SUCCESS; /* giving up a subscription reaches nothing new */
	case MOSQ_ACL_READ:
		action = CF_BROKER_RECEIVE;
		what = "receive";
		break;
	case MOSQ_ACL_WRITE:
		action = CF_BROKER_PUBLISH;
		what = "publish";
		break;
	case MOSQ_ACL_SUBSCRIBE:
		action = CF_BROKER_SUBSCRIBE;
		what = "subscribe";
		break;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
	if (client_id == NULL || ed->topic == NULL)
		return MOSQ_ERR_ACL_DENIED;
	s = cf_broker_map_get(&p->sessions, client_id);
	cert = s != NULL ? usable(p, s) : NULL;
	if (action == CF_BROKER_RECEIVE && cert == NULL && (s == NULL || s->conn == NULL)) {
		s = adopt(p, client_id, s);
		cert = s != NULL ? usable(p, s) : NULL;
	}
	if (s == NULL || cert == NULL || !speaks_for(s, ed->client, action) ||
	    !cf_broker_policy_allows(cert->policy, action, ed->topic, client_id, cert->thing)) {
		refusal_log(p, client_id, what, ed->topic);
		return MOSQ_ERR_ACL_DENIED;
	}
	return MOSQ_ERR_SUCCESS;
}
