/*
 * The caller's transactions: cf_store_tx_begin() / _commit() / _rollback()
 * around the ordinary operations, which then run in savepoints.
 */
#include "fixture.h"

#include <stdio.h>
#include <string.h>

#define CA "int-1"

/* The chain head, as a pair to compare. */
struct head {
	int64_t seq;
	char hash[65];
};

static void
head_of(struct fixture *fx, struct head *h)
{
	assert_int_equal(cf_store_events_head(fx->store, &h->seq, h->hash, NULL), 0);
}

static int
thing_exists(cf_store *store, const char *name)
{
	cf_store_thing thing;
	int rc;

	rc = cf_store_thing_get(store, &thing, name, NULL);
	if (rc == 0)
		cf_store_thing_clear(&thing);
	return rc == 0;
}

static void
test_store_tx__commit_several(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	char id[65];
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	before = fx_count_events(fx, NULL);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_add_thing(fx, "dev-1");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_PENDING_ACTIVATION, 30);
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_ACTIVE, NULL, &fx_actor,
						  &err), 0);
	/* Our own reads see the changes; another handle does not, yet. */
	assert_true(thing_exists(fx->store, "dev-1"));
	assert_int_equal(fx_status(fx, id), CF_CERT_ACTIVE);
	assert_int_equal(fx_count_events(fx, NULL), before + 3);
	assert_int_equal(cf_store_open(&other, fx->uri, &err), 0);
	assert_false(thing_exists(other, "dev-1"));
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_true(thing_exists(other, "dev-1"));
	cf_store_close(other);
	assert_int_equal(fx_count_events(fx, NULL), before + 3);
	assert_int_equal(fx_verify_ok(fx), before + 3);
	/* The handle is back to one transaction per operation. */
	fx_add_thing(fx, "dev-2");
	assert_int_equal(fx_verify_ok(fx), before + 4);
}

static void
test_store_tx__rollback_undoes_all(void **state)
{
	struct fixture *fx = *state;
	struct head h0, h1;
	struct fx_cert c[2];
	cf_store_cert_new items[2];
	char id[65];
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 30);
	before = fx_verify_ok(fx);
	head_of(fx, &h0);

	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_add_thing(fx, "dev-2");
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err), 0);
	memset(items, 0, sizeof(items));
	fx_cert_init(&c[0], 2, CA, "dev-2", CF_CERT_ACTIVE, 30);
	fx_cert_init(&c[1], 3, CA, "dev-2", CF_CERT_ACTIVE, 30);
	items[0].cert = &c[0].cert;
	items[1].cert = &c[1].cert;
	assert_int_equal(cf_store_cert_insert_batch(fx->store, items, 2, &fx_actor, &err), 0);
	assert_int_equal(items[0].rc, 0);
	assert_int_equal(items[1].rc, 0);
	/* verify inside the transaction sees its own changes, and leaves it usable. */
	assert_int_equal(fx_verify_ok(fx), before + 4);
	fx_add_thing(fx, "dev-3");
	cf_store_tx_rollback(fx->store);

	head_of(fx, &h1);
	assert_int_equal(h1.seq, h0.seq);
	assert_string_equal(h1.hash, h0.hash);
	assert_false(thing_exists(fx->store, "dev-2"));
	assert_false(thing_exists(fx->store, "dev-3"));
	assert_int_equal(fx_status(fx, id), CF_CERT_ACTIVE);
	fx_id(id, 2);
	assert_int_equal(cf_store_cert_get(fx->store, &c[0].cert, id, NULL), CF_ENOTFOUND);
	assert_int_equal(fx_verify_ok(fx), before);
	/* The chain goes on from where it was. */
	fx_add_thing(fx, "dev-2");
	assert_int_equal(fx_verify_ok(fx), before + 1);
}

