/* certfleetd's main loop: MQTT in, rotation engine, outbox out. */
#include "daemon/daemon.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit.h"
#include "daemon/wiring.h"
#include "events/events.h"
#include "mqtt/mqtt.h"
#include "rotation/rotation.h"
#include "store/store.h"

/* The engine's timers run this often. */
#define TICK_MS 1000
/* The outbox is read again this often for rows written by other processes. */
#define OUTBOX_POLL_MS 1000
/* Acknowledged rows deleted in one transaction, at most. */
#define DELIVERED_MAX 1024

struct cf_daemon {
	cf_config cfg;
	cf_store *store;
	cf_authority *auth;
	cf_rotation_engine *eng;
	cf_mqtt *mqtt;
	cf_events_webhook *webhook; /* NULL without webhook_url */
	/* notices from the event log: events with seq > events_seq are unread */
	int64_t events_seq;
	bool events_seq_set;
	/* The outbox: rows with id <= sent_upto were published on this connection. */
	int64_t sent_upto;
	bool outbox_dirty;
	bool draining;
	int64_t delivered[DELIVERED_MAX];
	size_t ndelivered;
	/* publish rate: a token bucket of mqtt_publish_rate per second */
	double tokens;
	int64_t tokens_at_ms;
	int64_t next_tick_ms, next_poll_ms;
	/* scheduled audits: the next run, wall clock seconds; 0 to derive it again */
	int64_t audit_next;
	/* counters for the log */
	uint64_t handled, refused, published, acked;
};

static const cf_store_actor daemon_actor = { "certfleetd", NULL };

/* ---- MQTT callbacks ------------------------------------------------- */

static void
on_connected(void *payload)
{
	cf_daemon *d = payload;

	/* A new connection: everything still in the outbox goes out again. */
	d->sent_upto = 0;
	d->outbox_dirty = true;
}

static void
on_lost(void *payload)
{
	cf_daemon *d = payload;

	d->sent_upto = 0;
}

static void
on_message(void *payload, const char *topic, const void *data, size_t len)
{
	cf_daemon *d = payload;
	cf_err err = CF_ERR_INIT;
	char qtopic[300];
	int rc;

	rc = cf_rotation_handle(d->eng, topic, data, len, &err);
	if (rc == CF_OK) {
		d->handled++;
		d->outbox_dirty = true;
		if (cf_log_get_level() >= CF_LOG_DEBUG)
			cf_log_debug("event=message topic=%s bytes=%zu",
				     cf_log_quote(qtopic, sizeof(qtopic), topic), len);
		return;
	}
	/* The topic is the client's text: quoted, so that it cannot forge a log line. */
	cf_log_quote(qtopic, sizeof(qtopic), topic);
	if (rc == CF_EINVAL) {
		d->refused++;
		cf_log_warn_err(&err, "event=message_refused topic=%s bytes=%zu", qtopic, len);
	} else {
		/* Nothing was written: the device's next message or the re-send retries it. */
		d->refused++;
		cf_log_error_err(&err, "event=message_failed topic=%s code=%s", qtopic,
				 cf_strerror(rc));
	}
}

static void
on_delivered(void *payload, int64_t tag)
{
	cf_daemon *d = payload;

	d->acked++;
	if (d->ndelivered < DELIVERED_MAX) {
		d->delivered[d->ndelivered++] = tag;
		return;
	}
	/* Full: this row stays and is published again after a reconnect (at least once). */
	cf_log_warn("event=outbox_ack_dropped id=%lld", (long long)tag);
}

/* ---- outbox ----------------------------------------------------------- */

/* Delete the acknowledged rows, in one transaction. */
static void
outbox_forget_delivered(cf_daemon *d)
{
	cf_err err = CF_ERR_INIT;
	size_t i;

	if (d->ndelivered == 0)
		return;
	if (cf_store_tx_begin(d->store, &err) != CF_OK) {
		cf_log_warn_err(&err, "event=outbox_delete_failed");
		return;
	}
	for (i = 0; i < d->ndelivered; i++) {
		int rc = cf_store_outbox_delete(d->store, d->delivered[i], &err);

		if (rc != CF_OK && rc != CF_ENOTFOUND) {
			cf_log_warn_err(&err, "event=outbox_delete_failed id=%lld",
					(long long)d->delivered[i]);
			cf_store_tx_rollback(d->store);
			return;
		}
	}
	if (cf_store_tx_commit(d->store, &err) != CF_OK) {
		cf_log_warn_err(&err, "event=outbox_delete_failed");
		return;
	}
	d->ndelivered = 0;
}

static void
tokens_refill(cf_daemon *d, int64_t now)
{
	double rate = (double)d->cfg.mqtt_publish_rate;

	if (rate <= 0)
		return;
	d->tokens += rate * (double)(now - d->tokens_at_ms) / 1000.0;
	/* At most a tenth of a second's worth in a burst. */
	if (d->tokens > rate / 10 + 1)
		d->tokens = rate / 10 + 1;
	d->tokens_at_ms = now;
}

struct send_ctx {
	cf_daemon *d;
	int64_t budget; /* rows this pass may publish */
	bool stopped;   /* budget or in-flight room ran out */
};

