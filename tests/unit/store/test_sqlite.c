/*
 * SQLite specifics: tampering with the file underneath the store, two
 * processes writing at once, read-only handles, schema versions, URIs and
 * files that are not registries. Skipped on other backends.
 */
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../pki/helpers.h"

/* Run sql on the registry file with a connection of our own, as an attacker would. */
static void
raw_exec(struct fixture *fx, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/*
 * Since schema 2 the database refuses edits of the log; an attacker with
 * the file drops the triggers first, and so do the tamper cases.
 */
#define DROP_LOG_GUARDS                                                                          \
	"DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; "                         \
	"DROP TRIGGER event_head_no_delete; DROP TRIGGER event_head_forward_only; "

/* What migration 6 adds, for the cases that make an older schema out of a new file. */
#define DROP_AUDIT_TABLES                                                                        \
	"DROP TABLE audit_findings; DROP TABLE audit_runs; DROP TABLE audit_suppressions; "     \
	"ALTER TABLE certs DROP COLUMN key_roca; "

static void
raw_tamper(struct fixture *fx, const char *sql)
{
	char buf[1024];

	assert_true((size_t)snprintf(buf, sizeof(buf), "%s%s", DROP_LOG_GUARDS, sql) <
		    sizeof(buf));
	raw_exec(fx, buf);
}

/* Run sql as raw_exec() does, expect it to fail and return SQLite's message. */
static void
raw_exec_fails(struct fixture *fx, const char *sql, const char *want_msg)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		fail_msg("%s: succeeded", sql);
	if (msg == NULL || strstr(msg, want_msg) == NULL)
		fail_msg("%s: '%s', want '%s'", sql, msg == NULL ? "" : msg, want_msg);
	sqlite3_free(msg);
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* Six events: a CA, two things, three certificates. */
static void
seed(struct fixture *fx)
{
	fx_add_ca(fx, "int-1");
	fx_add_thing(fx, "a");
	fx_add_thing(fx, "b");
	fx_add_cert(fx, 1, "int-1", "a", CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 2, "int-1", "b", CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 3, "int-1", "b", CF_CERT_PENDING_ACTIVATION, 30);
	assert_int_equal(fx_verify_ok(fx), 6);
}

static void
expect_bad(struct fixture *fx, int64_t want_bad)
{
	int64_t count = 0, bad = -1;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, NULL, &err),
			 CF_EINTEGRITY);
	assert_int_equal(bad, want_bad);
	assert_int_equal(err.code, CF_EINTEGRITY);
}

static void
test_store_sqlite__edited_detail_detected(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	raw_tamper(fx, "UPDATE events SET detail = '{}' WHERE seq = 3");
	expect_bad(fx, 3);
}

static void
test_store_sqlite__edited_actor_detected(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	raw_tamper(fx, "UPDATE events SET actor = 'someone-else' WHERE seq = 5");
	expect_bad(fx, 5);
}

static void
test_store_sqlite__rehashed_row_detected(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	/* A forger who fixes the row's own hash still breaks the next link. */
	raw_tamper(fx, "UPDATE events SET hash = '1111111111111111111111111111111111111111111111111111"
		     "111111111111' WHERE seq = 2");
	expect_bad(fx, 2);
}

static void
test_store_sqlite__deleted_middle_detected(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	raw_tamper(fx, "DELETE FROM events WHERE seq = 4");
	expect_bad(fx, 4);
}

static void
test_store_sqlite__deleted_last_detected(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	raw_tamper(fx, "DELETE FROM events WHERE seq = 6");
	expect_bad(fx, 6);
}

static void
test_store_sqlite__edited_head_detected(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	raw_tamper(fx, "UPDATE event_head SET hash = '22222222222222222222222222222222"
		       "22222222222222222222222222222222'");
	expect_bad(fx, 0);
}

