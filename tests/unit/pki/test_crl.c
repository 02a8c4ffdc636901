/*
 * Revocation lists read for the audit: PEM and DER files, what is not one
 * CRL, the issuer and its signature, nextUpdate, and the entries in the
 * registry's serial format with their reasons and what is left out.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define T0 1700000000

/* A scratch directory and the files the case made in it. */
struct crl_dir {
	char dir[256];
	char files[16][320];
	size_t n;
};

static void
crl_dir_make(struct crl_dir *d)
{
	const char *tmp = getenv("TMPDIR");

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/cf-crl-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	assert_non_null(mkdtemp(d->dir));
}

/* The path of name in d, remembered for crl_dir_clear(). */
static const char *
crl_path(struct crl_dir *d, const char *name)
{
	char path[sizeof(d->files[0])];
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(strrchr(d->files[i], '/') + 1, name) == 0)
			return d->files[i];
	assert_true(d->n < CF_ARRAY_LEN(d->files));
	/* Through a copy: GCC sees d->dir and d->files in one object (-Wrestrict). */
	snprintf(path, sizeof(path), "%s/%s", d->dir, name);
	memcpy(d->files[d->n], path, sizeof(path));
	return d->files[d->n++];
}

static void
crl_dir_clear(struct crl_dir *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		(void)unlink(d->files[i]);
	assert_int_equal(rmdir(d->dir), 0);
}

