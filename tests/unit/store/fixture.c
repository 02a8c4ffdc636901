/* The store test fixture; see fixture.h. */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cf_store_actor fx_actor = { "test:unit", NULL };

int64_t
fx_clock(void *payload)
{
	struct fixture *fx = payload;

	return fx->now;
}

/* Replace each "%s" in pattern with name. */
static void
expand_uri(char *out, size_t len, const char *pattern, const char *name)
{
	size_t used = 0;
	const char *p;

	for (p = pattern; *p != '\0' && used + 1 < len; p++) {
		if (p[0] == '%' && p[1] == 's') {
			used += (size_t)snprintf(out + used, len - used, "%s", name);
			if (used >= len)
				used = len - 1;
			p++;
			continue;
		}
		out[used++] = *p;
	}
	out[used] = '\0';
}

int
fx_setup(void **state)
{
	static unsigned int counter;
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *env = getenv("CF_TEST_STORE_URI");
	const char *tmp = getenv("TMPDIR");
	char name[64];
	cf_err err = CF_ERR_INIT;

	assert_non_null(fx);
	fx->now = FX_T0;
	if (env != NULL && env[0] != '\0') {
		snprintf(name, sizeof(name), "t%ld_%u", (long)getpid(), counter++);
		expand_uri(fx->uri, sizeof(fx->uri), env, name);
	} else {
		snprintf(fx->dir, sizeof(fx->dir), "%s/cf-store-XXXXXX",
			 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
		assert_non_null(mkdtemp(fx->dir));
		snprintf(fx->path, sizeof(fx->path), "%s/registry.db", fx->dir);
		snprintf(fx->uri, sizeof(fx->uri), "sqlite:%s", fx->path);
	}
	if (strncmp(fx->uri, "sqlite:", 7) == 0 && fx->path[0] == '\0') {
		const char *p = fx->uri + 7;

		snprintf(fx->path, sizeof(fx->path), "%s", strncmp(p, "//", 2) == 0 ? p + 2 : p);
	}
	if (cf_store_open(&fx->store, fx->uri, &err) != 0)
		fail_msg("cf_store_open(%s): %s", fx->uri, err.msg);
	cf_store_set_clock(fx->store, fx_clock, fx);
	*state = fx;
	return 0;
}

static void
remove_file(const char *dir, const char *name)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	(void)unlink(path);
}

int
fx_teardown(void **state)
{
	/* The revocation lists the audit tests write. */
	static const char *const crl_names[] = { "good.crl",    "other.crl",   "rogue.crl",
						 "expired.crl", "garbage.crl", "missing.crl" };
	struct fixture *fx = *state;
	size_t i;

	cf_store_close(fx->store);
	if (fx->dir[0] != '\0') {
		remove_file(fx->dir, "registry.db");
		remove_file(fx->dir, "registry.db-wal");
		remove_file(fx->dir, "registry.db-shm");
		remove_file(fx->dir, "garbage.db");
		for (i = 0; i < CF_ARRAY_LEN(crl_names); i++)
			remove_file(fx->dir, crl_names[i]);
		(void)rmdir(fx->dir);
	}
	free(fx);
	return 0;
}

void
fx_require_sqlite(struct fixture *fx)
{
	if (fx->path[0] == '\0')
		skip();
}

void
fx_id(char out[65], uint64_t n)
{
	snprintf(out, 65, "%016llx%016llx%016llx%016llx", (unsigned long long)n,
		 (unsigned long long)(n * 0x9e3779b97f4a7c15ULL), (unsigned long long)~n,
		 (unsigned long long)(n ^ 0x5555555555555555ULL));
}

void
fx_add_ca(struct fixture *fx, const char *name)
{
	static uint64_t next = 1000000;
	cf_store_ca ca = { 0 };
	char id[65], subject[128];
	cf_err err = CF_ERR_INIT;

	fx_id(id, next++);
	snprintf(subject, sizeof(subject), "CN=%s", name);
	ca.name = (char *)(uintptr_t)name;
	ca.status = CF_CA_ACTIVE;
	ca.cert_id = id;
	ca.subject = subject;
	ca.cert_pem = (char *)(uintptr_t)"-----BEGIN CERTIFICATE-----\nplaceholder\n";
	ca.key_type = (char *)(uintptr_t)"EC-P256";
	ca.not_before = FX_T0 - 86400;
	ca.not_after = FX_T0 + 3650 * 86400LL;
	if (cf_store_ca_insert(fx->store, &ca, &fx_actor, &err) != 0)
		fail_msg("ca_insert %s: %s", name, err.msg);
}

void
fx_add_thing(struct fixture *fx, const char *name)
{
	cf_err err = CF_ERR_INIT;

	if (cf_store_thing_insert(fx->store, name, NULL, &fx_actor, &err) != 0)
		fail_msg("thing_insert %s: %s", name, err.msg);
}

