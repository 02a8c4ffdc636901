/*
 * Unit tests for broker/index.c: the plugin's certificate index over a real
 * registry (the store test fixture), without a broker.
 */
#include "../store/fixture.h"

#include <stdio.h>
#include <string.h>

#include "broker/index.h"

#define CA "int-1"

struct left_log {
	int calls;
	char thing[64];
	char why[32];
};

static void
on_left(const char *thing, const char *id, const char *why, void *payload)
{
	struct left_log *l = payload;

	(void)id;
	l->calls++;
	snprintf(l->thing, sizeof(l->thing), "%s", thing);
	snprintf(l->why, sizeof(l->why), "%s", why);
}

static void
refresh(struct fixture *fx, cf_broker_index *idx, struct left_log *l)
{
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_broker_index_refresh(idx, fx->store, on_left, l, &err), CF_OK);
}

static const char *
id_of(uint64_t n)
{
	static char id[65];

	fx_id(id, n);
	return id;
}

/* Every reason a CONNECT is refused, and the one way it is admitted. */
static void
test_broker_index__reasons(void **state)
{
	struct fixture *fx = *state;
	cf_broker_index idx = { NULL, 0, 0, 0 };
	struct left_log l = { 0, "", "" };
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 2, CA, "dev-1", CF_CERT_INACTIVE, 30);
	fx_add_cert(fx, 3, CA, "dev-1", CF_CERT_PENDING_ACTIVATION, 30);
	fx_add_cert(fx, 4, CA, NULL, CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 5, CA, "dev-1", CF_CERT_INACTIVE, 30);
	assert_int_equal(cf_store_cert_delete(fx->store, id_of(5), &fx_actor, &err), CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(cf_broker_index_size(&idx), 5);

	assert_null(cf_broker_index_check(&idx, id_of(1), "dev-1", FX_T0));
	assert_string_equal(cf_broker_index_check(&idx, id_of(1), "dev-2", FX_T0),
			    "client_id_mismatch");
	assert_string_equal(cf_broker_index_check(&idx, id_of(1), NULL, FX_T0),
			    "client_id_mismatch");
	assert_string_equal(cf_broker_index_check(&idx, id_of(1), "dev-1", FX_T0 + 31 * 86400),
			    "expired");
	assert_string_equal(cf_broker_index_check(&idx, id_of(1), "dev-1", FX_T0 - 3600),
			    "not_yet_valid");
	assert_string_equal(cf_broker_index_check(&idx, id_of(2), "dev-1", FX_T0),
			    "status_INACTIVE");
	assert_string_equal(cf_broker_index_check(&idx, id_of(3), "dev-1", FX_T0),
			    "status_PENDING_ACTIVATION");
	assert_string_equal(cf_broker_index_check(&idx, id_of(4), "dev-1", FX_T0), "no_thing");
	assert_string_equal(cf_broker_index_check(&idx, id_of(5), "dev-1", FX_T0), "deleted");
	assert_string_equal(cf_broker_index_check(&idx, id_of(9), "dev-1", FX_T0),
			    "unknown_certificate");

	/* Revoked, then seen by an incremental refresh. */
	assert_int_equal(cf_store_cert_transition(fx->store, id_of(1), CF_CERT_REVOKED, NULL,
						  &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_string_equal(cf_broker_index_check(&idx, id_of(1), "dev-1", FX_T0),
			    "status_REVOKED");
	assert_int_equal(l.calls, 0); /* nobody was connected with it */
	cf_broker_index_clear(&idx);
}

/* A certificate in use that leaves ACTIVE is reported once; one not in use is not. */
static void
test_broker_index__left_active_in_use(void **state)
{
	struct fixture *fx = *state;
	cf_broker_index idx = { NULL, 0, 0, 0 };
	struct left_log l = { 0, "", "" };
	cf_err err = CF_ERR_INIT;
	uint64_t n;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	fx_add_thing(fx, "dev-2");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 2, CA, "dev-2", CF_CERT_ACTIVE, 30);
	/* Enough certificates to make the table grow under the sessions. */
	for (n = 10; n < 1200; n++)
		fx_add_cert(fx, n, CA, NULL, CF_CERT_ACTIVE, 30);
	refresh(fx, &idx, &l);
	cf_broker_index_session(&idx, id_of(1), 1);
	cf_broker_index_session(&idx, id_of(2), 1);
	cf_broker_index_session(&idx, id_of(2), -1); /* dev-2 disconnected */
	cf_broker_index_session(&idx, id_of(2), -1); /* never below zero */
	cf_broker_index_session(&idx, id_of(999999), 1); /* unknown: ignored */

	assert_int_equal(cf_store_cert_transition(fx->store, id_of(1), CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err),
			 CF_OK);
	assert_int_equal(cf_store_cert_transition(fx->store, id_of(2), CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 1);
	assert_string_equal(l.thing, "dev-1");
	assert_string_equal(l.why, "INACTIVE");
	/* Nothing new: nothing reported again. */
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 1);
	/* Another certificate of dev-2, in use, then deactivated: reported too. */
	fx_add_cert(fx, 3, CA, "dev-2", CF_CERT_ACTIVE, 30);
	refresh(fx, &idx, &l);
	cf_broker_index_session(&idx, id_of(3), 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id_of(3), CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 2);
	assert_string_equal(l.thing, "dev-2");
	assert_int_equal(cf_broker_index_size(&idx), 1193);
	cf_broker_index_clear(&idx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_broker_index__reasons, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_broker_index__left_active_in_use, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("broker index", tests, NULL, NULL);
}