/* Child: own handle, n certificates, exit status 0 on success. */
static int
child_insert(const char *uri, uint64_t first, int n)
{
	cf_store *store = NULL;
	struct fx_cert c;
	cf_err err = CF_ERR_INIT;
	int i;

	if (cf_store_open(&store, uri, &err) != 0) {
		fprintf(stderr, "child open: %s\n", err.msg);
		return 1;
	}
	for (i = 0; i < n; i++) {
		fx_cert_init(&c, first + (uint64_t)i, "int-1", "a", CF_CERT_ACTIVE, 30);
		if (cf_store_cert_insert(store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0) {
			fprintf(stderr, "child insert %d: %s\n", i, err.msg);
			cf_store_close(store);
			return 1;
		}
	}
	cf_store_close(store);
	return 0;
}

static int
count_cert(const cf_store_cert *cert, void *payload)
{
	(void)cert;
	(*(int *)payload)++;
	return 0;
}

static void
test_store_sqlite__two_processes_insert(void **state)
{
	struct fixture *fx = *state;
	pid_t pids[2];
	int i, status, n = 0;

	fx_require_sqlite(fx);
	fx_add_ca(fx, "int-1");
	fx_add_thing(fx, "a");
	for (i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		/* The child never touches the parent's handle, and leaves with _exit(). */
		if (pids[i] == 0)
			_exit(child_insert(fx->uri, (uint64_t)(i + 1) * 100000, 1000));
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(cf_store_cert_list(fx->store, NULL, count_cert, &n, NULL), 0);
	assert_int_equal(n, 2000);
	assert_int_equal(fx_verify_ok(fx), 2002);
}

static void
test_store_sqlite__readonly_refuses_writes(void **state)
{
	struct fixture *fx = *state;
	cf_store *ro = NULL;
	cf_store_cert cert;
	char id[65], uri[600];
	int64_t count = 0, bad = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	assert_int_equal(cf_store_open_readonly(&ro, fx->uri, &err), 0);
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_get(ro, &cert, id, NULL), 0);
	cf_store_cert_clear(&cert);
	assert_int_equal(cf_store_events_verify(ro, &count, &bad, NULL, NULL), 0);
	assert_int_equal(count, 6);
	assert_int_equal(cf_store_thing_insert(ro, "c", NULL, &fx_actor, &err), CF_ESTATE);
	assert_int_equal(cf_store_cert_transition(ro, id, CF_CERT_REVOKED, NULL, &fx_actor, NULL),
			 CF_ESTATE);
	/* The writer goes on while the reader is open, and the reader sees it. */
	fx_add_thing(fx, "c");
	{
		cf_store_thing thing;

		assert_int_equal(cf_store_thing_get(ro, &thing, "c", NULL), 0);
		cf_store_thing_clear(&thing);
	}
	cf_store_close(ro);
	ro = NULL;

	snprintf(uri, sizeof(uri), "sqlite:%s/missing.db", fx->dir);
	assert_int_equal(cf_store_open_readonly(&ro, uri, &err), CF_ESTORE);
	assert_null(ro);
}

static void
test_store_sqlite__schema_version(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	int version = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	/* Reopening migrates nothing and keeps the version. */
	assert_int_equal(cf_store_open(&other, fx->uri, &err), 0);
	assert_int_equal(cf_store_schema_version(other, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	cf_store_close(other);
	other = NULL;

	/* A newer schema (a later build migrated the file) is refused by both opens. */
	raw_exec(fx, "INSERT INTO schema_migrations VALUES (99, 0)");
	assert_int_equal(cf_store_open(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "newer"));
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_null(other);
	/* An older one (here: none at all) is refused by the read-only open. */
	raw_exec(fx, "DELETE FROM schema_migrations");
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 0"));
}

static void
test_store_sqlite__garbage_file(void **state)
{
	struct fixture *fx = *state;
	char path[600], uri[620];
	cf_store *store = NULL;
	cf_err err = CF_ERR_INIT;
	int fd;

	fx_require_sqlite(fx);
	snprintf(path, sizeof(path), "%s/garbage.db", fx->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, "this is not a database, just text.\n", 35), 35);
	close(fd);
	snprintf(uri, sizeof(uri), "sqlite:%s", path);
	assert_int_equal(cf_store_open(&store, uri, &err), CF_ESTORE);
	assert_null(store);
	assert_non_null(strstr(err.msg, "not a database"));
	assert_non_null(strstr(err.msg, "garbage.db"));
	assert_int_equal(cf_store_open_readonly(&store, uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "not a database"));
}

static void
test_store_sqlite__uri_forms(void **state)
{
	struct fixture *fx = *state;
	cf_store *store = NULL;
	cf_store_thing thing;
	char uri[620];
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	fx_add_thing(fx, "a");
	/* "sqlite://" + an absolute path: three slashes, the same file. */
	snprintf(uri, sizeof(uri), "sqlite://%s", fx->path);
	assert_int_equal(cf_store_open(&store, uri, &err), 0);
	assert_int_equal(cf_store_thing_get(store, &thing, "a", NULL), 0);
	cf_store_thing_clear(&thing);
	cf_store_close(store);
	store = NULL;
	assert_int_equal(cf_store_open(&store, "sqlite:", &err), CF_EINVAL);
	assert_int_equal(cf_store_open(&store, "sqlite://", &err), CF_EINVAL);
	assert_int_equal(cf_store_open(&store, "mysql://x", &err), CF_EINVAL);
	assert_int_equal(cf_store_open(&store, "sqlitex:/tmp/x", &err), CF_EINVAL);
	assert_int_equal(cf_store_open(&store, NULL, &err), CF_EINVAL);
	assert_null(store);
}

static void
test_store_sqlite__pragmas(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	fx_require_sqlite(fx);
	assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The cases below are the review findings: the registry rows, truncation, the guards. */

static void
expect_bad_msg(struct fixture *fx, const cf_store_event_anchor *anchor, int64_t want_bad,
	       const char *want_msg)
{
	int64_t count = 0, bad = -1;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, anchor, &err),
			 CF_EINTEGRITY);
	if (strstr(err.msg, want_msg) == NULL)
		fail_msg("verify: '%s', want '%s'", err.msg, want_msg);
	assert_int_equal(bad, want_bad);
}

static void
test_store_sqlite__reactivated_row_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[256];

	fx_require_sqlite(fx);
	seed(fx);
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_REVOKED, "keyCompromise",
						  &fx_actor, NULL),
			 0);
	assert_int_equal(fx_verify_ok(fx), 7);
	/* The chain is intact; the registry row now disagrees with event 7. */
	snprintf(sql, sizeof(sql), "UPDATE certs SET status = 'ACTIVE' WHERE id = '%s'", id);
	raw_exec(fx, sql);
	expect_bad_msg(fx, NULL, 7, id);
}

static void
test_store_sqlite__status_of_untouched_row_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[256];

	fx_require_sqlite(fx);
	seed(fx);
	/* Certificate 3 was issued PENDING_ACTIVATION by event 6 and never moved. */
	fx_id(id, 3);
	snprintf(sql, sizeof(sql), "UPDATE certs SET status = 'ACTIVE' WHERE id = '%s'", id);
	raw_exec(fx, sql);
	expect_bad_msg(fx, NULL, 6, "make it PENDING_ACTIVATION");
}

static void
test_store_sqlite__row_without_event_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[512];

	fx_require_sqlite(fx);
	seed(fx);
	fx_id(id, 99);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO certs SELECT '%s', 'ff', ca, thing, status, not_before, not_after, "
		 "key_type, key_bits, sig_alg, spki_sha256, pem, created_at, updated_at, "
		 "revoke_reason, revoked_at, change_seq, deleted_at, key_roca FROM certs LIMIT 1",
		 id);
	raw_exec(fx, sql);
	expect_bad_msg(fx, NULL, 0, id);
}

static void
test_store_sqlite__deleted_row_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[256];

	fx_require_sqlite(fx);
	seed(fx);
	fx_id(id, 2);
	snprintf(sql, sizeof(sql), "DELETE FROM certs WHERE id = '%s'", id);
	raw_exec(fx, sql);
	expect_bad_msg(fx, NULL, 5, id);
}

