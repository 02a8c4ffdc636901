/* Certificate facts, identifiers, PEM, key quality, revocation reasons. */
#include "pki_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

int
cf_pki__asn1_time_to_epoch(int64_t *out, const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return CF_EINVAL;
	*out = (int64_t)timegm(&tm);
	return CF_OK;
}

/* Lowercase hex SHA-256 of data. */
static int
sha256_hex(char out[CF_PKI_ID_LEN], const unsigned char *data, size_t len)
{
	unsigned char md[32];

	if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
		return CF_ECRYPTO;
	cf_hex_encode(out, md, sizeof(md));
	return CF_OK;
}

int
cf_pki_cert_id(char out[CF_PKI_ID_LEN], X509 *cert, cf_err *err)
{
	unsigned char *der = NULL;
	int len, rc;

	out[0] = '\0';
	/* i2d of a parsed certificate reuses the bytes it was parsed from. */
	len = i2d_X509(cert, &der);
	if (len <= 0 || sha256_hex(out, der, (size_t)len) != CF_OK)
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot hash the certificate");
	else
		rc = CF_OK;
	OPENSSL_free(der);
	return rc;
}

int
cf_pki__serial_hex(char out[CF_PKI_SERIAL_LEN], const ASN1_INTEGER *sn)
{
	const unsigned char *p = ASN1_STRING_get0_data(sn);
	size_t len = (size_t)ASN1_STRING_length(sn), skip = 0;
	char hex[2 * 20 + 1];

	while (skip < len && p[skip] == 0)
		skip++;
	/* RFC 5280 allows 20 octets; negative serials are not ours to keep. */
	if (len - skip > 20 || ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER)
		return CF_EINVAL;
	if (skip == len) {
		memcpy(out, "0", 2);
		return CF_OK;
	}
	cf_hex_encode(hex, p + skip, len - skip);
	/* The first byte may still give one leading zero digit. */
	memcpy(out, hex[0] == '0' ? hex + 1 : hex, strlen(hex[0] == '0' ? hex + 1 : hex) + 1);
	return CF_OK;
}

int
cf_pki__name_text(char *out, size_t size, const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;

	out[0] = '\0';
	if (bio == NULL)
		return CF_ENOMEM;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		BIO_free(bio);
		return CF_ECRYPTO;
	}
	n = BIO_get_mem_data(bio, &data);
	if (n > 0) {
		if ((size_t)n >= size)
			n = (long)size - 1;
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	return CF_OK;
}

void
cf_pki__common_name_get(char *out, size_t size, const X509_NAME *name)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n;

	out[0] = '\0';
	if (i < 0)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n > 0 && (size_t)n < size) {
		memcpy(out, utf8, (size_t)n);
		out[n] = '\0';
	}
	OPENSSL_free(utf8);
}

/*
 * The CSR checks on a certificate's key. RSA costs ~3 ms at 2048 bits (the
 * modulus check); EC only looks at the point's first byte, as the CSR
 * parser does: OpenSSL's decoder has checked the rest is on the curve.
 */
static bool
key_valid(EVP_PKEY *key, X509 *cert)
{
	const unsigned char *pk = NULL;
	int pk_len = 0;

	if (EVP_PKEY_is_a(key, "RSA"))
		return cf_pki__rsa_public_check(key, NULL) == CF_OK;
	if (EVP_PKEY_is_a(key, "EC")) {
		if (X509_PUBKEY_get0_param(NULL, &pk, &pk_len, NULL, X509_get_X509_PUBKEY(cert)) !=
		    1)
			return false;
		return pk_len >= 2 && (pk[0] == 0x02 || pk[0] == 0x03 || pk[0] == 0x04);
	}
	return true;
}

