/* CSR validation: the fixture corpus, each refusal with its exact reason. */
#include "helpers.h"
#include "pki/pki_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* Parse a fixture and expect rc and reason at parse or policy time. */
static void
expect(const char *name, int rc, const char *reason)
{
	cf_pki_key_policy policy;
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	size_t len = 0;
	char *data = pki_test_fixture(name, &len);
	int got;

	cf_pki_key_policy_init(&policy);
	got = cf_pki_csr_parse(&csr, data, len, &err);
	if (got == 0)
		got = cf_pki_csr_check_policy(csr, &policy, &err);
	if (got != rc || (reason == NULL) != (got == 0 || err.reason == NULL) ||
	    (reason != NULL && strcmp(reason, err.reason) != 0))
		fail_msg("%s: rc %d reason %s (%s), wanted %d %s", name, got,
			 err.reason ? err.reason : "-", err.msg, rc, reason ? reason : "-");
	cf_pki_csr_free(csr);
	free(data);
}

static void
test_pki_csr__good_requests(void **state)
{
	(void)state;
	expect("good-p256.pem", 0, NULL);
	expect("good-p384.pem", 0, NULL);
	expect("good-ed25519.pem", 0, NULL);
	expect("good-rsa2048.pem", 0, NULL);
	expect("good-der-p256.der", 0, NULL);
	expect("empty-subject.pem", 0, NULL);
	expect("other-thing-cn.pem", 0, NULL);
}

static void
test_pki_csr__bad_requests(void **state)
{
	(void)state;
	expect("bad-truncated.pem", CF_EPROTO, "BAD_CSR");
	expect("bad-garbage.pem", CF_EPROTO, "BAD_CSR");
	expect("bad-trailing-garbage.pem", CF_EPROTO, "BAD_CSR");
	expect("bad-tampered-signature.pem", CF_EPROTO, "BAD_SIGNATURE");
	expect("bad-rsa1024.pem", CF_EPROTO, "WEAK_KEY");
	expect("bad-p192.pem", CF_EPROTO, "WEAK_KEY");
	expect("bad-secp256k1.pem", CF_EPROTO, "WEAK_KEY");
	expect("bad-sha1.pem", CF_EPROTO, "WEAK_KEY");
	expect("bad-rsa-e1.der", CF_EPROTO, "WEAK_KEY");
	expect("bad-garbage-subject.der", CF_EPROTO, "BAD_CSR");
}

