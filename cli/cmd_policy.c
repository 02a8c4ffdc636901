/* certfleet policy: MQTT policies attached to certificates. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define POLICY_MAX (64 * 1024)

static const char create_usage[] =
	"usage: certfleet policy create NAME --file POLICY.json\n"
	"\n"
	"Create a policy: {\"version\": 1, \"statements\": [{\"effect\": \"allow\"|\"deny\",\n"
	"\"actions\": [\"connect\"|\"publish\"|\"subscribe\"|\"receive\"|\"*\"], \"resources\":\n"
	"[\"management/topic/${clientid}/...\"]}]}. Resources are MQTT topic filters; the\n"
	"variables ${clientid} and ${thing} are filled in per device. See docs/policies.md.\n";

static int
policy_create(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cf_err err = CF_ERR_INIT;
	const char *file = NULL;
	char *doc = NULL;
	int c, rc;

	if (cli_wants_help(argc, argv, create_usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'f')
			return cli_usage_error(create_usage, "unknown option");
		file = optarg;
	}
	if (file == NULL || optind + 1 != argc)
		return cli_usage_error(create_usage, "NAME and --file are required");
	if (!cf_name_valid(argv[optind]))
		return cli_usage_error(create_usage, "invalid policy name '%s'", argv[optind]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cli_read_file(&doc, NULL, file, POLICY_MAX, &err);
	if (rc == CF_OK)
		rc = cf_store_policy_insert(cli->store, argv[optind], doc, &cli->actor, &err);
	free(doc);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "policy create");
	return cli_print(cli, json_pack("{s:s}", "name", argv[optind]), NULL);
}

static const char attach_usage[] = "usage: certfleet policy attach NAME --cert ID\n";
static const char detach_usage[] = "usage: certfleet policy detach NAME --cert ID\n";

static int
policy_link(cf_cli *cli, int argc, char **argv, const char *usage, bool attach)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cf_err err = CF_ERR_INIT;
	const char *cert = NULL;
	cf_store_cert rec;
	int c, rc;

	if (cli_wants_help(argc, argv, usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'c')
			return cli_usage_error(usage, "unknown option");
		cert = optarg;
	}
	if (cert == NULL || optind + 1 != argc)
		return cli_usage_error(usage, "NAME and --cert are required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	/* Resolve a prefix to the full id first, so that events name the certificate. */
	memset(&rec, 0, sizeof(rec));
	rc = cf_store_cert_get(cli->store, &rec, cert, &err);
	if (rc == CF_OK && attach)
		rc = cf_store_policy_attach(cli->store, argv[optind], rec.id, &cli->actor, &err);
	else if (rc == CF_OK)
		rc = cf_store_policy_detach(cli->store, argv[optind], rec.id, &cli->actor, &err);
	if (rc == CF_OK)
		rc = cli_print(cli, json_pack("{s:s, s:s, s:b}", "policy", argv[optind],
					      "certificateId", rec.id, "attached", attach),
			       NULL);
	else
		rc = cli_fail(rc, &err, attach ? "policy attach" : "policy detach");
	cf_store_cert_clear(&rec);
	return rc;
}

static int
policy_attach(cf_cli *cli, int argc, char **argv)
{
	return policy_link(cli, argc, argv, attach_usage, true);
}

static int
policy_detach(cf_cli *cli, int argc, char **argv)
{
	return policy_link(cli, argc, argv, detach_usage, false);
}

static const char list_usage[] =
	"usage: certfleet policy list [--cert ID]\n\nList every policy, or those attached to a "
	"certificate.\n";

static int
policy_list_cb(const cf_store_policy *p, void *payload)
{
	json_t *o = json_pack("{s:s, s:o}", "name", p->name, "createdAt",
			      cli_json_time(p->created_at));

	return json_array_append_new(payload, o) == 0 ? 0 : CF_ENOMEM;
}

static int
policy_list(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const columns[] = { "name", "createdAt", NULL };
	cf_err err = CF_ERR_INIT;
	cf_store_cert rec;
	const char *cert = NULL;
	json_t *rows;
	int c, rc;

	if (cli_wants_help(argc, argv, list_usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'c')
			return cli_usage_error(list_usage, "unknown option");
		cert = optarg;
	}
	if (optind != argc)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[optind]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&rec, 0, sizeof(rec));
	if (cert != NULL) {
		rc = cf_store_cert_get(cli->store, &rec, cert, &err);
		if (rc != CF_OK)
			return cli_fail(rc, &err, cert);
	}
	rows = json_array();
	rc = cf_store_policy_list(cli->store, rec.id, policy_list_cb, rows, &err);
	cf_store_cert_clear(&rec);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "policy list");
	}
	return cli_print(cli, rows, columns);
}

static const char describe_usage[] = "usage: certfleet policy describe NAME\n";

static int
policy_describe(cf_cli *cli, int argc, char **argv)
{
	cf_err err = CF_ERR_INIT;
	cf_store_policy p;
	json_t *doc;
	int rc;

	if (cli_wants_help(argc, argv, describe_usage))
		return CLI_EXIT_OK;
	if (argc != 2)
		return cli_usage_error(describe_usage, "one policy name is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&p, 0, sizeof(p));
	rc = cf_store_policy_get(cli->store, &p, argv[1], &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[1]);
	doc = json_loads(p.document, 0, NULL);
	rc = cli_print(cli, json_pack("{s:s, s:o, s:o}", "name", p.name, "createdAt",
				      cli_json_time(p.created_at), "document",
				      doc != NULL ? doc : json_string(p.document)),
		       NULL);
	cf_store_policy_clear(&p);
	return rc;
}

static const cli_verb verbs[] = {
	{ "create", policy_create, "create a policy from a JSON file" },
	{ "attach", policy_attach, "attach a policy to a certificate" },
	{ "detach", policy_detach, "detach a policy from a certificate" },
	{ "list", policy_list, "list policies" },
	{ "describe", policy_describe, "show a policy document" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_policy(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "policy", verbs, argc, argv);
}
