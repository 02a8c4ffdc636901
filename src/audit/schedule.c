/*
 * audit schedule: when certfleetd runs the audit by itself, and the actions
 * bound to checks applied after each run.
 *
 * How it works: the schedule keeps no state of its own. The next run is
 * derived from the start of the newest SCHEDULED run in the registry, so a
 * daemon restarted (or several daemons over one registry) computes the
 * same time again: a run missed while nobody was up is due at once, and a
 * run that already happened is not done twice.
 */
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "rotation/rotation.h"

#define DAY 86400

int
cf_audit_schedule_parse(cf_audit_schedule *out, const char *text, cf_err *err)
{
	int64_t secs;
	unsigned int hh, mm;
	char tail;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "audit_schedule: missing");
	if (strcmp(text, "off") == 0)
		return CF_OK;
	if (strcmp(text, "daily") == 0 || strcmp(text, "weekly") == 0) {
		out->kind = CF_AUDIT_SCHEDULE_INTERVAL;
		out->interval = text[0] == 'd' ? DAY : 7 * DAY;
		return CF_OK;
	}
	if (strcmp(text, "monthly") == 0) {
		out->kind = CF_AUDIT_SCHEDULE_MONTHLY;
		return CF_OK;
	}
	if (strncmp(text, "daily@", 6) == 0) {
		if (strlen(text) != 11 || sscanf(text + 6, "%2u:%2u%c", &hh, &mm, &tail) != 2 ||
		    text[8] != ':' || hh > 23 || mm > 59)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_schedule: '%s' is not daily@HH:MM", text);
		out->kind = CF_AUDIT_SCHEDULE_DAILY_AT;
		out->at_minute = (int64_t)hh * 60 + mm;
		return CF_OK;
	}
	if (cf_duration_parse(&secs, text) != CF_OK || secs < 1 || secs > CF_AUDIT_INTERVAL_MAX)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "audit_schedule: '%s' is not off, daily, weekly, monthly, "
				  "daily@HH:MM or a duration from 1s to 366d such as 6h",
				  text);
	out->kind = CF_AUDIT_SCHEDULE_INTERVAL;
	out->interval = secs;
	return CF_OK;
}

/* The first time of day at_minute (UTC) strictly after t. */
static int64_t
next_time_of_day(int64_t t, int64_t at_minute)
{
	int64_t day = t - ((t % DAY) + DAY) % DAY;
	int64_t cand = day + at_minute * 60;

	return cand > t ? cand : cand + DAY;
}

/*
 * 00:00 UTC on the 1st of the month after last's: a fixed day, so that the
 * runs do not drift (the 31st, clamped to the 28th, would stay there).
 */
static int64_t
next_month_start(int64_t last)
{
	time_t t = (time_t)last;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return last + 30 * DAY;
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	if (++tm.tm_mon == 12) {
		tm.tm_mon = 0;
		tm.tm_year++;
	}
	return (int64_t)timegm(&tm);
}

int64_t
cf_audit_schedule_next(const cf_audit_schedule *sched, int64_t last, int64_t now)
{
	int64_t next;

	/* A last run in the future (a clock set back, an edited row) must not stop the schedule. */
	if (last > now)
		last = now;
	switch (sched->kind) {
	case CF_AUDIT_SCHEDULE_INTERVAL:
		next = last > 0 ? last + sched->interval : now;
		break;
	case CF_AUDIT_SCHEDULE_MONTHLY:
		next = last > 0 ? next_month_start(last) : now;
		break;
	case CF_AUDIT_SCHEDULE_DAILY_AT:
		if (last > 0)
			next = next_time_of_day(last, sched->at_minute);
		else
			next = next_time_of_day(now - 1, sched->at_minute);
		break;
	default:
		return INT64_MAX;
	}
	/* Missed while down: due now, once. */
	return next < now ? now : next;
}

/* The newest scheduled run that did not fail: a FAILED one is retried, after a restart too. */
static int
last_cb(const cf_store_audit_run *run, void *payload)
{
	if (run->trigger != CF_AUDIT_SCHEDULED || run->status == CF_AUDIT_FAILED)
		return 0;
	*(int64_t *)payload = run->started_at;
	return 1;
}

