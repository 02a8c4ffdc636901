/*
 * sqlite.c: the SQLite backend of the registry ("sqlite:PATH").
 *
 * How it works:
 * - One connection per handle, in WAL mode with synchronous=NORMAL: readers
 *   (the broker plugin) never block the writer, and a commit costs a write
 *   to the WAL, not an fsync. A crash may lose the last commits but never
 *   corrupts the file.
 * - Writes run in BEGIN IMMEDIATE transactions: the write lock is taken at
 *   the start, so two processes writing the same file wait for each other
 *   (busy_timeout, 5 s unless cf_store_set_busy_timeout() says otherwise)
 *   instead of failing half-way with SQLITE_BUSY on upgrade from a read
 *   lock. A lock still held after the timeout is CF_EBUSY, before anything
 *   was written.
 * - A caller may group operations with cf_store_tx_begin() / _commit():
 *   each operation then runs in a savepoint of the caller's transaction
 *   instead of its own (see "transactions" below).
 * - Every statement is prepared once per handle, on first use, and reset
 *   after each use (a statement left un-reset would pin a read snapshot).
 *   List statements may be re-entered from their own callback, in which case
 *   a temporary statement is prepared for the inner call.
 * - Every change appends its event in the same transaction: event_append()
 *   reads the chain head (one row, event_head), inserts the event and moves
 *   the head, so deleting the last event is detected as well as any other
 *   (unless the head is rolled back too: only an anchor kept outside the
 *   file shows that). Since schema 2, triggers refuse UPDATE and DELETE on
 *   the log and any head move but seq + 1.
 * - certs.change_seq is the seq of the event that last changed the row, so
 *   the change feed needs no counter of its own and follows commit order.
 * - The broker's connection records (schema 5) and the audits' runs and
 *   findings (schema 6) are written without events: a bounded, pruned
 *   history, and the audits' own record, not part of the log. Creating and
 *   removing an audit suppression is an operator action and has its event.
 * - The schema moves forward by numbered migrations, each in its own
 *   transaction and recorded in schema_migrations.
 */
#include "store_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "pki/pki.h"

#define BUSY_TIMEOUT_MS 5000
/* WAL pages between automatic checkpoints; see configure(). */
#define CHECKPOINT_PAGES 10000

/* ---- schema -------------------------------------------------------------- */

/*
 * Migration 1. Notes on choices:
 * - every index is one more page written per issuance, and an index on a
 *   random key (a hash, a serial) touches a different page each time: there
 *   is none on certs.spki_sha256 or events.resource, which only audits and
 *   operator queries read, by scanning (measured: the two cost ~30 us of a
 *   ~180 us issuance);
 * - statuses are stored as their names, readable with the sqlite3 shell;
 * - cas.parent is not a foreign key: an external CA's issuer need not be
 *   registered here;
 * - certs.thing is not a foreign key: a deleted thing's certificates keep
 *   its name for history (cf_store_thing_delete());
 * - event_head holds the last seq and hash, updated with every append.
 */
