/*
 * Rotations and the outbox (schema 3): states and their rules, one open
 * rotation per thing, compare-and-set updates, the timer filters, the
 * outbox's order, and all of it inside the caller's transactions.
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA  "int-1"
#define REQ CF_ROTATION_REQUESTED
#define ISS CF_ROTATION_ISSUED
#define COM CF_ROTATION_COMPLETED
#define FAI CF_ROTATION_FAILED
#define TIM CF_ROTATION_TIMED_OUT
#define CAN CF_ROTATION_CANCELLED

#define DAY 86400

static void
assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("'%s' does not contain '%s'", haystack, needle);
}

/* A thing with an ACTIVE certificate number n bound to it. */
static void
add_device(struct fixture *fx, const char *thing, uint64_t n)
{
	fx_add_thing(fx, thing);
	fx_add_cert(fx, n, CA, thing, CF_CERT_ACTIVE, 20);
}

/* A rotation record over caller storage: id, old certificate n. */
struct fx_rot {
	char id[33];
	char thing[64];
	char old_cert[65];
	char new_cert[65];
	cf_store_rotation rot;
};

static void
rot_init(struct fx_rot *r, const char *thing, uint64_t n, int64_t deadline, int64_t next_send_at)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(cf_store_rotation_id_random(r->id, NULL), 0);
	snprintf(r->thing, sizeof(r->thing), "%s", thing);
	fx_id(r->old_cert, n);
	r->rot.id = r->id;
	r->rot.thing = r->thing;
	r->rot.old_cert = r->old_cert;
	r->rot.state = REQ;
	r->rot.rekey = true;
	r->rot.deadline = deadline;
	r->rot.next_send_at = next_send_at;
}

/* Open a rotation for thing (old certificate n) and assert success. */
static void
open_rot(struct fixture *fx, struct fx_rot *r, const char *thing, uint64_t n, int64_t deadline,
	 int64_t next_send_at)
{
	cf_err err = CF_ERR_INIT;

	rot_init(r, thing, n, deadline, next_send_at);
	if (cf_store_rotation_insert(fx->store, &r->rot, &fx_actor, &err) != 0)
		fail_msg("rotation_insert %s: %s", thing, err.msg);
}

/* Move r from its state to `to` (ISSUED and COMPLETED get new certificate m). */
static int
move(struct fixture *fx, struct fx_rot *r, cf_rotation_state to, uint64_t m, cf_err *err)
{
	cf_rotation_state from = r->rot.state;
	int rc;

	if (to == ISS || to == COM) {
		fx_id(r->new_cert, m);
		r->rot.new_cert = r->new_cert;
		r->rot.csr_spki = r->new_cert;
	}
	r->rot.state = to;
	rc = cf_store_rotation_update(fx->store, &r->rot, from, &fx_actor, err);
	if (rc != 0)
		r->rot.state = from;
	return rc;
}

static cf_rotation_state
stored_state(struct fixture *fx, const char *id)
{
	cf_store_rotation got;
	cf_rotation_state s;
	cf_err err = CF_ERR_INIT;

	if (cf_store_rotation_get(fx->store, &got, id, &err) != 0)
		fail_msg("rotation_get %s: %s", id, err.msg);
	s = got.state;
	cf_store_rotation_clear(&got);
	return s;
}

static void
test_store_rotation__states(void **state)
{
	static const bool allowed[6][6] = {
		/* to:    REQ    ISS    COM    FAI    TIM    CAN */
		[REQ] = { true, true, false, true, true, true },
		[ISS] = { false, true, true, true, true, true },
		[COM] = { false, false, false, false, false, false },
		[FAI] = { false, false, false, false, false, false },
		[TIM] = { false, false, false, false, false, false },
		[CAN] = { false, false, false, false, false, false },
	};
	cf_rotation_state s;
	int from, to;

	(void)state;
	for (from = REQ; from <= CAN; from++) {
		assert_int_equal(cf_rotation_state_parse(&s, cf_rotation_state_name(from)), 0);
		assert_int_equal(s, from);
		assert_int_equal(cf_rotation_state_open(from), from == REQ || from == ISS);
		for (to = REQ; to <= CAN; to++)
			assert_int_equal(cf_rotation_transition_allowed(from, to),
					 allowed[from][to]);
	}
	assert_int_equal(cf_rotation_state_parse(&s, "timed_out"), 0);
	assert_int_equal(s, TIM);
	assert_int_equal(cf_rotation_state_parse(&s, "DONE"), CF_EINVAL);
	assert_int_equal(cf_rotation_state_parse(&s, NULL), CF_EINVAL);
	assert_string_equal(cf_rotation_state_name((cf_rotation_state)9), "UNKNOWN");
	assert_false(cf_rotation_transition_allowed((cf_rotation_state)9, REQ));
	assert_false(cf_rotation_transition_allowed(REQ, (cf_rotation_state)-1));
}