static void
test_store_sqlite__truncated_with_head_detected_by_anchor(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	fx_add_thing(fx, "c"); /* event 7: not about a certificate */
	assert_int_equal(cf_store_events_head(fx->store, &anchor.seq, anchor.hash, &err), 0);
	assert_int_equal(anchor.seq, 7);
	/* Drop event 7 and roll the head back to event 6: consistent from inside. */
	raw_tamper(fx, "DELETE FROM events WHERE seq = 7; DELETE FROM things WHERE name = 'c'; "
		       "UPDATE event_head SET seq = 6, hash = (SELECT hash FROM events "
		       "WHERE seq = 6)");
	assert_int_equal(fx_verify_ok(fx), 6);
	expect_bad_msg(fx, &anchor, 7, "truncated or rewritten before the anchor");
}

static void
test_store_sqlite__log_is_append_only(void **state)
{
	struct fixture *fx = *state;

	fx_require_sqlite(fx);
	seed(fx);
	raw_exec_fails(fx, "UPDATE events SET actor = 'mallory' WHERE seq = 3", "append-only");
	raw_exec_fails(fx, "DELETE FROM events WHERE seq = 6", "append-only");
	raw_exec_fails(fx, "DELETE FROM events", "append-only");
	raw_exec_fails(fx, "DELETE FROM event_head", "append-only");
	raw_exec_fails(fx, "UPDATE event_head SET seq = 5", "append-only");
	raw_exec_fails(fx, "UPDATE event_head SET seq = 8", "append-only");
	raw_exec_fails(fx, "UPDATE event_head SET hash = 'x'", "append-only");
	/* The one legitimate move (seq + 1) passes the guard; rolled back here. */
	raw_exec(fx, "BEGIN; UPDATE event_head SET seq = seq + 1; ROLLBACK");
	assert_int_equal(fx_verify_ok(fx), 6);
	/* Appending goes on as before. */
	fx_add_thing(fx, "c");
	assert_int_equal(fx_verify_ok(fx), 7);
}

static void
test_store_sqlite__schema_1_is_migrated(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	int version = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	cf_store_close(fx->store);
	fx->store = NULL;
	/* Migration 2 only adds the guards: without them, this is a schema-1 file. */
	raw_exec(fx, DROP_AUDIT_TABLES DROP_LOG_GUARDS "DROP TABLE rotations; DROP TABLE outbox; "
		     "ALTER TABLE certs DROP COLUMN deleted_at; DROP TABLE connections; "
		     "DELETE FROM schema_migrations WHERE version >= 2");
	raw_exec(fx, "UPDATE events SET actor = actor WHERE seq = 1"); /* no guard yet */
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 1"));
	/* A read-write open upgrades it, and the read-only one accepts the result. */
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	raw_exec_fails(fx, "UPDATE events SET actor = actor WHERE seq = 1", "append-only");
	assert_int_equal(fx_verify_ok(fx), 6);
	fx_add_thing(fx, "c");
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), 0);
	assert_int_equal(cf_store_schema_version(other, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	cf_store_close(other);
	assert_int_equal(fx_verify_ok(fx), 7);
}

static void
test_store_sqlite__schema_2_is_migrated(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	cf_store_rotation rot;
	char id[65], rid[33];
	int64_t msg = 0;
	int version = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	cf_store_close(fx->store);
	fx->store = NULL;
	/* Migration 3 only adds the two tables (AUTOINCREMENT adds sqlite_sequence). */
	raw_exec(fx, DROP_AUDIT_TABLES "DROP TABLE rotations; DROP TABLE outbox; "
		     "ALTER TABLE certs DROP COLUMN deleted_at; DROP TABLE connections; "
		     "DELETE FROM schema_migrations WHERE version >= 3");
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 2"));
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	assert_int_equal(fx_verify_ok(fx), 6);
	/* The new tables work, with the old data. */
	memset(&rot, 0, sizeof(rot));
	fx_id(id, 1);
	assert_int_equal(cf_store_rotation_id_random(rid, NULL), 0);
	rot.id = rid;
	rot.thing = (char *)(uintptr_t)"a";
	rot.old_cert = id;
	rot.rekey = true;
	rot.deadline = FX_T0 + 86400;
	assert_int_equal(cf_store_rotation_insert(fx->store, &rot, &fx_actor, &err), 0);
	assert_int_equal(cf_store_outbox_add(fx->store, "t", "{}", &msg, &err), 0);
	assert_int_equal(msg, 1);
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), 0);
	cf_store_close(other);
	assert_int_equal(fx_verify_ok(fx), 7);
}

/*
 * Schema 3 -> 4 on a file with data: a certificate, an open and a completed
 * rotation. The new columns start at 0 (nothing deleted, nothing pending),
 * the old rows keep working, and the soft delete works on them.
 */
