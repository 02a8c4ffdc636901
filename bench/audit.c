/*
 * bench_audit: an audit run over a registry of N ACTIVE certificates made
 * through the store API. Usage: bench_audit DIR [N [CHECK...]]
 * (default 100000, every check); DIR/registry.db is created. 2% of the certificates
 * expire within 30 days, 0.1% have an RSA-1024 key, 0.1% share a key with
 * another thing. Prints the time of the registry fill and of two runs of
 * every check (the second one also writes OPEN and nothing RESOLVED).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "store/store.h"

#define BATCH 10000

static const cf_store_actor actor = { "bench:audit", NULL };

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct rec {
	char id[65], serial[33], spki[65], thing[32];
	cf_store_cert cert;
};

static void
hex_id(char out[65], uint64_t n, uint64_t salt)
{
	snprintf(out, 65, "%016llx%016llx%016llx%016llx", (unsigned long long)n,
		 (unsigned long long)(n * 0x9e3779b97f4a7c15ULL ^ salt), (unsigned long long)~n,
		 (unsigned long long)(n ^ 0x5555555555555555ULL ^ salt));
}

static int
count_cb(const cf_store_cert *cert, void *payload)
{
	(void)cert;
	(*(int64_t *)payload)++;
	return 0;
}

int
main(int argc, char **argv)
{
	cf_store *store = NULL;
	cf_store_ca ca = { 0 };
	cf_store_cert_new *items = NULL;
	struct rec *recs = NULL;
	cf_audit_summary sum;
	cf_audit_config cfg;
	cf_err err = CF_ERR_INIT;
	char uri[600], caid[65];
	int64_t now = (int64_t)time(NULL), run;
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 100000;
	double t0;
	long i, j;

	if (argc < 2 || n <= 0) {
		fprintf(stderr, "usage: bench_audit DIR [N]\n");
		return 2;
	}
	snprintf(uri, sizeof(uri), "sqlite:%s/registry.db", argv[1]);
	if (cf_store_open(&store, uri, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.msg);
		return 1;
	}
	hex_id(caid, 1, 7);
	ca.name = (char *)(uintptr_t)"int-1";
	ca.status = CF_CA_ACTIVE;
	ca.cert_id = caid;
	ca.subject = (char *)(uintptr_t)"CN=int-1";
	ca.cert_pem = (char *)(uintptr_t)"-----BEGIN CERTIFICATE-----\nplaceholder\n";
	ca.key_type = (char *)(uintptr_t)"EC-P256";
	ca.not_before = now - 86400;
	ca.not_after = now + 3650 * 86400LL;
	if (cf_store_ca_insert(store, &ca, &actor, &err) != 0) {
		fprintf(stderr, "ca: %s\n", err.msg);
		return 1;
	}
	items = calloc(BATCH, sizeof(*items));
	recs = calloc(BATCH, sizeof(*recs));
	if (items == NULL || recs == NULL)
		return 1;
	t0 = seconds();
	for (i = 0; i < n; i += BATCH) {
		long m = n - i < BATCH ? n - i : BATCH;

		for (j = 0; j < m; j++) {
			struct rec *r = &recs[j];
			long k = i + j;

			memset(r, 0, sizeof(*r));
			hex_id(r->id, (uint64_t)k + 1, 0);
			snprintf(r->serial, sizeof(r->serial), "%lx", k + 1);
			/* 0.1%: the key of the previous certificate, another thing's */
			hex_id(r->spki, (uint64_t)(k % 1000 == 1 ? k : k + 1), 99);
			r->cert.id = r->id;
			r->cert.serial = r->serial;
			r->cert.ca = (char *)(uintptr_t)"int-1";
			r->cert.thing = NULL;
			r->cert.status = CF_CERT_ACTIVE;
			r->cert.not_before = now - 86400;
			r->cert.not_after = now + (k % 50 == 0 ? 10 : 300) * 86400LL;
			r->cert.key_type = (char *)(uintptr_t)(k % 1000 == 7 ? "RSA-1024" : "EC-P256");
			r->cert.key_bits = k % 1000 == 7 ? 1024 : 256;
			r->cert.sig_alg = (char *)(uintptr_t)"ecdsa-with-SHA256";
			r->cert.spki_sha256 = r->spki;
			r->cert.pem = (char *)(uintptr_t)"-----BEGIN CERTIFICATE-----\nplaceholder\n";
			items[j].cert = &r->cert;
		}
		if (cf_store_cert_insert_batch(store, items, (size_t)m, &actor, &err) != 0) {
			fprintf(stderr, "insert: %s\n", err.msg);
			return 1;
		}
	}
	printf("fill: %ld certificates in %.2f s\n", n, seconds() - t0);
	t0 = seconds();
	{
		cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
		int64_t seen = 0;

		filter.status = CF_CERT_ACTIVE;
		if (cf_store_cert_list(store, &filter, count_cb, &seen, &err) != 0) {
			fprintf(stderr, "list: %s\n", err.msg);
			return 1;
		}
		printf("cf_store_cert_list alone: %lld certificates in %.3f s\n", (long long)seen,
		       seconds() - t0);
	}
	cf_audit_config_init(&cfg);
	for (i = 0; i < 2; i++) {
		t0 = seconds();
		if (cf_audit_run(&run, &sum, store, &cfg, CF_AUDIT_ON_DEMAND,
				 (const char *const *)(argv + 3), argc > 3 ? (size_t)(argc - 3) : 0,
				 now, &err) != 0) {
			fprintf(stderr, "audit: %s\n", err.msg);
			return 1;
		}
		printf("audit run %lld: %lld certificates, %lld findings in %.3f s\n",
		       (long long)run, (long long)sum.certificates, (long long)sum.findings,
		       seconds() - t0);
	}
	free(items);
	free(recs);
	cf_store_close(store);
	return 0;
}
