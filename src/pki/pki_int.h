/*
 * pki_int.h: private to src/pki/. The parsed CSR and CA structures, and a
 * small DER reader and writer used on the issuance hot path.
 *
 * Why hand-rolled DER: in OpenSSL 3.0 every d2i of a SubjectPublicKeyInfo
 * goes through the decoder framework (~80 us), and every X509_set_pubkey()
 * through the encoder framework (~140 us), while one P-256 verify + sign
 * costs ~80 us. The CSR and the TBSCertificate are small fixed shapes, so
 * reading and writing them directly is both short and fast.
 */
#ifndef CF_PKI_INT_H
#define CF_PKI_INT_H

#include "pki.h"

/* DER tags used here. */
#define CF_DER_INTEGER     0x02
#define CF_DER_BITSTRING   0x03
#define CF_DER_OCTETS      0x04
#define CF_DER_NULL        0x05
#define CF_DER_OID         0x06
#define CF_DER_UTF8        0x0c
#define CF_DER_UTCTIME     0x17
#define CF_DER_GENTIME     0x18
#define CF_DER_SEQUENCE    0x30
#define CF_DER_SET         0x31
#define CF_DER_CTX(n)      (0x80 | (n)) /* [n] IMPLICIT, primitive */
#define CF_DER_CTX_CONS(n) (0xa0 | (n)) /* [n], constructed */

/* A read cursor over DER bytes; never reads outside [p, p + len). */
typedef struct cf_pki__der_cur {
	const unsigned char *p;
	size_t len;
} cf_pki__der_cur;

/* One element read by cf_pki__der_get(). */
typedef struct cf_pki__der_tlv {
	const unsigned char *tlv; /* tag, length and content */
	size_t tlv_len;
	const unsigned char *val; /* content */
	size_t val_len;
} cf_pki__der_tlv;

/*
 * Read the next element, which must have tag (a single byte; high tag
 * numbers are not used by the structures read here). Only definite,
 * minimally encoded lengths are accepted. Returns false on any mismatch.
 */
bool cf_pki__der_get(cf_pki__der_tlv *out, cf_pki__der_cur *cur, unsigned char tag);

/* True when the next element (if any) has tag. */
bool cf_pki__der_peek(const cf_pki__der_cur *cur, unsigned char tag);

/*
 * Read the next element whatever its (single-byte) tag, with the same length
 * rules as cf_pki__der_get(). Returns false on a high tag number or a bad length.
 */
bool cf_pki__der_get_any(cf_pki__der_tlv *out, cf_pki__der_cur *cur);

/*
 * True when tlv (one element, as read above) is DER all the way down: every
 * nested element has a single-byte tag and a minimal definite length and
 * fills its parent exactly; only SEQUENCE, SET and non-universal tags are
 * constructed; BOOLEAN is 00 or ff, INTEGER minimal, NULL empty, OBJECT
 * IDENTIFIER well formed. At most CF_PKI__DER_DEPTH levels deep. SET OF
 * order is not checked.
 */
bool cf_pki__der_valid(const cf_pki__der_tlv *tlv);
#define CF_PKI__DER_DEPTH 16

/* True when the content of an OBJECT IDENTIFIER is well formed (minimal sub-identifiers). */
bool cf_pki__der_oid_valid(const cf_pki__der_tlv *oid);

/* A growing output buffer; after an allocation failure every call is a no-op. */
typedef struct cf_pki__der_buf {
	unsigned char *p;
	size_t len;
	size_t cap;
	bool failed;
} cf_pki__der_buf;

/* Append raw bytes. */
void cf_pki__der_put(cf_pki__der_buf *buf, const void *data, size_t len);

/* Append a whole element: tag, length, content. */
void cf_pki__der_put_tlv(cf_pki__der_buf *buf, unsigned char tag, const void *val, size_t len);

/* Start a constructed element; returns the offset to give to _end(). */
size_t cf_pki__der_begin(const cf_pki__der_buf *buf);

/* Close the element begun at off: insert its tag and length before the content. */
void cf_pki__der_end(cf_pki__der_buf *buf, size_t off, unsigned char tag);

/* Release the buffer's memory (not wiped: it holds only public data). */
void cf_pki__der_buf_clear(cf_pki__der_buf *buf);

/* A 128-bit random positive serial: top bit clear, never zero (16 bytes). */
int cf_pki__serial_random(unsigned char serial[16], cf_err *err);

/* Largest RSA modulus accepted: verifying with a larger one costs the CA real time. */
#define CF_PKI__RSA_MAX_BITS 8192

