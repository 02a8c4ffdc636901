/*
 * bench_audit: a full audit over a registry of N certificates made through
 * the store API. Usage: bench_audit DIR [N [CHECK...]] (default 1,000,000,
 * every check). DIR/registry.db is created (use /dev/shm or the build
 * directory) and deleted at the end.
 *
 * The registry (fixed proportions, reproducible): 90% ACTIVE, 5% INACTIVE,
 * 2% PENDING_ACTIVATION, 3% REVOKED (inserted ACTIVE, then revoked). Of
 * every 1000: 30 expire within 30 days, 5 have expired, 20 are older than
 * 365 days; keys are EC-P256 (70%), RSA-2048 (20%), ED25519 (5%), EC-P384
 * (5%) with 2 RSA-1024 and 1 SHA-1 signature, and 1 certificate reuses the
 * key of the one before it. Certificates are unbound (no thing), which the
 * shared-key check treats as belonging to different things; each carries
 * the default device policy, as issued ones do, and the first one also the
 * service policy (overly permissive for a device: the policy check looks
 * for its carriers). The PEM is a placeholder, so rows are smaller than
 * real ones (see docs/benchmarks.md).
 *
 * The registry is filled in a child process so that the parent's peak RSS
 * (getrusage) is the audit's alone. Then, in the parent: the baseline, a
 * cf_store_cert_scan() of the ACTIVE certificates with an empty callback
 * (the read the audit cannot avoid), and three audit runs (the second also
 * compares with the first's OPEN findings; the third is a day later, so
 * its sweep of the event chain walks a seventh of it), with their ratio to
 * the baseline. Filling stops after FILL_LIMIT seconds and says so.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "store/store.h"

#define BATCH 50000
#define FILL_LIMIT 900.0

static const cf_store_actor actor = { "bench:audit", NULL };
static const char placeholder_pem[] = "-----BEGIN CERTIFICATE-----\nplaceholder\n";

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Peak RSS in MB of this process (self) or of its waited-for children. */
static double
peak_mb(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

struct rec {
	char id[65], serial[33], spki[65];
	cf_store_cert cert;
};

static void
hex_id(char out[65], uint64_t n, uint64_t salt)
{
	snprintf(out, 65, "%016llx%016llx%016llx%016llx", (unsigned long long)n,
		 (unsigned long long)(n * 0x9e3779b97f4a7c15ULL ^ salt), (unsigned long long)~n,
		 (unsigned long long)(n ^ 0x5555555555555555ULL ^ salt));
}

/* Certificate k of the registry, as described at the top. */
static void
make_cert(struct rec *r, long k, int64_t now)
{
	long m = k % 1000, kind = k % 100;
	int64_t day = 86400;

	memset(r, 0, sizeof(*r));
	hex_id(r->id, (uint64_t)k + 1, 0);
	snprintf(r->serial, sizeof(r->serial), "%lx", k + 1);
	hex_id(r->spki, (uint64_t)(m == 1 ? k : k + 1), 99);
	r->cert.id = r->id;
	r->cert.serial = r->serial;
	r->cert.ca = (char *)(uintptr_t)"int-1";
	r->cert.status = CF_CERT_ACTIVE;
	if (kind >= 90 && kind < 95)
		r->cert.status = CF_CERT_INACTIVE;
	else if (kind >= 95 && kind < 97)
		r->cert.status = CF_CERT_PENDING_ACTIVATION;
	r->cert.not_before = now - (m >= 40 && m < 60 ? 400 : 30) * day;
	r->cert.not_after = now + 300 * day;
	if (m >= 100 && m < 130)
		r->cert.not_after = now + (m - 99) * day; /* within 30 days */
	else if (m >= 130 && m < 135)
		r->cert.not_after = now - (m - 129) * day;
	r->cert.key_type = (char *)(uintptr_t)"EC-P256";
	r->cert.key_bits = 256;
	r->cert.sig_alg = (char *)(uintptr_t)"ecdsa-with-SHA256";
	if (kind >= 70 && kind < 90) {
		r->cert.key_type = (char *)(uintptr_t)(m == 171 || m == 772 ? "RSA-1024" : "RSA-2048");
		r->cert.key_bits = m == 171 || m == 772 ? 1024 : 2048;
		r->cert.sig_alg = (char *)(uintptr_t)(m == 373 ? "sha1WithRSAEncryption"
							       : "sha256WithRSAEncryption");
	} else if (kind < 5) {
		r->cert.key_type = (char *)(uintptr_t)"ED25519";
		r->cert.key_bits = 256;
		r->cert.sig_alg = (char *)(uintptr_t)"ED25519";
	} else if (kind >= 5 && kind < 10) {
		r->cert.key_type = (char *)(uintptr_t)"EC-P384";
		r->cert.key_bits = 384;
		r->cert.sig_alg = (char *)(uintptr_t)"ecdsa-with-SHA384";
	}
	r->cert.spki_sha256 = r->spki;
	r->cert.pem = (char *)(uintptr_t)placeholder_pem;
}

/* The child: the CA, n certificates in transactions of BATCH, 3% revoked. */
static int
fill(const char *uri, long n, int64_t now)
{
	cf_store *store = NULL;
	cf_store_ca ca = { 0 };
	static const char *const policies[] = { "bench-device", "bench-service" };
	char *device_doc = NULL, *service_doc = NULL;
	cf_store_cert_new *items = NULL;
	struct rec *recs = NULL;
	cf_err err = CF_ERR_INIT;
	char caid[65], id[65];
	double t0 = seconds();
	long i, j, done = 0, revoked = 0;
	int rc = 1;

	if (cf_store_open(&store, uri, &err) != 0 || cf_store_set_durable(store, false, &err) != 0)
		goto out;
	hex_id(caid, 1, 7);
	ca.name = (char *)(uintptr_t)"int-1";
	ca.status = CF_CA_ACTIVE;
	ca.cert_id = caid;
	ca.subject = (char *)(uintptr_t)"CN=int-1";
	ca.cert_pem = (char *)(uintptr_t)placeholder_pem;
	ca.key_type = (char *)(uintptr_t)"EC-P256";
	ca.not_before = now - 86400;
	ca.not_after = now + 3650 * 86400LL;
	if (cf_store_ca_insert(store, &ca, &actor, &err) != 0)
		goto out;
	device_doc = cf_store_policy_device_document("management/topic");
	service_doc = cf_store_policy_service_document("management/topic");
	if (device_doc == NULL || service_doc == NULL ||
	    cf_store_policy_insert(store, policies[0], device_doc, &actor, &err) != 0 ||
	    cf_store_policy_insert(store, policies[1], service_doc, &actor, &err) != 0)
		goto out;
	items = calloc(BATCH, sizeof(*items));
	recs = calloc(BATCH, sizeof(*recs));
	if (items == NULL || recs == NULL)
		goto out;
	for (i = 0; i < n && seconds() - t0 < FILL_LIMIT; i += BATCH) {
		long m = n - i < BATCH ? n - i : BATCH;

		memset(items, 0, BATCH * sizeof(*items));
		for (j = 0; j < m; j++) {
			make_cert(&recs[j], i + j, now);
			items[j].cert = &recs[j].cert;
			items[j].policies = policies;
			items[j].npolicies = i + j == 0 ? 2 : 1;
		}
		if (cf_store_cert_insert_batch(store, items, (size_t)m, &actor, &err) != 0)
			goto out;
		for (j = 0; j < m; j++)
			if (items[j].rc != CF_OK) {
				err = items[j].err;
				goto out;
			}
		/* 3%: inserted ACTIVE, revoked in the same kind of big transaction */
		if (cf_store_tx_begin(store, &err) != 0)
			goto out;
		for (j = 0; j < m; j++) {
			if ((i + j) % 100 < 97)
				continue;
			hex_id(id, (uint64_t)(i + j) + 1, 0);
			if (cf_store_cert_transition(store, id, CF_CERT_REVOKED, "keyCompromise",
						     &actor, &err) != 0) {
				cf_store_tx_rollback(store);
				goto out;
			}
			revoked++;
		}
		if (cf_store_tx_commit(store, &err) != 0)
			goto out;
		done += m;
	}
	if (cf_store_checkpoint(store, &err) != 0)
		goto out;
	printf("fill: %ld certificates (%ld revoked) in %.2f s%s\n", done, revoked,
	       seconds() - t0, done < n ? " (stopped: time limit)" : "");
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "fill: %s\n", err.msg);
	free(items);
	free(recs);
	free(device_doc);
	free(service_doc);
	cf_store_close(store);
	fflush(stdout);
	return rc;
}

