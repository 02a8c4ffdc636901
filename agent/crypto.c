/* OpenSSL 3 helpers: keys, CSRs, certificate checks and the client SSL_CTX. */
#include "agent_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

/* The largest key or certificate file the agent reads. */
#define FILE_MAX (64 * 1024)

static const char *const key_names[] = { "EC-P256", "EC-P384", "ED25519", "RSA-2048",
					 "RSA-3072" };

int
cf_agent__key_type_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		if (strcmp(name, key_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

const char *
cf_agent__key_type_name(cf_agent_key_type type)
{
	if ((size_t)type >= sizeof(key_names) / sizeof(key_names[0]))
		return "UNKNOWN";
	return key_names[type];
}

int
cf_agent__key_generate(EVP_PKEY **out, cf_agent_key_type type, cf_agent_err *err)
{
	EVP_PKEY *key = NULL;

	*out = NULL;
	switch (type) {
	case CF_AGENT_KEY_EC_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case CF_AGENT_KEY_EC_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CF_AGENT_KEY_ED25519:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case CF_AGENT_KEY_RSA_2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case CF_AGENT_KEY_RSA_3072:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	default:
		return cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "unknown key type %d",
					 (int)type);
	}
	if (key == NULL)
		return cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "cannot generate a %s key",
					  cf_agent__key_type_name(type));
	*out = key;
	return CF_AGENT_OK;
}

/* Copy a memory BIO's contents into a new NUL-terminated buffer. */
static int
bio_take(char **out, size_t *len_out, BIO *bio, cf_agent_err *err)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	char *copy;

	if (n <= 0)
		return cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "empty PEM output");
	copy = malloc((size_t)n + 1);
	if (copy == NULL)
		return cf_agent__err_set(err, CF_AGENT_ENOMEM, NULL, "PEM output");
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*out = copy;
	if (len_out != NULL)
		*len_out = (size_t)n;
	return CF_AGENT_OK;
}

void
cf_agent__secret_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

int
cf_agent__key_to_pem(char **out, size_t *len_out, EVP_PKEY *key, cf_agent_err *err)
{
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	/* A secure-heap BIO would be nicer; the memory BIO is wiped below. */
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "BIO_new");
		goto out;
	}
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "cannot encode the key");
		goto out;
	}
	rc = bio_take(out, len_out, bio, err);
out:
	BIO_free(bio); /* a secmem BIO clears its buffer when freed */
	return rc;
}

int
cf_agent__key_load(EVP_PKEY **out, const char *dir, cf_agent_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int rc;

	*out = NULL;
	rc = cf_agent__file_read(&pem, &len, dir, CF_AGENT__KEY_FILE, FILE_MAX, err);
	if (rc != CF_AGENT_OK)
		goto out;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "BIO_new_mem_buf");
		goto out;
	}
	*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (*out == NULL) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "%s/%s is not a PEM key",
					dir, CF_AGENT__KEY_FILE);
		goto out;
	}
	rc = CF_AGENT_OK;
out:
	BIO_free(bio);
	cf_agent__secret_free(pem, len);
	return rc;
}

int
cf_agent__certs_parse(STACK_OF(X509) **out, const char *pem, size_t len, cf_agent_err *err)
{
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	X509 *cert = NULL;
	int rc;

	*out = NULL;
	if (len == 0 || len > (size_t)CF_AGENT_PAYLOAD_MAX * 4) {
		rc = cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "PEM of %zu bytes", len);
		goto out;
	}
	certs = sk_X509_new_null();
	bio = BIO_new_mem_buf(pem, (int)len);
	if (certs == NULL || bio == NULL) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "parsing certificates");
		goto out;
	}
	for (;;) {
		cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (cert == NULL)
			break;
		if (sk_X509_push(certs, cert) == 0) {
			rc = cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "sk_X509_push");
			goto out;
		}
		cert = NULL;
	}
	/* The loop ends on "no start line" at the end of the text; anything else is bad. */
	if (sk_X509_num(certs) == 0 ||
	    ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		rc = cf_agent__err_ossl(err, CF_AGENT_EINVAL, NULL, "not PEM certificates");
		goto out;
	}
	ERR_clear_error();
	*out = certs;
	certs = NULL;
	rc = CF_AGENT_OK;
