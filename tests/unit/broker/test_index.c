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
on_left(const cf_broker_cert *cert, const char *why, void *payload)
{
	struct left_log *l = payload;

	l->calls++;
	snprintf(l->thing, sizeof(l->thing), "%s", cert->thing != NULL ? cert->thing : "-");
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
	cf_broker_index idx = CF_BROKER_INDEX_INIT;
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
	assert_int_equal(l.calls, 1);
	assert_string_equal(l.why, "REVOKED");
	cf_broker_index_clear(&idx);
}

/* Every certificate that could connect and no longer can is reported, once. */
static void
test_broker_index__left_active(void **state)
{
	struct fixture *fx = *state;
	cf_broker_index idx = CF_BROKER_INDEX_INIT;
	struct left_log l = { 0, "", "" };
	cf_err err = CF_ERR_INIT;
	uint64_t n;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	fx_add_thing(fx, "dev-2");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 2, CA, "dev-2", CF_CERT_INACTIVE, 30);
	/* Enough certificates to make the table grow. */
	for (n = 10; n < 1200; n++)
		fx_add_cert(fx, n, CA, NULL, CF_CERT_ACTIVE, 30);
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 0); /* the first load reports nothing */

	assert_int_equal(cf_store_cert_transition(fx->store, id_of(1), CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err),
			 CF_OK);
	assert_int_equal(cf_store_cert_transition(fx->store, id_of(2), CF_CERT_REVOKED, NULL,
						  &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 1); /* not dev-2's: it could not connect before either */
	assert_string_equal(l.thing, "dev-1");
	assert_string_equal(l.why, "INACTIVE");
	/* Nothing new: nothing reported again. */
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 1);
	/* Deleted after INACTIVE: no longer admissible already, not reported. */
	assert_int_equal(cf_store_cert_delete(fx->store, id_of(1), &fx_actor, &err), CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 1);
	/* A new certificate of dev-2, then revoked while ACTIVE. */
	fx_add_cert(fx, 3, CA, "dev-2", CF_CERT_ACTIVE, 30);
	refresh(fx, &idx, &l);
	assert_int_equal(cf_store_cert_transition(fx->store, id_of(3), CF_CERT_REVOKED, NULL,
						  &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(l.calls, 2);
	assert_string_equal(l.thing, "dev-2");
	assert_string_equal(l.why, "REVOKED");
	assert_int_equal(cf_broker_index_size(&idx), 1193);
	cf_broker_index_clear(&idx);
}

/* A certificate issued since the last refresh is read on its own, the feed position kept. */
static void
test_broker_index__fetch(void **state)
{
	struct fixture *fx = *state;
	cf_broker_index idx = CF_BROKER_INDEX_INIT;
	struct left_log l = { 0, "", "" };
	cf_err err = CF_ERR_INIT;
	int64_t seq;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	fx_add_thing(fx, "dev-2");
	fx_add_cert(fx, 1, CA, "dev-1", CF_CERT_ACTIVE, 30);
	refresh(fx, &idx, &l);
	seq = idx.seq;
	fx_add_cert(fx, 2, CA, "dev-2", CF_CERT_ACTIVE, 30);
	fx_add_cert(fx, 3, CA, "dev-1", CF_CERT_ACTIVE, 30);
	assert_string_equal(cf_broker_index_check(&idx, id_of(2), "dev-2", FX_T0),
			    "unknown_certificate");
	assert_int_equal(cf_broker_index_fetch(&idx, fx->store, id_of(2), &err), CF_OK);
	assert_null(cf_broker_index_check(&idx, id_of(2), "dev-2", FX_T0));
	assert_int_equal(idx.seq, seq); /* certificate 3 is still ahead in the feed */
	assert_int_equal(cf_broker_index_fetch(&idx, fx->store, id_of(9), &err), CF_ENOTFOUND);
	assert_int_equal(cf_broker_index_fetch(&idx, fx->store, "abc", &err), CF_EINVAL);
	refresh(fx, &idx, &l);
	assert_null(cf_broker_index_check(&idx, id_of(3), "dev-1", FX_T0));
	assert_int_equal(l.calls, 0);
	assert_int_equal(cf_broker_index_size(&idx), 3);
	cf_broker_index_clear(&idx);
}

static const char device_policy[] =
	"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": [\"publish\"], "
	"\"resources\": [\"m/${clientid}/csr_res\"]}]}";
static const char extra_policy[] =
	"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": [\"publish\"], "
	"\"resources\": [\"telemetry/${thing}\"]}]}";

static const char quarantine_policy[] =
	"{\"version\": 1, \"statements\": [{\"effect\": \"deny\", \"actions\": [\"connect\"], "
	"\"resources\": [\"${clientid}\"]}]}";

static bool
may_publish(const cf_broker_index *idx, uint64_t n, const char *thing, const char *topic)
{
	const cf_broker_cert *e = cf_broker_index_get(idx, id_of(n));

	assert_non_null(e);
	return cf_broker_policy_allows(e->policy, CF_BROKER_PUBLISH, topic, thing, thing);
}

/*
 * Policies follow attach and detach through the change feed; one compiled
 * copy per distinct set; history and unbound policies cost nothing.
 */
static void
test_broker_index__policies(void **state)
{
	struct fixture *fx = *state;
	cf_broker_index idx = CF_BROKER_INDEX_INIT;
	struct left_log l = { 0, "", "" };
	cf_err err = CF_ERR_INIT;
	uint64_t n;

	fx_add_ca(fx, CA);
	assert_int_equal(cf_store_policy_insert(fx->store, "device", device_policy, &fx_actor,
						&err),
			 CF_OK);
	assert_int_equal(cf_store_policy_insert(fx->store, "extra", extra_policy, &fx_actor, &err),
			 CF_OK);
	for (n = 1; n <= 50; n++) {
		char thing[16];

		snprintf(thing, sizeof(thing), "dev-%u", (unsigned int)n);
		fx_add_thing(fx, thing);
		fx_add_cert(fx, n, CA, thing, CF_CERT_ACTIVE, 30);
		assert_int_equal(cf_store_policy_attach(fx->store, "device", id_of(n), &fx_actor,
							&err),
				 CF_OK);
	}
	fx_add_cert(fx, 60, CA, "dev-1", CF_CERT_INACTIVE, 30);
	assert_int_equal(cf_store_policy_attach(fx->store, "device", id_of(60), &fx_actor, &err),
			 CF_OK);
	fx_add_cert(fx, 61, CA, "dev-2", CF_CERT_ACTIVE, 30); /* none attached */
	refresh(fx, &idx, &l);
	assert_int_equal(cf_broker_index_policies(&idx), 1); /* fifty certificates, one copy */
	assert_true(may_publish(&idx, 1, "dev-1", "m/dev-1/csr_res"));
	assert_false(may_publish(&idx, 1, "dev-1", "m/dev-2/csr_res"));
	assert_false(may_publish(&idx, 1, "dev-1", "telemetry/dev-1"));
	assert_null(cf_broker_index_get(&idx, id_of(60))->policy); /* cannot connect anyway */
	assert_null(cf_broker_index_get(&idx, id_of(61))->policy);
	assert_false(may_publish(&idx, 61, "dev-2", "m/dev-2/csr_res"));

	/* Attach a second policy to one certificate: a new set, seen at the next refresh. */
	assert_int_equal(cf_store_policy_attach(fx->store, "extra", id_of(1), &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(cf_broker_index_policies(&idx), 2);
	assert_true(may_publish(&idx, 1, "dev-1", "telemetry/dev-1"));
	assert_true(may_publish(&idx, 1, "dev-1", "m/dev-1/csr_res"));
	assert_false(may_publish(&idx, 2, "dev-2", "telemetry/dev-2"));
	/* Detach the device policy: only the extra one is left. */
	assert_int_equal(cf_store_policy_detach(fx->store, "device", id_of(1), &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_int_equal(cf_broker_index_policies(&idx), 3);
	assert_false(may_publish(&idx, 1, "dev-1", "m/dev-1/csr_res"));
	assert_true(may_publish(&idx, 1, "dev-1", "telemetry/dev-1"));
	/* A policy denying connect: no longer admissible, reported as such. */
	assert_int_equal(cf_store_policy_insert(fx->store, "quarantine", quarantine_policy,
						&fx_actor, &err),
			 CF_OK);
	assert_int_equal(cf_store_policy_attach(fx->store, "quarantine", id_of(3), &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_string_equal(cf_broker_index_check(&idx, id_of(3), "dev-3", FX_T0), "policy_denied");
	assert_int_equal(l.calls, 1);
	assert_string_equal(l.thing, "dev-3");
	assert_string_equal(l.why, "policy_denied");
	assert_null(cf_broker_index_check(&idx, id_of(4), "dev-4", FX_T0));
	/* Deactivated: its policies go with it. */
	assert_int_equal(cf_store_cert_transition(fx->store, id_of(2), CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err),
			 CF_OK);
	refresh(fx, &idx, &l);
	assert_null(cf_broker_index_get(&idx, id_of(2))->policy);
	cf_broker_index_clear(&idx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_broker_index__reasons, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_broker_index__left_active, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_broker_index__policies, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_broker_index__fetch, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("broker index", tests, NULL, NULL);
}
