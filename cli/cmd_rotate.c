/* certfleet rotate: open, inspect and cancel certificate rotations (docs/rotation.md). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include "daemon/wiring.h"

enum {
	OPT_THING = 256,
	OPT_CERT,
	OPT_EXPIRING,
	OPT_CA,
	OPT_STATE,
	OPT_LIMIT,
	OPT_WHY,
};

static const struct option rotate_long_opts[] = {
	{ "thing", required_argument, NULL, OPT_THING },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "expiring-within", required_argument, NULL, OPT_EXPIRING },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "why", required_argument, NULL, OPT_WHY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct rotate_opts {
	const char *thing, *cert, *ca, *why;
	int64_t expiring_within, limit;
	int state; /* -1: not given */
};

/* Parse a rotate verb's options (allowed: the codes it takes). -1 to carry on, else exit code. */
static int
rotate_parse(struct rotate_opts *o, int argc, char **argv, const char *usage, const int *allowed)
{
	cf_rotation_state state;
	int c;

	memset(o, 0, sizeof(*o));
	o->state = -1;
	if (cli_wants_help(argc, argv, usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = cli_getopt(argc, argv, rotate_long_opts, allowed, usage)) != -1) {
		switch (c) {
		case '?':
			return CLI_EXIT_USAGE;
		case OPT_THING: o->thing = optarg; break;
		case OPT_CERT: o->cert = optarg; break;
		case OPT_CA: o->ca = optarg; break;
		case OPT_WHY: o->why = optarg; break;
		case OPT_EXPIRING:
			if (cf_duration_parse(&o->expiring_within, optarg) != CF_OK)
				return cli_usage_error(usage, "--expiring-within takes a duration "
							      "such as 30d");
			break;
		case OPT_STATE:
			if (cf_rotation_state_parse(&state, optarg) != CF_OK)
				return cli_usage_error(usage, "unknown state '%s'", optarg);
			o->state = (int)state;
			break;
		case OPT_LIMIT:
			if (cf_parse_int64(&o->limit, optarg, 1, INT64_MAX) != CF_OK)
				return cli_usage_error(usage, "--limit takes a positive number");
			break;
		default:
			break;
		}
	}
	return -1;
}

void
cli_rotation_config(cf_cli *cli, cf_rotation_config *cfg)
{
	cf_daemon_rotation_config(cfg, &cli->cfg);
	cfg->actor = cli->who;
}

/* The registry, an authority and an engine over them; free both on every way out. */
static int
engine_open(cf_cli *cli, cf_rotation_engine **eng, cf_authority **auth, cf_err *err)
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

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
rotation_json(const cf_store_rotation *r)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "rotationId", json_string(r->id));
	json_object_set_new(o, "thing", json_string(r->thing));
	json_object_set_new(o, "state", json_string(cf_rotation_state_name(r->state)));
	json_object_set_new(o, "oldCertificateId", json_string(r->old_cert));
	json_object_set_new(o, "newCertificateId", str_or_null(r->new_cert));
	json_object_set_new(o, "rekey", json_boolean(r->rekey));
	json_object_set_new(o, "keyType", str_or_null(r->key_type));
	json_object_set_new(o, "error", str_or_null(r->error));
	json_object_set_new(o, "sends", json_integer(r->sends));
	json_object_set_new(o, "createdAt", cli_json_time(r->created_at));
	json_object_set_new(o, "updatedAt", cli_json_time(r->updated_at));
	json_object_set_new(o, "deadline", cli_json_time(r->deadline));
	/* When csr_req (REQUESTED) or crt (ISSUED) goes out again; none once ended. */
	json_object_set_new(o, "nextSendAt",
			    cli_json_time(cf_rotation_state_open(r->state) ? r->next_send_at : 0));
	json_object_set_new(o, "deleteOldAt", cli_json_time(r->delete_old_at));
	return o;
}

/* ---- start ------------------------------------------------------------ */

