/*
 * bench/broker_rtt: publish-to-receive latency through a broker over mutual
 * TLS, on the topics of protocol.md (docs/benchmarks.md, bench/broker.sh).
 *
 * Two clients in one process and one thread: a server (a service principal,
 * as certfleetd) and a device, each with its own certificate and its thing
 * name as client id, clean sessions, MQTT 3.1.1, TCP_NODELAY. The device
 * subscribes to P/DEV/csr_req, the server to P/+/csr_res (QoS 1), which is
 * what the certfleet policies allow them. Then, one direction after the
 * other, one QoS 1 message at a time: the next is published once the last
 * one has arrived and its PUBACK is back, so each measures one trip through
 * an idle broker. The latency is from just before mosquitto_publish() to the
 * receiver's message callback. The first WARMUP messages of each direction
 * are not counted; a message not received within 2 s is lost, and three
 * lost in a row end the direction (a topic the broker does not allow).
 *
 * Prints one line per direction:
 *   broker_rtt dir=server_to_device topic=... bytes=1024 messages=2000 lost=0
 *     seconds=0.61 p50_us=... p99_us=... max_us=... mean_us=...
 *
 *   bench_broker_rtt -p PORT -a CA -c SERVER_CERT -k SERVER_KEY -i SERVER_ID
 *                    -C DEVICE_CERT -K DEVICE_KEY -I DEVICE_ID
 *                    [-H HOST] [-P TOPIC_PREFIX] [-n MESSAGES] [-t SECONDS] [-s BYTES]
 */
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_bench.h"

#define WARMUP        20
#define LOST_AFTER_US 2e6
#define LOST_IN_A_ROW 3
#define SETUP_US      10e6
#define BYTES_MAX     ((size_t)256 * 1024)

struct peer {
	const char *role; /* "server" or "device", for messages */
	const char *cert, *key, *id;
	SSL_CTX *ctx;
	struct mosquitto *mosq;
	int connack; /* -1 until the CONNACK */
	int granted; /* -1 until the SUBACK, then the granted QoS (128: refused) */
	bool lost;   /* the connection went */
	/* As the receiver: the topic and sequence number awaited, and when it came. */
	const char *want_topic;
	uint64_t want_seq;
	bool got;
	double got_us;
	/* As the publisher: the message id awaiting its PUBACK. */
	int mid;
	bool acked;
};

struct opts {
	const char *host, *ca, *prefix;
	int port;
	long count;
	double seconds;
	size_t bytes;
};

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct peer *p = obj;

	(void)mosq;
	p->connack = rc;
}

static void
on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct peer *p = obj;

	(void)mosq;
	(void)rc;
	p->lost = true;
}

static void
on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted)
{
	struct peer *p = obj;

	(void)mosq;
	(void)mid;
	p->granted = qos_count > 0 ? granted[0] : 128;
}

static void
on_publish(struct mosquitto *mosq, void *obj, int mid)
{
	struct peer *p = obj;

	(void)mosq;
	if (mid == p->mid)
		p->acked = true;
}

static void
on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	double now = cf_bench_now_us();
	struct peer *p = obj;
	uint64_t seq;

	(void)mosq;
	if (p->want_topic == NULL || msg->payloadlen < (int)sizeof(seq) ||
	    strcmp(msg->topic, p->want_topic) != 0)
		return;
	memcpy(&seq, msg->payload, sizeof(seq));
	if (seq != p->want_seq)
		return; /* a late one, already counted as lost */
	p->got = true;
	p->got_us = now;
}

/*
 * Serve both connections for up to timeout_ms: libmosquitto's external loop
 * (poll on both sockets, then read, write and housekeeping). false when a
 * connection is gone.
 */
