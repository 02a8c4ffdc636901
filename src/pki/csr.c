/*
 * CSR validation.
 *
 * How it works: a CertificationRequest (RFC 2986) is
 *
 *   SEQUENCE {
 *     certificationRequestInfo SEQUENCE {
 *       version INTEGER (0), subject Name,
 *       subjectPKInfo SEQUENCE { AlgorithmIdentifier, BIT STRING },
 *       attributes [0] IMPLICIT SET OF Attribute }
 *     signatureAlgorithm AlgorithmIdentifier,
 *     signature BIT STRING }
 *
 * We read that outline directly (der.c), keep the request's DER, and point
 * at its SubjectPublicKeyInfo so that issuance can copy it into the
 * certificate byte for byte. The public key is built from its raw parts
 * rather than through the 3.0 decoder framework, which costs more than the
 * signature check itself: an EC key is a copy of a per-curve template
 * holding the ready group, with the point set into it (see algs below).
 * The signature is then verified over the certificationRequestInfo bytes
 * exactly as received.
 * The subject and the attributes are not interpreted (the subject of an
 * issued certificate comes from the registry), but they are walked: a
 * request that is not DER throughout is BAD_CSR, so that what we accept is
 * what any other DER parser would read the same way.
 */
#include "pki_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

/* Object identifiers (content bytes only) we recognise. */
static const unsigned char oid_ec_public_key[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char oid_rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const unsigned char oid_ed25519[] = { 0x2b, 0x65, 0x70 };

/* Group names are not const because OSSL_PARAM_construct_utf8_string() takes char *. */
static char group_p256[] = "prime256v1", group_p384[] = "secp384r1", group_p521[] = "secp521r1";
static char group_p192[] = "prime192v1", group_k256[] = "secp256k1";

/*
 * Curves we can verify with. P-192, P-521 and secp256k1 are read so that
 * the policy check, not the parser, refuses them with WEAK_KEY.
 */
static const struct {
	unsigned char oid[10];
	size_t oid_len;
	int nid;
	char *group;
} curves[] = {
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 }, 8, NID_X9_62_prime256v1, group_p256 },
	{ { 0x2b, 0x81, 0x04, 0x00, 0x22 }, 5, NID_secp384r1, group_p384 },
	{ { 0x2b, 0x81, 0x04, 0x00, 0x23 }, 5, NID_secp521r1, group_p521 },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01 }, 8, NID_X9_62_prime192v1, group_p192 },
	{ { 0x2b, 0x81, 0x04, 0x00, 0x0a }, 5, NID_secp256k1, group_k256 },
};

/* Signature algorithms: the digest to verify with and the key family it needs. */
static const struct {
	unsigned char oid[10];
	size_t oid_len;
	const char *md; /* NULL: none (EdDSA) */
	int key_id;
	bool weak;
} sig_algs[] = {
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 }, 8, "SHA256", EVP_PKEY_EC, false },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 }, 8, "SHA384", EVP_PKEY_EC, false },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 }, 8, "SHA512", EVP_PKEY_EC, false },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01 }, 8, "SHA224", EVP_PKEY_EC, false },
	{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01 }, 7, "SHA1", EVP_PKEY_EC, true },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b },
	  9,
	  "SHA256",
	  EVP_PKEY_RSA,
	  false },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c },
	  9,
	  "SHA384",
	  EVP_PKEY_RSA,
	  false },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d },
	  9,
	  "SHA512",
	  EVP_PKEY_RSA,
	  false },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e },
	  9,
	  "SHA224",
	  EVP_PKEY_RSA,
	  false },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05 }, 9, "SHA1", EVP_PKEY_RSA, true },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04 }, 9, "MD5", EVP_PKEY_RSA, true },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x03 }, 9, "MD4", EVP_PKEY_RSA, true },
	{ { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x02 }, 9, "MD2", EVP_PKEY_RSA, true },
	{ { 0x2b, 0x65, 0x70 }, 3, NULL, EVP_PKEY_ED25519, false },
};

