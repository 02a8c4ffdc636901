/* Keys: generation, encrypted PKCS#8 files, fingerprints, the key policy. */
#include "pki_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

/* Encrypted key files are small; anything larger is not one of ours. */
#define KEY_FILE_MAX (64 * 1024)

static const struct {
	cf_key_type type;
	const char *name;
} key_names[] = {
	{ CF_KEY_EC_P256, "EC-P256" },   { CF_KEY_EC_P384, "EC-P384" },
	{ CF_KEY_ED25519, "ED25519" },   { CF_KEY_RSA_2048, "RSA-2048" },
	{ CF_KEY_RSA_3072, "RSA-3072" }, { CF_KEY_RSA_4096, "RSA-4096" },
};

int
cf_pki_key_type_parse(cf_key_type *out, const char *name)
{
	size_t i;

	*out = CF_KEY_UNKNOWN;
	for (i = 0; name != NULL && i < CF_ARRAY_LEN(key_names); i++) {
		if (strcmp(name, key_names[i].name) == 0) {
			*out = key_names[i].type;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

const char *
cf_pki_key_type_name(cf_key_type type)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(key_names); i++) {
		if (key_names[i].type == type)
			return key_names[i].name;
	}
	return "UNKNOWN";
}

int
cf_pki_key_generate(EVP_PKEY **out, cf_key_type type, cf_err *err)
{
	EVP_PKEY *key = NULL;

	*out = NULL;
	switch (type) {
	case CF_KEY_EC_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case CF_KEY_EC_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CF_KEY_ED25519:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case CF_KEY_RSA_2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case CF_KEY_RSA_3072:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case CF_KEY_RSA_4096:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	default:
		return cf_err_set(err, CF_EINVAL, NULL, "unknown key type %d", (int)type);
	}
	if (key == NULL)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "key generation failed type=%s",
				       cf_pki_key_type_name(type));
	*out = key;
	return CF_OK;
}

/* Salt for PBKDF2: 128 bits (SP 800-132 asks for at least that; OpenSSL's default is 64). */
#define KDF_SALT_LEN 16

int
cf_pki_key_pem_plain(char **out, size_t *len_out, EVP_PKEY *key, cf_err *err)
{
	BIO *bio;
	char *data;
	long n;
	int rc = CF_OK;

	*out = NULL;
	*len_out = 0;
	if (key == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "no key");
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		return cf_err_set_ossl(err, CF_ENOMEM, NULL, "BIO_new");
	if (PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "encoding the key");
	} else if ((*out = OPENSSL_secure_malloc((size_t)n + 1)) == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "key PEM");
	} else {
		memcpy(*out, data, (size_t)n);
		(*out)[n] = '\0';
		*len_out = (size_t)n;
	}
	BIO_free(bio); /* a secure-heap BIO: its buffer is cleared as it is freed */
	return rc;
}

int
cf_pki_key_write_encrypted(const char *path, EVP_PKEY *key, const char *pass, size_t pass_len,
			   cf_err *err)
{
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_CIPHER *cipher = NULL;
	X509_SIG *enc = NULL;
	BIO *bio = NULL;
	char *pem;
	long pem_len;
	int rc;

	if (key == NULL || pass == NULL || pass_len == 0 || pass_len > 1024)
		return cf_err_set(err, CF_EINVAL, NULL, "a key and a passphrase are required");
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL) {
		rc = cf_err_set_ossl(err, CF_ENOMEM, NULL, "BIO_new");
		goto out;
	}
	/* Freed with a cleanse of the key bytes (its ASN.1 free callback). */
	p8 = EVP_PKEY2PKCS8(key);
	cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (p8 == NULL || cipher == NULL) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot encode key for %s", path);
		goto out;
	}
	/*
	 * PKCS#8 v2 (PBES2): PBKDF2 and AES-256-CBC. pbe_nid -1 picks PBES2, whose
	 * PRF for AES in OpenSSL 3.0 is HMAC-SHA256 (the test checks it is).
	 * PEM_write_bio_PKCS8PrivateKey() would use only 2048 iterations.
	 */
	enc = PKCS8_encrypt_ex(-1, cipher, pass, (int)pass_len, NULL, KDF_SALT_LEN,
			       CF_PKI_KDF_ITERATIONS, p8, NULL, NULL);
	if (enc == NULL || PEM_write_bio_PKCS8(bio, enc) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot encrypt key for %s", path);
		goto out;
	}
	pem_len = BIO_get_mem_data(bio, &pem);
	if (pem_len <= 0) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "empty key encoding");
		goto out;
	}
	rc = cf_file_write_atomic(path, pem, (size_t)pem_len, 0600, true, err);
out:
	X509_SIG_free(enc);
	EVP_CIPHER_free(cipher);
	PKCS8_PRIV_KEY_INFO_free(p8);
	BIO_free(bio);
	return rc;
}

