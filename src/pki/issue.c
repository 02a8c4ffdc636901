/*
 * Device certificate issuance.
 *
 * How it works: the TBSCertificate is written directly as DER (der.c).
 * Everything that is the same for every certificate of a CA (signature
 * AlgorithmIdentifier, issuer Name, authority key id, signing context) was
 * prepared by cf_pki_ca_new(); the request's SubjectPublicKeyInfo is copied
 * byte for byte from the CSR. Only the serial, the validity, the subject,
 * the SAN, the SKI and the optional URLs are written per certificate. The
 * result is signed once. cf_pki_issue() hands it to OpenSSL's parser, so
 * the X509 the caller gets is exactly what any other party will parse;
 * cf_pki_issue_der() does not, and reports the certificate's facts from
 * what it wrote (info_fill()), formatted as cf_pki_cert_info_get() would:
 * the tests compare the two on every key type.
 *
 *   Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
 *   TBSCertificate ::= SEQUENCE { [0] version(2), serial, signature, issuer,
 *       validity, subject, subjectPublicKeyInfo, [3] extensions }
 */
#include "pki_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#define THING_MAX  64 /* RFC 5280 ub-common-name */
#define URL_MAX    1024
#define SAN_PREFIX "urn:certfleet:thing:"

/* Object identifiers, as complete DER elements. */
static const unsigned char oid_cn[] = { 0x06, 0x03, 0x55, 0x04, 0x03 };
static const unsigned char oid_ski[] = { 0x06, 0x03, 0x55, 0x1d, 0x0e };
static const unsigned char oid_aki[] = { 0x06, 0x03, 0x55, 0x1d, 0x23 };
static const unsigned char oid_san[] = { 0x06, 0x03, 0x55, 0x1d, 0x11 };
static const unsigned char oid_crldp[] = { 0x06, 0x03, 0x55, 0x1d, 0x1f };
static const unsigned char oid_aia[] = {
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01
};
static const unsigned char oid_ocsp[] = {
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01
};

/* [0] EXPLICIT INTEGER 2: version 3. */
static const unsigned char version_v3[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };

/* The constant extensions, complete: basicConstraints critical CA:FALSE ... */
static const unsigned char ext_basic_constraints[] = { 0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13,
						       0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00 };
/* ... keyUsage critical digitalSignature (bit 0; 7 unused bits) ... */
static const unsigned char ext_key_usage[] = { 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
					       0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80 };
/* ... extKeyUsage clientAuth (1.3.6.1.5.5.7.3.2). */
static const unsigned char ext_eku_client[] = { 0x30, 0x13, 0x06, 0x03, 0x55, 0x1d, 0x25,
						0x04, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b,
						0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02 };

int
cf_pki__serial_random(unsigned char serial[16], cf_err *err)
{
	size_t i;
	bool zero;

	/* RFC 5280: positive, at most 20 octets; clearing the top bit keeps it positive. */
	do {
		if (RAND_bytes(serial, 16) != 1)
			return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "RAND_bytes");
		serial[0] &= 0x7f;
		zero = true;
		for (i = 0; i < 16; i++)
			zero = zero && serial[i] == 0;
	} while (zero);
	return CF_OK;
}

void
cf_pki_profile_init(cf_pki_profile *profile)
{
	memset(profile, 0, sizeof(*profile));
	profile->days = 365;
	profile->backdate_seconds = 300;
}

/* INTEGER with the serial, without leading zero bytes (DER's minimal form). */
static void
put_serial(cf_pki__der_buf *buf, const unsigned char serial[16])
{
	size_t skip = 0;

	while (skip < 15 && serial[skip] == 0 && (serial[skip + 1] & 0x80) == 0)
		skip++;
	cf_pki__der_put_tlv(buf, CF_DER_INTEGER, serial + skip, 16 - skip);
}

/* UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
static bool
put_time(cf_pki__der_buf *buf, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char text[20];
	int year, n;

	if (gmtime_r(&tt, &tm) == NULL)
		return false;
	year = tm.tm_year + 1900;
	if (year < 1950 || year > 9999)
		return false;
	if (year < 2050)
		n = snprintf(text, sizeof(text), "%02d%02d%02d%02d%02d%02dZ", year % 100,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		n = snprintf(text, sizeof(text), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1,
			     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n <= 0 || (size_t)n >= sizeof(text))
		return false;
	cf_pki__der_put_tlv(buf, year < 2050 ? CF_DER_UTCTIME : CF_DER_GENTIME, text, (size_t)n);
	return true;
}

/* Name ::= SEQUENCE { SET { SEQUENCE { id-at-commonName, UTF8String thing } } } */
static void
put_subject(cf_pki__der_buf *buf, const char *thing)
{
	size_t name = cf_pki__der_begin(buf), set, atv;

	set = cf_pki__der_begin(buf);
	atv = cf_pki__der_begin(buf);
	cf_pki__der_put(buf, oid_cn, sizeof(oid_cn));
	cf_pki__der_put_tlv(buf, CF_DER_UTF8, thing, strlen(thing));
	cf_pki__der_end(buf, atv, CF_DER_SEQUENCE);
	cf_pki__der_end(buf, set, CF_DER_SET);
	cf_pki__der_end(buf, name, CF_DER_SEQUENCE);
}

/* Extension ::= SEQUENCE { extnID, extnValue OCTET STRING } for a value built by fill. */
static size_t
ext_begin(cf_pki__der_buf *buf, const unsigned char *oid, size_t oid_len)
{
	size_t ext = cf_pki__der_begin(buf);

	cf_pki__der_put(buf, oid, oid_len);
	return ext;
}

static void
ext_end(cf_pki__der_buf *buf, size_t ext, size_t value)
{
	cf_pki__der_end(buf, value, CF_DER_OCTETS);
	cf_pki__der_end(buf, ext, CF_DER_SEQUENCE);
}

/* SKI: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
static bool
put_ski(cf_pki__der_buf *buf, const cf_pki_ca *ca, const cf_pki_csr *csr)
{
	unsigned char md[20];
	size_t ext = ext_begin(buf, oid_ski, sizeof(oid_ski)), value = cf_pki__der_begin(buf);

	if (EVP_Digest(csr->pub, csr->pub_len, md, NULL, ca->sha1, NULL) != 1)
		return false;
	cf_pki__der_put_tlv(buf, CF_DER_OCTETS, md, sizeof(md));
	ext_end(buf, ext, value);
	return true;
}

/* AKI: SEQUENCE { [0] keyIdentifier } with the CA's SKI. */
static void
put_aki(cf_pki__der_buf *buf, const cf_pki_ca *ca)
{
	size_t ext = ext_begin(buf, oid_aki, sizeof(oid_aki)), value = cf_pki__der_begin(buf);
	size_t seq = cf_pki__der_begin(buf);

	cf_pki__der_put_tlv(buf, CF_DER_CTX(0), ca->key_id, ca->key_id_len);
	cf_pki__der_end(buf, seq, CF_DER_SEQUENCE);
	ext_end(buf, ext, value);
}

/* SAN: GeneralNames { uniformResourceIdentifier [6] "urn:certfleet:thing:<thing>" } */
static void
put_san(cf_pki__der_buf *buf, const char *thing)
{
	size_t ext = ext_begin(buf, oid_san, sizeof(oid_san)), value = cf_pki__der_begin(buf);
	size_t names = cf_pki__der_begin(buf), uri = cf_pki__der_begin(buf);

	cf_pki__der_put(buf, SAN_PREFIX, strlen(SAN_PREFIX));
	cf_pki__der_put(buf, thing, strlen(thing));
	cf_pki__der_end(buf, uri, CF_DER_CTX(6));
	cf_pki__der_end(buf, names, CF_DER_SEQUENCE);
	ext_end(buf, ext, value);
}

/*
 * CRLDistributionPoints: SEQUENCE { DistributionPoint SEQUENCE {
 *   distributionPoint [0] { fullName [0] { URI [6] url } } } }
 */
static void
put_crl_dp(cf_pki__der_buf *buf, const char *url)
{
	size_t ext = ext_begin(buf, oid_crldp, sizeof(oid_crldp)), value = cf_pki__der_begin(buf);
	size_t points = cf_pki__der_begin(buf), point = cf_pki__der_begin(buf);
	size_t dp_name = cf_pki__der_begin(buf), full = cf_pki__der_begin(buf);

	cf_pki__der_put_tlv(buf, CF_DER_CTX(6), url, strlen(url));
	cf_pki__der_end(buf, full, CF_DER_CTX_CONS(0));
	cf_pki__der_end(buf, dp_name, CF_DER_CTX_CONS(0));
	cf_pki__der_end(buf, point, CF_DER_SEQUENCE);
	cf_pki__der_end(buf, points, CF_DER_SEQUENCE);
	ext_end(buf, ext, value);
}