static void
test_pki_csr__key_types(void **state)
{
	static const struct {
		const char *name;
		cf_key_type type;
	} cases[] = {
		{ "good-p256.pem", CF_KEY_EC_P256 },
		{ "good-p384.pem", CF_KEY_EC_P384 },
		{ "good-ed25519.pem", CF_KEY_ED25519 },
		{ "good-rsa2048.pem", CF_KEY_RSA_2048 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(cases); i++) {
		cf_pki_csr *csr = pki_test_csr(cases[i].name);

		assert_int_equal(cf_pki_csr_key_type(csr), cases[i].type);
		cf_pki_csr_free(csr);
	}
}

static void
test_pki_csr__one_mebibyte_pem(void **state)
{
	size_t len = 1 << 20, i;
	char *big = malloc(len);
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	const char *head = "-----BEGIN CERTIFICATE REQUEST-----\n";

	(void)state;
	assert_non_null(big);
	for (i = 0; i < len; i++)
		big[i] = (i % 65 == 64) ? '\n' : 'A';
	memcpy(big, head, strlen(head));
	assert_int_equal(cf_pki_csr_parse(&csr, big, len, &err), CF_EPROTO);
	assert_string_equal(err.reason, "BAD_CSR");
	assert_null(csr);
	free(big);
}

static void
test_pki_csr__empty_and_limit(void **state)
{
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	char *data;
	size_t len = 0;

	(void)state;
	assert_int_equal(cf_pki_csr_parse(&csr, "", 0, &err), CF_EPROTO);
	assert_string_equal(err.reason, "BAD_CSR");
	/* A valid request padded with whitespace past the limit is refused by size. */
	data = pki_test_fixture("good-p256.pem", &len);
	data = realloc(data, CF_PKI_CSR_MAX + 1);
	assert_non_null(data);
	memset(data + len, '\n', CF_PKI_CSR_MAX + 1 - len);
	assert_int_equal(cf_pki_csr_parse(&csr, data, CF_PKI_CSR_MAX, &err), 0);
	cf_pki_csr_free(csr);
	csr = NULL;
	assert_int_equal(cf_pki_csr_parse(&csr, data, CF_PKI_CSR_MAX + 1, &err), CF_EPROTO);
	assert_string_equal(err.reason, "BAD_CSR");
	free(data);
}

/* Every prefix of a good DER request is refused, without reading past it (ASan). */
static void
test_pki_csr__every_truncation(void **state)
{
	size_t len = 0, i;
	char *der = pki_test_fixture("good-der-p256.der", &len);
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	for (i = 1; i < len; i++) {
		unsigned char *copy = malloc(i);

		memcpy(copy, der, i);
		assert_int_equal(cf_pki_csr_parse(&csr, copy, i, &err), CF_EPROTO);
		assert_null(csr);
		free(copy);
	}
	free(der);
}

/* Flipping any single byte never crashes and never yields a different key. */
static void
test_pki_csr__byte_flips(void **state)
{
	size_t len = 0, i;
	unsigned char *der = (unsigned char *)pki_test_fixture("good-der-p256.der", &len);
	cf_pki_csr *csr = NULL, *orig = pki_test_csr("good-der-p256.der");

	(void)state;
	for (i = 0; i < len; i++) {
		der[i] ^= 0x41;
		if (cf_pki_csr_parse(&csr, der, len, NULL) == 0) {
			assert_string_equal(cf_pki_csr_spki_sha256(csr),
					    cf_pki_csr_spki_sha256(orig));
			cf_pki_csr_free(csr);
			csr = NULL;
		}
		der[i] ^= 0x41;
	}
	cf_pki_csr_free(orig);
	free(der);
}

static void
test_pki_csr__spki_sha256_matches_key(void **state)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	cf_pki_csr *csr = NULL;
	char want[CF_PKI_ID_LEN];
	int len;

	(void)state;
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_ca_csr_create(&req, key, "offline", NULL, NULL), 0);
	len = i2d_X509_REQ(req, &der);
	assert_true(len > 0);
	assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, NULL), 0);
	assert_int_equal(cf_pki_key_spki_sha256(want, key, NULL), 0);
	assert_string_equal(cf_pki_csr_spki_sha256(csr), want);
	assert_int_equal(strlen(want), 64);
	cf_pki_csr_free(csr);
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static void
test_pki_csr__policy_switches(void **state)
{
	cf_pki_key_policy policy;
	cf_pki_csr *p256 = pki_test_csr("good-p256.pem");
	cf_pki_csr *rsa = pki_test_csr("good-rsa2048.pem");
	cf_pki_csr *ed = pki_test_csr("good-ed25519.pem");
	cf_err err = CF_ERR_INIT;

	(void)state;
	cf_pki_key_policy_init(&policy);
	policy.rsa_min_bits = 3072;
	assert_int_equal(cf_pki_csr_check_policy(rsa, &policy, &err), CF_EPROTO);
	assert_string_equal(err.reason, "WEAK_KEY");
	policy.allow_p256 = false;
	assert_int_equal(cf_pki_csr_check_policy(p256, &policy, &err), CF_EPROTO);
	policy.allow_ed25519 = false;
	assert_int_equal(cf_pki_csr_check_policy(ed, &policy, &err), CF_EPROTO);
	cf_pki_csr_free(p256);
	cf_pki_csr_free(rsa);
	cf_pki_csr_free(ed);
}

/* A DER request for key, signed with md_name ("SHA256", ...); OPENSSL_free() it. */
static int
ec_request_der(unsigned char **out, EVP_PKEY *key, const char *md_name)
{
	X509_REQ *req = X509_REQ_new();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int len;

	assert_non_null(req);
	assert_non_null(ctx);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, md_name, NULL, NULL, key, NULL), 1);
	assert_true(X509_REQ_sign_ctx(req, ctx) > 0);
	*out = NULL;
	len = i2d_X509_REQ(req, out);
	assert_true(len > 0);
	EVP_MD_CTX_free(ctx);
	X509_REQ_free(req);
	return len;
}

/*
 * Every ECDSA digest on both curves, with the point compressed and not:
 * the key built from the per-curve template verifies each of them and is
 * the request's key.
 */