int
cf_audit_last_scheduled(int64_t *out, cf_store *store, cf_err *err)
{
	int rc;

	*out = 0;
	rc = cf_store_audit_run_list(store, 0, last_cb, out, err);
	return rc < 0 ? rc : CF_OK;
}

struct stale {
	int64_t before;
	int64_t ids[64];
	size_t n;
};

static int
stale_cb(const cf_store_audit_run *run, void *payload)
{
	struct stale *s = payload;

	if (run->status == CF_AUDIT_IN_PROGRESS && run->started_at < s->before &&
	    s->n < CF_ARRAY_LEN(s->ids))
		s->ids[s->n++] = run->id;
	return 0;
}

int
cf_audit_abandon_stale(size_t *count, cf_store *store, int64_t before, cf_err *err)
{
	struct stale s = { before, { 0 }, 0 };
	size_t i, done = 0;
	int rc;

	if (count != NULL)
		*count = 0;
	/* The newest runs: a stale one is found at the next start if not among them. */
	rc = cf_store_audit_run_list(store, 1000, stale_cb, &s, err);
	for (i = 0; rc == CF_OK && i < s.n; i++) {
		rc = cf_store_audit_run_finish(store, s.ids[i], CF_AUDIT_FAILED,
					       "{\"error\":\"interrupted\"}", err);
		if (rc == CF_ESTATE) /* finished meanwhile after all */
			rc = CF_OK;
		else if (rc == CF_OK)
			done++;
	}
	if (count != NULL)
		*count = done;
	return rc;
}

/* ---- the bound actions ------------------------------------------------------ */

/* A finding to act on, and the bound actions that fit it and have something to do. */
struct todo_item {
	cf_audit_finding_ref ref;
	unsigned int actions;
};

struct todo {
	struct todo_item *items;
	size_t n, cap;
	const cf_audit_bindings *b;
	cf_store *store;
	size_t left, expired, service, unbound;
	bool oom;
};


/* Whether ROTATE has something to do for a finding, or why not. */
enum rotate_skip { ROTATE_GO = 0, ROTATE_OPEN, ROTATE_EXPIRED, ROTATE_SERVICE, ROTATE_UNBOUND };

/*
 * Decided before a finding takes one of the CF_AUDIT_APPLY_MAX places, so
 * that those go to findings an action can change: the thing (thing:NAME, or
 * cert:ID's thing) is being rotated already, the certificate has expired
 * (its device cannot connect to be rotated) or is bound to no thing, or the
 * thing is a service principal.
 */
static enum rotate_skip
rotate_skip(cf_store *store, const char *resource)
{
	enum rotate_skip why = ROTATE_GO;
	cf_store_rotation rot;
	cf_store_cert cert;
	const char *thing = NULL;
	bool svc = false;

	memset(&cert, 0, sizeof(cert));
	if (strncmp(resource, "thing:", 6) == 0)
		thing = resource + 6;
	else if (strncmp(resource, "cert:", 5) == 0 &&
		 cf_store_cert_get(store, &cert, resource + 5, NULL) == CF_OK)
		thing = cert.thing;
	if (cert.id != NULL && cert.not_after <= cf_store_now(store))
		why = ROTATE_EXPIRED;
	else if (cert.id != NULL && cert.thing == NULL)
		why = ROTATE_UNBOUND;
	else if (thing != NULL && cf_store_rotation_get_open(store, &rot, thing, NULL) == CF_OK) {
		why = ROTATE_OPEN;
		cf_store_rotation_clear(&rot);
	} else if (thing != NULL && cf_store_thing_is_service(store, &svc, thing, NULL) == CF_OK &&
		   svc) {
		why = ROTATE_SERVICE;
	}
	cf_store_cert_clear(&cert);
	return why;
}

/* The actions of the mask actions that fit resource. */
static unsigned int
fitting(unsigned int actions, const char *resource)
{
	unsigned int a, out = 0;

	for (a = 0; a < CF_AUDIT_ACTION_COUNT; a++)
		if ((actions & (1u << a)) != 0 && cf_audit_action_fits((cf_audit_action)a, resource))
			out |= 1u << a;
	return out;
}