/*
 * Algorithms fetched once per process. Without this, OpenSSL 3.0 looks up
 * every algorithm by name on every call (a lock, a hash lookup and a
 * reference count each time), and EVP_PKEY_fromdata() builds the EC group
 * from its name for every key, which alone costs ~10 us on P-256. Instead
 * each curve has a key holding only its domain parameters, duplicated per
 * request (EVP_PKEY_dup copies the ready group) before the point is set.
 *
 * Thread safety: filled once by CRYPTO_THREAD_run_once() and never written
 * after, so any thread reads it without a lock; the objects are only used
 * in read-only ways (EVP_PKEY_dup of a template, digests passed by pointer).
 * An entry that could not be made stays NULL and its user falls back to
 * fetching by name, as before. Freed by OPENSSL_atexit(), which runs in
 * OPENSSL_cleanup() before the providers go away.
 */
static struct {
	EVP_MD *sig_md[CF_ARRAY_LEN(sig_algs)]; /* per sig_algs entry: ECDSA ones only */
	EVP_PKEY *ec_group[CF_ARRAY_LEN(curves)]; /* per curves entry: parameters only */
	EVP_MD *sha256;                           /* the SPKI digest */
} algs;
static CRYPTO_ONCE algs_once = CRYPTO_ONCE_STATIC_INIT;

static void
algs_free(void)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(algs.sig_md); i++) {
		EVP_MD_free(algs.sig_md[i]);
		algs.sig_md[i] = NULL;
	}
	for (i = 0; i < CF_ARRAY_LEN(algs.ec_group); i++) {
		EVP_PKEY_free(algs.ec_group[i]);
		algs.ec_group[i] = NULL;
	}
	EVP_MD_free(algs.sha256);
	algs.sha256 = NULL;
}

/* An EC key with the named group and no point: the template for that curve. */
static EVP_PKEY *
ec_group_template(char *group)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEY_PARAMETERS, params) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static void
algs_init(void)
{
	size_t i;

	/* A fetch that fails leaves an error; it is not the caller's, so drop it. */
	ERR_set_mark();
	for (i = 0; i < CF_ARRAY_LEN(sig_algs); i++) {
		if (sig_algs[i].key_id == EVP_PKEY_EC && !sig_algs[i].weak)
			algs.sig_md[i] = EVP_MD_fetch(NULL, sig_algs[i].md, NULL);
	}
	for (i = 0; i < CF_ARRAY_LEN(curves); i++)
		algs.ec_group[i] = ec_group_template(curves[i].group);
	algs.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	/* When this fails the cache stays reachable from algs until exit: not a leak. */
	(void)OPENSSL_atexit(algs_free);
	ERR_pop_to_mark();
}

/* The cache, filled on first use. */
static void
algs_get(void)
{
	/* On failure algs stays empty and everything is fetched by name. */
	(void)CRYPTO_THREAD_run_once(&algs_once, algs_init);
}

/* The parts of the request that the checks need. */
struct csr_parts {
	cf_pki__der_tlv cri;       /* certificationRequestInfo, as signed */
	cf_pki__der_tlv spki;      /* SubjectPublicKeyInfo */
	cf_pki__der_tlv key_alg;   /* its algorithm OID */
	cf_pki__der_tlv key_param; /* its parameters (val_len 0 when absent) */
	cf_pki__der_tlv key_bits;  /* the subjectPublicKey BIT STRING */
	cf_pki__der_tlv sig_alg;   /* signature algorithm OID */
	cf_pki__der_tlv sig_param; /* its parameters (tlv NULL when absent) */
	cf_pki__der_tlv sig;       /* signature BIT STRING */
};

static bool
oid_eq(const cf_pki__der_tlv *oid, const unsigned char *want, size_t want_len)
{
	return oid->val_len == want_len && memcmp(oid->val, want, want_len) == 0;
}

