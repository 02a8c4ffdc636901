/* CA certificates (root, intermediate, CSR for offline signing) and the CA signer. */
#include "pki_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/* CA certificates are backdated like device ones, to absorb clock skew. */
#define CA_BACKDATE_SECONDS 300

/* One signature with the CA key, from the prepared context when there is one. */
static int
sign_with_template(unsigned char *sig, size_t *sig_len, const cf_pki_ca *ca,
		   const unsigned char *data, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return 0;
	/* Copying the ready context skips the per-signature fetch and key setup. */
	if (ca->sign_template != NULL)
		ok = EVP_MD_CTX_copy_ex(ctx, ca->sign_template);
	else
		ok = EVP_DigestSignInit_ex(ctx, NULL, ca->md_name, NULL, NULL, ca->key, NULL);
	if (ok == 1)
		ok = EVP_DigestSign(ctx, sig, sig_len, data, len);
	EVP_MD_CTX_free(ctx);
	return ok;
}

int
cf_pki__ca_sign(unsigned char *sig, size_t *sig_len, const cf_pki_ca *ca, const unsigned char *data,
		size_t len, cf_err *err)
{
	*sig_len = ca->sig_max;
	if (sign_with_template(sig, sig_len, ca, data, len) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "signing failed");
	return CF_OK;
}

/* The AlgorithmIdentifier the signature provider will produce, as DER. */
static int
ca_sigalg_cache(cf_pki_ca *ca, EVP_PKEY_CTX *pctx, cf_err *err)
{
	unsigned char aid[128];
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid,
						      sizeof(aid));
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_CTX_get_params(pctx, params) != 1 || !OSSL_PARAM_modified(&params[0]))
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "no algorithm id for the CA key");
	ca->sigalg_der = OPENSSL_memdup(aid, params[0].return_size);
	if (ca->sigalg_der == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "caching the algorithm id");
	ca->sigalg_len = params[0].return_size;
	return CF_OK;
}

/* Prepare the signing context once; each signature copies it. */
static int
ca_signer_init(cf_pki_ca *ca, cf_err *err)
{
	EVP_MD_CTX *probe = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	int rc;

	ca->md_name = cf_pki__md_name_for_key(ca->key);
	ca->sig_max = (size_t)EVP_PKEY_get_size(ca->key);
	ca->sign_template = EVP_MD_CTX_new();
	probe = EVP_MD_CTX_new();
	if (ca->sign_template == NULL || probe == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "signing context");
		goto out;
	}
	if (EVP_DigestSignInit_ex(ca->sign_template, &pctx, ca->md_name, NULL, NULL, ca->key,
				  NULL) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "the CA key cannot sign");
		goto out;
	}
	rc = ca_sigalg_cache(ca, pctx, err);
	if (rc != CF_OK)
		goto out;
	/* Some providers cannot duplicate a signing context: sign from scratch then. */
	if (EVP_MD_CTX_copy_ex(probe, ca->sign_template) != 1) {
		ERR_clear_error();
		EVP_MD_CTX_free(ca->sign_template);
		ca->sign_template = NULL;
	}
	rc = CF_OK;
out:
	EVP_MD_CTX_free(probe);
	return rc;
}

/* Subject key identifier of the CA: from its certificate, else SHA-1 of its key bits. */
static int
ca_key_id_cache(cf_pki_ca *ca, cf_err *err)
{
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(ca->cert);
	const ASN1_BIT_STRING *bits;
	unsigned int n = 0;

	if (skid != NULL && ASN1_STRING_length(skid) > 0 &&
	    (size_t)ASN1_STRING_length(skid) <= sizeof(ca->key_id)) {
		ca->key_id_len = (size_t)ASN1_STRING_length(skid);
		memcpy(ca->key_id, ASN1_STRING_get0_data(skid), ca->key_id_len);
		return CF_OK;
	}
	bits = X509_get0_pubkey_bitstr(ca->cert);
	if (bits == NULL ||
	    EVP_Digest(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), ca->key_id,
		       &n, EVP_sha1(), NULL) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "CA key identifier");
	ca->key_id_len = n;
	return CF_OK;
}

/* The long name of the signature algorithm, as X509_get_signature_nid() would give it. */
static int
ca_sig_alg_name_cache(cf_pki_ca *ca, cf_err *err)
{
	const unsigned char *p = ca->sigalg_der;
	const ASN1_OBJECT *obj = NULL;
	X509_ALGOR *alg = d2i_X509_ALGOR(NULL, &p, (long)ca->sigalg_len);
	const char *name;

	if (alg == NULL)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL,
				       "the CA's algorithm id does not parse");
	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	name = OBJ_nid2ln(OBJ_obj2nid(obj));
	snprintf(ca->sig_alg, sizeof(ca->sig_alg), "%s", name != NULL ? name : "");
	X509_ALGOR_free(alg);
	return CF_OK;
}

