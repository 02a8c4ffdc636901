/*
 * pki: keys, CSR validation, certificate issuance, certificate facts.
 *
 * OpenSSL 3 EVP APIs only. Knows nothing of the registry or MQTT: callers
 * pass the thing name, the profile and the policy in, and store what comes
 * out. Private keys leave this module only as encrypted PKCS#8 files.
 */
#ifndef CF_PKI_H
#define CF_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/util.h"

/* Largest CSR accepted, PEM or DER (protocol: BAD_CSR above it). */
#define CF_PKI_CSR_MAX (16 * 1024)
/* Largest certificate (PEM) accepted from outside. */
#define CF_PKI_CERT_MAX (64 * 1024)
/* certificateId: lowercase hex SHA-256 of the DER, plus NUL. */
#define CF_PKI_ID_LEN 65
/* Serial numbers as lowercase hex, 128 bits, plus NUL. */
#define CF_PKI_SERIAL_LEN 41

typedef enum {
	CF_KEY_UNKNOWN = 0,
	CF_KEY_EC_P256,
	CF_KEY_EC_P384,
	CF_KEY_ED25519,
	CF_KEY_RSA_2048,
	CF_KEY_RSA_3072,
	CF_KEY_RSA_4096
} cf_key_type;

/* Parse "EC-P256", "EC-P384", "ED25519", "RSA-2048", "RSA-3072", "RSA-4096". */
int cf_pki_key_type_parse(cf_key_type *out, const char *name);
/* The name above, or "UNKNOWN". */
const char *cf_pki_key_type_name(cf_key_type type);

/* Generate a fresh key. The caller frees *out with EVP_PKEY_free(). */
int cf_pki_key_generate(EVP_PKEY **out, cf_key_type type, cf_err *err);

/*
 * PBKDF2 iterations for encrypted key files: OWASP's 2023 figure for
 * PBKDF2-HMAC-SHA256. One key read costs ~0.15-0.3 s; keys are decrypted once per
 * process, and a stolen file costs a guesser as much per passphrase tried.
 */
#define CF_PKI_KDF_ITERATIONS 600000

/*
 * Write key as encrypted PKCS#8 PEM to path, mode 0600, atomically: PBES2
 * with AES-256-CBC and PBKDF2-HMAC-SHA256, CF_PKI_KDF_ITERATIONS iterations,
 * a 16-byte random salt. An existing file is CF_EEXISTS; CF_EINVAL without a
 * key or passphrase (at most 1024 bytes); CF_ECRYPTO when encryption fails.
 */
int cf_pki_key_write_encrypted(const char *path, EVP_PKEY *key, const char *pass,
			       size_t pass_len, cf_err *err);

/*
 * key as unencrypted PKCS#8 PEM, for identities whose key a program reads
 * without a passphrase (a service principal for libmosquitto, a simulated
 * device): *out is NUL-terminated, in OpenSSL's secure heap when there is
 * one; release it with OPENSSL_secure_clear_free(*out, *len_out + 1).
 * CF_EINVAL without a key; CF_ECRYPTO, CF_ENOMEM.
 */
int cf_pki_key_pem_plain(char **out, size_t *len_out, EVP_PKEY *key, cf_err *err);

/*
 * Read an encrypted PKCS#8 PEM key: only an "ENCRYPTED PRIVATE KEY" block
 * is decoded, never a plaintext or legacy key in the same file. CF_ECRYPTO
 * when the passphrase is wrong or the file holds no such block;
 * CF_ENOTFOUND when missing.
 */
int cf_pki_key_read_encrypted(EVP_PKEY **out, const char *path, const char *pass, size_t pass_len,
			      cf_err *err);

/* Lowercase hex SHA-256 of the key's SubjectPublicKeyInfo DER. */
int cf_pki_key_spki_sha256(char out[CF_PKI_ID_LEN], EVP_PKEY *key, cf_err *err);

/* ---- key policy and quality ----------------------------------------- */

/* What a CSR's or certificate's key and signature must meet. */
typedef struct cf_pki_key_policy {
	unsigned int rsa_min_bits; /* 2048 by default */
	bool allow_rsa;
	bool allow_p256;
	bool allow_p384;
	bool allow_ed25519;
} cf_pki_key_policy;

/* RSA >= 2048, P-256, P-384, Ed25519. */
void cf_pki_key_policy_init(cf_pki_key_policy *policy);

/* ---- CSRs ----------------------------------------------------------- */

typedef struct cf_pki_csr cf_pki_csr; /* opaque: a parsed, signature-checked request */

