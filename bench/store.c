/*
 * bench_store: how long cf_store_cert_insert() takes on the issuance hot
 * path (insert + event + commit), then how long cf_store_events_verify()
 * takes over the result (chain + certificate replay). Built as bench_store;
 * run it from a Release build:
 *
 *   build/bench/bench_store /tmp/timing.db 20000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store/store.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) used so far. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
setup(cf_store *store, const cf_store_actor *actor, cf_err *err)
{
	static const char pol[] = "{\"version\":1,\"statements\":[{\"effect\":\"allow\","
				  "\"actions\":[\"publish\"],\"resources\":[\"t/${clientid}/#\"]}]}";
	cf_store_ca ca = { 0 };
	char id[65];

	memset(id, 'c', 64);
	id[64] = '\0';
	ca.name = (char *)(uintptr_t)"int-1";
	ca.status = CF_CA_ACTIVE;
	ca.cert_id = id;
	ca.subject = (char *)(uintptr_t)"CN=int-1";
	ca.cert_pem = (char *)(uintptr_t)"pem";
	ca.not_before = 1;
	ca.not_after = 2000000000;
	if (cf_store_ca_insert(store, &ca, actor, err) != 0 ||
	    cf_store_thing_insert(store, "dev", NULL, actor, err) != 0 ||
	    cf_store_policy_insert(store, "p1", pol, actor, err) != 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	const cf_store_actor actor = { "bench", NULL };
	const char *pols[] = { "p1" };
	static char pem[1200];
	cf_store *store = NULL;
	cf_store_cert c = { 0 };
	char uri[600], id[65], serial[33];
	cf_err err = CF_ERR_INIT;
	int i, n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20000;
	double t0, t1, c0, c1;
	int64_t count = 0, bad = 0;

	if (argc < 2)
		return 2;
	unlink(argv[1]);
	snprintf(uri, sizeof(uri), "sqlite:%s", argv[1]);
	memset(pem, 'A', sizeof(pem) - 1); /* about the size of a real device certificate */
	if (cf_store_open(&store, uri, &err) != 0 || setup(store, &actor, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	c.serial = serial;
	c.id = id;
	c.ca = (char *)(uintptr_t)"int-1";
	c.thing = (char *)(uintptr_t)"dev";
	c.status = CF_CERT_PENDING_ACTIVATION;
	c.not_before = 1;
	c.not_after = 1900000000;
	c.key_type = (char *)(uintptr_t)"EC-P256";
	c.key_bits = 256;
	c.sig_alg = (char *)(uintptr_t)"ecdsa-with-SHA256";
	c.spki_sha256 = id;
	c.pem = pem;
	t0 = now_s();
	c0 = cpu_s();
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%064x", i);
		snprintf(serial, sizeof(serial), "%032x", i + 1);
		if (cf_store_cert_insert(store, &c, pols, 1, false, &actor, &err) != 0) {
			fprintf(stderr, "insert %d: %s\n", i, err.msg);
			return 1;
		}
	}
	t1 = now_s();
	c1 = cpu_s();
	printf("%d inserts in %.3f s: %.0f inserts/s, %.1f us each (cpu %.1f us each)\n", n,
	       t1 - t0, n / (t1 - t0), (t1 - t0) * 1e6 / n, (c1 - c0) * 1e6 / n);
	t0 = now_s();
	if (cf_store_events_verify(store, &count, &bad, NULL, &err) != 0) {
		fprintf(stderr, "verify: %s (seq %lld)\n", err.msg, (long long)bad);
		return 1;
	}
	t1 = now_s();
	printf("verify of %lld events, %d certificates: %.3f s\n", (long long)count, n, t1 - t0);
	cf_store_close(store);
	return 0;
}