static void
test_pki_csr__ec_digests_and_point_forms(void **state)
{
	static const char *const mds[] = { "SHA224", "SHA256", "SHA384", "SHA512" };
	static const char *const forms[] = { "uncompressed", "compressed" };
	static const cf_key_type curves[] = { CF_KEY_EC_P256, CF_KEY_EC_P384 };
	size_t c, f, m;

	(void)state;
	for (c = 0; c < CF_ARRAY_LEN(curves); c++) {
		for (f = 0; f < CF_ARRAY_LEN(forms); f++) {
			EVP_PKEY *key = NULL;
			char want[CF_PKI_ID_LEN];

			assert_int_equal(cf_pki_key_generate(&key, curves[c], NULL), 0);
			assert_int_equal(EVP_PKEY_set_utf8_string_param(
						 key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
						 forms[f]),
					 1);
			assert_int_equal(cf_pki_key_spki_sha256(want, key, NULL), 0);
			for (m = 0; m < CF_ARRAY_LEN(mds); m++) {
				unsigned char *der = NULL;
				int len = ec_request_der(&der, key, mds[m]);
				cf_pki_csr *csr = NULL;
				cf_err err = CF_ERR_INIT;

				if (cf_pki_csr_parse(&csr, der, (size_t)len, &err) != 0)
					fail_msg("%s %s %s: %s", cf_pki_key_type_name(curves[c]),
						 forms[f], mds[m], err.msg);
				assert_int_equal(cf_pki_csr_key_type(csr), curves[c]);
				assert_string_equal(cf_pki_csr_spki_sha256(csr), want);
				cf_pki_csr_free(csr);
				/* The same request with its last signature byte changed fails. */
				der[len - 1] ^= 0x01;
				assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, &err),
						 CF_EPROTO);
				assert_string_equal(err.reason, "BAD_SIGNATURE");
				assert_null(csr);
				OPENSSL_free(der);
			}
			EVP_PKEY_free(key);
		}
	}
}

/* A point that is not on the curve is refused as BAD_CSR, before any signature check. */
static void
test_pki_csr__point_off_curve(void **state)
{
	static const unsigned char bits_head[] = { 0x03, 0x42, 0x00, 0x04 };
	size_t len = 0, i, at = 0;
	unsigned char *der = (unsigned char *)pki_test_fixture("good-der-p256.der", &len);
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	for (i = 0; i + sizeof(bits_head) + 64 <= len && at == 0; i++) {
		if (memcmp(der + i, bits_head, sizeof(bits_head)) == 0)
			at = i + sizeof(bits_head);
	}
	assert_true(at != 0);
	der[at + 63] ^= 0x01; /* the last byte of y */
	assert_int_equal(cf_pki_csr_parse(&csr, der, len, &err), CF_EPROTO);
	assert_string_equal(err.reason, "BAD_CSR");
	assert_null(csr);
	free(der);
}

/*
 * A P-256 CSR whose key is the point at infinity (the one byte 00) and
 * whose signature is r = s = 1: refused as not a key, before any verify.
 */