void
fx_cert_init(struct fx_cert *c, uint64_t n, const char *ca, const char *thing,
	     cf_cert_status status, int64_t days)
{
	memset(c, 0, sizeof(*c));
	fx_id(c->id, n);
	snprintf(c->serial, sizeof(c->serial), "%llx", (unsigned long long)n + 1);
	snprintf(c->ca, sizeof(c->ca), "%s", ca);
	c->cert.id = c->id;
	c->cert.serial = c->serial;
	c->cert.ca = c->ca;
	if (thing != NULL) {
		snprintf(c->thing, sizeof(c->thing), "%s", thing);
		c->cert.thing = c->thing;
	}
	c->cert.status = status;
	c->cert.not_before = FX_T0 - 60;
	c->cert.not_after = FX_T0 + days * 86400;
	c->cert.key_type = (char *)(uintptr_t)"EC-P256";
	c->cert.key_bits = 256;
	c->cert.sig_alg = (char *)(uintptr_t)"ecdsa-with-SHA256";
	c->cert.spki_sha256 = c->id; /* any hex will do */
	c->cert.pem = (char *)(uintptr_t)"-----BEGIN CERTIFICATE-----\nplaceholder\n";
}

void
fx_add_cert(struct fixture *fx, uint64_t n, const char *ca, const char *thing,
	    cf_cert_status status, int64_t days)
{
	struct fx_cert c;
	cf_err err = CF_ERR_INIT;

	fx_cert_init(&c, n, ca, thing, status, days);
	if (cf_store_cert_insert(fx->store, &c.cert, NULL, 0, false, &fx_actor, &err) != 0)
		fail_msg("cert_insert %llu: %s", (unsigned long long)n, err.msg);
}

static int
count_cb(const cf_store_event *ev, void *payload)
{
	(void)ev;
	(*(int64_t *)payload)++;
	return 0;
}

int64_t
fx_count_events(struct fixture *fx, const char *resource)
{
	cf_store_event_filter f = CF_STORE_EVENT_FILTER_INIT;
	int64_t n = 0;

	f.resource = resource;
	assert_int_equal(cf_store_events_list(fx->store, &f, count_cb, &n, NULL), 0);
	return n;
}

struct last {
	char *detail;
	char action[64];
};

static int
last_cb(const cf_store_event *ev, void *payload)
{
	struct last *l = payload;

	l->detail = strdup(ev->detail);
	snprintf(l->action, sizeof(l->action), "%s", ev->action);
	return 1; /* newest first, limit 1: stop after one */
}

char *
fx_last_detail(struct fixture *fx, const char *resource, char action_out[64])
{
	cf_store_event_filter f = CF_STORE_EVENT_FILTER_INIT;
	struct last l = { NULL, { 0 } };

	f.resource = resource;
	f.newest_first = true;
	f.limit = 1;
	assert_int_equal(cf_store_events_list(fx->store, &f, last_cb, &l, NULL), 1);
	assert_non_null(l.detail);
	if (action_out != NULL)
		memcpy(action_out, l.action, 64);
	return l.detail;
}

int64_t
fx_verify_ok(struct fixture *fx)
{
	int64_t count = -1, bad = -1;
	cf_err err = CF_ERR_INIT;

	if (cf_store_events_verify(fx->store, &count, &bad, NULL, &err) != 0)
		fail_msg("events_verify: %s (bad seq %lld)", err.msg, (long long)bad);
	assert_int_equal(bad, 0);
	return count;
}

cf_cert_status
fx_status(struct fixture *fx, const char *id)
{
	cf_store_cert cert;
	cf_cert_status status;
	cf_err err = CF_ERR_INIT;

	if (cf_store_cert_get(fx->store, &cert, id, &err) != 0)
		fail_msg("cert_get %s: %s", id, err.msg);
	status = cert.status;
	cf_store_cert_clear(&cert);
	return status;
}

static int
count_connection_cb(const cf_store_connection *conn, void *payload)
{
	(void)conn;
	(*(int64_t *)payload)++;
	return 0;
}

int64_t
fx_count_connections(cf_store *store, const cf_store_connection_filter *filter)
{
	int64_t n = 0;
	cf_err err = CF_ERR_INIT;

	if (cf_store_connection_list(store, filter, count_connection_cb, &n, &err) != 0)
		fail_msg("connection_list: %s", err.msg);
	return n;
}

int
fx_findings_cb(const cf_store_finding *f, void *payload)
{
	struct fx_findings *g = payload;

	assert_true(g->n < FX_FINDINGS_MAX);
	snprintf(g->check[g->n], sizeof(g->check[0]), "%s", f->check);
	snprintf(g->resource[g->n], sizeof(g->resource[0]), "%s", f->resource);
	snprintf(g->fid[g->n], sizeof(g->fid[0]), "%s", f->finding_id);
	snprintf(g->reason[g->n], sizeof(g->reason[0]), "%s", f->reason);
	snprintf(g->detail[g->n], sizeof(g->detail[0]), "%s", f->detail);
	g->state[g->n] = f->state;
	g->severity[g->n] = f->severity;
	g->suppressed[g->n] = f->suppressed;
	g->run[g->n] = f->run_id;
	g->n++;
	return 0;
}

void
fx_findings(struct fixture *fx, int64_t run, struct fx_findings *g)
{
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	cf_err err = CF_ERR_INIT;

	memset(g, 0, sizeof(*g));
	filter.run_id = run;
	filter.include_suppressed = true;
	if (cf_store_audit_finding_list(fx->store, &filter, fx_findings_cb, g, &err) != 0)
		fail_msg("finding_list: %s", err.msg);
}