/* AlgorithmIdentifier ::= SEQUENCE { OID, params ANY OPTIONAL } */
static bool
read_algid(cf_pki__der_tlv *oid, cf_pki__der_tlv *param, cf_pki__der_cur *cur)
{
	cf_pki__der_tlv seq;
	cf_pki__der_cur in;

	memset(param, 0, sizeof(*param));
	if (!cf_pki__der_get(&seq, cur, CF_DER_SEQUENCE))
		return false;
	in.p = seq.val;
	in.len = seq.val_len;
	if (!cf_pki__der_get(oid, &in, CF_DER_OID) || oid->val_len == 0)
		return false;
	if (in.len == 0)
		return true;
	/* Parameters: a NULL or an OID (a named curve); nothing else is expected. */
	if (!cf_pki__der_get(param, &in, CF_DER_OID) && !cf_pki__der_get(param, &in, CF_DER_NULL))
		return false;
	return in.len == 0;
}

/* A BIT STRING holding whole bytes: the first content byte (unused bits) is 0. */
static bool
read_bits(cf_pki__der_tlv *out, cf_pki__der_cur *cur)
{
	if (!cf_pki__der_get(out, cur, CF_DER_BITSTRING))
		return false;
	return out->val_len >= 2 && out->val[0] == 0;
}

/*
 * Name ::= SEQUENCE OF RelativeDistinguishedName
 * RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
 * AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY }
 */
static bool
name_valid(const cf_pki__der_tlv *name)
{
	cf_pki__der_cur rdns = { name->val, name->val_len }, atvs, in;
	cf_pki__der_tlv rdn, atv, type, value;

	while (rdns.len > 0) {
		if (!cf_pki__der_get(&rdn, &rdns, CF_DER_SET) || rdn.val_len == 0)
			return false;
		atvs.p = rdn.val;
		atvs.len = rdn.val_len;
		while (atvs.len > 0) {
			if (!cf_pki__der_get(&atv, &atvs, CF_DER_SEQUENCE))
				return false;
			in.p = atv.val;
			in.len = atv.val_len;
			if (!cf_pki__der_get(&type, &in, CF_DER_OID) ||
			    !cf_pki__der_oid_valid(&type) || !cf_pki__der_get_any(&value, &in) ||
			    in.len != 0 || !cf_pki__der_valid(&value))
				return false;
		}
	}
	return true;
}

/*
 * attributes [0] IMPLICIT SET OF Attribute
 * Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE (1..MAX) OF ANY }
 */
static bool
attributes_valid(const cf_pki__der_tlv *attrs)
{
	cf_pki__der_cur list = { attrs->val, attrs->val_len }, in, values;
	cf_pki__der_tlv attr, type, set, value;

	while (list.len > 0) {
		if (!cf_pki__der_get(&attr, &list, CF_DER_SEQUENCE))
			return false;
		in.p = attr.val;
		in.len = attr.val_len;
		if (!cf_pki__der_get(&type, &in, CF_DER_OID) || !cf_pki__der_oid_valid(&type) ||
		    !cf_pki__der_get(&set, &in, CF_DER_SET) || in.len != 0 || set.val_len == 0)
			return false;
		values.p = set.val;
		values.len = set.val_len;
		while (values.len > 0) {
			if (!cf_pki__der_get_any(&value, &values) || !cf_pki__der_valid(&value))
				return false;
		}
	}
	return true;
}

