/*
 * Backend-independent behaviour of the registry: statuses and transitions,
 * CAs, things, certificates, policies attached, registration codes, events.
 * Nothing here touches SQL, so the same cases run on every backend.
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA   "int-1"
#define PEND CF_CERT_PENDING_ACTIVATION
#define ACT  CF_CERT_ACTIVE
#define INA  CF_CERT_INACTIVE
#define REV  CF_CERT_REVOKED

static void
assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("'%s' does not contain '%s'", haystack, needle);
}

/* Put certificate n into status s the legal way. */
static void
cert_in_status(struct fixture *fx, uint64_t n, const char *thing, cf_cert_status s)
{
	char id[65];

	fx_add_cert(fx, n, CA, thing, s == REV ? ACT : s, 30);
	if (s == REV) {
		fx_id(id, n);
		assert_int_equal(cf_store_cert_transition(fx->store, id, REV, "keyCompromise",
							  &fx_actor, NULL), 0);
	}
}

static void
test_store_store__status_names(void **state)
{
	cf_cert_status s;
	int i;

	(void)state;
	for (i = PEND; i <= REV; i++) {
		assert_int_equal(cf_cert_status_parse(&s, cf_cert_status_name(i)), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(cf_cert_status_parse(&s, "active"), 0);
	assert_int_equal(s, ACT);
	assert_int_equal(cf_cert_status_parse(&s, "ACTIVATED"), CF_EINVAL);
	assert_int_equal(cf_cert_status_parse(&s, NULL), CF_EINVAL);
	assert_string_equal(cf_ca_status_name(CF_CA_RETIRED), "RETIRED");
	assert_string_equal(cf_cert_status_name((cf_cert_status)42), "UNKNOWN");
}

/* All 16 pairs, against the store: result, status after, and the event. */
static void
test_store_store__transitions_table(void **state)
{
	static const bool allowed[4][4] = {
		/* to:      PEND   ACT    INA    REV */
		[PEND] = { false, true, true, true },
		[ACT] = { false, false, true, true },
		[INA] = { false, true, false, true },
		[REV] = { false, false, false, false },
	};
	struct fixture *fx = *state;
	int from, to, rc;
	uint64_t n = 1;
	char id[65], resource[80], action[64];
	char *detail;
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	for (from = PEND; from <= REV; from++) {
		for (to = PEND; to <= REV; to++, n++) {
			assert_int_equal(cf_cert_transition_allowed(from, to), allowed[from][to]);
			cert_in_status(fx, n, "dev-1", from);
			fx_id(id, n);
			snprintf(resource, sizeof(resource), "cert:%s", id);
			before = fx_count_events(fx, resource);
			rc = cf_store_cert_transition(fx->store, id, to, NULL, &fx_actor, &err);
			if (allowed[from][to]) {
				assert_int_equal(rc, 0);
				assert_int_equal(fx_status(fx, id), to);
				assert_int_equal(fx_count_events(fx, resource), before + 1);
				detail = fx_last_detail(fx, resource, action);
				assert_string_equal(action, "cert.status");
				assert_contains(detail, cf_cert_status_name(to));
				free(detail);
			} else {
				assert_int_equal(rc, CF_ESTATE);
				assert_contains(err.msg, cf_cert_status_name(from));
				assert_contains(err.msg, cf_cert_status_name(to));
				assert_int_equal(fx_status(fx, id), from);
				assert_int_equal(fx_count_events(fx, resource), before);
			}
		}
	}
	fx_verify_ok(fx);
}

static void
test_store_store__transition_detail(void **state)
{
	struct fixture *fx = *state;
	cf_store_actor who = { "cli:root", "lost device" };
	cf_store_cert cert;
	char id[65], resource[80];
	char *detail;

	fx_add_ca(fx, CA);
	fx_add_cert(fx, 7, CA, NULL, ACT, 30);
	fx_id(id, 7);
	fx->now += 100;
	assert_int_equal(cf_store_cert_transition(fx->store, id, REV, "keyCompromise", &who, NULL),
			 0);
	snprintf(resource, sizeof(resource), "cert:%s", id);
	detail = fx_last_detail(fx, resource, NULL);
	assert_string_equal(detail, "{\"from\":\"ACTIVE\",\"reason\":\"keyCompromise\","
				    "\"to\":\"REVOKED\",\"why\":\"lost device\"}");
	free(detail);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, id, NULL), 0);
	assert_string_equal(cert.revoke_reason, "keyCompromise");
	assert_int_equal(cert.revoked_at, FX_T0 + 100);
	assert_int_equal(cert.updated_at, FX_T0 + 100);
	assert_int_equal(cert.change_seq, fx_count_events(fx, NULL));
	cf_store_cert_clear(&cert);
}

static void
test_store_store__actor_required(void **state)
{
	struct fixture *fx = *state;
	cf_store_actor nobody = { "", NULL };

	assert_int_equal(cf_store_thing_insert(fx->store, "dev-1", NULL, NULL, NULL), CF_EINVAL);
	assert_int_equal(cf_store_thing_insert(fx->store, "dev-1", NULL, &nobody, NULL),
			 CF_EINVAL);
	assert_int_equal(fx_count_events(fx, NULL), 0);
}