static int
send_one(const cf_store_outbox_msg *msg, void *payload)
{
	struct send_ctx *sc = payload;
	cf_daemon *d = sc->d;
	cf_err err = CF_ERR_INIT;
	int rc;

	if (msg->id <= d->sent_upto)
		return 0; /* in flight already */
	if (sc->budget <= 0) {
		sc->stopped = true;
		return 1;
	}
	rc = cf_mqtt_publish(d->mqtt, msg->topic, msg->payload, strlen(msg->payload), msg->id,
			     &err);
	if (rc != CF_OK) {
		if (rc != CF_EBUSY)
			cf_log_warn_err(&err, "event=publish_failed id=%lld", (long long)msg->id);
		sc->stopped = true;
		return 1;
	}
	d->sent_upto = msg->id;
	d->published++;
	sc->budget--;
	if (d->cfg.mqtt_publish_rate > 0)
		d->tokens -= 1;
	return 0;
}

/* Publish pending rows, in id order, within the rate and the in-flight room. */
static void
outbox_send(cf_daemon *d, int64_t now)
{
	cf_err err = CF_ERR_INIT;
	struct send_ctx sc = { d, 0, false };
	int64_t room = CF_MQTT_INFLIGHT_DEFAULT - (int64_t)cf_mqtt_inflight(d->mqtt);
	int rc;

	if (!cf_mqtt_connected(d->mqtt) || d->draining)
		return;
	tokens_refill(d, now);
	sc.budget = room;
	if (d->cfg.mqtt_publish_rate > 0 && (int64_t)d->tokens < sc.budget)
		sc.budget = (int64_t)d->tokens;
	if (sc.budget <= 0)
		return;
	/* The rows in flight come first in the listing: read past them. */
	rc = cf_store_outbox_list(d->store, (int64_t)cf_mqtt_inflight(d->mqtt) + sc.budget,
				  send_one, &sc, &err);
	if (rc < 0) {
		cf_log_warn_err(&err, "event=outbox_read_failed");
		return;
	}
	/* Everything pending went out: wait for new rows (or the poll timer). */
	d->outbox_dirty = sc.stopped;
}

/* ---- timers ------------------------------------------------------------ */

static void
rotation_timers(cf_daemon *d)
{
	cf_err err = CF_ERR_INIT;
	size_t handled;
	int rounds = 0;

	do {
		handled = 0;
		if (cf_rotation_tick(d->eng, &handled, &err) != CF_OK) {
			cf_log_warn_err(&err, "event=rotation_tick_failed");
			break;
		}
		if (handled > 0)
			d->outbox_dirty = true;
	} while (handled == CF_ROTATION_TICK_MAX && ++rounds < 10);
}

/* ---- scheduled audits -------------------------------------------------- */

/* A scheduled run that failed is tried again this many seconds later at most, and at least. */
#define AUDIT_RETRY_S     300
#define AUDIT_RETRY_MIN_S 60

/* The actor of everything a scheduled audit changes (with why naming the finding). */
#define AUDIT_ACTOR "audit"
/* Findings acted on listed in one notification at most (the counts are complete). */
#define AUDIT_NOTIFY_ACTED_MAX 100
/* NEW findings listed in a run's notification at most, the most severe first. */
#define AUDIT_NOTIFY_NEW_MAX 100

/* What one scheduled run tells the notifiers. */
struct audit_notice {
	int64_t run_id;
	int64_t time;
	const cf_audit_summary *sum;
	const cf_audit_applied *applied;
	json_t *acted; /* array of the findings acted on, at most AUDIT_NOTIFY_ACTED_MAX */
	json_t *fresh; /* array of the run's NEW findings, at most AUDIT_NOTIFY_NEW_MAX */
	bool more;     /* the run has more NEW findings than fresh holds */
};

/* A notifier: the log line is written for every run; the others when configured. */
struct audit_notifier {
	const char *name;
	bool (*enabled)(const cf_daemon *d);
	int (*notify)(cf_daemon *d, const struct audit_notice *n, cf_err *err);
};

static bool
always(const cf_daemon *d)
{
	(void)d;
	return true;
}

static int
notify_log(cf_daemon *d, const struct audit_notice *n, cf_err *err)
{
	const cf_audit_summary *s = n->sum;

	(void)d;
	(void)err;
	cf_log_info("event=audit_run run=%lld findings=%lld critical=%lld high=%lld medium=%lld "
		    "low=%lld acted=%zu changed=%zu failed=%zu left=%zu expired=%zu elapsed_ms=%lld",
		    (long long)n->run_id, (long long)s->findings,
		    (long long)s->by_severity[CF_SEVERITY_CRITICAL],
		    (long long)s->by_severity[CF_SEVERITY_HIGH],
		    (long long)s->by_severity[CF_SEVERITY_MEDIUM],
		    (long long)s->by_severity[CF_SEVERITY_LOW], n->applied->findings,
		    n->applied->changed, n->applied->failed, n->applied->left,
		    n->applied->skipped_expired, (long long)s->elapsed_ms);
	return CF_OK;
}

static bool
mqtt_enabled(const cf_daemon *d)
{
	return d->cfg.audit_notify_topic != NULL && d->cfg.audit_notify_topic[0] != '\0';
}