/* AuthorityInfoAccess: SEQUENCE { SEQUENCE { id-ad-ocsp, URI [6] url } } */
static void
put_aia(cf_pki__der_buf *buf, const char *url)
{
	size_t ext = ext_begin(buf, oid_aia, sizeof(oid_aia)), value = cf_pki__der_begin(buf);
	size_t list = cf_pki__der_begin(buf), desc = cf_pki__der_begin(buf);

	cf_pki__der_put(buf, oid_ocsp, sizeof(oid_ocsp));
	cf_pki__der_put_tlv(buf, CF_DER_CTX(6), url, strlen(url));
	cf_pki__der_end(buf, desc, CF_DER_SEQUENCE);
	cf_pki__der_end(buf, list, CF_DER_SEQUENCE);
	ext_end(buf, ext, value);
}

static bool
put_extensions(cf_pki__der_buf *buf, const cf_pki_ca *ca, const cf_pki_csr *csr, const char *thing,
	       const cf_pki_profile *profile)
{
	size_t outer = cf_pki__der_begin(buf), list = cf_pki__der_begin(buf);

	cf_pki__der_put(buf, ext_basic_constraints, sizeof(ext_basic_constraints));
	cf_pki__der_put(buf, ext_key_usage, sizeof(ext_key_usage));
	cf_pki__der_put(buf, ext_eku_client, sizeof(ext_eku_client));
	if (!put_ski(buf, ca, csr))
		return false;
	put_aki(buf, ca);
	put_san(buf, thing);
	if (profile->crl_url != NULL)
		put_crl_dp(buf, profile->crl_url);
	if (profile->ocsp_url != NULL)
		put_aia(buf, profile->ocsp_url);
	cf_pki__der_end(buf, list, CF_DER_SEQUENCE);
	cf_pki__der_end(buf, outer, CF_DER_CTX_CONS(3));
	return true;
}

/* IA5String content: printable ASCII, no spaces. */
static bool
url_valid(const char *url)
{
	size_t i, n;

	if (url == NULL)
		return true;
	n = strlen(url);
	if (n == 0 || n > URL_MAX)
		return false;
	for (i = 0; i < n; i++) {
		if (url[i] <= 0x20 || url[i] >= 0x7f)
			return false;
	}
	return true;
}

static int
issue_args_check(const char *thing, const cf_pki_profile *profile, cf_err *err)
{
	size_t n = thing == NULL ? 0 : strlen(thing);

	if (n == 0 || n > THING_MAX)
		return cf_err_set(err, CF_EINVAL, NULL, "thing name must be 1 to %d characters",
				  THING_MAX);
	if (profile->days <= 0 || profile->days > 100 * 366 || profile->backdate_seconds < 0 ||
	    profile->backdate_seconds > 86400)
		return cf_err_set(err, CF_EINVAL, NULL, "bad profile days=%d backdate=%d",
				  profile->days, profile->backdate_seconds);
	if (!url_valid(profile->crl_url) || !url_valid(profile->ocsp_url))
		return cf_err_set(err, CF_EINVAL, NULL, "profile URLs must be printable ASCII");
	return CF_OK;
}

/* What tbs_write() chose for this certificate, for cf_pki_cert_info. */
struct tbs_facts {
	unsigned char serial[16];
	int64_t not_before;
	int64_t not_after;
};

