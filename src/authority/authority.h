/*
 * authority: issues device certificates from CSRs into the registry.
 *
 * The one issuance path shared by `certfleet cert issue`, the rotation
 * engine and bench/issue: validate the CSR, check the thing and the CA in
 * the registry, sign with the CA (its key decrypted once and cached), and
 * record the certificate with its policies and event in one transaction.
 * Sits above pki and store, below everything that issues.
 */
#ifndef CF_AUTHORITY_H
#define CF_AUTHORITY_H

#include <stddef.h>

#include "pki/pki.h"
#include "store/store.h"
#include "util/util.h"

typedef struct cf_authority_config {
	const char *data_dir;           /* CA key_ref paths are relative to it */
	const char *ca_passphrase_file; /* absolute path of the intermediate key passphrase */
	cf_pki_profile profile;         /* validity and URLs of device certificates */
	cf_pki_key_policy key_policy;   /* what a CSR's key must meet */
	const char *default_policy;     /* attached when a request names none; NULL or "" */
} cf_authority_config;

typedef struct cf_authority cf_authority; /* opaque */

/*
 * Make an authority over store (borrowed: it must outlive the authority).
 * The config strings are copied. The caller frees *out with
 * cf_authority_free().
 */
int cf_authority_new(cf_authority **out, cf_store *store, const cf_authority_config *cfg,
		     cf_err *err);

/* Release, wiping cached CA keys. NULL is accepted. */
void cf_authority_free(cf_authority *auth);

typedef struct cf_authority_request {
	const char *thing;           /* must exist in the registry */
	const void *csr;             /* PEM or DER */
	size_t csr_len;
	const char *ca;              /* issuing CA, or NULL for the default issuer */
	int days;                    /* validity in days, or 0 for the profile's */
	const char *const *policies; /* policy names to attach ... */
	size_t npolicies;            /* ... or 0 for the default policy */
	cf_cert_status status;       /* status the new certificate starts in */
	const char *reject_spki;     /* refuse a CSR whose key has this SPKI SHA-256 (64 hex
					digits; KEY_REUSE), or NULL */
} cf_authority_request;

typedef struct cf_authority_result {
	char id[CF_PKI_ID_LEN]; /* certificateId */
	char *pem;              /* the certificate, freed by cf_authority_result_clear() */
} cf_authority_result;

/*
 * Issue one certificate. Refusals carry the protocol reason in err->reason:
 * BAD_CSR, BAD_SIGNATURE, WEAK_KEY, KEY_REUSE (CF_EPROTO); an unknown thing,
 * CA or policy is CF_ENOTFOUND; a CA that is not ACTIVE is CF_ESTATE.
 * Nothing is written to the registry unless the whole issuance succeeds.
 */
int cf_authority_issue(cf_authority *auth, cf_authority_result *out,
		       const cf_authority_request *req, const cf_store_actor *actor, cf_err *err);

void cf_authority_result_clear(cf_authority_result *result);

/* One request of cf_authority_issue_batch(). */
typedef struct cf_authority_item {
	const cf_authority_request *req; /* in */
	cf_authority_result result;      /* out, when rc is CF_OK: release with _result_clear() */
	int rc;                          /* out: CF_OK, or why this one was refused */
	cf_err err;                      /* out */
} cf_authority_item;

/*
 * Issue several certificates with one registry transaction (group commit),
 * the way certfleetd does when many CSRs wait: each item is signed and
 * refused or issued on its own, exactly as by cf_authority_issue(); only the
 * commit is shared. Returns CF_OK when the registry transaction committed;
 * otherwise (CF_EBUSY, CF_ESTORE) nothing was written and each item's rc
 * says so.
 */
int cf_authority_issue_batch(cf_authority *auth, cf_authority_item *items, size_t n,
			     const cf_store_actor *actor, cf_err *err);

/*
 * The signer of the named CA (NULL: the default issuer), loading and
 * decrypting its key on first use. Borrowed: lives as long as auth.
 * CF_ENOTFOUND; CF_ESTATE for a CA without a key here (root, external,
 * pending); CF_ECRYPTO when the key does not decrypt.
 */
int cf_authority_signer(cf_pki_ca **out, cf_authority *auth, const char *ca, cf_err *err);

#endif
