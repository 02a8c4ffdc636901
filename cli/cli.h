/*
 * The certfleet command: shared state of one invocation, output, exit codes.
 */
#ifndef CF_CLI_H
#define CF_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "authority/authority.h"
#include "daemon/config.h"
#include "pki/pki.h"
#include "rotation/rotation.h"
#include "store/store.h"
#include "util/util.h"

/* Exit codes, listed in docs/cli.md. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILURE = 1,  /* anything not below */
	CLI_EXIT_USAGE = 2,    /* bad command line */
	CLI_EXIT_NOTFOUND = 3, /* no such thing, certificate, CA, policy, file */
	CLI_EXIT_EXISTS = 4,   /* the name is taken */
	CLI_EXIT_STATE = 5,    /* refused in the current state (status transition, ...) */
	CLI_EXIT_INPUT = 6,    /* bad input: CSR, PEM, JSON, config (with a reason code) */
	CLI_EXIT_CRYPTO = 7,   /* a key does not decrypt, OpenSSL failed */
	CLI_EXIT_STORE = 8,    /* registry or file system error, busy */
	CLI_EXIT_INTEGRITY = 9 /* the event log chain is broken */
};

typedef struct cf_cli {
	const char *data_dir; /* absolute */
	bool json;            /* --output json */
	bool config_loaded;
	cf_config cfg;
	cf_store *store; /* opened on first use by cli_store() */
	char who[96];    /* actor written into events: "cli:<user>" */
	cf_store_actor actor;
} cf_cli;

/* One verb of a noun: name, handler, one-line summary. */
typedef struct cli_verb {
	const char *name;
	int (*run)(cf_cli *cli, int argc, char **argv);
	const char *summary;
} cli_verb;

/* Run the verb named argv[0] from verbs, or print the noun's help. */
int cli_dispatch(cf_cli *cli, const char *noun, const cli_verb *verbs, int argc, char **argv);

/* Load DIR/certfleet.conf once. Returns an exit code (CLI_EXIT_OK on success). */
int cli_config(cf_cli *cli);

/* Open the registry once (loading the config). Returns an exit code. */
int cli_store(cf_cli *cli);

/* Map a CF_E* code to an exit code. */
int cli_exit_code(int rc);

/* Print "certfleet: <what>: <err->msg> [reason]" and return the exit code for rc. */
int cli_fail(int rc, const cf_err *err, const char *what);

/* Print a usage error and the verb's usage text; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) CF_PRINTF(2, 3);

/* True when argv holds -h or --help; then usage was printed. */
bool cli_wants_help(int argc, char **argv, const char *usage);

/*
 * getopt_long() over a verb's options, limited to allowed (0-terminated:
 * the codes this verb takes). The next option, -1 at the end, or '?' for
 * an option not taken here (the usage error is printed: return
 * CLI_EXIT_USAGE). Set optind = 0 before the first call.
 */
int cli_getopt(int argc, char **argv, const struct option *opts, const int *allowed,
	       const char *usage);

/*
 * Print value (stolen) as JSON, or as a table: an array of objects prints
 * the listed columns (NULL-terminated) with a header; an object prints
 * "key: value" lines.
 */
int cli_print(cf_cli *cli, json_t *value, const char *const *columns);

/* Time as an ISO 8601 JSON string (null for 0). */
json_t *cli_json_time(int64_t t);

/* The record converters shared by several commands. */
json_t *cli_cert_json(const cf_store_cert *cert, bool with_pem);
json_t *cli_ca_json(const cf_store_ca *ca, bool with_pem);

/* Read a file given on the command line, at most max bytes; "-" is standard input. */
int cli_read_file(char **out, size_t *len, const char *path, size_t max, cf_err *err);

/* What a new CA looks like; shared by `ca` and `init --quickstart`. */
typedef struct cli_ca_spec {
	const char *name;
	const char *common_name; /* NULL: derived from name */
	const char *organization;
	const char *key_type; /* NULL: EC-P256 (intermediate), EC-P384 (root) */
	int days;
	bool make_default; /* intermediates: become the default issuer (also when none is) */
} cli_ca_spec;

/* Where the offline root's files are. */
typedef struct cli_root_files {
	const char *key;       /* encrypted PKCS#8 PEM */
	const char *cert;      /* PEM */
	const char *pass_file; /* passphrase, mode 0600 */
} cli_root_files;

/* Create a root CA key and certificate in root's files and register the certificate. */
int cli_ca_make_root(cf_cli *cli, const cli_ca_spec *spec, const cli_root_files *root,
		     cf_err *err);

/* Create an intermediate signed by root, its key in DIR/ca/, and register it. */
int cli_ca_make_intermediate(cf_cli *cli, const cli_ca_spec *spec, const cli_root_files *root,
			     cf_err *err);

/* The registered CA whose key signed cert (name freed with free()), or NULL when none. */
int cli_find_issuer(cf_cli *cli, char **out, X509 *cert, cf_err *err);

/* An authority over the registry, configured from certfleet.conf. Free with cf_authority_free(). */
int cli_authority_open(cf_cli *cli, cf_authority **out, cf_err *err);

/*
 * The rotation engine's config from certfleet.conf (topic_prefix and the
 * rotation_* keys), its actor the CLI's user. Strings are borrowed from
 * cli: cfg lives as long as cli.
 */
void cli_rotation_config(cf_cli *cli, cf_rotation_config *cfg);

/* A key type name for a certificate: "EC-P256", or "RSA-1024" for one outside the list. */
void cli_key_label(char *buf, size_t len, const cf_pki_cert_info *info);

int cli_cmd_init(cf_cli *cli, int argc, char **argv);
int cli_cmd_ca(cf_cli *cli, int argc, char **argv);
int cli_cmd_thing(cf_cli *cli, int argc, char **argv);
int cli_cmd_cert(cf_cli *cli, int argc, char **argv);
int cli_cmd_policy(cf_cli *cli, int argc, char **argv);
int cli_cmd_events(cf_cli *cli, int argc, char **argv);
int cli_cmd_rotate(cf_cli *cli, int argc, char **argv);
int cli_cmd_service(cf_cli *cli, int argc, char **argv);
int cli_cmd_connections(cf_cli *cli, int argc, char **argv);
int cli_cmd_audit(cf_cli *cli, int argc, char **argv);


#endif