static const char migration_1[] =
	"CREATE TABLE cas ("
	" name TEXT PRIMARY KEY,"
	" status TEXT NOT NULL CHECK (status IN ('ACTIVE','RETIRED','REVOKED','PENDING')),"
	" is_default INTEGER NOT NULL DEFAULT 0,"
	" is_root INTEGER NOT NULL DEFAULT 0,"
	" external INTEGER NOT NULL DEFAULT 0,"
	" parent TEXT,"
	" cert_id TEXT UNIQUE,"
	" subject TEXT,"
	" cert_pem TEXT,"
	" key_ref TEXT,"
	" key_type TEXT,"
	" not_before INTEGER NOT NULL DEFAULT 0,"
	" not_after INTEGER NOT NULL DEFAULT 0,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" revoke_reason TEXT);"
	/* At most one default issuer, enforced by the database itself. */
	"CREATE UNIQUE INDEX cas_one_default ON cas(is_default) WHERE is_default = 1;"
	"CREATE TABLE things ("
	" name TEXT PRIMARY KEY,"
	" attributes TEXT NOT NULL DEFAULT '{}',"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE certs ("
	" id TEXT PRIMARY KEY,"
	" serial TEXT NOT NULL,"
	" ca TEXT NOT NULL REFERENCES cas(name),"
	" thing TEXT,"
	" status TEXT NOT NULL CHECK (status IN"
	"  ('PENDING_ACTIVATION','ACTIVE','INACTIVE','REVOKED')),"
	" not_before INTEGER NOT NULL,"
	" not_after INTEGER NOT NULL,"
	" key_type TEXT NOT NULL,"
	" key_bits INTEGER NOT NULL,"
	" sig_alg TEXT NOT NULL,"
	" spki_sha256 TEXT NOT NULL,"
	" pem TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" revoke_reason TEXT,"
	" revoked_at INTEGER NOT NULL DEFAULT 0,"
	" change_seq INTEGER NOT NULL,"
	" UNIQUE (ca, serial));"
	"CREATE INDEX certs_thing ON certs(thing);"
	"CREATE INDEX certs_status_not_after ON certs(status, not_after);"
	"CREATE INDEX certs_change_seq ON certs(change_seq);"
	"CREATE TABLE policies ("
	" name TEXT PRIMARY KEY,"
	" document TEXT NOT NULL,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE cert_policies ("
	" cert_id TEXT NOT NULL REFERENCES certs(id),"
	" policy TEXT NOT NULL REFERENCES policies(name),"
	" PRIMARY KEY (cert_id, policy)) WITHOUT ROWID;"
	/*
	 * No index on cert_policies(policy): nothing deletes a policy yet, and
	 * each index is one more page written per issuance.
	 */
	"CREATE TABLE regcodes ("
	" digest TEXT PRIMARY KEY,"
	" created_at INTEGER NOT NULL,"
	" expires_at INTEGER NOT NULL,"
	" used_at INTEGER NOT NULL DEFAULT 0,"
	" used_by TEXT);"
	"CREATE TABLE events ("
	" seq INTEGER PRIMARY KEY,"
	" time INTEGER NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" resource TEXT NOT NULL,"
	" detail TEXT NOT NULL,"
	" prev_hash TEXT NOT NULL,"
	" hash TEXT NOT NULL);"
	"CREATE TABLE event_head ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" seq INTEGER NOT NULL,"
	" hash TEXT NOT NULL);"
	"INSERT INTO event_head (id, seq, hash) VALUES (1, 0, '" CF_STORE_GENESIS_HASH "');";

/*
 * Migration 2: the database itself refuses to edit the log. Events are
 * only ever inserted, the head row only moves to the next seq. Triggers on
 * UPDATE and DELETE cost nothing on the insert path; the head's fires once
 * per event and compares two integers. This stops a mistaken UPDATE from
 * the sqlite3 shell, not an attacker, who can DROP TRIGGER: the chain and
 * an anchor kept elsewhere catch that (cf_store_events_verify()). Not
 * covered: INSERT OR REPLACE on an existing seq deletes without firing
 * DELETE triggers (recursive_triggers is off); the chain still catches it.
 */
#define APPEND_ONLY "SELECT RAISE(ABORT, 'the event log is append-only'); "
static const char migration_2[] =
	"CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
	"BEGIN " APPEND_ONLY "END;"
	"CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
	"BEGIN " APPEND_ONLY "END;"
	"CREATE TRIGGER event_head_no_delete BEFORE DELETE ON event_head "
	"BEGIN " APPEND_ONLY "END;"
	"CREATE TRIGGER event_head_forward_only BEFORE UPDATE ON event_head "
	"WHEN NEW.seq IS NOT OLD.seq + 1 OR NEW.id IS NOT OLD.id "
	"BEGIN " APPEND_ONLY "END;";
#undef APPEND_ONLY

/*
 * Migration 3: rotations and the outbox. Notes on choices:
 * - rotations.thing and the certificate columns are not foreign keys, for
 *   the reason certs.thing is not: history outlives a deleted thing. The
 *   store checks them on insert and update instead;
 * - a partial unique index makes "one open rotation per thing" a rule of
 *   the database, not of the code that happens to check first;
 * - the timer scans (due re-sends, passed deadlines) read the two
 *   (state, time) indexes; a thing's history reads rotations_thing;
 * - outbox ids use AUTOINCREMENT: never reused, even after the newest
 *   message is deleted, so a publisher can never confuse a new message with
 *   one it has already sent and deleted.
 */
static const char migration_3[] =
	"CREATE TABLE rotations ("
	" id TEXT PRIMARY KEY,"
	" thing TEXT NOT NULL,"
	" old_cert TEXT NOT NULL,"
	" new_cert TEXT,"
	" csr_spki TEXT,"
	" state TEXT NOT NULL CHECK (state IN"
	"  ('REQUESTED','ISSUED','COMPLETED','FAILED','TIMED_OUT','CANCELLED')),"
	" rekey INTEGER NOT NULL,"
	" key_type TEXT,"
	" error TEXT,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" deadline INTEGER NOT NULL,"
	" next_send_at INTEGER NOT NULL,"
	" sends INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX rotations_one_open ON rotations(thing) "
	"WHERE state IN ('REQUESTED','ISSUED');"
	"CREATE INDEX rotations_thing ON rotations(thing, created_at);"
	"CREATE INDEX rotations_due ON rotations(state, next_send_at);"
	"CREATE INDEX rotations_deadline ON rotations(state, deadline);"
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" payload TEXT NOT NULL,"
	" created_at INTEGER NOT NULL);";

/*
 * Migration 4: the soft delete of certificates and the grace period of a
 * rotation. Notes on choices:
 * - certs.deleted_at (0: not deleted) rather than moving rows to another
 *   table: the row keeps its id, policies and change_seq, which the events
 *   verify replays and the broker's change feed reads;
 * - rotations.delete_old_at is when a COMPLETED rotation's old certificate
 *   is due for deletion; the partial index holds only the pending ones, so
 *   the timer scan and the settling of a deleted certificate stay small
 *   however many rotations have completed;
 * - outbox_topic lets a re-send see that the previous copy of a message
 *   is still unpublished (certfleetd away from the broker), so that the
 *   outbox holds one copy per rotation, not one per timer period.
 */
static const char migration_4[] =
	"ALTER TABLE certs ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE rotations ADD COLUMN delete_old_at INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX rotations_delete_old ON rotations(delete_old_at) "
	"WHERE delete_old_at > 0;"
	"CREATE INDEX outbox_topic ON outbox(topic);";

/*
 * Migration 5: the broker's record of MQTT connections. Notes on choices:
 * - not part of the event log: no events, no hash chain, no guards; the
 *   writer prunes it to its newest rows, so it stays bounded;
 * - id is the rowid, without AUTOINCREMENT (one write less per insert):
 *   pruning deletes from the oldest end and keeps at least the newest row,
 *   so a new row always gets MAX(id) + 1 and ids only grow, and "the newest
 *   N" is the range id > MAX(id) - N, without counting rows;
 * - the two indexes answer the audits' questions, which client ids used
 *   this certificate since T, and which certificates this client id used
 *   since T; the address and the outcome are read, not searched.
 */
static const char migration_5[] =
	"CREATE TABLE connections ("
	" id INTEGER PRIMARY KEY,"
	" at INTEGER NOT NULL,"
	" cert_id TEXT,"
	" client_id TEXT NOT NULL,"
	" address TEXT NOT NULL,"
	" outcome TEXT NOT NULL);"
	"CREATE INDEX connections_cert ON connections(cert_id, at);"
	"CREATE INDEX connections_client ON connections(client_id, at);";

/*
 * Migration 6: the audits' runs, findings and suppressions. Notes on choices:
 * - not part of the event log, like connections: a run writes up to a
 *   finding per certificate, and those rows are the audit's output, not a
 *   change of the registry; suppressions have events (see
 *   cf_store_audit_suppress()), their table is the current state;
 * - audit_findings is WITHOUT ROWID with the key (run_id, finding_id): the
 *   lookup of a finding in the previous run, done once per finding written,
 *   is one search of the table itself, and the row is stored once;
 * - audit_findings_history (finding_id, run_id) answers "this finding over
 *   the runs"; audit_findings_run (run_id, check_name, severity) answers a
 *   run's findings by check and severity, and the resolution at the end of
 *   a run (the previous run's findings of one check);
 * - audit_runs_status finds the latest COMPLETED run (with the rowid it
 *   holds, newest first without a sort); runs.checks is a JSON array read
 *   with json_each(), fine for the few runs a day there are;
 * - CHECKs keep the enumerations honest for the sqlite3 shell too; those of
 *   audit_findings are written with OR, not IN: SQLite 3.40 builds a
 *   temporary table for an IN list in a CHECK on every row inserted, which
 *   measured as half the cost of writing a finding.
 */
static const char migration_6[] =
	"ALTER TABLE certs ADD COLUMN key_roca INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE audit_runs ("
	" id INTEGER PRIMARY KEY,"
	" started_at INTEGER NOT NULL,"
	" finished_at INTEGER NOT NULL DEFAULT 0,"
	" \"trigger\" TEXT NOT NULL CHECK (\"trigger\" IN ('SCHEDULED', 'ON_DEMAND')),"
	" checks TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK (status IN ('IN_PROGRESS', 'COMPLETED', 'FAILED')),"
	" summary TEXT NOT NULL DEFAULT '{}');"
	"CREATE INDEX audit_runs_status ON audit_runs(status);"
	"CREATE TABLE audit_findings ("
	" run_id INTEGER NOT NULL REFERENCES audit_runs(id),"
	" finding_id TEXT NOT NULL,"
	" check_name TEXT NOT NULL,"
	" resource TEXT NOT NULL,"
	" severity TEXT NOT NULL CHECK (severity = 'CRITICAL' OR severity = 'HIGH'"
	" OR severity = 'MEDIUM' OR severity = 'LOW'),"
	" reason TEXT NOT NULL,"
	" detail TEXT NOT NULL DEFAULT '{}',"
	" state TEXT NOT NULL CHECK (state = 'NEW' OR state = 'OPEN' OR state = 'RESOLVED'),"
	" suppressed INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (run_id, finding_id)) WITHOUT ROWID;"
	"CREATE INDEX audit_findings_history ON audit_findings(finding_id, run_id);"
	"CREATE INDEX audit_findings_run ON audit_findings(run_id, check_name, severity);"
	"CREATE TABLE audit_suppressions ("
	" check_name TEXT NOT NULL,"
	" resource TEXT NOT NULL,"
	" expires_at INTEGER NOT NULL,"
	" reason TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" created_by TEXT NOT NULL,"
	" PRIMARY KEY (check_name, resource)) WITHOUT ROWID;";

/* migrations[i] brings the schema from version i to i + 1. Never edit one that shipped. */
static const char *const migrations[] = { migration_1, migration_2, migration_3, migration_4,
					  migration_5, migration_6 };

/* ---- statements ---------------------------------------------------------- */

#define CA_COLS                                                                                  \
	"name, status, is_default, is_root, external, parent, cert_id, subject, cert_pem, "      \
	"key_ref, key_type, not_before, not_after, created_at, updated_at, revoke_reason"
#define CERT_COLS                                                                                \
	"id, serial, ca, thing, status, not_before, not_after, key_type, key_bits, sig_alg, "    \
	"spki_sha256, pem, created_at, updated_at, revoke_reason, revoked_at, change_seq, "      \
	"deleted_at, key_roca"
#define EVENT_COLS "seq, time, actor, action, resource, detail, prev_hash, hash"
#define ROT_COLS                                                                                 \
	"id, thing, old_cert, new_cert, csr_spki, state, rekey, key_type, error, created_at, "   \
	"updated_at, deadline, next_send_at, sends, delete_old_at"
#define OPEN_STATES "('REQUESTED','ISSUED')"
#define CONN_COLS   "id, at, cert_id, client_id, address, outcome"
/* cf_store_cert_facts, from certs as c. */
#define FACTS_COLS                                                                               \
	"c.id, c.ca, c.thing, c.status, c.not_before, c.not_after, c.key_type, c.key_bits, "     \
	"c.sig_alg, c.spki_sha256, c.created_at, c.deleted_at, c.key_roca"
#define RUN_COLS    "id, started_at, finished_at, \"trigger\", checks, status, summary"
#define FINDING_COLS                                                                             \
	"run_id, finding_id, check_name, resource, severity, reason, detail, state, suppressed"
#define SUP_COLS "check_name, resource, expires_at, reason, created_at, created_by"
/* The latest COMPLETED run before run ?1 that ran check ?2. */
#define PREV_RUN                                                                                 \
	"SELECT r.id FROM audit_runs r WHERE r.status = 'COMPLETED' AND r.id < ?1 "               \
	"AND EXISTS (SELECT 1 FROM json_each(r.checks) j WHERE j.value = ?2) "                    \
	"ORDER BY r.id DESC LIMIT 1"

enum stmt_id {
	ST_BEGIN_WRITE,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_SAVEPOINT,
	ST_ROLLBACK_TO,
	ST_RELEASE,
	ST_ROLLBACK,
	ST_SCHEMA_VERSION,
	ST_HEAD_GET,
	ST_HEAD_SET,
	ST_EVENT_INSERT,
	ST_CA_INSERT,
	ST_CA_BY_NAME,
	ST_CA_BY_CERT,
	ST_CA_DEFAULT,
	ST_CA_STATE,
	ST_CA_ACTIVATE,
	ST_CA_CLEAR_DEFAULT,
	ST_CA_SET_DEFAULT,
	ST_CA_SET_STATUS,
	ST_REGCODE_INSERT,
	ST_REGCODE_USE,
	ST_THING_INSERT,
	ST_THING_GET,
	ST_THING_EXISTS,
	ST_THING_LIVE_CERTS,
	ST_THING_DELETE,
	ST_CERT_INSERT,
	ST_CERT_GET,
	ST_CERT_BY_SERIAL,
	ST_CERT_PREFIX,
	ST_CERT_STATE,
	ST_CERT_SET_STATUS,
	ST_CERT_TOUCH,
	ST_CERT_DELETE,
	ST_POLICY_INSERT,
	ST_POLICY_GET,
	ST_POLICY_EXISTS,
	ST_ATTACH,
	ST_DETACH,
	ST_EVENTS_ALL,
	ST_EVENTS_FROM,
	ST_CERTS_ALL,
	ST_LINKS_ALL,
	ST_ROT_INSERT,
	ST_ROT_GET,
	ST_ROT_OPEN,
	ST_ROT_STATE,
	ST_ROT_UPDATE,
	ST_ROT_PREFIX,
	ST_ROT_SETTLE,
	ST_CERT_EXISTS,
	ST_OUTBOX_ADD,
	ST_OUTBOX_DELETE,
	ST_OUTBOX_PENDING,
	ST_CONN_INSERT,
	ST_CONN_PRUNE,
	ST_RUN_INSERT,
	ST_RUN_STATE,
	ST_RUN_HAS_CHECK,
	ST_RUN_PREV,
	ST_RUN_FINISH,
	ST_RUN_GET,
	ST_RUN_LATEST,
	ST_FINDING_INSERT,
	ST_FINDING_RESOLVE,
	ST_SUPPRESS,
	ST_UNSUPPRESS,
	ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
	[ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT cf_sp",
	[ST_ROLLBACK_TO] = "ROLLBACK TO cf_sp",
	[ST_RELEASE] = "RELEASE cf_sp",
	[ST_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
	[ST_HEAD_GET] = "SELECT seq, hash FROM event_head WHERE id = 1",
	[ST_HEAD_SET] = "UPDATE event_head SET seq = ?1, hash = ?2 WHERE id = 1",
	[ST_EVENT_INSERT] = "INSERT INTO events (" EVENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
			    "?7, ?8)",
	[ST_CA_INSERT] = "INSERT INTO cas (" CA_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
			 "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[ST_CA_BY_NAME] = "SELECT " CA_COLS " FROM cas WHERE name = ?1",
	[ST_CA_BY_CERT] = "SELECT " CA_COLS " FROM cas WHERE cert_id = ?1",
	[ST_CA_DEFAULT] = "SELECT " CA_COLS " FROM cas WHERE is_default = 1",
	[ST_CA_STATE] = "SELECT status, is_root FROM cas WHERE name = ?1",
	[ST_CA_ACTIVATE] = "UPDATE cas SET status = 'ACTIVE', cert_id = ?2, subject = ?3, "
			   "cert_pem = ?4, parent = COALESCE(?5, parent), "
			   "key_type = COALESCE(?6, key_type), not_before = ?7, not_after = ?8, "
			   "updated_at = ?9 WHERE name = ?1",
	[ST_CA_CLEAR_DEFAULT] = "UPDATE cas SET is_default = 0, updated_at = ?1 "
				"WHERE is_default = 1",
	[ST_CA_SET_DEFAULT] = "UPDATE cas SET is_default = 1, updated_at = ?2 WHERE name = ?1",
	[ST_CA_SET_STATUS] = "UPDATE cas SET status = ?2, is_default = 0, "
			     "revoke_reason = COALESCE(?3, revoke_reason), updated_at = ?4 "
			     "WHERE name = ?1",
	[ST_REGCODE_INSERT] = "INSERT INTO regcodes (digest, created_at, expires_at) "
			      "VALUES (?1, ?2, ?3)",
	[ST_REGCODE_USE] = "UPDATE regcodes SET used_at = ?2, used_by = ?3 "
			   "WHERE digest = ?1 AND used_at = 0 AND expires_at > ?2",
	[ST_THING_INSERT] = "INSERT INTO things (name, attributes, created_at) VALUES (?1, ?2, ?3)",
	[ST_THING_GET] = "SELECT name, attributes, created_at FROM things WHERE name = ?1",
	[ST_THING_EXISTS] = "SELECT 1 FROM things WHERE name = ?1",
	[ST_THING_LIVE_CERTS] = "SELECT count(*) FROM certs WHERE thing = ?1 "
				"AND status IN ('ACTIVE', 'PENDING_ACTIVATION')",
	[ST_THING_DELETE] = "DELETE FROM things WHERE name = ?1",
	[ST_CERT_INSERT] = "INSERT INTO certs (" CERT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
			   "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
	[ST_CERT_GET] = "SELECT " CERT_COLS " FROM certs WHERE id = ?1",
	[ST_CERT_BY_SERIAL] = "SELECT " CERT_COLS " FROM certs WHERE ca = ?1 AND serial = ?2",
	/* Ids are lowercase hex, so every id starting with p sorts below p || 'g'. */
	[ST_CERT_PREFIX] = "SELECT " CERT_COLS " FROM certs WHERE id >= ?1 AND id < ?1 || 'g' "
			   "ORDER BY id LIMIT 2",
	[ST_CERT_STATE] = "SELECT status, thing, deleted_at FROM certs WHERE id = ?1",
	[ST_CERT_SET_STATUS] = "UPDATE certs SET status = ?2, revoke_reason = ?3, "
			       "revoked_at = ?4, updated_at = ?5, change_seq = ?6 WHERE id = ?1",
	[ST_CERT_TOUCH] = "UPDATE certs SET change_seq = ?2, updated_at = ?3 WHERE id = ?1",
	[ST_CERT_DELETE] = "UPDATE certs SET deleted_at = ?2, updated_at = ?2, change_seq = ?3 "
			   "WHERE id = ?1",
	[ST_POLICY_INSERT] = "INSERT INTO policies (name, document, created_at) "
			     "VALUES (?1, ?2, ?3)",
	[ST_POLICY_GET] = "SELECT name, document, created_at FROM policies WHERE name = ?1",
	[ST_POLICY_EXISTS] = "SELECT 1 FROM policies WHERE name = ?1",
	[ST_ATTACH] = "INSERT INTO cert_policies (cert_id, policy) VALUES (?1, ?2)",
	[ST_DETACH] = "DELETE FROM cert_policies WHERE cert_id = ?1 AND policy = ?2",
	[ST_EVENTS_ALL] = "SELECT " EVENT_COLS " FROM events ORDER BY seq",
	[ST_EVENTS_FROM] = "SELECT " EVENT_COLS " FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
	[ST_CERTS_ALL] = "SELECT id, status, change_seq, deleted_at FROM certs",
	/* The primary key's order: grouped by certificate without a sort. */
	[ST_LINKS_ALL] = "SELECT cert_id, policy FROM cert_policies ORDER BY cert_id",
	[ST_ROT_INSERT] = "INSERT INTO rotations (" ROT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
			  "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	[ST_ROT_GET] = "SELECT " ROT_COLS " FROM rotations WHERE id = ?1",
	/* The WHERE of the partial index, word for word, so that the index is used. */
	[ST_ROT_OPEN] = "SELECT " ROT_COLS " FROM rotations WHERE thing = ?1 "
			"AND state IN " OPEN_STATES,
	[ST_ROT_STATE] = "SELECT state FROM rotations WHERE id = ?1",
	[ST_ROT_UPDATE] = "UPDATE rotations SET state = ?2, new_cert = ?3, csr_spki = ?4, "
			  "error = ?5, next_send_at = ?6, sends = ?7, updated_at = ?8, "
			  "delete_old_at = ?10 WHERE id = ?1 AND state = ?9",
	/* Rotation ids are lowercase hex: the same range trick as ST_CERT_PREFIX. */
	[ST_ROT_PREFIX] = "SELECT " ROT_COLS " FROM rotations WHERE id >= ?1 AND id < ?1 || 'g' "
			  "ORDER BY id LIMIT 2",
	/* The WHERE of the partial index rotations_delete_old, so that it is used. */
	[ST_ROT_SETTLE] = "UPDATE rotations SET delete_old_at = 0 WHERE delete_old_at > 0 "
			  "AND old_cert = ?1",
	[ST_CERT_EXISTS] = "SELECT 1 FROM certs WHERE id = ?1",
	[ST_OUTBOX_ADD] = "INSERT INTO outbox (topic, payload, created_at) VALUES (?1, ?2, ?3)",
	[ST_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
	[ST_OUTBOX_PENDING] = "SELECT 1 FROM outbox WHERE topic = ?1 LIMIT 1",
	[ST_CONN_INSERT] = "INSERT INTO connections (at, cert_id, client_id, address, outcome) "
			   "VALUES (?1, ?2, ?3, ?4, ?5)",
	/* One lookup of the largest rowid and a range delete: no count of the rows. */
	[ST_CONN_PRUNE] = "DELETE FROM connections WHERE id <= "
			  "(SELECT MAX(id) FROM connections) - ?1",
	[ST_RUN_INSERT] = "INSERT INTO audit_runs (started_at, \"trigger\", checks, status) "
			  "VALUES (?1, ?2, ?3, 'IN_PROGRESS')",
	[ST_RUN_STATE] = "SELECT status, started_at FROM audit_runs WHERE id = ?1",
	[ST_RUN_HAS_CHECK] = "SELECT 1 FROM audit_runs r, json_each(r.checks) j "
			     "WHERE r.id = ?1 AND j.value = ?2",
	[ST_RUN_PREV] = PREV_RUN,
	[ST_RUN_FINISH] = "UPDATE audit_runs SET status = ?2, summary = ?3, finished_at = ?4 "
			  "WHERE id = ?1 AND status = 'IN_PROGRESS'",
	[ST_RUN_GET] = "SELECT " RUN_COLS " FROM audit_runs WHERE id = ?1",
	/* audit_runs_status holds the rowid: newest first without a sort. */
	[ST_RUN_LATEST] = "SELECT id FROM audit_runs WHERE status = 'COMPLETED' "
			  "ORDER BY id DESC LIMIT 1",
	/*
	 * One statement per finding: the previous run's row (?8, 0 for none) by
	 * the primary key, the suppression (at the run's start, ?9) by its own.
	 */
	[ST_FINDING_INSERT] =
		"INSERT INTO audit_findings (" FINDING_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
		"CASE WHEN EXISTS (SELECT 1 FROM audit_findings p WHERE p.run_id = ?8 "
		"AND p.finding_id = ?2 AND p.state <> 'RESOLVED') THEN 'OPEN' ELSE 'NEW' END, "
		"EXISTS (SELECT 1 FROM audit_suppressions s WHERE s.check_name = ?3 "
		"AND s.resource = ?4 AND s.expires_at > ?9))",
	/*
	 * For each check of run ?1: the previous run's findings still NEW or
	 * OPEN that run ?1 lacks come back RESOLVED (suppression as of ?2).
	 */
	[ST_FINDING_RESOLVE] =
		"INSERT INTO audit_findings (" FINDING_COLS ") "
		"SELECT ?1, p.finding_id, p.check_name, p.resource, p.severity, p.reason, "
		"p.detail, 'RESOLVED', EXISTS (SELECT 1 FROM audit_suppressions s "
		"WHERE s.check_name = p.check_name AND s.resource = p.resource "
		"AND s.expires_at > ?2) "
		"FROM json_each((SELECT checks FROM audit_runs WHERE id = ?1)) c "
		"JOIN audit_findings p ON p.run_id = (SELECT r.id FROM audit_runs r "
		"WHERE r.status = 'COMPLETED' AND r.id < ?1 "
		"AND EXISTS (SELECT 1 FROM json_each(r.checks) j WHERE j.value = c.value) "
		"ORDER BY r.id DESC LIMIT 1) AND p.check_name = c.value "
		"WHERE p.state <> 'RESOLVED' AND NOT EXISTS (SELECT 1 FROM audit_findings n "
		"WHERE n.run_id = ?1 AND n.finding_id = p.finding_id)",
	[ST_SUPPRESS] = "INSERT OR REPLACE INTO audit_suppressions (" SUP_COLS ") "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_UNSUPPRESS] = "DELETE FROM audit_suppressions WHERE check_name = ?1 AND resource = ?2",
};

/* List statements, which may be re-entered from their callback. */
enum list_id {
	LS_CA,
	LS_THING,
	LS_POLICY,
	LS_POLICY_CERT,
	LS_CHANGES,
	LS_OUTBOX,
	LS_AUDIT_RUNS,
	LS_SUPPRESSIONS,
	LS__COUNT
};

static const char *const list_sql[LS__COUNT] = {
	[LS_CA] = "SELECT " CA_COLS " FROM cas ORDER BY name",
	[LS_THING] = "SELECT name, attributes, created_at FROM things ORDER BY name",
	[LS_POLICY] = "SELECT name, document, created_at FROM policies ORDER BY name",
	[LS_POLICY_CERT] = "SELECT p.name, p.document, p.created_at FROM policies p "
			   "JOIN cert_policies cp ON cp.policy = p.name "
			   "WHERE cp.cert_id = ?1 ORDER BY p.name",
	[LS_CHANGES] = "SELECT " CERT_COLS " FROM certs WHERE change_seq > ?1 "
		       "ORDER BY change_seq LIMIT ?2",
	[LS_OUTBOX] = "SELECT id, topic, payload, created_at FROM outbox ORDER BY id LIMIT ?1",
	[LS_AUDIT_RUNS] = "SELECT " RUN_COLS " FROM audit_runs ORDER BY id DESC LIMIT ?1",
	[LS_SUPPRESSIONS] = "SELECT " SUP_COLS " FROM audit_suppressions "
			    "ORDER BY check_name, resource",
};

/* cert_list: one statement per combination of filters, so each can use an index. */
enum {
	CF_THING = 1,
	CF_CA = 2,
	CF_STATUS = 4,
	CF_BEFORE = 8,
	CF_LIVE = 16, /* deleted certificates left out */
	CF__VARIANTS = 32
};

/* rotation_list: one statement per combination of filters, as for cert_list. */
enum {
	RF_STATE = 1,
	RF_THING = 2,
	RF_DUE = 4,
	RF_EXPIRED = 8,
	RF_DELETE_DUE = 16,
	RF__VARIANTS = 32
};

/* events_list: resource filter (1) x newest first (2). */
#define EV__VARIANTS 4

/* connection_list: one statement per combination of filters, as for cert_list. */
enum {
	NF_CERT = 1,
	NF_CLIENT = 2,
	NF_SINCE = 4,
	NF__VARIANTS = 8
};

/* audit_finding_list: one statement per combination of filters, as for cert_list. */
enum {
	AF_CHECK = 1,
	AF_SEVERITY = 2,
	AF_STATE = 4,
	AF_UNSUPPRESSED = 8,
	AF__VARIANTS = 16
};

struct sq {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmts[ST__COUNT];
	sqlite3_stmt *lists[LS__COUNT];
	sqlite3_stmt *cert_lists[CF__VARIANTS];
	sqlite3_stmt *cert_scans[8]; /* cert_scan: status filter (1) x deleted left out (2)
					x policy (4) */
	sqlite3_stmt *event_lists[EV__VARIANTS];
	sqlite3_stmt *rotation_lists[RF__VARIANTS];
	sqlite3_stmt *connection_lists[NF__VARIANTS];
	sqlite3_stmt *finding_lists[AF__VARIANTS];
	int depth; /* open transaction levels: 0 none, 1 a transaction, more savepoints */
};

static struct sq *
sq_of(cf_store *store)
{
	return store->impl;
}

/* ---- errors -------------------------------------------------------------- */

/* Map an SQLite result to a CF_E* code with the connection's message. */
static int
db_fail(struct sq *sq, int sqlrc, const char *what, cf_err *err)
{
	int code;

	switch (sqlrc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = CF_EBUSY;
		break;
	case SQLITE_NOMEM:
		code = CF_ENOMEM;
		break;
	default:
		code = CF_ESTORE;
		break;
	}
	return cf_err_set(err, code, NULL, "sqlite %s: %s: %s", sq->path, what,
			  sqlite3_errmsg(sq->db));
}

static bool
is_constraint(int sqlrc, int extended)
{
	return sqlrc == extended;
}

/* ---- statements ---------------------------------------------------------- */

static int
prepare(struct sq *sq, sqlite3_stmt **out, const char *sql, unsigned int flags, cf_err *err)
{
	int rc;

	rc = sqlite3_prepare_v3(sq->db, sql, -1, flags, out, NULL);
	if (rc != SQLITE_OK)
		return db_fail(sq, rc, "prepare", err);
	return CF_OK;
}

/* The cached statement id, prepared on first use. Release with stmt_put(). */
static int
stmt_get(sqlite3_stmt **out, struct sq *sq, enum stmt_id id, cf_err *err)
{
	int rc;

	*out = NULL;
	if (sq->stmts[id] == NULL) {
		rc = prepare(sq, &sq->stmts[id], stmt_sql[id], SQLITE_PREPARE_PERSISTENT, err);
		if (rc != CF_OK)
			return rc;
	}
	*out = sq->stmts[id];
	return CF_OK;
}

/* Reset so the statement holds no snapshot and no stale bindings. NULL is fine. */
static void
stmt_put(sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/*
 * A list statement cached in *slot. When the cached one is running (a
 * callback re-entered the same list), prepare a private one; *temp says so.
 */
static int
list_get(sqlite3_stmt **out, bool *temp, struct sq *sq, sqlite3_stmt **slot, const char *sql,
	 cf_err *err)
{
	int rc;

	*out = NULL;
	*temp = false;
	if (*slot != NULL && sqlite3_stmt_busy(*slot)) {
		*temp = true;
		return prepare(sq, out, sql, 0, err);
	}
	if (*slot == NULL) {
		rc = prepare(sq, slot, sql, SQLITE_PREPARE_PERSISTENT, err);
		if (rc != CF_OK)
			return rc;
	}
	*out = *slot;
	return CF_OK;
}

static void
list_put(sqlite3_stmt *st, bool temp)
{
	if (temp)
		sqlite3_finalize(st);
	else
		stmt_put(st);
}

/*
 * Bind parameter i unless an earlier bind failed: *brc (SQLITE_OK to start
 * with) keeps the first failing code, so a run of binds is checked once at
 * the end and reports a code SQLite actually returned. NULL binds SQL NULL.
 */
static void
bind_str(int *brc, sqlite3_stmt *st, int i, const char *s)
{
	if (*brc != SQLITE_OK)
		return;
	if (s == NULL)
		*brc = sqlite3_bind_null(st, i);
	else
		*brc = sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void
bind_int(int *brc, sqlite3_stmt *st, int i, int64_t v)
{
	if (*brc == SQLITE_OK)
		*brc = sqlite3_bind_int64(st, i, v);
}

static int
bind_fail(struct sq *sq, int brc, cf_err *err)
{
	return db_fail(sq, brc, "bind", err);
}

/* Run a statement that returns no rows. */
static int
exec_stmt(struct sq *sq, sqlite3_stmt *st, const char *what, cf_err *err)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return db_fail(sq, rc, what, err);
	return CF_OK;
}

/* Step a statement that returns at most one row; *row says whether it did. */
static int
step_row(struct sq *sq, sqlite3_stmt *st, bool *row, const char *what, cf_err *err)
{
	int rc;

	rc = sqlite3_step(st);
	*row = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(sq, rc, what, err);
	return CF_OK;
}

/* Run the cached statement id with one text parameter, no rows expected. */
static int
exec_id1(struct sq *sq, enum stmt_id id, const char *a, const char *what, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, id, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, a);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = exec_stmt(sq, st, what, err);
	stmt_put(st);
	return rc;
}

/* Does the cached one-parameter query id return a row? */
static int
row_exists(bool *exists, struct sq *sq, enum stmt_id id, const char *key, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	*exists = false;
	rc = stmt_get(&st, sq, id, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, key);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, exists, "lookup", err);
	stmt_put(st);
	return rc;
}

/* ---- transactions -------------------------------------------------------- */

/*
 * How it works: one mechanism for every level. sq->depth counts the open
 * levels. The outermost tx_begin() runs BEGIN IMMEDIATE (or BEGIN for a
 * read); every inner one runs SAVEPOINT cf_sp. tx_end() closes the
 * innermost level: COMMIT or RELEASE when the work succeeded, ROLLBACK or
 * ROLLBACK TO + RELEASE when it failed, so a failed inner operation undoes
 * only itself. SQLite resolves a savepoint name to the innermost one of
 * that name, so a single name nests. A public operation therefore runs in
 * its own transaction when called alone, and in a savepoint of the
 * caller's when called between cf_store_tx_begin() and _commit(); the
 * batch insert's per-item savepoints are one more level. Some errors
 * (I/O, out of memory) make SQLite roll the whole transaction back on its
 * own: tx_begin() then refuses to open an inner level, because a
 * SAVEPOINT outside a transaction would start, and on RELEASE commit, a
 * transaction of its own.
 */

static int
run_id(struct sq *sq, enum stmt_id id, const char *what, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = stmt_get(&st, sq, id, err);
	if (rc == CF_OK)
		rc = exec_stmt(sq, st, what, err);
	stmt_put(st);
	return rc;
}

/* Open one level: a transaction (id: ST_BEGIN_WRITE or ST_BEGIN_READ) or a savepoint. */
static int
tx_begin(struct sq *sq, enum stmt_id id, cf_err *err)
{
	int rc;

	if (sq->depth > 0 && sqlite3_get_autocommit(sq->db))
		return cf_err_set(err, CF_ESTORE, NULL,
				  "sqlite %s: the transaction was rolled back after an error; "
				  "roll it back and start again", sq->path);
	if (sq->depth > 0)
		rc = run_id(sq, ST_SAVEPOINT, "savepoint", err);
	else
		rc = run_id(sq, id, "begin", err);
	if (rc == CF_OK)
		sq->depth++;
	return rc;
}

/* Undo everything, whatever the depth. Safe to call on every way out. */
static void
tx_rollback(struct sq *sq)
{
	sq->depth = 0;
	if (sqlite3_get_autocommit(sq->db))
		return;
	(void)run_id(sq, ST_ROLLBACK, "rollback", NULL);
	if (!sqlite3_get_autocommit(sq->db))
		(void)sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Close the innermost level: keep (COMMIT / RELEASE) or undo (ROLLBACK /
 * ROLLBACK TO + RELEASE) its work. A failed COMMIT rolls back. Returns
 * CF_OK when the level was closed as asked.
 */
static int
tx_close(struct sq *sq, bool keep, cf_err *err)
{
	int rc;

	if (sq->depth <= 1) {
		rc = keep ? run_id(sq, ST_COMMIT, "commit", err) : CF_OK;
		if (!keep || rc != CF_OK)
			tx_rollback(sq);
		sq->depth = 0;
		return rc;
	}
	sq->depth--;
	if (sqlite3_get_autocommit(sq->db))
		return cf_err_set(err, CF_ESTORE, NULL,
				  "sqlite %s: the transaction was rolled back after an error",
				  sq->path);
	rc = keep ? CF_OK : run_id(sq, ST_ROLLBACK_TO, "rollback to savepoint", err);
	if (rc == CF_OK)
		rc = run_id(sq, ST_RELEASE, "release savepoint", err);
	return rc;
}

/* Keep the innermost level's work when rc is CF_OK, undo it otherwise; the final code. */
static int
tx_end(struct sq *sq, int rc, cf_err *err)
{
	if (rc == CF_OK)
		return tx_close(sq, true, err);
	(void)tx_close(sq, false, NULL); /* the first failure is the one to report */
	return rc;
}

/* ---- events -------------------------------------------------------------- */

static int
head_get(struct sq *sq, int64_t *seq, char hash[65], cf_err *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *text;
	bool row = false;
	int rc;

	rc = stmt_get(&st, sq, ST_HEAD_GET, err);
	if (rc == CF_OK)
		rc = step_row(sq, st, &row, "read event head", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_EINTEGRITY, NULL, "sqlite %s: event head is missing",
				sq->path);
	if (rc == CF_OK) {
		*seq = sqlite3_column_int64(st, 0);
		text = sqlite3_column_text(st, 1);
		if (text == NULL || strlen((const char *)text) != 64)
			rc = cf_err_set(err, CF_EINTEGRITY, NULL, "event head hash is malformed");
		else
			memcpy(hash, text, 65);
	}
	stmt_put(st);
	return rc;
}

/* The fields of an event row, borrowed. */
struct event_row {
	int64_t seq;
	int64_t time;
	const char *actor;
	const char *action;
	const char *resource;
	const char *detail;
	const char *prev_hash;
	const char *hash;
};

static int
event_insert(struct sq *sq, const struct event_row *ev, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_EVENT_INSERT, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, ev->seq);
	bind_int(&brc, st, 2, ev->time);
	bind_str(&brc, st, 3, ev->actor);
	bind_str(&brc, st, 4, ev->action);
	bind_str(&brc, st, 5, ev->resource);
	bind_str(&brc, st, 6, ev->detail);
	bind_str(&brc, st, 7, ev->prev_hash);
	bind_str(&brc, st, 8, ev->hash);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "insert event", err);
	stmt_put(st);
	return rc;
}

static int
head_set(struct sq *sq, int64_t seq, const char *hash, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_HEAD_SET, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, seq);
	bind_str(&brc, st, 2, hash);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "move event head", err);
	stmt_put(st);
	return rc;
}

