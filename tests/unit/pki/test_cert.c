/* Certificate facts, identifiers, PEM, key quality, revocation reasons. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

static X509 *
device_cert(struct pki_test_chain *chain, const char *csr_name, const char *thing)
{
	cf_pki_csr *csr = pki_test_csr(csr_name);
	cf_pki_profile profile;
	X509 *cert = NULL;

	cf_pki_profile_init(&profile);
	assert_int_equal(cf_pki_issue(&cert, chain->int_ca, csr, thing, &profile, NULL), 0);
	cf_pki_csr_free(csr);
	return cert;
}

static void
test_pki_cert__id_is_sha256_of_der(void **state)
{
	struct pki_test_chain chain;
	unsigned char *der = NULL, md[32];
	char want[CF_PKI_ID_LEN], id[CF_PKI_ID_LEN];
	X509 *cert;
	int len;

	(void)state;
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	cert = device_cert(&chain, "good-p256.pem", "thing-1");
	len = i2d_X509(cert, &der);
	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL), 1);
	cf_hex_encode(want, md, sizeof(md));
	assert_int_equal(cf_pki_cert_id(id, cert, NULL), 0);
	assert_string_equal(id, want);
	OPENSSL_free(der);
	X509_free(cert);
	pki_test_chain_clear(&chain);
}

static void
test_pki_cert__info_of_device_cert(void **state)
{
	struct pki_test_chain chain;
	cf_pki_cert_info info;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	X509 *cert;
	size_t i;

	(void)state;
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	cert = device_cert(&chain, "good-p256.pem", "thing-1");
	assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
	assert_string_equal(info.subject, "CN=thing-1");
	assert_string_equal(info.issuer, "CN=Test Issuing CA,O=certfleet");
	assert_string_equal(info.common_name, "thing-1");
	assert_string_equal(info.spki_sha256, cf_pki_csr_spki_sha256(csr));
	assert_string_equal(info.key_alg, "EC");
	assert_string_equal(info.key_curve, "P-256");
	assert_int_equal(info.key_bits, 256);
	assert_int_equal(info.key_type, CF_KEY_EC_P256);
	assert_string_equal(info.sig_alg, "ecdsa-with-SHA256");
	assert_false(info.is_ca);
	assert_true(info.key_valid);
	assert_true(info.not_after - info.not_before == 365 * 86400 + 300);
	/* Lowercase hex, no leading zero, at most 32 digits. */
	assert_true(strlen(info.serial) >= 1 && strlen(info.serial) <= 32);
	assert_true(info.serial[0] != '0');
	for (i = 0; info.serial[i] != '\0'; i++)
		assert_non_null(strchr("0123456789abcdef", info.serial[i]));
	assert_int_equal(cf_pki_cert_info_get(&info, chain.root, NULL), 0);
	assert_true(info.is_ca);
	assert_string_equal(info.subject, "CN=Test Root,O=certfleet");
	X509_free(cert);
	cf_pki_csr_free(csr);
	pki_test_chain_clear(&chain);
}

static void
test_pki_cert__info_key_kinds(void **state)
{
	static const struct {
		const char *csr;
		const char *alg;
		const char *curve;
		cf_key_type type;
	} cases[] = {
		{ "good-p384.pem", "EC", "P-384", CF_KEY_EC_P384 },
		{ "good-ed25519.pem", "ED25519", "", CF_KEY_ED25519 },
		{ "good-rsa2048.pem", "RSA", "", CF_KEY_RSA_2048 },
	};
	struct pki_test_chain chain;
	cf_pki_cert_info info;
	size_t i;

	(void)state;
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	for (i = 0; i < CF_ARRAY_LEN(cases); i++) {
		X509 *cert = device_cert(&chain, cases[i].csr, "k");

		assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
		assert_string_equal(info.key_alg, cases[i].alg);
		assert_string_equal(info.key_curve, cases[i].curve);
		assert_int_equal(info.key_type, cases[i].type);
		X509_free(cert);
	}
	pki_test_chain_clear(&chain);
}