static bool
read_cri(struct csr_parts *parts)
{
	static const unsigned char version0[] = { 0x00 };
	cf_pki__der_cur cur = { parts->cri.val, parts->cri.val_len }, spki;
	cf_pki__der_tlv version, subject, attrs;

	if (!cf_pki__der_get(&version, &cur, CF_DER_INTEGER) ||
	    !oid_eq(&version, version0, sizeof(version0)))
		return false;
	if (!cf_pki__der_get(&subject, &cur, CF_DER_SEQUENCE) || !name_valid(&subject))
		return false;
	if (!cf_pki__der_get(&parts->spki, &cur, CF_DER_SEQUENCE))
		return false;
	spki.p = parts->spki.val;
	spki.len = parts->spki.val_len;
	if (!read_algid(&parts->key_alg, &parts->key_param, &spki) ||
	    !read_bits(&parts->key_bits, &spki) || spki.len != 0)
		return false;
	/* attributes [0] is required by RFC 2986; some old clients omit it. */
	if (cf_pki__der_peek(&cur, CF_DER_CTX_CONS(0)) &&
	    (!cf_pki__der_get(&attrs, &cur, CF_DER_CTX_CONS(0)) || !attributes_valid(&attrs)))
		return false;
	return cur.len == 0;
}

/* Split the DER of a CertificationRequest into parts; false when it is not one. */
static bool
read_request(struct csr_parts *parts, const unsigned char *der, size_t len)
{
	cf_pki__der_cur cur = { der, len }, in;
	cf_pki__der_tlv outer;

	if (!cf_pki__der_get(&outer, &cur, CF_DER_SEQUENCE) || cur.len != 0)
		return false;
	in.p = outer.val;
	in.len = outer.val_len;
	if (!cf_pki__der_get(&parts->cri, &in, CF_DER_SEQUENCE) || !read_cri(parts))
		return false;
	if (!read_algid(&parts->sig_alg, &parts->sig_param, &in))
		return false;
	if (!read_bits(&parts->sig, &in))
		return false;
	return in.len == 0;
}

/* PEM armour to DER. Only "CERTIFICATE REQUEST", no headers, only whitespace after. */
static int
pem_to_der(unsigned char **out, size_t *len_out, const void *data, size_t len, cf_err *err)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL, *rest;
	unsigned char *der = NULL;
	long der_len = 0, rest_len, i;
	int rc;

	*out = NULL;
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL) {
		rc = cf_err_set_ossl(err, CF_ENOMEM, NULL, "BIO_new_mem_buf");
		goto out;
	}
	if (PEM_read_bio(bio, &name, &header, &der, &der_len) != 1 || der_len <= 0) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_CSR", "not a PEM certificate request");
		goto out;
	}
	if ((strcmp(name, "CERTIFICATE REQUEST") != 0 &&
	     strcmp(name, "NEW CERTIFICATE REQUEST") != 0) ||
	    header[0] != '\0') {
		rc = cf_err_set(err, CF_EPROTO, "BAD_CSR",
				"PEM block is not a certificate request");
		goto out;
	}
	rest_len = BIO_get_mem_data(bio, &rest);
	for (i = 0; i < rest_len; i++) {
		if (rest[i] != ' ' && rest[i] != '\t' && rest[i] != '\r' && rest[i] != '\n') {
			rc = cf_err_set(err, CF_EPROTO, "BAD_CSR", "data after the PEM block");
			goto out;
		}
	}
	*out = der;
	*len_out = (size_t)der_len;
	der = NULL;
	rc = CF_OK;
out:
	OPENSSL_free(der);
	OPENSSL_free(name);
	OPENSSL_free(header);
	BIO_free(bio);
	return rc;
}

/* Copy the input as DER, or decode it when it is PEM (starts with "-----BEGIN"). */
static int
input_to_der(unsigned char **out, size_t *len_out, const void *data, size_t len, cf_err *err)
{
	static const char begin[] = "-----BEGIN";
	const char *text = data;
	size_t skip = 0;

	*out = NULL;
	while (skip < len && (text[skip] == ' ' || text[skip] == '\t' || text[skip] == '\r' ||
			      text[skip] == '\n'))
		skip++;
	if (len - skip >= sizeof(begin) - 1 && memcmp(text + skip, begin, sizeof(begin) - 1) == 0)
		return pem_to_der(out, len_out, text + skip, len - skip, err);
	*out = OPENSSL_memdup(data, len);
	if (*out == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "copying the csr");
	*len_out = len;
	return CF_OK;
}

