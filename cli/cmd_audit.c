/* certfleet audit: run the fleet audit checks, read their findings, suppress some. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include "audit/audit.h"

/* The longest suppression, in seconds (ten years). */
#define SUPPRESS_MAX (3650 * 86400LL)

enum {
	OPT_CHECK = 256,
	OPT_RUN,
	OPT_SEVERITY,
	OPT_STATE,
	OPT_RESOURCE,
	OPT_UNTIL,
	OPT_REASON,
	OPT_LIMIT,
	OPT_SUPPRESSED,
	OPT_WHY,
	OPT_ACTION,
	OPT_ARG, /* in allowed: the verb takes one positional argument */
};

static const struct option audit_long_opts[] = {
	{ "check", required_argument, NULL, OPT_CHECK },
	{ "run", required_argument, NULL, OPT_RUN },
	{ "severity", required_argument, NULL, OPT_SEVERITY },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "resource", required_argument, NULL, OPT_RESOURCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "suppressed", no_argument, NULL, OPT_SUPPRESSED },
	{ "why", required_argument, NULL, OPT_WHY },
	{ "action", required_argument, NULL, OPT_ACTION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct audit_opts {
	const char *checks[CF_AUDIT_CHECKS_MAX];
	size_t nchecks;
	const char *resource, *reason, *why, *action, *arg;
	int64_t run, until, limit;
	int severity, state; /* -1: not given */
	bool suppressed;
};

/* Parse a verb's options (allowed: the codes it takes). -1 to carry on, else an exit code. */
static int
audit_parse(struct audit_opts *o, int argc, char **argv, const char *usage, const int *allowed)
{
	cf_audit_severity sev;
	cf_finding_state st;
	int c;

	memset(o, 0, sizeof(*o));
	o->severity = -1;
	o->state = -1;
	if (cli_wants_help(argc, argv, usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = cli_getopt(argc, argv, audit_long_opts, allowed, usage)) != -1) {
		switch (c) {
		case '?':
			return CLI_EXIT_USAGE;
		case OPT_CHECK:
			if (cf_audit_check_find(optarg) == NULL)
				return cli_usage_error(usage, "unknown check '%s' (certfleet audit "
							      "checks lists them)", optarg);
			if (o->nchecks == CF_ARRAY_LEN(o->checks))
				return cli_usage_error(usage, "too many --check");
			o->checks[o->nchecks++] = optarg;
			break;
		case OPT_RUN:
			if (cf_parse_int64(&o->run, optarg, 1, INT64_MAX) != CF_OK)
				return cli_usage_error(usage, "--run takes a run id");
			break;
		case OPT_SEVERITY:
			if (cf_audit_severity_parse(&sev, optarg) != CF_OK)
				return cli_usage_error(usage, "unknown severity '%s'", optarg);
			o->severity = (int)sev;
			break;
		case OPT_STATE:
			if (cf_finding_state_parse(&st, optarg) != CF_OK)
				return cli_usage_error(usage, "unknown state '%s'", optarg);
			o->state = (int)st;
			break;
		case OPT_RESOURCE: o->resource = optarg; break;
		case OPT_REASON: o->reason = optarg; break;
		case OPT_WHY: o->why = optarg; break;
		case OPT_ACTION: o->action = optarg; break;
		case OPT_SUPPRESSED: o->suppressed = true; break;
		case OPT_UNTIL:
			if (cf_duration_parse(&o->until, optarg) != CF_OK || o->until < 1 ||
			    o->until > SUPPRESS_MAX)
				return cli_usage_error(usage, "--until takes a duration from 1s to "
							      "3650d, such as 7d");
			break;
		case OPT_LIMIT:
			if (cf_parse_int64(&o->limit, optarg, 1, INT64_MAX) != CF_OK)
				return cli_usage_error(usage, "--limit takes a positive number");
			break;
		default:
			break;
		}
	}
	for (c = 0; allowed[c] != 0 && allowed[c] != OPT_ARG; c++)
		;
	if (allowed[c] == OPT_ARG && optind < argc)
		o->arg = argv[optind++];
	if (optind != argc)
		return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	return -1;
}

/* A JSON text from the registry as a value (the text itself when it does not parse). */
static json_t *
json_text(const char *text)
{
	json_t *v;

	if (text == NULL)
		return json_null();
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_string(text);
}

static json_t *
run_json(const cf_store_audit_run *r, bool full)
{
	json_t *o = json_object(), *summary = json_text(r->summary);
	json_t *findings = json_object_get(summary, "findings");

	if (o == NULL) {
		json_decref(summary);
		return NULL;
	}
	json_object_set_new(o, "runId", json_integer(r->id));
	json_object_set_new(o, "status", json_string(cf_audit_status_name(r->status)));
	json_object_set_new(o, "trigger", json_string(cf_audit_trigger_name(r->trigger)));
	json_object_set_new(o, "startedAt", cli_json_time(r->started_at));
	json_object_set_new(o, "finishedAt", cli_json_time(r->finished_at));
	json_object_set_new(o, "findings", findings != NULL ? json_incref(findings) : json_null());
	if (full) {
		json_object_set_new(o, "checks", json_text(r->checks));
		json_object_set(o, "summary", summary);
	}
	json_decref(summary);
	return o;
}

/* ---- run ----------------------------------------------------------------- */

static const char run_usage[] =
	"usage: certfleet audit run [--check NAME]...\n"
	"\n"
	"Run the audit checks now (all of them, or the ones named) over the registry and\n"
	"the broker's connection records, and record the findings as a new run. Each finding\n"
	"is NEW, or OPEN when the previous completed run of its check had it; findings that\n"
	"run had and this one does not are RESOLVED. Parameters: the audit_* keys of\n"
	"certfleet.conf (docs/config.md). 'certfleet audit checks' lists the checks.\n"
	"  --check NAME   run this check (repeatable)\n";

static int
audit_run(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_CHECK, 'h', 0 };
	struct audit_opts o;
	cf_config_audit cfg;
	cf_audit_summary sum;
	cf_store_audit_run r;
	cf_err err = CF_ERR_INIT;
	int64_t run = 0;
	json_t *out;
	int rc;

	rc = audit_parse(&o, argc, argv, run_usage, allowed);
	if (rc >= 0)
		return rc;
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_config_audit_get(&cfg, &cli->cfg, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "audit run");
	rc = cf_audit_run(&run, &sum, cli->store, &cfg.audit, CF_AUDIT_ON_DEMAND, o.checks,
			  o.nchecks, cf_time_now(), &err);
	cf_config_audit_clear(&cfg);
	if (rc != CF_OK)
		return cli_fail(rc, &err, run > 0 ? "audit run (recorded as FAILED)" : "audit run");
	rc = cf_store_audit_run_get(cli->store, &r, run, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "audit run");
	out = run_json(&r, true);
	cf_store_audit_run_clear(&r);
	return cli_print(cli, out, NULL);
}