static void
write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* The CRL's DER, freed with OPENSSL_free(). */
static unsigned char *
crl_der(X509_CRL *crl, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509_CRL(crl, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

/* A root CA: its key and self-signed certificate. */
struct ca {
	EVP_PKEY *key;
	X509 *cert;
};

static void
ca_make(struct ca *ca, const char *cn, EVP_PKEY *key)
{
	if (key == NULL)
		assert_int_equal(cf_pki_key_generate(&key, CF_KEY_EC_P256, NULL), 0);
	else
		assert_int_equal(EVP_PKEY_up_ref(key), 1);
	ca->key = key;
	assert_int_equal(cf_pki_root_create(&ca->cert, key, cn, "certfleet", 3650, NULL), 0);
}

static void
ca_clear(struct ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
}

/* A serial of 20 octets (the most RFC 5280 allows) and one of 21. */
#define SERIAL_20 "7f0102030405060708090a0b0c0d0e0f10111213"
#define SERIAL_21 "0102030405060708090a0b0c0d0e0f101112131415"

/*
 * Entries of every kind, in no order: X509_CRL_sort() orders them by the
 * serial's magnitude, 0 1 -5 ff abc beef dead SERIAL_20 SERIAL_21.
 */
static const struct pki_test_revoked mixed[] = {
	{ "abc", T0 - 200, -1 },    /* no reason extension */
	{ "ff", T0 - 100, 1 },      /* keyCompromise; its DER is 00 ff */
	{ "dead", T0 - 300, 8 },    /* removeFromCRL: left out */
	{ "-5", T0 - 400, 1 },      /* negative: left out */
	{ SERIAL_21, T0 - 500, 1 }, /* over 20 octets: left out */
	{ SERIAL_20, T0 - 600, 4 }, /* superseded */
	{ "beef", T0 - 700, 10 },   /* aACompromise, the last code */
	{ "1", T0 - 800, 7 },       /* 7 is unused: unspecified */
	{ "0", T0 - 900, 6 },       /* certificateHold */
};

struct seen {
	size_t n;
	size_t stop_after; /* 0: never stop */
	char serial[16][CF_PKI_SERIAL_LEN];
	int64_t at[16];
	const char *reason[16];
};

static int
seen_cb(const cf_pki_crl_entry *e, void *payload)
{
	struct seen *s = payload;

	assert_true(s->n < CF_ARRAY_LEN(s->serial));
	memcpy(s->serial[s->n], e->serial, sizeof(e->serial));
	s->at[s->n] = e->revoked_at;
	s->reason[s->n] = e->reason;
	s->n++;
	return s->stop_after != 0 && s->n == s->stop_after ? 42 : 0;
}

/* Read path, asserting success, and check the issuer and nextUpdate of a "Test Root" CRL. */
static cf_pki_crl *
read_ok(const char *path, int64_t next)
{
	cf_pki_crl *crl = NULL;
	cf_err err = CF_ERR_INIT;

	if (cf_pki_crl_read(&crl, path, &err) != 0)
		fail_msg("%s: %s", path, err.msg);
	assert_non_null(crl);
	assert_string_equal(cf_pki_crl_issuer(crl), "CN=Test Root,O=certfleet");
	assert_int_equal(cf_pki_crl_next_update(crl), next);
	return crl;
}

/* The mixed entries, as cf_pki_crl_foreach() must hand them out. */
static void
assert_mixed_entries(const cf_pki_crl *crl)
{
	struct seen s;
	size_t skipped = 99;

	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_pki_crl_foreach(crl, seen_cb, &s, &skipped), 0);
	assert_int_equal(skipped, 3);
	assert_int_equal(s.n, 6);
	assert_string_equal(s.serial[0], "0");
	assert_string_equal(s.reason[0], "certificateHold");
	assert_int_equal(s.at[0], T0 - 900);
	assert_string_equal(s.serial[1], "1");
	assert_string_equal(s.reason[1], "unspecified");
	assert_string_equal(s.serial[2], "ff");
	assert_string_equal(s.reason[2], "keyCompromise");
	assert_int_equal(s.at[2], T0 - 100);
	assert_string_equal(s.serial[3], "abc");
	assert_string_equal(s.reason[3], "unspecified");
	assert_int_equal(s.at[3], T0 - 200);
	assert_string_equal(s.serial[4], "beef");
	assert_string_equal(s.reason[4], "aACompromise");
	assert_string_equal(s.serial[5], SERIAL_20);
	assert_string_equal(s.reason[5], "superseded");
	assert_int_equal(s.at[5], T0 - 600);
	/* skipped may be NULL. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_pki_crl_foreach(crl, seen_cb, &s, NULL), 0);
	assert_int_equal(s.n, 6);
}

/* One CRL read from its PEM and its DER file gives the same issuer, nextUpdate and entries. */
static void
test_pki_crl__pem_and_der(void **state)
{
	struct crl_dir d;
	struct ca ca;
	X509_CRL *x;
	cf_pki_crl *crl;
	size_t len;
	char *pem, *padded;
	long n, i;
	BIO *bio;

	(void)state;
	crl_dir_make(&d);
	ca_make(&ca, "Test Root", NULL);
	x = pki_test_crl(ca.key, ca.cert, mixed, CF_ARRAY_LEN(mixed), T0 - 3600, T0 + 86400);
	pki_test_crl_write(x, crl_path(&d, "a.pem"), false);
	pki_test_crl_write(x, crl_path(&d, "a.der"), true);
	crl = read_ok(crl_path(&d, "a.pem"), T0 + 86400);
	assert_mixed_entries(crl);
	assert_true(cf_pki_crl_signed_by(crl, ca.cert));
	cf_pki_crl_free(crl);
	crl = read_ok(crl_path(&d, "a.der"), T0 + 86400);
	assert_mixed_entries(crl);
	assert_true(cf_pki_crl_signed_by(crl, ca.cert));
	cf_pki_crl_free(crl);
	/* PEM after blank lines and with CRLF line ends is still PEM. */
	bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509_CRL(bio, x), 1);
	n = BIO_get_mem_data(bio, &pem);
	assert_true(n > 0);
	padded = malloc(2 * (size_t)n + 8);
	assert_non_null(padded);
	memcpy(padded, "\n \r\n\r\n", 6);
	len = 6;
	for (i = 0; i < n; i++) {
		if (pem[i] == '\n')
			padded[len++] = '\r';
		padded[len++] = pem[i];
	}
	write_bytes(crl_path(&d, "b.pem"), padded, len);
	crl = read_ok(crl_path(&d, "b.pem"), T0 + 86400);
	assert_mixed_entries(crl);
	cf_pki_crl_free(crl);
	free(padded);
	BIO_free(bio);
	X509_CRL_free(x);
	ca_clear(&ca);
	crl_dir_clear(&d);
}

/* Anything but one CRL is BAD_CRL; a missing file is CF_ENOTFOUND; the size is capped. */
static void
test_pki_crl__not_a_crl(void **state)
{
	struct crl_dir d;
	struct ca ca;
	X509_CRL *x;
	cf_pki_crl *crl = NULL;
	cf_err err = CF_ERR_INIT;
	unsigned char *der, *buf, *cder = NULL;
	char *cpem = NULL;
	size_t len, clen = 0, i;
	int fd;
	static const char other_label[] = "-----BEGIN CERTIFICATE-----\nMIIB\n"
					  "-----END CERTIFICATE-----\n";
	static const char *const bad[] = { "garbage",	   "empty",	   "cert.pem",
					   "cert.der",	   "trailing.der", "two.der",
					   "short.der",	   "label.pem",	   "two.pem",
					   "cert-crl.pem", "crl-junk.pem" };
	BIO *bio;
	char *pem, *both;
	long plen;

	(void)state;
	crl_dir_make(&d);
	ca_make(&ca, "Test Root", NULL);
	x = pki_test_crl(ca.key, ca.cert, mixed, 2, T0, T0 + 60);
	der = crl_der(x, &len);
	write_bytes(crl_path(&d, "garbage"), "this is not a CRL\n", 18);
	write_bytes(crl_path(&d, "empty"), "", 0);
	/* A certificate, PEM and DER, is not a CRL. */
	assert_int_equal(cf_pki_cert_to_pem(&cpem, &clen, ca.cert, NULL), 0);
	write_bytes(crl_path(&d, "cert.pem"), cpem, clen);
	free(cpem);
	clen = (size_t)i2d_X509(ca.cert, &cder);
	write_bytes(crl_path(&d, "cert.der"), cder, clen);
	OPENSSL_free(cder);
	/* DER with one byte more, with a second CRL after it, and one byte short. */
	buf = malloc(2 * len);
	assert_non_null(buf);
	memcpy(buf, der, len);
	buf[len] = 0;
	write_bytes(crl_path(&d, "trailing.der"), buf, len + 1);
	memcpy(buf + len, der, len);
	write_bytes(crl_path(&d, "two.der"), buf, 2 * len);
	write_bytes(crl_path(&d, "short.der"), der, len - 1);
	free(buf);
	/* The PEM armour with another label. */
	write_bytes(crl_path(&d, "label.pem"), other_label, strlen(other_label));
	/*
	 * PEM bundles: two CRLs, a certificate then the CRL, the CRL then junk.
	 * Read as their first CRL they would hide the rest: refused.
	 */
	bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509_CRL(bio, x), 1);
	plen = BIO_get_mem_data(bio, &pem);
	both = malloc(2 * (size_t)plen + sizeof(other_label));
	assert_non_null(both);
	memcpy(both, pem, (size_t)plen);
	memcpy(both + plen, pem, (size_t)plen);
	write_bytes(crl_path(&d, "two.pem"), both, 2 * (size_t)plen);
	memcpy(both, other_label, strlen(other_label));
	memcpy(both + strlen(other_label), pem, (size_t)plen);
	write_bytes(crl_path(&d, "cert-crl.pem"), both, strlen(other_label) + (size_t)plen);
	memcpy(both, pem, (size_t)plen);
	memcpy(both + plen, "junk\n", 5);
	write_bytes(crl_path(&d, "crl-junk.pem"), both, (size_t)plen + 5);
	free(both);
	BIO_free(bio);
	for (i = 0; i < CF_ARRAY_LEN(bad); i++) {
		err = (cf_err)CF_ERR_INIT;
		if (cf_pki_crl_read(&crl, crl_path(&d, bad[i]), &err) != CF_EINVAL)
			fail_msg("%s: read, want CF_EINVAL", bad[i]);
		assert_null(crl);
		assert_non_null(err.reason);
		assert_string_equal(err.reason, "BAD_CRL");
		assert_non_null(strstr(err.msg, bad[i]));
		assert_int_equal(ERR_peek_error(), 0);
	}
	/* The same DER alone is fine: the refusals above are about what surrounds it. */
	write_bytes(crl_path(&d, "ok.der"), der, len);
	crl = read_ok(crl_path(&d, "ok.der"), T0 + 60);
	cf_pki_crl_free(crl);
	crl = NULL;
	assert_int_equal(cf_pki_crl_read(&crl, crl_path(&d, "missing.crl"), &err), CF_ENOTFOUND);
	assert_null(crl);
	/* Over CF_PKI_CRL_MAX (a sparse file: nothing is written). */
	fd = open(crl_path(&d, "huge.der"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)CF_PKI_CRL_MAX + 1), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(cf_pki_crl_read(&crl, crl_path(&d, "huge.der"), &err), CF_EINVAL);
	assert_null(crl);
	assert_non_null(err.reason);
	assert_string_equal(err.reason, "BAD_CRL");
	cf_pki_crl_free(NULL);
	OPENSSL_free(der);
	X509_CRL_free(x);
	ca_clear(&ca);
	crl_dir_clear(&d);
}

