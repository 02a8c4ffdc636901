/* Issuance: root, intermediate and device certificates, every extension checked. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

struct fixture {
	struct pki_test_chain chain;
	cf_pki_profile profile;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	pki_test_chain_make(&fx->chain, CF_KEY_EC_P256);
	cf_pki_profile_init(&fx->profile);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	pki_test_chain_clear(&fx->chain);
	free(fx);
	return 0;
}

static X509 *
issue(struct fixture *fx, const char *csr_name, const char *thing)
{
	cf_pki_csr *csr = pki_test_csr(csr_name);
	X509 *cert = NULL;
	cf_err err = CF_ERR_INIT;

	if (cf_pki_issue(&cert, fx->chain.int_ca, csr, thing, &fx->profile, &err) != 0)
		fail_msg("issue: %s", err.msg);
	cf_pki_csr_free(csr);
	return cert;
}

static int64_t
epoch(const ASN1_TIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return (int64_t)timegm(&tm);
}

/* The key identifier the AKI must carry: the issuer's SKI. */
static void
assert_aki_is(X509 *cert, X509 *issuer)
{
	AUTHORITY_KEYID *aki = X509_get_ext_d2i(cert, NID_authority_key_identifier, NULL, NULL);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);

	assert_non_null(aki);
	assert_non_null(aki->keyid);
	assert_non_null(ski);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, ski), 0);
	AUTHORITY_KEYID_free(aki);
}

/* SKI = SHA-1 of the subjectPublicKey bits. */
static void
assert_ski_method1(X509 *cert)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);
	const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(cert);
	unsigned char md[20];

	assert_non_null(ski);
	assert_int_equal(EVP_Digest(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits),
				    md, NULL, EVP_sha1(), NULL),
			 1);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	assert_memory_equal(ASN1_STRING_get0_data(ski), md, 20);
}

static void
assert_ca_cert(X509 *cert, X509 *issuer, long pathlen)
{
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	assert_int_equal(X509_get_version(cert), X509_VERSION_3);
	bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_true(bc->ca);
	assert_int_equal(crit, 1);
	if (pathlen < 0)
		assert_null(bc->pathlen);
	else
		assert_int_equal(ASN1_INTEGER_get(bc->pathlen), pathlen);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_get_key_usage(cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(X509_EXTENSION_get_critical(
				 X509_get_ext(cert, X509_get_ext_by_NID(cert, NID_key_usage, -1))),
			 1);
	assert_ski_method1(cert);
	assert_aki_is(cert, issuer);
	assert_true(cf_pki_cert_signed_by(cert, issuer));
}

static void
test_pki_issue__root_and_intermediate(void **state)
{
	struct fixture *fx = *state;

	assert_ca_cert(fx->chain.root, fx->chain.root, -1);
	assert_ca_cert(fx->chain.inter, fx->chain.root, 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(fx->chain.inter),
				       X509_get_subject_name(fx->chain.root)),
			 0);
	/* The intermediate ends no later than the root. */
	assert_true(epoch(X509_get0_notAfter(fx->chain.inter)) <=
		    epoch(X509_get0_notAfter(fx->chain.root)));
}

static void
assert_device_extensions(X509 *cert, X509 *issuer, const char *thing)
{
	BASIC_CONSTRAINTS *bc;
	EXTENDED_KEY_USAGE *eku;
	GENERAL_NAMES *san;
	const GENERAL_NAME *gn;
	char want[200];
	int crit = -1;

	bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_EXTENSION_get_critical(
				 X509_get_ext(cert, X509_get_ext_by_NID(cert, NID_key_usage, -1))),
			 1);
	eku = X509_get_ext_d2i(cert, NID_ext_key_usage, &crit, NULL);
	assert_non_null(eku);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 1);
	gn = sk_GENERAL_NAME_value(san, 0);
	assert_int_equal(gn->type, GEN_URI);
	snprintf(want, sizeof(want), "urn:certfleet:thing:%s", thing);
	assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
			    want);
	GENERAL_NAMES_free(san);
	assert_ski_method1(cert);
	assert_aki_is(cert, issuer);
}