static cf_store_ca
ca_record(const char *name, cf_ca_status status, bool root, uint64_t n, char id[65])
{
	cf_store_ca ca = { 0 };

	fx_id(id, n);
	ca.name = (char *)(uintptr_t)name;
	ca.status = status;
	ca.is_root = root;
	if (status != CF_CA_PENDING) {
		ca.cert_id = id;
		ca.cert_pem = (char *)(uintptr_t)"placeholder";
		ca.subject = (char *)(uintptr_t)"CN=x";
		ca.not_before = FX_T0;
		ca.not_after = FX_T0 + 1000;
	}
	return ca;
}

static void
test_store_store__ca_default_and_status(void **state)
{
	struct fixture *fx = *state;
	cf_store_ca ca, got;
	char id[65];
	cf_err err = CF_ERR_INIT;

	ca = ca_record("root", CF_CA_ACTIVE, true, 1, id);
	assert_int_equal(cf_store_ca_insert(fx->store, &ca, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_insert(fx->store, &ca, &fx_actor, &err), CF_EEXISTS);
	ca = ca_record("root-2", CF_CA_ACTIVE, true, 1, id);
	assert_int_equal(cf_store_ca_insert(fx->store, &ca, &fx_actor, NULL), CF_EEXISTS);
	fx_add_ca(fx, "int-1");
	fx_add_ca(fx, "int-2");

	assert_int_equal(cf_store_ca_get_default(fx->store, &got, NULL), CF_ENOTFOUND);
	assert_int_equal(cf_store_ca_set_default(fx->store, "root", &fx_actor, &err), CF_ESTATE);
	assert_int_equal(cf_store_ca_set_default(fx->store, "nope", &fx_actor, NULL),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_ca_set_default(fx->store, "int-1", &fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_set_default(fx->store, "int-2", &fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_get_default(fx->store, &got, NULL), 0);
	assert_string_equal(got.name, "int-2");
	cf_store_ca_clear(&got);
	assert_int_equal(cf_store_ca_get(fx->store, &got, "int-1", NULL), 0);
	assert_false(got.is_default);
	cf_store_ca_clear(&got);

	/* Retiring the default leaves no default; a retired CA cannot issue. */
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-2", CF_CA_RETIRED, NULL,
						&fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_get_default(fx->store, &got, NULL), CF_ENOTFOUND);
	assert_int_equal(cf_store_ca_set_default(fx->store, "int-2", &fx_actor, NULL), CF_ESTATE);
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-2", CF_CA_RETIRED, NULL,
						&fx_actor, NULL), CF_ESTATE);
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-2", CF_CA_ACTIVE, NULL,
						&fx_actor, NULL), CF_ESTATE);
	{
		struct fx_cert c;

		fx_cert_init(&c, 1, "int-2", NULL, ACT, 30);
		assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false,
						      &fx_actor, &err), CF_ESTATE);
		/* ... but certificates it issued earlier may still be registered. */
		assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, true,
						      &fx_actor, NULL), 0);
	}

	/* Revoking needs a reason, works from RETIRED and from ACTIVE, and is final. */
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-2", CF_CA_REVOKED, NULL,
						&fx_actor, NULL), CF_EINVAL);
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-2", CF_CA_REVOKED, "caCompromise",
						&fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-1", CF_CA_REVOKED, "superseded",
						&fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_set_status(fx->store, "int-1", CF_CA_RETIRED, NULL,
						&fx_actor, NULL), CF_ESTATE);
	assert_int_equal(cf_store_ca_get(fx->store, &got, "int-1", NULL), 0);
	assert_int_equal(got.status, CF_CA_REVOKED);
	assert_string_equal(got.revoke_reason, "superseded");
	cf_store_ca_clear(&got);
	{
		struct fx_cert c;

		fx_cert_init(&c, 2, "int-2", NULL, ACT, 30);
		assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, true,
						      &fx_actor, NULL), CF_ESTATE);
	}
	assert_int_equal(fx_count_events(fx, "ca:int-2"), 4); /* created default status status */
	fx_verify_ok(fx);
}

static int
count_ca(const cf_store_ca *ca, void *payload)
{
	(void)ca;
	(*(int *)payload)++;
	return 0;
}