static void
test_store_sqlite__schema_3_is_migrated(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	cf_store_rotation rot, got;
	cf_store_cert cert;
	char id1[65], id2[65], rid[33];
	int version = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	fx_id(id1, 1);
	fx_id(id2, 2);
	memset(&rot, 0, sizeof(rot));
	assert_int_equal(cf_store_rotation_id_random(rid, NULL), 0);
	rot.id = rid;
	rot.thing = (char *)(uintptr_t)"a";
	rot.old_cert = id1;
	rot.rekey = true;
	rot.deadline = FX_T0 + 86400;
	assert_int_equal(cf_store_rotation_insert(fx->store, &rot, &fx_actor, &err), 0);
	assert_int_equal(cf_store_cert_transition(fx->store, id2, CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err),
			 0);
	assert_int_equal(fx_verify_ok(fx), 8);
	cf_store_close(fx->store);
	fx->store = NULL;
	/* What migrations 4 to 6 add, taken away again: a schema-3 file with data. */
	raw_exec(fx, DROP_AUDIT_TABLES "DROP INDEX rotations_delete_old; DROP INDEX outbox_topic; "
		     "ALTER TABLE rotations DROP COLUMN delete_old_at; "
		     "ALTER TABLE certs DROP COLUMN deleted_at; DROP TABLE connections; "
		     "DELETE FROM schema_migrations WHERE version >= 4");
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 3"));
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	assert_int_equal(fx_verify_ok(fx), 8);
	assert_int_equal(cf_store_rotation_get(fx->store, &got, rid, &err), 0);
	assert_int_equal(got.delete_old_at, 0);
	assert_int_equal(got.state, CF_ROTATION_REQUESTED);
	cf_store_rotation_clear(&got);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, id2, &err), 0);
	assert_int_equal(cert.deleted_at, 0);
	cf_store_cert_clear(&cert);
	/* The old INACTIVE certificate can now be deleted, and the log still checks out. */
	assert_int_equal(cf_store_cert_delete(fx->store, id2, &fx_actor, &err), 0);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, id2, &err), 0);
	assert_int_equal(cert.deleted_at, fx->now);
	cf_store_cert_clear(&cert);
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), 0);
	cf_store_close(other);
	assert_int_equal(fx_verify_ok(fx), 9);
}

/* One connection record for the cases below (at: FX_T0 + i). */
static void
record_one(cf_store *store, int64_t i)
{
	cf_store_connection c = { 0, FX_T0 + i, NULL, "dev-1", "192.0.2.7:50123", "accepted" };
	cf_err err = CF_ERR_INIT;

	if (cf_store_connections_record(store, &c, 1, 0, &err) != 0)
		fail_msg("connections_record: %s", err.msg);
}

/* The schema version in the file, read with a connection of our own. */
static int
raw_schema_version(struct fixture *fx)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version;

	assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_migrations", -1,
					    &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return version;
}

/*
 * The broker's open: read-write, but never creating a file or migrating a
 * schema, and refusing what cf_store_open_readonly() refuses.
 */
static void
test_store_sqlite__open_existing(void **state)
{
	struct fixture *fx = *state;
	cf_store *w = NULL;
	char path[600], uri[620];
	struct stat sb;
	int version = 0, fd;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	/* A missing file is refused and not created. */
	snprintf(path, sizeof(path), "%s/garbage.db", fx->dir);
	snprintf(uri, sizeof(uri), "sqlite:%s", path);
	assert_int_equal(cf_store_open_existing(&w, uri, &err), CF_ESTORE);
	assert_null(w);
	assert_non_null(strstr(err.msg, "cannot open"));
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(errno, ENOENT);
	/* An empty file is at schema 0, refused, and left empty (not made a WAL database). */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cf_store_open_existing(&w, uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 0"));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);

	/* The registry itself: writable, at the version it already has. */
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), 0);
	assert_int_equal(cf_store_schema_version(w, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	record_one(w, 0);
	assert_int_equal(cf_store_thing_insert(w, "a", NULL, &fx_actor, &err), 0);
	cf_store_close(w);
	w = NULL;
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);
	assert_int_equal(fx_verify_ok(fx), 1);

	/* Older (schema 4: no connections or audit tables): refused, and not migrated. */
	cf_store_close(fx->store);
	fx->store = NULL;
	raw_exec(fx, DROP_AUDIT_TABLES "DROP TABLE connections; "
		     "DELETE FROM schema_migrations WHERE version >= 5");
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), CF_ESTORE);
	assert_null(w);
	assert_non_null(strstr(err.msg, "schema version 4"));
	assert_int_equal(raw_schema_version(fx), 4);
	/* Newer: refused too. */
	raw_exec(fx, "INSERT INTO schema_migrations VALUES (99, 0)");
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 99"));
	assert_int_equal(raw_schema_version(fx), 99);
}

/*
 * Schema 4 -> 5 on a file with data: the connections table is added, the
 * registry and its log are as they were, and the broker's open accepts the
 * result.
 */
static void
test_store_sqlite__schema_4_is_migrated(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	cf_store_thing thing;
	char id[65];
	int version = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	fx_id(id, 2);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_INACTIVE, NULL, &fx_actor,
						  &err),
			 0);
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), 0);
	assert_int_equal(fx_verify_ok(fx), 8);
	cf_store_close(fx->store);
	fx->store = NULL;
	/* What migrations 5 and 6 add, taken away again: a schema-4 file with data. */
	raw_exec(fx, DROP_AUDIT_TABLES "DROP TABLE connections; "
		     "DELETE FROM schema_migrations WHERE version >= 5");
	assert_int_equal(raw_schema_version(fx), 4);
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 4"));
	assert_int_equal(cf_store_open_existing(&other, fx->uri, &err), CF_ESTORE);
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, CF_STORE_SCHEMA_VERSION);
	/* The old data: the log, a thing, a deleted certificate. */
	assert_int_equal(fx_verify_ok(fx), 8);
	assert_int_equal(cf_store_thing_get(fx->store, &thing, "b", &err), 0);
	cf_store_thing_clear(&thing);
	assert_int_equal(fx_status(fx, id), CF_CERT_INACTIVE);
	/* The new table works, from the broker's kind of handle too. */
	assert_int_equal(fx_count_connections(fx->store, NULL), 0);
	assert_int_equal(cf_store_open_existing(&other, fx->uri, &err), 0);
	record_one(other, 1);
	cf_store_close(other);
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);
	assert_int_equal(fx_verify_ok(fx), 8);
}

static int
count_run_cb(const cf_store_audit_run *run, void *payload)
{
	(void)run;
	(*(int *)payload)++;
	return 0;
}

/*
 * Schema 5 -> 6 on a file with data: the audit tables are added, the
 * registry, its log and the connection records are as they were, and an
 * audit runs on the old certificates.
 */