static void
test_pki_cert__pem_roundtrip(void **state)
{
	struct pki_test_chain chain;
	X509 *cert, *back = NULL;
	char *pem = NULL;
	size_t len = 0;
	cf_err err = CF_ERR_INIT;

	(void)state;
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	cert = device_cert(&chain, "good-p256.pem", "thing-1");
	assert_int_equal(cf_pki_cert_to_pem(&pem, &len, cert, NULL), 0);
	assert_int_equal(strlen(pem), len);
	assert_int_equal(cf_pki_cert_from_pem(&back, pem, len, NULL), 0);
	assert_int_equal(X509_cmp(cert, back), 0);
	X509_free(back);
	back = NULL;
	assert_int_equal(cf_pki_cert_from_pem(&back, "garbage", 7, &err), CF_EINVAL);
	assert_string_equal(err.reason, "BAD_CERTIFICATE");
	free(pem);
	X509_free(cert);
	pki_test_chain_clear(&chain);
}

/* What PEM_write_bio() makes of len bytes under label, NUL-terminated, freed with free(). */
static char *
openssl_pem(const unsigned char *der, size_t len, const char *label)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *copy;
	long n;

	assert_non_null(bio);
	assert_true(PEM_write_bio(bio, label, "", der, (long)len) > 0);
	n = BIO_get_mem_data(bio, &data);
	copy = malloc((size_t)n + 1);
	assert_non_null(copy);
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	BIO_free(bio);
	return copy;
}

/* Byte for byte what PEM_write_bio_X509() writes, for certificates of every key type. */
static void
test_pki_cert__der_to_pem_matches_openssl(void **state)
{
	static const cf_key_type types[] = { CF_KEY_EC_P256, CF_KEY_EC_P384, CF_KEY_ED25519,
					     CF_KEY_RSA_2048 };
	static const char *csrs[] = { "good-p256.pem", "good-p384.pem", "good-ed25519.pem",
				      "good-rsa2048.pem" };
	cf_pki_profile profile;
	size_t i, j;

	(void)state;
	cf_pki_profile_init(&profile);
	for (i = 0; i < CF_ARRAY_LEN(types); i++) {
		struct pki_test_chain chain;

		pki_test_chain_make(&chain, types[i]);
		for (j = 0; j < CF_ARRAY_LEN(csrs); j++) {
			cf_pki_csr *csr = pki_test_csr(csrs[j]);
			unsigned char *der = NULL;
			const unsigned char *p;
			size_t der_len = 0, len = 0;
			char *pem = NULL, *want = NULL;
			X509 *cert;

			assert_int_equal(cf_pki_issue_der(&der, &der_len, chain.int_ca, csr,
							  "thing-1", &profile, NULL, NULL),
					 0);
			p = der;
			cert = d2i_X509(NULL, &p, (long)der_len);
			assert_non_null(cert);
			assert_int_equal(cf_pki_cert_to_pem(&want, NULL, cert, NULL), 0);
			assert_int_equal(
				cf_pki_der_to_pem(&pem, &len, der, der_len, "CERTIFICATE", NULL),
				0);
			assert_string_equal(pem, want);
			assert_int_equal(strlen(pem), len);
			free(want);
			free(pem);
			X509_free(cert);
			free(der);
			cf_pki_csr_free(csr);
		}
		pki_test_chain_clear(&chain);
	}
}

