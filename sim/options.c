/* certfleet-sim command lines: `provision` and `run`, durations, fractions. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

const char sim_usage[] =
	"usage: certfleet-sim provision --data-dir DIR --state-dir S --devices N\n"
	"                               [--prefix sim-] [--expires-in DUR] [--skip-existing]\n"
	"       certfleet-sim run --state-dir S --host HOST --port P --ca-file BUNDLE\n"
	"                         [--devices N] [--fault KIND[=FRACTION|=@NAME,...]]...\n"
	"                         [--until-rotated N | --duration DUR] [--timeout DUR]\n"
	"                         [--summary FILE.json] [--progress]\n"
	"\n"
	"Simulate a fleet of certfleet devices: each a libcertfleet-agent with its own\n"
	"key, certificate and mutual-TLS MQTT connection, all in one process and one\n"
	"event loop. 'certfleet-sim provision --help' and 'run --help' say more; see\n"
	"docs/sim.md.\n";

const char sim_provision_usage[] =
	"usage: certfleet-sim provision --data-dir DIR --state-dir S --devices N\n"
	"           [--prefix sim-] [--expires-in DUR] [--skip-existing]\n"
	"\n"
	"Create things PREFIX00001..PREFIXNNNNN in the registry of the certfleet data\n"
	"dir DIR (its certfleet.conf), an EC P-256 key each, and certificates issued by\n"
	"the default CA, valid for DUR (whole days: 10d, 2w; default: the data dir's\n"
	"cert_days). Each device's state goes to S/NAME/current/{key.pem,cert.pem}, the\n"
	"layout libcertfleet-agent opens. Existing things or state directories are an\n"
	"error, unless --skip-existing skips them.\n";

const char sim_run_usage[] =
	"usage: certfleet-sim run --state-dir S --host HOST --port P --ca-file BUNDLE\n"
	"           [--devices N] [--fault KIND[=FRACTION|=@NAME,...]]...\n"
	"           [--until-rotated N | --duration DUR] [--timeout DUR]\n"
	"           [--summary FILE.json] [--progress] [--topic-prefix P]\n"
	"           [--max-connecting N] [--connect-rate N] [--keepalive SECONDS]\n"
	"           [--log-level error|warn|info|debug]\n"
	"\n"
	"Run the devices of S (all, or the first N by name) against the broker at\n"
	"HOST:P with mutual TLS; BUNDLE holds the trust anchors (the broker's CA and\n"
	"the certfleet root). Stops when N devices have rotated (exit 0), when DUR has\n"
	"passed (exit 0), at --timeout (exit 1) or on SIGINT/SIGTERM (exit 3; 0 when\n"
	"there is no goal), printing a summary.\n"
	"\n"
	"Faults (fraction 0.1 or 10% of the fleet, or @NAME,NAME; default all):\n"
	"  ignore_csr_req     never answer csr_req\n"
	"  bad_csr            answer with a CSR that is not PEM (BAD_CSR)\n"
	"  weak_csr           answer with a P-192 key (WEAK_KEY)\n"
	"  reuse_key          answer with the current key (KEY_REUSE)\n"
	"  crash_before_ack   crash once after switching to the new certificate, before\n"
	"                     crt_ack; restart from disk 1-2 s later\n"
	"  crash_after_store  crash once after storing the new certificate, before using it\n"
	"  refuse_cert        answer crt with crt_err\n"
	"  offline=DUR        go offline once after the first subscribe, for DUR\n"
	"                     (offline=DUR:FRACTION, offline=DUR@NAME,...)\n"
	"DUR: 500ms, 30s, 5m, 2h, 10d.\n";

int
sim_duration_parse_ms(int64_t *out, const char *text)
{
	int64_t v;
	size_t len;

	if (text == NULL)
		return CF_EINVAL;
	len = strlen(text);
	if (len > 2 && strcmp(text + len - 2, "ms") == 0) {
		char digits[24];

		if (len - 2 >= sizeof(digits))
			return CF_EINVAL;
		memcpy(digits, text, len - 2);
		digits[len - 2] = '\0';
		if (digits[0] < '0' || digits[0] > '9' ||
		    cf_parse_int64(&v, digits, 1, INT64_MAX / 2) != CF_OK)
			return CF_EINVAL;
		*out = v;
		return CF_OK;
	}
	if (cf_duration_parse(&v, text) != CF_OK || v <= 0 || v > INT64_MAX / 2000)
		return CF_EINVAL;
	*out = v * 1000;
	return CF_OK;
}

int
sim_fraction_parse(double *out, const char *text)
{
	char *end = NULL;
	double v;

	if (text == NULL || text[0] == '\0' ||
	    !((text[0] >= '0' && text[0] <= '9') || text[0] == '.'))
		return CF_EINVAL;
	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || !isfinite(v))
		return CF_EINVAL;
	if (end[0] == '%' && end[1] == '\0')
		v /= 100.0;
	else if (end[0] != '\0')
		return CF_EINVAL;
	if (v < 0.0 || v > 1.0)
		return CF_EINVAL;
	*out = v;
	return CF_OK;
}

static bool
wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

static int
parse_long(long *out, const char *opt, const char *text, long min, long max, cf_err *err)
{
	int64_t v;

	if (cf_parse_int64(&v, text, min, max) != CF_OK)
		return cf_err_set(err, CF_EINVAL, NULL, "%s takes a whole number from %ld to %ld",
				  opt, min, max);
	*out = (long)v;
	return CF_OK;
}

/* ---- provision ------------------------------------------------------------ */