static void
test_store_store__ca_pending_activate(void **state)
{
	struct fixture *fx = *state;
	cf_store_ca ca, got;
	char id[65], id2[65];
	int n = 0;
	cf_err err = CF_ERR_INIT;

	ca = ca_record("int-p", CF_CA_PENDING, false, 5, id);
	ca.key_ref = (char *)(uintptr_t)"keys/int-p.pem";
	assert_int_equal(cf_store_ca_insert(fx->store, &ca, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_get(fx->store, &got, "int-p", NULL), 0);
	assert_int_equal(got.status, CF_CA_PENDING);
	assert_null(got.cert_id);
	cf_store_ca_clear(&got);
	/* Pending: cannot be default, cannot issue. */
	assert_int_equal(cf_store_ca_set_default(fx->store, "int-p", &fx_actor, NULL), CF_ESTATE);

	fx_add_ca(fx, "root");
	ca = ca_record("int-p", CF_CA_ACTIVE, false, 6, id2);
	ca.parent = (char *)(uintptr_t)"root";
	assert_int_equal(cf_store_ca_activate(fx->store, &ca, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_activate(fx->store, &ca, &fx_actor, &err), CF_ESTATE);
	assert_int_equal(cf_store_ca_get_by_cert(fx->store, &got, id2, NULL), 0);
	assert_string_equal(got.name, "int-p");
	assert_string_equal(got.parent, "root");
	assert_string_equal(got.key_ref, "keys/int-p.pem");
	assert_int_equal(got.status, CF_CA_ACTIVE);
	cf_store_ca_clear(&got);
	assert_int_equal(cf_store_ca_get_by_cert(fx->store, &got, id, NULL), CF_ENOTFOUND);
	assert_int_equal(cf_store_ca_list(fx->store, count_ca, &n, NULL), 0);
	assert_int_equal(n, 2);
}

static void
test_store_store__thing_rules(void **state)
{
	struct fixture *fx = *state;
	cf_store_thing thing;
	cf_store_cert cert;
	char a[65], b[65];
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	assert_int_equal(cf_store_thing_insert(fx->store, "dev-1", "{\"model\":\"x\"}", &fx_actor,
					       NULL), 0);
	assert_int_equal(cf_store_thing_insert(fx->store, "dev-1", NULL, &fx_actor, &err),
			 CF_EEXISTS);
	assert_int_equal(cf_store_thing_insert(fx->store, "dev-2", "[1]", &fx_actor, NULL),
			 CF_EINVAL);
	assert_int_equal(cf_store_thing_insert(fx->store, "-bad", NULL, &fx_actor, NULL),
			 CF_EINVAL);
	assert_int_equal(cf_store_thing_get(fx->store, &thing, "dev-1", NULL), 0);
	assert_string_equal(thing.attributes, "{\"model\":\"x\"}");
	assert_int_equal(thing.created_at, FX_T0);
	cf_store_thing_clear(&thing);

	fx_add_cert(fx, 1, CA, "dev-1", PEND, 30);
	fx_add_cert(fx, 2, CA, "dev-1", ACT, 30);
	fx_id(a, 1);
	fx_id(b, 2);
	assert_int_equal(cf_store_thing_delete(fx->store, "dev-1", &fx_actor, &err), CF_ESTATE);
	assert_int_equal(cf_store_cert_transition(fx->store, b, INA, NULL, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_thing_delete(fx->store, "dev-1", &fx_actor, NULL), CF_ESTATE);
	assert_int_equal(cf_store_cert_transition(fx->store, a, REV, NULL, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_thing_delete(fx->store, "dev-1", &fx_actor, NULL), 0);
	assert_int_equal(cf_store_thing_delete(fx->store, "dev-1", &fx_actor, NULL), CF_ENOTFOUND);
	assert_int_equal(cf_store_thing_get(fx->store, &thing, "dev-1", NULL), CF_ENOTFOUND);

	/* History keeps the name; the orphan cannot come back to life. */
	assert_int_equal(cf_store_cert_get(fx->store, &cert, b, NULL), 0);
	assert_string_equal(cert.thing, "dev-1");
	cf_store_cert_clear(&cert);
	assert_int_equal(cf_store_cert_transition(fx->store, b, ACT, NULL, &fx_actor, &err),
			 CF_ESTATE);
	assert_int_equal(fx_count_events(fx, "thing:dev-1"), 2);
	fx_verify_ok(fx);
}

static void
test_store_store__cert_insert_errors(void **state)
{
	struct fixture *fx = *state;
	const char *pols[] = { "missing" };
	struct fx_cert c;
	int64_t events;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "dev-1");
	events = fx_count_events(fx, NULL);
	fx_cert_init(&c, 1, "no-ca", "dev-1", ACT, 30);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 CF_ENOTFOUND);
	fx_cert_init(&c, 1, CA, "no-thing", ACT, 30);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 CF_ENOTFOUND);
	fx_cert_init(&c, 1, CA, "dev-1", ACT, 30);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, pols, 1, false, &fx_actor, &err),
			 CF_ENOTFOUND);
	assert_contains(err.msg, "missing");
	/* Serials and key digests as the lookups compare them: no leading zero, lowercase. */
	snprintf(c.serial, sizeof(c.serial), "0a");
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 CF_EINVAL);
	assert_contains(err.msg, "leading zeros");
	fx_cert_init(&c, 1, CA, "dev-1", ACT, 30);
	c.cert.spki_sha256 = (char *)(uintptr_t)"ABCDEF0123456789ABCDEF0123456789"
						  "ABCDEF0123456789ABCDEF0123456789";
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 CF_EINVAL);
	assert_contains(err.msg, "spki_sha256");
	fx_cert_init(&c, 1, CA, "dev-1", ACT, 30);
	assert_int_equal(fx_count_events(fx, NULL), events);

	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, NULL),
			 0);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 CF_EEXISTS);
	fx_cert_init(&c, 2, CA, "dev-1", ACT, 30);
	snprintf(c.serial, sizeof(c.serial), "%x", 2); /* the serial of certificate 1 */
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 CF_EEXISTS);
	assert_contains(err.msg, "serial");
	/* Bad records never reach the backend. */
	fx_cert_init(&c, 3, CA, "dev-1", REV, 30);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, NULL),
			 CF_EINVAL);
	fx_cert_init(&c, 3, CA, "dev-1", ACT, 30);
	c.id[0] = 'G';
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, NULL),
			 CF_EINVAL);
	assert_int_equal(fx_count_events(fx, NULL), events + 1);
	fx_verify_ok(fx);
}