static void
test_pki_issue__device_extensions(void **state)
{
	struct fixture *fx = *state;
	X509 *cert = issue(fx, "good-p256.pem", "thing-1");
	const ASN1_INTEGER *sn;
	BIGNUM *bn;

	assert_int_equal(X509_get_version(cert), X509_VERSION_3);
	assert_device_extensions(cert, fx->chain.inter, "thing-1");
	assert_int_equal(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
	assert_null(X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL));
	assert_null(X509_get_ext_d2i(cert, NID_info_access, NULL, NULL));
	assert_int_equal(X509_get_ext_count(cert), 6);
	/* Positive, non-zero, at most 128 bits. */
	sn = X509_get0_serialNumber(cert);
	bn = ASN1_INTEGER_to_BN(sn, NULL);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bits(bn) <= 128);
	BN_free(bn);
	assert_int_equal(
		X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(fx->chain.inter)),
		0);
	X509_free(cert);
}

static void
test_pki_issue__subject_is_the_thing(void **state)
{
	struct fixture *fx = *state;
	X509 *cert = issue(fx, "other-thing-cn.pem", "thing-42");
	X509 *empty = issue(fx, "empty-subject.pem", "thing-43");
	char cn[256];
	X509_NAME *name = X509_get_subject_name(cert);

	assert_int_equal(X509_NAME_entry_count(name), 1);
	assert_true(X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "thing-42");
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(empty), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "thing-43");
	X509_free(cert);
	X509_free(empty);
}

static void
test_pki_issue__chain_verifies(void **state)
{
	struct fixture *fx = *state;
	X509 *cert = issue(fx, "good-p256.pem", "thing-1");
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();

	assert_int_equal(X509_STORE_add_cert(store, fx->chain.root), 1);
	assert_true(sk_X509_push(untrusted, fx->chain.inter) > 0);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, untrusted), 1);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(ctx) != 1)
		fail_msg("verify: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	X509_free(cert);
}

static void
test_pki_issue__serials_distinct(void **state)
{
	struct fixture *fx = *state;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	X509 *a = NULL, *b = NULL;

	assert_int_equal(cf_pki_issue(&a, fx->chain.int_ca, csr, "t", &fx->profile, NULL), 0);
	assert_int_equal(cf_pki_issue(&b, fx->chain.int_ca, csr, "t", &fx->profile, NULL), 0);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)),
			     0);
	X509_free(a);
	X509_free(b);
	cf_pki_csr_free(csr);
}

static void
test_pki_issue__validity(void **state)
{
	struct fixture *fx = *state;
	int64_t now = cf_time_now(), nb, na;
	X509 *cert;

	fx->profile.days = 30;
	fx->profile.backdate_seconds = 600;
	cert = issue(fx, "good-p256.pem", "thing-1");
	nb = epoch(X509_get0_notBefore(cert));
	na = epoch(X509_get0_notAfter(cert));
	assert_true(nb >= now - 600 - 5 && nb <= now - 600 + 5);
	assert_true(na >= now + 30 * 86400 - 5 && na <= now + 30 * 86400 + 5);
	X509_free(cert);
	/* Far beyond the CA's life: capped at the CA's notAfter. */
	fx->profile.days = 20000;
	cert = issue(fx, "good-p256.pem", "thing-1");
	assert_int_equal(epoch(X509_get0_notAfter(cert)),
			 epoch(X509_get0_notAfter(fx->chain.inter)));
	X509_free(cert);
}

