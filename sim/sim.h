/*
 * certfleet-sim internals, shared by the files of sim/ and by its unit
 * tests (tests/unit/sim), which link everything but main.c.
 *
 *   options.c    command lines of `provision` and `run`, durations, usage texts
 *   faults.c     fault specs, their deterministic assignment to devices, and
 *                the few answers the sim makes itself (bad/weak CSR, crt_err)
 *   provision.c  things, keys and certificates straight into a data dir
 *   device.c     one virtual device: a cf_agent driven through the step API
 *                plus its own libmosquitto client
 *   loop.c       the one event loop (epoll) over all devices
 *   report.c     counters, the progress line, the summary table and JSON
 *   main.c       the program: subcommands, signals, exit codes
 * fleet.h is private to device.c and loop.c (the device and loop structs).
 */
#ifndef CF_SIM_H
#define CF_SIM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certfleet/agent.h"
#include "util/util.h"

/* Exit codes of certfleet-sim (docs/sim.md). */
enum {
	SIM_EXIT_OK = 0,         /* the goal was reached (or provisioning succeeded) */
	SIM_EXIT_FAIL = 1,       /* --timeout passed first, or something failed */
	SIM_EXIT_USAGE = 2,      /* bad command line */
	SIM_EXIT_INTERRUPTED = 3 /* SIGINT/SIGTERM before the goal */
};

/* ---- durations and numbers (options.c) ----------------------------------- */

/*
 * Parse a duration into milliseconds: "500ms", or a positive integer with
 * s, m, h, d or w as for cf_duration_parse(). CF_EINVAL otherwise (no
 * unit, zero, sign, overflow, trailing text).
 */
int sim_duration_parse_ms(int64_t *out, const char *text);

/* Parse a fraction "0.25", "1", "0" or a percentage "25%" into [0, 1]. CF_EINVAL otherwise. */
int sim_fraction_parse(double *out, const char *text);

/* ---- faults (faults.c) ---------------------------------------------------- */

typedef enum {
	SIM_FAULT_IGNORE_CSR_REQ = 0, /* csr_req dropped */
	SIM_FAULT_BAD_CSR,            /* csr_res with a CSR that is not PEM (BAD_CSR) */
	SIM_FAULT_WEAK_CSR,           /* csr_res with a P-192 key (WEAK_KEY) */
	SIM_FAULT_REUSE_KEY,          /* the agent is told rekey=false (KEY_REUSE) */
	SIM_FAULT_CRASH_BEFORE_ACK,   /* crash after the promotion, before crt_ack */
	SIM_FAULT_CRASH_AFTER_STORE,  /* crash after crt was stored, before the reconnect */
	SIM_FAULT_REFUSE_CERT,        /* crt answered with crt_err */
	SIM_FAULT_OFFLINE,            /* after the first subscribe, offline for a while */
	SIM_FAULT_COUNT
} sim_fault_kind;

/* "ignore_csr_req", ... Never NULL for a valid kind. */
const char *sim_fault_name(sim_fault_kind kind);

/* One --fault option. */
typedef struct sim_fault {
	sim_fault_kind kind;
	double fraction; /* share of the fleet when names is NULL */
	char **names;    /* explicit devices, or NULL */
	size_t nnames;
	int64_t offline_ms; /* SIM_FAULT_OFFLINE only */
} sim_fault;

/*
 * Parse KIND[=FRACTION|=@NAME,NAME...]; offline takes its duration first:
 * offline=DUR[:FRACTION|:@NAME,...] (or offline=DUR@NAME,...). Without a
 * selection the fault applies to the whole fleet (fraction 1). CF_EINVAL
 * with a message; release with sim_fault_clear().
 */
int sim_fault_parse(sim_fault *out, const char *text, cf_err *err);
void sim_fault_clear(sim_fault *fault);

/* What one device got: a bit per sim_fault_kind, and the offline time. */
typedef struct sim_fault_set {
	uint32_t mask;
	int64_t offline_ms;
} sim_fault_set;

#define SIM_HAS(set, kind) (((set).mask >> (kind)) & 1u)

/*
 * Give faults to the n devices names[] (out[i] for names[i]). Fractions
 * take exact, disjoint shares (round(fraction * n) devices each), in the
 * order of the options, from one fixed pseudo-random ordering of the
 * device names (a hash of the name): the same command line picks the same
 * devices on every run. Named devices get their faults on top. CF_EINVAL
 * when the fractions add up to more than 1 or a name is not in the run.
 */
int sim_faults_assign(sim_fault_set *out, const char *const *names, size_t n,
		      const sim_fault *faults, size_t nfaults, cf_err *err);

/* A stable 64-bit hash of a device name (FNV-1a, then mixed). */
uint64_t sim_name_hash(const char *name);

/*
 * The payloads the sim sends itself for a device (faults the agent cannot
 * express), as JSON text freed with free(). request is the incoming
 * csr_req/crt payload, for its rotationId. NULL on failure.
 */
char *sim_fault_bad_csr_res(const char *request, size_t len);
char *sim_fault_weak_csr_res(const char *request, size_t len, const char *name);
char *sim_fault_refuse_crt(const char *request, size_t len);
/* The csr_req payload with "rekey": false added (reuse_key). */
char *sim_fault_reuse_key_req(const char *request, size_t len);

/* ---- options (options.c) -------------------------------------------------- */

#define SIM_MAX_FAULTS 16

