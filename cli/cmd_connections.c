/* certfleet connections: the broker plugin's record of MQTT connections. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_LIMIT 100

enum {
	OPT_CERT = 256,
	OPT_CLIENT_ID,
	OPT_SINCE,
	OPT_LIMIT,
	OPT_JSON,
};

static const char list_usage[] =
	"usage: certfleet connections list [--cert ID] [--client-id ID] [--since DURATION]\n"
	"           [--limit N] [--json]\n"
	"\n"
	"List the MQTT connections the broker plugin recorded, newest first: time, outcome\n"
	"('accepted', or why the broker refused the client, such as status_INACTIVE or\n"
	"client_id_mismatch), client id, certificate id ('-' for none) and address.\n"
	"  --cert ID         one certificate: an id, or a prefix of at least 8 hex digits\n"
	"  --client-id ID    one MQTT client id, exactly\n"
	"  --since DURATION  only the last DURATION, such as 30m, 12h, 7d\n"
	"  --limit N         at most N connections (default 100)\n"
	"  --json            JSON output, as the global --output json\n"
	"Client ids and addresses are the devices' own text: control characters are shown\n"
	"as \\xNN in the table.\n";

/*
 * Device text as a JSON string. A client id is UTF-8 by the MQTT rules,
 * but the registry keeps what the broker gave it: text that is not UTF-8
 * (which jansson refuses) is shown with its bytes above 0x7f as \xNN
 * rather than left out.
 */
static json_t *
device_text(const char *s)
{
	json_t *v = json_string(s);
	size_t i, o = 0, len;
	char *buf;

	if (v != NULL)
		return v;
	len = strlen(s);
	buf = malloc(len * 4 + 1);
	if (buf == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80)
			o += (size_t)snprintf(buf + o, 5, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	v = json_string(buf);
	free(buf);
	return v;
}

static int
connection_cb(const cf_store_connection *c, void *payload)
{
	json_t *o = json_object();

	if (o == NULL)
		return CF_ENOMEM;
	json_object_set_new(o, "id", json_integer(c->id));
	json_object_set_new(o, "time", cli_json_time(c->at));
	json_object_set_new(o, "outcome", json_string(c->outcome));
	json_object_set_new(o, "clientId", device_text(c->client_id));
	json_object_set_new(o, "certificateId",
			    c->cert_id != NULL ? json_string(c->cert_id) : json_null());
	json_object_set_new(o, "address", device_text(c->address));
	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static int
connections_list(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "client-id", required_argument, NULL, OPT_CLIENT_ID },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int allowed[] = { OPT_CERT, OPT_CLIENT_ID, OPT_SINCE, OPT_LIMIT,
				       OPT_JSON, 'h',           0 };
	static const char *const columns[] = { "time",          "outcome", "clientId",
					       "certificateId", "address", NULL };
	cf_store_connection_filter filter = CF_STORE_CONNECTION_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	int64_t since = 0, now;
	json_t *rows;
	bool limit_given = false;
	int c, rc;

	if (cli_wants_help(argc, argv, list_usage))
		return CLI_EXIT_OK;
	filter.limit = DEFAULT_LIMIT;
	optind = 0;
	while ((c = cli_getopt(argc, argv, opts, allowed, list_usage)) != -1) {
		switch (c) {
		case '?':
			return CLI_EXIT_USAGE;
		case OPT_CERT:
			filter.cert_id = optarg;
			break;
		case OPT_CLIENT_ID:
			filter.client_id = optarg;
			break;
		case OPT_SINCE:
			if (cf_duration_parse(&since, optarg) != CF_OK)
				return cli_usage_error(list_usage, "--since takes a duration such "
								   "as 30m, 12h or 7d");
			break;
		case OPT_LIMIT:
			if (cf_parse_int64(&filter.limit, optarg, 1, INT64_MAX) != CF_OK)
				return cli_usage_error(list_usage,
						       "--limit takes a positive number");
			limit_given = true;
			break;
		case OPT_JSON:
			cli->json = true;
			break;
		default:
			break;
		}
	}
	if (optind != argc)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[optind]);
	now = cf_time_now();
	if (since > 0) /* at least 1: 0 would mean no --since */
		filter.since = now - since > 0 ? now - since : 1;
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rows = json_array();
	if (rows == NULL)
		return cli_fail(CF_ENOMEM, NULL, "connections list");
	rc = cf_store_connection_list(cli->store, &filter, connection_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "connections list");
	}
	/* Say so when the default limit cut the list: an audit must not miss rows silently. */
	if (!cli->json && !limit_given && json_array_size(rows) == DEFAULT_LIMIT)
		fprintf(stderr,
			"certfleet: showing the newest %d connections; --limit N for more\n",
			DEFAULT_LIMIT);
	return cli_print(cli, rows, columns);
}

static const cli_verb verbs[] = {
	{ "list", connections_list, "list the MQTT connections the broker recorded" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_connections(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "connections", verbs, argc, argv);
}