/*
 * ROCA (CVE-2017-15361). How it works: Infineon's RSALib makes each prime
 * as p = k * M + (65537^a mod M), where M is the product of the first 39
 * primes for its smallest keys and of more for larger ones, so M always
 * has the odd primes r up to 167 below. Then p and q, and so N = p * q, are
 * powers of 65537 modulo M: N = 65537^c mod M with c = a + b. Modulo each r
 * this says N = 65537^c_r mod r for some c_r, and the c_r are c reduced
 * modulo ord_r, the order of 65537 mod r. The test is that, in two steps:
 *
 * 1. Each N mod r is a power of 65537 (c_r found by walking the powers,
 *    at most r - 1 of them). A random modulus gets through this step with
 *    probability prod(ord_r / (r - 1)) = 2^-27.8.
 * 2. One c fits every c_r. By the Chinese remainder theorem for moduli
 *    that need not be coprime, it exists exactly when c_r = c_s modulo
 *    gcd(ord_r, ord_s) for every pair r, s. With this the chance for a
 *    random modulus is lcm(ord_r) / prod(r - 1) = 2^61.1 / 2^216.0 = 2^-154.9,
 *    while step 1 alone would flag about one modulus in 240 million.
 *
 * Every RSALib modulus passes both (no false negatives). r = 2 is left out:
 * every modulus is odd, so it says nothing. r | N fails step 1 (0 is no
 * power of 65537); such a modulus is broken, but not by ROCA.
 *
 * Why this order: the primes that keep the smallest share of residues come
 * first (97 keeps 1/16, 37 1/12, 79 1/6, 11 1/5, then 1/3 and 1/2), and
 * those where 65537 generates every residue last, so an ordinary modulus
 * leaves after about one BN_mod_word() (~0.3 us at 2048 bits).
 */
static const unsigned char roca_primes[] = {
	97, 37, 79, 11, 61, 73, 127, 151, 13, 17, 19, 53,  71,  103, 107, 109, 157, 3,   5,
	7,  23, 29, 31, 41, 43, 47,  59,  67, 83, 89, 101, 113, 131, 137, 139, 149, 163, 167,
};

static unsigned int
gcd_small(unsigned int a, unsigned int b)
{
	unsigned int t;

	while (b != 0) {
		t = a % b;
		a = b;
		b = t;
	}
	return a;
}

bool
cf_pki_rsa_modulus_roca(const BIGNUM *n)
{
	unsigned char dlog[CF_ARRAY_LEN(roca_primes)], ord[CF_ARRAY_LEN(roca_primes)];
	unsigned int r, g, x, i, k;
	BN_ULONG rem;
	size_t j, l;
	bool found;

	if (n == NULL || BN_is_zero(n) || BN_is_negative(n))
		return false;
	/* Step 1: the discrete logarithm of N mod r to the base 65537, for each r. */
	for (j = 0; j < CF_ARRAY_LEN(roca_primes); j++) {
		r = roca_primes[j];
		rem = BN_mod_word(n, r);
		if (rem == (BN_ULONG)-1)
			return false;
		g = 65537 % r;
		found = false;
		/* x runs through 65537^i mod r until it comes back to 1 at i = ord_r. */
		x = 1;
		i = 0;
		do {
			if (x == rem) {
				dlog[j] = (unsigned char)i;
				found = true;
			}
			x = x * g % r;
			i++;
		} while (x != 1);
		if (!found)
			return false;
		ord[j] = (unsigned char)i;
	}
	/* Step 2: one exponent for all r. */
	for (j = 0; j < CF_ARRAY_LEN(roca_primes); j++) {
		for (l = j + 1; l < CF_ARRAY_LEN(roca_primes); l++) {
			k = gcd_small(ord[j], ord[l]);
			if (dlog[j] % k != dlog[l] % k)
				return false;
		}
	}
	return true;
}

/* The modulus of an RSAPublicKey ::= SEQUENCE { modulus INTEGER, ... } in DER, or NULL. */
static BIGNUM *
rsa_modulus_from_der(const unsigned char *pub, size_t len)
{
	cf_pki__der_cur cur = { pub, len }, in;
	cf_pki__der_tlv seq, n;

	if (pub == NULL || !cf_pki__der_get(&seq, &cur, CF_DER_SEQUENCE))
		return NULL;
	in.p = seq.val;
	in.len = seq.val_len;
	if (!cf_pki__der_get(&n, &in, CF_DER_INTEGER) || n.val_len == 0 || n.val_len > INT_MAX ||
	    (n.val[0] & 0x80) != 0)
		return NULL;
	return BN_bin2bn(n.val, (int)n.val_len, NULL);
}

