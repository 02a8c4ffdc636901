/*
 * The store test fixture: a fresh, empty store per case.
 *
 * By default each case gets a SQLite file in a new mkdtemp() directory.
 * CF_TEST_STORE_URI overrides the URI, so the same cases can run against
 * another backend (PostgreSQL later): every "%s" in it is replaced by a
 * name unique to the case (e.g. "postgres://localhost/cf_%s"), and the
 * backend's harness must hand out an empty store for each such name.
 * Cases that poke at the SQLite file directly call fx_require_sqlite(),
 * which skips them on other backends.
 */
#ifndef CF_TEST_STORE_FIXTURE_H
#define CF_TEST_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store.h"

#define FX_T0 1700000000 /* the fake clock's start */

struct fixture {
	cf_store *store;
	char dir[256];  /* temporary directory, "" when not SQLite */
	char uri[600];
	char path[512]; /* the SQLite file, "" when not SQLite */
	int64_t now;    /* fake clock, seconds */
};

/* A certificate record with its own storage for the strings a test varies. */
struct fx_cert {
	char id[65];
	char serial[33];
	char ca[64];
	char thing[64];
	cf_store_cert cert;
};

extern const cf_store_actor fx_actor;

int fx_setup(void **state);
int fx_teardown(void **state);

/* Skip the calling case unless the store is SQLite. */
void fx_require_sqlite(struct fixture *fx);

/* Fake clock callback for cf_store_set_clock(); payload is the fixture. */
int64_t fx_clock(void *payload);

/* A 64-hex id made from n (distinct n, distinct ids). */
void fx_id(char out[65], uint64_t n);

/* Insert an ACTIVE intermediate CA named name (asserts success). */
void fx_add_ca(struct fixture *fx, const char *name);

/* Insert a thing (asserts success). */
void fx_add_thing(struct fixture *fx, const char *name);

/*
 * Fill c as certificate number n: id fx_id(n), serial n, CA ca, thing
 * (may be NULL), status, not_after = FX_T0 + days * 86400.
 */
void fx_cert_init(struct fx_cert *c, uint64_t n, const char *ca, const char *thing,
		  cf_cert_status status, int64_t days);

/* Insert certificate n (issued, no policies) and assert success. */
void fx_add_cert(struct fixture *fx, uint64_t n, const char *ca, const char *thing,
		 cf_cert_status status, int64_t days);

/* Number of events, optionally only those for resource. */
int64_t fx_count_events(struct fixture *fx, const char *resource);

/* Copy of the detail of the newest event for resource, freed with free(). */
char *fx_last_detail(struct fixture *fx, const char *resource, char action_out[64]);

/* Assert the chain verifies and return its length. */
int64_t fx_verify_ok(struct fixture *fx);

/* Status of certificate id (asserts it exists). */
cf_cert_status fx_status(struct fixture *fx, const char *id);

/* Number of connection records of store matching filter (NULL: all); asserts the list works. */
int64_t fx_count_connections(cf_store *store, const cf_store_connection_filter *filter);

int test_store_run(void);
int test_policy_run(void);
int test_sqlite_run(void);
int test_tx_run(void);
int test_rotation_run(void);
int test_delete_run(void);
int test_connections_run(void);
int test_audit_run(void);

/* What a finding list returned, copied out of the borrowed records. */
#define FX_FINDINGS_MAX 64

struct fx_findings {
	size_t n;
	char check[FX_FINDINGS_MAX][80];
	char resource[FX_FINDINGS_MAX][320];
	char fid[FX_FINDINGS_MAX][33];
	char reason[FX_FINDINGS_MAX][64];
	char detail[FX_FINDINGS_MAX][512];
	cf_finding_state state[FX_FINDINGS_MAX];
	cf_audit_severity severity[FX_FINDINGS_MAX];
	bool suppressed[FX_FINDINGS_MAX];
	int64_t run[FX_FINDINGS_MAX];
};

/* A cf_store_finding_cb appending to a struct fx_findings (payload). */
int fx_findings_cb(const cf_store_finding *f, void *payload);

/* The findings of run (0: the latest completed), suppressed ones included, into g. */
void fx_findings(struct fixture *fx, int64_t run, struct fx_findings *g);

#endif
