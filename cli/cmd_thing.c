/* certfleet thing: devices known to the registry. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char create_usage[] =
	"usage: certfleet thing create NAME [--attr KEY=VALUE]...\n"
	"\n"
	"Register a thing. NAME (1-64 of A-Z a-z 0-9 _ . : -) is its MQTT client id and\n"
	"the CN of its certificates. Attributes are free-form strings.\n";

static int
attr_add(json_t *attrs, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[129];
	size_t klen;

	if (eq == NULL || eq == kv)
		return CF_EINVAL;
	klen = (size_t)(eq - kv);
	if (klen >= sizeof(key))
		return CF_EINVAL;
	memcpy(key, kv, klen);
	key[klen] = '\0';
	if (!cf_name_valid(key) || strlen(eq + 1) > 1024)
		return CF_EINVAL;
	return json_object_set_new(attrs, key, json_string(eq + 1)) == 0 ? CF_OK : CF_EINVAL;
}

static json_t *
thing_json(const cf_store_thing *t)
{
	json_t *attrs = json_loads(t->attributes != NULL ? t->attributes : "{}", 0, NULL);

	return json_pack("{s:s, s:o, s:o}", "name", t->name, "attributes",
			 attrs != NULL ? attrs : json_object(), "createdAt",
			 cli_json_time(t->created_at));
}

static int
thing_create(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "attr", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cf_err err = CF_ERR_INIT;
	json_t *attrs = json_object();
	char *text = NULL;
	const char *name;
	int c, rc;

	if (cli_wants_help(argc, argv, create_usage)) {
		json_decref(attrs);
		return CLI_EXIT_OK;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a' && attr_add(attrs, optarg) == CF_OK)
			continue;
		json_decref(attrs);
		if (c == 'a')
			return cli_usage_error(create_usage, "bad --attr '%s' (KEY=VALUE)", optarg);
		return cli_usage_error(create_usage, "unknown option");
	}
	if (optind + 1 != argc) {
		json_decref(attrs);
		return cli_usage_error(create_usage, "one thing name is required");
	}
	name = argv[optind];
	if (!cf_name_valid(name)) {
		json_decref(attrs);
		return cli_usage_error(create_usage, "invalid thing name '%s'", name);
	}
	text = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(attrs);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK) {
		free(text);
		return rc;
	}
	rc = cf_store_thing_insert(cli->store, name, text, &cli->actor, &err);
	free(text);
	if (rc != CF_OK)
		return cli_fail(rc, &err, name);
	return cli_print(cli, json_pack("{s:s}", "name", name), NULL);
}

static int
thing_list_cb(const cf_store_thing *t, void *payload)
{
	return json_array_append_new(payload, thing_json(t)) == 0 ? 0 : CF_ENOMEM;
}

static const char list_usage[] = "usage: certfleet thing list\n";

static int
thing_list(cf_cli *cli, int argc, char **argv)
{
	static const char *const columns[] = { "name", "createdAt", "attributes", NULL };
	cf_err err = CF_ERR_INIT;
	json_t *rows;
	int rc;

	if (cli_wants_help(argc, argv, list_usage))
		return CLI_EXIT_OK;
	if (argc != 1)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[1]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rows = json_array();
	rc = cf_store_thing_list(cli->store, thing_list_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "thing list");
	}
	return cli_print(cli, rows, columns);
}

static int
cert_summary_cb(const cf_store_cert *c, void *payload)
{
	json_t *o = json_pack("{s:s, s:s, s:o}", "certificateId", c->id, "status",
			      cf_cert_status_name(c->status), "notAfter",
			      cli_json_time(c->not_after));

	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static const char describe_usage[] =
	"usage: certfleet thing describe NAME\n\nShow a thing and its certificates.\n";

static int
thing_describe(cf_cli *cli, int argc, char **argv)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	cf_store_thing t;
	json_t *out, *certs;
	int rc;

	if (cli_wants_help(argc, argv, describe_usage))
		return CLI_EXIT_OK;
	if (argc != 2)
		return cli_usage_error(describe_usage, "one thing name is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&t, 0, sizeof(t));
	rc = cf_store_thing_get(cli->store, &t, argv[1], &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[1]);
	out = thing_json(&t);
	cf_store_thing_clear(&t);
	certs = json_array();
	filter.thing = argv[1];
	rc = cf_store_cert_list(cli->store, &filter, cert_summary_cb, certs, &err);
	if (rc != CF_OK) {
		json_decref(out);
		json_decref(certs);
		return cli_fail(rc, &err, argv[1]);
	}
	json_object_set_new(out, "certificates", certs);
	return cli_print(cli, out, NULL);
}

static const char delete_usage[] =
	"usage: certfleet thing delete NAME\n"
	"\n"
	"Delete a thing. Refused while it has an ACTIVE or PENDING_ACTIVATION certificate;\n"
	"its other certificates stay in the registry's history.\n";

static int
thing_delete(cf_cli *cli, int argc, char **argv)
{
	cf_err err = CF_ERR_INIT;
	int rc;

	if (cli_wants_help(argc, argv, delete_usage))
		return CLI_EXIT_OK;
	if (argc != 2)
		return cli_usage_error(delete_usage, "one thing name is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_store_thing_delete(cli->store, argv[1], &cli->actor, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[1]);
	return cli_print(cli, json_pack("{s:s, s:b}", "name", argv[1], "deleted", 1), NULL);
}

static const cli_verb verbs[] = {
	{ "create", thing_create, "register a thing" },
	{ "list", thing_list, "list things" },
	{ "describe", thing_describe, "show a thing and its certificates" },
	{ "delete", thing_delete, "delete a thing" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_thing(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "thing", verbs, argc, argv);
}