static void
test_pki_issue__urls_when_configured(void **state)
{
	struct fixture *fx = *state;
	CRL_DIST_POINTS *dps;
	AUTHORITY_INFO_ACCESS *aia;
	const DIST_POINT *dp;
	const GENERAL_NAME *gn;
	const ACCESS_DESCRIPTION *ad;
	X509 *cert;

	fx->profile.crl_url = "http://pki.example/crl/issuing.crl";
	fx->profile.ocsp_url = "http://pki.example/ocsp";
	cert = issue(fx, "good-p256.pem", "thing-1");
	dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
	assert_non_null(dps);
	dp = sk_DIST_POINT_value(dps, 0);
	assert_int_equal(dp->distpoint->type, 0);
	gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
	assert_int_equal(gn->type, GEN_URI);
	assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
			    fx->profile.crl_url);
	CRL_DIST_POINTS_free(dps);
	aia = X509_get_ext_d2i(cert, NID_info_access, NULL, NULL);
	assert_non_null(aia);
	ad = sk_ACCESS_DESCRIPTION_value(aia, 0);
	assert_int_equal(OBJ_obj2nid(ad->method), NID_ad_OCSP);
	assert_string_equal(
		(const char *)ASN1_STRING_get0_data(ad->location->d.uniformResourceIdentifier),
		fx->profile.ocsp_url);
	AUTHORITY_INFO_ACCESS_free(aia);
	assert_device_extensions(cert, fx->chain.inter, "thing-1");
	X509_free(cert);
	/* Only the CRL: no AIA. */
	fx->profile.ocsp_url = NULL;
	cert = issue(fx, "good-p256.pem", "thing-1");
	assert_int_equal(X509_get_ext_by_NID(cert, NID_info_access, -1), -1);
	assert_true(X509_get_ext_by_NID(cert, NID_crl_distribution_points, -1) >= 0);
	X509_free(cert);
}

static void
test_pki_issue__bad_arguments(void **state)
{
	struct fixture *fx = *state;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	char long_name[66];
	X509 *cert = NULL;

	/* RFC 5280 ub-common-name: 64. */
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	assert_int_equal(cf_pki_issue(&cert, fx->chain.int_ca, csr, "", &fx->profile, NULL),
			 CF_EINVAL);
	assert_int_equal(cf_pki_issue(&cert, fx->chain.int_ca, csr, long_name, &fx->profile, NULL),
			 CF_EINVAL);
	long_name[64] = '\0';
	assert_int_equal(cf_pki_issue(&cert, fx->chain.int_ca, csr, long_name, &fx->profile, NULL),
			 0);
	X509_free(cert);
	cert = NULL;
	fx->profile.crl_url = "http://bad url";
	assert_int_equal(cf_pki_issue(&cert, fx->chain.int_ca, csr, "t", &fx->profile, NULL),
			 CF_EINVAL);
	assert_null(cert);
	cf_pki_csr_free(csr);
}

static void
test_pki_issue__every_csr_key_type(void **state)
{
	static const char *names[] = { "good-p384.pem", "good-ed25519.pem", "good-rsa2048.pem",
				       "good-der-p256.der" };
	struct fixture *fx = *state;
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(names); i++) {
		X509 *cert = issue(fx, names[i], "thing-k");

		assert_true(cf_pki_cert_signed_by(cert, fx->chain.inter));
		X509_free(cert);
	}
}

/* The CA's key decides the signature algorithm. */
static void
signature_for(cf_key_type type, int want_nid)
{
	struct pki_test_chain chain;
	cf_pki_profile profile;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	X509 *cert = NULL;

	pki_test_chain_make(&chain, type);
	cf_pki_profile_init(&profile);
	assert_int_equal(cf_pki_issue(&cert, chain.int_ca, csr, "t", &profile, NULL), 0);
	assert_int_equal(X509_get_signature_nid(cert), want_nid);
	assert_int_equal(X509_get_signature_nid(chain.inter), want_nid);
	assert_true(cf_pki_cert_signed_by(cert, chain.inter));
	X509_free(cert);
	cf_pki_csr_free(csr);
	pki_test_chain_clear(&chain);
}

static void
test_pki_issue__signature_algorithms(void **state)
{
	(void)state;
	signature_for(CF_KEY_EC_P384, NID_ecdsa_with_SHA384);
	signature_for(CF_KEY_ED25519, NID_ED25519);
	signature_for(CF_KEY_RSA_2048, NID_sha256WithRSAEncryption);
}