/* ---- checks -------------------------------------------------------------- */

static const char checks_usage[] =
	"usage: certfleet audit checks\n"
	"\n"
	"List the audit checks: name, severity of their findings, what they look for.\n";

static int
audit_checks(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { 'h', 0 };
	static const char *const columns[] = { "check", "severity", "summary", NULL };
	struct audit_opts o;
	json_t *rows = json_array();
	size_t i;
	int rc;

	rc = audit_parse(&o, argc, argv, checks_usage, allowed);
	if (rc >= 0) {
		json_decref(rows);
		return rc;
	}
	for (i = 0; rows != NULL && i < cf_audit_check_count(); i++) {
		const cf_audit_check_info *c = cf_audit_check_at(i);

		json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "check", c->name,
						      "severity",
						      cf_audit_severity_name(c->severity),
						      "summary", c->summary));
	}
	return cli_print(cli, rows, columns);
}

/* ---- list, describe --------------------------------------------------------- */

static const char list_usage[] =
	"usage: certfleet audit list [--limit N]\n"
	"\n"
	"List the audit runs, newest first: id, status, trigger, times, number of findings.\n"
	"  --limit N   at most N runs (default 20)\n";

static int
run_list_cb(const cf_store_audit_run *r, void *payload)
{
	json_t *o = run_json(r, false);

	if (o == NULL)
		return CF_ENOMEM;
	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static int
audit_list(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_LIMIT, 'h', 0 };
	static const char *const columns[] = { "runId",      "status",   "trigger",
					       "startedAt", "finishedAt", "findings", NULL };
	struct audit_opts o;
	cf_err err = CF_ERR_INIT;
	json_t *rows;
	int rc;

	rc = audit_parse(&o, argc, argv, list_usage, allowed);
	if (rc >= 0)
		return rc;
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rows = json_array();
	if (rows == NULL)
		return cli_fail(CF_ENOMEM, NULL, "audit list");
	rc = cf_store_audit_run_list(cli->store, o.limit > 0 ? o.limit : 20, run_list_cb, rows,
				     &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "audit list");
	}
	return cli_print(cli, rows, columns);
}