static void
test_store_sqlite__schema_5_is_migrated(void **state)
{
	struct fixture *fx = *state;
	const char *checks[] = { "DEVICE_CERTIFICATE_EXPIRING_CHECK" };
	cf_store_finding f;
	cf_store *other = NULL;
	char id[65], resource[80];
	int64_t run = 0;
	int version = 0, runs = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	seed(fx);
	record_one(fx->store, 1);
	cf_store_close(fx->store);
	fx->store = NULL;
	/* What migration 6 adds, taken away again: a schema-5 file with data. */
	raw_exec(fx, DROP_AUDIT_TABLES "DELETE FROM schema_migrations WHERE version = 6");
	assert_int_equal(raw_schema_version(fx), 5);
	assert_int_equal(cf_store_open_readonly(&other, fx->uri, &err), CF_ESTORE);
	assert_non_null(strstr(err.msg, "schema version 5"));
	assert_int_equal(cf_store_open_existing(&other, fx->uri, &err), CF_ESTORE);
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, 6);
	assert_int_equal(raw_schema_version(fx), 6);
	/* The old data. */
	assert_int_equal(fx_verify_ok(fx), 6);
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);
	fx_id(id, 2);
	assert_int_equal(fx_status(fx, id), CF_CERT_ACTIVE);
	/* The new tables work on it. */
	assert_int_equal(cf_store_audit_run_list(fx->store, 0, count_run_cb, &runs, &err), 0);
	assert_int_equal(runs, 0);
	assert_int_equal(cf_store_audit_run_begin(&run, fx->store, CF_AUDIT_ON_DEMAND, checks, 1,
						  &err),
			 0);
	memset(&f, 0, sizeof(f));
	snprintf(resource, sizeof(resource), "cert:%s", id);
	f.check = checks[0];
	f.resource = resource;
	f.severity = CF_SEVERITY_MEDIUM;
	f.reason = "CERTIFICATE_APPROACHING_EXPIRATION";
	assert_int_equal(cf_store_audit_findings_add(fx->store, run, &f, 1, &err), 0);
	assert_int_equal(cf_store_audit_run_finish(fx->store, run, CF_AUDIT_COMPLETED, NULL, &err),
			 0);
	assert_int_equal(cf_store_audit_suppress(fx->store, checks[0], resource, FX_T0 + 86400,
						 "renewal booked", &fx_actor, &err),
			 0);
	assert_int_equal(cf_store_open_existing(&other, fx->uri, &err), 0);
	cf_store_close(other);
	assert_int_equal(fx_verify_ok(fx), 7);
}

/* Insert certificate n of "int-1" with a real PEM for key (self-signed), labelled key_type. */
static void
add_pem_cert(struct fixture *fx, uint64_t n, EVP_PKEY *key, const char *key_type, int bits,
	     bool key_roca)
{
	struct fx_cert c;
	char *pem = NULL;
	size_t len = 0;
	X509 *x = NULL;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_pki_root_create(&x, key, "device", NULL, 30, NULL), 0);
	assert_int_equal(cf_pki_cert_to_pem(&pem, &len, x, NULL), 0);
	fx_cert_init(&c, n, "int-1", "a", CF_CERT_ACTIVE, 30);
	c.cert.pem = pem;
	c.cert.key_type = (char *)(uintptr_t)key_type;
	c.cert.key_bits = bits;
	c.cert.sig_alg = (char *)(uintptr_t)"sha256WithRSAEncryption";
	c.cert.key_roca = key_roca;
	if (cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0)
		fail_msg("cert_insert: %s", err.msg);
	free(pem);
	X509_free(x);
}

static bool
key_roca_of(struct fixture *fx, uint64_t n)
{
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;
	char id[65];
	bool roca;

	fx_id(id, n);
	if (cf_store_cert_get(fx->store, &cert, id, &err) != 0)
		fail_msg("cert_get: %s", err.msg);
	roca = cert.key_roca;
	cf_store_cert_clear(&cert);
	return roca;
}

/*
 * Migration 6 sets key_roca for the certificates already there from their
 * PEM: an RSA key with the ROCA fingerprint yes; an ordinary RSA key, an
 * EC one, or an RSA row whose PEM cannot be read, no (and the migration
 * goes through).
 */
static void
test_store_sqlite__schema_5_key_roca_backfilled(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *roca = pki_test_roca_key(512, 39), *rsa = NULL;
	struct fx_cert c;
	int version = 0;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	fx_add_ca(fx, "int-1");
	fx_add_thing(fx, "a");
	assert_int_equal(cf_pki_key_generate(&rsa, CF_KEY_RSA_2048, NULL), 0);
	add_pem_cert(fx, 1, roca, "RSA-512", 512, false); /* the flag is what migration 6 adds */
	add_pem_cert(fx, 2, rsa, "RSA-2048", 2048, false);
	add_pem_cert(fx, 3, roca, "RSA-512", 512, true);
	fx_add_cert(fx, 4, "int-1", "a", CF_CERT_ACTIVE, 30); /* placeholder PEM, EC */
	fx_cert_init(&c, 5, "int-1", "a", CF_CERT_ACTIVE, 30); /* RSA, placeholder PEM */
	c.cert.key_type = (char *)(uintptr_t)"RSA-2048";
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 0);
	assert_true(key_roca_of(fx, 3));
	cf_store_close(fx->store);
	fx->store = NULL;
	raw_exec(fx, DROP_AUDIT_TABLES "DELETE FROM schema_migrations WHERE version = 6");
	assert_int_equal(raw_schema_version(fx), 5);
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_int_equal(cf_store_schema_version(fx->store, &version, NULL), 0);
	assert_int_equal(version, 6);
	assert_true(key_roca_of(fx, 1));
	assert_false(key_roca_of(fx, 2));
	assert_true(key_roca_of(fx, 3));
	assert_false(key_roca_of(fx, 4));
	assert_false(key_roca_of(fx, 5));
	fx_verify_ok(fx);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(roca);
}

