/*
 * The broker's record of MQTT connections: recording in batches, pruning,
 * listing with filters, the checks, and a writer that must never wait on
 * another process's lock.
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A record whose strings live in the struct, so that a test can build many. */
struct conn {
	char cert[65];
	char client[64];
	cf_store_connection rec;
};

/* Record i: at FX_T0 + i, certificate fx_id(cert_n) (0: none), client and outcome as given. */
static void
conn_init(struct conn *c, int64_t i, uint64_t cert_n, const char *client, const char *outcome)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->client, sizeof(c->client), "%s", client);
	c->rec.at = FX_T0 + i;
	if (cert_n != 0) {
		fx_id(c->cert, cert_n);
		c->rec.cert_id = c->cert;
	}
	c->rec.client_id = c->client;
	c->rec.address = "192.0.2.7:50123";
	c->rec.outcome = outcome;
}

/* Record n records of conns (copied into an array of cf_store_connection); asserts success. */
static void
record(cf_store *store, const struct conn *conns, size_t n, int64_t keep)
{
	cf_store_connection *recs = calloc(n + 1, sizeof(*recs));
	cf_err err = CF_ERR_INIT;
	size_t i;

	assert_non_null(recs);
	for (i = 0; i < n; i++)
		recs[i] = conns[i].rec;
	if (cf_store_connections_record(store, recs, n, keep, &err) != 0)
		fail_msg("connections_record: %s", err.msg);
	free(recs);
}

/* What a list returned, copied out of the borrowed records. */
struct got {
	size_t n;
	int64_t id[64];
	int64_t at[64];
	char client[64][64];
	char cert[64][65]; /* "" for none */
	char address[64][64];
	char outcome[64][64];
	int stop_after; /* > 0: return 7 from the callback after that many */
};

static int
got_cb(const cf_store_connection *c, void *payload)
{
	struct got *g = payload;

	assert_true(g->n < CF_ARRAY_LEN(g->id));
	g->id[g->n] = c->id;
	g->at[g->n] = c->at;
	snprintf(g->client[g->n], sizeof(g->client[0]), "%s", c->client_id);
	snprintf(g->cert[g->n], sizeof(g->cert[0]), "%s", c->cert_id != NULL ? c->cert_id : "");
	snprintf(g->address[g->n], sizeof(g->address[0]), "%s", c->address);
	snprintf(g->outcome[g->n], sizeof(g->outcome[0]), "%s", c->outcome);
	g->n++;
	return g->stop_after > 0 && g->n == (size_t)g->stop_after ? 7 : 0;
}

static void
list(struct fixture *fx, const cf_store_connection_filter *filter, struct got *g)
{
	cf_err err = CF_ERR_INIT;

	memset(g, 0, sizeof(*g));
	if (cf_store_connection_list(fx->store, filter, got_cb, g, &err) != 0)
		fail_msg("connection_list: %s", err.msg);
}