static const char describe_usage[] =
	"usage: certfleet audit describe RUN\n"
	"\n"
	"Show one audit run: its status, the checks it ran, and its summary (findings per\n"
	"check and per severity, what it read, how long it took).\n";

static int
audit_describe(cf_cli *cli, int argc, char **argv)
{
	cf_store_audit_run r;
	cf_err err = CF_ERR_INIT;
	int64_t id;
	json_t *out;
	int rc;

	if (cli_wants_help(argc, argv, describe_usage))
		return CLI_EXIT_OK;
	if (argc != 2)
		return cli_usage_error(describe_usage, "one run id is required");
	if (cf_parse_int64(&id, argv[1], 1, INT64_MAX) != CF_OK)
		return cli_usage_error(describe_usage, "'%s' is not a run id", argv[1]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_store_audit_run_get(cli->store, &r, id, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[1]);
	out = run_json(&r, true);
	cf_store_audit_run_clear(&r);
	return cli_print(cli, out, NULL);
}

/* ---- findings ------------------------------------------------------------- */

static const char findings_usage[] =
	"usage: certfleet audit findings [--run RUN] [--check NAME] [--severity S] [--state S]\n"
	"           [--suppressed] [--limit N]\n"
	"\n"
	"List the findings of one run (default: the latest completed run), by check, then\n"
	"resource: check, resource, severity, state (NEW, OPEN, RESOLVED), reason. JSON\n"
	"output adds each finding's id and detail.\n"
	"  --run RUN      that run\n"
	"  --check NAME   one check\n"
	"  --severity S   CRITICAL, HIGH, MEDIUM or LOW\n"
	"  --state S      NEW, OPEN or RESOLVED\n"
	"  --suppressed   include suppressed findings (left out by default)\n"
	"  --limit N      at most N findings\n";

static int
finding_cb(const cf_store_finding *f, void *payload)
{
	json_t *o = json_object();

	if (o == NULL)
		return CF_ENOMEM;
	json_object_set_new(o, "findingId", json_string(f->finding_id));
	json_object_set_new(o, "runId", json_integer(f->run_id));
	json_object_set_new(o, "check", json_string(f->check));
	json_object_set_new(o, "resource", json_string(f->resource));
	json_object_set_new(o, "severity", json_string(cf_audit_severity_name(f->severity)));
	json_object_set_new(o, "state", json_string(cf_finding_state_name(f->state)));
	json_object_set_new(o, "reason", json_string(f->reason));
	json_object_set_new(o, "suppressed", json_boolean(f->suppressed));
	json_object_set_new(o, "detail", json_text(f->detail));
	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static int
audit_findings(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_RUN,       OPT_CHECK, OPT_SEVERITY, OPT_STATE,
				       OPT_SUPPRESSED, OPT_LIMIT, 'h',          0 };
	static const char *const columns[] = { "findingId", "check",  "resource", "severity",
					       "state",     "reason", NULL };
	static const char *const columns_sup[] = { "findingId", "check",  "resource",
						   "severity",  "state",  "reason",
						   "suppressed", NULL };
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	struct audit_opts o;
	cf_err err = CF_ERR_INIT;
	json_t *rows;
	int rc;

	rc = audit_parse(&o, argc, argv, findings_usage, allowed);
	if (rc >= 0)
		return rc;
	if (o.nchecks > 1)
		return cli_usage_error(findings_usage, "one --check at most");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	filter.run_id = o.run;
	filter.check = o.nchecks == 1 ? o.checks[0] : NULL;
	filter.severity = o.severity;
	filter.state = o.state;
	filter.include_suppressed = o.suppressed;
	filter.limit = o.limit;
	rows = json_array();
	if (rows == NULL)
		return cli_fail(CF_ENOMEM, NULL, "audit findings");
	rc = cf_store_audit_finding_list(cli->store, &filter, finding_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "audit findings");
	}
	return cli_print(cli, rows, o.suppressed ? columns_sup : columns);
}

/* ---- suppressions ----------------------------------------------------------- */