static void
test_store_rotation__insert_get(void **state)
{
	struct fixture *fx = *state;
	struct fx_rot r, r2;
	cf_store_rotation got;
	char resource[80], action[64];
	char *detail;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	add_device(fx, "dev-1", 1);
	add_device(fx, "dev-2", 2);
	fx->now += 10;
	rot_init(&r, "dev-1", 1, FX_T0 + DAY, FX_T0 + 10);
	r.rot.rekey = false;
	r.rot.key_type = (char *)(uintptr_t)"EC-P384";
	r.rot.sends = 1;
	r.rot.error = (char *)(uintptr_t)"ignored";
	assert_int_equal(cf_store_rotation_insert(fx->store, &r.rot, &fx_actor, &err), 0);
	assert_int_equal(strlen(r.id), 32);

	assert_int_equal(cf_store_rotation_get(fx->store, &got, r.id, &err), 0);
	assert_string_equal(got.id, r.id);
	assert_string_equal(got.thing, "dev-1");
	assert_string_equal(got.old_cert, r.old_cert);
	assert_null(got.new_cert);
	assert_null(got.csr_spki);
	assert_null(got.error);
	assert_int_equal(got.state, REQ);
	assert_false(got.rekey);
	assert_string_equal(got.key_type, "EC-P384");
	assert_int_equal(got.created_at, FX_T0 + 10);
	assert_int_equal(got.updated_at, FX_T0 + 10);
	assert_int_equal(got.deadline, FX_T0 + DAY);
	assert_int_equal(got.next_send_at, FX_T0 + 10);
	assert_int_equal(got.sends, 1);
	cf_store_rotation_clear(&got);
	cf_store_rotation_clear(&got); /* a cleared record clears again */

	assert_int_equal(cf_store_rotation_get_open(fx->store, &got, "dev-1", &err), 0);
	assert_string_equal(got.id, r.id);
	cf_store_rotation_clear(&got);
	assert_int_equal(cf_store_rotation_get_open(fx->store, &got, "dev-2", &err), CF_ENOTFOUND);
	assert_int_equal(cf_store_rotation_get(fx->store, &got, "00000000000000000000000000000000",
					       &err), CF_ENOTFOUND);

	snprintf(resource, sizeof(resource), "rotation:%s", r.id);
	detail = fx_last_detail(fx, resource, action);
	assert_string_equal(action, "rotation.opened");
	assert_contains(detail, "\"thing\":\"dev-1\"");
	assert_contains(detail, r.old_cert);
	assert_contains(detail, "\"rekey\":\"false\"");
	assert_contains(detail, "EC-P384");
	free(detail);

	/* One open rotation per thing; the same id twice is taken too. */
	rot_init(&r2, "dev-1", 1, FX_T0 + DAY, FX_T0);
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_EEXISTS);
	assert_contains(err.msg, "open rotation");
	rot_init(&r2, "dev-2", 2, FX_T0 + DAY, FX_T0);
	r2.rot.id = r.id;
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_EEXISTS);

	/* References. */
	rot_init(&r2, "nobody", 2, FX_T0 + DAY, FX_T0);
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_ENOTFOUND);
	rot_init(&r2, "dev-2", 99, FX_T0 + DAY, FX_T0);
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_ENOTFOUND);
	rot_init(&r2, "dev-2", 1, FX_T0 + DAY, FX_T0); /* dev-1's certificate */
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_EINVAL);

	/* Bad records. */
	rot_init(&r2, "dev-2", 2, FX_T0 + DAY, FX_T0);
	r2.rot.state = ISS;
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_EINVAL);
	rot_init(&r2, "dev-2", 2, 0, FX_T0);
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_EINVAL);
	rot_init(&r2, "dev-2", 2, FX_T0 + DAY, FX_T0);
	r2.id[0] = 'G';
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err),
			 CF_EINVAL);
	rot_init(&r2, "dev-2", 2, FX_T0 + DAY, FX_T0);
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, NULL, &err), CF_EINVAL);

	/* After the first one ends, the thing may have another. */
	assert_int_equal(move(fx, &r, CAN, 0, &err), 0);
	assert_int_equal(cf_store_rotation_get_open(fx->store, &got, "dev-1", &err), CF_ENOTFOUND);
	rot_init(&r2, "dev-1", 1, FX_T0 + DAY, FX_T0);
	assert_int_equal(cf_store_rotation_insert(fx->store, &r2.rot, &fx_actor, &err), 0);
	assert_int_equal(fx_verify_ok(fx), 8);
}