static const char start_usage[] =
	"usage: certfleet rotate start --thing NAME [--cert ID] [--why TEXT]\n"
	"       certfleet rotate start [--expiring-within DURATION] [--ca NAME] [--why TEXT]\n"
	"\n"
	"Open rotations: each queues a csr_req for certfleetd to publish (protocol.md) and\n"
	"prints its rotation id.\n"
	"--thing NAME rotates one thing: its ACTIVE certificate that expires soonest, or\n"
	"  --cert ID (an id or a unique prefix). Exit 4 when it already has an open rotation.\n"
	"--expiring-within DURATION (30d, 12h, 2w) and --ca NAME select every thing with an\n"
	"  ACTIVE certificate that expires within DURATION, or was issued by CA NAME (both:\n"
	"  both), one rotation per thing for its soonest-expiring match. Things that have an\n"
	"  open rotation and service principals (attribute role=service) are skipped and\n"
	"  counted on stderr.\n";

struct started {
	cf_cli *cli;
	json_t *list; /* --output json */
};

static void
started_cb(const char *rotation_id, const char *thing, void *payload)
{
	struct started *s = payload;

	if (s->cli->json)
		json_array_append_new(s->list, json_pack("{s:s, s:s}", "rotationId", rotation_id,
							 "thing", thing));
	else
		puts(rotation_id);
}

static int
start_one(cf_cli *cli, cf_rotation_engine *eng, const struct rotate_opts *o, cf_err *err)
{
	struct started s = { cli, NULL };
	char id[33];
	int rc;

	rc = cf_rotation_start(eng, id, o->thing, o->cert, &cli->actor, err);
	if (rc != CF_OK)
		return rc;
	if (!cli->json) {
		puts(id);
		return CF_OK;
	}
	s.list = json_array();
	started_cb(id, o->thing, &s);
	return cli_print(cli, json_pack("{s:o, s:i, s:i, s:i, s:i}", "rotations", s.list,
					"started", 1, "skippedOpen", 0, "skippedService", 0,
					"skippedChanged", 0),
			 NULL) == CLI_EXIT_OK ? CF_OK : CF_ENOMEM;
}

static int
start_many(cf_cli *cli, cf_rotation_engine *eng, const struct rotate_opts *o, cf_err *err)
{
	cf_rotation_select sel = { o->expiring_within, o->ca };
	cf_rotation_bulk bulk;
	struct started s = { cli, NULL };
	int rc;

	s.list = json_array();
	rc = cf_rotation_start_many(eng, &bulk, &sel, &cli->actor, started_cb, &s, err);
	if (rc == CF_OK && cli->json) {
		rc = cli_print(cli, json_pack("{s:O, s:i, s:i, s:i, s:i}", "rotations", s.list,
					      "started", (json_int_t)bulk.started, "skippedOpen",
					      (json_int_t)bulk.skipped_open, "skippedService",
					      (json_int_t)bulk.skipped_service, "skippedChanged",
					      (json_int_t)bulk.skipped_changed),
			       NULL) == CLI_EXIT_OK ? CF_OK : CF_ENOMEM;
	}
	json_decref(s.list);
	/* Counted also when it failed half-way: what was started stays started. */
	if (rc == CF_OK || bulk.started > 0)
		fprintf(stderr, "certfleet: rotate start: %zu started, %zu already open, %zu "
				"service principals skipped, %zu changed meanwhile\n",
			bulk.started, bulk.skipped_open, bulk.skipped_service,
			bulk.skipped_changed);
	return rc;
}

static int
rotate_start(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_THING, OPT_CERT, OPT_EXPIRING, OPT_CA, OPT_WHY, 'h', 0 };
	cf_rotation_engine *eng = NULL;
	cf_authority *auth = NULL;
	cf_err err = CF_ERR_INIT;
	struct rotate_opts o;
	int rc = rotate_parse(&o, argc, argv, start_usage, allowed);

	if (rc >= 0)
		return rc;
	if (optind != argc)
		return cli_usage_error(start_usage, "unexpected argument '%s'", argv[optind]);
	if (o.thing != NULL && (o.expiring_within > 0 || o.ca != NULL))
		return cli_usage_error(start_usage, "--thing goes alone, without --expiring-within "
						    "or --ca");
	if (o.thing == NULL && o.expiring_within <= 0 && o.ca == NULL)
		return cli_usage_error(start_usage, "--thing, --expiring-within or --ca is "
						    "required");
	if (o.cert != NULL && o.thing == NULL)
		return cli_usage_error(start_usage, "--cert goes with --thing");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	cli->actor.why = o.why;
	rc = engine_open(cli, &eng, &auth, &err);
	if (rc == CF_OK && o.thing != NULL)
		rc = start_one(cli, eng, &o, &err);
	else if (rc == CF_OK)
		rc = start_many(cli, eng, &o, &err);
	cf_rotation_engine_free(eng);
	cf_authority_free(auth);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "rotate start");
	return CLI_EXIT_OK;
}