static void
insert_with_id(struct fixture *fx, uint64_t n, const char *id)
{
	struct fx_cert c;

	fx_cert_init(&c, n, CA, NULL, ACT, 30);
	memcpy(c.id, id, 65);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, NULL),
			 0);
}

static void
test_store_store__cert_prefix(void **state)
{
	struct fixture *fx = *state;
	const char *a = "abcdef0011111111111111111111111111111111111111111111111111111111";
	const char *b = "abcdef0022222222222222222222222222222222222222222222222222222222";
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	insert_with_id(fx, 1, a);
	insert_with_id(fx, 2, b);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, "abcdef001", NULL), 0);
	assert_string_equal(cert.id, a);
	cf_store_cert_clear(&cert);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, "ABCDEF0022", NULL), 0);
	assert_string_equal(cert.id, b);
	cf_store_cert_clear(&cert);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, b, NULL), 0);
	cf_store_cert_clear(&cert);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, "abcdef00", &err), CF_EINVAL);
	assert_contains(err.msg, "ambiguous");
	assert_null(cert.id);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, "abcdef0", &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, "abcdef0z", &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, "ffffffff", &err), CF_ENOTFOUND);
	/* Transitions accept a prefix too. */
	assert_int_equal(cf_store_cert_transition(fx->store, "abcdef001", INA, NULL, &fx_actor,
						  NULL), 0);
	assert_int_equal(fx_status(fx, a), INA);
	assert_int_equal(cf_store_cert_transition(fx->store, "abcdef00", INA, NULL, &fx_actor,
						  NULL), CF_EINVAL);
}

struct seen {
	int n;
	char ids[16][65];
	int64_t last_change;
};

static int
collect(const cf_store_cert *cert, void *payload)
{
	struct seen *s = payload;

	if (s->n < 16)
		memcpy(s->ids[s->n], cert->id, 65);
	s->n++;
	s->last_change = cert->change_seq;
	return 0;
}

static void
assert_ids(const struct seen *s, const uint64_t *ns, int count)
{
	char id[65];
	int i;

	assert_int_equal(s->n, count);
	for (i = 0; i < count; i++) {
		fx_id(id, ns[i]);
		assert_string_equal(s->ids[i], id);
	}
}

static void
list(struct fixture *fx, const cf_store_cert_filter *f, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(cf_store_cert_list(fx->store, f, collect, s, NULL), 0);
}