/* The summary every notifier but the log sends: docs/daemon.md. NULL: out of memory. */
static json_t *
audit_notice_json(const struct audit_notice *n)
{
	json_t *sev, *o;
	int i;

	sev = json_object();
	for (i = 0; i < 4; i++)
		json_object_set_new(sev, cf_audit_severity_name((cf_audit_severity)i),
				    json_integer(n->sum->by_severity[i]));
	o = json_pack("{s:I, s:I, s:s, s:I, s:o, s:O, s:b, s:I, s:I, s:I, s:O}", "runId",
			(json_int_t)n->run_id, "time", (json_int_t)n->time, "trigger",
			"SCHEDULED", "findings", (json_int_t)n->sum->findings, "bySeverity", sev,
			"newFindings", n->fresh, "moreNewFindings", n->more, "acted",
			(json_int_t)n->applied->findings, "changed",
			(json_int_t)n->applied->changed, "failed", (json_int_t)n->applied->failed,
			"findingsActedOn", n->acted);
	/*
	 * The event chain's head the run verified: kept by the receiver, it is
	 * an anchor outside the registry (`certfleet events verify --anchor`).
	 */
	if (o != NULL && n->sum->events_verified)
		json_object_set_new(o, "eventsHead",
				    json_pack("{s:I, s:s}", "seq", (json_int_t)n->sum->events_head.seq,
					      "hash", n->sum->events_head.hash));
	return o;
}

/* Into the outbox: committed first, published by the loop like every other row. */
static int
notify_mqtt(cf_daemon *d, const struct audit_notice *n, cf_err *err)
{
	json_t *msg = audit_notice_json(n);
	char *text;
	int rc;

	if (msg == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "audit notification");
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (text == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "audit notification");
	rc = cf_store_outbox_add(d->store, d->cfg.audit_notify_topic, text, NULL, err);
	free(text);
	if (rc == CF_OK)
		d->outbox_dirty = true;
	return rc;
}

static bool
webhook_enabled(const cf_daemon *d)
{
	return d->webhook != NULL;
}

/* Queue msg (taken over) for the webhook under event. */
static int
webhook_send(cf_daemon *d, const char *event, json_t *msg, cf_err *err)
{
	char *text;
	int rc;

	if (msg == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "webhook notification");
	json_object_set_new(msg, "event", json_string(event));
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (text == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "webhook notification");
	rc = cf_events_webhook_post(d->webhook, event, text, strlen(text), err);
	free(text);
	return rc;
}

/* Queued for the webhook; the loop sends it (retries and drops are logged there). */
static int
notify_webhook(cf_daemon *d, const struct audit_notice *n, cf_err *err)
{
	return webhook_send(d, "audit.run", audit_notice_json(n), err);
}

/* The notifiers, in order; each gets the same notice. */
static const struct audit_notifier audit_notifiers[] = {
	{ "log", always, notify_log },
	{ "mqtt", mqtt_enabled, notify_mqtt },
	{ "webhook", webhook_enabled, notify_webhook },
};

struct acted_ctx {
	int64_t run_id;
	json_t *list;
};

static void
audit_acted(const cf_audit_acted *a, void *payload)
{
	struct acted_ctx *ac = payload;
	const char *action = cf_audit_action_name(a->action);
	const char *result;
	char qres[400];
	json_t *o;

	if (a->rc != CF_OK)
		result = "failed";
	else if (a->result->changed > 0)
		result = "changed";
	else if (a->action == CF_AUDIT_NOTIFY)
		result = "notified";
	else
		result = "already";
	cf_log_quote(qres, sizeof(qres), a->finding->resource);
	if (a->rc != CF_OK)
		cf_log_warn_err(a->err, "event=audit_action run=%lld finding=%s check=%s resource=%s "
					"action=%s result=failed code=%s",
				(long long)ac->run_id, a->finding->finding_id, a->finding->check, qres,
				action, cf_strerror(a->rc));
	else
		cf_log_info("event=audit_action run=%lld finding=%s check=%s resource=%s action=%s "
			    "result=%s%s%s",
			    (long long)ac->run_id, a->finding->finding_id, a->finding->check, qres,
			    action, result, a->result->rotation_id[0] != '\0' ? " rotation=" : "",
			    a->result->rotation_id);
	if (json_array_size(ac->list) >= AUDIT_NOTIFY_ACTED_MAX)
		return;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "findingId", a->finding->finding_id, "check",
		      a->finding->check, "resource", a->finding->resource, "action", action,
		      "result", result);
	if (o != NULL && a->result->rotation_id[0] != '\0')
		json_object_set_new(o, "rotationId", json_string(a->result->rotation_id));
	if (o != NULL)
		json_array_append_new(ac->list, o);
}

static int
fresh_cb(const cf_store_finding *f, void *payload)
{
	struct audit_notice *n = payload;
	json_t *o;

	if (json_array_size(n->fresh) >= AUDIT_NOTIFY_NEW_MAX) {
		n->more = true;
		return 1;
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "findingId", f->finding_id, "check", f->check,
		      "resource", f->resource, "severity", cf_audit_severity_name(f->severity),
		      "reason", f->reason);
	return o != NULL && json_array_append_new(n->fresh, o) == 0 ? 0 : CF_ENOMEM;
}

