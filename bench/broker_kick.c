/*
 * bench/broker_kick: how long after `certfleet cert deactivate` the broker
 * plugin disconnects the device using that certificate (docs/benchmarks.md,
 * bench/broker.sh).
 *
 * Each trial: the device is connected (mutual TLS, its thing name as client
 * id, clean session, MQTT 3.1.1); after a pause, CERTFLEET cert deactivate ID
 * runs; the time is taken just before the CLI starts, when it exits (a
 * pidfd, polled with the client's socket) and when the client reads the
 * broker's close. Then CERTFLEET cert activate ID, and connects every 10 ms
 * until the broker accepts one again (the plugin sees ACTIVE at its next
 * refresh), and the next trial.
 *
 * The pause before each deactivation is SPREAD_MS times the fractional part
 * of trial * 0.618..., so that the deactivations fall evenly over the
 * plugin's refresh period instead of at one phase of it (a reconnect is
 * admitted just after a refresh, and the trials would follow its rhythm).
 *
 * Prints one line:
 *   broker_kick trials=100 timeouts=0 seconds=... spread_ms=250
 *     from_start_p50_ms=... from_start_p99_ms=... from_start_max_ms=...
 *     from_exit_p50_ms=... from_exit_p99_ms=... from_exit_max_ms=...
 *     cli_p50_ms=... reconnect_p50_ms=... reconnect_max_ms=... refused=...
 * (from_exit is negative for a disconnect before the CLI's exit.)
 *
 *   bench_broker_kick -p PORT -a CA -c CERT -k KEY -i CLIENT_ID -x CERTFLEET -e CERT_ID
 *                     [-H HOST] [-n TRIALS] [-t SECONDS] [-s SPREAD_MS]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_bench.h"

#define TRIAL_US    10e6 /* a disconnect or reconnect not seen by then: a timeout */
#define RETRY_MS    10
#define GOLDEN_FRAC 0.6180339887498949

extern char **environ;

struct opts {
	const char *host, *ca, *cert, *key, *client_id, *cli, *cert_id;
	int port;
	long trials;
	double seconds;
	int spread_ms;
};

struct conn {
	int connack; /* -1 until the CONNACK */
	bool gone;
};

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct conn *c = obj;

	(void)mosq;
	c->connack = rc;
}

static void
on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct conn *c = obj;

	(void)mosq;
	(void)rc;
	c->gone = true;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Connect once and wait for the CONNACK: the client when accepted, else NULL (*refused++). */
static struct mosquitto *
connect_once(SSL_CTX *ctx, const struct opts *o, struct conn *c, long *refused)
{
	struct mosquitto *mosq = cf_bench_client_new(o->client_id, ctx, c);
	double end = cf_bench_now_us() + 5e6;

	if (mosq == NULL)
		return NULL;
	c->connack = -1;
	c->gone = false;
	mosquitto_connect_callback_set(mosq, on_connect);
	mosquitto_disconnect_callback_set(mosq, on_disconnect);
	if (mosquitto_connect(mosq, o->host, o->port, 60) == MOSQ_ERR_SUCCESS) {
		while (c->connack < 0 && !c->gone && cf_bench_now_us() < end)
			if (mosquitto_loop(mosq, 50, 1) != MOSQ_ERR_SUCCESS)
				break;
	}
	if (c->connack == 0 && !c->gone)
		return mosq;
	(*refused)++;
	mosquitto_destroy(mosq);
	return NULL;
}

/* Connect until the broker accepts, or until the deadline: NULL then. */
static struct mosquitto *
connect_until_accepted(SSL_CTX *ctx, const struct opts *o, struct conn *c, double end,
		       long *refused)
{
	struct mosquitto *mosq;

	for (;;) {
		mosq = connect_once(ctx, o, c, refused);
		if (mosq != NULL || cf_bench_now_us() > end)
			return mosq;
		sleep_ms(RETRY_MS);
	}
}

/* Start CERTFLEET cert VERB ID with its output to /dev/null; the pid, or -1. */
static pid_t
cli_start(const struct opts *o, const char *verb)
{
	const char *argv[] = { o->cli, "cert", verb, o->cert_id, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	/* posix_spawn takes char *const[]; it does not write through it. */
	rc = posix_spawn(&pid, o->cli, &fa, NULL, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "bench_broker_kick: cannot run %s: %s\n", o->cli, strerror(rc));
		return -1;
	}
	return pid;
}