static void
test_pki_csr__point_at_infinity(void **state)
{
	static const unsigned char oid_ec[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
	static const unsigned char oid_p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const unsigned char oid_sig[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
	static const unsigned char infinity[] = { 0x00, 0x00 }; /* no unused bits; 00 */
	static const unsigned char sig[] = { 0x00, 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01 };
	static const unsigned char version = 0;
	cf_pki__der_buf b = { NULL, 0, 0, false };
	size_t csr_at, cri_at, name_at, spki_at, alg_at, attrs_at, sigalg_at;
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	csr_at = cf_pki__der_begin(&b);
	cri_at = cf_pki__der_begin(&b);
	cf_pki__der_put_tlv(&b, CF_DER_INTEGER, &version, 1);
	name_at = cf_pki__der_begin(&b);
	cf_pki__der_end(&b, name_at, CF_DER_SEQUENCE);
	spki_at = cf_pki__der_begin(&b);
	alg_at = cf_pki__der_begin(&b);
	cf_pki__der_put_tlv(&b, CF_DER_OID, oid_ec, sizeof(oid_ec));
	cf_pki__der_put_tlv(&b, CF_DER_OID, oid_p256, sizeof(oid_p256));
	cf_pki__der_end(&b, alg_at, CF_DER_SEQUENCE);
	cf_pki__der_put_tlv(&b, CF_DER_BITSTRING, infinity, sizeof(infinity));
	cf_pki__der_end(&b, spki_at, CF_DER_SEQUENCE);
	attrs_at = cf_pki__der_begin(&b);
	cf_pki__der_end(&b, attrs_at, CF_DER_CTX_CONS(0));
	cf_pki__der_end(&b, cri_at, CF_DER_SEQUENCE);
	sigalg_at = cf_pki__der_begin(&b);
	cf_pki__der_put_tlv(&b, CF_DER_OID, oid_sig, sizeof(oid_sig));
	cf_pki__der_end(&b, sigalg_at, CF_DER_SEQUENCE);
	cf_pki__der_put_tlv(&b, CF_DER_BITSTRING, sig, sizeof(sig));
	cf_pki__der_end(&b, csr_at, CF_DER_SEQUENCE);
	assert_false(b.failed);

	assert_int_equal(cf_pki_csr_parse(&csr, b.p, b.len, &err), CF_EPROTO);
	assert_string_equal(err.reason, "BAD_CSR");
	assert_non_null(strstr(err.msg, "not a point"));
	assert_null(csr);
	cf_pki__der_buf_clear(&b);
}

/*
 * RSA-2048 with e = 1 and, for a signature, the PKCS#1 v1.5 padded digest
 * itself: OpenSSL verifies it. Refused for the exponent, before verifying.
 */
static void
test_pki_csr__rsa_exponent_one(void **state)
{
	size_t len = 0;
	char *data = pki_test_fixture("bad-rsa-e1.der", &len);
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	assert_int_equal(cf_pki_csr_parse(&csr, data, len, &err), CF_EPROTO);
	assert_string_equal(err.reason, "WEAK_KEY");
	assert_string_equal(err.msg, "RSA public exponent 1 is not allowed");
	assert_null(csr);
	assert_int_equal(ERR_peek_error(), 0);
	free(data);
}

/* An RSA-2048 key with public exponent e (a real key pair). */
static EVP_PKEY *
rsa_key_with_e(unsigned int e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *key = NULL;
	BIGNUM *bn = BN_new();

	assert_non_null(ctx);
	assert_non_null(bn);
	assert_int_equal(BN_set_word(bn, e), 1);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn), 1);
	assert_int_equal(EVP_PKEY_generate(ctx, &key), 1);
	BN_free(bn);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* e = 3 passes OpenSSL 3.0's own public key check outside FIPS; not ours. */
static void
test_pki_csr__rsa_exponent_three(void **state)
{
	EVP_PKEY *key = rsa_key_with_e(3);
	unsigned char *der = NULL;
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	int len;

	(void)state;
	len = ec_request_der(&der, key, "SHA256");
	assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, &err), CF_EPROTO);
	assert_string_equal(err.reason, "WEAK_KEY");
	assert_string_equal(err.msg, "RSA public exponent 3 is not allowed");
	assert_null(csr);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
}

/*
 * A request for a key made as Infineon's RSALib makes them (ROCA) is well
 * formed and signed, so it parses; the policy check refuses it whatever
 * the minimum RSA size, and says why.
 */
static void
test_pki_csr__roca_key_refused(void **state)
{
	EVP_PKEY *key = pki_test_roca_key(2048, 126);
	unsigned char *der = NULL;
	cf_pki_key_policy policy;
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	int len;

	(void)state;
	len = ec_request_der(&der, key, "SHA256");
	assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, &err), 0);
	assert_int_equal(cf_pki_csr_key_type(csr), CF_KEY_RSA_2048);
	cf_pki_key_policy_init(&policy);
	assert_int_equal(cf_pki_csr_check_policy(csr, &policy, &err), CF_EPROTO);
	assert_string_equal(err.reason, "WEAK_KEY");
	assert_string_equal(err.msg, "RSA modulus with the ROCA fingerprint (CVE-2017-15361)");
	policy.rsa_min_bits = 1024;
	assert_int_equal(cf_pki_csr_check_policy(csr, &policy, &err), CF_EPROTO);
	assert_string_equal(err.reason, "WEAK_KEY");
	assert_int_equal(ERR_peek_error(), 0);
	/* Without DER key bits, or with bits that are not DER, the modulus comes from the key. */
	assert_true(cf_pki__rsa_key_roca(key, NULL, 0));
	assert_true(cf_pki__rsa_key_roca(key, (const unsigned char *)"\x30\x80\x00\x00", 4));
	cf_pki_csr_free(csr);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
}

/* ---- requests built piece by piece, signed properly ------------------ */

static const unsigned char oid_ecdsa_sha256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
static const unsigned char oid_rsa_sha256[] = {
	0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b
};
static const unsigned char oid_ed25519[] = { 0x2b, 0x65, 0x70 };
static const unsigned char der_null[] = { 0x05, 0x00 };

