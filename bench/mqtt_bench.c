/* Helpers shared by the broker benchmarks (mqtt_bench.h). */
#include "mqtt_bench.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/x509v3.h>

double
cf_bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

SSL_CTX *
cf_bench_tls_context(const char *host, const char *ca, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	unsigned char addr[16];
	X509_VERIFY_PARAM *param;

	if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "bench: cannot load the TLS files %s, %s, %s\n", ca, cert, key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	param = SSL_CTX_get0_param(ctx);
	if (inet_pton(AF_INET, host, addr) == 1)
		X509_VERIFY_PARAM_set1_ip_asc(param, host);
	else
		X509_VERIFY_PARAM_set1_host(param, host, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

struct mosquitto *
cf_bench_client_new(const char *client_id, SSL_CTX *ctx, void *obj)
{
	struct mosquitto *mosq = mosquitto_new(client_id, true, obj);

	if (mosq == NULL)
		return NULL;
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_int_option(mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	mosquitto_void_option(mosq, MOSQ_OPT_SSL_CTX, ctx);
	return mosq;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted v: the smallest value with p% of v at or below it. */
static double
rank(const double *v, size_t n, size_t p)
{
	size_t i = (p * n + 99) / 100;

	return v[i > 0 ? i - 1 : 0];
}

void
cf_bench_stats_of(cf_bench_stats *out, double *v, size_t n)
{
	double sum = 0;
	size_t i;

	out->n = n;
	out->p50 = out->p99 = out->max = out->mean = 0;
	if (n == 0)
		return;
	qsort(v, n, sizeof(*v), cmp_double);
	for (i = 0; i < n; i++)
		sum += v[i];
	out->p50 = rank(v, n, 50);
	out->p99 = rank(v, n, 99);
	out->max = v[n - 1];
	out->mean = sum / (double)n;
}