int
cf_pki_key_read_encrypted(EVP_PKEY **out, const char *path, const char *pass, size_t pass_len,
			  cf_err *err)
{
	char *text = NULL;
	size_t text_len = 0;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	X509_SIG *enc = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	int rc;

	*out = NULL;
	if (pass == NULL || pass_len == 0 || pass_len > INT_MAX)
		return cf_err_set(err, CF_EINVAL, NULL, "a passphrase is required");
	rc = cf_file_read(&text, &text_len, path, KEY_FILE_MAX, err);
	if (rc != CF_OK)
		goto out;
	bio = BIO_new_mem_buf(text, (int)text_len);
	if (bio == NULL) {
		rc = cf_err_set_ossl(err, CF_ENOMEM, NULL, "BIO_new_mem_buf");
		goto out;
	}
	/*
	 * Only an encrypted PKCS#8 block is looked for and decoded: a plaintext
	 * or legacy key in the same file is never read, whatever comes first.
	 */
	enc = PEM_read_bio_PKCS8(bio, NULL, NULL, NULL);
	if (enc == NULL) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "%s is not an encrypted PKCS#8 key",
				     path);
		goto out;
	}
	p8 = PKCS8_decrypt_ex(enc, pass, (int)pass_len, NULL, NULL);
	key = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
	if (key == NULL) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot decrypt %s", path);
		goto out;
	}
	*out = key;
	key = NULL;
	rc = CF_OK;
out:
	EVP_PKEY_free(key);
	PKCS8_PRIV_KEY_INFO_free(p8); /* its free callback wipes the key bytes */
	X509_SIG_free(enc);
	BIO_free(bio);
	if (text != NULL)
		OPENSSL_cleanse(text, text_len);
	free(text);
	return rc;
}

int
cf_pki_key_spki_sha256(char out[CF_PKI_ID_LEN], EVP_PKEY *key, cf_err *err)
{
	unsigned char *der = NULL;
	unsigned char md[32];
	int len, rc;

	out[0] = '\0';
	len = i2d_PUBKEY(key, &der);
	if (len <= 0) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot encode public key");
		goto out;
	}
	if (EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "SHA-256");
		goto out;
	}
	cf_hex_encode(out, md, sizeof(md));
	rc = CF_OK;
out:
	OPENSSL_free(der);
	return rc;
}

int
cf_pki__rsa_quick_check(EVP_PKEY *key, cf_err *err)
{
	BIGNUM *e = NULL;
	int bits = EVP_PKEY_get_bits(key), e_bits, rc;

	if (bits <= 0 || bits > CF_PKI__RSA_MAX_BITS) {
		rc = cf_err_set(err, CF_EPROTO, "WEAK_KEY",
				"RSA key of %d bits, over the %d-bit maximum", bits,
				CF_PKI__RSA_MAX_BITS);
		goto out;
	}
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "WEAK_KEY", "RSA key without an exponent");
		goto out;
	}
	/* Odd and 17 to 256 bits long: 65537 <= e < 2^256. */
	e_bits = BN_num_bits(e);
	if (!BN_is_odd(e) || e_bits < 17 || e_bits > 256) {
		if (e_bits <= 64)
			rc = cf_err_set(err, CF_EPROTO, "WEAK_KEY",
					"RSA public exponent %llu is not allowed",
					(unsigned long long)BN_get_word(e));
		else
			rc = cf_err_set(err, CF_EPROTO, "WEAK_KEY",
					"RSA public exponent of %d bits is not allowed", e_bits);
		goto out;
	}
	rc = CF_OK;
out:
	BN_free(e);
	return rc;
}

/*
 * The exponent checks, and an odd modulus. Not EVP_PKEY_public_check():
 * in OpenSSL 3.0 it runs a Miller-Rabin test on the modulus, ~3 ms at 2048
 * bits and ~100 ms at 8192, which would let anyone who can send a CSR
 * spend the CA's time for nothing; a key with a bad modulus hurts only the
 * device that made it.
 */
int
cf_pki__rsa_public_check(EVP_PKEY *key, cf_err *err)
{
	BIGNUM *n = NULL;
	int rc;

	rc = cf_pki__rsa_quick_check(key, err);
	if (rc != CF_OK)
		return rc;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1)
		return cf_err_set_ossl(err, CF_EPROTO, "WEAK_KEY", "RSA key without a modulus");
	if (!BN_is_odd(n))
		rc = cf_err_set(err, CF_EPROTO, "WEAK_KEY", "RSA modulus is even");
	BN_free(n);
	return rc;
}

const char *
cf_pki__md_name_for_key(EVP_PKEY *key)
{
	/* Match the digest to the key's strength (RFC 5480 section 4). */
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) > 256)
		return "SHA384";
	return "SHA256";
}

void
cf_pki_key_policy_init(cf_pki_key_policy *policy)
{
	memset(policy, 0, sizeof(*policy));
	policy->rsa_min_bits = 2048;
	policy->allow_rsa = true;
	policy->allow_p256 = true;
	policy->allow_p384 = true;
	policy->allow_ed25519 = true;
}
