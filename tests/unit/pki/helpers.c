/* Shared helpers for the pki unit tests. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

char *
pki_test_fixture(const char *name, size_t *len)
{
	const char *root = getenv("CF_SOURCE_DIR");
	char path[1024];
	char *data = NULL;

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/tests/data/csr/%s", root, name);
	assert_int_equal(cf_file_read(&data, len, path, 1 << 20, NULL), 0);
	return data;
}

void
pki_test_chain_make(struct pki_test_chain *chain, cf_key_type type)
{
	memset(chain, 0, sizeof(*chain));
	assert_int_equal(cf_pki_key_generate(&chain->root_key, type, NULL), 0);
	assert_int_equal(cf_pki_root_create(&chain->root, chain->root_key, "Test Root", "certfleet",
					    3650, NULL),
			 0);
	assert_int_equal(cf_pki_ca_new(&chain->root_ca, chain->root, chain->root_key, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&chain->int_key, type, NULL), 0);
	assert_int_equal(cf_pki_intermediate_sign(&chain->inter, chain->root_ca, chain->int_key,
						  "Test Issuing CA", "certfleet", 1825, NULL),
			 0);
	assert_int_equal(cf_pki_ca_new(&chain->int_ca, chain->inter, chain->int_key, NULL), 0);
}

void
pki_test_chain_clear(struct pki_test_chain *chain)
{
	cf_pki_ca_free(chain->int_ca);
	X509_free(chain->inter);
	EVP_PKEY_free(chain->int_key);
	cf_pki_ca_free(chain->root_ca);
	X509_free(chain->root);
	EVP_PKEY_free(chain->root_key);
	memset(chain, 0, sizeof(*chain));
}

cf_pki_csr *
pki_test_csr(const char *name)
{
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	size_t len = 0;
	char *data = pki_test_fixture(name, &len);

	if (cf_pki_csr_parse(&csr, data, len, &err) != 0)
		fail_msg("%s: %s", name, err.msg);
	free(data);
	return csr;
}

BIGNUM *
pki_test_primorial(int count)
{
	BIGNUM *m = BN_new();
	BN_ULONG c, f;
	int found = 0;
	bool prime;

	assert_non_null(m);
	assert_int_equal(BN_one(m), 1);
	for (c = 2; found < count; c++) {
		prime = true;
		for (f = 2; f * f <= c; f++)
			prime = prime && c % f != 0;
		if (!prime)
			continue;
		assert_int_equal(BN_mul_word(m, c), 1);
		found++;
	}
	return m;
}

/* A prime of exactly bits bits of the form k * m + (65537^a mod m). */
static BIGNUM *
rsalib_prime(int bits, const BIGNUM *m, BN_CTX *ctx)
{
	BIGNUM *p = BN_new(), *k = BN_new(), *a = BN_new(), *g = BN_new(), *ga = BN_new();
	int k_bits = bits - BN_num_bits(m) + 1;

	assert_non_null(p);
	assert_non_null(k);
	assert_non_null(a);
	assert_non_null(g);
	assert_non_null(ga);
	assert_true(k_bits >= 8);
	assert_int_equal(BN_set_word(g, 65537), 1);
	for (;;) {
		assert_int_equal(BN_rand_range(a, m), 1);
		assert_int_equal(BN_mod_exp(ga, g, a, m, ctx), 1);
		assert_int_equal(BN_rand(k, k_bits, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), 1);
		assert_int_equal(BN_mul(p, k, m, ctx), 1);
		assert_int_equal(BN_add(p, p, ga), 1);
		/* Too short or too long costs nothing; only the right size is tested. */
		if (BN_num_bits(p) == bits && BN_check_prime(p, ctx, NULL) == 1)
			break;
	}
	BN_free(k);
	BN_free(a);
	BN_free(g);
	BN_free(ga);
	return p;
}