enum {
	OPT_DATA_DIR = 256,
	OPT_STATE_DIR,
	OPT_DEVICES,
	OPT_PREFIX,
	OPT_EXPIRES_IN,
	OPT_SKIP_EXISTING,
	OPT_HOST,
	OPT_PORT,
	OPT_CA_FILE,
	OPT_FAULT,
	OPT_UNTIL_ROTATED,
	OPT_DURATION,
	OPT_TIMEOUT,
	OPT_SUMMARY,
	OPT_PROGRESS,
	OPT_TOPIC_PREFIX,
	OPT_MAX_CONNECTING,
	OPT_CONNECT_RATE,
	OPT_KEEPALIVE,
	OPT_LOG_LEVEL,
};

static const struct option provision_opts[] = {
	{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "devices", required_argument, NULL, OPT_DEVICES },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "expires-in", required_argument, NULL, OPT_EXPIRES_IN },
	{ "skip-existing", no_argument, NULL, OPT_SKIP_EXISTING },
	{ NULL, 0, NULL, 0 },
};

int
sim_provision_opts_parse(sim_provision_opts *o, int argc, char **argv, cf_err *err)
{
	int64_t secs;
	long v = 0;
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->prefix = "sim-";
	if (wants_help(argc, argv))
		return 1;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", provision_opts, NULL)) != -1) {
		switch (c) {
		case OPT_DATA_DIR:
			o->data_dir = optarg;
			break;
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_PREFIX:
			o->prefix = optarg;
			break;
		case OPT_SKIP_EXISTING:
			o->skip_existing = true;
			break;
		case OPT_DEVICES:
			rc = parse_long(&v, "--devices", optarg, 1, 1000000, err);
			if (rc != CF_OK)
				return rc;
			o->devices = v;
			break;
		case OPT_EXPIRES_IN:
			if (cf_duration_parse(&secs, optarg) != CF_OK || secs % 86400 != 0 ||
			    secs / 86400 > 36500)
				return cf_err_set(err, CF_EINVAL, NULL,
						  "--expires-in takes whole days up to 100 years "
						  "(10d, 2w), not '%s'",
						  optarg);
			o->days = (int)(secs / 86400);
			break;
		default:
			return cf_err_set(err, CF_EINVAL, NULL, "option '%s' not understood",
					  argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cf_err_set(err, CF_EINVAL, NULL, "unexpected argument '%s'", argv[optind]);
	if (o->data_dir == NULL || o->state_dir == NULL || o->devices == 0)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "--data-dir, --state-dir and --devices are required");
	if (o->prefix[0] == '\0' || strlen(o->prefix) > 40)
		return cf_err_set(err, CF_EINVAL, NULL, "--prefix takes 1 to 40 characters");
	return CF_OK;
}

/* ---- run ------------------------------------------------------------------ */

static const struct option run_opts[] = {
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "devices", required_argument, NULL, OPT_DEVICES },
	{ "fault", required_argument, NULL, OPT_FAULT },
	{ "until-rotated", required_argument, NULL, OPT_UNTIL_ROTATED },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "summary", required_argument, NULL, OPT_SUMMARY },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "topic-prefix", required_argument, NULL, OPT_TOPIC_PREFIX },
	{ "max-connecting", required_argument, NULL, OPT_MAX_CONNECTING },
	{ "connect-rate", required_argument, NULL, OPT_CONNECT_RATE },
	{ "keepalive", required_argument, NULL, OPT_KEEPALIVE },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ NULL, 0, NULL, 0 },
};

