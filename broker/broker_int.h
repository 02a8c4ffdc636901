/*
 * broker_int.h: what the files of certfleet_broker.so share (docs/broker.md).
 *
 *   plugin.c    entry points, options, callback registration, the tick
 *   registry.c  the read-only registry handle, the index refresh, and a
 *               registry file replaced under the broker
 *   auth.c      CONNECT (basic auth), DISCONNECT, the sessions table, kicks
 *   acl.c       PUBLISH, SUBSCRIBE and delivery against the policies
 *   records.c   connection records, queued and written once a second
 * and, pure (unit-tested without a broker): index.c (the certificate
 * index), policy.c (policy decisions), map.c (the hash map under both).
 *
 * Everything runs on Mosquitto's one thread: no locks.
 */
#ifndef CF_BROKER_INT_H
#define CF_BROKER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "index.h"
#include "map.h"
#include "store/store.h"
#include "util/util.h"

/* A client id the plugin admitted, and what it connected with. */
typedef struct cf_broker_session {
	char cert[CF_BROKER_ID_LEN];   /* the certificate of its last admitted CONNECT */
	const struct mosquitto *conn; /* that connection while it is up; NULL once it ended */
	/*
	 * The connection that last stopped being conn (it ended, or a newer one
	 * took the client id over): Mosquitto checks its will after the
	 * DISCONNECT event, and only a will may still be published from it.
	 */
	const struct mosquitto *recent;
} cf_broker_session;

typedef struct cf_broker_record cf_broker_record; /* records.c */

typedef struct cf_broker_plugin {
	mosquitto_plugin_id_t *pid;
	char *uri;  /* the registry as a store URI */
	char *path; /* its file, watched for replacement; NULL for a non-file backend */
	dev_t dev;  /* the file the open handle reads */
	ino_t ino;
	int schema; /* its schema version */
	cf_store *store;
	cf_broker_index idx;
	cf_broker_map sessions; /* client id -> cf_broker_session */
	/*
	 * Client ids that adoption (acl.c) found no admissible certificate for,
	 * as of index position unadoptable_seq: not asked again until the index
	 * moves, so a message for such an offline session costs no query.
	 */
	cf_broker_map unadoptable;
	int64_t unadoptable_seq;
	int refresh_ms;
	int64_t next_refresh_ms;
	int64_t next_sweep_ms; /* sessions checked again (expiry) once a minute */
	bool refresh_failing;  /* the last refresh failed: logged once */
	bool registry_broken; /* the last reopen failed: logged once, retried every refresh */
	int64_t acl_log_second; /* rate limit of the refusal lines of acl.c */
	unsigned int acl_logged, acl_suppressed;
	/* records.c */
	cf_store *writer;
	cf_broker_record *records;
	size_t nrecords, records_cap;
	int64_t records_max; /* rows kept in the registry */
	uint64_t records_dropped;
	int64_t next_flush_ms;
	int64_t next_error_log_ms;
} cf_broker_plugin;

/* registry.c */
int cf_broker__registry_open(cf_broker_plugin *p, const char *registry);
void cf_broker__registry_refresh(cf_broker_plugin *p);
void cf_broker__registry_close(cf_broker_plugin *p);

/* auth.c */
int cf_broker__on_basic_auth(int event, void *event_data, void *userdata);
int cf_broker__on_disconnect(int event, void *event_data, void *userdata);
/* A certificate left ACTIVE: disconnect the session using it (index callback). */
void cf_broker__cert_left(const cf_broker_cert *cert, const char *why, void *payload);
/*
 * Disconnect every live session that may no longer connect: after the index
 * was rebuilt, and once a minute for certificates that expired meanwhile.
 */
void cf_broker__sessions_recheck(cf_broker_plugin *p);
void cf_broker__sessions_clear(cf_broker_plugin *p);

/* acl.c */
int cf_broker__on_acl_check(int event, void *event_data, void *userdata);

/* records.c */
int cf_broker__records_open(cf_broker_plugin *p);
void cf_broker__records_add(cf_broker_plugin *p, const char *cert_id, const char *client_id,
			    const char *address, const char *outcome);
void cf_broker__records_flush(cf_broker_plugin *p, bool final);
/* Close the handle (the registry file is being replaced); the queue waits for the next open. */
void cf_broker__records_detach(cf_broker_plugin *p);
void cf_broker__records_close(cf_broker_plugin *p);

#endif