/*
 * Append one event inside the caller's write transaction. Reading the head
 * here, under the write lock, is what keeps the chain linear when several
 * processes write. *seq_out (may be NULL) gets the new seq.
 */
static int
event_append(cf_store *store, const cf_store_actor *actor, const char *action,
	     const char *resource, const char *detail, int64_t *seq_out, cf_err *err)
{
	struct sq *sq = sq_of(store);
	char prev[65], hash[65];
	struct event_row ev;
	int64_t head;
	int rc;

	rc = head_get(sq, &head, prev, err);
	if (rc != CF_OK)
		return rc;
	ev.seq = head + 1;
	ev.time = cf_store__now(store);
	rc = cf_store__event_hash(store, hash, prev, ev.seq, ev.time, actor->who, action,
				  resource, detail, err);
	if (rc != CF_OK)
		return rc;
	ev.actor = actor->who;
	ev.action = action;
	ev.resource = resource;
	ev.detail = detail;
	ev.prev_hash = prev;
	ev.hash = hash;
	rc = event_insert(sq, &ev, err);
	if (rc == CF_OK)
		rc = head_set(sq, ev.seq, hash, err);
	if (rc == CF_OK && seq_out != NULL)
		*seq_out = ev.seq;
	return rc;
}

/* "kind:name" for an event's resource; NULL on ENOMEM. */
static char *
resource_name(const char *kind, const char *name)
{
	size_t a = strlen(kind), b = strlen(name);
	char *s = malloc(a + b + 2);

	if (s == NULL)
		return NULL;
	memcpy(s, kind, a);
	s[a] = ':';
	memcpy(s + a + 1, name, b + 1);
	return s;
}

/* Append the event for resource "kind:name": the usual last step of a change. */
static int
event_log(cf_store *store, const cf_store_actor *actor, const char *action, const char *kind,
	  const char *name, const char *detail, int64_t *seq_out, cf_err *err)
{
	char *resource = NULL;
	int rc;

	resource = resource_name(kind, name);
	if (resource == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "event resource");
	rc = event_append(store, actor, action, resource, detail, seq_out, err);
	free(resource);
	return rc;
}

/* ---- rows ---------------------------------------------------------------- */

static int
col_dup(char **dst, sqlite3_stmt *st, int col)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	*dst = NULL;
	if (text == NULL)
		return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : 1;
	*dst = strdup((const char *)text);
	return *dst == NULL;
}

static int
read_ca(cf_store_ca *out, sqlite3_stmt *st, cf_err *err)
{
	int bad;

	memset(out, 0, sizeof(*out));
	bad = col_dup(&out->name, st, 0);
	bad |= cf_store__ca_status_parse(&out->status, (const char *)sqlite3_column_text(st, 1));
	out->is_default = sqlite3_column_int(st, 2) != 0;
	out->is_root = sqlite3_column_int(st, 3) != 0;
	out->external = sqlite3_column_int(st, 4) != 0;
	bad |= col_dup(&out->parent, st, 5);
	bad |= col_dup(&out->cert_id, st, 6);
	bad |= col_dup(&out->subject, st, 7);
	bad |= col_dup(&out->cert_pem, st, 8);
	bad |= col_dup(&out->key_ref, st, 9);
	bad |= col_dup(&out->key_type, st, 10);
	out->not_before = sqlite3_column_int64(st, 11);
	out->not_after = sqlite3_column_int64(st, 12);
	out->created_at = sqlite3_column_int64(st, 13);
	out->updated_at = sqlite3_column_int64(st, 14);
	bad |= col_dup(&out->revoke_reason, st, 15);
	if (bad != 0) {
		cf_store_ca_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "reading a CA row");
	}
	return CF_OK;
}

static int
read_cert(cf_store_cert *out, sqlite3_stmt *st, cf_err *err)
{
	int bad;

	memset(out, 0, sizeof(*out));
	bad = col_dup(&out->id, st, 0);
	bad |= col_dup(&out->serial, st, 1);
	bad |= col_dup(&out->ca, st, 2);
	bad |= col_dup(&out->thing, st, 3);
	bad |= cf_cert_status_parse(&out->status, (const char *)sqlite3_column_text(st, 4));
	out->not_before = sqlite3_column_int64(st, 5);
	out->not_after = sqlite3_column_int64(st, 6);
	bad |= col_dup(&out->key_type, st, 7);
	out->key_bits = sqlite3_column_int(st, 8);
	bad |= col_dup(&out->sig_alg, st, 9);
	bad |= col_dup(&out->spki_sha256, st, 10);
	bad |= col_dup(&out->pem, st, 11);
	out->created_at = sqlite3_column_int64(st, 12);
	out->updated_at = sqlite3_column_int64(st, 13);
	bad |= col_dup(&out->revoke_reason, st, 14);
	out->revoked_at = sqlite3_column_int64(st, 15);
	out->change_seq = sqlite3_column_int64(st, 16);
	out->deleted_at = sqlite3_column_int64(st, 17);
	out->key_roca = sqlite3_column_int(st, 18) != 0;
	if (bad != 0) {
		cf_store_cert_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "reading a certificate row");
	}
	return CF_OK;
}

static int
read_thing(cf_store_thing *out, sqlite3_stmt *st, cf_err *err)
{
	int bad;

	memset(out, 0, sizeof(*out));
	bad = col_dup(&out->name, st, 0);
	bad |= col_dup(&out->attributes, st, 1);
	out->created_at = sqlite3_column_int64(st, 2);
	if (bad != 0) {
		cf_store_thing_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "reading a thing row");
	}
	return CF_OK;
}

static int
read_policy(cf_store_policy *out, sqlite3_stmt *st, cf_err *err)
{
	int bad;

	memset(out, 0, sizeof(*out));
	bad = col_dup(&out->name, st, 0);
	bad |= col_dup(&out->document, st, 1);
	out->created_at = sqlite3_column_int64(st, 2);
	if (bad != 0) {
		cf_store_policy_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "reading a policy row");
	}
	return CF_OK;
}

/* Event columns may have been tampered with: NULLs read as "" so verify can judge. */
static int
read_event(cf_store_event *out, sqlite3_stmt *st, cf_err *err)
{
	char **fields[] = { &out->actor, &out->action, &out->resource,
			    &out->detail, &out->prev_hash, &out->hash };
	const unsigned char *text;
	size_t i;
	int bad = 0;

	memset(out, 0, sizeof(*out));
	out->seq = sqlite3_column_int64(st, 0);
	out->time = sqlite3_column_int64(st, 1);
	for (i = 0; i < CF_ARRAY_LEN(fields); i++) {
		text = sqlite3_column_text(st, (int)i + 2);
		*fields[i] = strdup(text == NULL ? "" : (const char *)text);
		bad |= *fields[i] == NULL;
	}
	if (bad != 0) {
		cf_store_event_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "reading an event row");
	}
	return CF_OK;
}

/*
 * The same without copies: the strings point into st's row, valid until the
 * next step. For the verify walks, which read every event once.
 */
static void
read_event_borrowed(cf_store_event *out, sqlite3_stmt *st)
{
	char **fields[] = { &out->actor, &out->action, &out->resource,
			    &out->detail, &out->prev_hash, &out->hash };
	const unsigned char *text;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->seq = sqlite3_column_int64(st, 0);
	out->time = sqlite3_column_int64(st, 1);
	for (i = 0; i < CF_ARRAY_LEN(fields); i++) {
		text = sqlite3_column_text(st, (int)i + 2);
		/* As read_event(): a NULL (a tampered table) reads "" and fails its hash. */
		*fields[i] = (char *)(uintptr_t)(text != NULL ? (const char *)text : "");
	}
}

/*
 * Generic "fetch one row with the cached query id and key". CF_ENOTFOUND
 * when there is none, with "<what> '<key>' not found".
 */
typedef int (*row_reader)(void *out, sqlite3_stmt *st, cf_err *err);

static int
get_one(struct sq *sq, enum stmt_id id, const char *key, row_reader read, void *out,
	const char *what, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, id, err);
	if (rc != CF_OK)
		return rc;
	if (key != NULL)
		bind_str(&brc, st, 1, key);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	if (rc == CF_OK)
		rc = step_row(sq, st, &row, what, err);
	if (rc == CF_OK && !row && key == NULL)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "no %s is set", what);
	else if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "%s '%.80s' not found", what, key);
	if (rc == CF_OK)
		rc = read(out, st, err);
	stmt_put(st);
	return rc;
}

static int
read_ca_any(void *out, sqlite3_stmt *st, cf_err *err)
{
	return read_ca(out, st, err);
}

static int
read_cert_any(void *out, sqlite3_stmt *st, cf_err *err)
{
	return read_cert(out, st, err);
}

static int
read_thing_any(void *out, sqlite3_stmt *st, cf_err *err)
{
	return read_thing(out, st, err);
}

static int
read_policy_any(void *out, sqlite3_stmt *st, cf_err *err)
{
	return read_policy(out, st, err);
}

/* ---- open, close, schema ------------------------------------------------- */

/* "sqlite:PATH" or "sqlite://PATH" -> PATH. */
static const char *
uri_path(const char *uri)
{
	const char *p = uri + strlen("sqlite:");

	if (strncmp(p, "//", 2) == 0)
		p += 2;
	return p;
}

static int
pragma(struct sq *sq, const char *sql, const char *expect, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *got;
	bool row = false;
	int rc;

	rc = prepare(sq, &st, sql, 0, err);
	if (rc == CF_OK)
		rc = step_row(sq, st, &row, sql, err);
	if (rc == CF_OK && expect != NULL) {
		got = row ? sqlite3_column_text(st, 0) : NULL;
		if (got == NULL || strcmp((const char *)got, expect) != 0)
			rc = cf_err_set(err, CF_ESTORE, NULL, "sqlite %s: %s gave '%s', want '%s'",
					sq->path, sql, got == NULL ? "" : (const char *)got,
					expect);
	}
	sqlite3_finalize(st);
	return rc;
}

static int
read_schema_version(struct sq *sq, int *out, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc;

	*out = 0;
	/* A file without the table (fresh, or not ours) is at version 0. */
	rc = prepare(sq, &st, "SELECT 1 FROM sqlite_master WHERE type = 'table' "
			      "AND name = 'schema_migrations'", 0, err);
	if (rc == CF_OK)
		rc = step_row(sq, st, &row, "read schema", err);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != CF_OK || !row)
		return rc;
	rc = stmt_get(&st, sq, ST_SCHEMA_VERSION, err);
	if (rc == CF_OK)
		rc = step_row(sq, st, &row, "read schema version", err);
	if (rc == CF_OK && row)
		*out = sqlite3_column_int(st, 0);
	stmt_put(st);
	return rc;
}

/* True when the PEM certificate of row st (column 1) has an RSA key with the ROCA fingerprint. */
static bool
row_key_roca(sqlite3_stmt *st)
{
	const char *pem = (const char *)sqlite3_column_text(st, 1);
	cf_pki_cert_info info;
	X509 *x = NULL;
	bool roca;

	roca = pem != NULL && cf_pki_cert_from_pem(&x, pem, strlen(pem), NULL) == CF_OK &&
	       cf_pki_cert_info_get(&info, x, NULL) == CF_OK && info.key_roca;
	X509_free(x);
	return roca;
}

/*
 * Migration 6's key_roca for the certificates already there, from each RSA
 * certificate's PEM, once: the ids with the fingerprint are gathered first
 * (few, if any) and updated after the scan.
 */
static int
backfill_key_roca(struct sq *sq, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	char **ids = NULL, **grown;
	size_t n = 0, i;
	int rc = CF_OK, sqlrc;

	sqlrc = sqlite3_prepare_v2(sq->db, "SELECT id, pem FROM certs WHERE key_type LIKE 'RSA%'",
				   -1, &st, NULL);
	if (sqlrc != SQLITE_OK)
		return db_fail(sq, sqlrc, "migration 6: read RSA certificates", err);
	while (rc == CF_OK && (sqlrc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!row_key_roca(st))
			continue;
		grown = realloc(ids, (n + 1) * sizeof(*ids));
		if (grown != NULL)
			ids = grown;
		if (grown == NULL ||
		    (ids[n] = cf_strdup((const char *)sqlite3_column_text(st, 0))) == NULL)
			rc = cf_err_set(err, CF_ENOMEM, NULL, "migration 6: key_roca");
		else
			n++;
	}
	if (rc == CF_OK && sqlrc != SQLITE_DONE)
		rc = db_fail(sq, sqlrc, "migration 6: read RSA certificates", err);
	sqlite3_finalize(st);
	st = NULL;
	if (rc == CF_OK && n > 0 &&
	    (sqlrc = sqlite3_prepare_v2(sq->db, "UPDATE certs SET key_roca = 1 WHERE id = ?1", -1,
					&st, NULL)) != SQLITE_OK)
		rc = db_fail(sq, sqlrc, "migration 6: set key_roca", err);
	for (i = 0; rc == CF_OK && i < n; i++) {
		sqlite3_reset(st);
		sqlrc = sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
		if (sqlrc == SQLITE_OK)
			sqlrc = sqlite3_step(st);
		if (sqlrc != SQLITE_DONE)
			rc = db_fail(sq, sqlrc, "migration 6: set key_roca", err);
	}
	sqlite3_finalize(st);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}

/* Apply migration version (1-based) unless another process already did. */
static int
migrate_one(cf_store *store, int version, cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *msg = NULL;
	char sql[128];
	int current = 0, rc, sqlrc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = read_schema_version(sq, &current, err);
	if (rc == CF_OK && current < version) {
		if (sqlite3_exec(sq->db, migrations[version - 1], NULL, NULL, &msg) != SQLITE_OK)
			rc = cf_err_set(err, CF_ESTORE, NULL, "sqlite %s: migration %d: %s",
					sq->path, version, msg == NULL ? "?" : msg);
		else if (version == 6)
			rc = backfill_key_roca(sq, err);
	}
	if (rc == CF_OK && current < version) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %lld)",
			 version, (long long)cf_store__now(store));
		sqlrc = sqlite3_exec(sq->db, sql, NULL, NULL, NULL);
		if (sqlrc != SQLITE_OK)
			rc = db_fail(sq, sqlrc, "record migration", err);
	}
	sqlite3_free(msg);
	return tx_end(sq, rc, err);
}