/* Every last-line length, including none (a multiple of 48 bytes), and empty input. */
static void
test_pki_cert__der_to_pem_every_length(void **state)
{
	unsigned char data[200];
	char *pem = NULL, *want;
	size_t i, len = 0;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 37 + 11);
	/* PEM_write_bio() reports 0 bytes for empty data, so compare that by hand. */
	assert_int_equal(cf_pki_der_to_pem(&pem, &len, data, 0, "X509 CRL", NULL), 0);
	assert_string_equal(pem, "-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n");
	free(pem);
	for (i = 1; i <= sizeof(data); i++) {
		want = openssl_pem(data, i, "X509 CRL");
		assert_int_equal(cf_pki_der_to_pem(&pem, &len, data, i, "X509 CRL", NULL), 0);
		assert_string_equal(pem, want);
		assert_int_equal(len, strlen(want));
		free(pem);
		free(want);
	}
	/* len_out may be NULL. */
	assert_int_equal(cf_pki_der_to_pem(&pem, NULL, data, 48, "CERTIFICATE", NULL), 0);
	assert_non_null(pem);
	free(pem);
}

static void
test_pki_cert__der_to_pem_bad_label(void **state)
{
	static const unsigned char der[] = { 0x30, 0x00 };
	char label[66];
	char *pem = (char *)1;
	size_t len = 1;
	cf_err err = CF_ERR_INIT;

	(void)state;
	assert_int_equal(cf_pki_der_to_pem(&pem, &len, der, sizeof(der), NULL, &err), CF_EINVAL);
	assert_null(pem);
	assert_int_equal(len, 0);
	assert_int_equal(cf_pki_der_to_pem(&pem, &len, der, sizeof(der), "", NULL), CF_EINVAL);
	memset(label, 'A', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	assert_int_equal(cf_pki_der_to_pem(&pem, &len, der, sizeof(der), label, NULL), CF_EINVAL);
	label[64] = '\0';
	assert_int_equal(cf_pki_der_to_pem(&pem, &len, der, sizeof(der), label, NULL), 0);
	free(pem);
	assert_int_equal(cf_pki_der_to_pem(&pem, &len, NULL, 5, "CERTIFICATE", NULL), CF_EINVAL);
}

static void
test_pki_cert__signed_by(void **state)
{
	struct pki_test_chain chain;
	X509 *cert;

	(void)state;
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	cert = device_cert(&chain, "good-p256.pem", "thing-1");
	assert_true(cf_pki_cert_signed_by(cert, chain.inter));
	assert_false(cf_pki_cert_signed_by(cert, chain.root));
	assert_true(cf_pki_cert_signed_by(chain.inter, chain.root));
	assert_true(cf_pki_key_matches_cert(chain.root_key, chain.root));
	assert_false(cf_pki_key_matches_cert(chain.root_key, chain.inter));
	X509_free(cert);
	pki_test_chain_clear(&chain);
}

static void
quality(const char *alg, const char *curve, int bits, cf_key_type type, const char *sig,
	const char *want_reason)
{
	cf_pki_cert_info info;
	cf_pki_key_policy policy;
	cf_pki_quality q;

	memset(&info, 0, sizeof(info));
	snprintf(info.key_alg, sizeof(info.key_alg), "%s", alg);
	snprintf(info.key_curve, sizeof(info.key_curve), "%s", curve);
	info.key_bits = bits;
	info.key_type = type;
	info.key_valid = true;
	snprintf(info.sig_alg, sizeof(info.sig_alg), "%s", sig);
	cf_pki_key_policy_init(&policy);
	cf_pki_key_quality(&q, &info, &policy);
	if (want_reason == NULL) {
		assert_true(q.ok);
		assert_null(q.reason);
	} else {
		assert_false(q.ok);
		assert_string_equal(q.reason, want_reason);
		assert_true(q.detail[0] != '\0');
	}
}

static void
test_pki_cert__key_quality(void **state)
{
	(void)state;
	quality("EC", "P-256", 256, CF_KEY_EC_P256, "ecdsa-with-SHA256", NULL);
	quality("EC", "P-384", 384, CF_KEY_EC_P384, "ecdsa-with-SHA384", NULL);
	quality("ED25519", "", 256, CF_KEY_ED25519, "ED25519", NULL);
	quality("RSA", "", 2048, CF_KEY_RSA_2048, "sha256WithRSAEncryption", NULL);
	quality("RSA", "", 1024, CF_KEY_UNKNOWN, "sha256WithRSAEncryption", "WEAK_KEY");
	quality("EC", "P-192", 192, CF_KEY_UNKNOWN, "ecdsa-with-SHA256", "WEAK_KEY");
	quality("EC", "secp256k1", 256, CF_KEY_UNKNOWN, "ecdsa-with-SHA256", "WEAK_KEY");
	quality("DSA", "", 2048, CF_KEY_UNKNOWN, "dsa_with_SHA256", "WEAK_KEY");
	quality("RSA", "", 2048, CF_KEY_RSA_2048, "sha1WithRSAEncryption", "WEAK_SIGNATURE");
	quality("RSA", "", 2048, CF_KEY_RSA_2048, "md5WithRSAEncryption", "WEAK_SIGNATURE");
	quality("EC", "P-256", 256, CF_KEY_EC_P256, "ecdsa-with-SHA1", "WEAK_SIGNATURE");
}

/*
 * A certificate for pub, signed by the chain's issuing CA, made with
 * OpenSSL's own calls. With pub NULL, the key is the P-256 point at
 * infinity, which OpenSSL reads but will not write: its bits go in directly.
 * Returned as parsed back from its DER, as a registered certificate would be.
 */
static X509 *
cert_for_key(struct pki_test_chain *chain, EVP_PKEY *pub)
{
	X509 *cert = X509_new(), *back;
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL, *infinity;
	const unsigned char *p;
	int len;

	assert_non_null(cert);
	assert_non_null(name);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"imported", -1, -1, 0),
			 1);
	assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), 7), 1);
	assert_int_equal(X509_set_subject_name(cert, name), 1);
	assert_int_equal(X509_set_issuer_name(cert, X509_get_subject_name(chain->inter)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), 86400));
	if (pub != NULL) {
		assert_int_equal(X509_set_pubkey(cert, pub), 1);
	} else {
		infinity = OPENSSL_zalloc(1);
		assert_non_null(infinity);
		assert_int_equal(
			X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert),
					       OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
					       OBJ_nid2obj(NID_X9_62_prime256v1), infinity, 1),
			1);
	}
	assert_true(X509_sign(cert, chain->int_key, EVP_sha256()) > 0);
	len = i2d_X509(cert, &der);
	assert_true(len > 0);
	p = der;
	back = d2i_X509(NULL, &p, len);
	assert_non_null(back);
	OPENSSL_free(der);
	X509_NAME_free(name);
	X509_free(cert);
	return back;
}