/* The size of the registry's -wal file, -1 when there is none. */
static long long
wal_size(struct fixture *fx)
{
	char path[600];
	struct stat sb;

	snprintf(path, sizeof(path), "%s-wal", fx->path);
	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/*
 * Commit batches of large records on w until the -wal file passes limit
 * bytes or max commits were made; returns the commits made.
 */
static int
fill_wal(struct fixture *fx, cf_store *w, long long limit, int max)
{
	static cf_store_connection recs[100];
	static char text[CF_STORE_CONNECTION_TEXT_MAX + 1];
	cf_err err = CF_ERR_INIT;
	size_t i;
	int n;

	memset(text, 'x', sizeof(text) - 1);
	for (i = 0; i < CF_ARRAY_LEN(recs); i++) {
		cf_store_connection c = { 0, FX_T0, NULL, text, text, "accepted" };

		recs[i] = c;
	}
	for (n = 0; n < max && wal_size(fx) <= limit; n++) {
		if (cf_store_connections_record(w, recs, CF_ARRAY_LEN(recs), 0, &err) != 0)
			fail_msg("connections_record: %s", err.msg);
	}
	return n;
}

/*
 * With automatic checkpoints off, commits leave the write-ahead log to
 * others however long it grows; with a size of 1,000 pages (what the broker
 * plugin sets) a commit copies it back at that size and the log starts
 * over, so its file stops growing. Either way, the close of the last handle
 * checkpoints and removes the log.
 */
static void
test_store_sqlite__autocheckpoint(void **state)
{
	/* 1,000 frames of a 4 KiB page and its 24-byte header, and some slack. */
	const long long limit = 1100LL * (4096 + 24);
	struct fixture *fx = *state;
	cf_store *w = NULL;
	cf_err err = CF_ERR_INIT;
	int commits;

	fx_require_sqlite(fx);
	cf_store_close(fx->store); /* w is the only connection: its close is the last */
	fx->store = NULL;
	assert_int_equal(wal_size(fx), -1);
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), 0);
	assert_int_equal(cf_store_set_autocheckpoint(w, 0, &err), 0);
	commits = fill_wal(fx, w, limit, 2000);
	if (wal_size(fx) <= limit)
		fail_msg("the WAL stayed at %lld bytes after %d commits", wal_size(fx), commits);
	cf_store_close(w);
	w = NULL;
	assert_int_equal(wal_size(fx), -1);

	/* 1,000 pages: the same commits never grow the log that far. */
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), 0);
	assert_int_equal(cf_store_set_autocheckpoint(w, 1000, &err), 0);
	assert_int_equal(fill_wal(fx, w, limit, commits + 20), commits + 20);
	assert_int_equal(cf_store_set_autocheckpoint(w, -1, &err), CF_EINVAL);
	cf_store_close(w);
	assert_int_equal(wal_size(fx), -1);
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 100LL * (2 * commits + 20));
}

/*
 * A registry file renamed over under an open handle: SQLite leaves the old
 * write-ahead log beside the new file at close, where it would be replayed
 * into it; cf_store_checkpoint() first empties it through the old file, and
 * the new file opens intact.
 */
static void
test_store_sqlite__checkpoint_before_replacement(void **state)
{
	struct fixture *fx = *state;
	char path[600], other[620], other_uri[640];
	cf_store *w = NULL, *ro = NULL, *fresh = NULL;
	cf_store_thing thing;
	cf_err err = CF_ERR_INIT;

	fx_require_sqlite(fx);
	memset(&thing, 0, sizeof(thing));
	snprintf(path, sizeof(path), "%s", fx->uri + strlen("sqlite:"));
	snprintf(other, sizeof(other), "%s.new", path);
	snprintf(other_uri, sizeof(other_uri), "sqlite:%s", other);
	cf_store_close(fx->store);
	fx->store = NULL;
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), 0);
	assert_int_equal(cf_store_set_autocheckpoint(w, 0, &err), 0);
	fill_wal(fx, w, 200LL * 4096, 200);
	assert_true(wal_size(fx) > 0);
	assert_int_equal(cf_store_open_readonly(&ro, fx->uri, &err), 0);
	assert_int_equal(cf_store_checkpoint(ro, &err), CF_ESTATE);
	cf_store_close(ro);

	/* The replacement: another registry, with a thing of its own, renamed over the path. */
	assert_int_equal(cf_store_open(&fresh, other_uri, &err), 0);
	assert_int_equal(cf_store_thing_insert(fresh, "only-in-new", NULL, &fx_actor, &err), 0);
	cf_store_close(fresh);
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(cf_store_checkpoint(w, &err), 0);
	assert_true(wal_size(fx) <= 0);
	cf_store_close(w);

	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 0);
	assert_int_equal(cf_store_thing_get(fx->store, &thing, "only-in-new", &err), 0);
	cf_store_thing_clear(&thing);
}

/* A deleted_at set or cleared by hand is caught by the replay of cert.deleted. */
static void
test_store_sqlite__edited_deleted_at_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[256];
	int64_t deleted;

	fx_require_sqlite(fx);
	seed(fx);
	fx_id(id, 2);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_INACTIVE, NULL, &fx_actor,
						  NULL),
			 0);
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, NULL), 0);
	deleted = fx_count_events(fx, NULL);
	fx_add_thing(fx, "c");
	assert_int_equal(fx_verify_ok(fx), deleted + 1);
	/* Edited away: the certificate would be listed again. */
	snprintf(sql, sizeof(sql), "UPDATE certs SET deleted_at = 0 WHERE id = '%s'", id);
	raw_exec(fx, sql);
	expect_bad_msg(fx, NULL, deleted, "is not deleted in the registry");
	/* Put back, then a certificate no event deleted is marked deleted. */
	snprintf(sql, sizeof(sql), "UPDATE certs SET deleted_at = %lld WHERE id = '%s'",
		 (long long)fx->now, id);
	raw_exec(fx, sql);
	assert_int_equal(fx_verify_ok(fx), deleted + 1);
	fx_id(id, 1);
	snprintf(sql, sizeof(sql), "UPDATE certs SET deleted_at = 1 WHERE id = '%s'", id);
	raw_exec(fx, sql);
	expect_bad_msg(fx, NULL, 4, "never deleted it");
}