static int
migrate(cf_store *store, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int version = 0, rc, v;

	rc = read_schema_version(sq, &version, err);
	if (rc != CF_OK)
		return rc;
	if (version > (int)CF_ARRAY_LEN(migrations))
		return cf_err_set(err, CF_ESTORE, NULL,
				  "sqlite %s: schema version %d is newer than this build (%d)",
				  sq->path, version, (int)CF_ARRAY_LEN(migrations));
	if (version == (int)CF_ARRAY_LEN(migrations))
		return CF_OK;
	if (sqlite3_exec(sq->db,
			 "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
			 NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(sq, sqlite3_errcode(sq->db), "create schema_migrations", err);
	for (v = version + 1; v <= (int)CF_ARRAY_LEN(migrations); v++) {
		rc = migrate_one(store, v, err);
		if (rc != CF_OK)
			return rc;
	}
	return CF_OK;
}

/* A handle that does not migrate needs exactly the schema this build knows. */
static int
check_schema_exact(struct sq *sq, cf_err *err)
{
	int version = 0, rc;

	rc = read_schema_version(sq, &version, err);
	if (rc != CF_OK)
		return rc;
	if (version != CF_STORE_SCHEMA_VERSION)
		return cf_err_set(err, CF_ESTORE, NULL,
				  "sqlite %s: schema version %d, this build needs exactly %d "
				  "(run certfleetd once to migrate)",
				  sq->path, version, CF_STORE_SCHEMA_VERSION);
	return CF_OK;
}

static void
sq_close(cf_store *store)
{
	struct sq *sq = sq_of(store);
	size_t i;

	if (sq == NULL)
		return;
	for (i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(sq->stmts[i]);
	for (i = 0; i < LS__COUNT; i++)
		sqlite3_finalize(sq->lists[i]);
	for (i = 0; i < CF__VARIANTS; i++)
		sqlite3_finalize(sq->cert_lists[i]);
	for (i = 0; i < CF_ARRAY_LEN(sq->cert_scans); i++)
		sqlite3_finalize(sq->cert_scans[i]);
	for (i = 0; i < EV__VARIANTS; i++)
		sqlite3_finalize(sq->event_lists[i]);
	for (i = 0; i < RF__VARIANTS; i++)
		sqlite3_finalize(sq->rotation_lists[i]);
	for (i = 0; i < NF__VARIANTS; i++)
		sqlite3_finalize(sq->connection_lists[i]);
	for (i = 0; i < AF__VARIANTS; i++)
		sqlite3_finalize(sq->finding_lists[i]);
	sqlite3_close_v2(sq->db);
	free(sq->path);
	free(sq);
	store->impl = NULL;
}

/* Connection settings, then the first real read, which tells a database from garbage. */
static int
configure(cf_store *store, cf_store__open_mode mode, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int rc = CF_OK;

	sqlite3_extended_result_codes(sq->db, 1);
	sqlite3_busy_timeout(sq->db, BUSY_TIMEOUT_MS);
	if (mode == CF_STORE_OPEN_READONLY) {
		rc = pragma(sq, "PRAGMA query_only = 1", NULL, err);
		if (rc == CF_OK)
			rc = check_schema_exact(sq, err);
		return rc;
	}
	/* Before any setting: an empty or foreign file must not be turned into a WAL registry. */
	if (mode == CF_STORE_OPEN_EXISTING)
		rc = check_schema_exact(sq, err);
	/*
	 * For new files only (a no-op on an existing one): 4 KiB pages, the
	 * file system's. With a page cache of 64 MiB the indexes of a large
	 * registry stay in memory, and a checkpoint every 10,000 pages (about
	 * 40 MiB of WAL) instead of SQLite's 1,000 spreads the checkpoint's
	 * fsync over ten times more commits. Measured on bench/issue: 38% ->
	 * 47% of the raw crypto rate with group commit.
	 */
	if (rc == CF_OK)
		rc = pragma(sq, "PRAGMA page_size = 4096", NULL, err);
	if (rc == CF_OK)
		rc = pragma(sq, "PRAGMA journal_mode = WAL", "wal", err);
	if (rc == CF_OK)
		rc = pragma(sq, "PRAGMA synchronous = NORMAL", NULL, err);
	if (rc == CF_OK)
		rc = pragma(sq, "PRAGMA cache_size = -65536", NULL, err);
	if (rc == CF_OK && sqlite3_wal_autocheckpoint(sq->db, CHECKPOINT_PAGES) != SQLITE_OK)
		rc = db_fail(sq, sqlite3_errcode(sq->db), "wal_autocheckpoint", err);
	if (rc == CF_OK)
		rc = pragma(sq, "PRAGMA foreign_keys = ON", NULL, err);
	if (rc == CF_OK && mode == CF_STORE_OPEN_MIGRATE)
		rc = migrate(store, err);
	return rc;
}

static int
sq_open(cf_store *store, const char *uri, cf_store__open_mode mode, cf_err *err)
{
	struct sq *sq = NULL;
	const char *path = uri_path(uri);
	int flags, rc;

	if (path[0] == '\0')
		return cf_err_set(err, CF_EINVAL, NULL, "sqlite URI has no path: '%.64s'", uri);
	sq = calloc(1, sizeof(*sq));
	if (sq == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "sqlite handle");
	store->impl = sq;
	sq->path = strdup(path);
	if (sq->path == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "sqlite path");
		goto out;
	}
	/* NOMUTEX: a handle is used by one thread at a time; the statement cache is not shared. */
	if (mode == CF_STORE_OPEN_READONLY)
		flags = SQLITE_OPEN_READONLY;
	else if (mode == CF_STORE_OPEN_EXISTING)
		flags = SQLITE_OPEN_READWRITE; /* a missing file is an error, not a new registry */
	else
		flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &sq->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = cf_err_set(err, CF_ESTORE, NULL, "sqlite %s: cannot open: %s", path,
				sq->db == NULL ? "out of memory" : sqlite3_errmsg(sq->db));
		goto out;
	}
	rc = configure(store, mode, err);
out:
	if (rc != CF_OK)
		sq_close(store);
	return rc;
}

static int
sq_schema_version(cf_store *store, int *out, cf_err *err)
{
	return read_schema_version(sq_of(store), out, err);
}

/* ---- CAs ----------------------------------------------------------------- */

static int
ca_insert_row(struct sq *sq, const cf_store_ca *ca, int64_t now, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CA_INSERT, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, ca->name);
	bind_str(&brc, st, 2, cf_ca_status_name(ca->status));
	bind_int(&brc, st, 3, ca->is_default);
	bind_int(&brc, st, 4, ca->is_root);
	bind_int(&brc, st, 5, ca->external);
	bind_str(&brc, st, 6, ca->parent);
	bind_str(&brc, st, 7, ca->cert_id);
	bind_str(&brc, st, 8, ca->subject);
	bind_str(&brc, st, 9, ca->cert_pem);
	bind_str(&brc, st, 10, ca->key_ref);
	bind_str(&brc, st, 11, ca->key_type);
	bind_int(&brc, st, 12, ca->not_before);
	bind_int(&brc, st, 13, ca->not_after);
	bind_int(&brc, st, 14, now);
	bind_int(&brc, st, 15, now);
	bind_str(&brc, st, 16, ca->revoke_reason);
	if (brc != SQLITE_OK) {
		rc = bind_fail(sq, brc, err);
		goto out;
	}
	rc = sqlite3_step(st);
	if (is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "CA '%s' already exists", ca->name);
	else if (is_constraint(rc, SQLITE_CONSTRAINT_UNIQUE))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "CA certificate %.16s is already registered",
				ca->cert_id);
	else
		rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "insert CA", err);
out:
	stmt_put(st);
	return rc;
}

static int
clear_default(struct sq *sq, int64_t now, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CA_CLEAR_DEFAULT, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, now);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = exec_stmt(sq, st, "clear default CA", err);
	stmt_put(st);
	return rc;
}

static const char *
ca_kind(const cf_store_ca *ca)
{
	if (ca->external)
		return "external";
	return ca->is_root ? "root" : "intermediate";
}

/* Insert the row and its events: action ("ca.created"/"ca.registered"), then "ca.default". */
static int
ca_insert_logged(cf_store *store, const cf_store_ca *ca, const char *action,
		 const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int64_t now = cf_store__now(store);
	char *detail = NULL;
	int rc = CF_OK;

	if (ca->is_default)
		rc = clear_default(sq, now, err);
	if (rc == CF_OK)
		rc = ca_insert_row(sq, ca, now, err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "status", cf_ca_status_name(ca->status),
				      "kind", ca_kind(ca), "parent", ca->parent, "cert_id",
				      ca->cert_id, "subject", ca->subject, "key_type",
				      ca->key_type, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, action, "ca", ca->name, detail, NULL, err);
	free(detail);
	detail = NULL;
	if (rc == CF_OK && ca->is_default) {
		rc = cf_store__detail(&detail, actor, err, NULL);
		if (rc == CF_OK)
			rc = event_log(store, actor, "ca.default", "ca", ca->name, detail, NULL,
				       err);
		free(detail);
	}
	return rc;
}

static int
sq_ca_insert(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = ca_insert_logged(store, ca, "ca.created", actor, err);
	return tx_end(sq, rc, err);
}

/* Status and root flag of a CA. CF_ENOTFOUND. */
static int
ca_state(struct sq *sq, const char *name, cf_ca_status *status, bool *is_root, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CA_STATE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, name);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, &row, "read CA", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "CA '%s' not found", name);
	if (rc == CF_OK) {
		*is_root = sqlite3_column_int(st, 1) != 0;
		if (cf_store__ca_status_parse(status, (const char *)sqlite3_column_text(st, 0)) !=
		    CF_OK)
			rc = cf_err_set(err, CF_ESTORE, NULL, "CA '%s' has a bad status", name);
	}
	stmt_put(st);
	return rc;
}

static int
ca_activate_row(struct sq *sq, const cf_store_ca *ca, int64_t now, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CA_ACTIVATE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, ca->name);
	bind_str(&brc, st, 2, ca->cert_id);
	bind_str(&brc, st, 3, ca->subject);
	bind_str(&brc, st, 4, ca->cert_pem);
	bind_str(&brc, st, 5, ca->parent);
	bind_str(&brc, st, 6, ca->key_type);
	bind_int(&brc, st, 7, ca->not_before);
	bind_int(&brc, st, 8, ca->not_after);
	bind_int(&brc, st, 9, now);
	if (brc != SQLITE_OK) {
		rc = bind_fail(sq, brc, err);
		goto out;
	}
	rc = sqlite3_step(st);
	if (is_constraint(rc, SQLITE_CONSTRAINT_UNIQUE))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "CA certificate %.16s is already registered",
				ca->cert_id);
	else
		rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "activate CA", err);
out:
	stmt_put(st);
	return rc;
}

static int
sq_ca_activate(cf_store *store, const cf_store_ca *ca, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_ca_status status;
	char *detail = NULL;
	bool is_root;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = ca_state(sq, ca->name, &status, &is_root, err);
	if (rc == CF_OK && status != CF_CA_PENDING)
		rc = cf_err_set(err, CF_ESTATE, NULL, "CA '%s' is %s, not PENDING", ca->name,
				cf_ca_status_name(status));
	if (rc == CF_OK)
		rc = ca_activate_row(sq, ca, cf_store__now(store), err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "cert_id", ca->cert_id, "parent",
				      ca->parent, "subject", ca->subject, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "ca.activated", "ca", ca->name, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_ca_get(cf_store *store, cf_store_ca *out, const char *by, const char *key, cf_err *err)
{
	struct sq *sq = sq_of(store);

	memset(out, 0, sizeof(*out));
	if (strcmp(by, "name") == 0)
		return get_one(sq, ST_CA_BY_NAME, key, read_ca_any, out, "CA", err);
	if (strcmp(by, "cert_id") == 0)
		return get_one(sq, ST_CA_BY_CERT, key, read_ca_any, out, "CA certificate", err);
	return get_one(sq, ST_CA_DEFAULT, NULL, read_ca_any, out, "default CA", err);
}

/*
 * Step a list statement and hand each row to cb through read. A non-zero
 * return from cb stops the walk and is returned as is.
 */
typedef int (*row_visit)(sqlite3_stmt *st, void *cb, void *payload, cf_err *err);

static int
walk(struct sq *sq, sqlite3_stmt *st, row_visit visit, void *cb, void *payload, cf_err *err)
{
	int rc, sqlrc;

	for (;;) {
		sqlrc = sqlite3_step(st);
		if (sqlrc == SQLITE_DONE)
			return CF_OK;
		if (sqlrc != SQLITE_ROW)
			return db_fail(sq, sqlrc, "list", err);
		rc = visit(st, cb, payload, err);
		if (rc != 0)
			return rc;
	}
}

/*
 * Callbacks are passed through walk() as void *; a union-free way to carry
 * a function pointer is a small struct per type.
 */
struct ca_cb_box {
	cf_store_ca_cb cb;
};
struct thing_cb_box {
	cf_store_thing_cb cb;
};
struct cert_cb_box {
	cf_store_cert_cb cb;
};
struct policy_cb_box {
	cf_store_policy_cb cb;
};
struct event_cb_box {
	cf_store_event_cb cb;
};

static int
visit_ca(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_ca ca;
	int rc;

	rc = read_ca(&ca, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct ca_cb_box *)box)->cb(&ca, payload);
	cf_store_ca_clear(&ca);
	return rc;
}

static int
visit_thing(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_thing thing;
	int rc;

	rc = read_thing(&thing, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct thing_cb_box *)box)->cb(&thing, payload);
	cf_store_thing_clear(&thing);
	return rc;
}

static int
visit_cert(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_cert cert;
	int rc;

	rc = read_cert(&cert, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct cert_cb_box *)box)->cb(&cert, payload);
	cf_store_cert_clear(&cert);
	return rc;
}

static int
visit_policy(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_policy policy;
	int rc;

	rc = read_policy(&policy, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct policy_cb_box *)box)->cb(&policy, payload);
	cf_store_policy_clear(&policy);
	return rc;
}

static int
visit_event(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_event event;
	int rc;

	rc = read_event(&event, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct event_cb_box *)box)->cb(&event, payload);
	cf_store_event_clear(&event);
	return rc;
}

/* Run list statement id (optionally with one text parameter) through visit. */
static int
list_simple(struct sq *sq, enum list_id id, const char *param, row_visit visit, void *box,
	    void *payload, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool temp = false;
	int rc, brc = SQLITE_OK;

	rc = list_get(&st, &temp, sq, &sq->lists[id], list_sql[id], err);
	if (rc != CF_OK)
		return rc;
	if (param != NULL)
		bind_str(&brc, st, 1, param);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	if (rc == CF_OK)
		rc = walk(sq, st, visit, box, payload, err);
	list_put(st, temp);
	return rc;
}

static int
sq_ca_list(cf_store *store, cf_store_ca_cb cb, void *payload, cf_err *err)
{
	struct ca_cb_box box = { cb };

	return list_simple(sq_of(store), LS_CA, NULL, visit_ca, &box, payload, err);
}

/* The name of the current default CA into *out (NULL when none). */
static int
default_name(struct sq *sq, char **out, cf_err *err)
{
	cf_store_ca ca;
	int rc;

	*out = NULL;
	rc = get_one(sq, ST_CA_DEFAULT, NULL, read_ca_any, &ca, "default CA", NULL);
	if (rc == CF_ENOTFOUND)
		return CF_OK;
	if (rc != CF_OK)
		return cf_err_set(err, rc, NULL, "sqlite %s: cannot read the default CA", sq->path);
	*out = ca.name;
	ca.name = NULL;
	cf_store_ca_clear(&ca);
	return CF_OK;
}

static int
ca_default_row(struct sq *sq, const char *name, int64_t now, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CA_SET_DEFAULT, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, name);
	bind_int(&brc, st, 2, now);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "set default CA", err);
	stmt_put(st);
	return rc;
}

static int
sq_ca_set_default(cf_store *store, const char *name, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int64_t now = cf_store__now(store);
	char *previous = NULL, *detail = NULL;
	cf_ca_status status;
	bool is_root;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = ca_state(sq, name, &status, &is_root, err);
	if (rc == CF_OK && (status != CF_CA_ACTIVE || is_root))
		rc = cf_err_set(err, CF_ESTATE, NULL,
				"CA '%s' is %s%s: only an ACTIVE intermediate can be the default",
				name, is_root ? "a root, " : "", cf_ca_status_name(status));
	if (rc == CF_OK)
		rc = default_name(sq, &previous, err);
	if (rc == CF_OK)
		rc = clear_default(sq, now, err);
	if (rc == CF_OK)
		rc = ca_default_row(sq, name, now, err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "previous", previous, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "ca.default", "ca", name, detail, NULL, err);
	free(previous);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
ca_status_row(struct sq *sq, const char *name, cf_ca_status to, const char *reason, int64_t now,
	      cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CA_SET_STATUS, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, name);
	bind_str(&brc, st, 2, cf_ca_status_name(to));
	bind_str(&brc, st, 3, to == CF_CA_REVOKED ? reason : NULL);
	bind_int(&brc, st, 4, now);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "set CA status", err);
	stmt_put(st);
	return rc;
}

static int
sq_ca_set_status(cf_store *store, const char *name, cf_ca_status to, const char *reason,
		 const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_ca_status from;
	char *detail = NULL;
	bool is_root;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = ca_state(sq, name, &from, &is_root, err);
	if (rc == CF_OK && !cf_store__ca_transition_allowed(from, to))
		rc = cf_err_set(err, CF_ESTATE, NULL, "CA '%s': %s -> %s is not allowed", name,
				cf_ca_status_name(from), cf_ca_status_name(to));
	if (rc == CF_OK)
		rc = ca_status_row(sq, name, to, reason, cf_store__now(store), err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "from", cf_ca_status_name(from), "to",
				      cf_ca_status_name(to), "reason",
				      to == CF_CA_REVOKED ? reason : NULL, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "ca.status", "ca", name, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

/* ---- registration codes -------------------------------------------------- */

static int
sq_regcode_create(cf_store *store, const char *digest, int64_t expires_at,
		  const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	char *detail = NULL;
	char when[CF_TIME_BUF], id[17];
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_REGCODE_INSERT, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, digest);
		bind_int(&brc, st, 2, cf_store__now(store));
		bind_int(&brc, st, 3, expires_at);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "insert registration code", err);
	}
	stmt_put(st);
	/* The event names the code by a digest prefix: never the code itself. */
	memcpy(id, digest, 16);
	id[16] = '\0';
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "expires_at",
				      cf_time_format(when, expires_at), NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "regcode.created", "regcode", id, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

/* Mark the code used by ca_name; CF_ENOTFOUND unless it was unused and unexpired. */
static int
regcode_use(cf_store *store, const char *digest, const char *ca_name, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_REGCODE_USE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, digest);
	bind_int(&brc, st, 2, cf_store__now(store));
	bind_str(&brc, st, 3, ca_name);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : exec_stmt(sq, st, "use registration code", err);
	if (rc == CF_OK && sqlite3_changes(sq->db) != 1)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL,
				"registration code unknown, already used or expired");
	stmt_put(st);
	return rc;
}

static int
sq_ca_register(cf_store *store, const cf_store_ca *ca, const char *digest,
	       const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_store_ca copy = *ca; /* shallow: only the flag differs */
	int rc;

	copy.external = true;
	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = regcode_use(store, digest, ca->name, err);
	if (rc == CF_OK)
		rc = ca_insert_logged(store, &copy, "ca.registered", actor, err);
	return tx_end(sq, rc, err);
}

