/*
 * bench/mtls_connect: the bare broker's mutual-TLS connect rate, the
 * baseline of bench/rotation.sh (docs/benchmarks.md).
 *
 * P worker processes each loop: connect with libmosquitto (one SSL_CTX per
 * worker, built once, TCP_NODELAY, MQTT 3.1.1), wait for the CONNACK,
 * disconnect, until COUNT connects in all or SECONDS have passed. Prints
 * one line: connects, failures, seconds, connects/s.
 *
 *   bench_mtls_connect -H HOST -p PORT -a CA -c CERT -k KEY -i CLIENT_ID
 *                      [-P WORKERS] [-n COUNT] [-t SECONDS]
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_bench.h"

struct opts {
	const char *host, *ca, *cert, *key, *client_id;
	int port, workers;
	long count;
	double seconds;
};

static double
now_seconds(void)
{
	return cf_bench_now_us() / 1e6;
}

struct conn_state {
	bool done;
	int rc;
};

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct conn_state *st = obj;

	(void)mosq;
	st->done = true;
	st->rc = rc;
}

/* One connect + CONNACK + disconnect. true when the broker accepted it. */
static bool
connect_once(SSL_CTX *ctx, const struct opts *o, const char *client_id)
{
	struct conn_state st = { false, -1 };
	struct mosquitto *mosq = cf_bench_client_new(client_id, ctx, &st);
	double end = now_seconds() + 5;
	bool ok = false;

	if (mosq == NULL)
		return false;
	mosquitto_connect_callback_set(mosq, on_connect);
	if (mosquitto_connect(mosq, o->host, o->port, 30) == MOSQ_ERR_SUCCESS) {
		while (!st.done && now_seconds() < end)
			if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS)
				break;
		ok = st.done && st.rc == 0;
		mosquitto_disconnect(mosq);
		(void)mosquitto_loop(mosq, 0, 1);
	}
	mosquitto_destroy(mosq);
	return ok;
}

/* A worker: connect in a loop; writes "connects failures" to fd. */
static void
worker(const struct opts *o, long count, double end, int fd)
{
	SSL_CTX *ctx = cf_bench_tls_context(o->host, o->ca, o->cert, o->key);
	long ok = 0, failed = 0;
	char line[64];
	int n;

	mosquitto_lib_init();
	while (ctx != NULL && ok + failed < count && now_seconds() < end) {
		/* The certificate's own client id, as a device reconnecting would use. */
		if (connect_once(ctx, o, o->client_id))
			ok++;
		else
			failed++;
	}
	n = snprintf(line, sizeof(line), "%ld %ld\n", ok, failed);
	if (write(fd, line, (size_t)n) != n)
		_exit(1);
	SSL_CTX_free(ctx);
	mosquitto_lib_cleanup();
	_exit(ctx != NULL ? 0 : 1);
}

static int
usage(void)
{
	fprintf(stderr, "usage: bench_mtls_connect -H HOST -p PORT -a CA -c CERT -k KEY -i "
			"CLIENT_ID [-P WORKERS] [-n COUNT] [-t SECONDS]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", NULL, NULL, NULL, NULL, 0, 1, 2000, 10 };
	long ok = 0, failed = 0;
	double t0, elapsed;
	int c, i, fds[2];
	FILE *in;

	while ((c = getopt(argc, argv, "H:p:a:c:k:i:P:n:t:")) != -1) {
		switch (c) {
		case 'H': o.host = optarg; break;
		case 'p': o.port = (int)strtol(optarg, NULL, 10); break;
		case 'a': o.ca = optarg; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'i': o.client_id = optarg; break;
		case 'P': o.workers = (int)strtol(optarg, NULL, 10); break;
		case 'n': o.count = strtol(optarg, NULL, 10); break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		default: return usage();
		}
	}
	if (o.port <= 0 || o.ca == NULL || o.cert == NULL || o.key == NULL ||
	    o.client_id == NULL || o.workers < 1 || o.workers > 64 || o.count < 1 ||
	    o.seconds <= 0)
		return usage();
	if (pipe(fds) != 0)
		return 1;
	t0 = now_seconds();
	for (i = 0; i < o.workers; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			/*
			 * Worker 0 uses the id as given, the others ID-N: with one id,
			 * the broker would take the session from one worker to give it
			 * to the next.
			 */
			char id[128];

			close(fds[0]);
			if (i == 0)
				snprintf(id, sizeof(id), "%s", o.client_id);
			else
				snprintf(id, sizeof(id), "%s-%d", o.client_id, i);
			o.client_id = id;
			worker(&o, (o.count + o.workers - 1) / o.workers, t0 + o.seconds,
			       fds[1]);
		}
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	for (i = 0; in != NULL && i < o.workers; i++) {
		long a = 0, b = 0;

		if (fscanf(in, "%ld %ld", &a, &b) == 2) {
			ok += a;
			failed += b;
		}
	}
	while (wait(NULL) > 0)
		;
	elapsed = now_seconds() - t0;
	printf("mtls_connect connects=%ld failures=%ld seconds=%.2f rate=%.1f/s workers=%d\n", ok,
	       failed, elapsed, (double)ok / elapsed, o.workers);
	if (in != NULL)
		fclose(in);
	return failed > 0 && ok == 0 ? 1 : 0;
}