/* A device certificate and its key, from a request made here. */
static X509 *
issue_with_key(struct fixture *fx, EVP_PKEY **key_out)
{
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	cf_pki_csr *csr = NULL;
	X509 *cert = NULL;
	int len;

	assert_int_equal(cf_pki_key_generate(key_out, CF_KEY_EC_P256, NULL), 0);
	assert_int_equal(cf_pki_ca_csr_create(&req, *key_out, "dev", NULL, NULL), 0);
	len = i2d_X509_REQ(req, &der);
	assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, NULL), 0);
	assert_int_equal(cf_pki_issue(&cert, fx->chain.int_ca, csr, "dev", &fx->profile, NULL), 0);
	cf_pki_csr_free(csr);
	OPENSSL_free(der);
	X509_REQ_free(req);
	return cert;
}

static void
test_pki_issue__ca_new_checks(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *key = NULL;
	X509 *leaf = issue_with_key(fx, &key);
	cf_pki_ca *ca = NULL;
	cf_err err = CF_ERR_INIT;

	/* Wrong key for the certificate. */
	assert_int_equal(cf_pki_ca_new(&ca, fx->chain.inter, fx->chain.root_key, &err), CF_EINVAL);
	assert_null(ca);
	/* The right key, but not a CA certificate. */
	assert_true(cf_pki_key_matches_cert(key, leaf));
	assert_false(cf_pki_key_matches_cert(fx->chain.int_key, leaf));
	assert_int_equal(cf_pki_ca_new(&ca, leaf, key, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "not a CA"));
	assert_null(ca);
	X509_free(leaf);
	EVP_PKEY_free(key);
}

static void
test_pki_issue__ca_csr(void **state)
{
	struct fixture *fx = *state;
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	cf_pki_csr *csr = NULL;
	int len;

	assert_int_equal(
		cf_pki_ca_csr_create(&req, fx->chain.int_key, "Offline CA", "certfleet", NULL), 0);
	assert_int_equal(X509_REQ_verify(req, fx->chain.int_key), 1);
	len = i2d_X509_REQ(req, &der);
	assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, NULL), 0);
	cf_pki_csr_free(csr);
	OPENSSL_free(der);
	X509_REQ_free(req);
}

/* Field by field, so that a failure names the field. */
static void
assert_info_equal(const cf_pki_cert_info *got, const cf_pki_cert_info *want)
{
	assert_string_equal(got->id, want->id);
	assert_string_equal(got->serial, want->serial);
	assert_string_equal(got->subject, want->subject);
	assert_string_equal(got->issuer, want->issuer);
	assert_string_equal(got->common_name, want->common_name);
	assert_string_equal(got->spki_sha256, want->spki_sha256);
	assert_string_equal(got->key_alg, want->key_alg);
	assert_string_equal(got->key_curve, want->key_curve);
	assert_int_equal(got->key_bits, want->key_bits);
	assert_int_equal(got->key_type, want->key_type);
	assert_string_equal(got->sig_alg, want->sig_alg);
	assert_int_equal(got->not_before, want->not_before);
	assert_int_equal(got->not_after, want->not_after);
	assert_int_equal(got->is_ca, want->is_ca);
	assert_int_equal(got->key_valid, want->key_valid);
	assert_true(got->key_valid);
	assert_int_equal(got->key_roca, want->key_roca);
}

/* Issue as DER with info, parse the DER, and check info against cf_pki_cert_info_get(). */
static void
der_info_check(cf_pki_ca *ca, const cf_pki_csr *csr, const char *thing,
	       const cf_pki_profile *profile, cf_pki_cert_info *info_out)
{
	cf_pki_cert_info info, want;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	cf_err err = CF_ERR_INIT;
	X509 *cert;

	memset(&info, 0xa5, sizeof(info)); /* whatever was there must not show through */
	if (cf_pki_issue_der(&der, &len, ca, csr, thing, profile, &info, &err) != 0)
		fail_msg("issue_der %s: %s", thing, err.msg);
	p = der;
	cert = d2i_X509(NULL, &p, (long)len);
	assert_non_null(cert);
	assert_ptr_equal(p, der + len);
	assert_int_equal(cf_pki_cert_info_get(&want, cert, NULL), 0);
	assert_info_equal(&info, &want);
	if (info_out != NULL)
		*info_out = info;
	X509_free(cert);
	free(der);
}

