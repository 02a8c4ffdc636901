/* What every command shares: config, registry, errors and output. */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include "daemon/wiring.h"
#include "pki/pki.h"

int
cli_exit_code(int rc)
{
	switch (rc) {
	case CF_OK:
		return CLI_EXIT_OK;
	case CF_ENOTFOUND:
		return CLI_EXIT_NOTFOUND;
	case CF_EEXISTS:
		return CLI_EXIT_EXISTS;
	case CF_ESTATE:
		return CLI_EXIT_STATE;
	case CF_EINVAL:
	case CF_EPROTO:
		return CLI_EXIT_INPUT;
	case CF_ECRYPTO:
		return CLI_EXIT_CRYPTO;
	case CF_ESTORE:
	case CF_EIO:
	case CF_EBUSY:
		return CLI_EXIT_STORE;
	case CF_EINTEGRITY:
		return CLI_EXIT_INTEGRITY;
	default:
		return CLI_EXIT_FAILURE;
	}
}

int
cli_fail(int rc, const cf_err *err, const char *what)
{
	const char *msg = err != NULL && err->msg[0] != '\0' ? err->msg : cf_strerror(rc);

	if (err != NULL && err->reason != NULL)
		fprintf(stderr, "certfleet: %s: %s [%s]\n", what, msg, err->reason);
	else
		fprintf(stderr, "certfleet: %s: %s\n", what, msg);
	return cli_exit_code(rc);
}

int
cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("certfleet: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	fputs(usage, stderr);
	return CLI_EXIT_USAGE;
}

bool
cli_wants_help(int argc, char **argv, const char *usage)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return true;
		}
	}
	return false;
}