/* Reap pid; true when it exited 0. */
static bool
cli_reap(pid_t pid, const char *verb)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_broker_kick: certfleet cert %s failed\n", verb);
		return false;
	}
	return true;
}

/* Keep the connection served for ms (the pause before a deactivation). false if it went. */
static bool
idle(struct mosquitto *mosq, struct conn *c, double ms)
{
	double end = cf_bench_now_us() + ms * 1e3;
	double left = end - cf_bench_now_us();

	while (!c->gone && left > 0) {
		if (mosquitto_loop(mosq, (int)(left / 1e3) + 1, 1) != MOSQ_ERR_SUCCESS)
			c->gone = true;
		left = end - cf_bench_now_us();
	}
	return !c->gone;
}

/*
 * Deactivate and watch: the CLI's exit through a pidfd and the broker's close
 * on the client's socket, in one poll. Times in µs into t_exit and t_gone;
 * false on a CLI failure or when nothing happened within TRIAL_US.
 */
static bool
deactivate_and_watch(struct mosquitto *mosq, struct conn *c, const struct opts *o, double t0,
		     double *t_exit, double *t_gone)
{
	pid_t pid = cli_start(o, "deactivate");
	int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
	bool exited = false, ok = true;
	struct pollfd pfd[2];

	*t_exit = *t_gone = 0;
	if (pid <= 0)
		return false;
	if (pidfd < 0) {
		perror("bench_broker_kick: pidfd_open");
		(void)cli_reap(pid, "deactivate");
		return false;
	}
	while (!(exited && c->gone) && cf_bench_now_us() < t0 + TRIAL_US) {
		pfd[0].fd = exited ? -1 : pidfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = c->gone ? -1 : mosquitto_socket(mosq);
		pfd[1].events = POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, 100) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents != 0) {
			*t_exit = cf_bench_now_us();
			exited = true;
			ok = cli_reap(pid, "deactivate");
		}
		/* The broker's close makes the read fail (and calls on_disconnect). */
		if (pfd[1].revents != 0 && mosquitto_loop_read(mosq, 1) != MOSQ_ERR_SUCCESS)
			c->gone = true;
		if (c->gone && *t_gone == 0)
			*t_gone = cf_bench_now_us();
		if (!c->gone)
			(void)mosquitto_loop_misc(mosq);
	}
	if (!exited) {
		(void)cli_reap(pid, "deactivate");
		ok = false;
	}
	close(pidfd);
	return ok && c->gone;
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: bench_broker_kick -p PORT -a CA -c CERT -k KEY -i CLIENT_ID -x CERTFLEET\n"
		"                         -e CERT_ID [-H HOST] [-n TRIALS] [-t SECONDS]\n"
		"                         [-s SPREAD_MS]\n"
		"\n"
		"TRIALS (100) times, at most SECONDS (300) in all: connect to HOST:PORT\n"
		"(127.0.0.1) as CLIENT_ID with CERT and KEY (CA verifies the broker), run\n"
		"'CERTFLEET cert deactivate CERT_ID' and time the broker's disconnect from the\n"
		"CLI's start and from its exit; then 'CERTFLEET cert activate CERT_ID' and\n"
		"reconnect. CERT_ID must be CERT's certificateId; the CLI finds the registry\n"
		"through CERTFLEET_DATA_DIR. SPREAD_MS (0): the deactivations are spread over\n"
		"this much time (give the period of the plugin's registry refresh).\n");
	return 2;
}

