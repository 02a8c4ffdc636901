/* certfleet events: the hash-chained event log. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char list_usage[] =
	"usage: certfleet events list [--resource R] [--after SEQ] [--limit N] [--newest-first]\n"
	"\n"
	"List events: who did what, to which resource (cert:ID, thing:NAME, ca:NAME,\n"
	"policy:NAME), when and why.\n";

static int
event_cb(const cf_store_event *e, void *payload)
{
	json_t *detail = json_loads(e->detail != NULL ? e->detail : "{}", 0, NULL);
	json_t *o = json_pack("{s:I, s:o, s:s, s:s, s:s, s:o, s:s}", "seq", (json_int_t)e->seq,
			      "time", cli_json_time(e->time), "actor", e->actor, "action",
			      e->action, "resource", e->resource, "detail",
			      detail != NULL ? detail : json_object(), "hash", e->hash);

	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static int
events_list(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "resource", required_argument, NULL, 'r' },
		{ "after", required_argument, NULL, 'a' },
		{ "limit", required_argument, NULL, 'l' },
		{ "newest-first", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const columns[] = { "seq",	   "time",   "actor",
					       "action", "resource", "detail", NULL };
	cf_store_event_filter filter = CF_STORE_EVENT_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	json_t *rows;
	int c, rc;

	if (cli_wants_help(argc, argv, list_usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			filter.resource = optarg;
			break;
		case 'a':
			if (cf_parse_int64(&filter.after_seq, optarg, 0, INT64_MAX) != CF_OK)
				return cli_usage_error(list_usage, "--after takes a number");
			break;
		case 'l':
			if (cf_parse_int64(&filter.limit, optarg, 1, INT64_MAX) != CF_OK)
				return cli_usage_error(list_usage, "--limit takes a number");
			break;
		case 'n':
			filter.newest_first = true;
			break;
		default:
			return cli_usage_error(list_usage, "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[optind]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rows = json_array();
	rc = cf_store_events_list(cli->store, &filter, event_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "events list");
	}
	return cli_print(cli, rows, columns);
}

static const char verify_usage[] =
	"usage: certfleet events verify [--anchor SEQ:HASH]\n"
	"\n"
	"Recompute the hash chain of the whole event log, and check every certificate's\n"
	"status against the events about it. Exits 9 and names the first bad event when a\n"
	"row was edited or deleted. With --anchor (a head printed earlier by 'events head'),\n"
	"also check that the log still holds that event with that hash: the chain alone\n"
	"cannot tell a log cut short, with its head rewritten, from an honest one.\n";

/* "SEQ:HASH" into an anchor. */
static int
anchor_parse(cf_store_event_anchor *out, const char *text)
{
	const char *colon = strchr(text, ':');
	char seq[24];
	size_t n;

	if (colon == NULL)
		return CF_EINVAL;
	n = (size_t)(colon - text);
	if (n == 0 || n >= sizeof(seq) || strlen(colon + 1) != 64)
		return CF_EINVAL;
	memcpy(seq, text, n);
	seq[n] = '\0';
	if (cf_parse_int64(&out->seq, seq, 0, INT64_MAX) != CF_OK)
		return CF_EINVAL;
	memcpy(out->hash, colon + 1, 65);
	return CF_OK;
}

static int
events_verify(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "anchor", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cf_store_event_anchor anchor;
	const cf_store_event_anchor *anchor_p = NULL;
	cf_err err = CF_ERR_INIT;
	int64_t count = 0, bad = 0;
	json_t *out;
	int c, rc;

	if (cli_wants_help(argc, argv, verify_usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'a' || anchor_parse(&anchor, optarg) != CF_OK)
			return cli_usage_error(verify_usage, "--anchor takes SEQ:HASH (64 hex)");
		anchor_p = &anchor;
	}
	if (optind != argc)
		return cli_usage_error(verify_usage, "unexpected argument '%s'", argv[optind]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_store_events_verify(cli->store, &count, &bad, anchor_p, &err);
	if (rc == CF_EINTEGRITY) {
		out = json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "checked", (json_int_t)count,
				"firstBadSeq", (json_int_t)bad, "error", err.msg);
		cli_print(cli, out, NULL);
		return cli_fail(rc, &err, "events verify");
	}
	if (rc != CF_OK)
		return cli_fail(rc, &err, "events verify");
	return cli_print(cli, json_pack("{s:b, s:I}", "ok", 1, "checked", (json_int_t)count),
			 NULL);
}

static const char head_usage[] =
	"usage: certfleet events head\n"
	"\n"
	"Print the newest event's sequence number and hash as SEQ:HASH. Keep it outside\n"
	"this machine; 'events verify --anchor SEQ:HASH' later proves the log still holds\n"
	"it.\n";

static int
events_head(cf_cli *cli, int argc, char **argv)
{
	cf_err err = CF_ERR_INIT;
	int64_t seq = 0;
	char hash[65], anchor[96];
	int rc;

	if (cli_wants_help(argc, argv, head_usage))
		return CLI_EXIT_OK;
	if (argc != 1)
		return cli_usage_error(head_usage, "unexpected argument '%s'", argv[1]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_store_events_head(cli->store, &seq, hash, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "events head");
	snprintf(anchor, sizeof(anchor), "%lld:%s", (long long)seq, hash);
	if (!cli->json) {
		puts(anchor);
		return CLI_EXIT_OK;
	}
	return cli_print(cli, json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)seq, "hash", hash,
					"anchor", anchor),
			 NULL);
}

static const cli_verb verbs[] = {
	{ "list", events_list, "list events" },
	{ "verify", events_verify, "check the hash chain and the certificates against it" },
	{ "head", events_head, "print the newest event as an anchor for verify" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_events(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "events", verbs, argc, argv);
}