/* The run's NEW unsuppressed findings, most severe first, into n->fresh. */
static void
audit_fresh(cf_daemon *d, struct audit_notice *n)
{
	cf_store_finding_filter f = CF_STORE_FINDING_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	int sev;

	f.run_id = n->run_id;
	f.state = CF_FINDING_NEW;
	f.limit = AUDIT_NOTIFY_NEW_MAX + 1;
	for (sev = CF_SEVERITY_CRITICAL; sev <= CF_SEVERITY_LOW && !n->more; sev++) {
		f.severity = sev;
		if (cf_store_audit_finding_list(d->store, &f, fresh_cb, n, &err) < 0) {
			cf_log_warn_err(&err, "event=audit_notify_failed run=%lld why=new_findings",
					(long long)n->run_id);
			return;
		}
	}
}

/* When the next scheduled run is due, from the registry (INT64_MAX: off). */
static void
audit_plan(cf_daemon *d, int64_t now)
{
	cf_audit_schedule sched;
	cf_err err = CF_ERR_INIT;
	int64_t last = 0;

	if (cf_audit_schedule_parse(&sched, d->cfg.audit_schedule, &err) != CF_OK ||
	    sched.kind == CF_AUDIT_SCHEDULE_OFF) {
		d->audit_next = INT64_MAX;
		return;
	}
	if (cf_audit_last_scheduled(&last, d->store, &err) != CF_OK) {
		cf_log_warn_err(&err, "event=audit_schedule_failed why=\"retry in a minute\"");
		d->audit_next = now + 60;
		return;
	}
	d->audit_next = cf_audit_schedule_next(&sched, last, now);
}

static void
audit_scheduled(cf_daemon *d, int64_t now)
{
	const char *checks[CF_AUDIT_CHECKS_MAX];
	size_t nchecks = 0;
	cf_config_audit acfg;
	cf_audit_summary sum;
	cf_audit_bindings b;
	cf_audit_applied applied;
	struct acted_ctx ac;
	struct audit_notice n;
	cf_err err = CF_ERR_INIT;
	int64_t run = 0;
	size_t i;
	int rc;

	memset(&sum, 0, sizeof(sum));
	rc = cf_audit_checks_parse(checks, &nchecks, d->cfg.audit_checks, &err);
	if (rc == CF_OK)
		rc = cf_config_audit_get(&acfg, &d->cfg, &err);
	if (rc == CF_OK) {
		rc = cf_audit_run(&run, &sum, d->store, &acfg.audit, CF_AUDIT_SCHEDULED, checks,
				  nchecks, now, &err);
		cf_config_audit_clear(&acfg);
	}
	if (rc != CF_OK) {
		cf_log_error_err(&err, "event=audit_run_failed run=%lld code=%s", (long long)run,
				 cf_strerror(rc));
		/*
		 * Retried soon, recorded as FAILED or not: a registry busy for a
		 * moment must not cost a day of rotations.
		 */
		audit_plan(d, cf_time_now());
		if (d->audit_next > now + AUDIT_RETRY_S)
			d->audit_next = now + AUDIT_RETRY_S;
		/* An overdue slot (no run recorded) is not retried on every tick. */
		if (d->audit_next < now + AUDIT_RETRY_MIN_S)
			d->audit_next = now + AUDIT_RETRY_MIN_S;
		return;
	}
	memset(&applied, 0, sizeof(applied));
	ac.run_id = run;
	ac.list = json_array();
	if (cf_audit_bindings_parse(&b, d->cfg.audit_actions, &err) == CF_OK) {
		rc = cf_audit_apply_bindings(&applied, d->store, d->eng, &b, run, AUDIT_ACTOR,
					     audit_acted, &ac, &err);
		if (rc != CF_OK)
			cf_log_error_err(&err, "event=audit_actions_failed run=%lld", (long long)run);
		if (applied.changed > 0)
			d->outbox_dirty = true;
	}
	n.run_id = run;
	n.time = now;
	n.sum = &sum;
	n.applied = &applied;
	n.acted = ac.list != NULL ? ac.list : json_array();
	n.fresh = json_array();
	n.more = false;
	if (n.fresh != NULL)
		audit_fresh(d, &n);
	for (i = 0; i < CF_ARRAY_LEN(audit_notifiers); i++) {
		const struct audit_notifier *nt = &audit_notifiers[i];

		if (!nt->enabled(d))
			continue;
		cf_err_clear(&err);
		if (nt->notify(d, &n, &err) != CF_OK)
			cf_log_warn_err(&err, "event=audit_notify_failed notifier=%s run=%lld",
					nt->name, (long long)run);
	}
	json_decref(n.acted);
	json_decref(n.fresh);
	audit_plan(d, cf_time_now());
}

/* Runs left IN_PROGRESS by a process that died, with nothing alive this old. */
#define AUDIT_STALE_S 3600

static void
audit_timer(cf_daemon *d)
{
	int64_t now = cf_time_now();
	cf_err err = CF_ERR_INIT;
	size_t n = 0;

	if (d->audit_next == 0) {
		if (cf_audit_abandon_stale(&n, d->store, now - AUDIT_STALE_S, &err) != CF_OK)
			cf_log_warn_err(&err, "event=audit_stale_failed");
		else if (n > 0)
			cf_log_warn("event=audit_runs_interrupted count=%zu", n);
		audit_plan(d, now);
		if (d->audit_next == INT64_MAX) {
			cf_log_info("event=audit_planned next=off");
		} else {
			char when[CF_TIME_BUF];

			cf_log_info("event=audit_planned next=%s in_s=%lld",
				    cf_time_format(when, d->audit_next),
				    (long long)(d->audit_next - now));
		}
	}
	if (now >= d->audit_next)
		audit_scheduled(d, now);
}