static void
test_store_store__cert_list_filters(void **state)
{
	struct fixture *fx = *state;
	cf_store_cert_filter f = CF_STORE_CERT_FILTER_INIT;
	struct seen s;
	char id[65];

	fx_add_ca(fx, CA);
	fx_add_ca(fx, "int-2");
	fx_add_thing(fx, "a");
	fx_add_thing(fx, "b");
	fx_add_cert(fx, 1, CA, "a", ACT, 40);
	fx_add_cert(fx, 2, CA, "a", PEND, 10);
	fx_add_cert(fx, 3, CA, "b", ACT, 20);
	fx_add_cert(fx, 4, "int-2", "b", ACT, 5);
	fx_add_cert(fx, 5, CA, NULL, INA, 1);

	list(fx, NULL, &s);
	assert_ids(&s, (const uint64_t[]){ 5, 4, 2, 3, 1 }, 5); /* soonest expiry first */
	f.status = ACT;
	list(fx, &f, &s);
	assert_ids(&s, (const uint64_t[]){ 4, 3, 1 }, 3);
	f.thing = "b";
	list(fx, &f, &s);
	assert_ids(&s, (const uint64_t[]){ 4, 3 }, 2);
	f.ca = CA;
	list(fx, &f, &s);
	assert_ids(&s, (const uint64_t[]){ 3 }, 1);
	f = (cf_store_cert_filter)CF_STORE_CERT_FILTER_INIT;
	f.not_after_before = FX_T0 + 20 * 86400; /* strictly before */
	list(fx, &f, &s);
	assert_ids(&s, (const uint64_t[]){ 5, 4, 2 }, 3);
	f.status = ACT;
	list(fx, &f, &s);
	assert_ids(&s, (const uint64_t[]){ 4 }, 1);
	f = (cf_store_cert_filter)CF_STORE_CERT_FILTER_INIT;
	f.limit = 2;
	list(fx, &f, &s);
	assert_ids(&s, (const uint64_t[]){ 5, 4 }, 2);
	f = (cf_store_cert_filter)CF_STORE_CERT_FILTER_INIT;
	f.status = 9;
	assert_int_equal(cf_store_cert_list(fx->store, &f, collect, &s, NULL), CF_EINVAL);

	/* The change feed: everything, then only what changed since. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_store_cert_changes(fx->store, 0, 0, collect, &s, NULL), 0);
	assert_ids(&s, (const uint64_t[]){ 1, 2, 3, 4, 5 }, 5);
	fx_id(id, 3);
	assert_int_equal(cf_store_cert_transition(fx->store, id, INA, NULL, &fx_actor, NULL), 0);
	{
		int64_t after = s.last_change;

		memset(&s, 0, sizeof(s));
		assert_int_equal(cf_store_cert_changes(fx->store, after, 0, collect, &s, NULL), 0);
		assert_ids(&s, (const uint64_t[]){ 3 }, 1);
		assert_int_equal(s.last_change, fx_count_events(fx, NULL));
	}
}

/* A callback may call back into the store, even the same list. */
static int
nested(const cf_store_cert *cert, void *payload)
{
	struct fixture *fx = payload;
	struct seen s;

	(void)cert;
	list(fx, NULL, &s);
	return s.n == 2 ? 0 : 1;
}

static void
test_store_store__list_reentrant(void **state)
{
	struct fixture *fx = *state;

	fx_add_ca(fx, CA);
	fx_add_cert(fx, 1, CA, NULL, ACT, 40);
	fx_add_cert(fx, 2, CA, NULL, ACT, 40);
	assert_int_equal(cf_store_cert_list(fx->store, NULL, nested, fx, NULL), 0);
}

static const char policy_doc[] =
	"{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"
	"\"resources\":[\"management/topic/${clientid}/#\"]}]}";

static int
policy_names(const cf_store_policy *p, void *payload)
{
	char *buf = payload;
	size_t used = strlen(buf);

	snprintf(buf + used, 128 - used, "%s,", p->name);
	return 0;
}

static void
test_store_store__policy_attach_detach(void **state)
{
	struct fixture *fx = *state;
	const char *pols[] = { "p1" };
	struct fx_cert c;
	cf_store_policy p;
	char names[128] = "";
	char resource[80], action[64];
	char *detail;
	int64_t change;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	assert_int_equal(cf_store_policy_insert(fx->store, "p1", policy_doc, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_insert(fx->store, "p2", policy_doc, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_insert(fx->store, "p2", policy_doc, &fx_actor, &err),
			 CF_EEXISTS);
	assert_int_equal(cf_store_policy_insert(fx->store, "p3", "{\"version\":1}", &fx_actor,
						NULL), CF_EINVAL);
	assert_int_equal(cf_store_policy_get(fx->store, &p, "p1", NULL), 0);
	assert_string_equal(p.document, policy_doc);
	cf_store_policy_clear(&p);

	fx_cert_init(&c, 1, CA, NULL, ACT, 30);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, pols, 1, false, &fx_actor, NULL),
			 0);
	snprintf(resource, sizeof(resource), "cert:%s", c.id);
	detail = fx_last_detail(fx, resource, action);
	assert_string_equal(action, "cert.issued");
	assert_contains(detail, "\"policies\":[\"p1\"]");
	assert_contains(detail, "\"serial\":\"2\"");
	free(detail);

	assert_int_equal(cf_store_policy_attach(fx->store, "p1", c.id, &fx_actor, &err),
			 CF_EEXISTS);
	assert_int_equal(cf_store_policy_attach(fx->store, "p2", c.id, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_attach(fx->store, "p9", c.id, &fx_actor, NULL),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_policy_attach(fx->store, "p2", "00000000", &fx_actor, NULL),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_policy_list(fx->store, c.id, policy_names, names, NULL), 0);
	assert_string_equal(names, "p1,p2,");
	change = fx_count_events(fx, NULL);
	{
		cf_store_cert cert;

		assert_int_equal(cf_store_cert_get(fx->store, &cert, c.id, NULL), 0);
		assert_int_equal(cert.change_seq, change); /* attaching changed the cert */
		cf_store_cert_clear(&cert);
	}
	assert_int_equal(cf_store_policy_detach(fx->store, "p1", c.id, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_policy_detach(fx->store, "p1", c.id, &fx_actor, NULL),
			 CF_ENOTFOUND);
	detail = fx_last_detail(fx, resource, action);
	assert_string_equal(action, "policy.detached");
	assert_string_equal(detail, "{\"policy\":\"p1\"}");
	free(detail);
	names[0] = '\0';
	assert_int_equal(cf_store_policy_list(fx->store, c.id, policy_names, names, NULL), 0);
	assert_string_equal(names, "p2,");
	names[0] = '\0';
	assert_int_equal(cf_store_policy_list(fx->store, NULL, policy_names, names, NULL), 0);
	assert_string_equal(names, "p1,p2,");
	assert_int_equal(fx_count_events(fx, "policy:p1"), 1);
	fx_verify_ok(fx);
}

static void
test_store_store__regcode_once(void **state)
{
	struct fixture *fx = *state;
	char code[65], code2[65];
	cf_store_ca ca, got;
	char id[65];
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_regcode_create(fx->store, code, 3600, &fx_actor, NULL), 0);
	assert_int_equal(strlen(code), 32);
	assert_int_equal(strspn(code, "0123456789abcdef"), 32);
	assert_int_equal(cf_store_regcode_create(fx->store, code2, 0, &fx_actor, NULL), CF_EINVAL);
	assert_int_equal(cf_store_regcode_create(fx->store, code2, 60, &fx_actor, NULL), 0);
	assert_string_not_equal(code, code2);

	ca = ca_record("byoca", CF_CA_ACTIVE, false, 9, id);
	assert_int_equal(cf_store_ca_register(fx->store, &ca, "00112233445566778899aabbccddeeff",
					      &fx_actor, &err), CF_ENOTFOUND);
	assert_int_equal(cf_store_ca_register(fx->store, &ca, code, &fx_actor, NULL), 0);
	assert_int_equal(cf_store_ca_get(fx->store, &got, "byoca", NULL), 0);
	assert_true(got.external);
	cf_store_ca_clear(&got);
	ca = ca_record("byoca-2", CF_CA_ACTIVE, false, 10, id);
	assert_int_equal(cf_store_ca_register(fx->store, &ca, code, &fx_actor, &err), CF_ENOTFOUND);

	/* Expired: the fake clock moves past the 60 s of code2. */
	fx->now += 61;
	assert_int_equal(cf_store_ca_register(fx->store, &ca, code2, &fx_actor, &err),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_ca_get(fx->store, &got, "byoca-2", NULL), CF_ENOTFOUND);
	assert_int_equal(fx_count_events(fx, "ca:byoca"), 1);
	{
		char action[64];
		char *detail = fx_last_detail(fx, "ca:byoca", action);

		assert_string_equal(action, "ca.registered");
		assert_contains(detail, "\"kind\":\"external\"");
		free(detail);
	}
	fx_verify_ok(fx);
}

static int
stop_at_two(const cf_store_event *ev, void *payload)
{
	int *n = payload;

	(void)ev;
	return ++*n == 2 ? 42 : 0;
}

static void
test_store_store__events_list_and_verify(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_filter f = CF_STORE_EVENT_FILTER_INIT;
	int n = 0;

	assert_int_equal(fx_verify_ok(fx), 0); /* an empty log verifies */
	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	fx_add_thing(fx, "b");
	fx_add_cert(fx, 1, CA, "a", ACT, 30);
	assert_int_equal(fx_verify_ok(fx), 4);
	assert_int_equal(fx_count_events(fx, "thing:a"), 1);
	f.after_seq = 2;
	assert_int_equal(cf_store_events_list(fx->store, &f, stop_at_two, &n, NULL), 42);
	{
		char action[64];
		char *detail = fx_last_detail(fx, "ca:" CA, action);

		assert_string_equal(action, "ca.created");
		assert_contains(detail, "\"status\":\"ACTIVE\"");
		free(detail);
	}
}

static void
test_store_store__events_head_anchor(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor a = { -1, "" }, b;
	int64_t count = 0, bad = -1, seq = -1;
	char hash[65];
	cf_err err = CF_ERR_INIT;

	/* An empty log: seq 0 and the genesis hash, which verifies as an anchor. */
	assert_int_equal(cf_store_events_head(fx->store, &a.seq, a.hash, &err), 0);
	assert_int_equal(a.seq, 0);
	assert_int_equal(strspn(a.hash, "0"), 64);
	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, &a, &err), 0);

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	assert_int_equal(cf_store_events_head(fx->store, &a.seq, a.hash, &err), 0);
	assert_int_equal(a.seq, 2);
	assert_int_equal(strlen(a.hash), 64);
	fx_add_cert(fx, 1, CA, "a", ACT, 30);
	/* An older head stays a valid anchor as the log grows. */
	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, &a, &err), 0);
	assert_int_equal(count, 3);
	assert_int_equal(cf_store_events_head(fx->store, &seq, hash, &err), 0);
	assert_int_equal(seq, 3);
	assert_string_not_equal(hash, a.hash);

	/* An anchor the log does not hold: another hash, or a seq past the end. */
	b = a;
	b.hash[0] = b.hash[0] == 'a' ? 'b' : 'a';
	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, &b, &err), CF_EINTEGRITY);
	assert_int_equal(bad, 2);
	assert_contains(err.msg, "truncated or rewritten before the anchor");
	b = a;
	b.seq = 4;
	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, &b, &err), CF_EINTEGRITY);
	assert_int_equal(bad, 4);
	assert_contains(err.msg, "truncated or rewritten before the anchor");

	/* Malformed anchors are the caller's mistake, not the log's. */
	b = a;
	b.seq = -1;
	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, &b, &err), CF_EINVAL);
	b = a;
	b.hash[10] = 'X';
	assert_int_equal(cf_store_events_verify(fx->store, &count, &bad, &b, &err), CF_EINVAL);
}

