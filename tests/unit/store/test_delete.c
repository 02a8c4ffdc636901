/*
 * Schema 4: the soft delete of certificates, a rotation's pending deletion
 * of its old certificate (delete_old_at), the events of steps that change
 * no row, and rotations found by an id prefix.
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA  "int-1"
#define DAY 86400

static void
seed(struct fixture *fx)
{
	fx_add_ca(fx, CA);
	fx_add_thing(fx, "a");
	fx_add_cert(fx, 1, CA, "a", CF_CERT_ACTIVE, 20);
	fx_add_cert(fx, 2, CA, "a", CF_CERT_ACTIVE, 30);
}

static int
count_cb(const cf_store_cert *cert, void *payload)
{
	(void)cert;
	(*(int *)payload)++;
	return 0;
}

static int
listed(struct fixture *fx, bool include_deleted)
{
	cf_store_cert_filter f = CF_STORE_CERT_FILTER_INIT;
	int n = 0;

	f.include_deleted = include_deleted;
	assert_int_equal(cf_store_cert_list(fx->store, &f, count_cb, &n, NULL), 0);
	return n;
}

static void
deactivate(struct fixture *fx, const char *id)
{
	cf_err err = CF_ERR_INIT;

	if (cf_store_cert_transition(fx->store, id, CF_CERT_INACTIVE, NULL, &fx_actor, &err) != 0)
		fail_msg("deactivate: %s", err.msg);
}

static void
test_store_delete__soft_delete(void **state)
{
	struct fixture *fx = *state;
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;
	char id[65], action[64], resource[80], *detail;
	int64_t before;

	seed(fx);
	fx_id(id, 1);
	deactivate(fx, id);
	before = fx_count_events(fx, NULL);
	fx->now += 60;
	/* By prefix, as every certificate verb takes it. */
	id[16] = '\0';
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), 0);
	fx_id(id, 1);
	assert_int_equal(fx_count_events(fx, NULL), before + 1);
	snprintf(resource, sizeof(resource), "cert:%s", id);
	detail = fx_last_detail(fx, resource, action);
	assert_string_equal(action, "cert.deleted");
	assert_non_null(strstr(detail, "\"status\":\"INACTIVE\""));
	free(detail);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, id, &err), 0);
	assert_int_equal(cert.deleted_at, fx->now);
	assert_int_equal(cert.status, CF_CERT_INACTIVE);
	assert_int_equal(cert.change_seq, before + 1);
	cf_store_cert_clear(&cert);

	/* Hidden from lists unless asked; still found by id; the log verifies. */
	assert_int_equal(listed(fx, false), 1);
	assert_int_equal(listed(fx, true), 2);
	assert_int_equal(fx_verify_ok(fx), before + 1);

	/* Never ACTIVE again, not deleted twice; revoking is still possible. */
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_ACTIVE, NULL, &fx_actor,
						  &err),
			 CF_ESTATE);
	assert_non_null(strstr(err.msg, "deleted"));
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), CF_ESTATE);
	assert_int_equal(cf_store_cert_transition(fx->store, id, CF_CERT_REVOKED, "superseded",
						  &fx_actor, &err),
			 0);
	assert_int_equal(fx_verify_ok(fx), before + 2);
}

static void
test_store_delete__refusals(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	cf_store_actor nobody = { NULL, NULL };
	char id[65];
	int64_t before;

	seed(fx);
	fx_id(id, 1);
	before = fx_count_events(fx, NULL);
	/* ACTIVE (and PENDING_ACTIVATION) certificates are in use: not deleted. */
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), CF_ESTATE);
	assert_non_null(strstr(err.msg, "ACTIVE"));
	fx_add_cert(fx, 3, CA, "a", CF_CERT_PENDING_ACTIVATION, 30);
	before++;
	fx_id(id, 3);
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), CF_ESTATE);
	fx_id(id, 99);
	assert_int_equal(cf_store_cert_delete(fx->store, id, &fx_actor, &err), CF_ENOTFOUND);
	assert_int_equal(cf_store_cert_delete(fx->store, "xyz", &fx_actor, &err), CF_EINVAL);
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_delete(fx->store, id, &nobody, &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_delete(NULL, id, &fx_actor, &err), CF_EINVAL);
	/* Nothing was written. */
	assert_int_equal(fx_count_events(fx, NULL), before);
	assert_int_equal(listed(fx, false), 3);
}