static bool
pump(struct peer *peers, int timeout_ms)
{
	struct pollfd pfd[2];
	int i;

	for (i = 0; i < 2; i++) {
		pfd[i].fd = mosquitto_socket(peers[i].mosq);
		pfd[i].events = POLLIN;
		if (mosquitto_want_write(peers[i].mosq))
			pfd[i].events |= POLLOUT;
		pfd[i].revents = 0;
	}
	if (poll(pfd, 2, timeout_ms) < 0)
		return false;
	for (i = 0; i < 2; i++) {
		struct mosquitto *m = peers[i].mosq;

		if ((pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0 &&
		    mosquitto_loop_read(m, 1) != MOSQ_ERR_SUCCESS)
			peers[i].lost = true;
		if (!peers[i].lost && mosquitto_want_write(m) &&
		    mosquitto_loop_write(m, 1) != MOSQ_ERR_SUCCESS)
			peers[i].lost = true;
		if (!peers[i].lost && mosquitto_loop_misc(m) != MOSQ_ERR_SUCCESS)
			peers[i].lost = true;
	}
	return !peers[0].lost && !peers[1].lost;
}

/* Pump until both peers pass done(), false after SETUP_US or a lost connection. */
static bool
pump_until(struct peer *peers, bool (*done)(const struct peer *))
{
	double end = cf_bench_now_us() + SETUP_US;

	while (!(done(&peers[0]) && done(&peers[1]))) {
		if (cf_bench_now_us() > end || !pump(peers, 10))
			return false;
	}
	return true;
}

static bool
connacked(const struct peer *p)
{
	return p->connack >= 0;
}

static bool
subacked(const struct peer *p)
{
	return p->granted >= 0;
}

static int
peer_connect(struct peer *p, const struct opts *o)
{
	p->connack = -1;
	p->granted = -1;
	p->ctx = cf_bench_tls_context(o->host, o->ca, p->cert, p->key);
	if (p->ctx == NULL)
		return -1;
	p->mosq = cf_bench_client_new(p->id, p->ctx, p);
	if (p->mosq == NULL)
		return -1;
	mosquitto_connect_callback_set(p->mosq, on_connect);
	mosquitto_disconnect_callback_set(p->mosq, on_disconnect);
	mosquitto_subscribe_callback_set(p->mosq, on_subscribe);
	mosquitto_publish_callback_set(p->mosq, on_publish);
	mosquitto_message_callback_set(p->mosq, on_message);
	if (mosquitto_connect(p->mosq, o->host, o->port, 60) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "bench_broker_rtt: %s %s cannot connect to %s:%d\n", p->role, p->id,
			o->host, o->port);
		return -1;
	}
	return 0;
}

/*
 * One direction: from publishes to topic, to receives it. Prints the line;
 * returns the number of messages measured.
 */
static size_t
direction(struct peer *peers, struct peer *from, struct peer *to, const char *name,
	  const char *topic, const struct opts *o, double *lat)
{
	double t0, start = cf_bench_now_us(), end = start + o->seconds * 1e6;
	unsigned char *payload = calloc(1, o->bytes);
	size_t n = 0;
	long lost = 0, in_a_row = 0;
	uint64_t seq;
	cf_bench_stats st;

	if (payload == NULL)
		return 0;
	memset(payload, 'x', o->bytes);
	to->want_topic = topic;
	for (seq = 0; n < (size_t)o->count && in_a_row < LOST_IN_A_ROW; seq++) {
		if (cf_bench_now_us() > end)
			break;
		memcpy(payload, &seq, sizeof(seq));
		to->want_seq = seq;
		to->got = false;
		from->acked = false;
		t0 = cf_bench_now_us();
		if (mosquitto_publish(from->mosq, &from->mid, topic, (int)o->bytes, payload, 1,
				      false) != MOSQ_ERR_SUCCESS)
			break;
		while (!(to->got && from->acked) && cf_bench_now_us() < t0 + LOST_AFTER_US) {
			if (!pump(peers, 100))
				break;
		}
		if (peers[0].lost || peers[1].lost)
			break;
		if (!to->got) {
			lost++;
			in_a_row++;
			continue;
		}
		in_a_row = 0;
		if (seq >= WARMUP)
			lat[n++] = to->got_us - t0;
	}
	to->want_topic = NULL;
	cf_bench_stats_of(&st, lat, n);
	printf("broker_rtt dir=%s topic=%s bytes=%zu messages=%zu lost=%ld seconds=%.2f "
	       "p50_us=%.1f p99_us=%.1f max_us=%.1f mean_us=%.1f\n",
	       name, topic, o->bytes, n, lost, (cf_bench_now_us() - start) / 1e6, st.p50, st.p99,
	       st.max, st.mean);
	fflush(stdout);
	if (peers[0].lost || peers[1].lost)
		fprintf(stderr, "bench_broker_rtt: the broker closed a connection (%s)\n", name);
	else if (in_a_row >= LOST_IN_A_ROW)
		fprintf(stderr, "bench_broker_rtt: nothing arrives on %s\n", topic);
	free(payload);
	return n;
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: bench_broker_rtt -p PORT -a CA -c SERVER_CERT -k SERVER_KEY -i SERVER_ID\n"
		"                        -C DEVICE_CERT -K DEVICE_KEY -I DEVICE_ID [-H HOST]\n"
		"                        [-P TOPIC_PREFIX] [-n MESSAGES] [-t SECONDS] [-s BYTES]\n"
		"\n"
		"QoS 1 publish-to-receive latency through the broker at HOST:PORT (127.0.0.1),\n"
		"one message at a time, MESSAGES (2000) each way or SECONDS (20) per direction:\n"
		"the server publishes to PREFIX/DEVICE_ID/csr_req (the device subscribed to it),\n"
		"then the device to PREFIX/DEVICE_ID/csr_res (the server subscribed to\n"
		"PREFIX/+/csr_res). PREFIX is management/topic; BYTES (1024) per message. CA\n"
		"verifies the broker; each CERT is a chain file; the ids are the thing names.\n");
	return 2;
}