static void
test_store_connections__record_and_list(void **state)
{
	struct fixture *fx = *state;
	struct conn c[3];
	struct got g;
	char id[65];

	assert_int_equal(fx_count_connections(fx->store, NULL), 0);
	conn_init(&c[0], 0, 1, "dev-1", "accepted");
	conn_init(&c[1], 5, 0, "", "no_certificate"); /* no certificate, empty client id */
	conn_init(&c[2], 9, 2, "dev-1", "client_id_mismatch");
	c[2].rec.address = "[2001:db8::1]:8883";
	record(fx->store, c, 2, 0);
	record(fx->store, &c[2], 1, 0);
	list(fx, NULL, &g);
	assert_int_equal(g.n, 3);
	/* Newest first, every field as recorded, ids in the order recorded. */
	assert_true(g.id[0] > g.id[1] && g.id[1] > g.id[2]);
	assert_int_equal(g.at[0], FX_T0 + 9);
	assert_string_equal(g.outcome[0], "client_id_mismatch");
	assert_string_equal(g.address[0], "[2001:db8::1]:8883");
	fx_id(id, 2);
	assert_string_equal(g.cert[0], id);
	assert_int_equal(g.at[1], FX_T0 + 5);
	assert_string_equal(g.cert[1], "");
	assert_string_equal(g.client[1], "");
	assert_string_equal(g.outcome[1], "no_certificate");
	fx_id(id, 1);
	assert_string_equal(g.cert[2], id);
	assert_string_equal(g.client[2], "dev-1");
	assert_string_equal(g.address[2], "192.0.2.7:50123");
	assert_string_equal(g.outcome[2], "accepted");

	/* A callback's non-zero return stops the walk and is returned. */
	memset(&g, 0, sizeof(g));
	g.stop_after = 2;
	assert_int_equal(cf_store_connection_list(fx->store, NULL, got_cb, &g, NULL), 7);
	assert_int_equal(g.n, 2);

	/* An empty batch writes nothing and is fine. */
	assert_int_equal(cf_store_connections_record(fx->store, NULL, 0, 0, NULL), 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 3);
}

static void
test_store_connections__filters(void **state)
{
	struct fixture *fx = *state;
	cf_store_connection_filter f = CF_STORE_CONNECTION_FILTER_INIT;
	struct conn c[6];
	struct got g;
	char id[65], upper[25];
	size_t i;

	conn_init(&c[0], 0, 1, "dev-1", "accepted");
	conn_init(&c[1], 10, 1, "dev-2", "client_id_mismatch"); /* dev-1's certificate shared */
	conn_init(&c[2], 20, 2, "dev-2", "accepted");
	conn_init(&c[3], 30, 0, "dev-2", "no_certificate");
	conn_init(&c[4], 40, 3, "dev-1", "status_INACTIVE");
	conn_init(&c[5], 50, 1, "dev-1", "accepted");
	record(fx->store, c, 6, 0);

	fx_id(id, 1);
	f.cert_id = id;
	list(fx, &f, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.at[0], FX_T0 + 50);
	assert_string_equal(g.client[1], "dev-2");
	assert_int_equal(g.at[2], FX_T0);
	/* A prefix of 8+ digits, in either case, matches as cert_get() does. */
	for (i = 0; i < 24; i++)
		upper[i] = (char)(id[i] >= 'a' ? id[i] - 'a' + 'A' : id[i]);
	upper[24] = '\0';
	assert_non_null(strpbrk(upper, "ABCDEF"));
	f.cert_id = upper;
	assert_int_equal(fx_count_connections(fx->store, &f), 3);

	f.cert_id = NULL;
	f.client_id = "dev-2";
	list(fx, &f, &g);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.outcome[0], "no_certificate");
	f.client_id = "dev-";
	assert_int_equal(fx_count_connections(fx->store, &f), 0); /* exact, not a prefix */

	f.client_id = NULL;
	f.since = FX_T0 + 30;
	list(fx, &f, &g);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.at[2], FX_T0 + 30);

	/* Combined: dev-1's certificate used by dev-2 (the shared-certificate audit). */
	f.since = 0;
	f.cert_id = id;
	f.client_id = "dev-2";
	list(fx, &f, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.outcome[0], "client_id_mismatch");
	f.since = FX_T0 + 11;
	assert_int_equal(fx_count_connections(fx->store, &f), 0);

	/* limit: the newest N. */
	memset(&f, 0, sizeof(f));
	f.limit = 2;
	list(fx, &f, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.at[0], FX_T0 + 50);
	assert_int_equal(g.at[1], FX_T0 + 40);
	f.client_id = "dev-1";
	f.since = FX_T0 + 1;
	list(fx, &f, &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.at[1], FX_T0 + 40);

	/* Bad filters. */
	memset(&f, 0, sizeof(f));
	f.cert_id = "abc";
	assert_int_equal(cf_store_connection_list(fx->store, &f, got_cb, &g, NULL), CF_EINVAL);
	f.cert_id = "zzzzzzzzzz";
	assert_int_equal(cf_store_connection_list(fx->store, &f, got_cb, &g, NULL), CF_EINVAL);
	f.cert_id = NULL;
	f.limit = -1;
	assert_int_equal(cf_store_connection_list(fx->store, &f, got_cb, &g, NULL), CF_EINVAL);
	f.limit = 0;
	f.since = -1;
	assert_int_equal(cf_store_connection_list(fx->store, &f, got_cb, &g, NULL), CF_EINVAL);
	assert_int_equal(cf_store_connection_list(fx->store, NULL, NULL, NULL, NULL), CF_EINVAL);
}