static const char suppress_usage[] =
	"usage: certfleet audit suppress --check NAME --resource R --until DURATION\n"
	"           --reason TEXT [--why TEXT]\n"
	"\n"
	"Suppress the findings of one check on one resource for DURATION from now (such as\n"
	"7d): runs started before then still record them, marked suppressed, and 'audit\n"
	"findings' leaves them out unless asked. Replaces an earlier suppression of the pair.\n"
	"Written to the event log.\n"
	"  --check NAME      the check\n"
	"  --resource R      cert:<id>, ca:<name>, thing:<name>, policy:<name>,\n"
	"                    client:<client id>, file:<path>, registry:<name> or\n"
	"                    config:<name>, as 'audit findings' shows it\n"
	"  --until DURATION  how long, such as 12h, 30d (at most 3650d)\n"
	"  --reason TEXT     why (required, kept with the suppression)\n"
	"  --why TEXT        note for the event log\n";

static int
audit_suppress(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_CHECK, OPT_RESOURCE, OPT_UNTIL, OPT_REASON,
				       OPT_WHY,   'h',          0 };
	struct audit_opts o;
	cf_err err = CF_ERR_INIT;
	int64_t until;
	int rc;

	rc = audit_parse(&o, argc, argv, suppress_usage, allowed);
	if (rc >= 0)
		return rc;
	if (o.nchecks != 1 || o.resource == NULL || o.until <= 0 || o.reason == NULL)
		return cli_usage_error(suppress_usage, "--check (once), --resource, --until and "
						       "--reason are required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	cli->actor.why = o.why;
	until = cf_time_now() + o.until;
	rc = cf_store_audit_suppress(cli->store, o.checks[0], o.resource, until, o.reason,
				     &cli->actor, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "audit suppress");
	return cli_print(cli, json_pack("{s:s, s:s, s:o, s:s}", "check", o.checks[0], "resource",
					o.resource, "expiresAt", cli_json_time(until), "reason",
					o.reason),
			 NULL);
}

static const char unsuppress_usage[] =
	"usage: certfleet audit unsuppress --check NAME --resource R [--why TEXT]\n"
	"\n"
	"Remove the suppression of one check on one resource, expired or not. Written to the\n"
	"event log.\n";

static int
audit_unsuppress(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_CHECK, OPT_RESOURCE, OPT_WHY, 'h', 0 };
	struct audit_opts o;
	cf_err err = CF_ERR_INIT;
	int rc;

	rc = audit_parse(&o, argc, argv, unsuppress_usage, allowed);
	if (rc >= 0)
		return rc;
	if (o.nchecks != 1 || o.resource == NULL)
		return cli_usage_error(unsuppress_usage, "--check (once) and --resource are "
							 "required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	cli->actor.why = o.why;
	rc = cf_store_audit_unsuppress(cli->store, o.checks[0], o.resource, &cli->actor, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "audit unsuppress");
	return cli_print(cli, json_pack("{s:s, s:s, s:b}", "check", o.checks[0], "resource",
					o.resource, "removed", 1),
			 NULL);
}

static const char suppressions_usage[] =
	"usage: certfleet audit suppressions\n"
	"\n"
	"List the suppressions, expired ones included (expired: yes; remove them with\n"
	"'audit unsuppress').\n";

static int
suppression_cb(const cf_store_audit_suppression *s, void *payload)
{
	json_t *o = json_object();

	if (o == NULL)
		return CF_ENOMEM;
	json_object_set_new(o, "check", json_string(s->check));
	json_object_set_new(o, "resource", json_string(s->resource));
	json_object_set_new(o, "expiresAt", cli_json_time(s->expires_at));
	json_object_set_new(o, "expired", json_boolean(s->expired));
	json_object_set_new(o, "reason", json_string(s->reason));
	json_object_set_new(o, "createdAt", cli_json_time(s->created_at));
	json_object_set_new(o, "createdBy", json_string(s->created_by));
	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static int
audit_suppressions(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { 'h', 0 };
	static const char *const columns[] = { "check",   "resource", "expiresAt",
					       "expired", "reason",   NULL };
	struct audit_opts o;
	cf_err err = CF_ERR_INIT;
	json_t *rows;
	int rc;

	rc = audit_parse(&o, argc, argv, suppressions_usage, allowed);
	if (rc >= 0)
		return rc;
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rows = json_array();
	if (rows == NULL)
		return cli_fail(CF_ENOMEM, NULL, "audit suppressions");
	rc = cf_store_audit_suppression_list(cli->store, suppression_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "audit suppressions");
	}
	return cli_print(cli, rows, columns);
}