/* ---- notices from the event log -------------------------------------------- */

/* Event-log rows read in one pass at most. */
#define EVENTS_PASS_MAX 2000
/* Notices sent from one pass at most; the pass stops there and the next tick goes on. */
#define EVENT_NOTIFY_MAX 200

struct notices_ctx {
	cf_daemon *d;
	json_t *list; /* notices to send, each with its "event" */
	size_t rows;
	size_t max; /* notices this pass takes at most */
};

/* FAILED and TIMED_OUT rotations: rotation.failed, rotation.timed_out. */
static json_t *
rotation_notice(const cf_store_event *ev, json_t *detail)
{
	const char *to = json_string_value(json_object_get(detail, "to"));
	const char *prefix = "rotation:";

	if (strcmp(ev->action, "rotation.state") != 0 ||
	    strncmp(ev->resource, prefix, strlen(prefix)) != 0 || to == NULL ||
	    (strcmp(to, "FAILED") != 0 && strcmp(to, "TIMED_OUT") != 0))
		return NULL;
	return json_pack("{s:s, s:I, s:s, s:s, s:O?, s:O?, s:O?}", "event",
			 strcmp(to, "FAILED") == 0 ? "rotation.failed" : "rotation.timed_out",
			 "time", (json_int_t)ev->time, "rotationId",
			 ev->resource + strlen(prefix), "state", to, "from",
			 json_object_get(detail, "from"), "error", json_object_get(detail, "error"),
			 "newCert", json_object_get(detail, "new_cert"));
}

/* A finding the NOTIFY action was applied to (audit.notified): audit.finding. */
static json_t *
finding_notice(const cf_store_event *ev, json_t *detail)
{
	const char *prefix = "finding:";
	const char *run = json_string_value(json_object_get(detail, "run"));

	if (strcmp(ev->action, "audit.notified") != 0 ||
	    strncmp(ev->resource, prefix, strlen(prefix)) != 0 || run == NULL)
		return NULL;
	return json_pack("{s:s, s:I, s:s, s:I, s:O?, s:O?, s:s}", "event", "audit.finding",
			 "time", (json_int_t)ev->time, "findingId", ev->resource + strlen(prefix),
			 "runId", (json_int_t)strtoll(run, NULL, 10), "check",
			 json_object_get(detail, "check"), "resource",
			 json_object_get(detail, "resource"), "by", ev->actor);
}

static int
notice_seen(const cf_store_event *ev, void *payload)
{
	struct notices_ctx *nc = payload;
	json_t *detail, *o;

	/* Full: this event is read again by the next pass (the cursor stays before it). */
	if (json_array_size(nc->list) >= nc->max)
		return 1;
	nc->rows++;
	if (ev->detail != NULL && (strcmp(ev->action, "rotation.state") == 0 ||
				   strcmp(ev->action, "audit.notified") == 0)) {
		detail = json_loads(ev->detail, 0, NULL);
		o = rotation_notice(ev, detail);
		if (o == NULL)
			o = finding_notice(ev, detail);
		json_decref(detail);
		if (o != NULL && json_array_append_new(nc->list, o) != 0)
			return CF_ENOMEM; /* read again next time */
	}
	nc->d->events_seq = ev->seq;
	return 0;
}

/* One notice to every notifier but the log: the webhook, the MQTT topic. */
static void
notice_send(cf_daemon *d, json_t *o)
{
	const char *event = json_string_value(json_object_get(o, "event"));
	cf_err err = CF_ERR_INIT;
	char *text;

	if (webhook_enabled(d) && webhook_send(d, event, json_deep_copy(o), &err) != CF_OK)
		cf_log_warn_err(&err, "event=notify_failed notifier=webhook notice=%s", event);
	if (!mqtt_enabled(d))
		return;
	cf_err_clear(&err);
	text = json_dumps(o, JSON_COMPACT);
	if (text == NULL || cf_store_outbox_add(d->store, d->cfg.audit_notify_topic, text, NULL,
						&err) != CF_OK)
		cf_log_warn_err(&err, "event=notify_failed notifier=mqtt notice=%s", event);
	else
		d->outbox_dirty = true;
	free(text);
}

/*
 * Rotation failures (crt_err, refused CSRs, the deadline) and findings the
 * NOTIFY action was applied to, found in the registry's event log whoever
 * wrote them (certfleetd, `certfleet audit mitigate`), from the head at
 * start.
 */