/* The modulus of key with public exponent e: a key no one can hold the private half of. */
static EVP_PKEY *
rsa_with_exponent(EVP_PKEY *key, unsigned long e)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *n = NULL, *bn_e = BN_new();
	OSSL_PARAM *params;
	EVP_PKEY *out = NULL;

	assert_non_null(bld);
	assert_non_null(ctx);
	assert_non_null(bn_e);
	assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(BN_set_word(bn_e, e), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e), 1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(bn_e);
	return out;
}

/*
 * Registered device certificates and imported CAs get the CSR's key check:
 * RSA with e = 1 or e = 3, and the EC point at infinity, are WEAK_KEY.
 */
static void
test_pki_cert__invalid_key_is_weak(void **state)
{
	static const unsigned long exponents[] = { 1, 3 };
	struct pki_test_chain chain;
	cf_pki_key_policy policy;
	cf_pki_cert_info info;
	cf_pki_quality q;
	EVP_PKEY *rsa = NULL, *bad;
	X509 *cert;
	size_t i;

	(void)state;
	cf_pki_key_policy_init(&policy);
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	assert_int_equal(cf_pki_key_generate(&rsa, CF_KEY_RSA_2048, NULL), 0);
	/* The real key: valid. */
	cert = cert_for_key(&chain, rsa);
	assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
	assert_true(info.key_valid);
	cf_pki_key_quality(&q, &info, &policy);
	assert_true(q.ok);
	X509_free(cert);
	for (i = 0; i < CF_ARRAY_LEN(exponents); i++) {
		bad = rsa_with_exponent(rsa, exponents[i]);
		cert = cert_for_key(&chain, bad);
		assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
		assert_string_equal(info.key_alg, "RSA");
		assert_int_equal(info.key_bits, 2048);
		assert_false(info.key_valid);
		cf_pki_key_quality(&q, &info, &policy);
		assert_false(q.ok);
		assert_string_equal(q.reason, "WEAK_KEY");
		assert_int_equal(ERR_peek_error(), 0);
		X509_free(cert);
		EVP_PKEY_free(bad);
	}
	/* The P-256 point at infinity. */
	cert = cert_for_key(&chain, NULL);
	assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
	assert_string_equal(info.key_curve, "P-256");
	assert_false(info.key_valid);
	cf_pki_key_quality(&q, &info, &policy);
	assert_string_equal(q.reason, "WEAK_KEY");
	X509_free(cert);
	/* The chain's own certificates are fine. */
	assert_int_equal(cf_pki_cert_info_get(&info, chain.inter, NULL), 0);
	assert_true(info.key_valid);
	EVP_PKEY_free(rsa);
	pki_test_chain_clear(&chain);
}