/* The point into a copy of the curve's template: no group is built per request. */
static int
ec_key_from_template(struct cf_pki_csr *csr, EVP_PKEY *tmpl, cf_err *err)
{
	/* Only reads tmpl (the keymgmt's dup), so threads may share it. */
	csr->pkey = EVP_PKEY_dup(tmpl);
	if (csr->pkey == NULL)
		return cf_err_set_ossl(err, CF_ENOMEM, NULL, "EVP_PKEY_dup");
	/* Decodes the point and checks that it is on the curve, as the import does. */
	if (EVP_PKEY_set1_encoded_public_key(csr->pkey, csr->pub, csr->pub_len) != 1)
		return cf_err_set_ossl(err, CF_EPROTO, "BAD_CSR", "bad EC public key");
	return CF_OK;
}

/* Build an EC public key from its curve OID and point. */
static int
ec_key_build(struct cf_pki_csr *csr, const struct csr_parts *parts, cf_err *err)
{
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM params[3];
	char *group = NULL;
	size_t i, found = 0;
	int rc;

	for (i = 0; i < CF_ARRAY_LEN(curves); i++) {
		if (parts->key_param.tlv != NULL && parts->key_param.tlv[0] == CF_DER_OID &&
		    oid_eq(&parts->key_param, curves[i].oid, curves[i].oid_len)) {
			group = curves[i].group;
			csr->curve_nid = curves[i].nid;
			found = i;
		}
	}
	if (group == NULL)
		return cf_err_set(err, CF_EPROTO, "WEAK_KEY", "EC key on a curve not allowed");
	/*
	 * Only a real point, compressed (02/03) or not (04). OpenSSL imports the
	 * one-byte encoding of the point at infinity (00), against which an
	 * ECDSA signature is trivial to forge.
	 */
	if (csr->pub_len < 2 || (csr->pub[0] != 0x02 && csr->pub[0] != 0x03 && csr->pub[0] != 0x04))
		return cf_err_set(err, CF_EPROTO, "BAD_CSR", "EC public key is not a point");
	if (algs.ec_group[found] != NULL)
		return ec_key_from_template(csr, algs.ec_group[found], err);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] =
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, csr->pub, csr->pub_len);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "EC key context");
		goto out;
	}
	/* The import decodes the point and checks that it is on the curve. */
	if (EVP_PKEY_fromdata(ctx, &csr->pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_CSR", "bad EC public key");
		goto out;
	}
	rc = CF_OK;
out:
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/*
 * RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, in
 * DER: the key bits are copied into the certificate as they are, and
 * OpenSSL's decoder would take some BER (an indefinite length) here.
 */
static bool
rsa_key_der(const struct cf_pki_csr *csr)
{
	cf_pki__der_cur cur = { csr->pub, csr->pub_len }, in;
	cf_pki__der_tlv seq, n, e;

	if (!cf_pki__der_get(&seq, &cur, CF_DER_SEQUENCE) || cur.len != 0)
		return false;
	in.p = seq.val;
	in.len = seq.val_len;
	return cf_pki__der_get(&n, &in, CF_DER_INTEGER) && cf_pki__der_valid(&n) &&
	       cf_pki__der_get(&e, &in, CF_DER_INTEGER) && cf_pki__der_valid(&e) && in.len == 0 &&
	       (n.val[0] & 0x80) == 0 && (e.val[0] & 0x80) == 0;
}

/* Build the request's public key; the algorithm decides how. */
static int
key_build(struct cf_pki_csr *csr, const struct csr_parts *parts, cf_err *err)
{
	const unsigned char *p = parts->spki.tlv;

	if (oid_eq(&parts->key_alg, oid_ec_public_key, sizeof(oid_ec_public_key))) {
		csr->key_id = EVP_PKEY_EC;
		return ec_key_build(csr, parts, err);
	}
	if (oid_eq(&parts->key_alg, oid_ed25519, sizeof(oid_ed25519))) {
		csr->key_id = EVP_PKEY_ED25519;
		/* RFC 8410 3: the parameters MUST be absent. */
		if (parts->key_param.tlv != NULL)
			return cf_err_set(err, CF_EPROTO, "BAD_CSR",
					  "Ed25519 key with algorithm parameters");
		csr->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, csr->pub,
							   csr->pub_len);
		if (csr->pkey == NULL)
			return cf_err_set_ossl(err, CF_EPROTO, "BAD_CSR", "bad Ed25519 key");
		return CF_OK;
	}
	if (oid_eq(&parts->key_alg, oid_rsa, sizeof(oid_rsa))) {
		/* RSA is off the hot path: the general decoder is good enough. */
		csr->key_id = EVP_PKEY_RSA;
		/* RFC 3279 2.3.1: the parameters MUST be NULL; OpenSSL does not look. */
		if (parts->key_param.tlv == NULL || parts->key_param.tlv[0] != CF_DER_NULL)
			return cf_err_set(err, CF_EPROTO, "BAD_CSR",
					  "RSA key parameters are not NULL");
		if (!rsa_key_der(csr))
			return cf_err_set(err, CF_EPROTO, "BAD_CSR", "RSA key is not DER");
		csr->pkey = d2i_PUBKEY(NULL, &p, (long)parts->spki.tlv_len);
		if (csr->pkey == NULL || p != parts->spki.tlv + parts->spki.tlv_len)
			return cf_err_set_ossl(err, CF_EPROTO, "BAD_CSR", "bad RSA key");
		/*
		 * Size and exponent now, before verifying: with e = 1 the
		 * "signature" is the padded digest itself and proves nothing.
		 * The costly rest of the check waits for a good signature.
		 */
		return cf_pki__rsa_quick_check(csr->pkey, err);
	}
	return cf_err_set(err, CF_EPROTO, "WEAK_KEY", "key algorithm not allowed");
}