static void
test_store_connections__prune_keeps_newest(void **state)
{
	struct fixture *fx = *state;
	struct conn c[10];
	struct got g;
	int64_t newest;
	int i;

	for (i = 0; i < 10; i++)
		conn_init(&c[i], i, (uint64_t)i + 1, "dev-1", "accepted");
	/* keep 0: nothing is ever deleted. */
	record(fx->store, c, 10, 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 10);
	/* A batch of 3 with keep 4: the 3 new ones and the newest old one. */
	record(fx->store, c, 3, 4);
	list(fx, NULL, &g);
	assert_int_equal(g.n, 4);
	assert_int_equal(g.at[0], FX_T0 + 2);
	assert_int_equal(g.at[2], FX_T0);
	assert_int_equal(g.at[3], FX_T0 + 9); /* the last of the first batch */
	newest = g.id[0];
	/* A batch larger than keep keeps only its own newest rows. */
	record(fx->store, c, 10, 5);
	list(fx, NULL, &g);
	assert_int_equal(g.n, 5);
	assert_int_equal(g.at[0], FX_T0 + 9);
	assert_int_equal(g.at[4], FX_T0 + 5);
	/* Ids keep growing across pruning: a reader can page by id. */
	assert_int_equal(g.id[0], newest + 10);
	assert_int_equal(g.id[4], newest + 6);
	/* keep 1 with an empty batch prunes only. */
	assert_int_equal(cf_store_connections_record(fx->store, NULL, 0, 1, NULL), 0);
	list(fx, NULL, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], newest + 10);
	record(fx->store, c, 1, 1);
	list(fx, NULL, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], newest + 11);
}

/* Record one bad record among good ones: refused with want, and nothing written. */
static void
refused(struct fixture *fx, const cf_store_connection *bad, const char *want_msg)
{
	struct conn good;
	cf_store_connection recs[3];
	cf_err err = CF_ERR_INIT;
	int64_t before = fx_count_connections(fx->store, NULL);

	conn_init(&good, 0, 1, "dev-1", "accepted");
	recs[0] = good.rec;
	recs[1] = *bad;
	recs[2] = good.rec;
	assert_int_equal(cf_store_connections_record(fx->store, recs, 3, 2, &err), CF_EINVAL);
	if (strstr(err.msg, want_msg) == NULL)
		fail_msg("record: '%s', want '%s'", err.msg, want_msg);
	assert_non_null(strstr(err.msg, "record 1"));
	assert_int_equal(fx_count_connections(fx->store, NULL), before);
}