/* Every from x to, against the store: result, state after, and the event. */
static void
test_store_rotation__transitions(void **state)
{
	struct fixture *fx = *state;
	struct fx_rot r;
	char thing[32], resource[80], action[64];
	char *detail;
	int from, to, rc;
	uint64_t n = 1;
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	for (from = REQ; from <= CAN; from++) {
		for (to = REQ; to <= CAN; to++, n += 2) {
			snprintf(thing, sizeof(thing), "dev-%llu", (unsigned long long)n);
			add_device(fx, thing, n);
			fx_add_cert(fx, n + 1, CA, thing, CF_CERT_PENDING_ACTIVATION, 60);
			open_rot(fx, &r, thing, n, FX_T0 + DAY, FX_T0);
			/* Reach `from` the legal way. */
			if (from == ISS || from == COM)
				assert_int_equal(move(fx, &r, ISS, n + 1, &err), 0);
			if (from != REQ && from != ISS)
				assert_int_equal(move(fx, &r, from, n + 1, &err), 0);
			snprintf(resource, sizeof(resource), "rotation:%s", r.id);
			before = fx_count_events(fx, resource);
			r.rot.error = to == FAI ? (char *)(uintptr_t)"device said no" : NULL;
			rc = move(fx, &r, to, n + 1, &err);
			if (cf_rotation_transition_allowed(from, to)) {
				assert_int_equal(rc, 0);
				assert_int_equal(stored_state(fx, r.id), to);
				if (from == to) {
					assert_int_equal(fx_count_events(fx, resource), before);
					continue;
				}
				assert_int_equal(fx_count_events(fx, resource), before + 1);
				detail = fx_last_detail(fx, resource, action);
				assert_string_equal(action, "rotation.state");
				assert_contains(detail, cf_rotation_state_name(from));
				assert_contains(detail, cf_rotation_state_name(to));
				if (to == FAI)
					assert_contains(detail, "device said no");
				free(detail);
			} else {
				assert_int_equal(rc, CF_ESTATE);
				assert_contains(err.msg, cf_rotation_state_name(from));
				assert_contains(err.msg, cf_rotation_state_name(to));
				assert_int_equal(stored_state(fx, r.id), from);
				assert_int_equal(fx_count_events(fx, resource), before);
			}
		}
	}
	fx_verify_ok(fx);
}