static void
noun_help(FILE *fp, const char *noun, const cli_verb *verbs)
{
	size_t i;

	fprintf(fp, "usage: certfleet %s <verb> [options]\n\nverbs:\n", noun);
	for (i = 0; verbs[i].name != NULL; i++)
		fprintf(fp, "  %-20s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(fp, "\n'certfleet %s <verb> --help' shows a verb's options.\n", noun);
}

int
cli_dispatch(cf_cli *cli, const char *noun, const cli_verb *verbs, int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		fprintf(stderr, "certfleet: %s needs a verb\n\n", noun);
		noun_help(stderr, noun, verbs);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		noun_help(stdout, noun, verbs);
		return CLI_EXIT_OK;
	}
	for (i = 0; verbs[i].name != NULL; i++) {
		if (strcmp(argv[1], verbs[i].name) == 0) {
			optind = 0; /* glibc: fully reinitialise getopt for the verb */
			return verbs[i].run(cli, argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "certfleet: unknown verb '%s %s'\n\n", noun, argv[1]);
	noun_help(stderr, noun, verbs);
	return CLI_EXIT_USAGE;
}

int
cli_config(cf_cli *cli)
{
	cf_err err = CF_ERR_INIT;
	char *path = NULL;
	cf_log_level level;
	int rc;

	if (cli->config_loaded)
		return CLI_EXIT_OK;
	rc = cf_config_init(&cli->cfg, cli->data_dir, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "config");
	cli->config_loaded = true;
	path = cf_path_join(cli->data_dir, "certfleet.conf");
	if (path == NULL)
		return cli_fail(CF_ENOMEM, NULL, "config");
	rc = cf_config_load(&cli->cfg, path, &err);
	free(path);
	if (rc == CF_ENOTFOUND) {
		fprintf(stderr, "certfleet: %s is not a certfleet data dir (run 'certfleet "
				"--data-dir %s init' first)\n",
			cli->data_dir, cli->data_dir);
		return CLI_EXIT_NOTFOUND;
	}
	if (rc != CF_OK)
		return cli_fail(rc, &err, "config");
	if (cf_log_level_parse(&level, cli->cfg.log_level) == CF_OK)
		cf_log_set_level(level);
	return CLI_EXIT_OK;
}

int
cli_getopt(int argc, char **argv, const struct option *opts, const int *allowed, const char *usage)
{
	int c = getopt_long(argc, argv, "", opts, NULL);
	size_t i;

	if (c == -1)
		return -1;
	for (i = 0; allowed[i] != 0 && allowed[i] != c; i++)
		;
	if (c == '?' || allowed[i] == 0) {
		(void)cli_usage_error(usage, "option not understood here");
		return '?';
	}
	return c;
}

int
cli_store(cf_cli *cli)
{
	cf_err err = CF_ERR_INIT;
	int rc;

	if (cli->store != NULL)
		return CLI_EXIT_OK;
	rc = cli_config(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_daemon_store_open(&cli->store, &cli->cfg, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "registry");
	return CLI_EXIT_OK;
}

int
cli_authority_open(cf_cli *cli, cf_authority **out, cf_err *err)
{
	*out = NULL;
	return cf_daemon_authority_open(out, cli->store, &cli->cfg, err);
}

int
cli_read_file(char **out, size_t *len, const char *path, size_t max, cf_err *err)
{
	/* "-" is standard input: certfleet cert issue --csr - < device.csr */
	return cf_file_read(out, len, strcmp(path, "-") == 0 ? "/dev/stdin" : path, max, err);
}

json_t *
cli_json_time(int64_t t)
{
	char buf[CF_TIME_BUF];

	if (t == 0)
		return json_null();
	return json_string(cf_time_format(buf, t));
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
cli_cert_json(const cf_store_cert *c, bool with_pem)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "certificateId", json_string(c->id));
	json_object_set_new(o, "status", json_string(cf_cert_status_name(c->status)));
	json_object_set_new(o, "thing", str_or_null(c->thing));
	json_object_set_new(o, "ca", str_or_null(c->ca));
	json_object_set_new(o, "serial", str_or_null(c->serial));
	json_object_set_new(o, "notBefore", cli_json_time(c->not_before));
	json_object_set_new(o, "notAfter", cli_json_time(c->not_after));
	json_object_set_new(o, "keyType", str_or_null(c->key_type));
	json_object_set_new(o, "keyBits", json_integer(c->key_bits));
	json_object_set_new(o, "signatureAlgorithm", str_or_null(c->sig_alg));
	json_object_set_new(o, "publicKeySha256", str_or_null(c->spki_sha256));
	json_object_set_new(o, "createdAt", cli_json_time(c->created_at));
	json_object_set_new(o, "updatedAt", cli_json_time(c->updated_at));
	if (c->status == CF_CERT_REVOKED) {
		json_object_set_new(o, "revocationReason", str_or_null(c->revoke_reason));
		json_object_set_new(o, "revokedAt", cli_json_time(c->revoked_at));
	}
	if (c->deleted_at != 0) /* history only: no longer in the active registry */
		json_object_set_new(o, "deletedAt", cli_json_time(c->deleted_at));
	if (with_pem)
		json_object_set_new(o, "certificatePem", str_or_null(c->pem));
	return o;
}

json_t *
cli_ca_json(const cf_store_ca *ca, bool with_pem)
{
	json_t *o = json_object();
	/* An external CA says so even when it is a root: its key is not ours. */
	const char *kind = ca->external ? "external" : (ca->is_root ? "root" : "intermediate");

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "name", json_string(ca->name));
	json_object_set_new(o, "status", json_string(cf_ca_status_name(ca->status)));
	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "default", json_boolean(ca->is_default));
	json_object_set_new(o, "selfSigned", json_boolean(ca->is_root));
	json_object_set_new(o, "parent", str_or_null(ca->parent));
	json_object_set_new(o, "subject", str_or_null(ca->subject));
	json_object_set_new(o, "certificateId", str_or_null(ca->cert_id));
	json_object_set_new(o, "keyType", str_or_null(ca->key_type));
	json_object_set_new(o, "keyFile", str_or_null(ca->key_ref));
	json_object_set_new(o, "notBefore", cli_json_time(ca->not_before));
	json_object_set_new(o, "notAfter", cli_json_time(ca->not_after));
	json_object_set_new(o, "createdAt", cli_json_time(ca->created_at));
	if (ca->status == CF_CA_REVOKED)
		json_object_set_new(o, "revocationReason", str_or_null(ca->revoke_reason));
	if (with_pem)
		json_object_set_new(o, "certificatePem", str_or_null(ca->cert_pem));
	return o;
}

