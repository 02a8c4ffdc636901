/* Shared helpers for the pki unit tests. */
#ifndef CF_TEST_PKI_HELPERS_H
#define CF_TEST_PKI_HELPERS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pki/pki.h"

/* Read tests/data/csr/<name> (under CF_SOURCE_DIR) into a malloc'd buffer. */
char *pki_test_fixture(const char *name, size_t *len);

/* A root CA, an intermediate signed by it, and a signer for the intermediate. */
struct pki_test_chain {
	EVP_PKEY *root_key;
	X509 *root;
	cf_pki_ca *root_ca;
	EVP_PKEY *int_key;
	X509 *inter;
	cf_pki_ca *int_ca;
};

void pki_test_chain_make(struct pki_test_chain *chain, cf_key_type type);
void pki_test_chain_clear(struct pki_test_chain *chain);

/* Parse a fixture CSR, asserting success. */
cf_pki_csr *pki_test_csr(const char *name);

/* The product of the first count primes (2, 3, 5, ...); BN_free() it. */
BIGNUM *pki_test_primorial(int count);

/*
 * An RSA key pair of bits bits (even) made as Infineon's RSALib makes them
 * (ROCA, CVE-2017-15361): each prime is k * M + (65537^a mod M) for random
 * k and a, M the product of the first m_primes primes (RSALib: 39 for
 * 512-bit primes, 126 for 1024-bit ones). e = 65537, with the CRT values.
 */
EVP_PKEY *pki_test_roca_key(int bits, int m_primes);

/* One entry of a CRL made by pki_test_crl(). */
struct pki_test_revoked {
	const char *serial; /* hex for BN_hex2bn(): "ff", "-5" */
	int64_t at;         /* revocationDate */
	int reason;         /* CRLReason code, -1 for no reason extension */
};

/*
 * A v2 CRL with issuer's subject as its issuer, the entries sorted by
 * serial (X509_CRL_sort()), signed by key with SHA-256. next 0: no
 * nextUpdate. X509_CRL_free() it.
 */
X509_CRL *pki_test_crl(EVP_PKEY *key, X509 *issuer, const struct pki_test_revoked *revs, size_t n,
		       int64_t last, int64_t next);

/* Write crl to path as DER or PEM ("X509 CRL"). */
void pki_test_crl_write(X509_CRL *crl, const char *path, bool der);

/* Groups, one per test file; each returns the number of failures. */
int test_pki_key_run(void);
int test_pki_csr_run(void);
int test_pki_issue_run(void);
int test_pki_cert_run(void);
int test_pki_crl_run(void);

#endif