/*
 * Parse a CSR in PEM or DER (at most CF_PKI_CSR_MAX bytes) and verify its
 * self-signature. Errors are CF_EPROTO with the protocol reason: "BAD_CSR"
 * (size, not a CSR, not DER throughout, trailing garbage, unsupported
 * signature algorithm, algorithm parameters where RFC 3279/5758/8410 rule
 * them out), "BAD_SIGNATURE". Changed: also "WEAK_KEY" when the request is
 * signed with MD5 or SHA-1, or its key algorithm or curve is one we cannot
 * use at all, or its RSA key fails the public key check (exponent other than
 * odd 65537..2^256, modulus even or over 8192 bits); the
 * weak digest is refused before verification, so the reason does not
 * depend on whether OpenSSL would verify it. Keys on P-192, P-521 and
 * secp256k1 and short RSA keys parse and are refused by the policy check.
 * The subject and attributes are checked to be DER, not interpreted.
 * The caller frees *out with cf_pki_csr_free().
 */
int cf_pki_csr_parse(cf_pki_csr **out, const void *data, size_t len, cf_err *err);

/*
 * Check the CSR's key against policy: CF_EPROTO "WEAK_KEY" (RSA too short,
 * a curve or algorithm not allowed). Changed: also "WEAK_KEY", whatever the
 * policy, for an RSA modulus with the ROCA fingerprint
 * (cf_pki_rsa_modulus_roca()). MD5 and SHA-1 signatures never get this far:
 * cf_pki_csr_parse() refuses them with "WEAK_KEY".
 */
int cf_pki_csr_check_policy(const cf_pki_csr *csr, const cf_pki_key_policy *policy, cf_err *err);

/* Lowercase hex SHA-256 of the CSR's SubjectPublicKeyInfo (for KEY_REUSE). Borrowed. */
const char *cf_pki_csr_spki_sha256(const cf_pki_csr *csr);

/* The key type of the CSR's public key (CF_KEY_UNKNOWN when outside the list). */
cf_key_type cf_pki_csr_key_type(const cf_pki_csr *csr);

/* Release. NULL is accepted. */
void cf_pki_csr_free(cf_pki_csr *csr);

/* ---- CAs and issuance ----------------------------------------------- */

typedef struct cf_pki_ca cf_pki_ca; /* opaque: a CA certificate and its private key */

/*
 * Make a CA signer from its certificate and key. Checks that the key
 * matches the certificate and that the certificate is a CA. Takes its own
 * references: the caller keeps and frees cert and key.
 */
int cf_pki_ca_new(cf_pki_ca **out, X509 *cert, EVP_PKEY *key, cf_err *err);

/* The CA certificate (borrowed, lives as long as ca). */
X509 *cf_pki_ca_cert(const cf_pki_ca *ca);

/* Release, wiping the key. NULL is accepted. */
void cf_pki_ca_free(cf_pki_ca *ca);

/*
 * Create a self-signed root CA certificate for key: subject CN=common_name
 * (O=organization when not NULL), basicConstraints CA:TRUE critical,
 * keyUsage keyCertSign+cRLSign critical, SKI, validity days.
 */
int cf_pki_root_create(X509 **out, EVP_PKEY *key, const char *common_name,
		       const char *organization, int days, cf_err *err);

/*
 * Sign an intermediate CA certificate for pubkey with issuer: CA:TRUE,
 * pathlen:0, keyCertSign+cRLSign, SKI/AKI, validity days (capped at the
 * issuer's notAfter).
 */
int cf_pki_intermediate_sign(X509 **out, cf_pki_ca *issuer, EVP_PKEY *pubkey,
			     const char *common_name, const char *organization, int days,
			     cf_err *err);

/*
 * Make a CSR for an intermediate (for offline signing by the root).
 * The caller frees *out with X509_REQ_free().
 */
int cf_pki_ca_csr_create(X509_REQ **out, EVP_PKEY *key, const char *common_name,
			 const char *organization, cf_err *err);

/* What an issued device certificate looks like besides its subject. */
typedef struct cf_pki_profile {
	int days;             /* validity, default 365 */
	int backdate_seconds; /* notBefore = now - backdate, default 300 */
	const char *crl_url;  /* CRL distribution point, or NULL */
	const char *ocsp_url; /* OCSP in Authority Information Access, or NULL */
} cf_pki_profile;

/* 365 days, backdated 5 minutes, no CRL or OCSP URL. */
void cf_pki_profile_init(cf_pki_profile *profile);