static void
test_store_rotation__compare_and_set(void **state)
{
	struct fixture *fx = *state;
	struct fx_rot r;
	cf_store_rotation got;
	char resource[80], missing[65];
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	add_device(fx, "dev-1", 1);
	fx_add_cert(fx, 2, CA, "dev-1", CF_CERT_PENDING_ACTIVATION, 60);
	open_rot(fx, &r, "dev-1", 1, FX_T0 + DAY, FX_T0);
	snprintf(resource, sizeof(resource), "rotation:%s", r.id);
	before = fx_count_events(fx, resource);

	/* A re-send: timers move, no event. */
	fx->now += 300;
	r.rot.next_send_at = FX_T0 + 600;
	r.rot.sends = 2;
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, REQ, &fx_actor, &err), 0);
	assert_int_equal(cf_store_rotation_get(fx->store, &got, r.id, &err), 0);
	assert_int_equal(got.next_send_at, FX_T0 + 600);
	assert_int_equal(got.sends, 2);
	assert_int_equal(got.updated_at, FX_T0 + 300);
	assert_int_equal(got.created_at, FX_T0);
	cf_store_rotation_clear(&got);
	assert_int_equal(fx_count_events(fx, resource), before);

	/* The stored state is not the one the caller read. */
	r.rot.state = ISS;
	fx_id(r.new_cert, 2);
	r.rot.new_cert = r.new_cert;
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, ISS, &fx_actor, &err),
			 CF_ESTATE);
	assert_contains(err.msg, "REQUESTED");

	/* ISSUED needs a certificate that exists. */
	r.rot.new_cert = NULL;
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, REQ, &fx_actor, &err),
			 CF_EINVAL);
	fx_id(missing, 77);
	r.rot.new_cert = missing;
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, REQ, &fx_actor, &err),
			 CF_ENOTFOUND);
	r.rot.new_cert = r.new_cert;
	r.rot.csr_spki = r.new_cert;
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, REQ, &fx_actor, &err), 0);
	assert_int_equal(cf_store_rotation_get(fx->store, &got, r.id, &err), 0);
	assert_int_equal(got.state, ISS);
	assert_string_equal(got.new_cert, r.new_cert);
	assert_string_equal(got.csr_spki, r.new_cert);
	cf_store_rotation_clear(&got);
	/* The same move again: someone else already made it. */
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, REQ, &fx_actor, &err),
			 CF_ESTATE);

	r.rot.id = (char *)(uintptr_t)"0123456789abcdef0123456789abcdef";
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, ISS, &fx_actor, &err),
			 CF_ENOTFOUND);
	r.rot.id = r.id;
	r.rot.sends = -1;
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, ISS, &fx_actor, &err),
			 CF_EINVAL);
	fx_verify_ok(fx);
}

struct ids {
	int n;
	char id[8][33];
};

static int
collect(const cf_store_rotation *rot, void *payload)
{
	struct ids *ids = payload;

	if (ids->n < 8)
		snprintf(ids->id[ids->n], 33, "%s", rot->id);
	ids->n++;
	return 0;
}

static struct ids
list(struct fixture *fx, const cf_store_rotation_filter *f)
{
	struct ids ids;
	cf_err err = CF_ERR_INIT;

	memset(&ids, 0, sizeof(ids));
	if (cf_store_rotation_list(fx->store, f, collect, &ids, &err) != 0)
		fail_msg("rotation_list: %s", err.msg);
	return ids;
}

static void
test_store_rotation__list_filters(void **state)
{
	struct fixture *fx = *state;
	struct fx_rot a, b, c, d;
	cf_store_rotation_filter f = CF_STORE_ROTATION_FILTER_INIT;
	struct ids ids;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	add_device(fx, "a", 1);
	add_device(fx, "b", 2);
	add_device(fx, "c", 3);
	add_device(fx, "d", 4);
	fx_add_cert(fx, 5, CA, "c", CF_CERT_PENDING_ACTIVATION, 60);
	/* a: due at +300, deadline +3 days; b: due at +100, deadline +1 day. */
	open_rot(fx, &a, "a", 1, FX_T0 + 3 * DAY, FX_T0 + 300);
	fx->now += 1;
	open_rot(fx, &b, "b", 2, FX_T0 + DAY, FX_T0 + 100);
	fx->now += 1;
	/* c: ISSUED (its crt due again at +0), deadline +2 days. */
	open_rot(fx, &c, "c", 3, FX_T0 + 2 * DAY, FX_T0);
	assert_int_equal(move(fx, &c, ISS, 5, &err), 0);
	fx->now += 1;
	/* d: FAILED (neither due nor expiring), deadline long past. */
	open_rot(fx, &d, "d", 4, FX_T0 + 10, FX_T0);
	assert_int_equal(move(fx, &d, FAI, 0, &err), 0);

	ids = list(fx, NULL);
	assert_int_equal(ids.n, 4);
	assert_string_equal(ids.id[0], a.id); /* oldest first */
	assert_string_equal(ids.id[3], d.id);

	f.state = REQ;
	ids = list(fx, &f);
	assert_int_equal(ids.n, 2);
	f.state = -1;
	f.thing = "c";
	ids = list(fx, &f);
	assert_int_equal(ids.n, 1);
	assert_string_equal(ids.id[0], c.id);
	f.thing = NULL;

	/* Due: open ones with next_send_at <= T, soonest first; d is FAILED. */
	f.due_by = FX_T0 - 1;
	assert_int_equal(list(fx, &f).n, 0);
	f.due_by = FX_T0 + 99;
	ids = list(fx, &f);
	assert_int_equal(ids.n, 1);
	assert_string_equal(ids.id[0], c.id);
	f.due_by = FX_T0 + 100;
	ids = list(fx, &f);
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.id[0], c.id);
	assert_string_equal(ids.id[1], b.id);
	f.due_by = FX_T0 + 10 * DAY;
	ids = list(fx, &f);
	assert_int_equal(ids.n, 3);
	assert_string_equal(ids.id[1], b.id);
	assert_string_equal(ids.id[2], a.id);
	f.limit = 1;
	assert_int_equal(list(fx, &f).n, 1);
	f.limit = 0;
	f.due_by = 0;

	/* Expired: open ones with deadline <= T, soonest first; d is FAILED. */
	f.expired_by = FX_T0 + DAY - 1;
	assert_int_equal(list(fx, &f).n, 0);
	f.expired_by = FX_T0 + 2 * DAY;
	ids = list(fx, &f);
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.id[0], b.id);
	assert_string_equal(ids.id[1], c.id);
	f.state = ISS;
	ids = list(fx, &f);
	assert_int_equal(ids.n, 1);
	assert_string_equal(ids.id[0], c.id);

	f.state = 42;
	assert_int_equal(cf_store_rotation_list(fx->store, &f, collect, &ids, &err), CF_EINVAL);
	f.state = -1;
	f.limit = -1;
	assert_int_equal(cf_store_rotation_list(fx->store, &f, collect, &ids, &err), CF_EINVAL);
}

