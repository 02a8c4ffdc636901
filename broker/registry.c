/*
 * broker/registry.c: the registry as the plugin reads it.
 *
 * The registry is opened read-only and the index loaded once at start, then
 * kept current from the change feed every refresh_ms (called from the
 * tick). Two things can happen to the registry under a running broker:
 *
 * - a migration in place (certfleetd or the CLI of a newer release opened
 *   it): the schema version moves. Migrations only add, so the plugin's
 *   queries keep working; it logs the change once (and, for a schema newer
 *   than it knows, that the broker should be restarted to load the new
 *   plugin) and goes on;
 * - the file is replaced (a restore, or a migration that writes a new file
 *   and renames it over the old one, with certfleetd and the CLI stopped):
 *   an open SQLite handle would go on reading the old, unlinked file
 *   forever, and SQLite would leave the old file's WAL beside the new one,
 *   to be replayed into it. Each refresh compares the path's inode with the
 *   open one's; when it changed, the old WAL is emptied through the
 *   writable handle (records.c), the old handles closed, the new file
 *   opened, a new index built from scratch, and every live session checked
 *   against it. Until that succeeds (another process still on the old file,
 *   a new file this build cannot read), the last index stays in force, the
 *   failure is logged once, and it is tried again at every refresh.
 */
#include "broker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The file behind an SQLite store URI, or NULL for another backend. */
static char *
file_of(const char *uri)
{
	if (strncmp(uri, "sqlite://", 9) == 0)
		return strdup(uri + 9);
	if (strncmp(uri, "sqlite:", 7) == 0)
		return strdup(uri + 7);
	return NULL;
}

/* A new handle and a full index of it, or nothing (logged once while it keeps failing). */
static int
load(cf_store **store_out, cf_broker_index *idx, int *schema, struct stat *st,
     const cf_broker_plugin *p)
{
	cf_err err = CF_ERR_INIT;
	cf_store *store = NULL;
	int rc;

	*store_out = NULL;
	/* stat before open: if the file is replaced in between, the next refresh sees it. */
	if (p->path != NULL && stat(p->path, st) != 0) {
		rc = cf_err_set(&err, CF_ESTORE, NULL, "%s: missing", p->path);
		goto out;
	}
	rc = cf_store_open_readonly(&store, p->uri, &err);
	/* Never sleep on a lock in the broker's thread: a busy read is retried at the next tick. */
	if (rc == CF_OK)
		rc = cf_store_set_busy_timeout(store, 0, &err);
	if (rc == CF_OK)
		rc = cf_store_schema_version(store, schema, &err);
	if (rc == CF_OK)
		rc = cf_broker_index_refresh(idx, store, NULL, NULL, &err);
out:
	if (rc != CF_OK) {
		if (!p->registry_broken)
			mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: cannot read the registry: %s",
					     err.msg);
		cf_broker_index_clear(idx);
		cf_store_close(store);
		return rc;
	}
	*store_out = store;
	return CF_OK;
}

static void
policy_error_log(cf_broker_plugin *p)
{
	if (p->idx.policy_error[0] == '\0')
		return;
	mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: %s (nothing is allowed to their certificates)",
			     p->idx.policy_error);
	p->idx.policy_error[0] = '\0';
}

int
cf_broker__registry_open(cf_broker_plugin *p, const char *registry)
{
	struct stat st;
	size_t len = strlen(registry) + sizeof("sqlite:");

	/* A bare path is an SQLite file. */
	p->uri = malloc(len);
	if (p->uri == NULL)
		return CF_ENOMEM;
	snprintf(p->uri, len, "%s%s", strncmp(registry, "sqlite:", 7) == 0 ? "" : "sqlite:",
		 registry);
	p->path = file_of(p->uri);
	memset(&st, 0, sizeof(st));
	if (load(&p->store, &p->idx, &p->schema, &st, p) != CF_OK)
		return CF_ESTORE;
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	policy_error_log(p);
	return CF_OK;
}

