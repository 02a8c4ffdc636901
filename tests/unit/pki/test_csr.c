/* CSR validation: the fixture corpus, each refusal with its exact reason. */
#include "helpers.h"
#include "pki/pki_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
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
	};

	return cmocka_run_group_tests_name("pki_csr", tests, NULL, NULL);
}