struct msgs {
	int n;
	int64_t id[8];
	char topic[8][32];
};

static int
collect_msg(const cf_store_outbox_msg *msg, void *payload)
{
	struct msgs *m = payload;

	if (m->n < 8) {
		m->id[m->n] = msg->id;
		snprintf(m->topic[m->n], sizeof(m->topic[0]), "%s", msg->topic);
	}
	m->n++;
	return 0;
}

static struct msgs
outbox(struct fixture *fx, int64_t limit)
{
	struct msgs m;
	cf_err err = CF_ERR_INIT;

	memset(&m, 0, sizeof(m));
	if (cf_store_outbox_list(fx->store, limit, collect_msg, &m, &err) != 0)
		fail_msg("outbox_list: %s", err.msg);
	return m;
}

static void
test_store_rotation__outbox(void **state)
{
	struct fixture *fx = *state;
	cf_store *ro = NULL;
	int64_t id1 = 0, id2 = 0, id3 = 0, id4 = 0;
	struct msgs m;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_store_outbox_add(fx->store, "p/a/csr_req", "{}", &id1, &err), 0);
	assert_int_equal(cf_store_outbox_add(fx->store, "p/b/csr_req", "{}", &id2, &err), 0);
	assert_int_equal(cf_store_outbox_add(fx->store, "p/c/crt", "{\"x\":1}", &id3, &err), 0);
	assert_true(id1 < id2 && id2 < id3);
	m = outbox(fx, 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.topic[0], "p/a/csr_req");
	assert_string_equal(m.topic[2], "p/c/crt");
	assert_int_equal(outbox(fx, 2).n, 2);

	/* Sent: deleted; a second delete finds nothing. */
	assert_int_equal(cf_store_outbox_delete(fx->store, id3, &err), 0);
	assert_int_equal(cf_store_outbox_delete(fx->store, id3, &err), CF_ENOTFOUND);
	assert_int_equal(cf_store_outbox_delete(fx->store, id1, &err), 0);
	m = outbox(fx, 0);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.id[0], id2);
	/* Ids are never reused, even the newest one's after it was deleted. */
	assert_int_equal(cf_store_outbox_add(fx->store, "p/d/crt", "{}", NULL, &err), 0);
	assert_int_equal(cf_store_outbox_add(fx->store, "p/e/crt", "{}", &id4, &err), 0);
	assert_true(id4 > id3 + 1);

	assert_int_equal(cf_store_outbox_add(fx->store, "", "{}", NULL, &err), CF_EINVAL);
	assert_int_equal(cf_store_outbox_add(fx->store, "t", NULL, NULL, &err), CF_EINVAL);
	assert_int_equal(cf_store_outbox_list(fx->store, -1, collect_msg, &m, &err), CF_EINVAL);
	/* No events: the change that caused a message has its own. */
	assert_int_equal(fx_count_events(fx, NULL), 0);

	assert_int_equal(cf_store_open_readonly(&ro, fx->uri, &err), 0);
	assert_int_equal(cf_store_outbox_add(ro, "t", "{}", NULL, &err), CF_ESTATE);
	assert_int_equal(cf_store_outbox_delete(ro, id2, &err), CF_ESTATE);
	cf_store_close(ro);
}