static void
test_pki_issue__der_info_matches_cert_info(void **state)
{
	static const cf_key_type ca_types[] = { CF_KEY_EC_P256, CF_KEY_EC_P384, CF_KEY_ED25519,
						CF_KEY_RSA_2048 };
	static const char *csrs[] = { "good-p256.pem", "good-p384.pem", "good-ed25519.pem",
				      "good-rsa2048.pem", "good-der-p256.der" };
	static const char *const sig_algs[] = { "ecdsa-with-SHA256", "ecdsa-with-SHA384", "ED25519",
						"sha256WithRSAEncryption" };
	static const char *const key_algs[] = { "EC", "EC", "ED25519", "RSA", "EC" };
	cf_pki_profile profile;
	cf_pki_cert_info info;
	char longest[65];
	size_t i, j;

	(void)state;
	cf_pki_profile_init(&profile);
	for (i = 0; i < sizeof(longest) - 1; i++)
		longest[i] = "abcXYZ019_.:-"[i % 13];
	longest[sizeof(longest) - 1] = '\0';
	for (i = 0; i < CF_ARRAY_LEN(ca_types); i++) {
		struct pki_test_chain chain;

		pki_test_chain_make(&chain, ca_types[i]);
		for (j = 0; j < CF_ARRAY_LEN(csrs); j++) {
			cf_pki_csr *csr = pki_test_csr(csrs[j]);

			der_info_check(chain.int_ca, csr, "thing-1", &profile, &info);
			/* Not only equal to OpenSSL's view: also what we expect. */
			assert_string_equal(info.sig_alg, sig_algs[i]);
			assert_string_equal(info.key_alg, key_algs[j]);
			assert_string_equal(info.issuer, "CN=Test Issuing CA,O=certfleet");
			assert_string_equal(info.subject, "CN=thing-1");
			assert_string_equal(info.spki_sha256, cf_pki_csr_spki_sha256(csr));
			assert_int_equal(info.key_type, cf_pki_csr_key_type(csr));
			/* Every character a thing name may have; the longest name. */
			der_info_check(chain.int_ca, csr, "AZaz09_.:-Thing", &profile, NULL);
			der_info_check(chain.int_ca, csr, longest, &profile, NULL);
			cf_pki_csr_free(csr);
		}
		/* The CA's own signer: a root CA issuing directly, other issuer text. */
		{
			cf_pki_csr *csr = pki_test_csr("good-p256.pem");

			der_info_check(chain.root_ca, csr, "thing-2", &profile, &info);
			assert_string_equal(info.issuer, "CN=Test Root,O=certfleet");
			cf_pki_csr_free(csr);
		}
		pki_test_chain_clear(&chain);
	}
}

/*
 * A caller that skips cf_pki_csr_check_policy() can still issue for a ROCA
 * key; the info then says so, as cf_pki_cert_info_get() does.
 */