static int
parse(struct opts *o, struct peer *server, struct peer *device, int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "H:p:a:c:k:i:C:K:I:P:n:t:s:")) != -1) {
		switch (c) {
		case 'H': o->host = optarg; break;
		case 'p': o->port = (int)strtol(optarg, NULL, 10); break;
		case 'a': o->ca = optarg; break;
		case 'c': server->cert = optarg; break;
		case 'k': server->key = optarg; break;
		case 'i': server->id = optarg; break;
		case 'C': device->cert = optarg; break;
		case 'K': device->key = optarg; break;
		case 'I': device->id = optarg; break;
		case 'P': o->prefix = optarg; break;
		case 'n': o->count = strtol(optarg, NULL, 10); break;
		case 't': o->seconds = strtod(optarg, NULL); break;
		case 's': o->bytes = (size_t)strtoul(optarg, NULL, 10); break;
		default: return -1;
		}
	}
	if (optind != argc || o->port <= 0 || o->port > 65535 || o->ca == NULL ||
	    server->cert == NULL || server->key == NULL || server->id == NULL ||
	    device->cert == NULL || device->key == NULL || device->id == NULL || o->count < 1 ||
	    o->count > 10000000 || o->seconds <= 0 || o->bytes < sizeof(uint64_t) ||
	    o->bytes > BYTES_MAX)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", NULL, "management/topic", 0, 2000, 20, 1024 };
	struct peer peers[2];
	struct peer *server = &peers[0], *device = &peers[1];
	char req[512], res[512], sub[512];
	double *lat = NULL;
	int rc = 1, i;

	memset(peers, 0, sizeof(peers));
	server->role = "server";
	device->role = "device";
	if (parse(&o, server, device, argc, argv) != 0)
		return usage();
	snprintf(req, sizeof(req), "%s/%s/csr_req", o.prefix, device->id);
	snprintf(res, sizeof(res), "%s/%s/csr_res", o.prefix, device->id);
	snprintf(sub, sizeof(sub), "%s/+/csr_res", o.prefix);
	lat = calloc((size_t)o.count, sizeof(*lat));
	if (lat == NULL)
		return 1;
	mosquitto_lib_init();
	if (peer_connect(server, &o) != 0 || peer_connect(device, &o) != 0)
		goto out;
	if (!pump_until(peers, connacked) || server->connack != 0 || device->connack != 0) {
		fprintf(stderr, "bench_broker_rtt: no CONNACK 0: server %s %d, device %s %d\n",
			server->id, server->connack, device->id, device->connack);
		goto out;
	}
	if (mosquitto_subscribe(device->mosq, NULL, req, 1) != MOSQ_ERR_SUCCESS ||
	    mosquitto_subscribe(server->mosq, NULL, sub, 1) != MOSQ_ERR_SUCCESS ||
	    !pump_until(peers, subacked) || server->granted > 2 || device->granted > 2) {
		/* granted 128: refused (a topic the broker does not allow); -1: no SUBACK */
		fprintf(stderr, "bench_broker_rtt: subscribed: server %s %d, device %s %d\n", sub,
			server->granted, req, device->granted);
		goto out;
	}
	if (direction(peers, server, device, "server_to_device", req, &o, lat) > 0 &&
	    direction(peers, device, server, "device_to_server", res, &o, lat) > 0)
		rc = 0;
out:
	for (i = 0; i < 2; i++) {
		if (peers[i].mosq != NULL) {
			mosquitto_disconnect(peers[i].mosq);
			(void)mosquitto_loop_write(peers[i].mosq, 1);
			mosquitto_destroy(peers[i].mosq);
		}
		SSL_CTX_free(peers[i].ctx);
	}
	mosquitto_lib_cleanup();
	free(lat);
	return rc;
}