/* ---- things -------------------------------------------------------------- */

static int
sq_thing_insert(cf_store *store, const char *name, const char *attributes,
		const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	char *detail = NULL;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_THING_INSERT, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, name);
		bind_str(&brc, st, 2, attributes);
		bind_int(&brc, st, 3, cf_store__now(store));
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : sqlite3_step(st);
		if (brc == SQLITE_OK && is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
			rc = cf_err_set(err, CF_EEXISTS, NULL, "thing '%s' already exists", name);
		else if (brc == SQLITE_OK)
			rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "insert thing", err);
	}
	stmt_put(st);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "attributes", attributes, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "thing.created", "thing", name, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_thing_get(cf_store *store, cf_store_thing *out, const char *name, cf_err *err)
{
	memset(out, 0, sizeof(*out));
	return get_one(sq_of(store), ST_THING_GET, name, read_thing_any, out, "thing", err);
}

static int
sq_thing_list(cf_store *store, cf_store_thing_cb cb, void *payload, cf_err *err)
{
	struct thing_cb_box box = { cb };

	return list_simple(sq_of(store), LS_THING, NULL, visit_thing, &box, payload, err);
}

static int
live_cert_count(struct sq *sq, const char *thing, int64_t *count, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	*count = 0;
	rc = stmt_get(&st, sq, ST_THING_LIVE_CERTS, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, thing);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, &row, "count certificates", err);
	if (rc == CF_OK && row)
		*count = sqlite3_column_int64(st, 0);
	stmt_put(st);
	return rc;
}

static int
sq_thing_delete(cf_store *store, const char *name, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *detail = NULL;
	int64_t live = 0;
	bool exists;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = row_exists(&exists, sq, ST_THING_EXISTS, name, err);
	if (rc == CF_OK && !exists)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "thing '%s' not found", name);
	if (rc == CF_OK)
		rc = live_cert_count(sq, name, &live, err);
	if (rc == CF_OK && live > 0)
		rc = cf_err_set(err, CF_ESTATE, NULL,
				"thing '%s' has %lld ACTIVE or PENDING_ACTIVATION certificates",
				name, (long long)live);
	if (rc == CF_OK)
		rc = exec_id1(sq, ST_THING_DELETE, name, "delete thing", err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "thing.deleted", "thing", name, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

/* ---- certificates -------------------------------------------------------- */

static int
cert_insert_row(struct sq *sq, const cf_store_cert *cert, int64_t now, int64_t change_seq,
		cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CERT_INSERT, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, cert->id);
	bind_str(&brc, st, 2, cert->serial);
	bind_str(&brc, st, 3, cert->ca);
	bind_str(&brc, st, 4, cert->thing);
	bind_str(&brc, st, 5, cf_cert_status_name(cert->status));
	bind_int(&brc, st, 6, cert->not_before);
	bind_int(&brc, st, 7, cert->not_after);
	bind_str(&brc, st, 8, cert->key_type);
	bind_int(&brc, st, 9, cert->key_bits);
	bind_str(&brc, st, 10, cert->sig_alg);
	bind_str(&brc, st, 11, cert->spki_sha256);
	bind_str(&brc, st, 12, cert->pem);
	bind_int(&brc, st, 13, now);
	bind_int(&brc, st, 14, now);
	bind_str(&brc, st, 15, NULL);
	bind_int(&brc, st, 16, 0);
	bind_int(&brc, st, 17, change_seq);
	bind_int(&brc, st, 18, 0);
	bind_int(&brc, st, 19, cert->key_roca);
	if (brc != SQLITE_OK) {
		rc = bind_fail(sq, brc, err);
		goto out;
	}
	rc = sqlite3_step(st);
	if (is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "certificate %.16s already exists",
				cert->id);
	else if (is_constraint(rc, SQLITE_CONSTRAINT_UNIQUE))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "serial %s is already used by CA '%s'",
				cert->serial, cert->ca);
	else
		rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "insert certificate", err);
out:
	stmt_put(st);
	return rc;
}

static int
attach_row(struct sq *sq, const char *cert_id, const char *policy, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_ATTACH, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, cert_id);
	bind_str(&brc, st, 2, policy);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : sqlite3_step(st);
	if (brc == SQLITE_OK && is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "policy '%s' is already attached", policy);
	else if (brc == SQLITE_OK)
		rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "attach policy", err);
	stmt_put(st);
	return rc;
}

/* What the issuing CA must be: ACTIVE to issue; anything but REVOKED to register. */
static int
check_issuer(struct sq *sq, const cf_store_cert *cert, bool registered, cf_err *err)
{
	cf_ca_status status;
	bool is_root;
	int rc;

	rc = ca_state(sq, cert->ca, &status, &is_root, err);
	if (rc != CF_OK)
		return rc;
	if (!registered && status != CF_CA_ACTIVE)
		return cf_err_set(err, CF_ESTATE, NULL, "CA '%s' is %s: it cannot issue",
				  cert->ca, cf_ca_status_name(status));
	if (registered && status == CF_CA_REVOKED)
		return cf_err_set(err, CF_ESTATE, NULL, "CA '%s' is REVOKED", cert->ca);
	return CF_OK;
}

/*
 * What a batch has already checked, inside its transaction: a batch
 * usually names one CA and one policy, and those checks cannot change
 * before the commit.
 */
struct batch_memo {
	const char *issuer_ok;   /* a CA that may issue, or NULL */
	const char *policy_ok[4];
	size_t npolicy_ok;
};

static bool
memo_has_policy(const struct batch_memo *memo, const char *name)
{
	size_t i;

	for (i = 0; i < memo->npolicy_ok; i++) {
		if (strcmp(memo->policy_ok[i], name) == 0)
			return true;
	}
	return false;
}

/* The thing and every policy must exist (certs.thing is not a foreign key). */
static int
check_references(struct sq *sq, struct batch_memo *memo, const cf_store_cert *cert,
		 const char *const *policies, size_t npolicies, cf_err *err)
{
	bool exists;
	size_t i;
	int rc;

	if (cert->thing != NULL) {
		rc = row_exists(&exists, sq, ST_THING_EXISTS, cert->thing, err);
		if (rc != CF_OK)
			return rc;
		if (!exists)
			return cf_err_set(err, CF_ENOTFOUND, NULL, "thing '%s' not found",
					  cert->thing);
	}
	for (i = 0; i < npolicies; i++) {
		if (memo_has_policy(memo, policies[i]))
			continue;
		rc = row_exists(&exists, sq, ST_POLICY_EXISTS, policies[i], err);
		if (rc != CF_OK)
			return rc;
		if (!exists)
			return cf_err_set(err, CF_ENOTFOUND, NULL, "policy '%s' not found",
					  policies[i]);
		if (memo->npolicy_ok < CF_ARRAY_LEN(memo->policy_ok))
			memo->policy_ok[memo->npolicy_ok++] = policies[i];
	}
	return CF_OK;
}

/* One certificate with its policies and event, inside the caller's transaction. */
static int
cert_insert_one(cf_store *store, struct batch_memo *memo, const cf_store_cert_new *item,
		const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	const cf_store_cert *cert = item->cert;
	char *detail = NULL;
	int64_t seq = 0;
	size_t i;
	int rc = CF_OK;

	if (item->registered || memo->issuer_ok == NULL || strcmp(memo->issuer_ok, cert->ca) != 0)
		rc = check_issuer(sq, cert, item->registered, err);
	if (rc == CF_OK && !item->registered)
		memo->issuer_ok = cert->ca;
	if (rc == CF_OK)
		rc = check_references(sq, memo, cert, item->policies, item->npolicies, err);
	if (rc == CF_OK)
		rc = cf_store__detail_cert(&detail, cert, item->policies, item->npolicies, actor,
					   err);
	/* The event first, so that its seq becomes the row's change_seq. */
	if (rc == CF_OK)
		rc = event_log(store, actor, item->registered ? "cert.registered" : "cert.issued",
			       "cert", cert->id, detail, &seq, err);
	if (rc == CF_OK)
		rc = cert_insert_row(sq, cert, cf_store__now(store), seq, err);
	for (i = 0; rc == CF_OK && i < item->npolicies; i++)
		rc = attach_row(sq, cert->id, item->policies[i], err);
	free(detail);
	return rc;
}

/*
 * The issuance hot path. Group commit: every statement cached, one
 * transaction for the whole batch (the locks, the WAL commit and the
 * checkpoints are paid once), and a savepoint per certificate so that one
 * refused certificate leaves the others in.
 */
static int
sq_cert_insert_batch(cf_store *store, cf_store_cert_new *items, size_t n,
		     const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct batch_memo memo;
	size_t i;
	int rc;

	memset(&memo, 0, sizeof(memo));
	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc == CF_OK) {
		for (i = 0; rc == CF_OK && i < n; i++) {
			if (items[i].rc != CF_OK)
				continue;
			/* One more level: a savepoint, whether or not the batch is one. */
			rc = tx_begin(sq, ST_BEGIN_WRITE, err);
			if (rc != CF_OK)
				break;
			items[i].rc = cert_insert_one(store, &memo, &items[i], actor,
						      &items[i].err);
			rc = tx_close(sq, items[i].rc == CF_OK, err);
		}
		rc = tx_end(sq, rc, err);
	}
	/* Nothing was written: every item that looked fine shares the failure. */
	for (i = 0; rc != CF_OK && i < n; i++) {
		if (items[i].rc == CF_OK) {
			items[i].rc = rc;
			if (err != NULL)
				items[i].err = *err;
		}
	}
	return rc;
}

static int
sq_cert_get(cf_store *store, cf_store_cert *out, const char *id, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	memset(out, 0, sizeof(*out));
	if (strlen(id) == 64)
		return get_one(sq, ST_CERT_GET, id, read_cert_any, out, "certificate", err);
	rc = stmt_get(&st, sq, ST_CERT_PREFIX, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, id);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, &row, "find certificate", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "certificate '%s' not found", id);
	if (rc == CF_OK)
		rc = read_cert(out, st, err);
	if (rc == CF_OK) {
		rc = step_row(sq, st, &row, "find certificate", err);
		if (rc == CF_OK && row)
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"certificate prefix '%s' is ambiguous", id);
		if (rc != CF_OK)
			cf_store_cert_clear(out);
	}
	stmt_put(st);
	return rc;
}

static int
sq_cert_get_by_serial(cf_store *store, cf_store_cert *out, const char *ca, const char *serial,
		      cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CERT_BY_SERIAL, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, ca);
	bind_str(&brc, st, 2, serial);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : step_row(sq, st, &row, "find certificate by serial", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL,
				"CA '%.64s' has no certificate with serial %s", ca, serial);
	if (rc == CF_OK)
		rc = read_cert(out, st, err);
	stmt_put(st);
	return rc;
}

/* The SQL for one combination of cert_list filters (mask of CF_THING ...). */
static void
cert_list_sql(char *buf, size_t len, unsigned int mask)
{
	snprintf(buf, len, "SELECT " CERT_COLS " FROM certs WHERE 1%s%s%s%s%s "
		 "ORDER BY not_after, id LIMIT ?5",
		 (mask & CF_THING) ? " AND thing = ?1" : "", (mask & CF_CA) ? " AND ca = ?2" : "",
		 (mask & CF_STATUS) ? " AND status = ?3" : "",
		 (mask & CF_BEFORE) ? " AND not_after < ?4" : "",
		 (mask & CF_LIVE) ? " AND deleted_at = 0" : "");
}

static int
sq_cert_list(cf_store *store, const cf_store_cert_filter *filter, cf_store_cert_cb cb,
	     void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct cert_cb_box box = { cb };
	sqlite3_stmt *st = NULL;
	unsigned int mask = 0;
	bool temp = false;
	char sql[512];
	int rc, brc = SQLITE_OK;

	mask |= filter->thing != NULL ? CF_THING : 0;
	mask |= filter->ca != NULL ? CF_CA : 0;
	mask |= filter->status >= 0 ? CF_STATUS : 0;
	mask |= filter->not_after_before != 0 ? CF_BEFORE : 0;
	mask |= filter->include_deleted ? 0 : CF_LIVE;
	cert_list_sql(sql, sizeof(sql), mask);
	rc = list_get(&st, &temp, sq, &sq->cert_lists[mask], sql, err);
	if (rc != CF_OK)
		return rc;
	if (mask & CF_THING)
		bind_str(&brc, st, 1, filter->thing);
	if (mask & CF_CA)
		bind_str(&brc, st, 2, filter->ca);
	if (mask & CF_STATUS)
		bind_str(&brc, st, 3, cf_cert_status_name((cf_cert_status)filter->status));
	if (mask & CF_BEFORE)
		bind_int(&brc, st, 4, filter->not_after_before);
	bind_int(&brc, st, 5, filter->limit > 0 ? filter->limit : -1);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = walk(sq, st, visit_cert, &box, payload, err);
	list_put(st, temp);
	return rc;
}

/*
 * cert_scan: NOT INDEXED keeps SQLite off certs_status_not_after, whose
 * rowid lookups cost more than reading the table in order when most
 * certificates match. No PEM, no sort, columns handed out as they are.
 */
static int
sq_cert_scan(cf_store *store, const char *policy, int status, bool include_deleted,
	     cf_store_cert_facts_cb cb, void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	unsigned int mask = (status >= 0 ? 1u : 0u) | (include_deleted ? 0u : 2u) |
			    (policy != NULL ? 4u : 0u);
	cf_store_cert_facts f;
	sqlite3_stmt *st = NULL;
	bool temp = false;
	char sql[400];
	int rc, sqlrc, brc = SQLITE_OK;

	/*
	 * With a policy, from its attachments: one pass over cert_policies (no
	 * index on the policy side) and a lookup per attached certificate.
	 * CROSS JOIN keeps that order: left to itself the planner starts from
	 * the status index and visits every ACTIVE certificate.
	 */
	snprintf(sql, sizeof(sql),
		 "SELECT " FACTS_COLS " FROM %s WHERE 1%s%s%s",
		 (mask & 4u) ? "cert_policies p CROSS JOIN certs c ON c.id = p.cert_id"
			     : "certs c NOT INDEXED",
		 (mask & 1u) ? " AND c.status = ?1" : "", (mask & 2u) ? " AND c.deleted_at = 0" : "",
		 (mask & 4u) ? " AND p.policy = ?2" : "");
	rc = list_get(&st, &temp, sq, &sq->cert_scans[mask], sql, err);
	if (rc != CF_OK)
		return rc;
	if (mask & 1u)
		bind_str(&brc, st, 1, cf_cert_status_name((cf_cert_status)status));
	if (mask & 4u)
		bind_str(&brc, st, 2, policy);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	while (rc == CF_OK) {
		sqlrc = sqlite3_step(st);
		if (sqlrc == SQLITE_DONE)
			break;
		if (sqlrc != SQLITE_ROW) {
			rc = db_fail(sq, sqlrc, "scan certificates", err);
			break;
		}
		memset(&f, 0, sizeof(f));
		f.id = (const char *)sqlite3_column_text(st, 0);
		f.ca = (const char *)sqlite3_column_text(st, 1);
		f.thing = (const char *)sqlite3_column_text(st, 2);
		f.not_before = sqlite3_column_int64(st, 4);
		f.not_after = sqlite3_column_int64(st, 5);
		f.key_type = (const char *)sqlite3_column_text(st, 6);
		f.key_bits = sqlite3_column_int(st, 7);
		f.sig_alg = (const char *)sqlite3_column_text(st, 8);
		f.spki_sha256 = (const char *)sqlite3_column_text(st, 9);
		f.created_at = sqlite3_column_int64(st, 10);
		f.deleted_at = sqlite3_column_int64(st, 11);
		f.key_roca = sqlite3_column_int(st, 12) != 0;
		/* NOT NULL columns: NULL here means SQLite ran out of memory converting. */
		if (f.id == NULL || f.ca == NULL || f.key_type == NULL || f.sig_alg == NULL ||
		    f.spki_sha256 == NULL ||
		    cf_cert_status_parse(&f.status, (const char *)sqlite3_column_text(st, 3)) !=
			    CF_OK) {
			rc = cf_err_set(err, CF_ENOMEM, NULL, "reading a certificate row");
			break;
		}
		rc = cb(&f, payload);
	}
	list_put(st, temp);
	return rc;
}

/*
 * Status, thing and deletion time of a certificate (deleted_at may be NULL).
 * CF_ENOTFOUND. *thing is freed with free().
 */
static int
cert_state(struct sq *sq, const char *id, cf_cert_status *status, char **thing,
	   int64_t *deleted_at, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	*thing = NULL;
	rc = stmt_get(&st, sq, ST_CERT_STATE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, id);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, &row, "read certificate", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "certificate '%.16s' not found", id);
	if (rc == CF_OK &&
	    cf_cert_status_parse(status, (const char *)sqlite3_column_text(st, 0)) != CF_OK)
		rc = cf_err_set(err, CF_ESTORE, NULL, "certificate %.16s has a bad status", id);
	if (rc == CF_OK && col_dup(thing, st, 1) != 0)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "reading a certificate");
	if (rc == CF_OK && deleted_at != NULL)
		*deleted_at = sqlite3_column_int64(st, 2);
	stmt_put(st);
	return rc;
}

static int
cert_status_row(cf_store *store, const char *id, cf_cert_status to, const char *reason,
		int64_t seq, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int64_t now = cf_store__now(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CERT_SET_STATUS, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, id);
	bind_str(&brc, st, 2, cf_cert_status_name(to));
	bind_str(&brc, st, 3, to == CF_CERT_REVOKED ? reason : NULL);
	bind_int(&brc, st, 4, to == CF_CERT_REVOKED ? now : 0);
	bind_int(&brc, st, 5, now);
	bind_int(&brc, st, 6, seq);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : exec_stmt(sq, st, "set certificate status", err);
	stmt_put(st);
	return rc;
}

/* May the certificate go from -> to? The rules themselves live in store.c. */
static int
check_transition(struct sq *sq, const char *id, cf_cert_status from, cf_cert_status to,
		 const char *thing, bool deleted, cf_err *err)
{
	bool exists = true;
	int rc;

	if (!cf_cert_transition_allowed(from, to))
		return cf_err_set(err, CF_ESTATE, NULL, "certificate %.16s: %s -> %s is not allowed",
				  id, cf_cert_status_name(from), cf_cert_status_name(to));
	if (to == CF_CERT_ACTIVE && deleted)
		return cf_err_set(err, CF_ESTATE, NULL, "certificate %.16s was deleted", id);
	/* A deleted thing's name may be reused: its old certificates must stay shut. */
	if (to == CF_CERT_ACTIVE && thing != NULL) {
		rc = row_exists(&exists, sq, ST_THING_EXISTS, thing, err);
		if (rc != CF_OK)
			return rc;
		if (!exists)
			return cf_err_set(err, CF_ESTATE, NULL,
					  "certificate %.16s: thing '%s' was deleted", id, thing);
	}
	return CF_OK;
}