/* What goes into one request; NULL fields take the usual value. */
struct req_parts {
	const void *subject; /* a whole Name element; NULL: SEQUENCE {} */
	size_t subject_len;
	const void *attrs; /* the whole [0] element; NULL: none */
	size_t attrs_len;
	const void *spki; /* NULL: i2d_PUBKEY(key) */
	size_t spki_len;
	const unsigned char *sig_oid; /* NULL: ecdsa-with-SHA256 */
	size_t sig_oid_len;
	const void *sig_params; /* a whole element after the OID, or NULL */
	size_t sig_params_len;
	const char *md; /* the digest to sign with; NULL for Ed25519 */
};

/* A CertificationRequest of parts, signed by key: DER in b. */
static void
build_request(cf_pki__der_buf *b, EVP_PKEY *key, const struct req_parts *rp)
{
	static const unsigned char version = 0;
	unsigned char *spki = NULL, sig[1 + 1024];
	size_t csr_at, cri_at, alg_at, cri_len, sig_len = sizeof(sig) - 1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int n;

	assert_non_null(ctx);
	csr_at = cf_pki__der_begin(b);
	cri_at = cf_pki__der_begin(b);
	cf_pki__der_put_tlv(b, CF_DER_INTEGER, &version, 1);
	if (rp->subject != NULL)
		cf_pki__der_put(b, rp->subject, rp->subject_len);
	else
		cf_pki__der_put(b, "\x30\x00", 2);
	if (rp->spki != NULL) {
		cf_pki__der_put(b, rp->spki, rp->spki_len);
	} else {
		n = i2d_PUBKEY(key, &spki);
		assert_true(n > 0);
		cf_pki__der_put(b, spki, (size_t)n);
		OPENSSL_free(spki);
	}
	if (rp->attrs != NULL)
		cf_pki__der_put(b, rp->attrs, rp->attrs_len);
	cf_pki__der_end(b, cri_at, CF_DER_SEQUENCE);
	assert_false(b->failed);
	cri_len = b->len - cri_at;
	assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, rp->md, NULL, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig + 1, &sig_len, b->p + cri_at, cri_len), 1);
	sig[0] = 0;
	alg_at = cf_pki__der_begin(b);
	if (rp->sig_oid != NULL)
		cf_pki__der_put_tlv(b, CF_DER_OID, rp->sig_oid, rp->sig_oid_len);
	else
		cf_pki__der_put_tlv(b, CF_DER_OID, oid_ecdsa_sha256, sizeof(oid_ecdsa_sha256));
	if (rp->sig_params != NULL)
		cf_pki__der_put(b, rp->sig_params, rp->sig_params_len);
	cf_pki__der_end(b, alg_at, CF_DER_SEQUENCE);
	cf_pki__der_put_tlv(b, CF_DER_BITSTRING, sig, 1 + sig_len);
	cf_pki__der_end(b, csr_at, CF_DER_SEQUENCE);
	assert_false(b->failed);
	EVP_MD_CTX_free(ctx);
}

/* Build, parse, and expect rc with reason (NULL when rc is 0). */
static void
expect_built(const char *what, EVP_PKEY *key, const struct req_parts *rp, int rc,
	     const char *reason)
{
	cf_pki__der_buf b = { NULL, 0, 0, false };
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	int got;

	build_request(&b, key, rp);
	got = cf_pki_csr_parse(&csr, b.p, b.len, &err);
	if (got != rc ||
	    (reason != NULL && (err.reason == NULL || strcmp(err.reason, reason) != 0)))
		fail_msg("%s: rc %d reason %s (%s), wanted %d %s", what, got,
			 err.reason ? err.reason : "-", err.msg, rc, reason ? reason : "-");
	assert_true((csr != NULL) == (rc == 0));
	cf_pki_csr_free(csr);
	cf_pki__der_buf_clear(&b);
}

#define BYTES(s) s, sizeof(s) - 1