/* Find the signature algorithm; refuse weak and unknown ones before verifying. */
static int
sig_alg_find(size_t *index, const struct cf_pki_csr *csr, const struct csr_parts *parts,
	     cf_err *err)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(sig_algs); i++) {
		if (!oid_eq(&parts->sig_alg, sig_algs[i].oid, sig_algs[i].oid_len))
			continue;
		/*
		 * Checked before verification on purpose: OpenSSL may or may not
		 * verify SHA-1, and the device must hear WEAK_KEY either way.
		 */
		if (sig_algs[i].weak)
			return cf_err_set(err, CF_EPROTO, "WEAK_KEY", "csr signed with %s",
					  sig_algs[i].md);
		if (sig_algs[i].key_id != csr->key_id)
			return cf_err_set(err, CF_EPROTO, "BAD_SIGNATURE",
					  "signature algorithm does not fit the key");
		/*
		 * Parameters: absent for ECDSA (RFC 5758 3.2) and Ed25519 (RFC
		 * 8410 3); NULL for PKCS#1 v1.5, where RFC 4055 5 also has us
		 * accept them absent.
		 */
		if (parts->sig_param.tlv != NULL &&
		    (sig_algs[i].key_id != EVP_PKEY_RSA || parts->sig_param.tlv[0] != CF_DER_NULL))
			return cf_err_set(err, CF_EPROTO, "BAD_CSR",
					  "signature algorithm parameters not allowed");
		*index = i;
		return CF_OK;
	}
	return cf_err_set(err, CF_EPROTO, "BAD_CSR", "unsupported signature algorithm");
}

/*
 * ECDSA over a digest we computed with a fetched EVP_MD: the same check as
 * EVP_DigestVerify() (which hashes, then verifies the same DER signature
 * over the digest), without the two digest fetches by name that 3.0's
 * EVP_DigestVerifyInit() does even when given a fetched EVP_MD.
 */