/* A rotation of thing "a" from certificate 1, moved to COMPLETED with new certificate 2. */
static void
completed_rotation(struct fixture *fx, char rid[33], char old_id[65], char new_id[65],
		   int64_t delete_old_at)
{
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;

	memset(&rot, 0, sizeof(rot));
	assert_int_equal(cf_store_rotation_id_random(rid, NULL), 0);
	fx_id(old_id, 1);
	fx_id(new_id, 2);
	rot.id = rid;
	rot.thing = (char *)(uintptr_t)"a";
	rot.old_cert = old_id;
	rot.state = CF_ROTATION_REQUESTED;
	rot.deadline = fx->now + DAY;
	if (cf_store_rotation_insert(fx->store, &rot, &fx_actor, &err) != 0)
		fail_msg("rotation_insert: %s", err.msg);
	rot.state = CF_ROTATION_ISSUED;
	rot.new_cert = new_id;
	assert_int_equal(cf_store_rotation_update(fx->store, &rot, CF_ROTATION_REQUESTED,
						  &fx_actor, &err),
			 0);
	rot.state = CF_ROTATION_COMPLETED;
	rot.delete_old_at = delete_old_at;
	if (cf_store_rotation_update(fx->store, &rot, CF_ROTATION_ISSUED, &fx_actor, &err) != 0)
		fail_msg("rotation_update: %s", err.msg);
}

static int
id_cb(const cf_store_rotation *rot, void *payload)
{
	snprintf(payload, 33, "%s", rot->id);
	return 0;
}

/* The id of the one rotation due for deletion by t, or "" when none. */
static void
due(struct fixture *fx, char out[33], int64_t t)
{
	cf_store_rotation_filter f = CF_STORE_ROTATION_FILTER_INIT;

	out[0] = '\0';
	f.delete_due_by = t;
	assert_int_equal(cf_store_rotation_list(fx->store, &f, id_cb, out, NULL), 0);
}

static int64_t
pending(struct fixture *fx, const char *rid)
{
	cf_store_rotation got;
	int64_t at;

	assert_int_equal(cf_store_rotation_get(fx->store, &got, rid, NULL), 0);
	at = got.delete_old_at;
	cf_store_rotation_clear(&got);
	return at;
}

static void
test_store_delete__pending_deletion_settles(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	char rid[33], old_id[65], new_id[65], got[33];

	seed(fx);
	completed_rotation(fx, rid, old_id, new_id, fx->now + 100);
	assert_int_equal(pending(fx, rid), fx->now + 100);
	due(fx, got, fx->now + 99);
	assert_string_equal(got, "");
	due(fx, got, fx->now + 100);
	assert_string_equal(got, rid);

	/* Deleting the old certificate settles it, in the same transaction. */
	deactivate(fx, old_id);
	assert_int_equal(cf_store_cert_delete(fx->store, old_id, &fx_actor, &err), 0);
	assert_int_equal(pending(fx, rid), 0);
	due(fx, got, fx->now + DAY);
	assert_string_equal(got, "");
	fx_verify_ok(fx);
}

static void
test_store_delete__reactivation_settles(void **state)
{
	struct fixture *fx = *state;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char rid[33], old_id[65], new_id[65];

	seed(fx);
	deactivate(fx, "0000000000000001");
	completed_rotation(fx, rid, old_id, new_id, fx->now + 100);
	/* An operator wants the old certificate back during the grace period: it stays. */
	assert_int_equal(cf_store_cert_transition(fx->store, old_id, CF_CERT_ACTIVE, NULL,
						  &fx_actor, &err),
			 0);
	assert_int_equal(pending(fx, rid), 0);

	/* Only a COMPLETED rotation may have one, and never a negative one. */
	assert_int_equal(cf_store_rotation_get(fx->store, &rot, rid, &err), 0);
	rot.delete_old_at = -1;
	assert_int_equal(cf_store_rotation_update(fx->store, &rot, CF_ROTATION_COMPLETED,
						  &fx_actor, &err),
			 CF_EINVAL);
	rot.delete_old_at = 5;
	rot.state = CF_ROTATION_FAILED;
	assert_int_equal(cf_store_rotation_update(fx->store, &rot, CF_ROTATION_COMPLETED,
						  &fx_actor, &err),
			 CF_EINVAL);
	cf_store_rotation_clear(&rot);
}