/* ---- ROCA (CVE-2017-15361) ------------------------------------------ */

/* The odd primes up to 167: those RSALib's M always has, bar 2. */
static const unsigned int primes[] = { 3,   5,   7,   11,  13,  17,  19,  23,  29,  31,
				       37,  41,  43,  47,  53,  59,  61,  67,  71,  73,
				       79,  83,  89,  97,  101, 103, 107, 109, 113, 127,
				       131, 137, 139, 149, 151, 157, 163, 167 };

static BIGNUM *
modulus_of(EVP_PKEY *key)
{
	BIGNUM *n = NULL;

	assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	return n;
}

/*
 * Moduli made as RSALib makes them are flagged: 1024-bit ones from 512-bit
 * primes with M of 39 primes, and a 2048-bit one with M of 126 primes, as
 * RSALib has for 1024-bit primes (the test reads only M's first 39).
 */
static void
test_pki_cert__roca_moduli_flagged(void **state)
{
	EVP_PKEY *key;
	BIGNUM *n;
	int i;

	(void)state;
	for (i = 0; i < 9; i++) {
		key = i < 8 ? pki_test_roca_key(1024, 39) : pki_test_roca_key(2048, 126);
		n = modulus_of(key);
		assert_int_equal(BN_num_bits(n), i < 8 ? 1024 : 2048);
		assert_true(cf_pki_rsa_modulus_roca(n));
		BN_free(n);
		EVP_PKEY_free(key);
	}
	assert_false(cf_pki_rsa_modulus_roca(NULL));
}

/*
 * The fingerprint is N = 65537^c mod M for one c, not only a power of
 * 65537 modulo each prime on its own: a modulus built with an exponent of
 * its own for each prime (from the CRT) is not flagged, one built from a
 * single exponent is, product of primes or not.
 */