static int
ec_signature_verify(const struct cf_pki_csr *csr, const struct csr_parts *parts,
		    const EVP_MD *md, cf_err *err)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	EVP_PKEY_CTX *ctx = NULL;
	int rc;

	if (EVP_Digest(parts->cri.tlv, parts->cri.tlv_len, digest, &digest_len, md, NULL) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "digest of the request");
		goto out;
	}
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, csr->pkey, NULL);
	if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_SIGNATURE",
				     "cannot verify with this key");
		goto out;
	}
	/* Skip the unused-bits byte of the signature BIT STRING. */
	if (EVP_PKEY_verify(ctx, parts->sig.val + 1, parts->sig.val_len - 1, digest, digest_len) !=
	    1) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_SIGNATURE", "csr signature fails");
		goto out;
	}
	rc = CF_OK;
out:
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

static int
signature_verify(const struct cf_pki_csr *csr, const struct csr_parts *parts, size_t alg,
		 cf_err *err)
{
	EVP_MD_CTX *ctx = NULL;
	int rc;

	if (csr->key_id == EVP_PKEY_EC && algs.sig_md[alg] != NULL)
		return ec_signature_verify(csr, parts, algs.sig_md[alg], err);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		rc = cf_err_set_ossl(err, CF_ENOMEM, NULL, "EVP_MD_CTX_new");
		goto out;
	}
	if (EVP_DigestVerifyInit_ex(ctx, NULL, sig_algs[alg].md, NULL, NULL, csr->pkey, NULL) !=
	    1) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_SIGNATURE",
				     "cannot verify with this key");
		goto out;
	}
	/* Skip the unused-bits byte of the signature BIT STRING. */
	if (EVP_DigestVerify(ctx, parts->sig.val + 1, parts->sig.val_len - 1, parts->cri.tlv,
			     parts->cri.tlv_len) != 1) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_SIGNATURE", "csr signature fails");
		goto out;
	}
	rc = CF_OK;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

static cf_key_type
key_type_of(const struct cf_pki_csr *csr)
{
	if (csr->key_id == EVP_PKEY_ED25519)
		return CF_KEY_ED25519;
	if (csr->key_id == EVP_PKEY_EC && csr->curve_nid == NID_X9_62_prime256v1)
		return CF_KEY_EC_P256;
	if (csr->key_id == EVP_PKEY_EC && csr->curve_nid == NID_secp384r1)
		return CF_KEY_EC_P384;
	if (csr->key_id == EVP_PKEY_RSA && csr->key_bits == 2048)
		return CF_KEY_RSA_2048;
	if (csr->key_id == EVP_PKEY_RSA && csr->key_bits == 3072)
		return CF_KEY_RSA_3072;
	if (csr->key_id == EVP_PKEY_RSA && csr->key_bits == 4096)
		return CF_KEY_RSA_4096;
	return CF_KEY_UNKNOWN;
}

/* Everything after the input became DER: structure, key, signature, facts. */
static int
csr_check(struct cf_pki_csr *csr, cf_err *err)
{
	struct csr_parts parts;
	unsigned char md[32];
	size_t alg = 0;
	int rc;

	memset(&parts, 0, sizeof(parts));
	if (!read_request(&parts, csr->der, csr->der_len))
		return cf_err_set(err, CF_EPROTO, "BAD_CSR", "not a DER certificate request");
	csr->spki = parts.spki.tlv;
	csr->spki_len = parts.spki.tlv_len;
	/* Through der (not const) so that OSSL_PARAM can point at the key bytes. */
	csr->pub = csr->der + (parts.key_bits.val + 1 - csr->der);
	csr->pub_len = parts.key_bits.val_len - 1;
	rc = key_build(csr, &parts, err);
	if (rc != CF_OK)
		return rc;
	rc = sig_alg_find(&alg, csr, &parts, err);
	if (rc != CF_OK)
		return rc;
	rc = signature_verify(csr, &parts, alg, err);
	if (rc != CF_OK)
		return rc;
	/* The modulus check, once the key has signed its request. */
	if (csr->key_id == EVP_PKEY_RSA) {
		rc = cf_pki__rsa_public_check(csr->pkey, err);
		if (rc != CF_OK)
			return rc;
		csr->key_roca = cf_pki__rsa_key_roca(csr->pkey, csr->pub, csr->pub_len);
	}
	csr->key_bits = EVP_PKEY_get_bits(csr->pkey);
	csr->key_type = key_type_of(csr);
	if (EVP_Digest(csr->spki, csr->spki_len, md, NULL,
		       algs.sha256 != NULL ? algs.sha256 : EVP_sha256(), NULL) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "SHA-256");
	cf_hex_encode(csr->spki_sha256, md, sizeof(md));
	return CF_OK;
}