static void
test_pki_issue__der_info_roca_key(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *key = pki_test_roca_key(2048, 126);
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	cf_pki_cert_info info;
	cf_pki_csr *csr = NULL;
	int len;

	assert_non_null(req);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	len = i2d_X509_REQ(req, &der);
	assert_true(len > 0);
	assert_int_equal(cf_pki_csr_parse(&csr, der, (size_t)len, NULL), 0);
	der_info_check(fx->chain.int_ca, csr, "thing-1", &fx->profile, &info);
	assert_true(info.key_roca);
	cf_pki_csr_free(csr);
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static void
test_pki_issue__der_info_with_urls(void **state)
{
	struct fixture *fx = *state;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");

	fx->profile.crl_url = "http://pki.example/crl/issuing.crl";
	fx->profile.ocsp_url = "http://pki.example/ocsp";
	der_info_check(fx->chain.int_ca, csr, "thing-1", &fx->profile, NULL);
	cf_pki_csr_free(csr);
}

/* Names outside the thing-name set still come out as OpenSSL prints them. */
static void
test_pki_issue__der_info_escaped_subject(void **state)
{
	static const char *const things[] = {
		"a,b+c;d", " lead",        "#hash",     "trail ",     "q\"uo\\te<>",
		"x=y",     "th\xc3\xafng", "tab\there", "~!@$%^&*()",
	};
	struct fixture *fx = *state;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	cf_pki_cert_info info;
	unsigned char *der = NULL;
	X509 *cert = NULL;
	size_t i, len = 0;

	for (i = 0; i < CF_ARRAY_LEN(things); i++)
		der_info_check(fx->chain.int_ca, csr, things[i], &fx->profile, NULL);
	der_info_check(fx->chain.int_ca, csr, "a,b", &fx->profile, &info);
	assert_string_equal(info.subject, "CN=a\\,b");
	assert_string_equal(info.common_name, "a,b");
	/* Not UTF-8: OpenSSL cannot parse such a certificate, and info cannot describe it. */
	assert_int_equal(cf_pki_issue_der(&der, &len, fx->chain.int_ca, csr, "bad\xff",
					  &fx->profile, &info, NULL),
			 CF_EINVAL);
	assert_null(der);
	assert_int_not_equal(
		cf_pki_issue(&cert, fx->chain.int_ca, csr, "bad\xff", &fx->profile, NULL), 0);
	cf_pki_csr_free(csr);
}

/* notAfter in info is the capped one, and the rest of the validity is as written. */
static void
test_pki_issue__der_info_validity_capped(void **state)
{
	struct fixture *fx = *state;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	int64_t now = cf_time_now();
	cf_pki_cert_info info;

	fx->profile.days = 20000;
	fx->profile.backdate_seconds = 600;
	der_info_check(fx->chain.int_ca, csr, "thing-1", &fx->profile, &info);
	assert_int_equal(info.not_after, epoch(X509_get0_notAfter(fx->chain.inter)));
	assert_true(info.not_after < now + 20000LL * 86400);
	assert_true(info.not_before >= now - 600 - 5 && info.not_before <= now - 600 + 5);
	/* Within the CA's life: not capped. */
	fx->profile.days = 30;
	der_info_check(fx->chain.int_ca, csr, "thing-1", &fx->profile, &info);
	assert_int_equal(info.not_after - info.not_before, 30 * 86400 + 600);
	cf_pki_csr_free(csr);
}

/* A failed issue leaves *out NULL; info NULL is accepted. */
static void
test_pki_issue__der_info_optional(void **state)
{
	struct fixture *fx = *state;
	cf_pki_csr *csr = pki_test_csr("good-p256.pem");
	cf_pki_cert_info info;
	unsigned char *der = NULL;
	size_t len = 0;

	assert_int_equal(
		cf_pki_issue_der(&der, &len, fx->chain.int_ca, csr, "t", &fx->profile, NULL, NULL),
		0);
	assert_non_null(der);
	assert_true(len > 0);
	free(der);
	assert_int_equal(
		cf_pki_issue_der(&der, &len, fx->chain.int_ca, csr, "", &fx->profile, &info, NULL),
		CF_EINVAL);
	assert_null(der);
	assert_int_equal(len, 0);
	cf_pki_csr_free(csr);
}

int
test_pki_issue_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pki_issue__root_and_intermediate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__device_extensions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__subject_is_the_thing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__chain_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__serials_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__validity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__urls_when_configured, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__every_csr_key_type, setup,
						teardown),
		cmocka_unit_test(test_pki_issue__signature_algorithms),
		cmocka_unit_test_setup_teardown(test_pki_issue__ca_new_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__ca_csr, setup, teardown),
		cmocka_unit_test(test_pki_issue__der_info_matches_cert_info),
		cmocka_unit_test_setup_teardown(test_pki_issue__der_info_roca_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__der_info_with_urls, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__der_info_escaped_subject, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__der_info_validity_capped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pki_issue__der_info_optional, setup, teardown),
	};

	return cmocka_run_group_tests_name("pki_issue", tests, NULL, NULL);
}
