/* certfleetd: the certfleet daemon (rotation over MQTT). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mosquitto.h>
#include <openssl/crypto.h>

#include "daemon/config.h"
#include "daemon/daemon.h"

#define DEFAULT_DATA_DIR "/var/lib/certfleet"
/* How long a stop waits for the broker to acknowledge what is in flight. */
#define DRAIN_MS 5000

static const char usage[] =
	"usage: certfleetd [--data-dir DIR] [--log-file FILE] [--check-config | --dump-config]\n"
	"\n"
	"Run the certificate rotation service: connect to the MQTT broker as the service\n"
	"principal (mutual TLS), answer devices' csr_res, crt_ack and crt_err, re-send\n"
	"csr_req on its timer, time rotations out, and publish the registry's outbox.\n"
	"Settings come from DIR/certfleet.conf (docs/config.md); logs go to stderr.\n"
	"\n"
	"  --data-dir DIR   data directory (default $CERTFLEET_DATA_DIR, else " DEFAULT_DATA_DIR ")\n"
	"  --log-file FILE  append log lines to FILE instead of stderr\n"
	"  --check-config   check the config, the TLS files, the registry and the CA\n"
	"                   passphrase, then exit (0: ok, 6: bad config)\n"
	"  --dump-config    print the effective configuration and exit\n"
	"  --version        print the version\n"
	"  -h, --help       this help\n"
	"\n"
	"Signals: SIGTERM or SIGINT stop after the broker acknowledged what is in flight\n"
	"(at most 5 s); SIGHUP re-reads the config (a bad file is logged and ignored).\n"
	"Exit codes: 0 stopped cleanly, 1 failure, 2 usage, 6 bad config, 8 registry or\n"
	"file error.\n";

enum { EXIT_USAGE = 2, EXIT_CONFIG = 6, EXIT_STORE = 8 };

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reload_flag;

static void
on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
on_reload(int sig)
{
	(void)sig;
	reload_flag = 1;
}

static void
signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reload;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

static int
exit_code(int rc)
{
	switch (rc) {
	case CF_EINVAL:
	case CF_ENOTFOUND:
		return EXIT_CONFIG;
	case CF_ESTORE:
	case CF_EIO:
		return EXIT_STORE;
	default:
		return EXIT_FAILURE;
	}
}

static int
log_file_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0) {
		fprintf(stderr, "certfleetd: cannot open the log file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	setvbuf(stderr, NULL, _IOLBF, 0);
	return 0;
}

struct options {
	const char *data_dir;
	const char *log_file;
	bool check, dump;
};

/* 0 to go on, else the exit code. */
static int
options_parse(struct options *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-file", required_argument, NULL, 'l' },
		{ "check-config", no_argument, NULL, 'c' },
		{ "dump-config", no_argument, NULL, 'D' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->data_dir = getenv("CERTFLEET_DATA_DIR");
	if (o->data_dir == NULL || o->data_dir[0] == '\0')
		o->data_dir = DEFAULT_DATA_DIR;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->data_dir = optarg;
			break;
		case 'l':
			o->log_file = optarg;
			break;
		case 'c':
			o->check = true;
			break;
		case 'D':
			o->dump = true;
			break;
		case 'V':
			printf("certfleetd %s\n", CF_VERSION);
			return -1;
		case 'h':
			fputs(usage, stdout);
			return -1;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "certfleetd: unexpected argument '%s'\n%s", argv[optind], usage);
		return EXIT_USAGE;
	}
	if (o->check && o->dump) {
		fprintf(stderr, "certfleetd: --check-config and --dump-config exclude each other\n");
		return EXIT_USAGE;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct options o = { NULL, NULL, false, false };
	cf_err err = CF_ERR_INIT;
	char dir[PATH_MAX], *conf_path = NULL;
	cf_daemon *d = NULL;
	cf_config cfg;
	int rc;

	/* This process decrypts CA keys: no core dump may hold them. */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	CRYPTO_secure_malloc_init(64 * 1024, 64);
	rc = options_parse(&o, argc, argv);
	if (rc != 0)
		return rc < 0 ? EXIT_SUCCESS : rc;
	if (o.log_file != NULL && log_file_open(o.log_file) != 0)
		return EXIT_FAILURE;
	if (realpath(o.data_dir, dir) == NULL) {
		fprintf(stderr, "certfleetd: data dir %s: %s\n", o.data_dir, strerror(errno));
		return EXIT_CONFIG;
	}
	conf_path = cf_path_join(dir, "certfleet.conf");
	if (conf_path == NULL || cf_config_init(&cfg, dir, &err) != CF_OK) {
		fprintf(stderr, "certfleetd: out of memory\n");
		free(conf_path);
		return EXIT_FAILURE;
	}
	rc = cf_config_load(&cfg, conf_path, &err);
	if (rc != CF_OK) {
		fprintf(stderr, "certfleetd: config: %s\n", err.msg);
		cf_config_clear(&cfg);
		free(conf_path);
		return EXIT_CONFIG;
	}
	if (o.dump) {
		cf_config_dump(&cfg, stdout);
		cf_config_clear(&cfg);
		free(conf_path);
		return EXIT_SUCCESS;
	}
	mosquitto_lib_init();
	signals_install();
	rc = cf_daemon_new(&d, &cfg, &err);
	cf_config_clear(&cfg);
	if (rc != CF_OK) {
		cf_log_error_err(&err, "event=start_failed code=%s", cf_strerror(rc));
		rc = exit_code(rc);
	} else if (o.check) {
		printf("certfleetd: %s: configuration ok\n", conf_path);
		rc = EXIT_SUCCESS;
	} else {
		rc = cf_daemon_run(d, conf_path, &stop_flag, &reload_flag, DRAIN_MS, &err);
		rc = rc == CF_OK ? EXIT_SUCCESS : EXIT_FAILURE;
		cf_log_info("event=stopped exit=%d", rc);
	}
	cf_daemon_free(d);
	mosquitto_lib_cleanup();
	free(conf_path);
	return rc;
}
