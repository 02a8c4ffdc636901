/* Issuance: CSR -> checks -> signature -> registry, in that order. */
#include "authority/authority.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

/* Signers are kept per CA name: decrypting a CA key costs milliseconds. */
struct signer {
	char *name;
	cf_pki_ca *ca;
	struct signer *next;
};

struct cf_authority {
	cf_store *store;
	char *data_dir;
	char *ca_passphrase_file;
	char *default_policy;
	char *crl_url;
	char *ocsp_url;
	cf_pki_profile profile;
	cf_pki_key_policy key_policy;
	struct signer *signers;
};

int
cf_authority_new(cf_authority **out, cf_store *store, const cf_authority_config *cfg, cf_err *err)
{
	cf_authority *auth;

	*out = NULL;
	auth = calloc(1, sizeof(*auth));
	if (auth == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "authority");
	auth->store = store;
	auth->data_dir = cf_strdup(cfg->data_dir);
	auth->ca_passphrase_file = cf_strdup(cfg->ca_passphrase_file);
	auth->default_policy = cf_strdup(cfg->default_policy);
	auth->crl_url = cf_strdup(cfg->profile.crl_url);
	auth->ocsp_url = cf_strdup(cfg->profile.ocsp_url);
	if (auth->data_dir == NULL || auth->ca_passphrase_file == NULL ||
	    (cfg->default_policy != NULL && auth->default_policy == NULL) ||
	    (cfg->profile.crl_url != NULL && auth->crl_url == NULL) ||
	    (cfg->profile.ocsp_url != NULL && auth->ocsp_url == NULL)) {
		cf_authority_free(auth);
		return cf_err_set(err, CF_ENOMEM, NULL, "authority");
	}
	auth->profile = cfg->profile;
	/* Empty URLs mean "none"; the profile points at our own copies. */
	auth->profile.crl_url = auth->crl_url != NULL && auth->crl_url[0] ? auth->crl_url : NULL;
	auth->profile.ocsp_url = auth->ocsp_url != NULL && auth->ocsp_url[0] ? auth->ocsp_url : NULL;
	auth->key_policy = cfg->key_policy;
	*out = auth;
	return CF_OK;
}

void
cf_authority_free(cf_authority *auth)
{
	struct signer *s, *next;

	if (auth == NULL)
		return;
	for (s = auth->signers; s != NULL; s = next) {
		next = s->next;
		cf_pki_ca_free(s->ca);
		free(s->name);
		free(s);
	}
	free(auth->data_dir);
	free(auth->ca_passphrase_file);
	free(auth->default_policy);
	free(auth->crl_url);
	free(auth->ocsp_url);
	free(auth);
}

/* Decrypt the key of a registry CA and pair it with its certificate. */
static int
signer_load(cf_pki_ca **out, cf_authority *auth, const cf_store_ca *rec, cf_err *err)
{
	char *key_path = NULL, *pass = NULL;
	size_t pass_len = 0;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc;

	*out = NULL;
	if (rec->key_ref == NULL || rec->cert_pem == NULL) {
		return cf_err_set(err, CF_ESTATE, NULL,
				  "ca %s has no signing key in this data dir (root, external or "
				  "pending CA)", rec->name);
	}
	key_path = rec->key_ref[0] == '/' ? strdup(rec->key_ref)
					  : cf_path_join(auth->data_dir, rec->key_ref);
	if (key_path == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca key path");
		goto out;
	}
	rc = cf_secret_read(&pass, &pass_len, auth->ca_passphrase_file, err);
	if (rc != CF_OK)
		goto out;
	rc = cf_pki_key_read_encrypted(&key, key_path, pass, pass_len, err);
	if (rc != CF_OK)
		goto out;
	rc = cf_pki_cert_from_pem(&cert, rec->cert_pem, strlen(rec->cert_pem), err);
	if (rc != CF_OK)
		goto out;
	rc = cf_pki_ca_new(out, cert, key, err);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	cf_secret_free(pass, pass_len);
	free(key_path);
	return rc;
}

/* The cached signer of ca (NULL: the default issuer), loaded on first use. */
static int
signer_get(struct signer **out, cf_authority *auth, const char *ca, cf_err *err)
{
	cf_store_ca rec;
	struct signer *s;
	cf_pki_ca *loaded = NULL;
	int rc;

	*out = NULL;
	memset(&rec, 0, sizeof(rec));
	rc = ca == NULL ? cf_store_ca_get_default(auth->store, &rec, err)
			: cf_store_ca_get(auth->store, &rec, ca, err);
	if (rc != CF_OK)
		goto out;
	for (s = auth->signers; s != NULL; s = s->next) {
		if (strcmp(s->name, rec.name) == 0) {
			*out = s;
			goto out;
		}
	}
	rc = signer_load(&loaded, auth, &rec, err);
	if (rc != CF_OK)
		goto out;
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->name = strdup(rec.name)) == NULL) {
		free(s);
		rc = cf_err_set(err, CF_ENOMEM, NULL, "signer cache");
		goto out;
	}
	s->ca = loaded;
	loaded = NULL;
	s->next = auth->signers;
	auth->signers = s;
	*out = s;
