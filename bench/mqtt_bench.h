/*
 * Helpers shared by the broker benchmarks (bench/mtls_connect.c,
 * bench/broker_rtt.c, bench/broker_kick.c): a monotonic clock, a client TLS context built once
 * from files, a libmosquitto client set up like a device, and a summary of
 * latencies.
 */
#ifndef CF_BENCH_MQTT_H
#define CF_BENCH_MQTT_H

#include <stddef.h>

#include <mosquitto.h>
#include <openssl/ssl.h>

/* Microseconds on CLOCK_MONOTONIC. */
double cf_bench_now_us(void);

/*
 * A client context that verifies the broker against ca (its address or name
 * must be host) and presents cert (a chain file) and key. NULL, with a line on
 * stderr, when a file cannot be loaded. The caller frees it with SSL_CTX_free().
 */
SSL_CTX *cf_bench_tls_context(const char *host, const char *ca, const char *cert, const char *key);

/*
 * A client with client_id, a clean session, MQTT 3.1.1, TCP_NODELAY and ctx
 * (borrowed: ctx must outlive the client); obj is the callbacks' payload.
 * NULL when out of memory. Freed with mosquitto_destroy().
 */
struct mosquitto *cf_bench_client_new(const char *client_id, SSL_CTX *ctx, void *obj);

typedef struct cf_bench_stats {
	size_t n;
	double p50, p99, max, mean;
} cf_bench_stats;

/* p50, p99 (nearest rank), max and mean of v[0..n), which is sorted in place. */
void cf_bench_stats_of(cf_bench_stats *out, double *v, size_t n);

#endif
