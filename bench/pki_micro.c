/*
 * pki_micro: time the issuance path against the raw crypto limit.
 *
 * Built as bench_pki; run from the repository root:
 *   build/bench/bench_pki tests/data/csr/good-p256.pem [count]
 *
 * "raw" is one EVP P-256 DigestVerify (key already built) plus one
 * DigestSign per certificate; "full (X509)" is csr_parse + check_policy +
 * issue + cert_to_pem + cert_info_get, as the server did; "hot" is the
 * path without an X509: csr_parse + check_policy + cf_pki_issue_der with
 * info + cf_pki_der_to_pem, which gives the server the same three things
 * (DER, PEM, facts). The target is hot >= 60% of raw.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "pki/pki.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
report(const char *name, double secs, int n, double raw_rate)
{
	double rate = n / secs;

	printf("%-28s %9.0f /s %8.1f us", name, rate, secs / n * 1e6);
	if (raw_rate > 0)
		printf("  %5.1f%% of raw", 100.0 * rate / raw_rate);
	printf("\n");
}

/* Raw limit: verify the CSR signature with a ready key, then sign the same bytes. */
static double
bench_raw(EVP_PKEY *ca_key, int n)
{
	EVP_PKEY *dev = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char msg[300], sig[128], sig2[128];
	size_t sig_len = sizeof(sig), sig2_len;
	EVP_MD_CTX *ctx;
	double t0;
	int i;

	memset(msg, 0x5a, sizeof(msg));
	ctx = EVP_MD_CTX_new();
	EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, dev, NULL);
	EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof(msg));
	EVP_MD_CTX_free(ctx);
	t0 = now();
	for (i = 0; i < n; i++) {
		ctx = EVP_MD_CTX_new();
		if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, dev, NULL) != 1 ||
		    EVP_DigestVerify(ctx, sig, sig_len, msg, sizeof(msg)) != 1)
			abort();
		EVP_MD_CTX_free(ctx);
		ctx = EVP_MD_CTX_new();
		sig2_len = sizeof(sig2);
		if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, ca_key, NULL) != 1 ||
		    EVP_DigestSign(ctx, sig2, &sig2_len, msg, sizeof(msg)) != 1)
			abort();
		EVP_MD_CTX_free(ctx);
	}
	EVP_PKEY_free(dev);
	return now() - t0;
}

/* Which issuance path bench_full() times. */
enum path { PATH_X509, PATH_HOT };

static double
bench_full(cf_pki_ca *ca, const char *csr_pem, size_t csr_len, int n, enum path path)
{
	cf_pki_key_policy policy;
	cf_pki_profile profile;
	cf_pki_cert_info info;
	double t0;
	int i;

	cf_pki_key_policy_init(&policy);
	cf_pki_profile_init(&profile);
	t0 = now();
	for (i = 0; i < n; i++) {
		cf_pki_csr *csr = NULL;
		X509 *cert = NULL;
		unsigned char *der = NULL;
		size_t der_len, pem_len;
		char *pem = NULL;

		if (cf_pki_csr_parse(&csr, csr_pem, csr_len, NULL) != 0 ||
		    cf_pki_csr_check_policy(csr, &policy, NULL) != 0)
			abort();
		if (path == PATH_X509) {
			if (cf_pki_issue(&cert, ca, csr, "thing-0001", &profile, NULL) != 0 ||
			    cf_pki_cert_to_pem(&pem, &pem_len, cert, NULL) != 0 ||
			    cf_pki_cert_info_get(&info, cert, NULL) != 0)
				abort();
		} else if (cf_pki_issue_der(&der, &der_len, ca, csr, "thing-0001", &profile, &info,
					    NULL) != 0 ||
			   cf_pki_der_to_pem(&pem, &pem_len, der, der_len, "CERTIFICATE", NULL) !=
				   0) {
			abort();
		}
		free(pem);
		free(der);
		X509_free(cert);
		cf_pki_csr_free(csr);
	}
	return now() - t0;
}

/* Time one step alone, for the "where the time goes" table. */
static void
bench_steps(cf_pki_ca *ca, const char *csr_pem, size_t csr_len, int n)
{
	cf_pki_profile profile;
	cf_pki_cert_info info;
	cf_pki_csr *csr = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t der_len, pem_len;
	X509 *cert = NULL;
	char *pem = NULL;
	double t0;
	int i;

	cf_pki_profile_init(&profile);
	t0 = now();
	for (i = 0; i < n; i++) {
		cf_pki_csr_free(csr);
		csr = NULL;
		cf_pki_csr_parse(&csr, csr_pem, csr_len, NULL);
	}
	report("  step csr_parse", now() - t0, n, 0);
	t0 = now();
	for (i = 0; i < n; i++) {
		free(der);
		cf_pki_issue_der(&der, &der_len, ca, csr, "thing-0001", &profile, NULL, NULL);
	}
	report("  step issue_der", now() - t0, n, 0);
	t0 = now();
	for (i = 0; i < n; i++) {
		free(der);
		cf_pki_issue_der(&der, &der_len, ca, csr, "thing-0001", &profile, &info, NULL);
	}
	report("  step issue_der + info", now() - t0, n, 0);
	t0 = now();
	for (i = 0; i < n; i++) {
		free(pem);
		cf_pki_der_to_pem(&pem, &pem_len, der, der_len, "CERTIFICATE", NULL);
	}
	report("  step der_to_pem", now() - t0, n, 0);
	free(pem);
	pem = NULL;
	t0 = now();
	for (i = 0; i < n; i++) {
		X509_free(cert);
		p = der;
		cert = d2i_X509(NULL, &p, (long)der_len);
	}
	report("  step d2i_X509", now() - t0, n, 0);
	t0 = now();
	for (i = 0; i < n; i++) {
		free(pem);
		cf_pki_cert_to_pem(&pem, &pem_len, cert, NULL);
	}
	report("  step cert_to_pem", now() - t0, n, 0);
	t0 = now();
	for (i = 0; i < n; i++)
		cf_pki_cert_info_get(&info, cert, NULL);
	report("  step cert_info_get", now() - t0, n, 0);
	free(pem);
	free(der);
	X509_free(cert);
	cf_pki_csr_free(csr);
}

int
main(int argc, char **argv)
{
	EVP_PKEY *key = NULL;
	X509 *root = NULL;
	cf_pki_ca *ca = NULL;
	char *csr = NULL;
	size_t csr_len = 0;
	int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20000;
	double raw;

	if (argc < 2 || n < 4 || cf_file_read(&csr, &csr_len, argv[1], CF_PKI_CSR_MAX, NULL) != 0) {
		fprintf(stderr, "usage: bench_pki CSR.pem [COUNT >= 4]\n");
		return 2;
	}
	if (cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL) != 0 ||
	    cf_pki_root_create(&root, key, "bench CA", NULL, 3650, NULL) != 0 ||
	    cf_pki_ca_new(&ca, root, key, NULL) != 0)
		return 1;
	raw = bench_raw(key, n);
	report("raw verify+sign", raw, n, 0);
	report("full (X509 + PEM + info)", bench_full(ca, csr, csr_len, n, PATH_X509), n, n / raw);
	report("hot (DER + info + PEM)", bench_full(ca, csr, csr_len, n, PATH_HOT), n, n / raw);
	bench_steps(ca, csr, csr_len, n / 4);
		cf_pki_ca_free(ca);
	X509_free(root);
	EVP_PKEY_free(key);
	free(csr);
	return 0;
}
