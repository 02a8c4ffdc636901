/*
 * Revocation lists read for the audit (REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK):
 * a CRL file an operator points certfleet at, its issuer and signature, and
 * its entries as (serial, date, reason) in the registry's serial format.
 * certfleet does not publish CRLs here; it reads those of the CAs it knows.
 */
#include "pki_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct cf_pki_crl {
	X509_CRL *crl;
	char issuer[512];
};

/* RFC 5280 CRLReason by code (7 is unused). */
static const char *const crl_reasons[] = {
	"unspecified",		"keyCompromise",	"cACompromise",
	"affiliationChanged",	"superseded",		"cessationOfOperation",
	"certificateHold",	NULL,			"removeFromCRL",
	"privilegeWithdrawn",	"aACompromise",
};

static bool
blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/*
 * Exactly one CRL: PEM that is one "X509 CRL" block and blank space, or DER
 * that is one CRL and nothing after it. A bundle would be read as its first
 * CRL only, the others' revocations missed without a word: refused instead.
 */
static X509_CRL *
crl_parse(const char *data, size_t len)
{
	static const char begin[] = "-----BEGIN X509 CRL-----";
	const unsigned char *p = (const unsigned char *)data;
	X509_CRL *crl = NULL;
	char *rest = NULL;
	long left;
	size_t i = 0;
	BIO *bio;

	/* DER starts with a SEQUENCE tag; PEM, after any blank space, with dashes. */
	while (i < len && blank(data + i, 1))
		i++;
	if (i < len && data[i] == '-') {
		if (len - i < sizeof(begin) - 1 || memcmp(data + i, begin, sizeof(begin) - 1) != 0)
			return NULL;
		bio = BIO_new_mem_buf(data + i, (int)(len - i));
		if (bio != NULL)
			crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		left = bio != NULL ? BIO_get_mem_data(bio, &rest) : 0;
		if (crl != NULL && left > 0 && !blank(rest, (size_t)left)) {
			X509_CRL_free(crl);
			crl = NULL;
		}
		BIO_free(bio);
		return crl;
	}
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	/* One DER CRL and nothing after it. */
	if (crl != NULL && p != (const unsigned char *)data + len) {
		X509_CRL_free(crl);
		crl = NULL;
	}
	return crl;
}

int
cf_pki_crl_read(cf_pki_crl **out, const char *path, cf_err *err)
{
	cf_pki_crl *c = NULL;
	char *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = cf_file_read(&data, &len, path, CF_PKI_CRL_MAX, err);
	if (rc == CF_EINVAL)
		return cf_err_set(err, rc, "BAD_CRL", "%s is over %u bytes", path, CF_PKI_CRL_MAX);
	if (rc != CF_OK)
		return rc;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "CRL");
		goto out;
	}
	c->crl = crl_parse(data, len);
	if (c->crl == NULL) {
		rc = cf_err_set_ossl(err, CF_EINVAL, "BAD_CRL",
				     "%s is not a CRL (PEM \"X509 CRL\" or DER)", path);
		goto out;
	}
	if (cf_pki__name_text(c->issuer, sizeof(c->issuer), X509_CRL_get_issuer(c->crl)) !=
	    CF_OK) {
		rc = cf_err_set_ossl(err, CF_EINVAL, "BAD_CRL", "%s: unreadable issuer name",
				     path);
		goto out;
	}
	*out = c;
	c = NULL;
	rc = CF_OK;
out:
	cf_pki_crl_free(c);
	free(data);
	return rc;
}

void
cf_pki_crl_free(cf_pki_crl *crl)
{
	if (crl == NULL)
		return;
	X509_CRL_free(crl->crl);
	free(crl);
}

const char *
cf_pki_crl_issuer(const cf_pki_crl *crl)
{
	return crl->issuer;
}

bool
cf_pki_crl_signed_by(const cf_pki_crl *crl, X509 *issuer)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	bool ok = key != NULL &&
		  X509_NAME_cmp(X509_CRL_get_issuer(crl->crl), X509_get_subject_name(issuer)) == 0 &&
		  X509_CRL_verify(crl->crl, key) == 1;

	if (!ok)
		ERR_clear_error();
	return ok;
}

int64_t
cf_pki_crl_next_update(const cf_pki_crl *crl)
{
	const ASN1_TIME *t = X509_CRL_get0_nextUpdate(crl->crl);
	int64_t at = 0;

	return t != NULL && cf_pki__asn1_time_to_epoch(&at, t) == CF_OK ? at : 0;
}

/* The entry's CRLReason name; "unspecified" when it has none. */
static const char *
entry_reason(X509_REVOKED *rev)
{
	ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
	long code = e != NULL ? ASN1_ENUMERATED_get(e) : 0;

	ASN1_ENUMERATED_free(e);
	if (code < 0 || (size_t)code >= CF_ARRAY_LEN(crl_reasons) || crl_reasons[code] == NULL)
		return "unspecified";
	return crl_reasons[code];
}

int
cf_pki_crl_foreach(const cf_pki_crl *crl, cf_pki_crl_entry_cb cb, void *payload, size_t *skipped)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl->crl);
	cf_pki_crl_entry e;
	X509_REVOKED *rev;
	int i, rc;

	if (skipped != NULL)
		*skipped = 0;
	for (i = 0; i < sk_X509_REVOKED_num(revs); i++) {
		rev = sk_X509_REVOKED_value(revs, i);
		memset(&e, 0, sizeof(e));
		e.reason = entry_reason(rev);
		if (strcmp(e.reason, "removeFromCRL") == 0 ||
		    cf_pki__serial_hex(e.serial, X509_REVOKED_get0_serialNumber(rev)) != CF_OK) {
			if (skipped != NULL)
				(*skipped)++;
			continue;
		}
		(void)cf_pki__asn1_time_to_epoch(&e.revoked_at,
						 X509_REVOKED_get0_revocationDate(rev));
		rc = cb(&e, payload);
		if (rc != 0)
			return rc;
	}
	return CF_OK;
}