static int
sq_cert_transition(cf_store *store, const char *id, cf_cert_status to, const char *reason,
		   const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *thing = NULL, *detail = NULL;
	cf_cert_status from = CF_CERT_PENDING_ACTIVATION;
	int64_t seq = 0, deleted_at = 0;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = cert_state(sq, id, &from, &thing, &deleted_at, err);
	if (rc == CF_OK)
		rc = check_transition(sq, id, from, to, thing, deleted_at != 0, err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "from", cf_cert_status_name(from), "to",
				      cf_cert_status_name(to), "reason", reason, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "cert.status", "cert", id, detail, &seq, err);
	if (rc == CF_OK)
		rc = cert_status_row(store, id, to, reason, seq, err);
	/* In use again: a rotation's grace period must not delete it. */
	if (rc == CF_OK && to == CF_CERT_ACTIVE)
		rc = exec_id1(sq, ST_ROT_SETTLE, id, "settle rotations", err);
	free(thing);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
cert_delete_row(cf_store *store, const char *id, int64_t seq, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CERT_DELETE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, id);
	bind_int(&brc, st, 2, cf_store__now(store));
	bind_int(&brc, st, 3, seq);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : exec_stmt(sq, st, "delete certificate", err);
	stmt_put(st);
	return rc;
}

/* The soft delete: the row stays, marked, with its event; pending rotation deletes settle. */
static int
sq_cert_delete(cf_store *store, const char *id, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *thing = NULL, *detail = NULL;
	cf_cert_status status = CF_CERT_ACTIVE;
	int64_t seq = 0, deleted_at = 0;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = cert_state(sq, id, &status, &thing, &deleted_at, err);
	if (rc == CF_OK && deleted_at != 0)
		rc = cf_err_set(err, CF_ESTATE, NULL, "certificate %.16s is already deleted", id);
	if (rc == CF_OK && status != CF_CERT_INACTIVE && status != CF_CERT_REVOKED)
		rc = cf_err_set(err, CF_ESTATE, NULL,
				"certificate %.16s is %s: only an INACTIVE or REVOKED one is "
				"deleted", id, cf_cert_status_name(status));
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "status", cf_cert_status_name(status),
				      NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "cert.deleted", "cert", id, detail, &seq, err);
	if (rc == CF_OK)
		rc = cert_delete_row(store, id, seq, err);
	if (rc == CF_OK)
		rc = exec_id1(sq, ST_ROT_SETTLE, id, "settle rotations", err);
	free(thing);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_cert_changes(cf_store *store, int64_t after_seq, int64_t limit, cf_store_cert_cb cb,
		void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct cert_cb_box box = { cb };
	sqlite3_stmt *st = NULL;
	bool temp = false;
	int rc, brc = SQLITE_OK;

	rc = list_get(&st, &temp, sq, &sq->lists[LS_CHANGES], list_sql[LS_CHANGES], err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, after_seq);
	bind_int(&brc, st, 2, limit > 0 ? limit : -1);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = walk(sq, st, visit_cert, &box, payload, err);
	list_put(st, temp);
	return rc;
}

/* ---- policies ------------------------------------------------------------ */

static int
sq_policy_insert(cf_store *store, const char *name, const char *document,
		 const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	char *detail = NULL;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_POLICY_INSERT, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, name);
		bind_str(&brc, st, 2, document);
		bind_int(&brc, st, 3, cf_store__now(store));
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : sqlite3_step(st);
		if (brc == SQLITE_OK && is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
			rc = cf_err_set(err, CF_EEXISTS, NULL, "policy '%s' already exists", name);
		else if (brc == SQLITE_OK)
			rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "insert policy", err);
	}
	stmt_put(st);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "policy.created", "policy", name, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_policy_get(cf_store *store, cf_store_policy *out, const char *name, cf_err *err)
{
	memset(out, 0, sizeof(*out));
	return get_one(sq_of(store), ST_POLICY_GET, name, read_policy_any, out, "policy", err);
}

static int
sq_policy_list(cf_store *store, const char *cert_id, cf_store_policy_cb cb, void *payload,
	       cf_err *err)
{
	struct policy_cb_box box = { cb };

	return list_simple(sq_of(store), cert_id == NULL ? LS_POLICY : LS_POLICY_CERT, cert_id,
			   visit_policy, &box, payload, err);
}

/* Both sides must exist; CF_ENOTFOUND names the missing one. */
static int
check_pair(struct sq *sq, const char *name, const char *cert_id, cf_err *err)
{
	bool exists;
	int rc;

	rc = row_exists(&exists, sq, ST_POLICY_EXISTS, name, err);
	if (rc == CF_OK && !exists)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "policy '%s' not found", name);
	if (rc == CF_OK) {
		rc = row_exists(&exists, sq, ST_CERT_STATE, cert_id, err);
		if (rc == CF_OK && !exists)
			rc = cf_err_set(err, CF_ENOTFOUND, NULL, "certificate '%.16s' not found",
					cert_id);
	}
	return rc;
}

/* Bump the certificate's change_seq: what it may do at the broker changed. */
static int
cert_touch(cf_store *store, const char *cert_id, int64_t seq, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_CERT_TOUCH, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, cert_id);
	bind_int(&brc, st, 2, seq);
	bind_int(&brc, st, 3, cf_store__now(store));
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "touch cert", err);
	stmt_put(st);
	return rc;
}

static int
detach_row(struct sq *sq, const char *name, const char *cert_id, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_DETACH, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, cert_id);
	bind_str(&brc, st, 2, name);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "detach policy", err);
	if (rc == CF_OK && sqlite3_changes(sq->db) != 1)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "policy '%s' is not attached to %.16s",
				name, cert_id);
	stmt_put(st);
	return rc;
}

static int
policy_link(cf_store *store, const char *name, const char *cert_id, bool attach,
	    const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *detail = NULL;
	int64_t seq = 0;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = check_pair(sq, name, cert_id, err);
	if (rc == CF_OK)
		rc = attach ? attach_row(sq, cert_id, name, err) : detach_row(sq, name, cert_id, err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "policy", name, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, attach ? "policy.attached" : "policy.detached", "cert",
			       cert_id, detail, &seq, err);
	if (rc == CF_OK)
		rc = cert_touch(store, cert_id, seq, err);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_policy_attach(cf_store *store, const char *name, const char *cert_id,
		 const cf_store_actor *actor, cf_err *err)
{
	return policy_link(store, name, cert_id, true, actor, err);
}

static int
sq_policy_detach(cf_store *store, const char *name, const char *cert_id,
		 const cf_store_actor *actor, cf_err *err)
{
	return policy_link(store, name, cert_id, false, actor, err);
}

/* ---- events -------------------------------------------------------------- */

static int
sq_events_list(cf_store *store, const cf_store_event_filter *filter, cf_store_event_cb cb,
	       void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct event_cb_box box = { cb };
	unsigned int variant = (filter->resource != NULL ? 1u : 0u) |
			       (filter->newest_first ? 2u : 0u);
	sqlite3_stmt *st = NULL;
	bool temp = false;
	char sql[256];
	int rc, brc = SQLITE_OK;

	snprintf(sql, sizeof(sql), "SELECT " EVENT_COLS " FROM events WHERE seq > ?1%s "
		 "ORDER BY seq%s LIMIT ?3", (variant & 1u) ? " AND resource = ?2" : "",
		 (variant & 2u) ? " DESC" : "");
	rc = list_get(&st, &temp, sq, &sq->event_lists[variant], sql, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, filter->after_seq);
	if (variant & 1u)
		bind_str(&brc, st, 2, filter->resource);
	bind_int(&brc, st, 3, filter->limit > 0 ? filter->limit : -1);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = walk(sq, st, visit_event, &box, payload, err);
	list_put(st, temp);
	return rc;
}

static int
sq_events_head(cf_store *store, int64_t *seq, char hash[65], cf_err *err)
{
	return head_get(sq_of(store), seq, hash, err);
}

/* Feed v the events from seq from on, at most rows of them (-1: all). */
static int
verify_events(struct sq *sq, cf_store__verify *v, int64_t from, int64_t rows, int64_t *bad_seq,
	      cf_err *err)
{
	bool all = from <= 1 && rows < 0;
	sqlite3_stmt *st = NULL;
	cf_store_event ev;
	int rc, sqlrc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, all ? ST_EVENTS_ALL : ST_EVENTS_FROM, err);
	if (rc == CF_OK && !all) {
		bind_int(&brc, st, 1, from);
		bind_int(&brc, st, 2, rows);
		if (brc != SQLITE_OK)
			rc = bind_fail(sq, brc, err);
	}
	while (rc == CF_OK) {
		sqlrc = sqlite3_step(st);
		if (sqlrc == SQLITE_DONE)
			break;
		if (sqlrc != SQLITE_ROW) {
			rc = db_fail(sq, sqlrc, "read events", err);
			break;
		}
		read_event_borrowed(&ev, st);
		rc = cf_store__verify_event(v, &ev, bad_seq, err);
	}
	stmt_put(st);
	return rc;
}

static int
verify_certs(struct sq *sq, cf_store__verify *v, int64_t *bad_seq, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, sqlrc;

	rc = stmt_get(&st, sq, ST_CERTS_ALL, err);
	while (rc == CF_OK) {
		sqlrc = sqlite3_step(st);
		if (sqlrc == SQLITE_DONE)
			break;
		if (sqlrc != SQLITE_ROW) {
			rc = db_fail(sq, sqlrc, "read certificates", err);
			break;
		}
		rc = cf_store__verify_cert(v, (const char *)sqlite3_column_text(st, 0),
					   (const char *)sqlite3_column_text(st, 1),
					   sqlite3_column_int64(st, 2),
					   sqlite3_column_int64(st, 3) != 0, bad_seq, err);
	}
	stmt_put(st);
	return rc;
}

static int
verify_links(struct sq *sq, cf_store__verify *v, int64_t *bad_seq, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, sqlrc;

	rc = stmt_get(&st, sq, ST_LINKS_ALL, err);
	while (rc == CF_OK) {
		sqlrc = sqlite3_step(st);
		if (sqlrc == SQLITE_DONE)
			break;
		if (sqlrc != SQLITE_ROW) {
			rc = db_fail(sq, sqlrc, "read policy attachments", err);
			break;
		}
		rc = cf_store__verify_link(v, (const char *)sqlite3_column_text(st, 0),
					   (const char *)sqlite3_column_text(st, 1), bad_seq, err);
	}
	stmt_put(st);
	return rc;
}

static int
sq_events_verify(cf_store *store, const cf_store_event_anchor *anchor, int64_t *count,
		 int64_t *bad_seq, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_store__verify *v = NULL;
	char head_hash[65];
	int64_t head_seq = 0;
	bool began;
	int rc;

	rc = cf_store__verify_new(&v, store, anchor, false, err);
	if (rc != CF_OK)
		return rc;
	/*
	 * One read transaction (a savepoint inside a caller's transaction): the
	 * head, the events and the rows come from one snapshot.
	 */
	rc = tx_begin(sq, ST_BEGIN_READ, err);
	began = rc == CF_OK;
	if (rc == CF_OK)
		rc = head_get(sq, &head_seq, head_hash, err);
	if (rc == CF_OK)
		rc = verify_events(sq, v, 1, -1, bad_seq, err);
	if (rc == CF_OK)
		rc = cf_store__verify_head(v, head_seq, head_hash, bad_seq, err);
	if (rc == CF_OK)
		rc = verify_certs(sq, v, bad_seq, err);
	if (rc == CF_OK)
		rc = verify_links(sq, v, bad_seq, err);
	if (rc == CF_OK)
		rc = cf_store__verify_end(v, bad_seq, err);
	*count = cf_store__verify_count(v);
	if (began)
		(void)tx_close(sq, false, NULL); /* nothing was written */
	cf_store__verify_free(v);
	return rc;
}

static int
sq_events_verify_chain(cf_store *store, const cf_store_event_anchor *anchor, int64_t limit,
		       cf_store_event_anchor *last, int64_t *count, int64_t *bad_seq, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_store__verify *v = NULL;
	char head_hash[65];
	int64_t head_seq = 0, from = anchor != NULL && anchor->seq > 0 ? anchor->seq : 1;
	bool began;
	int rc;

	rc = cf_store__verify_new(&v, store, anchor, true, err);
	if (rc != CF_OK)
		return rc;
	rc = tx_begin(sq, ST_BEGIN_READ, err);
	began = rc == CF_OK;
	if (rc == CF_OK)
		rc = head_get(sq, &head_seq, head_hash, err);
	/* The anchor's own event is read again: limit counts the ones after it. */
	if (rc == CF_OK)
		rc = verify_events(sq, v, from,
				   limit > 0 ? limit + (anchor != NULL && anchor->seq > 0) : -1,
				   bad_seq, err);
	/* The head row is checked when the walk got there (a limited one may stop short). */
	if (rc == CF_OK && (limit == 0 || cf_store__verify_last(v, last) >= head_seq ||
			    cf_store__verify_count(v) == 0))
		rc = cf_store__verify_head(v, head_seq, head_hash, bad_seq, err);
	if (rc == CF_OK)
		(void)cf_store__verify_last(v, last);
	*count = cf_store__verify_count(v);
	if (began)
		(void)tx_close(sq, false, NULL);
	cf_store__verify_free(v);
	return rc;
}

/* ---- rotations ----------------------------------------------------------- */

/*
 * How it works: a rotation row is the persisted state of the rotation
 * engine's state machine for one thing (states and the allowed moves in
 * store.c, cf_rotation_transition_allowed()). The database keeps the one
 * rule that must hold across processes, at most one open (REQUESTED or
 * ISSUED) rotation per thing, with a partial unique index: a second insert
 * fails on the index, whoever checked first. Updates are compare-and-set
 * on the state: the caller says which state it read, the row is read again
 * under the write lock and the UPDATE repeats the condition, so two
 * engines acting on one stale read cannot both win. Each change of state
 * appends "rotation.state" in the same transaction; a re-send of csr_req
 * (REQUESTED -> REQUESTED: new next_send_at and sends) changes timers only
 * and writes no event. The outbox rows that a change causes are added by
 * the caller in the same cf_store_tx_begin() transaction.
 */

static int
read_rotation(cf_store_rotation *out, sqlite3_stmt *st, cf_err *err)
{
	int bad, prc;
	cf_rotation_state state = CF_ROTATION_REQUESTED;

	memset(out, 0, sizeof(*out));
	bad = col_dup(&out->id, st, 0);
	bad |= col_dup(&out->thing, st, 1);
	bad |= col_dup(&out->old_cert, st, 2);
	bad |= col_dup(&out->new_cert, st, 3);
	bad |= col_dup(&out->csr_spki, st, 4);
	prc = cf_rotation_state_parse(&state, (const char *)sqlite3_column_text(st, 5));
	out->state = state;
	out->rekey = sqlite3_column_int(st, 6) != 0;
	bad |= col_dup(&out->key_type, st, 7);
	bad |= col_dup(&out->error, st, 8);
	out->created_at = sqlite3_column_int64(st, 9);
	out->updated_at = sqlite3_column_int64(st, 10);
	out->deadline = sqlite3_column_int64(st, 11);
	out->next_send_at = sqlite3_column_int64(st, 12);
	out->sends = sqlite3_column_int64(st, 13);
	out->delete_old_at = sqlite3_column_int64(st, 14);
	if (bad != 0 || prc != CF_OK) {
		cf_store_rotation_clear(out);
		return cf_err_set(err, bad != 0 ? CF_ENOMEM : CF_ESTORE, NULL,
				  "reading a rotation row");
	}
	return CF_OK;
}

static int
read_rotation_any(void *out, sqlite3_stmt *st, cf_err *err)
{
	return read_rotation(out, st, err);
}

struct rotation_cb_box {
	cf_store_rotation_cb cb;
};

static int
visit_rotation(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_rotation rot;
	int rc;

	rc = read_rotation(&rot, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct rotation_cb_box *)box)->cb(&rot, payload);
	cf_store_rotation_clear(&rot);
	return rc;
}

/* The thing must exist, and old_cert must exist and be bound to it. */
static int
rotation_references(struct sq *sq, const cf_store_rotation *rot, cf_err *err)
{
	cf_cert_status status;
	char *thing = NULL;
	bool exists;
	int rc;

	rc = row_exists(&exists, sq, ST_THING_EXISTS, rot->thing, err);
	if (rc == CF_OK && !exists)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "thing '%s' not found", rot->thing);
	if (rc == CF_OK)
		rc = cert_state(sq, rot->old_cert, &status, &thing, NULL, err);
	if (rc == CF_OK && (thing == NULL || strcmp(thing, rot->thing) != 0))
		rc = cf_err_set(err, CF_EINVAL, NULL,
				"certificate %.16s is not bound to thing '%s'", rot->old_cert,
				rot->thing);
	free(thing);
	return rc;
}

static int
rotation_insert_row(cf_store *store, const cf_store_rotation *rot, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int64_t now = cf_store__now(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_ROT_INSERT, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, rot->id);
	bind_str(&brc, st, 2, rot->thing);
	bind_str(&brc, st, 3, rot->old_cert);
	bind_str(&brc, st, 4, NULL);
	bind_str(&brc, st, 5, NULL);
	bind_str(&brc, st, 6, cf_rotation_state_name(CF_ROTATION_REQUESTED));
	bind_int(&brc, st, 7, rot->rekey ? 1 : 0);
	bind_str(&brc, st, 8, rot->key_type);
	bind_str(&brc, st, 9, NULL);
	bind_int(&brc, st, 10, now);
	bind_int(&brc, st, 11, now);
	bind_int(&brc, st, 12, rot->deadline);
	bind_int(&brc, st, 13, rot->next_send_at);
	bind_int(&brc, st, 14, rot->sends);
	bind_int(&brc, st, 15, 0);
	if (brc != SQLITE_OK) {
		rc = bind_fail(sq, brc, err);
		goto out;
	}
	rc = sqlite3_step(st);
	if (is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "rotation %s already exists", rot->id);
	else if (is_constraint(rc, SQLITE_CONSTRAINT_UNIQUE))
		rc = cf_err_set(err, CF_EEXISTS, NULL, "thing '%s' already has an open rotation",
				rot->thing);
	else
		rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "insert rotation", err);
out:
	stmt_put(st);
	return rc;
}

static int
sq_rotation_insert(cf_store *store, const cf_store_rotation *rot, const cf_store_actor *actor,
		   cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *detail = NULL;
	char deadline[CF_TIME_BUF];
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = rotation_references(sq, rot, err);
	if (rc == CF_OK)
		rc = rotation_insert_row(store, rot, err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "thing", rot->thing, "old_cert",
				      rot->old_cert, "rekey", rot->rekey ? "true" : "false",
				      "key_type", rot->key_type, "deadline",
				      cf_time_format(deadline, rot->deadline), NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "rotation.opened", "rotation", rot->id, detail, NULL,
			       err);
	free(detail);
	return tx_end(sq, rc, err);
}

/* A rotation by a unique id prefix, as sq_cert_get() does for certificates. */
static int
rotation_by_prefix(struct sq *sq, cf_store_rotation *out, const char *prefix, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_ROT_PREFIX, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, prefix);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, &row, "find rotation", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "rotation '%s' not found", prefix);
	if (rc == CF_OK)
		rc = read_rotation(out, st, err);
	if (rc == CF_OK) {
		rc = step_row(sq, st, &row, "find rotation", err);
		if (rc == CF_OK && row)
			rc = cf_err_set(err, CF_EINVAL, NULL, "rotation prefix '%s' is ambiguous",
					prefix);
		if (rc != CF_OK)
			cf_store_rotation_clear(out);
	}
	stmt_put(st);
	return rc;
}

