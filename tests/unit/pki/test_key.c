/* Keys: generation, encrypted files, passphrases, names. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define PASS "correct horse battery staple"

/* A fresh path in a private temporary directory. */
static void
temp_path(char *out, size_t size, const char *leaf)
{
	char dir[] = "/tmp/cf-pki-test-XXXXXX";

	assert_non_null(mkdtemp(dir));
	snprintf(out, size, "%s/%s", dir, leaf);
}

static void
remove_path(const char *path)
{
	char dir[512];
	char *slash;

	unlink(path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	rmdir(dir);
}

static void
roundtrip(cf_key_type type, const char *alg)
{
	EVP_PKEY *key = NULL, *back = NULL;
	char path[512];
	struct stat st;
	cf_err err = CF_ERR_INIT;

	temp_path(path, sizeof(path), "ca.key");
	assert_int_equal(cf_pki_key_generate(&key, type, NULL), 0);
	assert_true(EVP_PKEY_is_a(key, alg));
	assert_int_equal(cf_pki_key_write_encrypted(path, key, PASS, strlen(PASS), &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(cf_pki_key_read_encrypted(&back, path, PASS, strlen(PASS), &err), 0);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
	EVP_PKEY_free(back);
	back = NULL;
	/* The wrong passphrase is a crypto failure, never a key. */
	assert_int_equal(cf_pki_key_read_encrypted(&back, path, "wrong", 5, &err), CF_ECRYPTO);
	assert_null(back);
	/* An existing file is never overwritten. */
	assert_int_equal(cf_pki_key_write_encrypted(path, key, PASS, strlen(PASS), &err),
			 CF_EEXISTS);
	remove_path(path);
	EVP_PKEY_free(key);
}

static void
test_pki_key__p256_roundtrip(void **state)
{
	(void)state;
	roundtrip(CF_KEY_EC_P256, "EC");
}

static void
test_pki_key__p384_roundtrip(void **state)
{
	(void)state;
	roundtrip(CF_KEY_EC_P384, "EC");
}

static void
test_pki_key__ed25519_roundtrip(void **state)
{
	(void)state;
	roundtrip(CF_KEY_ED25519, "ED25519");
}

static void
test_pki_key__rsa_roundtrip(void **state)
{
	(void)state;
	roundtrip(CF_KEY_RSA_2048, "RSA");
	roundtrip(CF_KEY_RSA_3072, "RSA");
	roundtrip(CF_KEY_RSA_4096, "RSA");
}

static void
test_pki_key__file_is_encrypted_pkcs8(void **state)
{
	EVP_PKEY *key = NULL;
	char path[512], *text = NULL;
	size_t len;

	(void)state;
	temp_path(path, sizeof(path), "k.pem");
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_write_encrypted(path, key, PASS, strlen(PASS), NULL), 0);
	assert_int_equal(cf_file_read(&text, &len, path, 65536, NULL), 0);
	assert_non_null(strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
	assert_null(strstr(text, "-----BEGIN PRIVATE KEY-----"));
	free(text);
	remove_path(path);
	EVP_PKEY_free(key);
}

/*
 * The file's PBES2 parameters, read back through OpenSSL's ASN.1 types:
 * PBKDF2 with HMAC-SHA256, CF_PKI_KDF_ITERATIONS, a 16-byte salt, AES-256-CBC.
 * OpenSSL's own reader decrypts it; a wrong passphrase does not.
 */
static void
test_pki_key__kdf_parameters(void **state)
{
	EVP_PKEY *key = NULL, *back = NULL;
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj = NULL;
	const void *param = NULL;
	int ptype = 0;
	PBE2PARAM *pbe2 = NULL;
	PBKDF2PARAM *kdf = NULL;
	X509_SIG *sig = NULL;
	char path[512], pass[] = PASS, wrong[] = "wrong";
	BIO *bio;

	(void)state;
	temp_path(path, sizeof(path), "kdf.pem");
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_write_encrypted(path, key, PASS, strlen(PASS), NULL), 0);
	bio = BIO_new_file(path, "r");
	assert_non_null(bio);
	sig = PEM_read_bio_PKCS8(bio, NULL, NULL, NULL);
	assert_non_null(sig);
	X509_SIG_get0(sig, &alg, NULL);
	X509_ALGOR_get0(&obj, &ptype, &param, alg);
	assert_int_equal(OBJ_obj2nid(obj), NID_pbes2);
	assert_int_equal(ptype, V_ASN1_SEQUENCE);
	pbe2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
	assert_non_null(pbe2);
	assert_int_equal(OBJ_obj2nid(pbe2->keyfunc->algorithm), NID_id_pbkdf2);
	assert_int_equal(OBJ_obj2nid(pbe2->encryption->algorithm), NID_aes_256_cbc);
	kdf = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter);
	assert_non_null(kdf);
	assert_int_equal(ASN1_INTEGER_get(kdf->iter), CF_PKI_KDF_ITERATIONS);
	/* An absent PRF would mean HMAC-SHA1. */
	assert_non_null(kdf->prf);
	assert_int_equal(OBJ_obj2nid(kdf->prf->algorithm), NID_hmacWithSHA256);
	assert_int_equal(kdf->salt->type, V_ASN1_OCTET_STRING);
	assert_int_equal(ASN1_STRING_length(kdf->salt->value.octet_string), 16);
	/* OpenSSL's general reader, with the passphrase and with a wrong one. */
	assert_int_equal(BIO_reset(bio), 0);
	back = PEM_read_bio_PrivateKey(bio, NULL, NULL, pass);
	assert_non_null(back);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
	EVP_PKEY_free(back);
	assert_int_equal(BIO_reset(bio), 0);
	assert_null(PEM_read_bio_PrivateKey(bio, NULL, NULL, wrong));
	ERR_clear_error();
	PBKDF2PARAM_free(kdf);
	PBE2PARAM_free(pbe2);
	X509_SIG_free(sig);
	BIO_free(bio);
	remove_path(path);
	EVP_PKEY_free(key);
}

/*
 * A file with a plaintext key first and the encrypted one after it: only the
 * encrypted PKCS#8 block is read, and a file with no such block is refused.
 */
static void
test_pki_key__plaintext_key_never_read(void **state)
{
	EVP_PKEY *key = NULL, *other = NULL, *got = NULL;
	char path[512], *enc = NULL;
	size_t enc_len = 0;
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;

	(void)state;
	temp_path(path, sizeof(path), "mixed.pem");
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&other, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_write_encrypted(path, key, PASS, strlen(PASS), NULL), 0);
	assert_int_equal(cf_file_read(&enc, &enc_len, path, 65536, NULL), 0);
	unlink(path);
	/* plaintext `other` first, then the encrypted `key` */
	assert_int_equal(PEM_write_bio_PrivateKey(bio, other, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(BIO_write(bio, enc, (int)enc_len), (int)enc_len);
	BIO_get_mem_ptr(bio, &mem);
	assert_int_equal(cf_file_write_atomic(path, mem->data, mem->length, 0600, true, NULL), 0);
	assert_int_equal(cf_pki_key_read_encrypted(&got, path, PASS, strlen(PASS), NULL), 0);
	assert_int_equal(EVP_PKEY_eq(got, key), 1);
	assert_int_not_equal(EVP_PKEY_eq(got, other), 1);
	EVP_PKEY_free(got);
	got = NULL;
	unlink(path);
	/* only a plaintext key: refused */
	(void)BIO_reset(bio);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, other, NULL, NULL, 0, NULL, NULL), 1);
	BIO_get_mem_ptr(bio, &mem);
	assert_int_equal(cf_file_write_atomic(path, mem->data, mem->length, 0600, true, NULL), 0);
	assert_int_equal(cf_pki_key_read_encrypted(&got, path, PASS, strlen(PASS), NULL),
			 CF_ECRYPTO);
	assert_null(got);
	remove_path(path);
	free(enc);
	BIO_free(bio);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void
test_pki_key__missing_file(void **state)
{
	EVP_PKEY *key = NULL;

	(void)state;
	assert_int_equal(cf_pki_key_read_encrypted(&key, "/nonexistent/cf.key", PASS, 4, NULL),
			 CF_ENOTFOUND);
	assert_null(key);
}

static void
test_pki_key__empty_passphrase_refused(void **state)
{
	EVP_PKEY *key = NULL;

	(void)state;
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_key_write_encrypted("/tmp/never", key, "", 0, NULL), CF_EINVAL);
	EVP_PKEY_free(key);
}