/* Write the TBSCertificate into buf. */
static int
tbs_write(cf_pki__der_buf *buf, struct tbs_facts *facts, const cf_pki_ca *ca, const cf_pki_csr *csr,
	  const char *thing, const cf_pki_profile *profile, cf_err *err)
{
	int64_t now = cf_time_now();
	size_t tbs = cf_pki__der_begin(buf), validity;
	int rc;

	rc = cf_pki__serial_random(facts->serial, err);
	if (rc != CF_OK)
		return rc;
	facts->not_before = now - profile->backdate_seconds;
	facts->not_after = now + (int64_t)profile->days * 86400;
	if (facts->not_after > ca->not_after)
		facts->not_after = ca->not_after;
	if (facts->not_after <= facts->not_before)
		return cf_err_set(err, CF_ESTATE, NULL, "the CA has expired");
	cf_pki__der_put(buf, version_v3, sizeof(version_v3));
	put_serial(buf, facts->serial);
	cf_pki__der_put(buf, ca->sigalg_der, ca->sigalg_len);
	cf_pki__der_put(buf, ca->name_der, ca->name_len);
	validity = cf_pki__der_begin(buf);
	if (!put_time(buf, facts->not_before) || !put_time(buf, facts->not_after))
		return cf_err_set(err, CF_EINVAL, NULL, "validity out of range");
	cf_pki__der_end(buf, validity, CF_DER_SEQUENCE);
	put_subject(buf, thing);
	cf_pki__der_put(buf, csr->spki, csr->spki_len);
	if (!put_extensions(buf, ca, csr, thing, profile))
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "SHA-1 for the key identifier");
	cf_pki__der_end(buf, tbs, CF_DER_SEQUENCE);
	if (buf->failed)
		return cf_err_set(err, CF_ENOMEM, NULL, "writing a certificate");
	return CF_OK;
}

/* Append the signature: signatureAlgorithm, BIT STRING, and close the Certificate. */
static int
cert_sign(cf_pki__der_buf *buf, const cf_pki_ca *ca, cf_err *err)
{
	unsigned char sig[1 + 1024];
	size_t sig_len = 0;
	int rc;

	if (ca->sig_max > sizeof(sig) - 1)
		return cf_err_set(err, CF_EINVAL, NULL, "CA key too large");
	rc = cf_pki__ca_sign(sig + 1, &sig_len, ca, buf->p, buf->len, err);
	if (rc != CF_OK)
		return rc;
	sig[0] = 0; /* no unused bits */
	cf_pki__der_put(buf, ca->sigalg_der, ca->sigalg_len);
	cf_pki__der_put_tlv(buf, CF_DER_BITSTRING, sig, 1 + sig_len);
	cf_pki__der_end(buf, 0, CF_DER_SEQUENCE);
	if (buf->failed)
		return cf_err_set(err, CF_ENOMEM, NULL, "writing a certificate");
	return CF_OK;
}

/* Characters that RFC 2253 (and X509_NAME_print_ex) print as they are: the thing-name set. */
static bool
rfc2253_plain(const char *s)
{
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == ':' || *s == '-'))
			return false;
	}
	return true;
}

/*
 * subject and common_name for a name outside the thing-name set: let
 * OpenSSL print the subject we wrote, so escaping and UTF-8 handling stay
 * exactly those of cf_pki_cert_info_get(). Registry names never get here.
 */
static int
subject_text_slow(cf_pki_cert_info *info, const char *thing, cf_err *err)
{
	cf_pki__der_buf buf = { NULL, 0, 0, false };
	const unsigned char *p;
	X509_NAME *name = NULL;
	int rc;

	put_subject(&buf, thing);
	if (buf.failed) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "writing a subject");
		goto out;
	}
	p = buf.p;
	/* Fails when the name is not UTF-8; d2i_X509 would refuse the certificate too. */
	name = d2i_X509_NAME(NULL, &p, (long)buf.len);
	if (name == NULL) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL,
				     "thing name does not parse as a subject");
		goto out;
	}
	if (cf_pki__name_text(info->subject, sizeof(info->subject), name) != CF_OK) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL, "thing name does not print");
		goto out;
	}
	cf_pki__common_name_get(info->common_name, sizeof(info->common_name), name);
	rc = CF_OK;
out:
	X509_NAME_free(name);
	cf_pki__der_buf_clear(&buf);
	return rc;
}

/* Serial as cf_pki_cert_info_get() prints it: lowercase hex, no leading zeros. */
static void
serial_text(char out[CF_PKI_SERIAL_LEN], const unsigned char serial[16])
{
	char hex[2 * 16 + 1];
	size_t skip = 0;

	/* cf_pki__serial_random() never returns zero, so skip stops inside. */
	while (skip < 15 && serial[skip] == 0)
		skip++;
	cf_hex_encode(hex, serial + skip, 16 - skip);
	skip = hex[0] == '0' ? 1 : 0;
	memcpy(out, hex + skip, strlen(hex + skip) + 1);
}