typedef struct sim_provision_opts {
	const char *data_dir;
	const char *state_dir;
	const char *prefix; /* "sim-" */
	long devices;
	int days; /* certificate validity; 0: the data dir's cert_days */
	bool skip_existing;
} sim_provision_opts;

typedef struct sim_run_opts {
	const char *state_dir;
	const char *host;
	int port;
	const char *ca_file;
	const char *topic_prefix; /* CF_AGENT_DEFAULT_PREFIX */
	long devices;             /* 0: every device in state_dir */
	sim_fault faults[SIM_MAX_FAULTS];
	size_t nfaults;
	long until_rotated;       /* 0: no such goal */
	int64_t duration_ms;      /* 0: no such goal */
	int64_t timeout_ms;       /* 0: none */
	const char *summary_path; /* NULL: no JSON file */
	bool progress;
	int max_connecting; /* handshakes in flight at once */
	int connect_rate;   /* new connections per second */
	int keepalive;      /* seconds */
	cf_agent_log_level log_level;
	const volatile sig_atomic_t *stop; /* set from a signal handler */
} sim_run_opts;

extern const char sim_usage[];
extern const char sim_provision_usage[];
extern const char sim_run_usage[];

/*
 * Parse `certfleet-sim provision ...` (argv[0] is "provision"). Returns
 * CF_OK, 1 when --help was asked for, or CF_EINVAL with err->msg saying
 * what is wrong.
 */
int sim_provision_opts_parse(sim_provision_opts *o, int argc, char **argv, cf_err *err);

/* Same for `certfleet-sim run ...`; release with sim_run_opts_clear(). */
int sim_run_opts_parse(sim_run_opts *o, int argc, char **argv, cf_err *err);
void sim_run_opts_clear(sim_run_opts *o);

/* ---- provisioning (provision.c) --------------------------------------------- */

typedef struct sim_provision_result {
	long created; /* certificates issued and written */
	long skipped; /* --skip-existing */
	double seconds;
} sim_provision_result;

/*
 * Create things PREFIX00001.. in the registry of o->data_dir, a P-256 key
 * each, certificates issued in batches through cf_authority_issue_batch(),
 * and STATE/NAME/current/{key.pem,cert.pem} (0600, leaf then issuer) as
 * cf_agent_open() wants them. CF_EEXISTS when a thing or state directory
 * exists already (unless skip_existing); CF_ENOTFOUND without a data dir;
 * errors of the store and the authority.
 */
int sim_provision(sim_provision_result *res, const sim_provision_opts *o, cf_err *err);

/* A CSR for key with CN=cn, signed with SHA-256: PEM text (NUL-terminated) or DER. */
int sim_csr_new(char **out, size_t *len_out, EVP_PKEY *key, const char *cn, bool pem, cf_err *err);

/* ---- counters and reports (report.c) ------------------------------------- */

#define SIM_TALLY_MAX 24

/* Counts by a short token ("WEAK_KEY"); tokens past SIM_TALLY_MAX go to "OTHER". */
typedef struct sim_tally {
	struct {
		char name[40];
		long count;
	} e[SIM_TALLY_MAX];
	size_t n;
	long total;
} sim_tally;

/* Count token (cut at the first ':' or space, at most 39 bytes). */
void sim_tally_add(sim_tally *t, const char *token);

typedef struct sim_stats {
	long devices;
	long fault_devices[SIM_FAULT_COUNT];
	/* connections */
	long connected;  /* now */
	long connecting; /* now */
	long offline;    /* now: offline fault or crashed */
	long connects;   /* CONNACK accepted */
	long connect_failures;
	long connections_lost;
	/* protocol */
	long csr_req;   /* received */
	long csr_sent;  /* csr_res published (agent and sim) */
	long crt;       /* received */
	long staged;    /* certificates stored by agents */
	long rotations; /* promotions */
	long rotated;   /* devices whose crt_ack for a new certificate was acknowledged */
	long fell_back;
	long crashes;
	sim_tally failed;   /* crt_err by reason */
	sim_tally rejected; /* csr_rej by code */
	/* time, ms of the monotonic clock */
	int64_t start_ms;
	int64_t end_ms;
	int64_t first_csr_req_ms; /* 0: none yet */
	int64_t last_rotated_ms;
	const char *outcome; /* "until_rotated", "duration", "timeout", "signal" */
} sim_stats;

/* One progress line (no newline). */
void sim_report_progress(FILE *fp, const sim_stats *s, int64_t now_ms);

/* The summary table for people. */
void sim_report_table(FILE *fp, const sim_stats *s);

/* The summary as a JSON object (docs/sim.md lists the fields). NULL on ENOMEM. */
json_t *sim_report_json(const sim_stats *s);

/* Write sim_report_json() to path (0644, atomically). */
int sim_report_write(const char *path, const sim_stats *s, cf_err *err);

/* ---- the event loop (loop.c, device.c) ------------------------------------ */

/*
 * Run the fleet of o->state_dir until the goal, the timeout or a signal.
 * stats is filled as it goes and at the end. Returns an exit code:
 * SIM_EXIT_OK, SIM_EXIT_FAIL (timeout, or setup failure with err set),
 * SIM_EXIT_INTERRUPTED.
 */
int sim_run(sim_stats *stats, const sim_run_opts *o, cf_err *err);

/*
 * The device names of a state directory: subdirectories holding current/
 * or previous/, sorted. *out is an array of n strings; free with
 * sim_names_free().
 */
int sim_state_names(char ***out, size_t *n_out, const char *state_dir, cf_err *err);
void sim_names_free(char **names, size_t n);

#endif