int
cf_pki_csr_parse(cf_pki_csr **out, const void *data, size_t len, cf_err *err)
{
	struct cf_pki_csr *csr = NULL;
	int rc;

	*out = NULL;
	if (data == NULL || len == 0 || len > CF_PKI_CSR_MAX)
		return cf_err_set(err, CF_EPROTO, "BAD_CSR", "csr is %zu bytes", len);
	csr = calloc(1, sizeof(*csr));
	if (csr == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "allocating a csr");
	csr->curve_nid = NID_undef;
	algs_get();
	rc = input_to_der(&csr->der, &csr->der_len, data, len, err);
	if (rc != CF_OK)
		goto out;
	rc = csr_check(csr, err);
	if (rc != CF_OK)
		goto out;
	*out = csr;
	csr = NULL;
out:
	/* A refused request leaves nothing behind in the OpenSSL error queue. */
	if (rc != CF_OK)
		ERR_clear_error();
	cf_pki_csr_free(csr);
	return rc;
}

int
cf_pki_csr_check_policy(const cf_pki_csr *csr, const cf_pki_key_policy *policy, cf_err *err)
{
	switch (csr->key_id) {
	case EVP_PKEY_RSA:
		if (!policy->allow_rsa)
			break;
		/* Whatever its size: such a key factors far faster than its size promises. */
		if (csr->key_roca)
			return cf_err_set(err, CF_EPROTO, "WEAK_KEY",
					  "RSA modulus with the ROCA fingerprint (CVE-2017-15361)");
		if (csr->key_bits >= (int)policy->rsa_min_bits)
			return CF_OK;
		return cf_err_set(err, CF_EPROTO, "WEAK_KEY",
				  "RSA key of %d bits, under the %u-bit minimum", csr->key_bits,
				  policy->rsa_min_bits);
	case EVP_PKEY_EC:
		if ((csr->curve_nid == NID_X9_62_prime256v1 && policy->allow_p256) ||
		    (csr->curve_nid == NID_secp384r1 && policy->allow_p384))
			return CF_OK;
		return cf_err_set(err, CF_EPROTO, "WEAK_KEY", "EC key on %s, a curve not allowed",
				  OBJ_nid2sn(csr->curve_nid));
	case EVP_PKEY_ED25519:
		if (policy->allow_ed25519)
			return CF_OK;
		break;
	default:
		break;
	}
	return cf_err_set(err, CF_EPROTO, "WEAK_KEY", "%s keys are not allowed by the key policy",
			  OBJ_nid2sn(csr->key_id));
}

const char *
cf_pki_csr_spki_sha256(const cf_pki_csr *csr)
{
	return csr->spki_sha256;
}

cf_key_type
cf_pki_csr_key_type(const cf_pki_csr *csr)
{
	return csr->key_type;
}

void
cf_pki_csr_free(cf_pki_csr *csr)
{
	if (csr == NULL)
		return;
	EVP_PKEY_free(csr->pkey);
	OPENSSL_free(csr->der);
	free(csr);
}