bool
cf_pki__rsa_key_roca(EVP_PKEY *key, const unsigned char *pub, size_t pub_len)
{
	BIGNUM *n = rsa_modulus_from_der(pub, pub_len);
	bool roca;

	/* Not DER (OpenSSL's decoder takes some BER): ask the key, at ~3 us. */
	if (n == NULL && EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1) {
		ERR_clear_error();
		return false;
	}
	roca = cf_pki_rsa_modulus_roca(n);
	BN_free(n);
	return roca;
}

/* key_alg, key_curve, key_bits, key_type, key_valid, key_roca from the public key. */
static void
key_facts(cf_pki_cert_info *info, X509 *cert)
{
	EVP_PKEY *key = X509_get0_pubkey(cert);
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(cert);
	const unsigned char *pk = NULL;
	ASN1_OBJECT *alg = NULL;
	char group[32];
	const char *nist;
	size_t n = 0;
	int bits, pk_len = 0;

	if (key == NULL) {
		/* Unknown to OpenSSL: report the algorithm OID's name. */
		ERR_clear_error();
		X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, xpk);
		OBJ_obj2txt(info->key_alg, sizeof(info->key_alg), alg, 0);
		return;
	}
	bits = EVP_PKEY_get_bits(key);
	info->key_bits = bits;
	info->key_valid = key_valid(key, cert);
	if (EVP_PKEY_is_a(key, "RSA")) {
		snprintf(info->key_alg, sizeof(info->key_alg), "RSA");
		/* The modulus from the certificate's bytes: cheaper than asking the key. */
		if (X509_PUBKEY_get0_param(NULL, &pk, &pk_len, NULL, xpk) != 1 || pk_len < 0) {
			pk = NULL;
			pk_len = 0;
		}
		info->key_roca = cf_pki__rsa_key_roca(key, pk, (size_t)pk_len);
		info->key_type = bits == 2048   ? CF_KEY_RSA_2048
				 : bits == 3072 ? CF_KEY_RSA_3072
				 : bits == 4096 ? CF_KEY_RSA_4096
						: CF_KEY_UNKNOWN;
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		snprintf(info->key_alg, sizeof(info->key_alg), "ED25519");
		info->key_type = CF_KEY_ED25519;
	} else if (EVP_PKEY_is_a(key, "EC")) {
		snprintf(info->key_alg, sizeof(info->key_alg), "EC");
		if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), &n) != 1)
			return;
		nist = EC_curve_nid2nist(OBJ_sn2nid(group));
		snprintf(info->key_curve, sizeof(info->key_curve), "%s",
			 nist != NULL ? nist : group);
		if (strcmp(info->key_curve, "P-256") == 0)
			info->key_type = CF_KEY_EC_P256;
		else if (strcmp(info->key_curve, "P-384") == 0)
			info->key_type = CF_KEY_EC_P384;
	} else {
		snprintf(info->key_alg, sizeof(info->key_alg), "%s", EVP_PKEY_get0_type_name(key));
	}
}

int
cf_pki_cert_info_get(cf_pki_cert_info *info, X509 *cert, cf_err *err)
{
	const X509_PUBKEY *xpk = X509_get_X509_PUBKEY(cert);
	unsigned char *spki = NULL;
	int spki_len, rc;

	memset(info, 0, sizeof(*info));
	rc = cf_pki_cert_id(info->id, cert, err);
	if (rc != CF_OK)
		return rc;
	if (cf_pki__serial_hex(info->serial, X509_get0_serialNumber(cert)) != CF_OK)
		return cf_err_set(err, CF_EINVAL, "BAD_CERTIFICATE",
				  "serial is not a positive 20-octet integer");
	if (cf_pki__name_text(info->subject, sizeof(info->subject), X509_get_subject_name(cert)) !=
		    CF_OK ||
	    cf_pki__name_text(info->issuer, sizeof(info->issuer), X509_get_issuer_name(cert)) !=
		    CF_OK)
		return cf_err_set_ossl(err, CF_ENOMEM, NULL, "printing names");
	cf_pki__common_name_get(info->common_name, sizeof(info->common_name),
				X509_get_subject_name(cert));
	spki_len = i2d_X509_PUBKEY(xpk, &spki);
	if (spki_len <= 0 || sha256_hex(info->spki_sha256, spki, (size_t)spki_len) != CF_OK) {
		OPENSSL_free(spki);
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "hashing the public key");
	}
	OPENSSL_free(spki);
	key_facts(info, cert);
	snprintf(info->sig_alg, sizeof(info->sig_alg), "%s",
		 OBJ_nid2ln(X509_get_signature_nid(cert)));
	if (cf_pki__asn1_time_to_epoch(&info->not_before, X509_get0_notBefore(cert)) != CF_OK ||
	    cf_pki__asn1_time_to_epoch(&info->not_after, X509_get0_notAfter(cert)) != CF_OK)
		return cf_err_set(err, CF_EINVAL, "BAD_CERTIFICATE", "unreadable validity");
	info->is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
	return CF_OK;
}