EVP_PKEY *
pki_test_roca_key(int bits, int m_primes)
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *m = pki_test_primorial(m_primes), *p = NULL, *q = NULL;
	BIGNUM *n = BN_new(), *e = BN_new(), *d = BN_new(), *p1 = BN_new(), *q1 = BN_new();
	BIGNUM *lcm = BN_new(), *gcd = BN_new(), *dmp1 = BN_new(), *dmq1 = BN_new();
	BIGNUM *iqmp = BN_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM *params;
	EVP_PKEY *key = NULL;

	assert_non_null(ctx);
	assert_non_null(n);
	assert_non_null(e);
	assert_non_null(d);
	assert_non_null(p1);
	assert_non_null(q1);
	assert_non_null(lcm);
	assert_non_null(gcd);
	assert_non_null(dmp1);
	assert_non_null(dmq1);
	assert_non_null(iqmp);
	assert_non_null(bld);
	assert_non_null(kctx);
	assert_int_equal(BN_set_word(e, 65537), 1);
	for (;;) {
		BN_free(p);
		BN_free(q);
		p = rsalib_prime(bits / 2, m, ctx);
		q = rsalib_prime(bits / 2, m, ctx);
		assert_int_equal(BN_mul(n, p, q, ctx), 1);
		assert_int_equal(BN_sub(p1, p, BN_value_one()), 1);
		assert_int_equal(BN_sub(q1, q, BN_value_one()), 1);
		assert_int_equal(BN_gcd(gcd, p1, q1, ctx), 1);
		assert_int_equal(BN_mul(lcm, p1, q1, ctx), 1);
		assert_int_equal(BN_div(lcm, NULL, lcm, gcd, ctx), 1);
		/* Retried when p = q, n is a bit short, or 65537 divides p - 1 or q - 1. */
		if (BN_cmp(p, q) != 0 && BN_num_bits(n) == bits &&
		    BN_mod_inverse(d, e, lcm, ctx) != NULL)
			break;
		ERR_clear_error();
	}
	assert_int_equal(BN_mod(dmp1, d, p1, ctx), 1);
	assert_int_equal(BN_mod(dmq1, d, q1, ctx), 1);
	assert_non_null(BN_mod_inverse(iqmp, q, p, ctx));
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dmp1), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dmq1), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, iqmp), 1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(kctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(kctx, &key, EVP_PKEY_KEYPAIR, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(kctx);
	BN_clear_free(d);
	BN_clear_free(p);
	BN_clear_free(q);
	BN_clear_free(p1);
	BN_clear_free(q1);
	BN_clear_free(lcm);
	BN_free(gcd);
	BN_clear_free(dmp1);
	BN_clear_free(dmq1);
	BN_clear_free(iqmp);
	BN_free(n);
	BN_free(e);
	BN_free(m);
	BN_CTX_free(ctx);
	return key;
}

X509_CRL *
pki_test_crl(EVP_PKEY *key, X509 *issuer, const struct pki_test_revoked *revs, size_t n,
	     int64_t last, int64_t next)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t;
	size_t i;

	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_version(crl, X509_CRL_VERSION_2), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)), 1);
	t = ASN1_TIME_set(NULL, (time_t)last);
	assert_non_null(t);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	ASN1_TIME_free(t);
	if (next != 0) {
		t = ASN1_TIME_set(NULL, (time_t)next);
		assert_non_null(t);
		assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
		ASN1_TIME_free(t);
	}
	for (i = 0; i < n; i++) {
		X509_REVOKED *rev = X509_REVOKED_new();
		BIGNUM *bn = NULL;
		ASN1_INTEGER *sn;

		assert_non_null(rev);
		assert_true(BN_hex2bn(&bn, revs[i].serial) > 0);
		sn = BN_to_ASN1_INTEGER(bn, NULL);
		assert_non_null(sn);
		assert_int_equal(X509_REVOKED_set_serialNumber(rev, sn), 1);
		ASN1_INTEGER_free(sn);
		BN_free(bn);
		t = ASN1_TIME_set(NULL, (time_t)revs[i].at);
		assert_non_null(t);
		assert_int_equal(X509_REVOKED_set_revocationDate(rev, t), 1);
		ASN1_TIME_free(t);
		if (revs[i].reason >= 0) {
			ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();

			assert_non_null(e);
			assert_int_equal(ASN1_ENUMERATED_set(e, revs[i].reason), 1);
			assert_int_equal(X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, e, 0, 0),
					 1);
			ASN1_ENUMERATED_free(e);
		}
		assert_int_equal(X509_CRL_add0_revoked(crl, rev), 1);
	}
	assert_int_equal(X509_CRL_sort(crl), 1);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	return crl;
}

void
pki_test_crl_write(X509_CRL *crl, const char *path, bool der)
{
	BIO *bio = BIO_new_file(path, "wb");

	assert_non_null(bio);
	if (der)
		assert_int_equal(i2d_X509_CRL_bio(bio, crl), 1);
	else
		assert_int_equal(PEM_write_bio_X509_CRL(bio, crl), 1);
	assert_int_equal(BIO_free(bio), 1);
}