/*
 * Issue a device certificate for csr's public key, signed by ca. thing must
 * be 1 to 64 bytes (CF_EINVAL otherwise): RFC 5280's ub-common-name is 64,
 * and thing names are ASCII. The subject is CN=thing and the SAN URI
 * urn:certfleet:thing:<thing>, whatever the CSR asked. EKU clientAuth, KU
 * digitalSignature critical, basicConstraints CA:FALSE critical, SKI/AKI, a
 * 128-bit random positive serial, and the profile's validity and URLs.
 * notAfter is capped at the CA's notAfter. The caller frees *out with
 * X509_free().
 */
int cf_pki_issue(X509 **out, cf_pki_ca *ca, const cf_pki_csr *csr, const char *thing,
		 const cf_pki_profile *profile, cf_err *err);

typedef struct cf_pki_cert_info cf_pki_cert_info; /* defined under "certificates" */

/*
 * Added: the same certificate as cf_pki_issue(), as DER, without building
 * an X509. Parsing the result into an X509 costs OpenSSL 3.0 about as much
 * as the verify and the sign together (its key decoder), so a caller that
 * only stores and sends the certificate should use this, with
 * cf_pki_der_to_pem() for the PEM. The caller frees *out with free().
 * Changed: when info is not NULL it is filled, without parsing the result,
 * with exactly what cf_pki_cert_info_get() would report for the
 * certificate (notAfter as capped at the CA's). CF_EINVAL for a bad thing
 * name or profile, CF_ESTATE when the CA has expired, CF_ECRYPTO when
 * signing fails.
 */
int cf_pki_issue_der(unsigned char **out, size_t *len_out, cf_pki_ca *ca, const cf_pki_csr *csr,
		     const char *thing, const cf_pki_profile *profile, cf_pki_cert_info *info,
		     cf_err *err);

/* ---- certificates --------------------------------------------------- */

/* Facts about a certificate, as the registry keeps them. */
struct cf_pki_cert_info {
	char id[CF_PKI_ID_LEN];          /* SHA-256 of the DER */
	char serial[CF_PKI_SERIAL_LEN];  /* lowercase hex, no leading zeros */
	char subject[256];               /* RFC 2253 */
	char issuer[256];                /* RFC 2253 */
	char common_name[129];           /* subject CN, or "" */
	char spki_sha256[CF_PKI_ID_LEN]; /* SHA-256 of the SubjectPublicKeyInfo DER */
	char key_alg[16];                /* "EC", "RSA", "ED25519", or the OID name */
	char key_curve[32];              /* "P-256", "secp256k1", ... or "" */
	int key_bits;
	cf_key_type key_type;
	char sig_alg[48]; /* "ecdsa-with-SHA256", "sha1WithRSAEncryption", ... */
	int64_t not_before;
	int64_t not_after;
	bool is_ca;
	/*
	 * The public key passes the checks a CSR's key gets: for RSA
	 * cf_pki_csr_parse()'s exponent, size and odd-modulus checks; for
	 * EC a real point, not the point at infinity. True for Ed25519 and for
	 * keys of other algorithms, false when OpenSSL cannot decode the key.
	 * cf_pki_key_quality() reports WEAK_KEY when it is false.
	 */
	bool key_valid;
	/*
	 * Added: the RSA modulus has the ROCA fingerprint (CVE-2017-15361,
	 * cf_pki_rsa_modulus_roca()): the key was made by Infineon's RSALib
	 * and factors far faster than its size promises (the ROCA paper: some
	 * 100 CPU-days at 1024 bits, 140 CPU-years at 2048). False for other
	 * algorithms. cf_pki_key_quality() reports WEAK_KEY when it is true,
	 * whatever the policy.
	 */
	bool key_roca;
};

/* Fill info from cert. */
int cf_pki_cert_info_get(cf_pki_cert_info *info, X509 *cert, cf_err *err);

/* certificateId of cert. */
int cf_pki_cert_id(char out[CF_PKI_ID_LEN], X509 *cert, cf_err *err);

/*
 * Parse one PEM certificate (at most CF_PKI_CERT_MAX bytes). CF_EINVAL with
 * reason "BAD_CERTIFICATE" when it is not one.
 */
int cf_pki_cert_from_pem(X509 **out, const char *pem, size_t len, cf_err *err);

/* PEM text of cert, NUL-terminated, freed with free(). */
int cf_pki_cert_to_pem(char **out, size_t *len_out, X509 *cert, cf_err *err);