static int
sq_rotation_get(cf_store *store, cf_store_rotation *out, const char *key, bool open,
		cf_err *err)
{
	memset(out, 0, sizeof(*out));
	if (open)
		return get_one(sq_of(store), ST_ROT_OPEN, key, read_rotation_any, out,
			       "open rotation of thing", err);
	if (strlen(key) != 32)
		return rotation_by_prefix(sq_of(store), out, key, err);
	return get_one(sq_of(store), ST_ROT_GET, key, read_rotation_any, out, "rotation", err);
}

/* The stored state of rotation id. CF_ENOTFOUND. */
static int
rotation_state(struct sq *sq, const char *id, cf_rotation_state *out, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_ROT_STATE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, id);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = step_row(sq, st, &row, "read rotation", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "rotation %s not found", id);
	if (rc == CF_OK &&
	    cf_rotation_state_parse(out, (const char *)sqlite3_column_text(st, 0)) != CF_OK)
		rc = cf_err_set(err, CF_ESTORE, NULL, "rotation %s has a bad state", id);
	stmt_put(st);
	return rc;
}

/* The compare-and-set itself: the row changes only if it is still in state expect. */
static int
rotation_update_row(cf_store *store, const cf_store_rotation *rot, cf_rotation_state expect,
		    cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_ROT_UPDATE, err);
	if (rc != CF_OK)
		return rc;
	bind_str(&brc, st, 1, rot->id);
	bind_str(&brc, st, 2, cf_rotation_state_name(rot->state));
	bind_str(&brc, st, 3, rot->new_cert);
	bind_str(&brc, st, 4, rot->csr_spki);
	bind_str(&brc, st, 5, rot->error);
	bind_int(&brc, st, 6, rot->next_send_at);
	bind_int(&brc, st, 7, rot->sends);
	bind_int(&brc, st, 8, cf_store__now(store));
	bind_str(&brc, st, 9, cf_rotation_state_name(expect));
	bind_int(&brc, st, 10, rot->delete_old_at);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : exec_stmt(sq, st, "update rotation", err);
	if (rc == CF_OK && sqlite3_changes(sq->db) != 1)
		rc = cf_err_set(err, CF_ESTATE, NULL, "rotation %s is no longer %s", rot->id,
				cf_rotation_state_name(expect));
	stmt_put(st);
	return rc;
}

static int
sq_rotation_update(cf_store *store, const cf_store_rotation *rot, cf_rotation_state expect,
		   const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_rotation_state from = CF_ROTATION_REQUESTED;
	char *detail = NULL;
	bool exists = true;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = rotation_state(sq, rot->id, &from, err);
	if (rc == CF_OK && from != expect)
		rc = cf_err_set(err, CF_ESTATE, NULL, "rotation %s is %s, not %s", rot->id,
				cf_rotation_state_name(from), cf_rotation_state_name(expect));
	if (rc == CF_OK && !cf_rotation_transition_allowed(from, rot->state))
		rc = cf_err_set(err, CF_ESTATE, NULL, "rotation %s: %s -> %s is not allowed",
				rot->id, cf_rotation_state_name(from),
				cf_rotation_state_name(rot->state));
	if (rc == CF_OK && rot->new_cert != NULL)
		rc = row_exists(&exists, sq, ST_CERT_EXISTS, rot->new_cert, err);
	if (rc == CF_OK && !exists)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "certificate %.16s not found",
				rot->new_cert);
	if (rc == CF_OK)
		rc = rotation_update_row(store, rot, expect, err);
	/* Events record changes of state; a re-send only moves timers. */
	if (rc == CF_OK && from != rot->state)
		rc = cf_store__detail(&detail, actor, err, "from", cf_rotation_state_name(from),
				      "to", cf_rotation_state_name(rot->state), "error",
				      rot->error, "new_cert", rot->new_cert, NULL);
	if (rc == CF_OK && from != rot->state)
		rc = event_log(store, actor, "rotation.state", "rotation", rot->id, detail, NULL,
			       err);
	free(detail);
	return tx_end(sq, rc, err);
}

/* The SQL for one combination of rotation_list filters (mask of RF_STATE ...). */
static void
rotation_list_sql(char *buf, size_t len, unsigned int mask)
{
	const char *order = "created_at, id";

	if (mask & RF_DUE)
		order = "next_send_at, id";
	else if (mask & RF_EXPIRED)
		order = "deadline, id";
	else if (mask & RF_DELETE_DUE)
		order = "delete_old_at, id";
	snprintf(buf, len, "SELECT " ROT_COLS " FROM rotations WHERE 1%s%s%s%s%s ORDER BY %s "
		 "LIMIT ?5",
		 (mask & RF_STATE) ? " AND state = ?1" : "",
		 (mask & RF_THING) ? " AND thing = ?2" : "",
		 (mask & RF_DUE) ? " AND state IN " OPEN_STATES " AND next_send_at <= ?3" : "",
		 (mask & RF_EXPIRED) ? " AND state IN " OPEN_STATES " AND deadline <= ?4" : "",
		 (mask & RF_DELETE_DUE) ? " AND delete_old_at > 0 AND delete_old_at <= ?6" : "",
		 order);
}

static int
sq_rotation_list(cf_store *store, const cf_store_rotation_filter *filter,
		 cf_store_rotation_cb cb, void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct rotation_cb_box box = { cb };
	sqlite3_stmt *st = NULL;
	unsigned int mask = 0;
	bool temp = false;
	char sql[512];
	int rc, brc = SQLITE_OK;

	mask |= filter->state >= 0 ? RF_STATE : 0;
	mask |= filter->thing != NULL ? RF_THING : 0;
	mask |= filter->due_by != 0 ? RF_DUE : 0;
	mask |= filter->expired_by != 0 ? RF_EXPIRED : 0;
	mask |= filter->delete_due_by != 0 ? RF_DELETE_DUE : 0;
	rotation_list_sql(sql, sizeof(sql), mask);
	rc = list_get(&st, &temp, sq, &sq->rotation_lists[mask], sql, err);
	if (rc != CF_OK)
		return rc;
	if (mask & RF_STATE)
		bind_str(&brc, st, 1, cf_rotation_state_name((cf_rotation_state)filter->state));
	if (mask & RF_THING)
		bind_str(&brc, st, 2, filter->thing);
	if (mask & RF_DUE)
		bind_int(&brc, st, 3, filter->due_by);
	if (mask & RF_EXPIRED)
		bind_int(&brc, st, 4, filter->expired_by);
	if (mask & RF_DELETE_DUE)
		bind_int(&brc, st, 6, filter->delete_due_by);
	bind_int(&brc, st, 5, filter->limit > 0 ? filter->limit : -1);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = walk(sq, st, visit_rotation, &box, payload, err);
	list_put(st, temp);
	return rc;
}

/* A step that changes no row: only its event, on a rotation that must exist. */
static int
sq_rotation_event(cf_store *store, const char *id, const char *action, const char *code,
		  const char *cert_id, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_rotation_state state;
	char *detail = NULL;
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = rotation_state(sq, id, &state, err);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "state", cf_rotation_state_name(state),
				      "code", code, "cert", cert_id, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, action, "rotation", id, detail, NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

/* ---- outbox -------------------------------------------------------------- */

static int
sq_outbox_add(cf_store *store, const char *topic, const char *payload, int64_t *id_out,
	      cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_OUTBOX_ADD, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, topic);
		bind_str(&brc, st, 2, payload);
		bind_int(&brc, st, 3, cf_store__now(store));
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "add outbox message", err);
	}
	if (rc == CF_OK)
		*id_out = sqlite3_last_insert_rowid(sq->db);
	stmt_put(st);
	return tx_end(sq, rc, err);
}

struct outbox_cb_box {
	cf_store_outbox_cb cb;
};

static int
visit_outbox(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_outbox_msg msg;
	int rc, bad;

	memset(&msg, 0, sizeof(msg));
	msg.id = sqlite3_column_int64(st, 0);
	bad = col_dup(&msg.topic, st, 1);
	bad |= col_dup(&msg.payload, st, 2);
	msg.created_at = sqlite3_column_int64(st, 3);
	if (bad != 0 || msg.topic == NULL || msg.payload == NULL)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "reading an outbox row");
	else
		rc = ((struct outbox_cb_box *)box)->cb(&msg, payload);
	free(msg.topic);
	free(msg.payload);
	return rc;
}

static int
sq_outbox_list(cf_store *store, int64_t limit, cf_store_outbox_cb cb, void *payload,
	       cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct outbox_cb_box box = { cb };
	sqlite3_stmt *st = NULL;
	bool temp = false;
	int rc, brc = SQLITE_OK;

	rc = list_get(&st, &temp, sq, &sq->lists[LS_OUTBOX], list_sql[LS_OUTBOX], err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, limit > 0 ? limit : -1);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = walk(sq, st, visit_outbox, &box, payload, err);
	list_put(st, temp);
	return rc;
}

/* FULL: a commit is on disk when it returns; NORMAL: at the next checkpoint. */
static int
sq_set_durable(cf_store *store, bool full, cf_err *err)
{
	return pragma(sq_of(store), full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
		      NULL, err);
}

static int
sq_set_busy_timeout(cf_store *store, int ms, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int sqlrc = sqlite3_busy_timeout(sq->db, ms); /* 0: no busy handler, SQLITE_BUSY at once */

	return sqlrc == SQLITE_OK ? CF_OK : db_fail(sq, sqlrc, "busy_timeout", err);
}

/*
 * pages 0: no checkpoint after a commit, however large the WAL. The close
 * of the last connection to the file still checkpoints and removes the WAL,
 * except when the file was renamed over or deleted under the connection:
 * then the old WAL stays beside the new file, to be replayed into it.
 * sq_checkpoint() empties it first.
 */
static int
sq_set_autocheckpoint(cf_store *store, int pages, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int sqlrc = sqlite3_wal_autocheckpoint(sq->db, pages);

	return sqlrc == SQLITE_OK ? CF_OK : db_fail(sq, sqlrc, "autocheckpoint", err);
}

static int
sq_checkpoint(cf_store *store, cf_err *err)
{
	struct sq *sq = sq_of(store);
	int sqlrc = sqlite3_wal_checkpoint_v2(sq->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);

	return sqlrc == SQLITE_OK ? CF_OK : db_fail(sq, sqlrc, "checkpoint", err);
}

static int
sq_outbox_pending(cf_store *store, const char *topic, bool *out, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	*out = false;
	rc = stmt_get(&st, sq, ST_OUTBOX_PENDING, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, topic);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : step_row(sq, st, out, "read outbox", err);
	}
	stmt_put(st);
	return rc;
}

static int
sq_outbox_delete(cf_store *store, int64_t id, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_OUTBOX_DELETE, err);
	if (rc == CF_OK) {
		bind_int(&brc, st, 1, id);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "delete outbox message", err);
	}
	if (rc == CF_OK && sqlite3_changes(sq->db) != 1)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "outbox message %lld not found",
				(long long)id);
	stmt_put(st);
	return tx_end(sq, rc, err);
}

/* ---- connections --------------------------------------------------------- */

static int
connection_insert(struct sq *sq, sqlite3_stmt *st, const cf_store_connection *c, cf_err *err)
{
	int rc, brc = SQLITE_OK;

	bind_int(&brc, st, 1, c->at);
	bind_str(&brc, st, 2, c->cert_id);
	bind_str(&brc, st, 3, c->client_id);
	bind_str(&brc, st, 4, c->address);
	bind_str(&brc, st, 5, c->outcome);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : exec_stmt(sq, st, "record connection", err);
	sqlite3_reset(st);
	return rc;
}

/*
 * One transaction for the batch and the pruning: BEGIN IMMEDIATE takes the
 * write lock first, so a busy lock fails here, before any row, and a
 * failure later rolls everything back.
 */
static int
sq_connections_record(cf_store *store, const cf_store_connection *recs, size_t n, int64_t keep,
		      cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	if (n > 0)
		rc = stmt_get(&st, sq, ST_CONN_INSERT, err);
	for (i = 0; rc == CF_OK && i < n; i++)
		rc = connection_insert(sq, st, &recs[i], err);
	stmt_put(st);
	st = NULL;
	if (rc == CF_OK && keep > 0)
		rc = stmt_get(&st, sq, ST_CONN_PRUNE, err);
	if (rc == CF_OK && keep > 0) {
		bind_int(&brc, st, 1, keep);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "prune connections", err);
	}
	stmt_put(st);
	return tx_end(sq, rc, err);
}

struct connection_cb_box {
	cf_store_connection_cb cb;
};

/* The strings point into the row: valid until the next step, so borrowed for the call. */
static int
visit_connection(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_connection c;

	c.id = sqlite3_column_int64(st, 0);
	c.at = sqlite3_column_int64(st, 1);
	c.cert_id = (const char *)sqlite3_column_text(st, 2);
	c.client_id = (const char *)sqlite3_column_text(st, 3);
	c.address = (const char *)sqlite3_column_text(st, 4);
	c.outcome = (const char *)sqlite3_column_text(st, 5);
	if ((c.cert_id == NULL && sqlite3_column_type(st, 2) != SQLITE_NULL) ||
	    c.client_id == NULL || c.address == NULL || c.outcome == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "reading a connection row");
	return ((struct connection_cb_box *)box)->cb(&c, payload);
}

/*
 * The SQL for one combination of connection_list filters (mask of NF_CERT
 * ...). Certificate ids are lowercase hex, so a prefix is the range trick
 * of ST_CERT_PREFIX, which the (cert_id, at) index serves.
 */
static void
connection_list_sql(char *buf, size_t len, unsigned int mask)
{
	snprintf(buf, len, "SELECT " CONN_COLS " FROM connections WHERE 1%s%s%s "
		 "ORDER BY id DESC LIMIT ?4",
		 (mask & NF_CERT) ? " AND cert_id >= ?1 AND cert_id < ?1 || 'g'" : "",
		 (mask & NF_CLIENT) ? " AND client_id = ?2" : "",
		 (mask & NF_SINCE) ? " AND at >= ?3" : "");
}

static int
sq_connection_list(cf_store *store, const cf_store_connection_filter *filter,
		   cf_store_connection_cb cb, void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct connection_cb_box box = { cb };
	sqlite3_stmt *st = NULL;
	unsigned int mask = 0;
	bool temp = false;
	char sql[320];
	int rc, brc = SQLITE_OK;

	mask |= filter->cert_id != NULL ? NF_CERT : 0;
	mask |= filter->client_id != NULL ? NF_CLIENT : 0;
	mask |= filter->since > 0 ? NF_SINCE : 0;
	connection_list_sql(sql, sizeof(sql), mask);
	rc = list_get(&st, &temp, sq, &sq->connection_lists[mask], sql, err);
	if (rc != CF_OK)
		return rc;
	if (mask & NF_CERT)
		bind_str(&brc, st, 1, filter->cert_id);
	if (mask & NF_CLIENT)
		bind_str(&brc, st, 2, filter->client_id);
	if (mask & NF_SINCE)
		bind_int(&brc, st, 3, filter->since);
	bind_int(&brc, st, 4, filter->limit > 0 ? filter->limit : -1);
	if (brc != SQLITE_OK)
		rc = bind_fail(sq, brc, err);
	else
		rc = walk(sq, st, visit_connection, &box, payload, err);
	list_put(st, temp);
	return rc;
}

/* ---- audits -------------------------------------------------------------- */

static int
sq_audit_run_begin(int64_t *id_out, cf_store *store, cf_audit_trigger trigger,
		   const char *checks_json, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_RUN_INSERT, err);
	if (rc == CF_OK) {
		bind_int(&brc, st, 1, cf_store__now(store));
		bind_str(&brc, st, 2, cf_audit_trigger_name(trigger));
		bind_str(&brc, st, 3, checks_json);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "insert audit run", err);
	}
	if (rc == CF_OK)
		*id_out = sqlite3_last_insert_rowid(sq->db);
	stmt_put(st);
	rc = tx_end(sq, rc, err);
	if (rc != CF_OK)
		*id_out = 0;
	return rc;
}

/* The status and start of run id. CF_ENOTFOUND. */
static int
run_state(struct sq *sq, int64_t id, cf_audit_status *status, int64_t *started_at, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_RUN_STATE, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, id);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : step_row(sq, st, &row, "audit run", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "audit run %lld not found", (long long)id);
	if (rc == CF_OK &&
	    cf_store__audit_status_parse(status, (const char *)sqlite3_column_text(st, 0)) != 0)
		rc = cf_err_set(err, CF_ESTORE, NULL, "audit run %lld: bad status", (long long)id);
	if (rc == CF_OK)
		*started_at = sqlite3_column_int64(st, 1);
	stmt_put(st);
	return rc;
}

/*
 * The one int64 of the cached statement id, its parameters (as many as it
 * has) bound to a and b: *out, or 0 when there is no row.
 */
static int
query_int(struct sq *sq, enum stmt_id id, int64_t a, const char *b, int64_t *out,
	  const char *what, cf_err *err)
{
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	*out = 0;
	rc = stmt_get(&st, sq, id, err);
	if (rc != CF_OK)
		return rc;
	if (sqlite3_bind_parameter_count(st) >= 1)
		bind_int(&brc, st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		bind_str(&brc, st, 2, b);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : step_row(sq, st, &row, what, err);
	if (rc == CF_OK && row)
		*out = sqlite3_column_int64(st, 0);
	stmt_put(st);
	return rc;
}

/*
 * What one findings_add call learnt about a check: that the run runs it,
 * and its previous COMPLETED run (0: none). Keyed by the caller's string,
 * which lives for the call.
 */
struct check_memo {
	const char *check;
	int64_t prev;
};

static int
check_prev(struct sq *sq, struct check_memo *memo, size_t *nmemo, int64_t run_id,
	   const char *check, int64_t *prev, cf_err *err)
{
	int64_t in_run = 0;
	size_t i;
	int rc;

	for (i = 0; i < *nmemo; i++) {
		if (strcmp(memo[i].check, check) == 0) {
			*prev = memo[i].prev;
			return CF_OK;
		}
	}
	rc = query_int(sq, ST_RUN_HAS_CHECK, run_id, check, &in_run, "audit run checks", err);
	if (rc == CF_OK && in_run == 0)
		rc = cf_err_set(err, CF_EINVAL, NULL, "audit run %lld does not run %s",
				(long long)run_id, check);
	if (rc == CF_OK)
		rc = query_int(sq, ST_RUN_PREV, run_id, check, prev, "previous audit run", err);
	/* A run's checks are distinct and at most CF_STORE_AUDIT_CHECKS_MAX: the memo fits. */
	if (rc == CF_OK && *nmemo < CF_STORE_AUDIT_CHECKS_MAX) {
		memo[*nmemo].check = check;
		memo[*nmemo].prev = *prev;
		(*nmemo)++;
	}
	return rc;
}

static int
finding_insert(struct sq *sq, sqlite3_stmt *st, int64_t run_id, int64_t started_at,
	       const char *fid, int64_t prev, const cf_store_finding *f, cf_err *err)
{
	int rc, brc = SQLITE_OK;

	bind_int(&brc, st, 1, run_id);
	bind_str(&brc, st, 2, fid);
	bind_str(&brc, st, 3, f->check);
	bind_str(&brc, st, 4, f->resource);
	bind_str(&brc, st, 5, cf_audit_severity_name(f->severity));
	bind_str(&brc, st, 6, f->reason);
	bind_str(&brc, st, 7, f->detail != NULL ? f->detail : "{}");
	bind_int(&brc, st, 8, prev);
	bind_int(&brc, st, 9, started_at);
	if (brc != SQLITE_OK) {
		rc = bind_fail(sq, brc, err);
	} else {
		rc = sqlite3_step(st);
		if (is_constraint(rc, SQLITE_CONSTRAINT_PRIMARYKEY))
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"finding %s on %.80s given twice in audit run %lld",
					f->check, f->resource, (long long)run_id);
		else
			rc = rc == SQLITE_DONE ? CF_OK : db_fail(sq, rc, "insert finding", err);
	}
	sqlite3_reset(st);
	return rc;
}