int
cf_pki_cert_from_pem(X509 **out, const char *pem, size_t len, cf_err *err)
{
	BIO *bio = NULL;
	X509 *cert = NULL;
	int rc;

	*out = NULL;
	if (pem == NULL || len == 0 || len > CF_PKI_CERT_MAX)
		return cf_err_set(err, CF_EINVAL, "BAD_CERTIFICATE", "certificate is %zu bytes",
				  len);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		rc = cf_err_set_ossl(err, CF_ENOMEM, NULL, "BIO_new_mem_buf");
		goto out;
	}
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (cert == NULL) {
		rc = cf_err_set_ossl(err, CF_EINVAL, "BAD_CERTIFICATE", "not a PEM certificate");
		goto out;
	}
	*out = cert;
	cert = NULL;
	rc = CF_OK;
out:
	X509_free(cert);
	BIO_free(bio);
	return rc;
}

int
cf_pki_cert_to_pem(char **out, size_t *len_out, X509 *cert, cf_err *err)
{
	BIO *bio = NULL;
	char *data, *copy;
	long n;
	int rc;

	*out = NULL;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "cannot write PEM");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	copy = malloc((size_t)n + 1);
	if (copy == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "PEM copy");
		goto out;
	}
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*out = copy;
	if (len_out != NULL)
		*len_out = (size_t)n;
	rc = CF_OK;
out:
	BIO_free(bio);
	return rc;
}

/* Longest PEM label accepted ("CERTIFICATE", "X509 CRL", ... are far shorter). */
#define PEM_LABEL_MAX 64

/*
 * The same bytes as PEM_write_bio(): EVP_EncodeUpdate() writes each 48-byte
 * block as a 64-character line with "\n", and EVP_EncodeFinal() ends the
 * last, shorter line the same way; no headers.
 */
int
cf_pki_der_to_pem(char **out, size_t *len_out, const unsigned char *der, size_t der_len,
		  const char *label, cf_err *err)
{
	static const char begin[] = "-----BEGIN ", end[] = "-----END ", dashes[] = "-----\n";
	size_t label_len = label == NULL ? 0 : strlen(label), size, off = 0, i, n;
	char *pem;
	int w;

	*out = NULL;
	if (len_out != NULL)
		*len_out = 0;
	/* 65 / 48 < 2: halving SIZE_MAX leaves room for the size sum below. */
	if (label_len == 0 || label_len > PEM_LABEL_MAX || (der == NULL && der_len > 0) ||
	    der_len > SIZE_MAX / 2)
		return cf_err_set(err, CF_EINVAL, NULL, "bad PEM label or %zu bytes of DER",
				  der_len);
	/* Every 48 bytes (or fewer, at the end) become 64 characters and a newline. */
	size = 2 * (sizeof(begin) + label_len + sizeof(dashes)) + (der_len + 47) / 48 * 65 + 1;
	pem = malloc(size);
	if (pem == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "PEM of %zu bytes", size);
	memcpy(pem + off, begin, sizeof(begin) - 1);
	off += sizeof(begin) - 1;
	memcpy(pem + off, label, label_len);
	off += label_len;
	memcpy(pem + off, dashes, sizeof(dashes) - 1);
	off += sizeof(dashes) - 1;
	for (i = 0; i < der_len; i += n) {
		n = der_len - i < 48 ? der_len - i : 48;
		/* Writes the base64 and a NUL, which the newline overwrites. */
		w = EVP_EncodeBlock((unsigned char *)pem + off, der + i, (int)n);
		off += (size_t)w;
		pem[off++] = '\n';
	}
	memcpy(pem + off, end, sizeof(end) - 1);
	off += sizeof(end) - 1;
	memcpy(pem + off, label, label_len);
	off += label_len;
	memcpy(pem + off, dashes, sizeof(dashes) - 1);
	off += sizeof(dashes) - 1;
	pem[off] = '\0';
	*out = pem;
	if (len_out != NULL)
		*len_out = off;
	return CF_OK;
}