static void
test_pki_cert__roca_needs_one_exponent(void **state)
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *m = pki_test_primorial(39), *n = BN_new(), *k = BN_new(), *c = BN_new();
	BIGNUM *g = BN_new(), *part = BN_new(), *mr = BN_new(), *r_bn = BN_new();
	BIGNUM *e_r = BN_new(), *inv = BN_new();
	unsigned char pick[CF_ARRAY_LEN(primes)];
	size_t j;
	int round;

	(void)state;
	assert_non_null(ctx);
	assert_non_null(inv);
	assert_int_equal(BN_set_word(g, 65537), 1);
	for (round = 0; round < 20; round++) {
		/* One exponent: k * M + 65537^c mod M, k and c random. */
		assert_int_equal(BN_rand(k, 1800, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
		assert_int_equal(BN_rand_range(c, m), 1);
		assert_int_equal(BN_mod_exp(n, g, c, m, ctx), 1);
		assert_int_equal(BN_mul(k, k, m, ctx), 1);
		assert_int_equal(BN_add(n, n, k), 1);
		assert_true(cf_pki_rsa_modulus_roca(n));
		/*
		 * An exponent per prime: N = sum over r of 65537^c_r * (M/r) *
		 * ((M/r)^-1 mod r), reduced mod M, so N mod r = 65537^c_r mod r.
		 * The c_r fit one exponent with probability 2^-127.
		 */
		assert_int_equal(RAND_bytes(pick, sizeof(pick)), 1);
		BN_zero(n);
		for (j = 0; j < CF_ARRAY_LEN(primes); j++) {
			assert_int_equal(BN_set_word(r_bn, primes[j]), 1);
			assert_int_equal(BN_set_word(c, pick[j]), 1);
			assert_int_equal(BN_mod_exp(e_r, g, c, r_bn, ctx), 1);
			assert_int_equal(BN_div(mr, NULL, m, r_bn, ctx), 1);
			assert_non_null(BN_mod_inverse(inv, mr, r_bn, ctx));
			assert_int_equal(BN_mul(part, mr, inv, ctx), 1);
			assert_int_equal(BN_mul(part, part, e_r, ctx), 1);
			assert_int_equal(BN_add(n, n, part), 1);
		}
		assert_int_equal(BN_nnmod(n, n, m, ctx), 1);
		/* Odd, as a modulus is: M / 2 is odd, so adding it changes nothing mod r. */
		if (!BN_is_odd(n)) {
			assert_int_equal(BN_rshift1(part, m), 1);
			assert_int_equal(BN_add(n, n, part), 1);
		}
		for (j = 0; j < CF_ARRAY_LEN(primes); j++) {
			assert_int_equal(BN_set_word(c, pick[j]), 1);
			assert_int_equal(BN_set_word(r_bn, primes[j]), 1);
			assert_int_equal(BN_mod_exp(e_r, g, c, r_bn, ctx), 1);
			assert_true(BN_mod_word(n, primes[j]) == BN_get_word(e_r));
		}
		assert_false(cf_pki_rsa_modulus_roca(n));
	}
	BN_free(m);
	BN_free(n);
	BN_free(k);
	BN_free(c);
	BN_free(g);
	BN_free(part);
	BN_free(mr);
	BN_free(r_bn);
	BN_free(e_r);
	BN_free(inv);
	BN_CTX_free(ctx);
}

/*
 * Every prime up to 167 counts: N = 1 mod every other prime and t mod r is
 * flagged for t = 1 (65537^0 throughout), and not when t is 0 or any other
 * residue that is not a power of 65537 mod r.
 */
static void
test_pki_cert__roca_every_prime_checked(void **state)
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *m = pki_test_primorial(39), *base = BN_new(), *mr = BN_new(), *unit = BN_new();
	BIGNUM *r_bn = BN_new(), *n = BN_new(), *step = BN_new();
	bool power[168];
	unsigned int r, t, x;
	size_t j;

	(void)state;
	assert_non_null(ctx);
	assert_non_null(step);
	/* base = k * M + 1 for a random k, so that N is the size of a real modulus. */
	assert_int_equal(BN_rand(base, 1800, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
	assert_int_equal(BN_mul(base, base, m, ctx), 1);
	assert_int_equal(BN_add_word(base, 1), 1);
	assert_true(cf_pki_rsa_modulus_roca(base));
	for (j = 0; j < CF_ARRAY_LEN(primes); j++) {
		r = primes[j];
		memset(power, 0, sizeof(power));
		x = 1;
		do {
			power[x] = true;
			x = x * (65537 % r) % r;
		} while (x != 1);
		/* unit = (M/r) * ((M/r)^-1 mod r): 1 mod r, 0 mod every other prime. */
		assert_int_equal(BN_set_word(r_bn, r), 1);
		assert_int_equal(BN_div(mr, NULL, m, r_bn, ctx), 1);
		assert_non_null(BN_mod_inverse(unit, mr, r_bn, ctx));
		assert_int_equal(BN_mul(unit, unit, mr, ctx), 1);
		for (t = 0; t < r; t++) {
			/* N = base + (t - 1) * unit: t mod r, 1 mod the others. */
			assert_non_null(BN_copy(n, base));
			assert_non_null(BN_copy(step, unit));
			assert_int_equal(BN_mul_word(step, t == 0 ? 1 : t - 1), 1);
			if (t == 0)
				assert_int_equal(BN_sub(n, n, step), 1);
			else
				assert_int_equal(BN_add(n, n, step), 1);
			assert_true(BN_mod_word(n, r) == t);
			if (t == 1)
				assert_true(cf_pki_rsa_modulus_roca(n));
			else if (!power[t])
				assert_false(cf_pki_rsa_modulus_roca(n));
		}
	}
	BN_free(m);
	BN_free(base);
	BN_free(mr);
	BN_free(unit);
	BN_free(r_bn);
	BN_free(n);
	BN_free(step);
	BN_CTX_free(ctx);
}

/*
 * Ordinary moduli are not: 20 RSA-2048 keys from OpenSSL's key generation
 * and 200 random odd 2048-bit numbers. Also not: zero, negative numbers.
 */
static void
test_pki_cert__roca_ordinary_moduli_pass(void **state)
{
	EVP_PKEY *key;
	BIGNUM *n;
	int i;

	(void)state;
	for (i = 0; i < 20; i++) {
		key = NULL;
		assert_int_equal(cf_pki_key_generate(&key, CF_KEY_RSA_2048, NULL), 0);
		n = modulus_of(key);
		assert_false(cf_pki_rsa_modulus_roca(n));
		BN_free(n);
		EVP_PKEY_free(key);
	}
	n = BN_new();
	assert_non_null(n);
	for (i = 0; i < 200; i++) {
		assert_int_equal(BN_rand(n, 2048, BN_RAND_TOP_TWO, BN_RAND_BOTTOM_ODD), 1);
		assert_false(cf_pki_rsa_modulus_roca(n));
	}
	BN_zero(n);
	assert_false(cf_pki_rsa_modulus_roca(n));
	assert_int_equal(BN_set_word(n, 65537), 1);
	assert_true(cf_pki_rsa_modulus_roca(n)); /* pure arithmetic: 65537 is a power of 65537 */
	BN_set_negative(n, 1);
	assert_false(cf_pki_rsa_modulus_roca(n));
	BN_free(n);
}

/*
 * The whole path: a certificate for an RSALib-style 2048-bit key (which
 * signs it itself, and which the issuing CA signs) has key_roca, and
 * cf_pki_key_quality() calls it WEAK_KEY with its own detail whatever the
 * policy's minimum; OpenSSL's keys and EC keys do not.
 */
static void
test_pki_cert__roca_certificate_is_weak(void **state)
{
	struct pki_test_chain chain;
	cf_pki_key_policy policy;
	cf_pki_cert_info info;
	cf_pki_quality q;
	EVP_PKEY *roca = pki_test_roca_key(2048, 126), *rsa = NULL;
	X509 *cert, *self;

	(void)state;
	cf_pki_key_policy_init(&policy);
	pki_test_chain_make(&chain, CF_KEY_EC_P256);
	cert = cert_for_key(&chain, roca);
	assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
	assert_string_equal(info.key_alg, "RSA");
	assert_int_equal(info.key_type, CF_KEY_RSA_2048);
	assert_true(info.key_valid);
	assert_true(info.key_roca);
	cf_pki_key_quality(&q, &info, &policy);
	assert_false(q.ok);
	assert_string_equal(q.reason, "WEAK_KEY");
	assert_string_equal(q.detail, "RSA modulus with the ROCA fingerprint (CVE-2017-15361)");
	policy.rsa_min_bits = 1024;
	cf_pki_key_quality(&q, &info, &policy);
	assert_string_equal(q.reason, "WEAK_KEY");
	assert_int_equal(ERR_peek_error(), 0);
	X509_free(cert);
	/* A self-signed CA with that key: the signature is real, the key still weak. */
	assert_int_equal(cf_pki_root_create(&self, roca, "ROCA Root", NULL, 30, NULL), 0);
	assert_true(cf_pki_cert_signed_by(self, self));
	assert_int_equal(cf_pki_cert_info_get(&info, self, NULL), 0);
	assert_true(info.is_ca);
	assert_true(info.key_roca);
	cf_pki_key_quality(&q, &info, &policy);
	assert_string_equal(q.reason, "WEAK_KEY");
	X509_free(self);
	/* An OpenSSL RSA key and the EC chain: not ROCA, fine. */
	cf_pki_key_policy_init(&policy);
	assert_int_equal(cf_pki_key_generate(&rsa, CF_KEY_RSA_2048, NULL), 0);
	cert = cert_for_key(&chain, rsa);
	assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
	assert_false(info.key_roca);
	cf_pki_key_quality(&q, &info, &policy);
	assert_true(q.ok);
	X509_free(cert);
	cert = device_cert(&chain, "good-p256.pem", "thing-1");
	assert_int_equal(cf_pki_cert_info_get(&info, cert, NULL), 0);
	assert_false(info.key_roca);
	cf_pki_key_quality(&q, &info, &policy);
	assert_true(q.ok);
	X509_free(cert);
	assert_int_equal(cf_pki_cert_info_get(&info, chain.inter, NULL), 0);
	assert_false(info.key_roca);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(roca);
	pki_test_chain_clear(&chain);
}

static void
test_pki_cert__revoke_reasons(void **state)
{
	static const char *good[] = { "unspecified",        "keyCompromise", "cACompromise",
				      "affiliationChanged", "superseded",    "cessationOfOperation",
				      "privilegeWithdrawn", "aACompromise" };
	static const char *bad[] = { "certificateHold", "removeFromCRL", "keycompromise", "",
				     "KeyCompromise",   "other" };
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(good); i++)
		assert_true(cf_pki_revoke_reason_valid(good[i]));
	for (i = 0; i < CF_ARRAY_LEN(bad); i++)
		assert_false(cf_pki_revoke_reason_valid(bad[i]));
	assert_false(cf_pki_revoke_reason_valid(NULL));
}

int
test_pki_cert_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_cert__id_is_sha256_of_der),
		cmocka_unit_test(test_pki_cert__info_of_device_cert),
		cmocka_unit_test(test_pki_cert__info_key_kinds),
		cmocka_unit_test(test_pki_cert__pem_roundtrip),
		cmocka_unit_test(test_pki_cert__der_to_pem_matches_openssl),
		cmocka_unit_test(test_pki_cert__der_to_pem_every_length),
		cmocka_unit_test(test_pki_cert__der_to_pem_bad_label),
		cmocka_unit_test(test_pki_cert__signed_by),
		cmocka_unit_test(test_pki_cert__key_quality),
		cmocka_unit_test(test_pki_cert__invalid_key_is_weak),
		cmocka_unit_test(test_pki_cert__roca_moduli_flagged),
		cmocka_unit_test(test_pki_cert__roca_needs_one_exponent),
		cmocka_unit_test(test_pki_cert__roca_every_prime_checked),
		cmocka_unit_test(test_pki_cert__roca_ordinary_moduli_pass),
		cmocka_unit_test(test_pki_cert__roca_certificate_is_weak),
		cmocka_unit_test(test_pki_cert__revoke_reasons),
	};

	return cmocka_run_group_tests_name("pki_cert", tests, NULL, NULL);
}
