/*
 * audit: the checks of a fleet audit and the engine that runs them.
 *
 * Pure over the store and a clock (now is passed in): an audit run reads the
 * registry (CAs, then one pass over the ACTIVE certificates, then the
 * broker's connection records and the rotations, each only when a check
 * asks for it), and writes its findings, in one transaction, through the
 * store's audit record (cf_store_audit_*). The run's NEW / OPEN / RESOLVED
 * bookkeeping and the suppressions are the store's.
 *
 * Key quality is judged from the registry's columns (key_type, key_bits,
 * sig_alg, spki_sha256, key_roca), never by parsing a device certificate,
 * so that a million certificates audit in seconds. Mitigation actions
 * (actions.c) and the schedule certfleetd runs (schedule.c) follow the
 * engine; the notifiers are src/events' and certfleetd's.
 */
#ifndef CF_AUDIT_H
#define CF_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"
#include "store/store.h"
#include "util/util.h"

/* The checks' parameters. */
typedef struct cf_audit_config {
	int64_t device_expiring_days; /* DEVICE_CERTIFICATE_EXPIRING_CHECK, 30 */
	int64_t ca_expiring_days;     /* CA_CERTIFICATE_EXPIRING_CHECK, 90 */
	int64_t device_age_days;      /* DEVICE_CERTIFICATE_AGE_CHECK, 365 */
	int64_t rotation_failures;    /* ROTATION_FAILING_CHECK, 3 */
	int64_t shared_window;        /* connection checks: seconds back from now, 86400 */
	cf_pki_key_policy key_policy; /* the *_KEY_QUALITY_CHECKs: cf_pki_key_policy_init() */
	/* REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK: CRL files (borrowed), none */
	const char *const *crl_files;
	size_t ncrl_files;
	bool notifier_configured;     /* LOGGING_DISABLED_CHECK: a notifier is set up, false */
	int64_t events_full_every;    /* LOGGING_DISABLED_CHECK: seconds a sweep of the
					 whole chain takes, a share of it each run (0:
					 every run walks it all), 7 days */
} cf_audit_config;

/* Fill cfg with the defaults above. */
void cf_audit_config_init(cf_audit_config *cfg);

/* One check of the table. */
typedef struct cf_audit_check_info {
	const char *name; /* "DEVICE_CERTIFICATE_EXPIRING_CHECK" */
	cf_audit_severity severity;
	const char *summary; /* one line, for --help and `audit checks` */
} cf_audit_check_info;

/* Number of checks in the table, and check i of it (NULL past the end). Borrowed, static. */
size_t cf_audit_check_count(void);
const cf_audit_check_info *cf_audit_check_at(size_t i);

/* The check named name (exactly, upper case), or NULL. Borrowed, static. */
const cf_audit_check_info *cf_audit_check_find(const char *name);

/*
 * The audit_checks config value: "all" (*n = 0: every check) or check names
 * separated by commas, into names (static strings, CF_AUDIT_CHECKS_MAX of
 * room). CF_EINVAL naming what is wrong (an unknown name, one given twice).
 */
int cf_audit_checks_parse(const char **names, size_t *n, const char *text, cf_err *err);

/* The most checks of the table (an upper bound for the summary's arrays). */
#define CF_AUDIT_CHECKS_MAX 16

/* What a run did. */
typedef struct cf_audit_summary {
	int64_t certificates; /* ACTIVE certificates read */
	int64_t cas;
	int64_t connections;
	int64_t rotations;
	int64_t findings; /* written, suppressed ones included */
	int64_t by_severity[4];                   /* indexed by cf_audit_severity */
	int64_t by_check[CF_AUDIT_CHECKS_MAX];    /* indexed like cf_audit_check_at() */
	bool ran[CF_AUDIT_CHECKS_MAX];            /* the check was part of the run */
	int64_t elapsed_ms;
	/*
	 * LOGGING_DISABLED_CHECK's record for the next run: the head the run
	 * reached from the last one's, and where its sweep of the older events
	 * stopped (the genesis once a sweep reached the head).
	 */
	bool events_verified;
	bool events_broken; /* the walk found the chain broken: nothing verified */
	cf_store_event_anchor events_head;
	cf_store_event_anchor events_sweep;
	int64_t events_full_at; /* when a sweep last reached the head, 0: never */
	int64_t events_damaged_run; /* a run whose record was found edited or removed, 0: none */
	int64_t events_checked; /* events walked by this run */
} cf_audit_summary;

/*
 * Run the n checks named in checks (n == 0: every check of the table) at
 * time now: a run record is begun (trigger), the findings are written in
 * one transaction, and the run is finished COMPLETED with a summary JSON of
 * the counts per check and severity, or FAILED when a step fails (then
 * the error is returned, and *run_out still names the run). *run_out and
 * summary (either may be NULL) get the run id and the counts.
 * CF_EINVAL, before anything is written, for an unknown or repeated check
 * name or a bad config; CF_ESTATE on a read-only store; CF_EBUSY,
 * CF_ENOMEM, CF_ESTORE.
 */