/* key_roca is kept as inserted and handed out by cert_get, cert_list and cert_scan. */
struct roca_seen {
	int n;
	char ids[4][65];
	bool roca[4];
};

static int
roca_scan_cb(const cf_store_cert_facts *f, void *payload)
{
	struct roca_seen *s = payload;

	assert_true(s->n < 4);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", f->id);
	s->roca[s->n++] = f->key_roca;
	return 0;
}

static int
roca_list_cb(const cf_store_cert *c, void *payload)
{
	struct roca_seen *s = payload;

	assert_true(s->n < 4);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", c->id);
	s->roca[s->n++] = c->key_roca;
	return 0;
}

/* The key_roca s saw for certificate n. */
static bool
roca_of(const struct roca_seen *s, uint64_t n)
{
	char id[65];
	int i;

	fx_id(id, n);
	for (i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0)
			return s->roca[i];
	fail_msg("certificate %llu not seen", (unsigned long long)n);
	return false;
}

static void
test_store_store__cert_key_roca(void **state)
{
	struct fixture *fx = *state;
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	struct roca_seen s;
	struct fx_cert c;
	cf_store_cert got;
	cf_err err = CF_ERR_INIT;
	uint64_t n;

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	for (n = 1; n <= 3; n++) {
		fx_cert_init(&c, n, CA, "a", ACT, 30);
		c.cert.key_type = (char *)(uintptr_t)"RSA-2048";
		c.cert.key_bits = 2048;
		c.cert.sig_alg = (char *)(uintptr_t)"sha256WithRSAEncryption";
		c.cert.key_roca = n == 2;
		if (cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0)
			fail_msg("cert_insert: %s", err.msg);
	}
	for (n = 1; n <= 3; n++) {
		fx_cert_init(&c, n, CA, "a", ACT, 30);
		assert_int_equal(cf_store_cert_get(fx->store, &got, c.id, &err), 0);
		assert_int_equal(got.key_roca, n == 2);
		cf_store_cert_clear(&got);
	}
	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_store_cert_scan(fx->store, -1, false, roca_scan_cb, &s, &err), 0);
	assert_int_equal(s.n, 3);
	assert_false(roca_of(&s, 1));
	assert_true(roca_of(&s, 2));
	assert_false(roca_of(&s, 3));
	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_store_cert_list(fx->store, &filter, roca_list_cb, &s, &err), 0);
	assert_int_equal(s.n, 3);
	assert_false(roca_of(&s, 1));
	assert_true(roca_of(&s, 2));
	assert_false(roca_of(&s, 3));
	fx_verify_ok(fx);
}