/*
 * The cheap checks of an RSA public key: at most CF_PKI__RSA_MAX_BITS bits,
 * an odd exponent with 65537 <= e < 2^256 (SP 800-56B; OpenSSL 3.0 outside
 * FIPS lets any odd e > 1 through). CF_EPROTO "WEAK_KEY" otherwise.
 */
int cf_pki__rsa_quick_check(EVP_PKEY *key, cf_err *err);

/*
 * The quick check and an odd modulus (not EVP_PKEY_public_check(), whose
 * primality test costs milliseconds). CF_EPROTO "WEAK_KEY" when it fails.
 */
int cf_pki__rsa_public_check(EVP_PKEY *key, cf_err *err);

/*
 * cf_pki_rsa_modulus_roca() on an RSA key's modulus, read from pub when it
 * is the key's RSAPublicKey DER (the subjectPublicKey bits; may be NULL),
 * else from key: EVP_PKEY_get_bn_param() costs ~3 us in OpenSSL 3.0, more
 * than the test. False when there is no modulus (the error queue left empty).
 */
bool cf_pki__rsa_key_roca(EVP_PKEY *key, const unsigned char *pub, size_t pub_len);

/* The digest name to sign with key: "SHA256", "SHA384", or NULL for EdDSA. */
const char *cf_pki__md_name_for_key(EVP_PKEY *key);

/*
 * A serial as the registry keeps it: lowercase hex without leading zeros
 * ("0" for zero). CF_EINVAL for a negative one or one over 20 octets (RFC
 * 5280's limit).
 */
int cf_pki__serial_hex(char out[CF_PKI_SERIAL_LEN], const ASN1_INTEGER *sn);

/* Convert an ASN1_TIME to seconds since the epoch. */
int cf_pki__asn1_time_to_epoch(int64_t *out, const ASN1_TIME *t);

/* name as RFC 2253 text (cf_pki_cert_info's subject and issuer), truncated to size. */
int cf_pki__name_text(char *out, size_t size, const X509_NAME *name);

/* The first CN of name as UTF-8, or "" when absent or longer than size - 1. */
void cf_pki__common_name_get(char *out, size_t size, const X509_NAME *name);

/* The parsed request; see csr.c. All pointers into der stay valid while der lives. */
struct cf_pki_csr {
	unsigned char *der; /* the CertificationRequest, owned */
	size_t der_len;
	const unsigned char *spki; /* SubjectPublicKeyInfo element inside der */
	size_t spki_len;
	unsigned char *pub; /* subjectPublicKey bits (after the unused-bits byte), in der */
	size_t pub_len;
	EVP_PKEY *pkey; /* the public key, built for verification */
	int key_id;     /* EVP_PKEY_EC, EVP_PKEY_RSA, EVP_PKEY_ED25519 */
	int curve_nid;  /* NID of the named curve for EC, else NID_undef */
	int key_bits;
	cf_key_type key_type;
	bool key_roca; /* RSA modulus with the ROCA fingerprint: refused by the policy check */
	char spki_sha256[CF_PKI_ID_LEN];
};

/* A CA signer with everything that does not vary between certificates cached. */
struct cf_pki_ca {
	X509 *cert;
	EVP_PKEY *key;
	const char *md_name;       /* "SHA256", "SHA384", NULL for Ed25519 */
	EVP_MD_CTX *sign_template; /* initialised DigestSign context, copied per signature */
	size_t sig_max;            /* EVP_PKEY_get_size(key) */
	unsigned char *name_der;   /* the CA's subject: the issued certificates' issuer */
	size_t name_len;
	unsigned char *sigalg_der; /* AlgorithmIdentifier of the CA's signatures */
	size_t sigalg_len;
	unsigned char key_id[64]; /* the CA's subject key identifier, for AKI */
	size_t key_id_len;
	int64_t not_after;
	EVP_MD *sha256;        /* fetched once: certificateId of every issued certificate */
	EVP_MD *sha1;          /* fetched once: subject key identifiers */
	char issuer_text[256]; /* the CA's subject as cf_pki_cert_info_get() prints it */
	char sig_alg[48];      /* long name of the signature algorithm, as in cf_pki_cert_info */
};

/* Sign data with the CA key into sig (ca->sig_max bytes). */
int cf_pki__ca_sign(unsigned char *sig, size_t *sig_len, const cf_pki_ca *ca,
		    const unsigned char *data, size_t len, cf_err *err);

#endif