int cf_audit_run(int64_t *run_out, cf_audit_summary *summary, cf_store *store,
		 const cf_audit_config *cfg, cf_audit_trigger trigger, const char *const *checks,
		 size_t n, int64_t now, cf_err *err);

/* ---- mitigation actions (issue 5) ------------------------------------ */

struct cf_rotation_engine; /* rotation/rotation.h */

/* What can be done about a finding. Names as in the config and the CLI. */
typedef enum {
	CF_AUDIT_ROTATE_DEVICE_CERTIFICATE = 0,
	CF_AUDIT_DEACTIVATE_DEVICE_CERTIFICATE,
	CF_AUDIT_REVOKE_DEVICE_CERTIFICATE,
	CF_AUDIT_DEACTIVATE_CA_CERTIFICATE,
	CF_AUDIT_QUARANTINE_THING,
	CF_AUDIT_NOTIFY,
	CF_AUDIT_ACTION_COUNT
} cf_audit_action;

/*
 * Whether action can act on a finding about resource: ROTATE on cert: and
 * thing:, DEACTIVATE and REVOKE on cert:, DEACTIVATE_CA on ca:, QUARANTINE
 * on thing: and cert:, NOTIFY on anything. cf_audit_bindings_parse()
 * refuses a binding whose check has no finding the action fits;
 * cf_audit_apply_bindings() skips the findings it does not fit.
 */
bool cf_audit_action_fits(cf_audit_action action, const char *resource);

/* "ROTATE_DEVICE_CERTIFICATE", ...; NULL past the end. Static. */
const char *cf_audit_action_name(cf_audit_action action);
/* Exact (upper case) parse of the names above. CF_EINVAL otherwise. */
int cf_audit_action_parse(cf_audit_action *out, const char *name);

/* The deny-all policy QUARANTINE_THING attaches, created on first use. */
#define CF_AUDIT_QUARANTINE_POLICY "audit-quarantine"
#define CF_AUDIT_QUARANTINE_DOCUMENT                                                       \
	"{\"version\":1,\"statements\":[{\"effect\":\"deny\",\"actions\":[\"*\"],"          \
	"\"resources\":[\"#\",\"${clientid}\"]}]}"

/* What one cf_audit_mitigate() call did. */
typedef struct cf_audit_mitigation {
	char rotation_id[33]; /* ROTATE: the rotation opened, "" otherwise */
	size_t changed;       /* certificates or CAs changed, policies attached */
	bool already;         /* nothing to do: already rotating, inactive, attached */
} cf_audit_mitigation;

/*
 * Apply action to the resource of finding (check, resource, finding_id and
 * run_id are read): ROTATE opens a rotation (cert:ID, the thing the
 * certificate is bound to; thing:NAME, its soonest-expiring certificate)
 * through eng, which may be NULL for the other actions; DEACTIVATE and
 * REVOKE move a cert:ID to INACTIVE / REVOKED ("unspecified"); DEACTIVATE_CA
 * retires a ca:NAME; QUARANTINE attaches CF_AUDIT_QUARANTINE_POLICY to every
 * ACTIVE certificate of a thing:NAME (or of a cert:ID's thing), in one
 * transaction; NOTIFY changes nothing (the caller's notifiers tell). Every
 * change is written with its event by who, why "audit finding F of CHECK
 * (run R)". A change already made (an open rotation, an INACTIVE
 * certificate, a retired CA, attached policy) is CF_OK with out->already.
 * CF_EINVAL for an action that does not fit the resource (err->msg says
 * which do) or a missing engine; CF_ENOTFOUND; CF_ESTATE (a REVOKED CA, a
 * deleted certificate); CF_EBUSY, CF_ESTORE.
 */
int cf_audit_mitigate(cf_audit_mitigation *out, cf_store *store, struct cf_rotation_engine *eng,
		      const cf_store_finding *finding, cf_audit_action action, const char *who,
		      cf_err *err);

/* A finding found by id, with its own copies of the strings. */
typedef struct cf_audit_finding_ref {
	int64_t run_id;
	char finding_id[33];
	char check[CF_STORE_AUDIT_TOKEN_MAX + 1];
	char resource[CF_STORE_AUDIT_RESOURCE_MAX + 1];
	cf_finding_state state;
	bool suppressed;
	cf_store_finding finding; /* pointing into the above */
} cf_audit_finding_ref;

/*
 * Find finding id (32 hex digits, or a unique prefix of at least 8) in run
 * run_id (0: the latest COMPLETED run), suppressed ones included.
 * CF_ENOTFOUND; CF_EINVAL for a bad or ambiguous id.
 */
int cf_audit_finding_find(cf_audit_finding_ref *out, cf_store *store, int64_t run_id,
			  const char *id, cf_err *err);

/* The actions bound to each check (a bit per cf_audit_action), by check index. */
typedef struct cf_audit_bindings {
	unsigned int actions[CF_AUDIT_CHECKS_MAX];
} cf_audit_bindings;

/* The default of the audit_actions config key. */
#define CF_AUDIT_ACTIONS_DEFAULT "DEVICE_CERTIFICATE_EXPIRING_CHECK:ROTATE_DEVICE_CERTIFICATE"