/* Subjects: each a whole Name, with whether it is DER. */
static const struct {
	const char *what;
	const char *der;
	size_t len;
	bool good;
} subjects[] = {
	{ "empty name", BYTES("\x30\x00"), true },
	{ "CN=a", BYTES("\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x0c\x01\x61"), true },
	{ "two-valued RDN",
	  BYTES("\x30\x18\x31\x16\x30\x08\x06\x03\x55\x04\x03\x0c\x01\x61"
		"\x30\x0a\x06\x03\x55\x04\x0a\x13\x03\x6f\x72\x67"),
	  true },
	{ "constructed SEQUENCE value",
	  BYTES("\x30\x10\x31\x0e\x30\x0c\x06\x03\x55\x04\x03\x30\x05\x02\x01\x05\x05\x00"), true },
	{ "garbage", BYTES("\x30\x04\xde\xad\xbe\xef"), false },
	{ "RDN not a SET", BYTES("\x30\x02\x30\x00"), false },
	{ "empty RDN", BYTES("\x30\x02\x31\x00"), false },
	{ "ATV without value", BYTES("\x30\x09\x31\x07\x30\x05\x06\x03\x55\x04\x03"), false },
	{ "ATV with two values",
	  BYTES("\x30\x0f\x31\x0d\x30\x0b\x06\x03\x55\x04\x03\x0c\x01\x61\x0c\x01\x62"), false },
	{ "value length not minimal",
	  BYTES("\x30\x0d\x31\x0b\x30\x09\x06\x03\x55\x04\x03\x0c\x81\x01\x61"), false },
	{ "indefinite length value",
	  BYTES("\x30\x0e\x31\x0c\x30\x0a\x06\x03\x55\x04\x03\x0c\x80\x61\x00\x00"), false },
	{ "value overruns its ATV",
	  BYTES("\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x0c\x02\x61"), false },
	{ "constructed OCTET STRING value (BER)",
	  BYTES("\x30\x0f\x31\x0d\x30\x0b\x06\x03\x55\x04\x03\x24\x04\x04\x02\x61\x62"), false },
	{ "high tag number value",
	  BYTES("\x30\x0d\x31\x0b\x30\x09\x06\x03\x55\x04\x03\x1f\x22\x01\x61"), false },
	{ "type not an OID", BYTES("\x30\x0c\x31\x0a\x30\x08\x0c\x03\x55\x04\x03\x0c\x01\x61"),
	  false },
	{ "OID with a 0x80 padding byte",
	  BYTES("\x30\x0d\x31\x0b\x30\x09\x06\x04\x55\x80\x04\x03\x0c\x01\x61"), false },
	{ "OID ending mid sub-identifier",
	  BYTES("\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x83\x0c\x01\x61"), false },
	{ "BOOLEAN 01 (BER)", BYTES("\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x01\x01\x01"),
	  false },
	{ "INTEGER with a leading zero",
	  BYTES("\x30\x0d\x31\x0b\x30\x09\x06\x03\x55\x04\x03\x02\x02\x00\x05"), false },
	{ "NULL with content", BYTES("\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x05\x01\x00"),
	  false },
	{ "trailing byte in the Name",
	  BYTES("\x30\x0d\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x0c\x01\x61\x00"), false },
};

/* attributes [0]: each the whole element, with whether it is DER. */
static const struct {
	const char *what;
	const char *der;
	size_t len;
	bool good;
} attributes[] = {
	{ "empty", BYTES("\xa0\x00"), true },
	{ "challengePassword",
	  BYTES("\xa0\x16\x30\x14\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x07"
		"\x31\x07\x0c\x05\x73\x65\x63\x72\x74"),
	  true },
	{ "extensionRequest, critical basicConstraints",
	  BYTES("\xa0\x22\x30\x20\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x0e"
		"\x31\x13\x30\x11\x30\x0f\x06\x03\x55\x1d\x13\x01\x01\xff"
		"\x04\x05\x30\x03\x01\x01\x00"),
	  true },
	{ "garbage", BYTES("\xa0\x03\xff\xff\xff"), false },
	{ "attribute without values",
	  BYTES("\xa0\x0d\x30\x0b\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x07"), false },
	{ "empty values SET",
	  BYTES("\xa0\x0f\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x07\x31\x00"), false },
	{ "values not a SET",
	  BYTES("\xa0\x16\x30\x14\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x07"
		"\x30\x07\x0c\x05\x73\x65\x63\x72\x74"),
	  false },
	{ "BOOLEAN 01 deep inside (BER)",
	  BYTES("\xa0\x22\x30\x20\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x0e"
		"\x31\x13\x30\x11\x30\x0f\x06\x03\x55\x1d\x13\x01\x01\x01"
		"\x04\x05\x30\x03\x01\x01\x00"),
	  false },
	{ "trailing element after the values",
	  BYTES("\xa0\x18\x30\x16\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x07"
		"\x31\x07\x0c\x05\x73\x65\x63\x72\x74\x05\x00"),
	  false },
};

