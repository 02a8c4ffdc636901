/* CSR validation: the fixture corpus, each refusal with its exact reason. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

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

int
test_pki_csr_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_csr__good_requests),
		cmocka_unit_test(test_pki_csr__bad_requests),
		cmocka_unit_test(test_pki_csr__key_types),
		cmocka_unit_test(test_pki_csr__one_mebibyte_pem),
		cmocka_unit_test(test_pki_csr__empty_and_limit),
		cmocka_unit_test(test_pki_csr__every_truncation),
		cmocka_unit_test(test_pki_csr__byte_flips),
		cmocka_unit_test(test_pki_csr__spki_sha256_matches_key),
		cmocka_unit_test(test_pki_csr__policy_switches),
	};

	return cmocka_run_group_tests_name("pki_csr", tests, NULL, NULL);
}