/*
 * Parse "CHECK:ACTION, CHECK:ACTION, ..." (a check may appear several
 * times; "" or "none": nothing bound). CF_EINVAL naming the bad item.
 */
int cf_audit_bindings_parse(cf_audit_bindings *out, const char *text, cf_err *err);

/* ---- scheduled runs (issue 5) ------------------------------------------ */

typedef enum {
	CF_AUDIT_SCHEDULE_OFF = 0,
	CF_AUDIT_SCHEDULE_INTERVAL, /* every interval seconds: "daily", "weekly", "6h", "2s" */
	CF_AUDIT_SCHEDULE_DAILY_AT, /* every day at at_minute past midnight UTC: "daily@03:30" */
	CF_AUDIT_SCHEDULE_MONTHLY   /* one calendar month (UTC) after the last run: "monthly" */
} cf_audit_schedule_kind;

/* The longest audit_schedule interval, in seconds (366 days). */
#define CF_AUDIT_INTERVAL_MAX (366 * 86400LL)

typedef struct cf_audit_schedule {
	cf_audit_schedule_kind kind;
	int64_t interval;  /* seconds, for INTERVAL */
	int64_t at_minute; /* 0..1439, for DAILY_AT */
} cf_audit_schedule;

/*
 * Parse the audit_schedule config value: "off", "daily", "weekly",
 * "monthly", "daily@HH:MM" (UTC) or a duration of at least a second
 * ("6h", "30m", "2s"). CF_EINVAL.
 */
int cf_audit_schedule_parse(cf_audit_schedule *out, const char *text, cf_err *err);

/*
 * When the next scheduled run is due, given the start of the last one
 * (last, 0 when there was none) and now; INT64_MAX when off. A schedule
 * missed while the daemon was down is due at once, and once: the time is
 * derived from the last run in the registry, so a restart neither skips
 * nor doubles a run. With no run yet, an INTERVAL or MONTHLY schedule is
 * due now and DAILY_AT at its next time of day.
 */
int64_t cf_audit_schedule_next(const cf_audit_schedule *sched, int64_t last, int64_t now);

/*
 * The start time of the newest SCHEDULED run that did not fail, in *out (0
 * when none): a FAILED run's slot is run again. CF_ESTORE.
 */
int cf_audit_last_scheduled(int64_t *out, cf_store *store, cf_err *err);

/*
 * Finish as FAILED (summary {"error": "interrupted"}) every run still
 * IN_PROGRESS that started before `before`: the process running it died.
 * Pass a time no live run can be older than (certfleetd: an hour ago).
 * *count (may be NULL) gets how many. CF_EBUSY, CF_ESTORE.
 */
int cf_audit_abandon_stale(size_t *count, cf_store *store, int64_t before, cf_err *err);

/* One finding acted on by cf_audit_apply_bindings(), for the notifiers. */
typedef struct cf_audit_acted {
	const cf_store_finding *finding; /* check, resource, finding_id, run_id, severity */
	cf_audit_action action;
	int rc; /* what cf_audit_mitigate() returned */
	const cf_err *err;               /* its detail when rc != CF_OK */
	const cf_audit_mitigation *result;
} cf_audit_acted;

typedef void (*cf_audit_acted_fn)(const cf_audit_acted *acted, void *payload);

/* What cf_audit_apply_bindings() did. */
typedef struct cf_audit_applied {
	size_t findings;        /* NEW and OPEN unsuppressed findings with a bound action */
	size_t actions;         /* actions applied (NOTIFY included) */
	size_t changed;         /* of which changed something */
	size_t failed;          /* of which failed (each told to cb, and the run goes on) */
	size_t skipped_service; /* ROTATE skipped: the thing is a service principal */
	size_t skipped_expired; /* ROTATE skipped: the certificate expired (re-provision) */
	size_t skipped_unbound; /* ROTATE skipped: the certificate is bound to no thing */
	size_t left;            /* findings left for the next run (over CF_AUDIT_APPLY_MAX) */
} cf_audit_applied;

/* Findings of one run acted on at most; the others wait for the next run. */
#define CF_AUDIT_APPLY_MAX 10000

/*
 * Apply the actions bound to each check (b) to the NEW and OPEN,
 * unsuppressed findings of run run_id, by who (certfleetd: "audit"), each
 * action only where it fits the resource. ROTATE is left out, before a
 * finding takes one of the CF_AUDIT_APPLY_MAX places, for a thing already
 * being rotated, an expired certificate (its device cannot connect), an
 * unbound one, and, as cf_rotation_start_many() does, a service principal
 * (counted in out). cb (may be NULL) hears of each action applied. A failing
 * action is counted and the others go on. CF_ENOTFOUND for an unknown run;
 * CF_ENOMEM, CF_ESTORE when the findings cannot be read.
 */
int cf_audit_apply_bindings(cf_audit_applied *out, cf_store *store,
			    struct cf_rotation_engine *eng, const cf_audit_bindings *b,
			    int64_t run_id, const char *who, cf_audit_acted_fn cb, void *payload,
			    cf_err *err);

#endif