static void
event_notices_poll(cf_daemon *d)
{
	cf_store_event_filter f = CF_STORE_EVENT_FILTER_INIT;
	struct notices_ctx nc = { d, NULL, 0, EVENT_NOTIFY_MAX };
	cf_err err = CF_ERR_INIT;
	char hash[65];
	size_t i;

	if (!webhook_enabled(d) && !mqtt_enabled(d))
		return;
	if (!d->events_seq_set) {
		if (cf_store_events_head(d->store, &d->events_seq, hash, &err) != CF_OK) {
			cf_log_warn_err(&err, "event=notify_events_failed");
			return;
		}
		d->events_seq_set = true;
		return;
	}
	/* No more than the webhook's queue has room for: a slow receiver slows the reading. */
	if (webhook_enabled(d) && cf_events_webhook_room(d->webhook) < nc.max)
		nc.max = cf_events_webhook_room(d->webhook);
	if (nc.max == 0)
		return;
	nc.list = json_array();
	if (nc.list == NULL)
		return;
	f.after_seq = d->events_seq;
	f.limit = EVENTS_PASS_MAX;
	if (cf_store_events_list(d->store, &f, notice_seen, &nc, &err) < 0)
		cf_log_warn_err(&err, "event=notify_events_failed");
	for (i = 0; i < json_array_size(nc.list); i++) {
		json_t *o = json_array_get(nc.list, i);
		const char *id = json_string_value(json_object_get(o, "rotationId"));
		cf_store_rotation rot;

		memset(&rot, 0, sizeof(rot));
		if (id != NULL && cf_store_rotation_get(d->store, &rot, id, NULL) == CF_OK) {
			json_object_set_new(o, "thing", json_string(rot.thing));
			if (rot.old_cert != NULL)
				json_object_set_new(o, "oldCert", json_string(rot.old_cert));
		}
		cf_store_rotation_clear(&rot);
		notice_send(d, o);
	}
	json_decref(nc.list);
}

/* ---- build, reload ----------------------------------------------------- */

/* The webhook of cfg, or NULL without webhook_url. */
static int
webhook_open(cf_events_webhook **out, const cf_config *cfg, cf_err *err)
{
	cf_events_webhook_config wc;
	char *secret_path = NULL, *ca = NULL, *secret = NULL;
	size_t secret_len = 0;
	int rc;

	*out = NULL;
	if (cfg->webhook_url[0] == '\0')
		return CF_OK;
	secret_path = cf_config_path(cfg, cfg->webhook_secret_file);
	if (cfg->webhook_ca_file[0] != '\0')
		ca = cf_config_path(cfg, cfg->webhook_ca_file);
	if (secret_path == NULL || (cfg->webhook_ca_file[0] != '\0' && ca == NULL)) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "webhook");
		goto out;
	}
	rc = cf_secret_read(&secret, &secret_len, secret_path, err);
	if (rc != CF_OK)
		goto out;
	if (ca != NULL && access(ca, R_OK) != 0) {
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "webhook_ca_file %s cannot be read", ca);
		goto out;
	}
	cf_events_webhook_config_init(&wc);
	wc.url = cfg->webhook_url;
	wc.ca_file = ca;
	wc.secret = secret;
	wc.secret_len = secret_len;
	wc.connect_timeout_ms = cfg->webhook_connect_timeout * 1000;
	wc.timeout_ms = cfg->webhook_timeout * 1000;
	wc.max_attempts = (unsigned int)cfg->webhook_retries + 1;
	wc.queue_max = (size_t)cfg->webhook_queue_max;
	rc = cf_events_webhook_new(out, &wc, err);
out:
	cf_secret_free(secret, secret_len);
	free(secret_path);
	free(ca);
	return rc;
}

static bool
webhook_settings_changed(const cf_config *a, const cf_config *b)
{
	return strcmp(a->webhook_url, b->webhook_url) != 0 ||
	       strcmp(a->webhook_secret_file, b->webhook_secret_file) != 0 ||
	       strcmp(a->webhook_ca_file, b->webhook_ca_file) != 0 ||
	       a->webhook_connect_timeout != b->webhook_connect_timeout ||
	       a->webhook_timeout != b->webhook_timeout ||
	       a->webhook_retries != b->webhook_retries ||
	       a->webhook_queue_max != b->webhook_queue_max;
}

/* The same webhook settings: read the secret file again (it may have been replaced). */
static int
webhook_secret_reload(cf_events_webhook *wh, const cf_config *cfg, cf_err *err)
{
	char *path, *secret = NULL;
	size_t len = 0;
	int rc;

	if (wh == NULL)
		return CF_OK;
	path = cf_config_path(cfg, cfg->webhook_secret_file);
	if (path == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "webhook");
	rc = cf_secret_read(&secret, &len, path, err);
	if (rc == CF_OK)
		rc = cf_events_webhook_secret_set(wh, secret, len, err);
	cf_secret_free(secret, len);
	free(path);
	return rc;
}

static int
mqtt_open(cf_mqtt **out, cf_daemon *d, const cf_config *cfg, cf_err *err)
{
	static const char *const kinds[] = { "csr_res", "crt_ack", "crt_err" };
	char topics[3][CF_CONFIG_TOPIC_MAX + 128];
	const char *tp[3];
	char *ca = cf_config_path(cfg, cfg->mqtt_ca_file);
	char *cert = cf_config_path(cfg, cfg->mqtt_cert_file);
	char *key = cf_config_path(cfg, cfg->mqtt_key_file);
	cf_mqtt_callbacks cb = { on_connected, on_lost, on_message, on_delivered, d };
	cf_mqtt_config mc;
	size_t i;
	int rc;

	for (i = 0; i < 3; i++) {
		if (cfg->mqtt_shared_group[0] != '\0')
			snprintf(topics[i], sizeof(topics[i]), "$share/%s/%s/+/%s",
				 cfg->mqtt_shared_group, cfg->topic_prefix, kinds[i]);
		else
			snprintf(topics[i], sizeof(topics[i]), "%s/+/%s", cfg->topic_prefix,
				 kinds[i]);
		tp[i] = topics[i];
	}
	memset(&mc, 0, sizeof(mc));
	mc.host = cfg->mqtt_host;
	mc.port = (int)cfg->mqtt_port;
	mc.client_id = cfg->mqtt_client_id;
	mc.keepalive = (int)cfg->mqtt_keepalive;
	mc.ca_file = ca;
	mc.cert_file = cert;
	mc.key_file = key;
	mc.topics = tp;
	mc.ntopics = 3;
	mc.reconnect_min_ms = (int)cfg->mqtt_reconnect_min * 1000;
	mc.reconnect_max_ms = (int)cfg->mqtt_reconnect_max * 1000;
	mc.max_inflight = CF_MQTT_INFLIGHT_DEFAULT;
	if (ca == NULL || cert == NULL || key == NULL)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "mqtt");
	else
		rc = cf_mqtt_new(out, &mc, &cb, err);
	free(ca);
	free(cert);
	free(key);
	return rc;
}