/* The rotation engine's steps: certificate, rotation and message in one transaction. */
static void
test_store_rotation__composes_in_tx(void **state)
{
	struct fixture *fx = *state;
	struct fx_rot r;
	struct fx_cert c;
	cf_store_rotation got;
	char old_id[65], new_id[65];
	int64_t before;
	cf_err err = CF_ERR_INIT;

	fx_add_ca(fx, CA);
	add_device(fx, "dev-1", 1);
	fx_id(old_id, 1);
	fx_id(new_id, 2);

	/* Open + csr_req together. */
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	open_rot(fx, &r, "dev-1", 1, FX_T0 + DAY, FX_T0 + 300);
	assert_int_equal(cf_store_outbox_add(fx->store, "p/dev-1/csr_req", "{}", NULL, &err), 0);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);

	/* csr_res: issue, ISSUED, crt; a refused step inside does not spoil the rest. */
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	fx_cert_init(&c, 2, CA, "dev-1", CF_CERT_PENDING_ACTIVATION, 60);
	assert_int_equal(cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err),
			 0);
	assert_int_equal(cf_store_rotation_update(fx->store, &r.rot, ISS, &fx_actor, &err),
			 CF_ESTATE);
	assert_int_equal(move(fx, &r, ISS, 2, &err), 0);
	assert_int_equal(cf_store_outbox_add(fx->store, "p/dev-1/crt", "{}", NULL, &err), 0);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_int_equal(stored_state(fx, r.id), ISS);
	assert_int_equal(fx_status(fx, new_id), CF_CERT_PENDING_ACTIVATION);
	assert_int_equal(outbox(fx, 0).n, 2);
	before = fx_verify_ok(fx);

	/* crt_ack, rolled back: nothing of it stays. */
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	assert_int_equal(cf_store_cert_transition(fx->store, old_id, CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err), 0);
	assert_int_equal(cf_store_cert_transition(fx->store, new_id, CF_CERT_ACTIVE, NULL,
						  &fx_actor, &err), 0);
	assert_int_equal(move(fx, &r, COM, 2, &err), 0);
	assert_int_equal(cf_store_outbox_add(fx->store, "p/notify", "{}", NULL, &err), 0);
	cf_store_tx_rollback(fx->store);
	r.rot.state = ISS;
	assert_int_equal(stored_state(fx, r.id), ISS);
	assert_int_equal(fx_status(fx, old_id), CF_CERT_ACTIVE);
	assert_int_equal(fx_status(fx, new_id), CF_CERT_PENDING_ACTIVATION);
	assert_int_equal(outbox(fx, 0).n, 2);
	assert_int_equal(fx_verify_ok(fx), before);

	/* crt_ack, committed. */
	assert_int_equal(cf_store_tx_begin(fx->store, &err), 0);
	assert_int_equal(cf_store_cert_transition(fx->store, old_id, CF_CERT_INACTIVE, NULL,
						  &fx_actor, &err), 0);
	assert_int_equal(cf_store_cert_transition(fx->store, new_id, CF_CERT_ACTIVE, NULL,
						  &fx_actor, &err), 0);
	assert_int_equal(move(fx, &r, COM, 2, &err), 0);
	assert_int_equal(cf_store_tx_commit(fx->store, &err), 0);
	assert_int_equal(cf_store_rotation_get(fx->store, &got, r.id, &err), 0);
	assert_int_equal(got.state, COM);
	assert_string_equal(got.new_cert, new_id);
	cf_store_rotation_clear(&got);
	assert_int_equal(fx_status(fx, old_id), CF_CERT_INACTIVE);
	assert_int_equal(fx_status(fx, new_id), CF_CERT_ACTIVE);
	assert_int_equal(fx_verify_ok(fx), before + 3);
}

int
test_rotation_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_rotation__states),
		cmocka_unit_test_setup_teardown(test_store_rotation__insert_get, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_rotation__transitions, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_rotation__compare_and_set, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_rotation__list_filters, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_rotation__outbox, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_rotation__composes_in_tx, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("rotation", tests, NULL, NULL);
}