static bool
key_weak(char *detail, size_t size, const cf_pki_cert_info *info, const cf_pki_key_policy *policy)
{
	if (strcmp(info->key_alg, "RSA") == 0) {
		snprintf(detail, size, "RSA key of %d bits", info->key_bits);
		return !policy->allow_rsa || info->key_bits < (int)policy->rsa_min_bits;
	}
	if (strcmp(info->key_alg, "EC") == 0) {
		snprintf(detail, size, "EC key on %s", info->key_curve[0] ? info->key_curve : "?");
		return !((info->key_type == CF_KEY_EC_P256 && policy->allow_p256) ||
			 (info->key_type == CF_KEY_EC_P384 && policy->allow_p384));
	}
	if (strcmp(info->key_alg, "ED25519") == 0) {
		snprintf(detail, size, "Ed25519 key");
		return !policy->allow_ed25519;
	}
	snprintf(detail, size, "%s key not allowed", info->key_alg);
	return true;
}

/* MD2, MD4, MD5 or SHA-1 inside the signature algorithm. */
static bool
signature_weak(const cf_pki_cert_info *info)
{
	int md_nid = NID_undef, pk_nid = NID_undef;

	if (OBJ_find_sigid_algs(OBJ_ln2nid(info->sig_alg), &md_nid, &pk_nid) != 1)
		return false;
	return md_nid == NID_md2 || md_nid == NID_md4 || md_nid == NID_md5 || md_nid == NID_sha1 ||
	       md_nid == NID_md5_sha1;
}

void
cf_pki_key_quality(cf_pki_quality *out, const cf_pki_cert_info *info,
		   const cf_pki_key_policy *policy)
{
	memset(out, 0, sizeof(*out));
	out->ok = true;
	if (!info->key_valid) {
		out->ok = false;
		out->reason = "WEAK_KEY";
		snprintf(out->detail, sizeof(out->detail), "%s public key is not valid",
			 info->key_alg[0] != '\0' ? info->key_alg : "unknown");
		return;
	}
	/* Before the policy: at any size such a key factors far faster than its size promises. */
	if (info->key_roca) {
		out->ok = false;
		out->reason = "WEAK_KEY";
		snprintf(out->detail, sizeof(out->detail),
			 "RSA modulus with the ROCA fingerprint (CVE-2017-15361)");
		return;
	}
	if (key_weak(out->detail, sizeof(out->detail), info, policy)) {
		out->ok = false;
		out->reason = "WEAK_KEY";
		return;
	}
	if (signature_weak(info)) {
		out->ok = false;
		out->reason = "WEAK_SIGNATURE";
		snprintf(out->detail, sizeof(out->detail), "signature %s", info->sig_alg);
		return;
	}
	out->detail[0] = '\0';
}

bool
cf_pki_cert_signed_by(X509 *cert, X509 *issuer)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);
	bool ok = key != NULL && X509_verify(cert, key) == 1;

	if (!ok)
		ERR_clear_error();
	return ok;
}

bool
cf_pki_key_matches_cert(EVP_PKEY *key, X509 *cert)
{
	bool ok = key != NULL && cert != NULL && X509_check_private_key(cert, key) == 1;

	if (!ok)
		ERR_clear_error();
	return ok;
}

bool
cf_pki_revoke_reason_valid(const char *name)
{
	/*
	 * RFC 5280 5.3.1 reasons that end a certificate for good. Left out:
	 * certificateHold (a revocation here is terminal, a hold is not) and
	 * removeFromCRL (only meaningful in delta CRLs, to undo a hold).
	 */
	static const char *const reasons[] = {
		"unspecified", "keyCompromise",        "cACompromise",       "affiliationChanged",
		"superseded",  "cessationOfOperation", "privilegeWithdrawn", "aACompromise",
	};
	size_t i;

	for (i = 0; name != NULL && i < CF_ARRAY_LEN(reasons); i++) {
		if (strcmp(name, reasons[i]) == 0)
			return true;
	}
	return false;
}