/* Whether the path names another file than the open handle reads (a missing path: not yet). */
static bool
replaced(const cf_broker_plugin *p)
{
	struct stat st;

	if (p->store == NULL)
		return true; /* the last reopen failed: try again */
	return p->path != NULL && stat(p->path, &st) == 0 &&
	       (st.st_dev != p->dev || st.st_ino != p->ino);
}

/* A migration in place: logged once per version. */
static void
schema_watch(cf_broker_plugin *p)
{
	cf_err err = CF_ERR_INIT;
	int schema;

	if (cf_store_schema_version(p->store, &schema, &err) != CF_OK || schema == p->schema)
		return;
	mosquitto_log_printf(schema > CF_STORE_SCHEMA_VERSION ? MOSQ_LOG_WARNING : MOSQ_LOG_NOTICE,
			     "certfleet: the registry was migrated from schema %d to %d%s", p->schema,
			     schema,
			     schema > CF_STORE_SCHEMA_VERSION
				     ? ": restart the broker to load the plugin of that release"
				     : "");
	p->schema = schema;
}

/*
 * The old file's WAL emptied through the old handle, so that SQLite does not
 * replay it into the new file (it leaves it there at close when the file
 * was renamed over). Fails while another process still uses the old file.
 */
static bool
old_wal_emptied(cf_broker_plugin *p)
{
	cf_err err = CF_ERR_INIT;

	if (p->writer == NULL || cf_store_checkpoint(p->writer, &err) == CF_OK)
		return true;
	if (!p->registry_broken)
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "certfleet: the registry file was replaced while in use: cannot "
				     "empty the old file's WAL (%s); stop certfleetd and the CLI. "
				     "Enforcing the last state meanwhile",
				     err.msg);
	p->registry_broken = true;
	return false;
}

/* Close the old file, open the new one and swap in a new index; on failure keep the old index. */
static void
reopen(cf_broker_plugin *p)
{
	cf_broker_index idx = CF_BROKER_INDEX_INIT;
	cf_store *store = NULL;
	struct stat st;
	int schema = 0;

	/* The reader stays until the swap can happen: idle, it holds no snapshot to block this. */
	if (!old_wal_emptied(p))
		return;
	cf_store_close(p->store);
	p->store = NULL;
	cf_broker__records_detach(p);
	memset(&st, 0, sizeof(st));
	if (load(&store, &idx, &schema, &st, p) != CF_OK) {
		p->registry_broken = true;
		return;
	}
	cf_broker_index_clear(&p->idx);
	p->idx = idx;
	p->store = store;
	p->schema = schema;
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "certfleet: the registry file was replaced: %zu certificates indexed "
			     "from the new one",
			     cf_broker_index_size(&p->idx));
	p->registry_broken = false;
	policy_error_log(p);
	cf_broker__records_open(p);
	cf_broker__sessions_recheck(p);
}

void
cf_broker__registry_refresh(cf_broker_plugin *p)
{
	cf_err err = CF_ERR_INIT;

	if (replaced(p)) {
		reopen(p);
		return;
	}
	schema_watch(p);
	if (cf_broker_index_refresh(&p->idx, p->store, cf_broker__cert_left, p, &err) != CF_OK) {
		/* Logged once, not four times a second; the last state stays enforced meanwhile. */
		if (!p->refresh_failing)
			mosquitto_log_printf(MOSQ_LOG_ERR,
					     "certfleet: registry refresh failed, enforcing the last "
					     "state read until it works again: %s",
					     err.msg);
		p->refresh_failing = true;
	} else if (p->refresh_failing) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "certfleet: registry refresh works again");
		p->refresh_failing = false;
	}
	policy_error_log(p);
}

void
cf_broker__registry_close(cf_broker_plugin *p)
{
	cf_broker_index_clear(&p->idx);
	cf_store_close(p->store);
	p->store = NULL;
	free(p->uri);
	free(p->path);
	p->uri = NULL;
	p->path = NULL;
}