/*
 * cf_store_cert_get_by_serial(): the certificate a CA issued with a serial,
 * the CA being part of the key; serials only in the registry's own form.
 */
static void
test_store_store__cert_get_by_serial(void **state)
{
	static const char serial40[] = "fedcba9876543210fedcba9876543210fedcba98";
	static const char *const malformed[] = {
		"0ff", "FF", "", "00", "fg", "ff ", "-1",
		"1fedcba9876543210fedcba9876543210fedcba98", /* 41 digits */
	};
	struct fixture *fx = *state;
	struct fx_cert c;
	cf_store_cert got;
	cf_err err = CF_ERR_INIT;
	char id[65];
	size_t i;

	fx_add_ca(fx, CA);
	fx_add_ca(fx, "int-2");
	fx_add_thing(fx, "a");
	fx_cert_init(&c, 1, CA, "a", ACT, 30);
	snprintf(c.serial, sizeof(c.serial), "ff");
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 0);
	/* The same serial under another CA is another certificate. */
	fx_cert_init(&c, 2, "int-2", "a", ACT, 30);
	snprintf(c.serial, sizeof(c.serial), "ff");
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 0);
	fx_cert_init(&c, 3, CA, "a", ACT, 30);
	c.cert.serial = (char *)(uintptr_t)serial40;
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 0);

	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, CA, "ff", &err), 0);
	fx_id(id, 1);
	assert_string_equal(got.id, id);
	assert_string_equal(got.ca, CA);
	assert_string_equal(got.serial, "ff");
	assert_string_equal(got.thing, "a");
	assert_int_equal(got.status, ACT);
	cf_store_cert_clear(&got);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, "int-2", "ff", &err), 0);
	fx_id(id, 2);
	assert_string_equal(got.id, id);
	assert_string_equal(got.ca, "int-2");
	cf_store_cert_clear(&got);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, CA, serial40, &err), 0);
	fx_id(id, 3);
	assert_string_equal(got.id, id);
	cf_store_cert_clear(&got);

	/* Unknown: the serial under a CA that did not issue it, an unknown CA, serial "0". */
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, "int-2", serial40, &err),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, "int-3", "ff", &err),
			 CF_ENOTFOUND);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, CA, "fe", &err), CF_ENOTFOUND);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, CA, "0", &err), CF_ENOTFOUND);
	assert_null(got.id);

	/* Deleted certificates are found too, with deleted_at. */
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_transition(fx->store, id, INA, NULL, &fx_actor, &err), 0);
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), 0);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, CA, "ff", &err), 0);
	assert_string_equal(got.id, id);
	assert_true(got.deleted_at != 0);
	assert_int_equal(got.status, INA);
	cf_store_cert_clear(&got);

	/* Not the registry's form: a leading zero, uppercase, empty, over 40 digits. */
	for (i = 0; i < CF_ARRAY_LEN(malformed); i++) {
		err = (cf_err)CF_ERR_INIT;
		if (cf_store_cert_get_by_serial(fx->store, &got, CA, malformed[i], &err) !=
		    CF_EINVAL)
			fail_msg("serial '%s': want CF_EINVAL", malformed[i]);
		assert_int_equal(err.code, CF_EINVAL);
	}
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, CA, NULL, &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, &got, NULL, "ff", &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_get_by_serial(NULL, &got, CA, "ff", &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_get_by_serial(fx->store, NULL, CA, "ff", &err), CF_EINVAL);
}

/* cf_store_events_verify_chain() and its count for anchor; returns the head it verified. */
static cf_store_event_anchor
chain_ok(struct fixture *fx, const cf_store_event_anchor *anchor, int64_t want_count)
{
	cf_store_event_anchor head;
	int64_t count = -1, bad = -1;
	cf_err err = CF_ERR_INIT;

	memset(&head, 0x55, sizeof(head));
	if (cf_store_events_verify_chain(fx->store, anchor, 0, &head, &count, &bad, &err) != 0)
		fail_msg("verify_chain: %s (bad seq %lld)", err.msg, (long long)bad);
	assert_int_equal(bad, 0);
	assert_int_equal(count, want_count);
	return head;
}

/*
 * The chain walked from an anchor: the whole chain without one, from the
 * anchor's event to the head with one, the verified head handed back; an
 * anchor the log does not hold, or a malformed one, refused.
 */
