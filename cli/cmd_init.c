/* certfleet init: a data dir, its config, the registry, and optionally a CA. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cli.h"

static const char usage[] =
	"usage: certfleet [--data-dir DIR] init [--quickstart]\n"
	"\n"
	"Create DIR (mode 0700) with certfleet.conf, a random passphrase for the\n"
	"intermediate CA keys (secrets/ca.pass, 0600), the registry and the default\n"
	"device policy 'certfleet-device'. Running it again keeps what exists.\n"
	"\n"
	"  --quickstart  also create a root CA in DIR/offline-root and an intermediate\n"
	"                'default' signed by it, so that certificates can be issued at\n"
	"                once. Move DIR/offline-root to offline storage afterwards.\n";

static int
write_default_config(cf_cli *cli, const char *path, cf_err *err)
{
	cf_config defaults;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;
	int rc;

	rc = cf_config_init(&defaults, cli->data_dir, err);
	if (rc != CF_OK)
		return rc;
	fp = open_memstream(&text, &len);
	if (fp == NULL) {
		cf_config_clear(&defaults);
		return cf_err_set(err, CF_ENOMEM, NULL, "config text");
	}
	fputs("# certfleet configuration (docs/config.md). Relative paths are under the\n"
	      "# data dir. Unknown keys are refused.\n\n",
	      fp);
	cf_config_dump(&defaults, fp);
	fclose(fp);
	cf_config_clear(&defaults);
	rc = cf_file_write_atomic(path, text, len, 0640, true, err);
	free(text);
	return rc;
}

/* 32 random bytes as 64 hex digits, written once with mode 0600. */
static int
write_passphrase(const char *path, cf_err *err)
{
	unsigned char raw[32];
	char hex[2 * sizeof(raw) + 2];
	int rc;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "RAND_bytes");
	cf_hex_encode(hex, raw, sizeof(raw));
	hex[2 * sizeof(raw)] = '\n';
	hex[2 * sizeof(raw) + 1] = '\0';
	rc = cf_file_write_atomic(path, hex, strlen(hex), 0600, true, err);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(hex, sizeof(hex));
	return rc;
}

/* Create path with fn unless it exists; an existing file is kept. */
static int
ensure_file(const char *path, int (*fn)(const char *, cf_err *), cf_err *err)
{
	if (access(path, F_OK) == 0)
		return CF_OK;
	return fn(path, err);
}

static int
quickstart(cf_cli *cli, json_t *report, cf_err *err)
{
	char *root_dir = cf_path_join(cli->data_dir, "offline-root");
	char *key = root_dir ? cf_path_join(root_dir, "root.key.pem") : NULL;
	char *cert = root_dir ? cf_path_join(root_dir, "root.pem") : NULL;
	char *pass = root_dir ? cf_path_join(root_dir, "root.pass") : NULL;
	cli_root_files root = { key, cert, pass };
	cli_ca_spec root_spec = { "root", NULL, NULL, NULL, 0, false };
	cli_ca_spec int_spec = { "default", NULL, NULL, NULL, 0, true };
	cf_store_ca existing;
	int rc;

	memset(&existing, 0, sizeof(existing));
	if (key == NULL || cert == NULL || pass == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "quickstart");
		goto out;
	}
	rc = cf_store_ca_get(cli->store, &existing, "default", err);
	if (rc == CF_OK) {
		json_object_set_new(report, "quickstart", json_string("kept the existing CAs"));
		goto out;
	}
	if (rc != CF_ENOTFOUND)
		goto out;
	rc = cf_dir_create(root_dir, 0700, err);
	if (rc != CF_OK)
		goto out;
	rc = ensure_file(pass, write_passphrase, err);
	if (rc != CF_OK)
		goto out;
	rc = cli_ca_make_root(cli, &root_spec, &root, err);
	if (rc != CF_OK)
		goto out;
	rc = cli_ca_make_intermediate(cli, &int_spec, &root, err);
	if (rc != CF_OK)
		goto out;
	json_object_set_new(report, "rootCa", json_string("root"));
	json_object_set_new(report, "rootDir", json_string(root_dir));
	json_object_set_new(report, "defaultCa", json_string("default"));
	fprintf(stderr,
		"certfleet: WARNING: the root CA key is in %s. Move that directory to offline "
		"storage: certfleet never needs it to issue device certificates.\n",
		root_dir);
out:
	cf_store_ca_clear(&existing);
	free(root_dir);
	free(key);
	free(cert);
	free(pass);
	return rc;
}

int
cli_cmd_init(cf_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quickstart", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cf_err err = CF_ERR_INIT;
	bool quick = false;
	char *conf = NULL, *pass = NULL, *sub = NULL, *policy = NULL;
	json_t *report = NULL;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'q') {
			quick = true;
		} else if (c == 'h') {
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		} else {
			return cli_usage_error(usage, "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	rc = cf_dir_create(cli->data_dir, 0700, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "init");
	conf = cf_path_join(cli->data_dir, "certfleet.conf");
	sub = cf_path_join(cli->data_dir, "secrets");
	if (conf == NULL || sub == NULL) {
		rc = cli_fail(CF_ENOMEM, NULL, "init");
		goto out;
	}
	rc = cf_dir_create(sub, 0700, &err);
	if (rc == CF_OK && access(conf, F_OK) != 0)
		rc = write_default_config(cli, conf, &err);
	if (rc != CF_OK) {
		rc = cli_fail(rc, &err, "init");
		goto out;
	}
	rc = cli_config(cli);
	if (rc != CLI_EXIT_OK)
		goto out;
	pass = cf_config_path(&cli->cfg, cli->cfg.ca_passphrase_file);
	if (pass == NULL) {
		rc = cli_fail(CF_ENOMEM, NULL, "init");
		goto out;
	}
	rc = ensure_file(pass, write_passphrase, &err);
	if (rc != CF_OK) {
		rc = cli_fail(rc, &err, "init");
		goto out;
	}
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		goto out;
	policy = cf_store_policy_device_document(cli->cfg.topic_prefix);
	rc = policy != NULL ? cf_store_policy_insert(cli->store, cli->cfg.default_policy, policy,
						     &cli->actor, &err)
			    : cf_err_set(&err, CF_ENOMEM, NULL, "policy document");
	free(policy);
	if (rc != CF_OK && rc != CF_EEXISTS) {
		rc = cli_fail(rc, &err, "default policy");
		goto out;
	}
	report = json_object();
	json_object_set_new(report, "dataDir", json_string(cli->data_dir));
	json_object_set_new(report, "config", json_string(conf));
	json_object_set_new(report, "caPassphraseFile", json_string(pass));
	json_object_set_new(report, "defaultPolicy", json_string(cli->cfg.default_policy));
	if (quick) {
		rc = quickstart(cli, report, &err);
		if (rc != CF_OK) {
			json_decref(report);
			rc = cli_fail(rc, &err, "quickstart");
			goto out;
		}
	}
	rc = cli_print(cli, report, NULL);
out:
	free(conf);
	free(pass);
	free(sub);
	return rc;
}