out:
	X509_free(cert);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	return rc;
}

int
cf_agent__certs_load(STACK_OF(X509) **out, const char *dir, cf_agent_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = cf_agent__file_read(&pem, &len, dir, CF_AGENT__CERT_FILE, FILE_MAX, err);
	if (rc == CF_AGENT_OK)
		rc = cf_agent__certs_parse(out, pem, len, err);
	free(pem);
	return rc;
}

int
cf_agent__certs_to_pem(char **out, size_t *len_out, STACK_OF(X509) *certs, cf_agent_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int i, rc;

	*out = NULL;
	if (bio == NULL)
		return cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "BIO_new");
	for (i = 0; i < sk_X509_num(certs); i++) {
		if (PEM_write_bio_X509(bio, sk_X509_value(certs, i)) != 1) {
			rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "PEM_write_bio_X509");
			goto out;
		}
	}
	rc = bio_take(out, len_out, bio, err);
out:
	BIO_free(bio);
	return rc;
}

int
cf_agent__csr_make(char **out, size_t *len_out, EVP_PKEY *key, const char *cn, cf_agent_err *err)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	BIO *bio = NULL;
	const EVP_MD *md;
	int rc;

	*out = NULL;
	req = X509_REQ_new();
	name = X509_NAME_new();
	bio = BIO_new(BIO_s_mem());
	if (req == NULL || name == NULL || bio == NULL) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "making a CSR");
		goto out;
	}
	/* Ed25519 signs the whole message: no digest. */
	md = EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
				       -1, 0) != 1 ||
	    X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_subject_name(req, name) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, md) <= 0 ||
	    PEM_write_bio_X509_REQ(bio, req) != 1) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "cannot make the CSR");
		goto out;
	}
	rc = bio_take(out, len_out, bio, err);
out:
	BIO_free(bio);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}

int
cf_agent__cert_id(char out[65], X509 *cert, cf_agent_err *err)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	out[0] = '\0';
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
		return cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "X509_digest");
	for (i = 0; i < n; i++) {
		out[2 * i] = hexd[md[i] >> 4];
		out[2 * i + 1] = hexd[md[i] & 0xf];
	}
	out[64] = '\0';
	return CF_AGENT_OK;
}

int
cf_agent__cert_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted,
		      cf_agent_err *err)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc;

	if (ctx == NULL)
		return cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "X509_STORE_CTX_new");
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1 ||
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "X509_STORE_CTX_init");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		int v = X509_STORE_CTX_get_error(ctx);

		rc = cf_agent__err_set(err, CF_AGENT_EPROTO, "UNTRUSTED",
				       "certificate does not chain to the trusted CA: %s",
				       X509_verify_cert_error_string(v));
		ERR_clear_error();
		goto out;
	}
	rc = CF_AGENT_OK;
out:
	X509_STORE_CTX_free(ctx);
	return rc;
}

int
cf_agent__ssl_ctx_new(SSL_CTX **out, X509_STORE *store, STACK_OF(X509) *chain, EVP_PKEY *key,
		      cf_agent_err *err)
{
	SSL_CTX *ctx = NULL;
	int i, rc;

	*out = NULL;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ENOMEM, NULL, "SSL_CTX_new");
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, "KEY_MISMATCH",
					"the certificate and key do not make a TLS identity");
		goto out;
	}
	for (i = 1; i < sk_X509_num(chain); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
			rc = cf_agent__err_ossl(err, CF_AGENT_ECRYPTO, NULL, "add1_chain_cert");
			goto out;
		}
	}
	SSL_CTX_set1_cert_store(ctx, store);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	*out = ctx;
	ctx = NULL;
	rc = CF_AGENT_OK;
out:
	SSL_CTX_free(ctx);
	return rc;
}