/* Subject and attributes must be DER throughout, even though nothing reads them. */
static void
test_pki_csr__subject_and_attributes_walked(void **state)
{
	EVP_PKEY *key = NULL;
	size_t i;

	(void)state;
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	for (i = 0; i < CF_ARRAY_LEN(subjects); i++) {
		struct req_parts rp = { 0 };

		rp.subject = subjects[i].der;
		rp.subject_len = subjects[i].len;
		rp.md = "SHA256";
		expect_built(subjects[i].what, key, &rp, subjects[i].good ? 0 : CF_EPROTO,
			     subjects[i].good ? NULL : "BAD_CSR");
	}
	for (i = 0; i < CF_ARRAY_LEN(attributes); i++) {
		struct req_parts rp = { 0 };

		rp.attrs = attributes[i].der;
		rp.attrs_len = attributes[i].len;
		rp.md = "SHA256";
		expect_built(attributes[i].what, key, &rp, attributes[i].good ? 0 : CF_EPROTO,
			     attributes[i].good ? NULL : "BAD_CSR");
	}
	EVP_PKEY_free(key);
}

/* A NULL (or anything) after an ECDSA or Ed25519 OID is BAD_CSR; RSA wants NULL or nothing. */
static void
test_pki_csr__algorithm_parameters(void **state)
{
	EVP_PKEY *ec = NULL, *ed = NULL, *rsa = NULL;
	unsigned char raw[32], spki[46];
	size_t raw_len = sizeof(raw);
	struct req_parts rp = { 0 };
	unsigned char *rsa_spki = NULL;
	int rsa_spki_len;

	(void)state;
	assert_int_equal(cf_pki_key_generate(&ec, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&ed, CF_KEY_ED25519, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&rsa, CF_KEY_RSA_2048, NULL), 0);

	rp.md = "SHA256";
	expect_built("ECDSA, no parameters", ec, &rp, 0, NULL);
	rp.sig_params = der_null;
	rp.sig_params_len = sizeof(der_null);
	expect_built("ECDSA, NULL parameters", ec, &rp, CF_EPROTO, "BAD_CSR");

	memset(&rp, 0, sizeof(rp));
	rp.sig_oid = oid_ed25519;
	rp.sig_oid_len = sizeof(oid_ed25519);
	expect_built("Ed25519, no parameters", ed, &rp, 0, NULL);
	rp.sig_params = der_null;
	rp.sig_params_len = sizeof(der_null);
	expect_built("Ed25519 signature, NULL parameters", ed, &rp, CF_EPROTO, "BAD_CSR");
	/* The key's AlgorithmIdentifier with a NULL, then the 32 key bytes. */
	assert_int_equal(EVP_PKEY_get_raw_public_key(ed, raw, &raw_len), 1);
	assert_int_equal(raw_len, 32);
	memcpy(spki, "\x30\x2c\x30\x07\x06\x03\x2b\x65\x70\x05\x00\x03\x21\x00", 14);
	memcpy(spki + 14, raw, 32);
	rp.sig_params = NULL;
	rp.spki = spki;
	rp.spki_len = sizeof(spki);
	expect_built("Ed25519 key, NULL parameters", ed, &rp, CF_EPROTO, "BAD_CSR");

	memset(&rp, 0, sizeof(rp));
	rp.md = "SHA256";
	rp.sig_oid = oid_rsa_sha256;
	rp.sig_oid_len = sizeof(oid_rsa_sha256);
	rp.sig_params = der_null;
	rp.sig_params_len = sizeof(der_null);
	expect_built("RSA, NULL parameters", rsa, &rp, 0, NULL);
	/* RFC 4055 5: implementations MUST accept them absent too. */
	rp.sig_params = NULL;
	expect_built("RSA, no parameters", rsa, &rp, 0, NULL);
	rp.sig_params = "\x06\x03\x2b\x65\x70";
	rp.sig_params_len = 5;
	expect_built("RSA, an OID for parameters", rsa, &rp, CF_EPROTO, "BAD_CSR");
	/* rsaEncryption keys: NULL parameters (RFC 3279), not absent. */
	rsa_spki_len = i2d_PUBKEY(rsa, &rsa_spki);
	assert_true(rsa_spki_len > 20);
	assert_memory_equal(rsa_spki + 4, "\x30\x0d\x06\x09", 4);
	assert_memory_equal(rsa_spki + 17, "\x05\x00", 2);
	/* Drop the NULL: the SPKI (82 01 22) and its AlgorithmIdentifier both shrink by 2. */
	memmove(rsa_spki + 17, rsa_spki + 19, (size_t)rsa_spki_len - 19);
	rsa_spki[3] -= 2;
	rsa_spki[5] -= 2;
	rp.sig_params = der_null;
	rp.sig_params_len = sizeof(der_null);
	rp.spki = rsa_spki;
	rp.spki_len = (size_t)rsa_spki_len - 2;
	expect_built("RSA key, no parameters", rsa, &rp, CF_EPROTO, "BAD_CSR");
	OPENSSL_free(rsa_spki);
	/*
	 * The RSAPublicKey with an indefinite length (BER, which OpenSSL's
	 * decoder takes): 30 82 01 0a becomes 30 80, and 00 00 ends it.
	 * Same size, so no outer length changes.
	 */
	rsa_spki = NULL;
	rsa_spki_len = i2d_PUBKEY(rsa, &rsa_spki);
	assert_int_equal(rsa_spki_len, 294);
	assert_memory_equal(rsa_spki + 24, "\x30\x82\x01\x0a", 4);
	memmove(rsa_spki + 26, rsa_spki + 28, 266);
	memcpy(rsa_spki + 24, "\x30\x80", 2);
	memcpy(rsa_spki + 292, "\x00\x00", 2);
	rp.spki = rsa_spki;
	rp.spki_len = (size_t)rsa_spki_len;
	expect_built("RSA key bits in BER", rsa, &rp, CF_EPROTO, "BAD_CSR");
	OPENSSL_free(rsa_spki);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ec);
}

