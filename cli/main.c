/* certfleet: the operator's command line. */
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

#define DEFAULT_DATA_DIR "/var/lib/certfleet"

static const char usage[] =
	"usage: certfleet [--data-dir DIR] [--output table|json] <noun> <verb> [options]\n"
	"\n"
	"nouns:\n"
	"  init         create a data dir, its config and registry (--quickstart: and a CA)\n"
	"  ca           root and intermediate CAs, bring-your-own-CA registration\n"
	"  thing        devices known to the registry\n"
	"  cert         issue, register, list, activate, deactivate, revoke certificates\n"
	"  policy       MQTT policies attached to certificates\n"
	"  events       the hash-chained event log\n"
	"  rotate       certificate rotations over MQTT: start, list, describe, cancel\n"
	"  service      service principals (certfleetd's own broker identity)\n"
	"  connections  MQTT connections the broker accepted and refused\n"
	"  audit        fleet audit checks: run, list, describe, findings, suppress\n"
	"\n"
	"global options:\n"
	"  --data-dir DIR   data directory (default $CERTFLEET_DATA_DIR, else " DEFAULT_DATA_DIR ")\n"
	"  --output FORMAT  table (default) or json\n"
	"  --version        print the version\n"
	"  -h, --help       this help; 'certfleet <noun> --help' for a noun\n"
	"\n"
	"Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 exists, 5 refused in this state,\n"
	"6 bad input, 7 crypto, 8 registry or file error, 9 event log integrity (docs/cli.md).\n";

static const cli_verb nouns[] = {
	{ "init", cli_cmd_init, NULL },     { "ca", cli_cmd_ca, NULL },
	{ "thing", cli_cmd_thing, NULL },   { "cert", cli_cmd_cert, NULL },
	{ "policy", cli_cmd_policy, NULL }, { "events", cli_cmd_events, NULL },
	{ "rotate", cli_cmd_rotate, NULL }, { "service", cli_cmd_service, NULL },
	{ "connections", cli_cmd_connections, NULL }, { "audit", cli_cmd_audit, NULL },
};

static void
set_actor(cf_cli *cli)
{
	struct passwd *pw = getpwuid(geteuid());

	snprintf(cli->who, sizeof(cli->who), "cli:%s", pw != NULL ? pw->pw_name : "unknown");
	cli->actor.who = cli->who;
	cli->actor.why = NULL;
}

/* The data dir as an absolute path, so that config paths resolve anywhere. */
static char *
absolute_dir(const char *dir)
{
	char cwd[PATH_MAX];

	if (dir[0] == '/')
		return strdup(dir);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	return cf_path_join(cwd, dir);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cf_cli cli;
	const char *dir = getenv("CERTFLEET_DATA_DIR");
	char *abs = NULL;
	size_t i;
	int c, rc = CLI_EXIT_USAGE;

	memset(&cli, 0, sizeof(cli));
	/*
	 * This process decrypts CA keys: no core dump may hold them. Passphrases
	 * live in the secure heap when it can be had, else the normal one.
	 */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	CRYPTO_secure_malloc_init(64 * 1024, 64);
	if (dir == NULL || dir[0] == '\0')
		dir = DEFAULT_DATA_DIR;
	/* '+': stop at the noun; the verb parses its own options. */
	while ((c = getopt_long(argc, argv, "+ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
				return cli_usage_error(usage, "--output is table or json");
			cli.json = strcmp(optarg, "json") == 0;
			break;
		case 'V':
			printf("certfleet %s\n", CF_VERSION);
			return CLI_EXIT_OK;
		case 'h':
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(usage, "a noun is required");
	abs = absolute_dir(dir);
	if (abs == NULL) {
		fprintf(stderr, "certfleet: cannot resolve the data dir %s\n", dir);
		return CLI_EXIT_FAILURE;
	}
	cli.data_dir = abs;
	set_actor(&cli);
	for (i = 0; i < CF_ARRAY_LEN(nouns); i++) {
		if (strcmp(argv[optind], nouns[i].name) == 0) {
			rc = nouns[i].run(&cli, argc - optind, argv + optind);
			break;
		}
	}
	if (i == CF_ARRAY_LEN(nouns))
		rc = cli_usage_error(usage, "unknown noun '%s'", argv[optind]);
	cf_store_close(cli.store);
	if (cli.config_loaded)
		cf_config_clear(&cli.cfg);
	free(abs);
	CRYPTO_secure_malloc_done();
	return rc;
}