static int
parse(struct opts *o, int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "H:p:a:c:k:i:x:e:n:t:s:")) != -1) {
		switch (c) {
		case 'H': o->host = optarg; break;
		case 'p': o->port = (int)strtol(optarg, NULL, 10); break;
		case 'a': o->ca = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'i': o->client_id = optarg; break;
		case 'x': o->cli = optarg; break;
		case 'e': o->cert_id = optarg; break;
		case 'n': o->trials = strtol(optarg, NULL, 10); break;
		case 't': o->seconds = strtod(optarg, NULL); break;
		case 's': o->spread_ms = (int)strtol(optarg, NULL, 10); break;
		default: return -1;
		}
	}
	if (optind != argc || o->port <= 0 || o->port > 65535 || o->ca == NULL || o->cert == NULL ||
	    o->key == NULL || o->client_id == NULL || o->cli == NULL || o->cert_id == NULL ||
	    o->trials < 1 || o->trials > 100000 || o->seconds <= 0 || o->spread_ms < 0 ||
	    o->spread_ms > 60000)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", NULL, NULL, NULL, NULL, NULL, NULL, 0, 100, 300, 0 };
	double *from_start = NULL, *from_exit = NULL, *cli = NULL, *reconnect = NULL;
	double start, end, t0, t_exit, t_gone, t_active, frac;
	cf_bench_stats s_start, s_exit, s_cli, s_re;
	struct mosquitto *mosq = NULL;
	SSL_CTX *ctx = NULL;
	struct conn c;
	long i, n = 0, timeouts = 0, refused = 0, early = 0;
	pid_t pid;
	bool ok;
	int rc = 1;

	if (parse(&o, argc, argv) != 0)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	from_start = calloc((size_t)o.trials, sizeof(double));
	from_exit = calloc((size_t)o.trials, sizeof(double));
	cli = calloc((size_t)o.trials, sizeof(double));
	reconnect = calloc((size_t)o.trials, sizeof(double));
	mosquitto_lib_init();
	ctx = cf_bench_tls_context(o.host, o.ca, o.cert, o.key);
	if (from_start == NULL || from_exit == NULL || cli == NULL || reconnect == NULL ||
	    ctx == NULL)
		goto out;
	start = cf_bench_now_us();
	end = start + o.seconds * 1e6;
	mosq = connect_until_accepted(ctx, &o, &c, start + TRIAL_US, &refused);
	if (mosq == NULL) {
		fprintf(stderr, "bench_broker_kick: %s cannot connect (refused %ld times)\n",
			o.client_id, refused);
		goto out;
	}
	refused = 0;
	for (i = 0; i < o.trials && cf_bench_now_us() < end; i++) {
		frac = (double)i * GOLDEN_FRAC;
		frac -= (double)(long)frac;
		if (!idle(mosq, &c, frac * o.spread_ms)) {
			fprintf(stderr, "bench_broker_kick: the connection went before trial %ld\n",
				i);
			break;
		}
		t0 = cf_bench_now_us();
		ok = deactivate_and_watch(mosq, &c, &o, t0, &t_exit, &t_gone);
		mosquitto_destroy(mosq);
		mosq = NULL;
		pid = cli_start(&o, "activate");
		if (pid <= 0 || !cli_reap(pid, "activate"))
			break;
		t_active = cf_bench_now_us();
		mosq = connect_until_accepted(ctx, &o, &c, t_active + TRIAL_US, &refused);
		if (mosq == NULL) {
			fprintf(stderr, "bench_broker_kick: no reconnect %.0f s after activate\n",
				TRIAL_US / 1e6);
			break;
		}
		if (!ok) {
			timeouts++;
			continue;
		}
		from_start[n] = (t_gone - t0) / 1e3;
		from_exit[n] = (t_gone - t_exit) / 1e3;
		cli[n] = (t_exit - t0) / 1e3;
		reconnect[n] = (cf_bench_now_us() - t_active) / 1e3;
		if (t_gone < t_exit)
			early++;
		n++;
	}
	cf_bench_stats_of(&s_start, from_start, (size_t)n);
	cf_bench_stats_of(&s_exit, from_exit, (size_t)n);
	cf_bench_stats_of(&s_cli, cli, (size_t)n);
	cf_bench_stats_of(&s_re, reconnect, (size_t)n);
	printf("broker_kick trials=%ld timeouts=%ld seconds=%.1f spread_ms=%d "
	       "from_start_p50_ms=%.1f from_start_p99_ms=%.1f from_start_max_ms=%.1f "
	       "from_exit_p50_ms=%.1f from_exit_p99_ms=%.1f from_exit_max_ms=%.1f early=%ld "
	       "cli_p50_ms=%.1f reconnect_p50_ms=%.1f reconnect_max_ms=%.1f refused=%ld\n",
	       n, timeouts, (cf_bench_now_us() - start) / 1e6, o.spread_ms, s_start.p50,
	       s_start.p99, s_start.max, s_exit.p50, s_exit.p99, s_exit.max, early, s_cli.p50,
	       s_re.p50, s_re.max, refused);
	rc = n > 0 && timeouts == 0 ? 0 : 1;
out:
	if (mosq != NULL) {
		mosquitto_disconnect(mosq);
		(void)mosquitto_loop_write(mosq, 1);
		mosquitto_destroy(mosq);
	}
	SSL_CTX_free(ctx);
	mosquitto_lib_cleanup();
	free(from_start);
	free(from_exit);
	free(cli);
	free(reconnect);
	return rc;
}