/* ---- list, describe ---------------------------------------------------- */

static const char list_usage[] =
	"usage: certfleet rotate list [--state S] [--thing NAME] [--limit N]\n"
	"\n"
	"List rotations, oldest first. S is REQUESTED, ISSUED, COMPLETED, FAILED, TIMED_OUT\n"
	"or CANCELLED.\n";

static int
list_cb(const cf_store_rotation *r, void *payload)
{
	return json_array_append_new(payload, rotation_json(r)) == 0 ? 0 : CF_ENOMEM;
}

static int
rotate_list(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_STATE, OPT_THING, OPT_LIMIT, 'h', 0 };
	static const char *const columns[] = { "rotationId", "thing", "state", "sends",
					       "createdAt",  "error", NULL };
	cf_store_rotation_filter filter = CF_STORE_ROTATION_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	struct rotate_opts o;
	json_t *rows;
	int rc = rotate_parse(&o, argc, argv, list_usage, allowed);

	if (rc >= 0)
		return rc;
	if (optind != argc)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[optind]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	filter.state = o.state;
	filter.thing = o.thing;
	filter.limit = o.limit;
	rows = json_array();
	rc = cf_store_rotation_list(cli->store, &filter, list_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "rotate list");
	}
	return cli_print(cli, rows, columns);
}

static const char describe_usage[] =
	"usage: certfleet rotate describe ID\n"
	"\n"
	"Show a rotation (ID or a unique prefix of at least 8 hex digits): its state, the\n"
	"certificate it replaces and the one issued for it, its timers and why it ended.\n";

static int
rotate_describe(cf_cli *cli, int argc, char **argv)
{
	cf_err err = CF_ERR_INIT;
	cf_store_rotation rot;
	json_t *out;
	int rc;

	if (cli_wants_help(argc, argv, describe_usage))
		return CLI_EXIT_OK;
	if (argc != 2)
		return cli_usage_error(describe_usage, "one rotation id is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_store_rotation_get(cli->store, &rot, argv[1], &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[1]);
	out = rotation_json(&rot);
	cf_store_rotation_clear(&rot);
	return cli_print(cli, out, NULL);
}

/* ---- cancel ------------------------------------------------------------ */

static const char cancel_usage[] =
	"usage: certfleet rotate cancel ID [--why TEXT]\n"
	"\n"
	"Cancel an open (REQUESTED or ISSUED) rotation: it becomes CANCELLED, and a\n"
	"certificate issued for it but not yet confirmed by the device goes INACTIVE. The\n"
	"device's old certificate stays ACTIVE. Exit 5 when the rotation has already ended.\n";

static int
rotate_cancel(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_WHY, 'h', 0 };
	cf_rotation_engine *eng = NULL;
	cf_authority *auth = NULL;
	cf_store_rotation rot;
	cf_err err = CF_ERR_INIT;
	struct rotate_opts o;
	int rc = rotate_parse(&o, argc, argv, cancel_usage, allowed);

	if (rc >= 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error(cancel_usage, "one rotation id is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&rot, 0, sizeof(rot));
	cli->actor.why = o.why;
	rc = engine_open(cli, &eng, &auth, &err);
	if (rc == CF_OK)
		rc = cf_rotation_cancel(eng, argv[optind], o.why, &cli->actor, &err);
	if (rc == CF_OK)
		rc = cf_store_rotation_get(cli->store, &rot, argv[optind], &err);
	cf_rotation_engine_free(eng);
	cf_authority_free(auth);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[optind]);
	rc = cli_print(cli, json_pack("{s:s, s:s, s:s?}", "rotationId", rot.id, "state",
				      cf_rotation_state_name(rot.state), "error", rot.error),
		       NULL);
	cf_store_rotation_clear(&rot);
	return rc;
}

static const cli_verb verbs[] = {
	{ "start", rotate_start, "open rotations: one thing, or by expiry or CA" },
	{ "list", rotate_list, "list rotations" },
	{ "describe", rotate_describe, "show a rotation" },
	{ "cancel", rotate_cancel, "cancel an open rotation" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_rotate(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "rotate", verbs, argc, argv);
}