/*
 * What issuance reports in cf_pki_cert_info without parsing the certificate:
 * the issuer as text and the signature algorithm's name, and the digests
 * fetched once (EVP_sha256() would look the implementation up every time).
 */
static int
ca_info_cache(cf_pki_ca *ca, cf_err *err)
{
	ca->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	ca->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	if (ca->sha256 == NULL || ca->sha1 == NULL)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "fetching SHA-256 and SHA-1");
	if (cf_pki__name_text(ca->issuer_text, sizeof(ca->issuer_text),
			      X509_get_subject_name(ca->cert)) != CF_OK)
		return cf_err_set_ossl(err, CF_ENOMEM, NULL, "printing the CA subject");
	return ca_sig_alg_name_cache(ca, err);
}

/* Cache what every issued certificate repeats: issuer name, AKI, notAfter. */
static int
ca_cache_fill(cf_pki_ca *ca, cf_err *err)
{
	unsigned char *name = NULL;
	int len, rc;

	len = i2d_X509_NAME(X509_get_subject_name(ca->cert), &name);
	if (len <= 0)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "CA subject");
	ca->name_der = name;
	ca->name_len = (size_t)len;
	rc = ca_key_id_cache(ca, err);
	if (rc != CF_OK)
		return rc;
	if (cf_pki__asn1_time_to_epoch(&ca->not_after, X509_get0_notAfter(ca->cert)) != CF_OK)
		return cf_err_set(err, CF_EINVAL, NULL, "CA notAfter unreadable");
	rc = ca_signer_init(ca, err);
	if (rc != CF_OK)
		return rc;
	return ca_info_cache(ca, err);
}

int
cf_pki_ca_new(cf_pki_ca **out, X509 *cert, EVP_PKEY *key, cf_err *err)
{
	cf_pki_ca *ca = NULL;
	int rc;

	*out = NULL;
	if (cert == NULL || key == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "a CA needs a certificate and a key");
	if (X509_check_private_key(cert, key) != 1) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL,
				     "the key does not match the CA certificate");
		goto out;
	}
	if ((X509_get_extension_flags(cert) & EXFLAG_CA) == 0) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "the certificate is not a CA");
		goto out;
	}
	ca = calloc(1, sizeof(*ca));
	if (ca == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "allocating a CA");
		goto out;
	}
	if (X509_up_ref(cert) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "X509_up_ref");
		goto out;
	}
	ca->cert = cert;
	if (EVP_PKEY_up_ref(key) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "EVP_PKEY_up_ref");
		goto out;
	}
	ca->key = key;
	rc = ca_cache_fill(ca, err);
	if (rc != CF_OK)
		goto out;
	*out = ca;
	ca = NULL;
out:
	cf_pki_ca_free(ca);
	return rc;
}

X509 *
cf_pki_ca_cert(const cf_pki_ca *ca)
{
	return ca->cert;
}

void
cf_pki_ca_free(cf_pki_ca *ca)
{
	if (ca == NULL)
		return;
	/* EVP_PKEY_free wipes the private key when the last reference goes. */
	EVP_MD_CTX_free(ca->sign_template);
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	OPENSSL_free(ca->name_der);
	OPENSSL_free(ca->sigalg_der);
	EVP_MD_free(ca->sha256);
	EVP_MD_free(ca->sha1);
	free(ca);
}

/* CN=common_name[, O=organization] */
static X509_NAME *
ca_name_make(const char *common_name, const char *organization)
{
	X509_NAME *name = X509_NAME_new();

	if (name == NULL)
		return NULL;
	if (organization != NULL &&
	    X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
				       (const unsigned char *)organization, -1, -1, 0) != 1)
		goto fail;
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)common_name, -1, -1, 0) != 1)
		goto fail;
	return name;
fail:
	X509_NAME_free(name);
	return NULL;
}

/* Add one extension in openssl.cnf syntax, in the context of ctx. */
static bool
ext_add(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	bool ok;

	if (ext == NULL)
		return false;
	ok = X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* The fields of a CA certificate besides its extensions. */
struct ca_spec {
	X509 *issuer_cert;    /* NULL: self-signed */
	EVP_PKEY *issuer_key; /* signs */
	EVP_PKEY *pubkey;     /* certified */
	const char *common_name;
	const char *organization;
	int days;
	const char *basic_constraints; /* "critical,CA:TRUE[,pathlen:0]" */
};

static bool
ca_fields_set(X509 *cert, const struct ca_spec *spec, cf_err *err)
{
	unsigned char serial[16];
	ASN1_INTEGER *sn = NULL;
	BIGNUM *bn = NULL;
	X509_NAME *name = NULL;
	time_t now = (time_t)cf_time_now();
	int64_t not_after = cf_time_now() + (int64_t)spec->days * 86400, cap;
	bool ok = false;

	if (cf_pki__serial_random(serial, err) != CF_OK)
		return false;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	sn = bn == NULL ? NULL : BN_to_ASN1_INTEGER(bn, NULL);
	name = ca_name_make(spec->common_name, spec->organization);
	if (spec->issuer_cert != NULL &&
	    cf_pki__asn1_time_to_epoch(&cap, X509_get0_notAfter(spec->issuer_cert)) == CF_OK &&
	    not_after > cap)
		not_after = cap;
	if (sn == NULL || name == NULL || X509_set_version(cert, X509_VERSION_3) != 1 ||
	    X509_set_serialNumber(cert, sn) != 1 || X509_set_subject_name(cert, name) != 1 ||
	    X509_set_issuer_name(cert, spec->issuer_cert != NULL
					       ? X509_get_subject_name(spec->issuer_cert)
					       : name) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(cert), 0, -CA_BACKDATE_SECONDS, &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), 0, (long)(not_after - (int64_t)now), &now) ==
		    NULL ||
	    X509_set_pubkey(cert, spec->pubkey) != 1)
		goto out;
	ok = true;