/*
 * signed_by needs both the issuer's name and its key: not a CA of the same
 * name with another key, not the same key under another name, not a CRL
 * whose signature was altered.
 */
static void
test_pki_crl__signed_by(void **state)
{
	struct crl_dir d;
	struct ca ca, twin, renamed;
	X509_CRL *x;
	cf_pki_crl *crl;
	unsigned char *der;
	size_t len;

	(void)state;
	crl_dir_make(&d);
	ca_make(&ca, "Test Root", NULL);
	ca_make(&twin, "Test Root", NULL);
	ca_make(&renamed, "Other Root", ca.key);
	x = pki_test_crl(ca.key, ca.cert, mixed, 3, T0, T0 + 60);
	pki_test_crl_write(x, crl_path(&d, "a.crl"), false);
	crl = read_ok(crl_path(&d, "a.crl"), T0 + 60);
	assert_true(cf_pki_crl_signed_by(crl, ca.cert));
	assert_false(cf_pki_crl_signed_by(crl, twin.cert));
	assert_int_equal(ERR_peek_error(), 0);
	assert_false(cf_pki_crl_signed_by(crl, renamed.cert));
	assert_int_equal(ERR_peek_error(), 0);
	cf_pki_crl_free(crl);
	/* The twin's own CRL is the twin's only. */
	X509_CRL_free(x);
	x = pki_test_crl(twin.key, twin.cert, mixed, 3, T0, T0 + 60);
	pki_test_crl_write(x, crl_path(&d, "twin.crl"), true);
	crl = read_ok(crl_path(&d, "twin.crl"), T0 + 60);
	assert_true(cf_pki_crl_signed_by(crl, twin.cert));
	assert_false(cf_pki_crl_signed_by(crl, ca.cert));
	cf_pki_crl_free(crl);
	/* The last byte of the DER is inside the signature's s: still a CRL, no longer signed. */
	der = crl_der(x, &len);
	der[len - 1] ^= 0x01;
	write_bytes(crl_path(&d, "flipped.der"), der, len);
	crl = read_ok(crl_path(&d, "flipped.der"), T0 + 60);
	assert_false(cf_pki_crl_signed_by(crl, twin.cert));
	assert_int_equal(ERR_peek_error(), 0);
	cf_pki_crl_free(crl);
	OPENSSL_free(der);
	X509_CRL_free(x);
	ca_clear(&renamed);
	ca_clear(&twin);
	ca_clear(&ca);
	crl_dir_clear(&d);
}