static void
test_store_store__events_verify_chain(void **state)
{
	struct fixture *fx = *state;
	cf_store_event_anchor head, a, mid, b;
	int64_t count = -1, bad = -1, seq = 0;
	char hash[65];
	cf_err err = CF_ERR_INIT;

	/* An empty log: nothing walked, the genesis head; seq 0 with it is an anchor too. */
	head = chain_ok(fx, NULL, 0);
	assert_int_equal(head.seq, 0);
	assert_int_equal(strspn(head.hash, "0"), 64);
	chain_ok(fx, &head, 0);

	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	fx_add_thing(fx, "b");
	assert_int_equal(cf_store_events_head(fx->store, &mid.seq, mid.hash, &err), 0);
	assert_int_equal(mid.seq, 3);
	fx_add_cert(fx, 1, CA, "a", ACT, 30);
	fx_add_cert(fx, 2, CA, "b", ACT, 30);
	fx_add_thing(fx, "c");
	assert_int_equal(cf_store_events_head(fx->store, &seq, hash, &err), 0);
	assert_int_equal(seq, 6);

	/* No anchor: every event, and the head is cf_store_events_head()'s. */
	head = chain_ok(fx, NULL, 6);
	assert_int_equal(head.seq, seq);
	assert_string_equal(head.hash, hash);
	/* NULL head is allowed. */
	assert_int_equal(cf_store_events_verify_chain(fx->store, NULL, 0, NULL, &count, &bad, &err), 0);
	assert_int_equal(count, 6);
	/* The head as anchor: its own event only. */
	a = head;
	head = chain_ok(fx, &a, 1);
	assert_int_equal(head.seq, 6);
	assert_string_equal(head.hash, hash);
	/* An anchor in the middle: from it to the head, head - anchor + 1 events. */
	head = chain_ok(fx, &mid, 6 - 3 + 1);
	assert_int_equal(head.seq, 6);
	assert_string_equal(head.hash, hash);
	/* The first event, and seq 0 with the genesis hash: the whole chain. */
	assert_int_equal(cf_store_events_head(fx->store, &b.seq, b.hash, &err), 0);
	b.seq = 0;
	memset(b.hash, '0', 64);
	b.hash[64] = '\0';
	chain_ok(fx, &b, 6);
	/* The log grows; an older head stays a good anchor. */
	fx_add_thing(fx, "d");
	head = chain_ok(fx, &a, 2);
	assert_int_equal(head.seq, 7);
	/*
	 * A limited walk (the audit's sweep): that many events past the anchor,
	 * the last one handed back; from the genesis, the first ones; past the
	 * head, the walk just ends there.
	 */
	assert_int_equal(cf_store_events_verify_chain(fx->store, &mid, 2, &b, &count, &bad, &err),
			 0);
	assert_int_equal(b.seq, 5);
	assert_int_equal(count, 3);
	assert_int_equal(cf_store_events_verify_chain(fx->store, NULL, 2, &b, &count, &bad, &err), 0);
	assert_int_equal(b.seq, 2);
	assert_int_equal(count, 2);
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 100, &b, &count, &bad, &err),
			 0);
	assert_int_equal(b.seq, 7);
	assert_string_equal(b.hash, head.hash);
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, -1, &b, &count, &bad, &err),
			 CF_EINVAL);
	/* A limited walk from an anchor past the log's end: refused, not an empty success. */
	b.seq = 99;
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 5, &b, &count, &bad, &err),
			 CF_EINTEGRITY);

	/* An anchor with another hash: the log does not hold it. */
	b = mid;
	b.hash[63] = b.hash[63] == 'a' ? 'b' : 'a';
	memset(&head, 0x55, sizeof(head));
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 0, &head, &count, &bad, &err),
			 CF_EINTEGRITY);
	assert_int_equal(bad, 3);
	assert_contains(err.msg, "differs from the anchor");
	assert_int_equal(head.seq, 0); /* no head vouched for */
	/* seq 0 with another hash than the genesis one. */
	b.seq = 0;
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 0, &head, &count, &bad, &err),
			 CF_EINTEGRITY);
	/* An anchor past the end of the log. */
	b = a;
	b.seq = 8;
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 0, &head, &count, &bad, &err),
			 CF_EINTEGRITY);
	assert_int_equal(bad, 8);
	assert_contains(err.msg, "before the anchor");

	/* Malformed anchors, and missing outputs, are the caller's mistake. */
	b = a;
	b.seq = -1;
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 0, &head, &count, &bad, &err),
			 CF_EINVAL);
	b = a;
	b.hash[10] = 'A';
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 0, &head, &count, &bad, &err),
			 CF_EINVAL);
	b = a;
	b.hash[63] = '\0';
	assert_int_equal(cf_store_events_verify_chain(fx->store, &b, 0, &head, &count, &bad, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_events_verify_chain(fx->store, &a, 0, &head, NULL, &bad, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_events_verify_chain(fx->store, &a, 0, &head, &count, NULL, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_events_verify_chain(NULL, &a, 0, &head, &count, &bad, &err),
			 CF_EINVAL);
}

int
test_store_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_store__status_names, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__transitions_table, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__transition_detail, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__actor_required, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__ca_default_and_status, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__ca_pending_activate, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__thing_rules, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__cert_insert_errors, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__cert_prefix, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__cert_list_filters, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__list_reentrant, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__policy_attach_detach, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__regcode_once, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__events_list_and_verify, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__cert_key_roca, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__cert_get_by_serial, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__events_verify_chain, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_store__events_head_anchor, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