static void
test_store_connections__invalid_refused(void **state)
{
	struct fixture *fx = *state;
	struct conn ok, c;
	char big[CF_STORE_CONNECTION_TEXT_MAX + 2];
	char upper[65];

	/* Something to prune: a refused batch must not prune either. */
	conn_init(&ok, 0, 1, "dev-1", "accepted");
	record(fx->store, &ok, 1, 0);
	record(fx->store, &ok, 1, 0);
	record(fx->store, &ok, 1, 0);

	c = ok;
	c.rec.at = 0;
	refused(fx, &c.rec, "at must be > 0");
	c = ok;
	c.rec.cert_id = "1234";
	refused(fx, &c.rec, "cert_id");
	memcpy(upper, ok.cert, sizeof(upper));
	upper[0] = 'A';
	c = ok;
	c.rec.cert_id = upper;
	refused(fx, &c.rec, "cert_id");
	c = ok;
	c.rec.client_id = NULL;
	refused(fx, &c.rec, "client_id");
	c = ok;
	c.rec.address = NULL;
	refused(fx, &c.rec, "address");
	c = ok;
	c.rec.outcome = NULL;
	refused(fx, &c.rec, "outcome");
	c.rec.outcome = "";
	refused(fx, &c.rec, "outcome");
	c.rec.outcome = "status INACTIVE";
	refused(fx, &c.rec, "outcome");
	c.rec.outcome = "accepted\n";
	refused(fx, &c.rec, "outcome");

	/* Device text: up to the limit is kept whole, one byte more is refused, not cut. */
	memset(big, 'x', sizeof(big));
	big[CF_STORE_CONNECTION_TEXT_MAX + 1] = '\0';
	c = ok;
	c.rec.client_id = big;
	refused(fx, &c.rec, "client_id must be set and at most 256 bytes");
	c = ok;
	c.rec.address = big;
	refused(fx, &c.rec, "address");
	big[CF_STORE_CONNECTION_TEXT_MAX] = '\0';
	c = ok;
	c.rec.client_id = big;
	c.rec.address = big;
	record(fx->store, &c, 1, 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 4);

	assert_int_equal(cf_store_connections_record(fx->store, NULL, 1, 0, NULL), CF_EINVAL);
	assert_int_equal(cf_store_connections_record(fx->store, &ok.rec, 1, -1, NULL), CF_EINVAL);
	assert_int_equal(cf_store_connections_record(NULL, &ok.rec, 1, 0, NULL), CF_EINVAL);
	assert_int_equal(fx_count_connections(fx->store, NULL), 4);
}

static void
test_store_connections__readonly_refused(void **state)
{
	struct fixture *fx = *state;
	cf_store *ro = NULL;
	struct conn c;
	cf_err err = CF_ERR_INIT;

	conn_init(&c, 0, 1, "dev-1", "accepted");
	record(fx->store, &c, 1, 0);
	assert_int_equal(cf_store_open_readonly(&ro, fx->uri, &err), 0);
	assert_int_equal(cf_store_connections_record(ro, &c.rec, 1, 0, &err), CF_ESTATE);
	assert_int_equal(cf_store_set_autocheckpoint(ro, 0, &err), CF_ESTATE);
	/* Reading and waiting are fine there. */
	assert_int_equal(cf_store_set_busy_timeout(ro, 0, &err), 0);
	assert_int_equal(fx_count_connections(ro, NULL), 1);
	cf_store_close(ro);
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);
	assert_int_equal(cf_store_set_busy_timeout(fx->store, -1, &err), CF_EINVAL);
	assert_int_equal(cf_store_set_busy_timeout(NULL, 0, &err), CF_EINVAL);
	assert_int_equal(cf_store_set_autocheckpoint(NULL, 1000, &err), CF_EINVAL);
}