/* A CRL without nextUpdate and without entries: 0, nothing walked, nothing skipped. */
static void
test_pki_crl__empty_without_next_update(void **state)
{
	struct crl_dir d;
	struct ca ca;
	X509_CRL *x;
	cf_pki_crl *crl;
	struct seen s;
	size_t skipped = 99;

	(void)state;
	crl_dir_make(&d);
	ca_make(&ca, "Test Root", NULL);
	x = pki_test_crl(ca.key, ca.cert, NULL, 0, T0, 0);
	pki_test_crl_write(x, crl_path(&d, "a.crl"), true);
	crl = read_ok(crl_path(&d, "a.crl"), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(cf_pki_crl_foreach(crl, seen_cb, &s, &skipped), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(skipped, 0);
	assert_true(cf_pki_crl_signed_by(crl, ca.cert));
	cf_pki_crl_free(crl);
	X509_CRL_free(x);
	ca_clear(&ca);
	crl_dir_clear(&d);
}

/*
 * A CRL made by another tool: tests/data/crl/openssl-ca.crl (and .der) is
 * `openssl ca -gencrl` (OpenSSL 3.0, default_crl_days 36500) of the P-256
 * root openssl-ca.pem (subject O=certfleet, CN=OpenSSL CA) over an
 * index.txt with 00FF keyCompromise, 0ABC without reason, 0DEF valid,
 * DEAD removeFromCRL and 0123 certificateHold.
 */
static void
test_pki_crl__made_by_openssl_ca(void **state)
{
	static const char *const files[] = { "openssl-ca.crl", "openssl-ca.crl.der" };
	const char *root = getenv("CF_SOURCE_DIR");
	cf_pki_crl *crl = NULL;
	cf_err err = CF_ERR_INIT;
	char path[1024];
	char *pem = NULL;
	size_t len = 0, skipped = 0, i;
	X509 *ca = NULL;
	struct seen s;

	(void)state;
	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/tests/data/crl/openssl-ca.pem", root);
	assert_int_equal(cf_file_read(&pem, &len, path, 1 << 16, NULL), 0);
	assert_int_equal(cf_pki_cert_from_pem(&ca, pem, len, NULL), 0);
	for (i = 0; i < CF_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/tests/data/crl/%s", root, files[i]);
		if (cf_pki_crl_read(&crl, path, &err) != 0)
			fail_msg("%s: %s", path, err.msg);
		/* RFC 2253 puts the last RDN first. */
		assert_string_equal(cf_pki_crl_issuer(crl), "CN=OpenSSL CA,O=certfleet");
		/* 2126-10-29 19:28:06 UTC */
		assert_int_equal(cf_pki_crl_next_update(crl), 4948975686LL);
		assert_true(cf_pki_crl_signed_by(crl, ca));
		memset(&s, 0, sizeof(s));
		assert_int_equal(cf_pki_crl_foreach(crl, seen_cb, &s, &skipped), 0);
		assert_int_equal(skipped, 1);
		assert_int_equal(s.n, 3);
		assert_string_equal(s.serial[0], "ff");
		assert_string_equal(s.reason[0], "keyCompromise");
		assert_int_equal(s.at[0], 1699920000); /* 2023-11-14 */
		assert_string_equal(s.serial[1], "123");
		assert_string_equal(s.reason[1], "certificateHold");
		assert_int_equal(s.at[1], 1700179200);
		assert_string_equal(s.serial[2], "abc");
		assert_string_equal(s.reason[2], "unspecified");
		assert_int_equal(s.at[2], 1700006400);
		cf_pki_crl_free(crl);
		crl = NULL;
	}
	X509_free(ca);
	free(pem);
}

/* A non-zero return of the callback stops the walk and is returned. */
static void
test_pki_crl__callback_stops(void **state)
{
	struct crl_dir d;
	struct ca ca;
	X509_CRL *x;
	cf_pki_crl *crl;
	struct seen s;

	(void)state;
	crl_dir_make(&d);
	ca_make(&ca, "Test Root", NULL);
	x = pki_test_crl(ca.key, ca.cert, mixed, CF_ARRAY_LEN(mixed), T0, T0 + 60);
	pki_test_crl_write(x, crl_path(&d, "a.crl"), false);
	crl = read_ok(crl_path(&d, "a.crl"), T0 + 60);
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	assert_int_equal(cf_pki_crl_foreach(crl, seen_cb, &s, NULL), 42);
	assert_int_equal(s.n, 2);
	cf_pki_crl_free(crl);
	X509_CRL_free(x);
	ca_clear(&ca);
	crl_dir_clear(&d);
}

int
test_pki_crl_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_crl__pem_and_der),
		cmocka_unit_test(test_pki_crl__not_a_crl),
		cmocka_unit_test(test_pki_crl__signed_by),
		cmocka_unit_test(test_pki_crl__empty_without_next_update),
		cmocka_unit_test(test_pki_crl__made_by_openssl_ca),
		cmocka_unit_test(test_pki_crl__callback_stops),
	};

	return cmocka_run_group_tests_name("pki_crl", tests, NULL, NULL);
}