/* One parsing thread's input and what it saw; cmocka asserts only on the main thread. */
struct parse_job {
	const char *name;
	char *data;
	size_t len;
	int failures;
};

static void *
parse_many(void *arg)
{
	struct parse_job *job = arg;
	int i;

	for (i = 0; i < 50; i++) {
		cf_pki_csr *csr = NULL;

		if (cf_pki_csr_parse(&csr, job->data, job->len, NULL) != 0)
			job->failures++;
		cf_pki_csr_free(csr);
	}
	return NULL;
}

/*
 * Threads parsing at once share the process-wide algorithm cache. First in
 * the group, so that in this process the threads also race to fill it.
 */
static void
test_pki_csr__threads(void **state)
{
	struct parse_job jobs[] = {
		{ "good-p256.pem", NULL, 0, 0 },    { "good-p384.pem", NULL, 0, 0 },
		{ "good-der-p256.der", NULL, 0, 0 }, { "good-ed25519.pem", NULL, 0, 0 },
		{ "good-p256.pem", NULL, 0, 0 },    { "good-rsa2048.pem", NULL, 0, 0 },
	};
	pthread_t threads[CF_ARRAY_LEN(jobs)];
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(jobs); i++)
		jobs[i].data = pki_test_fixture(jobs[i].name, &jobs[i].len);
	for (i = 0; i < CF_ARRAY_LEN(jobs); i++)
		assert_int_equal(pthread_create(&threads[i], NULL, parse_many, &jobs[i]), 0);
	for (i = 0; i < CF_ARRAY_LEN(jobs); i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		if (jobs[i].failures != 0)
			fail_msg("%s: %d of 50 parses failed", jobs[i].name, jobs[i].failures);
		free(jobs[i].data);
	}
}

int
test_pki_csr_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_csr__threads),
		cmocka_unit_test(test_pki_csr__good_requests),
		cmocka_unit_test(test_pki_csr__bad_requests),
		cmocka_unit_test(test_pki_csr__key_types),
		cmocka_unit_test(test_pki_csr__one_mebibyte_pem),
		cmocka_unit_test(test_pki_csr__empty_and_limit),
		cmocka_unit_test(test_pki_csr__every_truncation),
		cmocka_unit_test(test_pki_csr__byte_flips),
		cmocka_unit_test(test_pki_csr__spki_sha256_matches_key),
		cmocka_unit_test(test_pki_csr__policy_switches),
		cmocka_unit_test(test_pki_csr__ec_digests_and_point_forms),
		cmocka_unit_test(test_pki_csr__point_off_curve),
		cmocka_unit_test(test_pki_csr__point_at_infinity),
		cmocka_unit_test(test_pki_csr__rsa_exponent_one),
		cmocka_unit_test(test_pki_csr__rsa_exponent_three),
		cmocka_unit_test(test_pki_csr__roca_key_refused),
		cmocka_unit_test(test_pki_csr__subject_and_attributes_walked),
		cmocka_unit_test(test_pki_csr__algorithm_parameters),
	};

	return cmocka_run_group_tests_name("pki_csr", tests, NULL, NULL);
}