/* Policy attachments and change_seq: the rows the broker enforces, replayed from the events. */

static const char policy_doc[] =
	"{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"
	"\"resources\":[\"management/topic/${clientid}/#\"]}]}";

static void
add_policy(struct fixture *fx, const char *name)
{
	cf_err err = CF_ERR_INIT;

	if (cf_store_policy_insert(fx->store, name, policy_doc, &fx_actor, &err) != 0)
		fail_msg("policy_insert %s: %s", name, err.msg);
}

/* Insert certificate n for thing "a" with policies, and return its issuing event's seq. */
static int64_t
add_cert_with(struct fixture *fx, uint64_t n, const char *const *policies, size_t npolicies)
{
	struct fx_cert c;
	cf_err err = CF_ERR_INIT;

	fx_cert_init(&c, n, "int-1", "a", CF_CERT_ACTIVE, 30);
	if (cf_store_cert_insert(fx->store, &c.cert, policies, npolicies, false, &fx_actor,
				 &err) != 0)
		fail_msg("cert_insert %llu: %s", (unsigned long long)n, err.msg);
	return fx_count_events(fx, NULL);
}

static void
test_store_sqlite__inserted_policy_link_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[256];

	fx_require_sqlite(fx);
	seed(fx);
	add_policy(fx, "open-all"); /* event 7 */
	assert_int_equal(fx_verify_ok(fx), 7);
	/* Certificate 1 was issued by event 4 without policies; someone attaches one by hand. */
	fx_id(id, 1);
	snprintf(sql, sizeof(sql), "INSERT INTO cert_policies VALUES ('%s', 'open-all')", id);
	raw_tamper(fx, sql);
	expect_bad_msg(fx, NULL, 4, "policy 'open-all' is attached to certificate");
	expect_bad_msg(fx, NULL, 4, id);
}

static void
test_store_sqlite__deleted_policy_link_detected(void **state)
{
	struct fixture *fx = *state;
	const char *pols[] = { "deny-x", "base" };
	char id[65], sql[256];
	int64_t issued;

	fx_require_sqlite(fx);
	seed(fx);
	add_policy(fx, "base");
	add_policy(fx, "deny-x");
	issued = add_cert_with(fx, 4, pols, 2);
	fx_add_thing(fx, "c"); /* a later event about something else */
	assert_int_equal(fx_verify_ok(fx), issued + 1);
	fx_id(id, 4);
	snprintf(sql, sizeof(sql),
		 "DELETE FROM cert_policies WHERE cert_id = '%s' AND policy = 'deny-x'", id);
	raw_tamper(fx, sql);
	expect_bad_msg(fx, NULL, issued, "policy 'deny-x' is attached to certificate");
	expect_bad_msg(fx, NULL, issued, id);
	/* Both rows gone: the certificate has no attachment row at all. */
	snprintf(sql, sizeof(sql), "DELETE FROM cert_policies WHERE cert_id = '%s'", id);
	raw_exec(fx, sql); /* the guards are gone already */
	expect_bad_msg(fx, NULL, issued, "but not in the registry");
}

static void
test_store_sqlite__changed_change_seq_detected(void **state)
{
	struct fixture *fx = *state;
	char id[65], sql[256];

	fx_require_sqlite(fx);
	seed(fx);
	/* Certificate 2 was issued by event 5; a change feed reader would miss a lower one. */
	fx_id(id, 2);
	snprintf(sql, sizeof(sql), "UPDATE certs SET change_seq = 1 WHERE id = '%s'", id);
	raw_tamper(fx, sql);
	expect_bad_msg(fx, NULL, 5, "change_seq 1");
	expect_bad_msg(fx, NULL, 5, id);
}