static void
test_store_delete__rotation_events(void **state)
{
	struct fixture *fx = *state;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	char rid[33], old_id[65], new_id[65], resource[48], action[64], *detail;
	const char *unknown;
	int64_t before;

	seed(fx);
	completed_rotation(fx, rid, old_id, new_id, 0);
	snprintf(resource, sizeof(resource), "rotation:%s", rid);
	before = fx_count_events(fx, resource);
	assert_int_equal(cf_store_rotation_event(fx->store, rid, "rotation.csr_rejected",
						 "WEAK_KEY", NULL, &fx_actor, &err),
			 0);
	detail = fx_last_detail(fx, resource, action);
	assert_string_equal(action, "rotation.csr_rejected");
	assert_non_null(strstr(detail, "\"code\":\"WEAK_KEY\""));
	assert_non_null(strstr(detail, "\"state\":\"COMPLETED\""));
	free(detail);
	assert_int_equal(cf_store_rotation_event(fx->store, rid, "rotation.crt_resent", NULL,
						 new_id, &fx_actor, &err),
			 0);
	detail = fx_last_detail(fx, resource, action);
	assert_string_equal(action, "rotation.crt_resent");
	assert_non_null(strstr(detail, new_id));
	free(detail);
	assert_int_equal(fx_count_events(fx, resource), before + 2);

	/* Only these two actions, only for a rotation that exists. */
	assert_int_equal(cf_store_rotation_event(fx->store, rid, "rotation.state", NULL, NULL,
						 &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_rotation_event(fx->store, rid, "rotation.crt_resent", NULL,
						 "nothex", &fx_actor, &err),
			 CF_EINVAL);
	assert_int_equal(cf_store_rotation_event(fx->store, "0123456789abcdef0123456789abcdef",
						 "rotation.crt_resent", NULL, NULL, &fx_actor,
						 &err),
			 CF_ENOTFOUND);
	assert_int_equal(fx_count_events(fx, resource), before + 2);

	/* A unique prefix finds the rotation; too short, not hex or unknown do not. */
	rid[10] = '\0';
	assert_int_equal(cf_store_rotation_get(fx->store, &rot, rid, &err), 0);
	assert_int_equal(strlen(rot.id), 32);
	cf_store_rotation_clear(&rot);
	assert_int_equal(cf_store_rotation_get(fx->store, &rot, "0123456", &err), CF_EINVAL);
	assert_int_equal(cf_store_rotation_get(fx->store, &rot, "0123456X", &err), CF_EINVAL);
	unknown = rid[0] == 'f' ? "00000000" : "ffffffff";
	assert_int_equal(cf_store_rotation_get(fx->store, &rot, unknown, &err), CF_ENOTFOUND);
	fx_verify_ok(fx);
}

/* cf_store_cert_scan(): what the audit reads, in storage order, deleted ones on request. */
struct scan_seen {
	struct fixture *fx;
	int n;
	int stop_at;   /* return 7 from this row (1-based), 0: never */
	bool nested;   /* scan again from inside the callback */
	char ids[4][65];
	char thing1[16];
	int64_t deleted[4];
	cf_store_cert_facts first;
};

static int
scan_count(const cf_store_cert_facts *f, void *payload)
{
	(void)f;
	(*(int *)payload)++;
	return 0;
}

static int
scan_cb(const cf_store_cert_facts *f, void *payload)
{
	struct scan_seen *s = payload;
	int inner = 0;

	if (s->n < 4) {
		snprintf(s->ids[s->n], sizeof(s->ids[s->n]), "%s", f->id);
		s->deleted[s->n] = f->deleted_at;
	}
	if (s->n == 0) {
		s->first = *f;
		snprintf(s->thing1, sizeof(s->thing1), "%s", f->thing != NULL ? f->thing : "(null)");
	}
	s->n++;
	if (s->nested) {
		assert_int_equal(cf_store_cert_scan(s->fx->store, -1, true, scan_count, &inner,
						    NULL),
				 0);
		assert_true(inner >= 3);
	}
	return s->n == s->stop_at ? 7 : 0;
}

static void
test_store_delete__scan(void **state)
{
	struct fixture *fx = *state;
	struct scan_seen s;
	cf_store_cert cert;
	cf_err err = CF_ERR_INIT;
	char id[65];
	int n = 0;

	seed(fx);
	fx_add_cert(fx, 3, CA, NULL, CF_CERT_INACTIVE, 40);
	memset(&s, 0, sizeof(s));
	s.fx = fx;
	assert_int_equal(cf_store_cert_scan(fx->store, -1, false, scan_cb, &s, &err), 0);
	assert_int_equal(s.n, 3);
	fx_id(id, 1);
	assert_string_equal(s.ids[0], id);
	fx_id(id, 3);
	assert_string_equal(s.ids[2], id);
	/* the first row: its numbers as cf_store_cert_get() gives them (its strings were borrowed) */
	fx_id(id, 1);
	assert_int_equal(cf_store_cert_get(fx->store, &cert, id, NULL), 0);
	assert_string_equal(s.thing1, "a");
	assert_int_equal(s.first.status, CF_CERT_ACTIVE);
	assert_int_equal(s.first.not_after, cert.not_after);
	assert_int_equal(s.first.not_before, cert.not_before);
	assert_int_equal(s.first.key_bits, cert.key_bits);
	assert_int_equal(s.first.created_at, cert.created_at);
	assert_int_equal(s.first.deleted_at, 0);
	cf_store_cert_clear(&cert);

	assert_int_equal(cf_store_cert_scan(fx->store, CF_CERT_ACTIVE, false, scan_count, &n, NULL),
			 0);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(cf_store_cert_scan(fx->store, CF_CERT_REVOKED, true, scan_count, &n, NULL),
			 0);
	assert_int_equal(n, 0);

	/* deleted: left out unless asked, then with deleted_at */
	fx_id(id, 2);
	deactivate(fx, id);
	if (cf_store_cert_delete(fx->store, id, &fx_actor, &err) != 0)
		fail_msg("delete: %s", err.msg);
	n = 0;
	assert_int_equal(cf_store_cert_scan(fx->store, -1, false, scan_count, &n, NULL), 0);
	assert_int_equal(n, 2);
	memset(&s, 0, sizeof(s));
	s.fx = fx;
	assert_int_equal(cf_store_cert_scan(fx->store, -1, true, scan_cb, &s, NULL), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.ids[1], id);
	assert_true(s.deleted[1] != 0);

	/* a callback's return stops the pass; a nested scan works */
	memset(&s, 0, sizeof(s));
	s.fx = fx;
	s.stop_at = 1;
	s.nested = true;
	assert_int_equal(cf_store_cert_scan(fx->store, -1, true, scan_cb, &s, NULL), 7);
	assert_int_equal(s.n, 1);
	assert_int_equal(cf_store_cert_scan(fx->store, -1, true, scan_count, &n, NULL), 0);

	assert_int_equal(cf_store_cert_scan(fx->store, 9, false, scan_count, &n, &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_scan(fx->store, -1, false, NULL, &n, &err), CF_EINVAL);
	assert_int_equal(cf_store_cert_scan(NULL, -1, false, scan_count, &n, &err), CF_EINVAL);
}

int
test_delete_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_delete__soft_delete, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_delete__refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_delete__pending_deletion_settles,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_delete__reactivation_settles, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_delete__rotation_events, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_delete__scan, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("delete", tests, NULL, NULL);
}
