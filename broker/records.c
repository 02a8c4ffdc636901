/*
 * broker/records.c: every CONNECT, admitted or refused, recorded in the
 * registry (certificate, client id, peer address, time, outcome) for the
 * audits that find shared certificates and conflicting client ids.
 *
 * A CONNECT must never wait on the registry: the records are queued in
 * memory (at most RECORDS_PENDING_MAX; beyond that they are counted as
 * dropped and the count logged) and written once a second, from the tick,
 * in one transaction, on a second, writable handle that never waits for
 * the write lock (busy timeout 0: when certfleetd or the CLI holds it, the
 * batch waits for the next second) and checkpoints the WAL after 1,000
 * pages (a few milliseconds of fsync every few thousand connections, and a
 * log that stays small when certfleetd does not commit). The registry keeps
 * the newest records_max rows. This handle is the plugin's only write; the
 * index reads through the read-only one. registry.c also uses it to empty
 * the WAL of a registry file replaced under the broker.
 */
#include "broker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS_PENDING_MAX 20000
#define FLUSH_MS            1000
#define FIELD_MAX           256 /* client ids are the client's: cut to this */
#define CHECKPOINT_PAGES    1000

struct cf_broker_record {
	int64_t at;
	char cert[CF_BROKER_ID_LEN]; /* "" when none was presented */
	char client_id[FIELD_MAX];
	char address[64];
	char outcome[32];
};

int
cf_broker__records_open(cf_broker_plugin *p)
{
	cf_err err = CF_ERR_INIT;
	int rc;

	rc = cf_store_open_existing(&p->writer, p->uri, &err);
	if (rc == CF_OK)
		rc = cf_store_set_busy_timeout(p->writer, 0, &err);
	if (rc == CF_OK)
		rc = cf_store_set_autocheckpoint(p->writer, CHECKPOINT_PAGES, &err);
	if (rc != CF_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "certfleet: connection records off until the broker restarts "
				     "(and a replaced registry file is not safe): cannot write the "
				     "registry: %s",
				     err.msg);
		cf_store_close(p->writer);
		p->writer = NULL;
		p->records_max = 0;
		p->nrecords = 0;
		return rc;
	}
	p->next_flush_ms = cf_time_mono_ms() + FLUSH_MS;
	return CF_OK;
}

void
cf_broker__records_add(cf_broker_plugin *p, const char *cert_id, const char *client_id,
		       const char *address, const char *outcome)
{
	cf_broker_record *r, *grown;
	size_t cap;

	if (p->records_max == 0)
		return;
	if (p->nrecords == RECORDS_PENDING_MAX) {
		p->records_dropped++;
		return;
	}
	if (p->nrecords == p->records_cap) {
		cap = p->records_cap != 0 ? p->records_cap * 2 : 256;
		if (cap > RECORDS_PENDING_MAX)
			cap = RECORDS_PENDING_MAX;
		grown = realloc(p->records, cap * sizeof(*grown));
		if (grown == NULL) {
			p->records_dropped++;
			return;
		}
		p->records = grown;
		p->records_cap = cap;
	}
	r = &p->records[p->nrecords++];
	r->at = cf_time_now();
	snprintf(r->cert, sizeof(r->cert), "%s", cert_id != NULL ? cert_id : "");
	snprintf(r->client_id, sizeof(r->client_id), "%s", client_id);
	snprintf(r->address, sizeof(r->address), "%s", address);
	snprintf(r->outcome, sizeof(r->outcome), "%s", outcome);
}

/* Write the queue in one transaction. final: at shutdown, wait a little for the lock. */
void
cf_broker__records_flush(cf_broker_plugin *p, bool final)
{
	cf_store_connection *rows = NULL;
	cf_err err = CF_ERR_INIT;
	size_t i;
	int rc;

	if (!final && cf_time_mono_ms() < p->next_flush_ms)
		return;
	p->next_flush_ms = cf_time_mono_ms() + FLUSH_MS;
	if (p->records_dropped > 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "certfleet: %llu connection records dropped (more than %d "
				     "waiting for the registry)",
				     (unsigned long long)p->records_dropped, RECORDS_PENDING_MAX);
		p->records_dropped = 0;
	}
	if (p->writer == NULL || p->nrecords == 0)
		return;
	rows = calloc(p->nrecords, sizeof(*rows));
	if (rows == NULL)
		return; /* kept for the next second */
	for (i = 0; i < p->nrecords; i++) {
		rows[i].at = p->records[i].at;
		rows[i].cert_id = p->records[i].cert[0] != '\0' ? p->records[i].cert : NULL;
		rows[i].client_id = p->records[i].client_id;
		rows[i].address = p->records[i].address;
		rows[i].outcome = p->records[i].outcome;
	}
	if (final)
		cf_store_set_busy_timeout(p->writer, 2000, NULL);
	rc = cf_store_connections_record(p->writer, rows, p->nrecords, p->records_max, &err);
	free(rows);
	if (rc == CF_OK || rc == CF_EINVAL) {
		if (rc == CF_EINVAL) /* retrying cannot help: dropped, and said */
			mosquitto_log_printf(MOSQ_LOG_WARNING,
					     "certfleet: %zu connection records refused by the "
					     "registry: %s",
					     p->nrecords, err.msg);
		p->nrecords = 0;
	} else if (final || (rc != CF_EBUSY && cf_time_mono_ms() >= p->next_error_log_ms)) {
		/* Once a minute at most: a registry that cannot be written fails every second. */
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "certfleet: writing %zu connection records failed: %s%s",
				     p->nrecords, err.msg, final ? "" : " (retried every second)");
		p->next_error_log_ms = cf_time_mono_ms() + 60000;
	}
}

void
cf_broker__records_detach(cf_broker_plugin *p)
{
	cf_store_close(p->writer);
	p->writer = NULL;
}

void
cf_broker__records_close(cf_broker_plugin *p)
{
	cf_broker__records_flush(p, true);
	cf_store_close(p->writer);
	p->writer = NULL;
	free(p->records);
	p->records = NULL;
	p->nrecords = p->records_cap = 0;
}