/* No events, no chain: the log and its verification do not see the table. */
static void
test_store_connections__not_in_event_log(void **state)
{
	struct fixture *fx = *state;
	struct conn c[4];
	char head[65], head2[65];
	int64_t seq = 0, seq2 = 0;
	int i;

	fx_add_ca(fx, "int-1");
	fx_add_thing(fx, "dev-1");
	fx_add_cert(fx, 1, "int-1", "dev-1", CF_CERT_ACTIVE, 30);
	assert_int_equal(fx_verify_ok(fx), 3);
	assert_int_equal(cf_store_events_head(fx->store, &seq, head, NULL), 0);
	for (i = 0; i < 4; i++)
		conn_init(&c[i], i, (uint64_t)i + 1, "dev-1", "unknown_certificate");
	record(fx->store, c, 4, 0);
	record(fx->store, c, 4, 3); /* pruning deletes rows, which the log must not mind */
	assert_int_equal(fx_count_events(fx, NULL), 3);
	assert_int_equal(fx_verify_ok(fx), 3);
	assert_int_equal(cf_store_events_head(fx->store, &seq2, head2, NULL), 0);
	assert_int_equal(seq2, seq);
	assert_string_equal(head2, head);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The broker's writer: busy timeout 0. While another handle holds the write
 * lock, recording fails at once with CF_EBUSY and writes nothing; once the
 * lock is free, the same records go in.
 */
static void
test_store_connections__busy_fails_fast(void **state)
{
	struct fixture *fx = *state;
	cf_store *w = NULL;
	struct conn c[2];
	cf_store_connection recs[2];
	cf_err err = CF_ERR_INIT;
	int64_t t0, waited;

	conn_init(&c[0], 0, 1, "dev-1", "accepted");
	conn_init(&c[1], 1, 2, "dev-2", "status_REVOKED");
	recs[0] = c[0].rec;
	recs[1] = c[1].rec;
	assert_int_equal(cf_store_open_existing(&w, fx->uri, &err), 0);
	assert_int_equal(cf_store_set_busy_timeout(w, 0, &err), 0);
	assert_int_equal(cf_store_set_autocheckpoint(w, 0, &err), 0);
	record(fx->store, c, 1, 0); /* one row, so that pruning would have work */

	/* The holder: BEGIN IMMEDIATE through a transaction of the fixture's handle. */
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_add_thing(fx, "dev-1");
	t0 = now_ms();
	assert_int_equal(cf_store_connections_record(w, recs, 2, 1, &err), CF_EBUSY);
	waited = now_ms() - t0;
	assert_int_equal(err.code, CF_EBUSY);
	if (waited > 1000)
		fail_msg("a busy record waited %lld ms with busy timeout 0", (long long)waited);
	/* The writer can still read, and sees neither its records nor a pruning. */
	assert_int_equal(fx_count_connections(w, NULL), 1);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);

	/* Lock free: the kept records go in, and keep 2 prunes the older row. */
	assert_int_equal(cf_store_connections_record(w, recs, 2, 2, &err), 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 2);

	/* A timeout that is not 0 is waited out before CF_EBUSY. */
	assert_int_equal(cf_store_set_busy_timeout(w, 300, &err), 0);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	t0 = now_ms();
	assert_int_equal(cf_store_connections_record(w, recs, 2, 0, &err), CF_EBUSY);
	waited = now_ms() - t0;
	cf_store_tx_rollback(fx->store);
	if (waited < 200 || waited > 3000)
		fail_msg("a busy record with busy timeout 300 waited %lld ms", (long long)waited);
	assert_int_equal(fx_count_connections(fx->store, NULL), 2);
	cf_store_close(w);
	assert_int_equal(fx_verify_ok(fx), 1);
}

/* Inside a caller's transaction the records go with it: rolled back, they are gone. */
static void
test_store_connections__in_caller_tx(void **state)
{
	struct fixture *fx = *state;
	struct conn c;
	cf_err err = CF_ERR_INIT;

	conn_init(&c, 0, 1, "dev-1", "accepted");
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	record(fx->store, &c, 1, 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);
	cf_store_tx_rollback(fx->store);
	assert_int_equal(fx_count_connections(fx->store, NULL), 0);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	record(fx->store, &c, 1, 0);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_int_equal(fx_count_connections(fx->store, NULL), 1);
}

int
test_connections_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_connections__record_and_list, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__filters, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__prune_keeps_newest,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__invalid_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__readonly_refused, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__not_in_event_log, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__busy_fails_fast, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_connections__in_caller_tx, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("connections", tests, NULL, NULL);
}