/* The key facts as cf_pki_cert_info_get() reports them, from the parsed request. */
static void
key_facts(cf_pki_cert_info *info, const cf_pki_csr *csr)
{
	const char *curve;

	info->key_bits = csr->key_bits;
	info->key_type = csr->key_type;
	info->key_roca = csr->key_roca; /* cf_pki_csr_check_policy() refuses these */
	switch (csr->key_id) {
	case EVP_PKEY_RSA:
		snprintf(info->key_alg, sizeof(info->key_alg), "RSA");
		break;
	case EVP_PKEY_ED25519:
		snprintf(info->key_alg, sizeof(info->key_alg), "ED25519");
		break;
	case EVP_PKEY_EC:
		snprintf(info->key_alg, sizeof(info->key_alg), "EC");
		curve = EC_curve_nid2nist(csr->curve_nid);
		if (curve == NULL)
			curve = OBJ_nid2sn(csr->curve_nid);
		snprintf(info->key_curve, sizeof(info->key_curve), "%s",
			 curve != NULL ? curve : "");
		break;
	default:
		break;
	}
}

/* Everything cf_pki_cert_info_get() would say about the certificate just written. */
static int
info_fill(cf_pki_cert_info *info, const cf_pki_ca *ca, const cf_pki_csr *csr, const char *thing,
	  const struct tbs_facts *facts, const unsigned char *der, size_t der_len, cf_err *err)
{
	unsigned char md[32];
	int rc;

	_Static_assert(sizeof(ca->issuer_text) == sizeof(info->issuer), "issuer text size");
	_Static_assert(sizeof(ca->sig_alg) == sizeof(info->sig_alg), "sig_alg size");
	memset(info, 0, sizeof(*info));
	if (EVP_Digest(der, der_len, md, NULL, ca->sha256, NULL) != 1)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "SHA-256 of the certificate");
	cf_hex_encode(info->id, md, sizeof(md));
	serial_text(info->serial, facts->serial);
	if (rfc2253_plain(thing)) {
		/* Nothing in this set is special to RFC 2253, first or last or anywhere. */
		snprintf(info->subject, sizeof(info->subject), "CN=%s", thing);
		snprintf(info->common_name, sizeof(info->common_name), "%s", thing);
	} else {
		rc = subject_text_slow(info, thing, err);
		if (rc != CF_OK)
			return rc;
	}
	memcpy(info->issuer, ca->issuer_text, sizeof(info->issuer));
	memcpy(info->spki_sha256, csr->spki_sha256, sizeof(info->spki_sha256));
	key_facts(info, csr);
	memcpy(info->sig_alg, ca->sig_alg, sizeof(info->sig_alg));
	info->not_before = facts->not_before;
	info->not_after = facts->not_after;
	info->is_ca = false;
	info->key_valid = true; /* cf_pki_csr_parse() checked it */
	return CF_OK;
}

int
cf_pki_issue_der(unsigned char **out, size_t *len_out, cf_pki_ca *ca, const cf_pki_csr *csr,
		 const char *thing, const cf_pki_profile *profile, cf_pki_cert_info *info,
		 cf_err *err)
{
	cf_pki__der_buf buf = { NULL, 0, 0, false };
	struct tbs_facts facts;
	int rc;

	*out = NULL;
	*len_out = 0;
	rc = issue_args_check(thing, profile, err);
	if (rc != CF_OK)
		goto out;
	rc = tbs_write(&buf, &facts, ca, csr, thing, profile, err);
	if (rc != CF_OK)
		goto out;
	rc = cert_sign(&buf, ca, err);
	if (rc != CF_OK)
		goto out;
	if (info != NULL) {
		rc = info_fill(info, ca, csr, thing, &facts, buf.p, buf.len, err);
		if (rc != CF_OK)
			goto out;
	}
	*out = buf.p;
	*len_out = buf.len;
	buf.p = NULL;
out:
	cf_pki__der_buf_clear(&buf);
	return rc;
}

int
cf_pki_issue(X509 **out, cf_pki_ca *ca, const cf_pki_csr *csr, const char *thing,
	     const cf_pki_profile *profile, cf_err *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509 *cert = NULL;
	int rc;

	*out = NULL;
	rc = cf_pki_issue_der(&der, &len, ca, csr, thing, profile, NULL, err);
	if (rc != CF_OK)
		goto out;
	p = der;
	cert = d2i_X509(NULL, &p, (long)len);
	if (cert == NULL || p != der + len) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "issued certificate does not parse");
		goto out;
	}
	*out = cert;
	cert = NULL;
	rc = CF_OK;
out:
	X509_free(cert);
	free(der);
	return rc;
}