out:
	if (!ok)
		cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot fill the CA certificate");
	BN_free(bn);
	ASN1_INTEGER_free(sn);
	X509_NAME_free(name);
	return ok;
}

static int
ca_cert_make(X509 **out, const struct ca_spec *spec, cf_err *err)
{
	X509 *cert = NULL;
	EVP_MD_CTX *ctx = NULL;
	X509V3_CTX v3;
	int rc;

	*out = NULL;
	if (spec->common_name == NULL || spec->common_name[0] == '\0' || spec->days <= 0 ||
	    spec->days > 100 * 366)
		return cf_err_set(err, CF_EINVAL, NULL, "a CA needs a name and a validity");
	cert = X509_new();
	ctx = EVP_MD_CTX_new();
	if (cert == NULL || ctx == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "allocating a certificate");
		goto out;
	}
	if (!ca_fields_set(cert, spec, err)) {
		rc = CF_ECRYPTO;
		goto out;
	}
	X509V3_set_ctx(&v3, spec->issuer_cert != NULL ? spec->issuer_cert : cert, cert, NULL, NULL,
		       0);
	/* SKI first: a self-signed AKI is computed from it. */
	if (!ext_add(cert, &v3, NID_basic_constraints, spec->basic_constraints) ||
	    !ext_add(cert, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !ext_add(cert, &v3, NID_subject_key_identifier, "hash") ||
	    !ext_add(cert, &v3, NID_authority_key_identifier, "keyid:always")) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot add CA extensions");
		goto out;
	}
	if (EVP_DigestSignInit_ex(ctx, NULL, cf_pki__md_name_for_key(spec->issuer_key), NULL, NULL,
				  spec->issuer_key, NULL) != 1 ||
	    X509_sign_ctx(cert, ctx) <= 0) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot sign the CA certificate");
		goto out;
	}
	*out = cert;
	cert = NULL;
	rc = CF_OK;
out:
	EVP_MD_CTX_free(ctx);
	X509_free(cert);
	return rc;
}

int
cf_pki_root_create(X509 **out, EVP_PKEY *key, const char *common_name, const char *organization,
		   int days, cf_err *err)
{
	struct ca_spec spec = {
		NULL, key, key, common_name, organization, days, "critical,CA:TRUE"
	};

	return ca_cert_make(out, &spec, err);
}

int
cf_pki_intermediate_sign(X509 **out, cf_pki_ca *issuer, EVP_PKEY *pubkey, const char *common_name,
			 const char *organization, int days, cf_err *err)
{
	struct ca_spec spec = { issuer->cert,
				issuer->key,
				pubkey,
				common_name,
				organization,
				days,
				"critical,CA:TRUE,pathlen:0" };

	return ca_cert_make(out, &spec, err);
}

int
cf_pki_ca_csr_create(X509_REQ **out, EVP_PKEY *key, const char *common_name,
		     const char *organization, cf_err *err)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	EVP_MD_CTX *ctx = NULL;
	int rc;

	*out = NULL;
	if (key == NULL || common_name == NULL || common_name[0] == '\0')
		return cf_err_set(err, CF_EINVAL, NULL, "a CA request needs a key and a name");
	req = X509_REQ_new();
	name = ca_name_make(common_name, organization);
	ctx = EVP_MD_CTX_new();
	if (req == NULL || name == NULL || ctx == NULL) {
		rc = cf_err_set_ossl(err, CF_ENOMEM, NULL, "allocating a request");
		goto out;
	}
	if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    EVP_DigestSignInit_ex(ctx, NULL, cf_pki__md_name_for_key(key), NULL, NULL, key, NULL) !=
		    1 ||
	    X509_REQ_sign_ctx(req, ctx) <= 0) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot make the CA request");
		goto out;
	}
	*out = req;
	req = NULL;
	rc = CF_OK;
out:
	EVP_MD_CTX_free(ctx);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}