/*
 * Added: PEM text of der_len bytes of DER under label ("CERTIFICATE"):
 * "-----BEGIN <label>-----", base64 in 64-character lines, "-----END
 * <label>-----", each line ending in "\n"; byte for byte what
 * PEM_write_bio_X509() writes for the same certificate. The DER is not
 * looked at. *out is NUL-terminated and freed with free(); *len_out (may be
 * NULL) excludes the NUL. CF_EINVAL for an empty or over-long (64) label,
 * CF_ENOMEM.
 */
int cf_pki_der_to_pem(char **out, size_t *len_out, const unsigned char *der, size_t der_len,
		      const char *label, cf_err *err);

/* Verdict of cf_pki_key_quality(). */
typedef struct cf_pki_quality {
	bool ok;
	const char *reason; /* "WEAK_KEY", "WEAK_SIGNATURE", or NULL when ok */
	char detail[128];   /* "RSA key of 1024 bits", ... */
} cf_pki_quality;

/*
 * Judge a certificate's key (key_valid and key_roca included) and signature
 * against policy. Never fails.
 */
void cf_pki_key_quality(cf_pki_quality *out, const cf_pki_cert_info *info,
			const cf_pki_key_policy *policy);

/*
 * Added: true when the RSA modulus n has the ROCA fingerprint of Infineon's
 * RSALib (CVE-2017-15361): modulo every odd prime up to 167, n is a power
 * of 65537, with one exponent for all of them. Every RSALib modulus has
 * it; a random one with probability 2^-154.9. About 0.3 us for an ordinary
 * 2048-bit modulus, 25 us for one with the fingerprint (cert.c says how it
 * works). Pure arithmetic, no thread-shared state, not a size check: small
 * numbers such as 1 (65537^0) pass. False for NULL, zero and negative n.
 */
bool cf_pki_rsa_modulus_roca(const BIGNUM *n);

/* True when cert's signature verifies with issuer's public key. */
bool cf_pki_cert_signed_by(X509 *cert, X509 *issuer);

/* True when key is the private half of cert's public key. */
bool cf_pki_key_matches_cert(EVP_PKEY *key, X509 *cert);

/*
 * The RFC 5280 CRL reason names, case-sensitive: unspecified, keyCompromise,
 * cACompromise, affiliationChanged, superseded, cessationOfOperation,
 * privilegeWithdrawn, aACompromise. Not accepted: certificateHold (REVOKED
 * is terminal here, a hold is not) and removeFromCRL (delta CRLs only).
 */
bool cf_pki_revoke_reason_valid(const char *name);

/* ---- revocation lists read by the audit --------------------------------- */

/* The largest CRL file read, in bytes (a million entries are about 40 MB). */
#define CF_PKI_CRL_MAX (64u * 1024 * 1024)

typedef struct cf_pki_crl cf_pki_crl;

/*
 * Read the CRL in path: exactly one CRL, PEM (one "X509 CRL" block, blank
 * space around it) or DER (nothing after it); a bundle of several is
 * refused rather than read in part. Its signature is not checked here: see
 * cf_pki_crl_signed_by(). CF_ENOTFOUND; CF_EINVAL ("BAD_CRL") for anything
 * else or a file over CF_PKI_CRL_MAX; CF_EIO, CF_ENOMEM.
 */
int cf_pki_crl_read(cf_pki_crl **out, const char *path, cf_err *err);
void cf_pki_crl_free(cf_pki_crl *crl);

/* The issuer name as RFC 2253 text. Borrowed from crl. */
const char *cf_pki_crl_issuer(const cf_pki_crl *crl);

/* True when issuer's subject is crl's issuer and issuer's key verifies crl's signature. */
bool cf_pki_crl_signed_by(const cf_pki_crl *crl, X509 *issuer);

/* nextUpdate, seconds since the epoch; 0 when the CRL has none. */
int64_t cf_pki_crl_next_update(const cf_pki_crl *crl);

/* One entry of a CRL. */
typedef struct cf_pki_crl_entry {
	char serial[CF_PKI_SERIAL_LEN]; /* as cf_pki_cert_info's serial */
	int64_t revoked_at;
	const char *reason; /* RFC 5280 name, "unspecified" when absent; static */
} cf_pki_crl_entry;

typedef int (*cf_pki_crl_entry_cb)(const cf_pki_crl_entry *entry, void *payload);

/*
 * Call cb for each entry of crl, in the CRL's order. Left out, and counted
 * in *skipped (may be NULL): removeFromCRL entries (delta CRLs) and serials
 * no certificate of the registry can have (negative, over 20 octets). A
 * non-zero return of cb stops and is returned.
 */
int cf_pki_crl_foreach(const cf_pki_crl *crl, cf_pki_crl_entry_cb cb, void *payload,
		       size_t *skipped);

#endif