static int
parse_log_level(cf_agent_log_level *out, const char *text)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(names); i++) {
		if (strcmp(text, names[i]) == 0) {
			*out = (cf_agent_log_level)i;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

static int
run_opt(sim_run_opts *o, int c, const char *arg, cf_err *err)
{
	long v = 0;
	int rc = CF_OK;

	switch (c) {
	case OPT_STATE_DIR:
		o->state_dir = arg;
		break;
	case OPT_HOST:
		o->host = arg;
		break;
	case OPT_CA_FILE:
		o->ca_file = arg;
		break;
	case OPT_SUMMARY:
		o->summary_path = arg;
		break;
	case OPT_PROGRESS:
		o->progress = true;
		break;
	case OPT_TOPIC_PREFIX:
		o->topic_prefix = arg;
		break;
	case OPT_PORT:
		rc = parse_long(&v, "--port", arg, 1, 65535, err);
		o->port = (int)v;
		break;
	case OPT_DEVICES:
		rc = parse_long(&o->devices, "--devices", arg, 1, 1000000, err);
		break;
	case OPT_UNTIL_ROTATED:
		rc = parse_long(&o->until_rotated, "--until-rotated", arg, 1, 1000000, err);
		break;
	case OPT_MAX_CONNECTING:
		rc = parse_long(&v, "--max-connecting", arg, 1, 10000, err);
		o->max_connecting = (int)v;
		break;
	case OPT_CONNECT_RATE:
		rc = parse_long(&v, "--connect-rate", arg, 1, 1000000, err);
		o->connect_rate = (int)v;
		break;
	case OPT_KEEPALIVE:
		rc = parse_long(&v, "--keepalive", arg, 5, 65535, err);
		o->keepalive = (int)v;
		break;
	case OPT_DURATION:
		if (sim_duration_parse_ms(&o->duration_ms, arg) != CF_OK)
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"--duration takes a duration such as "
					"90s or 5m, not '%s'",
					arg);
		break;
	case OPT_TIMEOUT:
		if (sim_duration_parse_ms(&o->timeout_ms, arg) != CF_OK)
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"--timeout takes a duration such as "
					"90s or 5m, not '%s'",
					arg);
		break;
	case OPT_LOG_LEVEL:
		if (parse_log_level(&o->log_level, arg) != CF_OK)
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"--log-level takes error, warn, info or debug");
		break;
	case OPT_FAULT:
		if (o->nfaults == SIM_MAX_FAULTS)
			return cf_err_set(err, CF_EINVAL, NULL, "at most %d --fault options",
					  SIM_MAX_FAULTS);
		rc = sim_fault_parse(&o->faults[o->nfaults], arg, err);
		if (rc == CF_OK)
			o->nfaults++;
		break;
	default:
		rc = cf_err_set(err, CF_EINVAL, NULL, "option not understood");
		break;
	}
	return rc;
}

int
sim_run_opts_parse(sim_run_opts *o, int argc, char **argv, cf_err *err)
{
	double sum = 0;
	size_t i;
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->topic_prefix = CF_AGENT_DEFAULT_PREFIX;
	o->max_connecting = 64;
	o->connect_rate = 1000;
	o->keepalive = 60;
	o->log_level = CF_AGENT_LOG_ERR;
	if (wants_help(argc, argv))
		return 1;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", run_opts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return cf_err_set(err, CF_EINVAL, NULL,
					  "option '%s' not understood or "
					  "missing its value",
					  argv[optind - 1]);
		rc = run_opt(o, c, optarg, err);
		if (rc != CF_OK)
			return rc;
	}
	if (optind != argc)
		return cf_err_set(err, CF_EINVAL, NULL, "unexpected argument '%s'", argv[optind]);
	if (o->state_dir == NULL || o->host == NULL || o->port == 0 || o->ca_file == NULL)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "--state-dir, --host, --port and --ca-file are required");
	if (o->until_rotated > 0 && o->duration_ms > 0)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "--until-rotated and --duration exclude each other");
	if (o->devices > 0 && o->until_rotated > o->devices)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "--until-rotated %ld is more than "
				  "--devices %ld",
				  o->until_rotated, o->devices);
	for (i = 0; i < o->nfaults; i++)
		if (o->faults[i].names == NULL)
			sum += o->faults[i].fraction;
	if (sum > 1.0 + 1e-9)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "the --fault fractions add up to %.3g, more than the fleet", sum);
	return CF_OK;
}

void
sim_run_opts_clear(sim_run_opts *o)
{
	size_t i;

	for (i = 0; i < o->nfaults; i++)
		sim_fault_clear(&o->faults[i]);
	o->nfaults = 0;
}