static void
test_store_sqlite__policy_history_verifies(void **state)
{
	struct fixture *fx = *state;
	const char *both[] = { "p2", "p1" }, *one[] = { "p1" };
	char id1[65], id4[65], sql[256];
	int64_t n, detached;
	uint64_t i;

	fx_require_sqlite(fx);
	seed(fx);
	add_policy(fx, "p1");
	add_policy(fx, "p2");
	add_policy(fx, "p3");
	/* Many certificates sharing one set, and one with two policies. */
	for (i = 10; i < 40; i++)
		add_cert_with(fx, i, one, 1);
	add_cert_with(fx, 4, both, 2);
	fx_id(id1, 1);
	fx_id(id4, 4);
	assert_int_equal(cf_store_policy_attach(fx->store, "p3", id1, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_attach(fx->store, "p1", id1, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_detach(fx->store, "p1", id4, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_attach(fx->store, "p3", id4, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_attach(fx->store, "p1", id4, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_detach(fx->store, "p3", id1, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_detach(fx->store, "p1", id1, &fx_actor, NULL), 0);
	detached = fx_count_events(fx, NULL);
	/* Events after the last change of certificate 1 that do not change it. */
	fx_add_thing(fx, "c");
	assert_int_equal(cf_store_cert_transition(fx->store, id4, CF_CERT_REVOKED, "superseded",
						  &fx_actor, NULL),
			 0);
	n = fx_count_events(fx, NULL);
	assert_int_equal(fx_verify_ok(fx), n);

	/* The replay followed every step: re-attaching the detached policy by hand shows. */
	snprintf(sql, sizeof(sql), "INSERT INTO cert_policies VALUES ('%s', 'p3')", id1);
	raw_tamper(fx, sql);
	expect_bad_msg(fx, NULL, detached, "policy 'p3' is attached to certificate");
}

/*
 * cf_store_events_verify_chain() over a tampered file. chain_seed(): the
 * six events of seed(), the head at event 6 kept as the anchor, then three
 * more events (things c, d, e: 7 to 9).
 */
static void
chain_seed(struct fixture *fx, cf_store_event_anchor *anchor)
{
	cf_err err = CF_ERR_INIT;

	seed(fx);
	assert_int_equal(cf_store_events_head(fx->store, &anchor->seq, anchor->hash, &err), 0);
	assert_int_equal(anchor->seq, 6);
	fx_add_thing(fx, "c");
	fx_add_thing(fx, "d");
	fx_add_thing(fx, "e");
}

static int64_t
chain_count(struct fixture *fx, const cf_store_event_anchor *anchor)
{
	int64_t count = -1, bad = -1;
	cf_err err = CF_ERR_INIT;

	if (cf_store_events_verify_chain(fx->store, anchor, 0, NULL, &count, &bad, &err) != 0)
		fail_msg("verify_chain: %s (bad seq %lld)", err.msg, (long long)bad);
	return count;
}

static void
expect_chain_bad(struct fixture *fx, const cf_store_event_anchor *anchor, int64_t want_bad,
		 const char *want_msg)
{
	cf_store_event_anchor head;
	int64_t count = 0, bad = -1;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_events_verify_chain(fx->store, anchor, 0, &head, &count, &bad, &err),
			 CF_EINTEGRITY);
	if (strstr(err.msg, want_msg) == NULL)
		fail_msg("verify_chain: '%s', want '%s'", err.msg, want_msg);
	assert_int_equal(bad, want_bad);
	assert_int_equal(head.seq, 0);
}

/* An event after the anchor altered: the walk from the anchor stops at it. */
static void
test_store_sqlite__chain_after_anchor_altered(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	assert_int_equal(chain_count(fx, &anchor), 4);
	raw_tamper(fx, "UPDATE events SET detail = '{}' WHERE seq = 8");
	expect_chain_bad(fx, &anchor, 8, "event 8 was altered");
	expect_chain_bad(fx, NULL, 8, "event 8 was altered");
}

/* The anchor's own event altered in place: its hash no longer holds. */
static void
test_store_sqlite__chain_anchor_event_altered(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	raw_tamper(fx, "UPDATE events SET actor = 'someone-else' WHERE seq = 6");
	expect_chain_bad(fx, &anchor, 6, "event 6 was altered");
}

/*
 * An event before the anchor altered: the walk from the anchor does not
 * see it, by design, since it reads nothing older than the anchor's event
 * (whose hash vouched for the past when it was verified). Only a walk of
 * the whole chain, without an anchor, finds it.
 */
static void
test_store_sqlite__chain_before_anchor_needs_whole_walk(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	raw_tamper(fx, "UPDATE events SET actor = 'someone-else' WHERE seq = 2");
	assert_int_equal(chain_count(fx, &anchor), 4);
	expect_chain_bad(fx, NULL, 2, "event 2 was altered");
	expect_bad(fx, 2);
}

/* The newest events cut off and the head rolled back: consistent, but short of the anchor. */
static void
test_store_sqlite__chain_truncated_below_anchor(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	raw_tamper(fx, "DELETE FROM events WHERE seq > 4; "
		       "UPDATE event_head SET seq = 4, "
		       "hash = (SELECT hash FROM events WHERE seq = 4)");
	assert_int_equal(chain_count(fx, NULL), 4); /* the rest agrees with itself */
	expect_chain_bad(fx, &anchor, 6, "before the anchor");
}

/* Cut back before the anchor and written again: a new event 6 that is not the anchor's. */
static void
test_store_sqlite__chain_rewritten_from_anchor(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	raw_tamper(fx, "DELETE FROM events WHERE seq > 5; "
		       "UPDATE event_head SET seq = 5, "
		       "hash = (SELECT hash FROM events WHERE seq = 5)");
	fx_add_thing(fx, "f"); /* event 6 again, another one */
	fx_add_thing(fx, "g");
	assert_int_equal(chain_count(fx, NULL), 7);
	expect_chain_bad(fx, &anchor, 6, "differs from the anchor");
}

/* The anchor's event gone from the middle of the log: the log no longer holds the anchor. */
static void
test_store_sqlite__chain_anchor_event_deleted(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	raw_tamper(fx, "DELETE FROM events WHERE seq = 6");
	expect_chain_bad(fx, &anchor, 6, "no longer holds event 6");
	expect_chain_bad(fx, NULL, 6, "event 6 is missing");
}

/* The head row edited, or events left past it: the walk from an anchor checks the head too. */
static void
test_store_sqlite__chain_head_row_checked(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor anchor;

	fx_require_sqlite(fx);
	chain_seed(fx, &anchor);
	raw_tamper(fx, "UPDATE event_head SET seq = 8, "
		       "hash = (SELECT hash FROM events WHERE seq = 8)");
	expect_chain_bad(fx, &anchor, 0, "does not match the last event");
	raw_exec(fx, "UPDATE event_head SET seq = 9, hash = '22222222222222222222222222222222"
		     "22222222222222222222222222222222'"); /* the guards are gone already */
	expect_chain_bad(fx, &anchor, 0, "does not match the last event");
}

int
test_sqlite_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_sqlite__edited_detail_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__edited_actor_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__rehashed_row_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__deleted_middle_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__deleted_last_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__edited_head_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__two_processes_insert,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__readonly_refuses_writes,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_version, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__garbage_file, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__uri_forms, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__pragmas, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__reactivated_row_detected, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__status_of_untouched_row_detected, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__row_without_event_detected, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__deleted_row_detected, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_sqlite__truncated_with_head_detected_by_anchor, fx_setup,
			fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__chain_after_anchor_altered,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__chain_anchor_event_altered,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_store_sqlite__chain_before_anchor_needs_whole_walk, fx_setup,
			fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__chain_truncated_below_anchor,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__chain_rewritten_from_anchor,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__chain_anchor_event_deleted,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__chain_head_row_checked,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__log_is_append_only, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_1_is_migrated, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_2_is_migrated, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_3_is_migrated, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__edited_deleted_at_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__open_existing, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_4_is_migrated, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_5_is_migrated, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__schema_5_key_roca_backfilled,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__checkpoint_before_replacement,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__autocheckpoint, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__inserted_policy_link_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__deleted_policy_link_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__changed_change_seq_detected,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_sqlite__policy_history_verifies,
						fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
}