/* A new authority and engine from cfg. */
static int
engine_open(cf_authority **auth_out, cf_rotation_engine **eng_out, cf_store *store,
	    const cf_config *cfg, cf_err *err)
{
	cf_rotation_config rc_cfg;
	int rc;

	rc = cf_daemon_authority_open(auth_out, store, cfg, err);
	if (rc != CF_OK)
		return rc;
	cf_daemon_rotation_config(&rc_cfg, cfg);
	rc_cfg.actor = daemon_actor.who;
	rc = cf_rotation_engine_new(eng_out, store, *auth_out, &rc_cfg, err);
	if (rc != CF_OK) {
		cf_authority_free(*auth_out);
		*auth_out = NULL;
	}
	return rc;
}

static void
log_settings_apply(const cf_config *cfg)
{
	cf_log_level level;

	if (cf_log_level_parse(&level, cfg->log_level) == CF_OK)
		cf_log_set_level(level);
	cf_log_set_json(strcmp(cfg->log_format, "json") == 0);
}

int
cf_daemon_new(cf_daemon **out, cf_config *cfg, cf_err *err)
{
	cf_daemon *d = calloc(1, sizeof(*d));
	int rc;

	if (d == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "daemon");
	d->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	log_settings_apply(&d->cfg);
	rc = cf_daemon_store_open(&d->store, &d->cfg, err);
	if (rc == CF_OK)
		rc = engine_open(&d->auth, &d->eng, d->store, &d->cfg, err);
	if (rc == CF_OK)
		rc = mqtt_open(&d->mqtt, d, &d->cfg, err);
	if (rc == CF_OK)
		rc = webhook_open(&d->webhook, &d->cfg, err);
	if (rc != CF_OK) {
		cf_daemon_free(d);
		return rc;
	}
	d->outbox_dirty = true;
	*out = d;
	return CF_OK;
}

static bool
str_changed(const char *a, const char *b)
{
	return strcmp(a, b) != 0;
}

static bool
broker_settings_changed(const cf_config *a, const cf_config *b)
{
	return str_changed(a->mqtt_host, b->mqtt_host) || a->mqtt_port != b->mqtt_port ||
	       str_changed(a->mqtt_ca_file, b->mqtt_ca_file) ||
	       str_changed(a->mqtt_cert_file, b->mqtt_cert_file) ||
	       str_changed(a->mqtt_key_file, b->mqtt_key_file) ||
	       str_changed(a->mqtt_client_id, b->mqtt_client_id) ||
	       a->mqtt_keepalive != b->mqtt_keepalive ||
	       a->mqtt_reconnect_min != b->mqtt_reconnect_min ||
	       a->mqtt_reconnect_max != b->mqtt_reconnect_max ||
	       str_changed(a->mqtt_shared_group, b->mqtt_shared_group) ||
	       str_changed(a->topic_prefix, b->topic_prefix);
}

/*
 * SIGHUP: read the file again. Everything is built from the new file
 * before anything is swapped, so a bad file (or bad TLS files) leaves the
 * running daemon as it was.
 */