static void
test_pki_key__type_names(void **state)
{
	static const char *names[] = { "EC-P256",  "EC-P384",  "ED25519",
				       "RSA-2048", "RSA-3072", "RSA-4096" };
	cf_key_type type;
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(names); i++) {
		assert_int_equal(cf_pki_key_type_parse(&type, names[i]), 0);
		assert_string_equal(cf_pki_key_type_name(type), names[i]);
	}
	assert_int_equal(cf_pki_key_type_parse(&type, "ec-p256"), CF_EINVAL);
	assert_int_equal(cf_pki_key_type_parse(&type, "RSA-1024"), CF_EINVAL);
	assert_string_equal(cf_pki_key_type_name(CF_KEY_UNKNOWN), "UNKNOWN");
}

static void
test_pki_key__policy_defaults(void **state)
{
	cf_pki_key_policy policy;

	(void)state;
	cf_pki_key_policy_init(&policy);
	assert_int_equal(policy.rsa_min_bits, 2048);
	assert_true(policy.allow_rsa && policy.allow_p256 && policy.allow_p384 &&
		    policy.allow_ed25519);
}

/* The unencrypted PEM decodes back to the same key; no key is a clear error. */
static void
test_pki_key__plain_pem(void **state)
{
	cf_err err = CF_ERR_INIT;
	EVP_PKEY *key = NULL, *back;
	char *pem = NULL;
	size_t len = 0;
	BIO *bio;

	(void)state;
	assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, &err), CF_OK);
	assert_int_equal(cf_pki_key_pem_plain(&pem, &len, key, &err), CF_OK);
	assert_int_equal(strlen(pem), len);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	bio = BIO_new_mem_buf(pem, (int)len);
	back = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(back);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
	EVP_PKEY_free(back);
	BIO_free(bio);
	OPENSSL_secure_clear_free(pem, len + 1);
	EVP_PKEY_free(key);
	assert_int_equal(cf_pki_key_pem_plain(&pem, &len, NULL, &err), CF_EINVAL);
	assert_null(pem);
}

int
test_pki_key_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_key__p256_roundtrip),
		cmocka_unit_test(test_pki_key__plain_pem),
		cmocka_unit_test(test_pki_key__p384_roundtrip),
		cmocka_unit_test(test_pki_key__ed25519_roundtrip),
		cmocka_unit_test(test_pki_key__rsa_roundtrip),
		cmocka_unit_test(test_pki_key__file_is_encrypted_pkcs8),
		cmocka_unit_test(test_pki_key__kdf_parameters),
		cmocka_unit_test(test_pki_key__plaintext_key_never_read),
		cmocka_unit_test(test_pki_key__missing_file),
		cmocka_unit_test(test_pki_key__empty_passphrase_refused),
		cmocka_unit_test(test_pki_key__type_names),
		cmocka_unit_test(test_pki_key__policy_defaults),
	};

	return cmocka_run_group_tests_name("pki_key", tests, NULL, NULL);
}