/* ---- mitigate ----------------------------------------------------------------- */

static const char mitigate_usage[] =
	"usage: certfleet audit mitigate FINDING --action ACTION [--run RUN] [--why TEXT]\n"
	"\n"
	"Apply a mitigation action to the resource of one finding. FINDING is a findingId\n"
	"of 'audit findings' (or a unique prefix of at least 8 digits) of run RUN (default:\n"
	"the latest completed run). Each change is written to the event log by you, with\n"
	"why 'audit finding F of CHECK (run R)'.\n"
	"  --action ACTION  ROTATE_DEVICE_CERTIFICATE (cert:, thing:),\n"
	"                   DEACTIVATE_DEVICE_CERTIFICATE (cert:), REVOKE_DEVICE_CERTIFICATE\n"
	"                   (cert:), DEACTIVATE_CA_CERTIFICATE (ca:), QUARANTINE_THING\n"
	"                   (thing:, cert:), NOTIFY (changes nothing)\n"
	"  --run RUN        the run the finding belongs to\n";

/* An authority and a rotation engine over the CLI's registry; free both on every way out. */
static int
mitigate_engine(cf_cli *cli, cf_rotation_engine **eng, cf_authority **auth, cf_err *err)
{
	cf_rotation_config cfg;
	int rc;

	*eng = NULL;
	*auth = NULL;
	rc = cli_authority_open(cli, auth, err);
	if (rc != CF_OK)
		return rc;
	cli_rotation_config(cli, &cfg);
	return cf_rotation_engine_new(eng, cli->store, *auth, &cfg, err);
}

static int
audit_mitigate(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_ACTION, OPT_RUN, OPT_WHY, OPT_ARG, 'h', 0 };
	struct audit_opts o;
	cf_audit_finding_ref ref;
	cf_audit_mitigation m;
	cf_audit_action action;
	cf_rotation_engine *eng = NULL;
	cf_authority *auth = NULL;
	cf_err err = CF_ERR_INIT;
	json_t *out;
	int rc;

	rc = audit_parse(&o, argc, argv, mitigate_usage, allowed);
	if (rc >= 0)
		return rc;
	if (o.arg == NULL || o.action == NULL)
		return cli_usage_error(mitigate_usage, "FINDING and --action are required");
	if (cf_audit_action_parse(&action, o.action) != CF_OK)
		return cli_usage_error(mitigate_usage, "unknown action '%s'", o.action);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_audit_finding_find(&ref, cli->store, o.run, o.arg, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "audit mitigate");
	if (ref.state == CF_FINDING_RESOLVED) {
		cf_err_set(&err, CF_ESTATE, NULL, "finding %s is RESOLVED: nothing to mitigate",
			   ref.finding_id);
		return cli_fail(CF_ESTATE, &err, "audit mitigate");
	}
	if (action == CF_AUDIT_ROTATE_DEVICE_CERTIFICATE) {
		rc = mitigate_engine(cli, &eng, &auth, &err);
		if (rc != CF_OK)
			goto out;
	}
	rc = cf_audit_mitigate(&m, cli->store, eng, &ref.finding, action, cli->who, &err);
out:
	cf_rotation_engine_free(eng);
	cf_authority_free(auth);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "audit mitigate");
	out = json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:b}", "findingId", ref.finding_id,
			"runId", (json_int_t)ref.run_id, "check", ref.check, "resource",
			ref.resource, "action", cf_audit_action_name(action), "changed",
			(json_int_t)m.changed, "already", m.already);
	if (out != NULL && m.rotation_id[0] != '\0')
		json_object_set_new(out, "rotationId", json_string(m.rotation_id));
	return cli_print(cli, out, NULL);
}

static const cli_verb verbs[] = {
	{ "run", audit_run, "run the audit checks now and record their findings" },
	{ "checks", audit_checks, "list the checks" },
	{ "list", audit_list, "list the audit runs" },
	{ "describe", audit_describe, "show one run and its summary" },
	{ "findings", audit_findings, "list the findings of a run" },
	{ "suppress", audit_suppress, "suppress a check's findings on a resource for a while" },
	{ "unsuppress", audit_unsuppress, "remove a suppression" },
	{ "suppressions", audit_suppressions, "list the suppressions" },
	{ "mitigate", audit_mitigate, "apply a mitigation action to a finding's resource" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_audit(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "audit", verbs, argc, argv);
}
