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

static struct signer *
signer_cached(cf_authority *auth, const char *name)
{
	struct signer *s;

	for (s = auth->signers; s != NULL; s = s->next) {
		if (strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

/*
 * The signer of ca (NULL: the default issuer), loaded on first use. A
 * cached signer is used without asking the registry again: the CA's status
 * is checked where it counts, in the transaction that records the
 * certificate.
 */
static int
signer_get(struct signer **out, cf_authority *auth, const char *ca, cf_err *err)
{
	cf_store_ca rec;
	struct signer *s = NULL;
	cf_pki_ca *loaded = NULL;
	int rc;

	*out = ca != NULL ? signer_cached(auth, ca) : NULL;
	if (*out != NULL)
		return CF_OK;
	memset(&rec, 0, sizeof(rec));
	rc = ca == NULL ? cf_store_ca_get_default(auth->store, &rec, err)
			: cf_store_ca_get(auth->store, &rec, ca, err);
	if (rc != CF_OK)
		goto out;
	*out = signer_cached(auth, rec.name);
	if (*out != NULL)
		goto out;
	rc = signer_load(&loaded, auth, &rec, err);
	if (rc != CF_OK)
		goto out;
	s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->name = strdup(rec.name);
	if (s == NULL || s->name == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "signer cache");
		goto out;
	}
	s->ca = loaded;
	loaded = NULL;
	s->next = auth->signers;
	auth->signers = s;
	*out = s;
	s = NULL;
out:
	if (s != NULL)
		free(s->name);
	free(s);
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
	rec->key_roca = info->key_roca;
	rec->sig_alg = lend(info->sig_alg);
	rec->spki_sha256 = lend(info->spki_sha256);
	rec->pem = lend(pem);
}

/* One request on its way through a batch: what signing produced for the registry. */
struct pending {
	cf_pki_cert_info info;
	char *pem;
	cf_store_cert rec;
	const char *const *policies;
	size_t npolicies;
};

/*
 * Everything but the registry write: CSR checks first (a bad CSR never
 * reaches the CA key), then the thing and the CA, then the signature.
 */
static int
sign_one(cf_authority *auth, struct pending *p, const cf_authority_request *req,
	 struct signer **def, cf_err *err)
{
	cf_pki_csr *csr = NULL;
	struct signer *signer = NULL;
	unsigned char *der = NULL;
	size_t der_len = 0, pem_len = 0;
	cf_store_thing thing;
	cf_pki_profile profile = auth->profile;
	int rc;

	memset(&thing, 0, sizeof(thing));
	rc = cf_pki_csr_parse(&csr, req->csr, req->csr_len, err);
	if (rc == CF_OK)
		rc = cf_pki_csr_check_policy(csr, &auth->key_policy, err);
	if (rc != CF_OK)
		goto out;
	if (req->reject_spki != NULL && strlen(req->reject_spki) == CF_PKI_ID_LEN - 1 &&
	    CRYPTO_memcmp(req->reject_spki, cf_pki_csr_spki_sha256(csr), CF_PKI_ID_LEN - 1) == 0) {
		rc = cf_err_set(err, CF_EPROTO, "KEY_REUSE",
				"the CSR reuses the public key of the certificate it replaces");
		goto out;
	}
	rc = cf_store_thing_get(auth->store, &thing, req->thing, err);
	if (rc != CF_OK)
		goto out;
	/* The default issuer is looked up once per batch. */
	if (req->ca != NULL)
		rc = signer_get(&signer, auth, req->ca, err);
	else if (*def == NULL)
		rc = signer_get(def, auth, NULL, err);
	if (rc != CF_OK)
		goto out;
	if (req->ca == NULL)
		signer = *def;
	if (req->days > 0)
		profile.days = req->days;
	/* DER and facts straight from issuance: no round trip through an X509. */
	rc = cf_pki_issue_der(&der, &der_len, signer->ca, csr, thing.name, &profile, &p->info,
			      err);
	if (rc == CF_OK)
		rc = cf_pki_der_to_pem(&p->pem, &pem_len, der, der_len, "CERTIFICATE", err);
	if (rc != CF_OK)
		goto out;
	p->policies = req->policies;
	p->npolicies = req->npolicies;
	if (p->npolicies == 0 && auth->default_policy != NULL && auth->default_policy[0] != '\0') {
		p->policies = (const char *const *)&auth->default_policy;
		p->npolicies = 1;
	}
	cert_record(&p->rec, &p->info, p->pem, signer->name, req);
out:
	free(der);
	cf_pki_csr_free(csr);
	cf_store_thing_clear(&thing);
	return rc;
}

int
cf_authority_issue_batch(cf_authority *auth, cf_authority_item *items, size_t n,
			 const cf_store_actor *actor, cf_err *err)
{
	struct pending *pend = NULL;
	cf_store_cert_new *news = NULL;
	size_t *which = NULL; /* news[k] is items[which[k]] */
	struct signer *def = NULL;
	size_t i, k, nnew = 0;
	int rc;

	pend = calloc(n > 0 ? n : 1, sizeof(*pend));
	news = calloc(n > 0 ? n : 1, sizeof(*news));
	which = calloc(n > 0 ? n : 1, sizeof(*which));
	if (pend == NULL || news == NULL || which == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "issuance batch");
		goto out;
	}
	for (i = 0; i < n; i++) {
		memset(&items[i].result, 0, sizeof(items[i].result));
		cf_err_clear(&items[i].err);
		items[i].rc = sign_one(auth, &pend[i], items[i].req, &def, &items[i].err);
		if (items[i].rc != CF_OK)
			continue; /* refused: it never reaches the registry */
		news[nnew].cert = &pend[i].rec;
		news[nnew].policies = pend[i].policies;
		news[nnew].npolicies = pend[i].npolicies;
		which[nnew++] = i;
	}
	rc = nnew > 0 ? cf_store_cert_insert_batch(auth->store, news, nnew, actor, err) : CF_OK;
	for (k = 0; k < nnew; k++) {
		cf_authority_item *item = &items[which[k]];

		item->rc = news[k].rc;
		if (item->rc != CF_OK) {
			item->err = news[k].err;
			continue;
		}
		memcpy(item->result.id, pend[which[k]].info.id, sizeof(item->result.id));
		item->result.pem = pend[which[k]].pem;
		pend[which[k]].pem = NULL;
	}
out:
	for (i = 0; pend != NULL && i < n; i++)
		free(pend[i].pem);
	free(pend);
	free(news);
	free(which);
	return rc;
}

int
cf_authority_issue(cf_authority *auth, cf_authority_result *out,
		   const cf_authority_request *req, const cf_store_actor *actor, cf_err *err)
{
	cf_authority_item item;
	int rc;

	memset(&item, 0, sizeof(item));
	item.req = req;
	rc = cf_authority_issue_batch(auth, &item, 1, actor, err);
	if (rc == CF_OK && item.rc != CF_OK && err != NULL)
		*err = item.err;
	if (rc == CF_OK)
		rc = item.rc;
	*out = item.result;
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