static int64_t
bench_clock(void *payload)
{
	return *(const int64_t *)payload;
}

static int
empty_cb(const cf_store_cert_facts *facts, void *payload)
{
	(void)facts;
	(*(int64_t *)payload)++;
	return 0;
}

static void
remove_registry(const char *dir)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char path[600];
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/registry.db%s", dir, suffixes[i]);
		unlink(path);
	}
}

int
main(int argc, char **argv)
{
	int64_t clock_now;
	cf_store *store = NULL;
	cf_audit_summary sum;
	cf_audit_config cfg;
	cf_err err = CF_ERR_INIT;
	char uri[600];
	int64_t now = (int64_t)time(NULL), run, seen = 0;
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000000;
	double t0, scan = 0, audit = 0, t;
	int status = 0, i, rc = 1;
	pid_t pid;

	if (argc < 2 || n <= 0) {
		fprintf(stderr, "usage: bench_audit DIR [N [CHECK...]]\n");
		return 2;
	}
	remove_registry(argv[1]);
	snprintf(uri, sizeof(uri), "sqlite:%s/registry.db", argv[1]);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(fill(uri, n, now));
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fill failed\n");
		goto out;
	}
	printf("fill: peak RSS %.1f MB (child)\n", peak_mb(RUSAGE_CHILDREN));
	if (cf_store_open(&store, uri, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.msg);
		goto out;
	}
	for (i = 0; i < 2; i++) {
		seen = 0;
		t0 = seconds();
		if (cf_store_cert_scan(store, CF_CERT_ACTIVE, false, empty_cb, &seen, &err) != 0) {
			fprintf(stderr, "scan: %s\n", err.msg);
			goto out;
		}
		t = seconds() - t0;
		scan = i == 0 || t < scan ? t : scan;
	}
	printf("baseline: cf_store_cert_scan, empty callback: %lld ACTIVE certificates in %.3f s, "
	       "peak RSS %.1f MB\n",
	       (long long)seen, scan, peak_mb(RUSAGE_SELF));
	cf_audit_config_init(&cfg);
	/* The registry's clock is the runs' (the sweep's share follows the time between runs). */
	clock_now = now;
	cf_store_set_clock(store, bench_clock, &clock_now);
	for (i = 0; i < 3; i++) {
		/* The third run a day later: the daily one, sweeping a seventh of the chain. */
		if (i == 2)
			clock_now += 86400;
		t0 = seconds();
		if (cf_audit_run(&run, &sum, store, &cfg, CF_AUDIT_ON_DEMAND,
				 (const char *const *)(argv + 3), argc > 3 ? (size_t)(argc - 3) : 0,
				 clock_now, &err) != 0) {
			fprintf(stderr, "audit: %s\n", err.msg);
			goto out;
		}
		t = seconds() - t0;
		audit = i == 0 || t > audit ? t : audit;
		printf("audit run %lld%s: %lld certificates, %lld findings, %lld events walked, in "
		       "%.3f s (%.1fx the scan)\n",
		       (long long)run, i == 2 ? " (a day later)" : "",
		       (long long)sum.certificates, (long long)sum.findings,
		       (long long)sum.events_checked, t, t / scan);
	}
	printf("audit: slowest run %.3f s, peak RSS %.1f MB (open, scans and audits)\n", audit,
	       peak_mb(RUSAGE_SELF));
	rc = 0;
out:
	cf_store_close(store);
	remove_registry(argv[1]);
	return rc;
}