static int
todo_cb(const cf_store_finding *f, void *payload)
{
	const unsigned int rotate = 1u << CF_AUDIT_ROTATE_DEVICE_CERTIFICATE;
	struct todo *t = payload;
	cf_audit_finding_ref *r;
	unsigned int actions;
	int ci;

	if (f->state == CF_FINDING_RESOLVED || f->suppressed)
		return 0;
	ci = cf_audit__check_index(f->check, strlen(f->check));
	if (ci < 0 || ci >= CF_AUDIT_CHECKS_MAX)
		return 0;
	actions = fitting(t->b->actions[ci], f->resource);
	if ((actions & rotate) != 0) {
		switch (rotate_skip(t->store, f->resource)) {
		case ROTATE_GO:
			break;
		case ROTATE_OPEN: /* the next run finds it OPEN, or RESOLVED */
			actions &= ~rotate;
			break;
		case ROTATE_EXPIRED:
			actions &= ~rotate;
			t->expired++;
			break;
		case ROTATE_SERVICE:
			actions &= ~rotate;
			t->service++;
			break;
		case ROTATE_UNBOUND:
			actions &= ~rotate;
			t->unbound++;
			break;
		}
	}
	if (actions == 0)
		return 0;
	if (t->n == CF_AUDIT_APPLY_MAX) {
		t->left++;
		return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap == 0 ? 64 : t->cap * 2;
		struct todo_item *grown = realloc(t->items, cap * sizeof(*grown));

		if (grown == NULL) {
			t->oom = true;
			return CF_ENOMEM;
		}
		t->items = grown;
		t->cap = cap;
	}
	t->items[t->n].actions = actions;
	r = &t->items[t->n++].ref;
	memset(r, 0, sizeof(*r));
	r->run_id = f->run_id;
	snprintf(r->finding_id, sizeof(r->finding_id), "%s", f->finding_id);
	snprintf(r->check, sizeof(r->check), "%s", f->check);
	snprintf(r->resource, sizeof(r->resource), "%s", f->resource);
	r->state = f->state;
	r->finding.severity = f->severity;
	return 0;
}

int
cf_audit_apply_bindings(cf_audit_applied *out, cf_store *store, struct cf_rotation_engine *eng,
			const cf_audit_bindings *b, int64_t run_id, const char *who,
			cf_audit_acted_fn cb, void *payload, cf_err *err)
{
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	struct todo t;
	size_t i;
	unsigned int a;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&t, 0, sizeof(t));
	t.b = b;
	t.store = store;
	filter.run_id = run_id;
	/* Collected first: no registry change while the findings are being read. */
	rc = cf_store_audit_finding_list(store, &filter, todo_cb, &t, err);
	if (t.oom)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "findings to act on");
	if (rc < 0)
		goto out;
	out->findings = t.n;
	out->left = t.left;
	out->skipped_expired = t.expired;
	out->skipped_service = t.service;
	out->skipped_unbound = t.unbound;
	for (i = 0; i < t.n; i++) {
		cf_audit_finding_ref *r = &t.items[i].ref;

		r->finding.run_id = r->run_id;
		r->finding.finding_id = r->finding_id;
		r->finding.check = r->check;
		r->finding.resource = r->resource;
		r->finding.state = r->state;
		for (a = 0; a < CF_AUDIT_ACTION_COUNT; a++) {
			cf_audit_mitigation m;
			cf_audit_acted acted;
			cf_err aerr = CF_ERR_INIT;

			if ((t.items[i].actions & (1u << a)) == 0)
				continue;
			rc = cf_audit_mitigate(&m, store, eng, &r->finding, (cf_audit_action)a, who,
					       &aerr);
			out->actions++;
			if (rc != CF_OK)
				out->failed++;
			else if (m.changed > 0)
				out->changed++;
			if (cb != NULL) {
				acted.finding = &r->finding;
				acted.action = (cf_audit_action)a;
				acted.rc = rc;
				acted.err = &aerr;
				acted.result = &m;
				cb(&acted, payload);
			}
		}
	}
	rc = CF_OK;
out:
	free(t.items);
	return rc;
}