out:
	cf_pki_ca_free(loaded);
	cf_store_ca_clear(&rec);
	return rc;
}

int
cf_authority_signer(cf_pki_ca **out, cf_authority *auth, const char *ca, cf_err *err)
{
	struct signer *s;
	int rc;

	*out = NULL;
	rc = signer_get(&s, auth, ca, err);
	if (rc == CF_OK)
		*out = s->ca;
	return rc;
}

/*
 * cf_store_cert is both an owned output record and an insert argument; an
 * insert only reads it, so borrowed const strings are safe to lend it.
 */
static char *
lend(const char *s)
{
	return (char *)(uintptr_t)s;
}

/* The registry record of a freshly issued certificate, lending info's strings. */
static void
cert_record(cf_store_cert *rec, const cf_pki_cert_info *info, const char *pem, const char *ca,
	    const cf_authority_request *req)
{
	memset(rec, 0, sizeof(*rec));
	rec->id = lend(info->id);
	rec->serial = lend(info->serial);
	rec->ca = lend(ca);
	rec->thing = lend(req->thing);
	rec->status = req->status;
	rec->not_before = info->not_before;
	rec->not_after = info->not_after;
	rec->key_type = lend(cf_pki_key_type_name(info->key_type));
	rec->key_bits = info->key_bits;
	rec->sig_alg = lend(info->sig_alg);
	rec->spki_sha256 = lend(info->spki_sha256);
	rec->pem = lend(pem);
}

int
cf_authority_issue(cf_authority *auth, cf_authority_result *out,
		   const cf_authority_request *req, const cf_store_actor *actor, cf_err *err)
{
	cf_pki_csr *csr = NULL;
	struct signer *signer = NULL;
	unsigned char *der = NULL;
	size_t der_len = 0, pem_len = 0;
	char *pem = NULL;
	cf_store_thing thing;
	cf_store_cert rec;
	cf_pki_cert_info info;
	cf_pki_profile profile = auth->profile;
	const char *const *policies = req->policies;
	size_t npolicies = req->npolicies;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&thing, 0, sizeof(thing));
	/* Cheap refusals first: a bad CSR never reaches the CA key. */
	rc = cf_pki_csr_parse(&csr, req->csr, req->csr_len, err);
	if (rc != CF_OK)
		goto out;
	rc = cf_pki_csr_check_policy(csr, &auth->key_policy, err);
	if (rc != CF_OK)
		goto out;
	if (req->reject_spki != NULL &&
	    CRYPTO_memcmp(req->reject_spki, cf_pki_csr_spki_sha256(csr), CF_PKI_ID_LEN - 1) == 0) {
		rc = cf_err_set(err, CF_EPROTO, "KEY_REUSE",
				"the CSR reuses the public key of the certificate it replaces");
		goto out;
	}
	rc = cf_store_thing_get(auth->store, &thing, req->thing, err);
	if (rc != CF_OK)
		goto out;
	rc = signer_get(&signer, auth, req->ca, err);
	if (rc != CF_OK)
		goto out;
	if (req->days > 0)
		profile.days = req->days;
	/* DER and facts straight from issuance: no round trip through an X509. */
	rc = cf_pki_issue_der(&der, &der_len, signer->ca, csr, thing.name, &profile, &info, err);
	if (rc == CF_OK)
		rc = cf_pki_der_to_pem(&pem, &pem_len, der, der_len, "CERTIFICATE", err);
	if (rc != CF_OK)
		goto out;
	if (npolicies == 0 && auth->default_policy != NULL && auth->default_policy[0] != '\0') {
		policies = (const char *const *)&auth->default_policy;
		npolicies = 1;
	}
	cert_record(&rec, &info, pem, signer->name, req);
	rc = cf_store_cert_insert(auth->store, &rec, policies, npolicies, false, actor, err);
	if (rc != CF_OK)
		goto out;
	memcpy(out->id, info.id, sizeof(out->id));
	out->pem = pem;
	pem = NULL;
out:
	free(pem);
	free(der);
	cf_pki_csr_free(csr);
	cf_store_thing_clear(&thing);
	return rc;
}

void
cf_authority_result_clear(cf_authority_result *result)
{
	if (result == NULL)
		return;
	free(result->pem);
	result->pem = NULL;
}