/*
 * s with control characters written as \xNN, so that text a device sent
 * (a crt_err message) cannot move the cursor, forge a row or colour the
 * operator's terminal. Newlines are kept when keep_newlines (PEM blocks).
 */
static char *
terminal_safe(const char *s, bool keep_newlines)
{
	size_t i, o = 0, len = strlen(s);
	char *out = malloc(len * 4 + 1);

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && !(keep_newlines && c == '\n')) || c == 0x7f)
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

/* Text of one JSON scalar for a table cell: strings bare but safe, null as "-". */
static char *
cell_text(json_t *v, bool keep_newlines)
{
	if (v == NULL || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return terminal_safe(json_string_value(v), keep_newlines);
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* One cell, padded to width except in the last column. */
static void
print_cell(const char *text, size_t width, bool last)
{
	if (last)
		printf("%s\n", text);
	else
		printf("%-*s  ", (int)width, text);
}

static void
print_table(json_t *rows, const char *const *columns)
{
	size_t ncol = 0, c, r, width[32] = { 0 };
	json_t *row;
	char *text;

	while (columns[ncol] != NULL && ncol < CF_ARRAY_LEN(width))
		ncol++;
	for (c = 0; c < ncol; c++)
		width[c] = strlen(columns[c]);
	json_array_foreach (rows, r, row) {
		for (c = 0; c < ncol; c++) {
			text = cell_text(json_object_get(row, columns[c]), false);
			if (text != NULL && strlen(text) > width[c])
				width[c] = strlen(text);
			free(text);
		}
	}
	for (c = 0; c < ncol; c++)
		print_cell(columns[c], width[c], c + 1 == ncol);
	json_array_foreach (rows, r, row) {
		for (c = 0; c < ncol; c++) {
			text = cell_text(json_object_get(row, columns[c]), false);
			print_cell(text != NULL ? text : "?", width[c], c + 1 == ncol);
			free(text);
		}
	}
}

static void
print_object(json_t *obj)
{
	const char *key;
	json_t *v;
	char *text;

	json_object_foreach (obj, key, v) {
		text = cell_text(v, true);
		if (text != NULL && strchr(text, '\n') != NULL)
			printf("%s:\n%s", key, text);
		else
			printf("%-20s %s\n", key, text != NULL ? text : "?");
		free(text);
	}
}

int
cli_print(cf_cli *cli, json_t *value, const char *const *columns)
{
	char *text;

	if (value == NULL)
		return cli_fail(CF_ENOMEM, NULL, "output");
	if (cli->json) {
		text = json_dumps(value, JSON_INDENT(2) | JSON_ENCODE_ANY);
		if (text == NULL) {
			json_decref(value);
			return cli_fail(CF_ENOMEM, NULL, "output");
		}
		puts(text);
		free(text);
	} else if (json_is_array(value) && columns != NULL) {
		print_table(value, columns);
	} else if (json_is_object(value)) {
		print_object(value);
	} else {
		text = cell_text(value, true);
		puts(text != NULL ? text : "?");
		free(text);
	}
	json_decref(value);
	return CLI_EXIT_OK;
}

void
cli_key_label(char *buf, size_t len, const cf_pki_cert_info *info)
{
	if (info->key_type != CF_KEY_UNKNOWN)
		snprintf(buf, len, "%s", cf_pki_key_type_name(info->key_type));
	else if (info->key_curve[0] != '\0')
		snprintf(buf, len, "%s-%s", info->key_alg, info->key_curve);
	else
		snprintf(buf, len, "%s-%d", info->key_alg, info->key_bits);
}