/* A finding's id and its index in the caller's array, sorted by id. */
struct finding_key {
	char fid[33];
	size_t i;
};

static int
finding_key_cmp(const void *a, const void *b)
{
	return strcmp(((const struct finding_key *)a)->fid, ((const struct finding_key *)b)->fid);
}

/*
 * One transaction (or savepoint) per call; one prepared insert for every
 * finding, which also looks up the previous run's row and the suppression,
 * so a finding costs one statement. The two per-check lookups are done once
 * per check per call. The findings go in by finding_id: the ids are random,
 * and in that order the table, the history index and the previous run's rows
 * are walked front to back instead of at random places (measured: about
 * twice as fast for 100,000).
 */
static int
sq_audit_findings_add(cf_store *store, int64_t run_id, const cf_store_finding *items, size_t n,
		      cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct check_memo memo[CF_STORE_AUDIT_CHECKS_MAX];
	cf_audit_status status = CF_AUDIT_IN_PROGRESS;
	struct finding_key *keys = NULL;
	sqlite3_stmt *st = NULL;
	int64_t started_at = 0, prev = 0;
	size_t nmemo = 0, i;
	int rc = CF_OK;

	if (n > 0) {
		keys = calloc(n, sizeof(*keys));
		if (keys == NULL)
			return cf_err_set(err, CF_ENOMEM, NULL, "%zu finding ids", n);
	}
	for (i = 0; rc == CF_OK && i < n; i++) {
		keys[i].i = i;
		rc = cf_store__finding_id(store, keys[i].fid, items[i].check, items[i].resource,
					  err);
	}
	if (rc != CF_OK)
		goto out;
	if (n > 1)
		qsort(keys, n, sizeof(*keys), finding_key_cmp);
	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		goto out;
	rc = run_state(sq, run_id, &status, &started_at, err);
	if (rc == CF_OK && status != CF_AUDIT_IN_PROGRESS)
		rc = cf_err_set(err, CF_ESTATE, NULL, "audit run %lld is %s", (long long)run_id,
				cf_audit_status_name(status));
	if (rc == CF_OK && n > 0)
		rc = stmt_get(&st, sq, ST_FINDING_INSERT, err);
	for (i = 0; rc == CF_OK && i < n; i++) {
		rc = check_prev(sq, memo, &nmemo, run_id, items[keys[i].i].check, &prev, err);
		if (rc == CF_OK)
			rc = finding_insert(sq, st, run_id, started_at, keys[i].fid, prev,
					    &items[keys[i].i], err);
	}
	stmt_put(st);
	rc = tx_end(sq, rc, err);
out:
	free(keys);
	return rc;
}

static int
sq_audit_run_finish(cf_store *store, int64_t run_id, cf_audit_status status, const char *summary,
		    cf_err *err)
{
	struct sq *sq = sq_of(store);
	cf_audit_status now_status = CF_AUDIT_IN_PROGRESS;
	sqlite3_stmt *st = NULL;
	int64_t started_at = 0;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = run_state(sq, run_id, &now_status, &started_at, err);
	if (rc == CF_OK && now_status != CF_AUDIT_IN_PROGRESS)
		rc = cf_err_set(err, CF_ESTATE, NULL, "audit run %lld is %s already",
				(long long)run_id, cf_audit_status_name(now_status));
	/* Resolve before the status changes: the run is not its own previous run. */
	if (rc == CF_OK && status == CF_AUDIT_COMPLETED)
		rc = stmt_get(&st, sq, ST_FINDING_RESOLVE, err);
	if (rc == CF_OK && status == CF_AUDIT_COMPLETED) {
		bind_int(&brc, st, 1, run_id);
		bind_int(&brc, st, 2, started_at);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "resolve findings", err);
	}
	stmt_put(st);
	st = NULL;
	if (rc == CF_OK)
		rc = stmt_get(&st, sq, ST_RUN_FINISH, err);
	if (rc == CF_OK) {
		bind_int(&brc, st, 1, run_id);
		bind_str(&brc, st, 2, cf_audit_status_name(status));
		bind_str(&brc, st, 3, summary);
		bind_int(&brc, st, 4, cf_store__now(store));
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "finish audit run", err);
	}
	stmt_put(st);
	return tx_end(sq, rc, err);
}

static int
read_audit_run(cf_store_audit_run *out, sqlite3_stmt *st, cf_err *err)
{
	int bad;

	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(st, 0);
	out->started_at = sqlite3_column_int64(st, 1);
	out->finished_at = sqlite3_column_int64(st, 2);
	bad = cf_store__audit_trigger_parse(&out->trigger,
					    (const char *)sqlite3_column_text(st, 3));
	bad |= col_dup(&out->checks, st, 4);
	bad |= cf_store__audit_status_parse(&out->status,
					    (const char *)sqlite3_column_text(st, 5));
	bad |= col_dup(&out->summary, st, 6);
	if (bad != 0 || out->checks == NULL || out->summary == NULL) {
		cf_store_audit_run_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "reading an audit run row");
	}
	return CF_OK;
}

static int
sq_audit_run_get(cf_store *store, cf_store_audit_run *out, int64_t id, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	bool row = false;
	int rc, brc = SQLITE_OK;

	rc = stmt_get(&st, sq, ST_RUN_GET, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, id);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err) : step_row(sq, st, &row, "audit run", err);
	if (rc == CF_OK && !row)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "audit run %lld not found", (long long)id);
	if (rc == CF_OK)
		rc = read_audit_run(out, st, err);
	stmt_put(st);
	return rc;
}

struct audit_run_cb_box {
	cf_store_audit_run_cb cb;
};

static int
visit_audit_run(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_audit_run run;
	int rc;

	rc = read_audit_run(&run, st, err);
	if (rc != CF_OK)
		return rc;
	rc = ((struct audit_run_cb_box *)box)->cb(&run, payload);
	cf_store_audit_run_clear(&run);
	return rc;
}

static int
sq_audit_run_list(cf_store *store, int64_t limit, cf_store_audit_run_cb cb, void *payload,
		  cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct audit_run_cb_box box = { cb };
	sqlite3_stmt *st = NULL;
	bool temp = false;
	int rc, brc = SQLITE_OK;

	rc = list_get(&st, &temp, sq, &sq->lists[LS_AUDIT_RUNS], list_sql[LS_AUDIT_RUNS], err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, limit > 0 ? limit : -1);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : walk(sq, st, visit_audit_run, &box, payload, err);
	list_put(st, temp);
	return rc;
}

struct finding_cb_box {
	cf_store_finding_cb cb;
};

/* The strings point into the row: valid until the next step, so borrowed for the call. */
static int
visit_finding(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	cf_store_finding f;
	int bad;

	memset(&f, 0, sizeof(f));
	f.run_id = sqlite3_column_int64(st, 0);
	f.finding_id = (const char *)sqlite3_column_text(st, 1);
	f.check = (const char *)sqlite3_column_text(st, 2);
	f.resource = (const char *)sqlite3_column_text(st, 3);
	bad = cf_audit_severity_parse(&f.severity, (const char *)sqlite3_column_text(st, 4));
	f.reason = (const char *)sqlite3_column_text(st, 5);
	f.detail = (const char *)sqlite3_column_text(st, 6);
	bad |= cf_finding_state_parse(&f.state, (const char *)sqlite3_column_text(st, 7));
	f.suppressed = sqlite3_column_int(st, 8) != 0;
	if (bad != 0 || f.finding_id == NULL || f.check == NULL || f.resource == NULL ||
	    f.reason == NULL || f.detail == NULL)
		return cf_err_set(err, CF_ESTORE, NULL, "reading a finding row");
	return ((struct finding_cb_box *)box)->cb(&f, payload);
}

static void
finding_list_sql(char *buf, size_t len, unsigned int mask)
{
	snprintf(buf, len, "SELECT " FINDING_COLS " FROM audit_findings WHERE run_id = ?1%s%s%s%s "
		 "ORDER BY check_name, resource LIMIT ?5",
		 (mask & AF_CHECK) ? " AND check_name = ?2" : "",
		 (mask & AF_SEVERITY) ? " AND severity = ?3" : "",
		 (mask & AF_STATE) ? " AND state = ?4" : "",
		 (mask & AF_UNSUPPRESSED) ? " AND suppressed = 0" : "");
}

static int
sq_audit_finding_list(cf_store *store, const cf_store_finding_filter *filter,
		      cf_store_finding_cb cb, void *payload, cf_err *err)
{
	struct sq *sq = sq_of(store);
	struct finding_cb_box box = { cb };
	cf_audit_status status = CF_AUDIT_IN_PROGRESS;
	sqlite3_stmt *st = NULL;
	int64_t run_id = filter->run_id, started_at = 0;
	unsigned int mask = 0;
	bool temp = false;
	char sql[400];
	int rc, brc = SQLITE_OK;

	if (run_id == 0) {
		rc = query_int(sq, ST_RUN_LATEST, 0, NULL, &run_id, "latest audit run", err);
		if (rc == CF_OK && run_id == 0)
			rc = cf_err_set(err, CF_ENOTFOUND, NULL, "no audit run has completed");
	} else {
		rc = run_state(sq, run_id, &status, &started_at, err);
	}
	if (rc != CF_OK)
		return rc;
	mask |= filter->check != NULL ? AF_CHECK : 0;
	mask |= filter->severity >= 0 ? AF_SEVERITY : 0;
	mask |= filter->state >= 0 ? AF_STATE : 0;
	mask |= !filter->include_suppressed ? AF_UNSUPPRESSED : 0;
	finding_list_sql(sql, sizeof(sql), mask);
	rc = list_get(&st, &temp, sq, &sq->finding_lists[mask], sql, err);
	if (rc != CF_OK)
		return rc;
	bind_int(&brc, st, 1, run_id);
	if (mask & AF_CHECK)
		bind_str(&brc, st, 2, filter->check);
	if (mask & AF_SEVERITY)
		bind_str(&brc, st, 3, cf_audit_severity_name((cf_audit_severity)filter->severity));
	if (mask & AF_STATE)
		bind_str(&brc, st, 4, cf_finding_state_name((cf_finding_state)filter->state));
	bind_int(&brc, st, 5, filter->limit > 0 ? filter->limit : -1);
	rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
			      : walk(sq, st, visit_finding, &box, payload, err);
	list_put(st, temp);
	return rc;
}

static int
sq_audit_suppress(cf_store *store, const char *check, const char *resource, int64_t expires_at,
		  const char *reason, const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	char *detail = NULL, *name = NULL;
	char expires[24];
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_SUPPRESS, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, check);
		bind_str(&brc, st, 2, resource);
		bind_int(&brc, st, 3, expires_at);
		bind_str(&brc, st, 4, reason);
		bind_int(&brc, st, 5, cf_store__now(store));
		bind_str(&brc, st, 6, actor->who);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "insert suppression", err);
	}
	stmt_put(st);
	snprintf(expires, sizeof(expires), "%lld", (long long)expires_at);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "check", check, "resource", resource,
				      "expires_at", expires, "reason", reason, NULL);
	name = resource_name(check, resource);
	if (rc == CF_OK && name == NULL)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "event resource");
	if (rc == CF_OK)
		rc = event_log(store, actor, "audit.suppressed", "suppression", name, detail, NULL,
			       err);
	free(name);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_audit_unsuppress(cf_store *store, const char *check, const char *resource,
		    const cf_store_actor *actor, cf_err *err)
{
	struct sq *sq = sq_of(store);
	sqlite3_stmt *st = NULL;
	char *detail = NULL, *name = NULL;
	int rc, brc = SQLITE_OK;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	rc = stmt_get(&st, sq, ST_UNSUPPRESS, err);
	if (rc == CF_OK) {
		bind_str(&brc, st, 1, check);
		bind_str(&brc, st, 2, resource);
		rc = brc != SQLITE_OK ? bind_fail(sq, brc, err)
				      : exec_stmt(sq, st, "delete suppression", err);
	}
	if (rc == CF_OK && sqlite3_changes(sq->db) != 1)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "no suppression of %s on %.80s", check,
				resource);
	stmt_put(st);
	if (rc == CF_OK)
		rc = cf_store__detail(&detail, actor, err, "check", check, "resource", resource,
				      NULL);
	name = resource_name(check, resource);
	if (rc == CF_OK && name == NULL)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "event resource");
	if (rc == CF_OK)
		rc = event_log(store, actor, "audit.unsuppressed", "suppression", name, detail,
			       NULL, err);
	free(name);
	free(detail);
	return tx_end(sq, rc, err);
}

static int
sq_audit_notified(cf_store *store, const cf_store_finding *f, const cf_store_actor *actor,
		  cf_err *err)
{
	struct sq *sq = sq_of(store);
	char *detail = NULL, run[24];
	int rc;

	rc = tx_begin(sq, ST_BEGIN_WRITE, err);
	if (rc != CF_OK)
		return rc;
	snprintf(run, sizeof(run), "%lld", (long long)f->run_id);
	rc = cf_store__detail(&detail, actor, err, "run", run, "check", f->check, "resource",
			      f->resource, NULL);
	if (rc == CF_OK)
		rc = event_log(store, actor, "audit.notified", "finding", f->finding_id, detail,
			       NULL, err);
	free(detail);
	return tx_end(sq, rc, err);
}

struct suppression_cb_box {
	cf_store_audit_suppression_cb cb;
	int64_t now;
};

static int
visit_suppression(sqlite3_stmt *st, void *box, void *payload, cf_err *err)
{
	struct suppression_cb_box *b = box;
	cf_store_audit_suppression s;

	s.check = (const char *)sqlite3_column_text(st, 0);
	s.resource = (const char *)sqlite3_column_text(st, 1);
	s.expires_at = sqlite3_column_int64(st, 2);
	s.reason = (const char *)sqlite3_column_text(st, 3);
	s.created_at = sqlite3_column_int64(st, 4);
	s.created_by = (const char *)sqlite3_column_text(st, 5);
	s.expired = s.expires_at <= b->now;
	if (s.check == NULL || s.resource == NULL || s.reason == NULL || s.created_by == NULL)
		return cf_err_set(err, CF_ESTORE, NULL, "reading a suppression row");
	return b->cb(&s, payload);
}

static int
sq_audit_suppression_list(cf_store *store, cf_store_audit_suppression_cb cb, void *payload,
			  cf_err *err)
{
	struct suppression_cb_box box = { cb, cf_store__now(store) };

	return list_simple(sq_of(store), LS_SUPPRESSIONS, NULL, visit_suppression, &box, payload,
			   err);
}

/* ---- caller's transactions ---------------------------------------------- */

static int
sq_tx_begin(cf_store *store, cf_err *err)
{
	struct sq *sq = sq_of(store);

	if (sq->depth > 0)
		return cf_err_set(err, CF_ESTATE, NULL,
				  "a transaction is already open on this handle");
	return tx_begin(sq, ST_BEGIN_WRITE, err);
}

static int
sq_tx_commit(cf_store *store, cf_err *err)
{
	struct sq *sq = sq_of(store);

	if (sq->depth == 0)
		return cf_err_set(err, CF_ESTATE, NULL, "no transaction is open on this handle");
	if (sq->depth > 1)
		return cf_err_set(err, CF_ESTATE, NULL, "commit from inside a store operation");
	return tx_close(sq, true, err);
}

static void
sq_tx_rollback(cf_store *store)
{
	struct sq *sq = sq_of(store);

	if (sq->depth > 0)
		tx_rollback(sq);
}

const struct cf_store_backend cf_store__sqlite_backend = {
	.version = CF_STORE_BACKEND_VERSION,
	.scheme = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.tx_begin = sq_tx_begin,
	.tx_commit = sq_tx_commit,
	.tx_rollback = sq_tx_rollback,
	.ca_insert = sq_ca_insert,
	.ca_activate = sq_ca_activate,
	.ca_get = sq_ca_get,
	.ca_list = sq_ca_list,
	.ca_set_default = sq_ca_set_default,
	.ca_set_status = sq_ca_set_status,
	.regcode_create = sq_regcode_create,
	.ca_register = sq_ca_register,
	.thing_insert = sq_thing_insert,
	.thing_get = sq_thing_get,
	.thing_list = sq_thing_list,
	.thing_delete = sq_thing_delete,
	.cert_insert_batch = sq_cert_insert_batch,
	.cert_get = sq_cert_get,
	.cert_get_by_serial = sq_cert_get_by_serial,
	.audit_notified = sq_audit_notified,
	.cert_list = sq_cert_list,
	.cert_scan = sq_cert_scan,
	.cert_transition = sq_cert_transition,
	.cert_changes = sq_cert_changes,
	.cert_delete = sq_cert_delete,
	.policy_insert = sq_policy_insert,
	.policy_get = sq_policy_get,
	.policy_list = sq_policy_list,
	.policy_attach = sq_policy_attach,
	.policy_detach = sq_policy_detach,
	.rotation_insert = sq_rotation_insert,
	.rotation_get = sq_rotation_get,
	.rotation_update = sq_rotation_update,
	.rotation_list = sq_rotation_list,
	.rotation_event = sq_rotation_event,
	.outbox_add = sq_outbox_add,
	.outbox_list = sq_outbox_list,
	.outbox_delete = sq_outbox_delete,
	.outbox_pending = sq_outbox_pending,
	.set_durable = sq_set_durable,
	.set_busy_timeout = sq_set_busy_timeout,
	.set_autocheckpoint = sq_set_autocheckpoint,
	.checkpoint = sq_checkpoint,
	.connections_record = sq_connections_record,
	.connection_list = sq_connection_list,
	.audit_run_begin = sq_audit_run_begin,
	.audit_findings_add = sq_audit_findings_add,
	.audit_run_finish = sq_audit_run_finish,
	.audit_run_get = sq_audit_run_get,
	.audit_run_list = sq_audit_run_list,
	.audit_finding_list = sq_audit_finding_list,
	.audit_suppress = sq_audit_suppress,
	.audit_unsuppress = sq_audit_unsuppress,
	.audit_suppression_list = sq_audit_suppression_list,
	.events_list = sq_events_list,
	.events_head = sq_events_head,
	.events_verify = sq_events_verify,
	.events_verify_chain = sq_events_verify_chain,
};