static void
test_store_tx__inner_failure_keeps_outer(void **state)
{
	struct fixture *fx = *state;
	struct fx_cert c[3];
	cf_store_cert_new items[3];
	char id[65];
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 30);
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_REVOKED, NULL, &fx_actor,
						  NULL), 0);
	before = fx_verify_ok(fx);

	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_add_thing(fx, "dev-2");
	/* A refused transition, a taken name, a refused batch item: each undoes only itself. */
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_ACTIVE, NULL, &fx_actor,
						  &err), CF_ESTATE);
	assert_int_equal(cf_store_thing_insert(fx->store, "dev-2", NULL, &fx_actor, &err),
			 CF_EEXISTS);
	memset(items, 0, sizeof(items));
	fx_cert_init(&c[0], 2, CA, "dev-2", CF_CERT_ACTIVE, 30);
	fx_cert_init(&c[1], 1, CA, "dev-2", CF_CERT_ACTIVE, 30); /* id taken */
	fx_cert_init(&c[2], 3, CA, "nobody", CF_CERT_ACTIVE, 30);
	items[0].cert = &c[0].cert;
	items[1].cert = &c[1].cert;
	items[2].cert = &c[2].cert;
	assert_int_equal(cf_store_cert_insert_batch(fx->store, items, 3, &fx_actor, &err), 0);
	assert_int_equal(items[0].rc, 0);
	assert_int_equal(items[1].rc, CF_EEXISTS);
	assert_int_equal(items[2].rc, CF_ENOTFOUND);
	fx_add_thing(fx, "dev-3");
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);

	assert_true(thing_exists(fx->store, "dev-2"));
	assert_true(thing_exists(fx->store, "dev-3"));
	assert_int_equal(fx_status(fx, id), CF_CERT_REVOKED);
	fx_id(id, 2);
	assert_int_equal(fx_status(fx, id), CF_CERT_ACTIVE);
	assert_int_equal(fx_verify_ok(fx), before + 3);
}

static void
test_store_tx__misuse(void **state)
{
	struct fixture *fx = *state;
	cf_store *ro = NULL;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_tx_commit(fx->store, &err), CF_ESTATE);
	assert_int_equal(err.code, CF_ESTATE);
	cf_store_tx_rollback(fx->store); /* nothing open: nothing happens */
	cf_store_tx_rollback(NULL);
	assert_int_equal(cf_store_tx_commit(NULL, &err), CF_EINVAL);
	assert_int_equal(cf_store_tx_begin(NULL, &err), CF_EINVAL);

	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), CF_ESTATE);
	fx_add_thing(fx, "dev-1"); /* the refused begin left the open one alone */
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), CF_ESTATE);
	assert_true(thing_exists(fx->store, "dev-1"));

	/* A transaction left open is rolled back by close. */
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_add_thing(fx, "dev-2");
	cf_store_close(fx->store);
	assert_int_equal(cf_store_open(&fx->store, fx->uri, &err), 0);
	cf_store_set_clock(fx->store, fx_clock, fx);
	assert_false(thing_exists(fx->store, "dev-2"));
	assert_int_equal(fx_verify_ok(fx), 1);

	assert_int_equal(cf_store_open_readonly(&ro, fx->uri, &err), 0);
	assert_int_equal(cf_store_tx_begin(ro, &err), CF_ESTATE);
	assert_int_equal(cf_store_tx_commit(ro, &err), CF_ESTATE);
	cf_store_tx_rollback(ro);
	cf_store_close(ro);
}

/* Two handles: the second writer waits for the first's commit, then goes on. */
static void
test_store_tx__lock_held_until_commit(void **state)
{
	struct fixture *fx = *state;
	cf_store *other = NULL;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_open(&other, fx->uri, &err), 0);
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_add_thing(fx, "dev-1");
	/* Another transaction cannot start while ours holds the write lock. */
	assert_int_equal(cf_store_tx_begin(other, &err), CF_EBUSY);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_int_equal(cf_store_thing_insert(other, "dev-2", NULL, &fx_actor, &err), 0);
	cf_store_close(other);
	assert_int_equal(fx_verify_ok(fx), 2);
}

int
test_tx_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_tx__commit_several, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_tx__rollback_undoes_all, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_tx__inner_failure_keeps_outer, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_tx__misuse, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_tx__lock_held_until_commit, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("tx", tests, NULL, NULL);
}