static void
reload(cf_daemon *d, const char *path)
{
	cf_err err = CF_ERR_INIT;
	cf_config next;
	cf_authority *auth = NULL;
	cf_rotation_engine *eng = NULL;
	cf_mqtt *mqtt = NULL;
	cf_events_webhook *webhook = NULL;
	bool broker = false, renewed, hook;

	if (cf_config_init(&next, d->cfg.data_dir, &err) != CF_OK ||
	    cf_config_load(&next, path, &err) != CF_OK) {
		cf_log_error_err(&err, "event=reload_refused why=\"kept the running configuration\"");
		cf_config_clear(&next);
		return;
	}
	if (str_changed(next.store, d->cfg.store))
		cf_log_warn("event=reload_partial key=store why=\"a new registry needs a restart\"");
	broker = broker_settings_changed(&d->cfg, &next);
	hook = webhook_settings_changed(&d->cfg, &next);
	if (engine_open(&auth, &eng, d->store, &next, &err) != CF_OK ||
	    (broker && mqtt_open(&mqtt, d, &next, &err) != CF_OK) ||
	    (hook && webhook_open(&webhook, &next, &err) != CF_OK) ||
	    (!hook && webhook_secret_reload(d->webhook, &next, &err) != CF_OK)) {
		cf_log_error_err(&err, "event=reload_refused why=\"kept the running configuration\"");
		cf_events_webhook_free(webhook);
		cf_mqtt_free(mqtt);
		cf_rotation_engine_free(eng);
		cf_authority_free(auth);
		cf_config_clear(&next);
		return;
	}
	if (str_changed(next.store_sync, d->cfg.store_sync) &&
	    cf_store_set_durable(d->store, strcmp(next.store_sync, "full") == 0, &err) != CF_OK)
		cf_log_warn_err(&err, "event=reload_partial key=store_sync");
	cf_rotation_engine_free(d->eng);
	cf_authority_free(d->auth);
	d->eng = eng;
	d->auth = auth;
	/* A renewed identity (the files rewritten, the paths unchanged): reconnect with it. */
	renewed = !broker && cf_mqtt_tls_files_changed(d->mqtt);
	if (broker) {
		/* The old session's in-flight rows stay in the outbox and go out again. */
		cf_mqtt_free(d->mqtt);
		d->mqtt = mqtt;
		d->sent_upto = 0;
		d->ndelivered = 0;
	} else if (renewed) {
		cf_mqtt_reconnect_now(d->mqtt);
	}
	if (hook) {
		/* What the old webhook still held is logged as dropped. */
		cf_events_webhook_free(d->webhook);
		d->webhook = webhook;
		d->events_seq_set = false;
	}
	free(next.store);
	next.store = d->cfg.store; /* the registry in use stays */
	d->cfg.store = NULL;
	cf_config_clear(&d->cfg);
	d->cfg = next;
	log_settings_apply(&d->cfg);
	d->outbox_dirty = true;
	d->audit_next = 0; /* audit_schedule may have changed */
	cf_log_info("event=reloaded broker_reconnect=%s", broker || renewed ? "yes" : "no");
}

/* ---- run --------------------------------------------------------------- */

static void
step(cf_daemon *d, int timeout_ms)
{
	int64_t now;

	cf_mqtt_step(d->mqtt, cf_time_mono_ms(), timeout_ms);
	outbox_forget_delivered(d);
	now = cf_time_mono_ms();
	if (now >= d->next_tick_ms) {
		if (!d->draining) {
			rotation_timers(d);
			audit_timer(d);
			event_notices_poll(d);
		}
		d->next_tick_ms = now + TICK_MS;
	}
	if (now >= d->next_poll_ms) {
		d->outbox_dirty = true;
		d->next_poll_ms = now + OUTBOX_POLL_MS;
	}
	if (d->outbox_dirty)
		outbox_send(d, now);
	cf_events_webhook_step(d->webhook);
}

/*
 * How long the next step may wait for the network: not at all while
 * there is more to send and room to send it; until the next token when
 * the publish rate holds it back; else 100 ms (a PUBACK or a message ends
 * the wait at once).
 */
static int
wait_ms(const cf_daemon *d)
{
	double rate = (double)d->cfg.mqtt_publish_rate;

	/* A webhook request in flight is advanced by the steps (libcurl's multi, no fds here). */
	if (cf_events_webhook_busy(d->webhook))
		return 10;

	if (!d->outbox_dirty || !cf_mqtt_connected(d->mqtt) ||
	    cf_mqtt_inflight(d->mqtt) >= CF_MQTT_INFLIGHT_DEFAULT)
		return 100;
	if (rate > 0 && d->tokens < 1) {
		int ms = (int)((1 - d->tokens) * 1000 / rate) + 1;

		return ms < 100 ? ms : 100;
	}
	return 0;
}

int
cf_daemon_run(cf_daemon *d, const char *config_path, volatile sig_atomic_t *stop,
	      volatile sig_atomic_t *reload_flag, int drain_ms, cf_err *err)
{
	int64_t drain_end;

	(void)err;
	d->tokens_at_ms = cf_time_mono_ms();
	cf_log_info("event=started data_dir=%s broker=%s:%lld client_id=%s prefix=%s",
		    d->cfg.data_dir, d->cfg.mqtt_host, (long long)d->cfg.mqtt_port,
		    d->cfg.mqtt_client_id, d->cfg.topic_prefix);
	while (!*stop) {
		if (*reload_flag) {
			*reload_flag = 0;
			reload(d, config_path);
		}
		step(d, wait_ms(d));
	}
	d->draining = true;
	drain_end = cf_time_mono_ms() + drain_ms;
	while (((cf_mqtt_connected(d->mqtt) && cf_mqtt_inflight(d->mqtt) > 0) ||
		cf_events_webhook_busy(d->webhook)) &&
	       cf_time_mono_ms() < drain_end)
		step(d, cf_events_webhook_busy(d->webhook) ? 10 : 50);
	cf_log_info("event=stopping in_flight=%u handled=%llu refused=%llu published=%llu "
		    "acked=%llu",
		    cf_mqtt_inflight(d->mqtt), (unsigned long long)d->handled,
		    (unsigned long long)d->refused, (unsigned long long)d->published,
		    (unsigned long long)d->acked);
	return CF_OK;
}

void
cf_daemon_free(cf_daemon *d)
{
	if (d == NULL)
		return;
	cf_events_webhook_free(d->webhook);
	cf_mqtt_free(d->mqtt);
	outbox_forget_delivered(d);
	cf_rotation_engine_free(d->eng);
	cf_authority_free(d->auth);
	cf_store_close(d->store);
	cf_config_clear(&d->cfg);
	free(d);
}
