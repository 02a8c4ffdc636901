/*
 * Integration: the certfleet binary against the real openssl command and a
 * real SQLite registry.
 *
 * Every case gets a fresh temporary directory (setup/teardown) holding the
 * data dir D and the files openssl makes. openssl is the independent
 * client: it makes the CSRs and external CAs, and checks what certfleet
 * issues (chain, extensions, validity, certificate ids). Nothing here
 * knows an answer in advance that certfleet or openssl could not get
 * wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "support/fleet.h"
#include "support/run.h"

#define MAX_ARGV 64
#define DAY      86400

static char *g_bin;
static char *g_src;
static size_t g_seq; /* for unique file names and serial numbers */

/* ---- fixture ---------------------------------------------------------- */

static int
group_setup(void **state)
{
	const char *sdir = getenv("CF_SOURCE_DIR");

	(void)state;
	if (sdir == NULL) {
		fprintf(stderr, "CF_SOURCE_DIR must be set (run through ctest)\n");
		return -1;
	}
	g_bin = cf_test_binary("cli/certfleet");
	g_src = strdup(sdir);
	return g_bin != NULL && g_src != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	free(g_bin);
	free(g_src);
	return 0;
}

static int
setup(void **state)
{
	cf_test_fleet *fx;
	int rc = cf_test_fleet_new(&fx, "certfleet-it", g_bin);

	*state = fx;
	return rc;
}

static int
teardown(void **state)
{
	return cf_test_fleet_free(*state);
}

/* ---- small checks --------------------------------------------------------- */

static void
assert_not_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) != NULL) {
		fprintf(stderr, "in:\n%s\n", hay);
		fail_msg("'%s' found, but must not be there", needle);
	}
}

/* The line after the one holding header, trimmed (kept), or fail. */
static const char *
line_after(cf_test_fleet *fx, const char *text, const char *header)
{
	const char *p = strstr(text, header), *end;

	if (p == NULL) {
		fprintf(stderr, "in:\n%s\n", text);
		fail_msg("'%s' not found", header);
	}
	p = strchr(p, '\n');
	assert_non_null(p);
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	end = strchr(p, '\n');
	if (end == NULL)
		end = p + strlen(p);
	return cf_test_keep(fx, strndup(p, (size_t)(end - p)));
}

/* The element of array whose key is value, or NULL. */
static json_t *
find_by(json_t *array, const char *key, const char *value)
{
	size_t i;
	json_t *row;

	assert_true(json_is_array(array));
	json_array_foreach (array, i, row) {
		json_t *v = json_object_get(row, key);

		if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
			return row;
	}
	return NULL;
}

/* "Nov 22 11:20:00 2026 GMT" (openssl's default date form) to a time_t. */
static time_t
parse_ossl_date(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char mon[4];
	const char *m;
	struct tm tm;
	int day, h, mi, sec, year;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%3s %d %d:%d:%d %d GMT", mon, &day, &h, &mi, &sec, &year) != 6)
		fail_msg("cannot parse the date '%s'", s);
	m = strstr(months, mon);
	assert_non_null(m);
	tm.tm_mon = (int)(m - months) / 3;
	tm.tm_mday = day;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_year = year - 1900;
	return timegm(&tm);
}

/* ---- certfleet and openssl steps ------------------------------------------ */

static void
quickstart(cf_test_fleet *fx)
{
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", "--quickstart", NULL);
}

static void
thing(cf_test_fleet *fx, const char *name)
{
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "thing", "create", name, NULL);
}

/* A new key and CSR made by openssl; keyspec is -newkey's argument and pkeyopt may be NULL. */
static const char *
make_csr_with(cf_test_fleet *fx, const char *name, const char *keyspec, const char *pkeyopt,
	      const char *subj, const char *extra, const char *extra2)
{
	const char *csr = cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.csr", name)));
	const char *key = cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.key", name)));
	const char *argv[MAX_ARGV];
	size_t n = 0;

	argv[n++] = "openssl";
	argv[n++] = "req";
	argv[n++] = "-new";
	argv[n++] = "-newkey";
	argv[n++] = keyspec;
	if (pkeyopt != NULL) {
		argv[n++] = "-pkeyopt";
		argv[n++] = pkeyopt;
	}
	argv[n++] = "-nodes";
	argv[n++] = "-keyout";
	argv[n++] = key;
	argv[n++] = "-out";
	argv[n++] = csr;
	argv[n++] = "-subj";
	argv[n++] = subj;
	if (extra != NULL)
		argv[n++] = extra;
	if (extra2 != NULL)
		argv[n++] = extra2;
	argv[n] = NULL;
	cf_test_fleet_run(fx, argv, CF_TEST_EXIT_OK);
	return csr;
}

static const char *
issue_status(cf_test_fleet *fx, const char *thing_name, const char *csr, const char *status)
{
	const char *id;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", thing_name, "--csr", csr,
			  "--status", status, NULL);
	id = cf_test_chomp(fx, fx->r.out);
	assert_true(cf_test_is_hex(id, 64));
	return id;
}

static size_t
count_of(cf_test_fleet *fx, const char *noun)
{
	json_t *rows = cf_test_certfleet_json(fx, noun, "list", NULL);

	assert_true(json_is_array(rows));
	return json_array_size(rows);
}

static size_t
cert_count(cf_test_fleet *fx)
{
	return count_of(fx, "cert");
}

static size_t
event_count(cf_test_fleet *fx)
{
	return count_of(fx, "events");
}

static const char *
cert_status(cf_test_fleet *fx, const char *id)
{
	return cf_test_jstr(cf_test_certfleet_json(fx, "cert", "describe", id, NULL), "status");
}

/* SHA-256 of a certificate's DER, computed by openssl. */
static const char *
ossl_cert_id(cf_test_fleet *fx, const char *pem)
{
	const char *der =
		cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("id-%zu.der", ++g_seq)));
	const char *line;

	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-outform", "der", "-out", der,
			NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "dgst", "-sha256", "-r", der, NULL);
	line = cf_test_chomp(fx, fx->r.out);
	assert_true(strlen(line) > 64);
	return cf_test_keep(fx, strndup(line, 64));
}

static const char *
ossl_text(cf_test_fleet *fx, const char *pem)
{
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-noout", "-text", NULL);
	return cf_test_keep(fx, strdup(fx->r.out));
}

static const char *
ossl_subject(cf_test_fleet *fx, const char *pem)
{
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-noout", "-subject", "-nameopt",
			"RFC2253", NULL);
	return cf_test_chomp(fx, fx->r.out);
}

/* The public key of a certificate or CSR as PEM, by openssl. */
static const char *
ossl_pubkey(cf_test_fleet *fx, const char *what, const char *path, const char *inform)
{
	cf_test_openssl(fx, CF_TEST_EXIT_OK, what, "-in", path, "-inform", inform, "-pubkey",
			"-noout", NULL);
	return cf_test_keep(fx, strdup(fx->r.out));
}

/* Write a CA's certificatePem (from ca describe) to a file. */
static const char *
ca_pem_file(cf_test_fleet *fx, const char *ca)
{
	json_t *o = cf_test_certfleet_json(fx, "ca", "describe", ca, NULL);
	const char *pem = cf_test_jstr(o, "certificatePem");
	const char *path = cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("ca-%s.pem", ca)));

	assert_int_equal(cf_test_file_write(path, pem, strlen(pem), 0644), 0);
	return path;
}

/* openssl verify of leaf against the quickstart root and one intermediate: its exit. */
static int
ossl_verify(cf_test_fleet *fx, const char *root, const char *intermediate, const char *leaf,
	    int want)
{
	int rc = cf_test_openssl(fx, want, "verify", "-CAfile", root, "-untrusted", intermediate,
				 leaf, NULL);

	if (rc == 0)
		cf_test_assert_contains(fx->r.out, ": OK");
	return rc;
}

/* ---- init ------------------------------------------------------------------ */

static void
assert_encrypted_key(cf_test_fleet *fx, const char *path)
{
	char *text = NULL;

	assert_int_equal(cf_test_file_mode(path), 0600);
	assert_int_equal(cf_test_file_read(&text, NULL, path, 1024 * 1024), 0);
	assert_non_null(strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
	assert_null(strstr(text, "-----BEGIN PRIVATE KEY-----"));
	free(text);
	(void)fx;
}

static void
test_cli_pki__init_quickstart(void **state)
{
	cf_test_fleet *fx = *state;
	json_t *cas, *root, *inter;
	const char *root_key = cf_test_dpath(fx, "offline-root/root.key.pem");
	const char *int_key = cf_test_dpath(fx, "ca/default.key.pem");
	const char *int_pem, *root_pub;

	quickstart(fx);
	cf_test_assert_contains(fx->r.err, "offline");
	cas = cf_test_certfleet_json(fx, "ca", "list", NULL);
	assert_int_equal(json_array_size(cas), 2);
	root = find_by(cas, "kind", "root");
	inter = find_by(cas, "name", "default");
	assert_non_null(root);
	assert_non_null(inter);
	assert_string_equal(cf_test_jstr(root, "status"), "ACTIVE");
	assert_string_equal(cf_test_jstr(inter, "status"), "ACTIVE");
	assert_string_equal(cf_test_jstr(inter, "kind"), "intermediate");
	assert_true(json_is_true(json_object_get(inter, "default")));
	assert_false(json_is_true(json_object_get(root, "default")));
	assert_string_equal(cf_test_jstr(inter, "parent"), cf_test_jstr(root, "name"));

	/* Files: modes and encryption. */
	assert_int_equal(cf_test_file_mode(fx->data), 0700);
	assert_encrypted_key(fx, root_key);
	assert_encrypted_key(fx, int_key);
	assert_int_equal(cf_test_file_mode(cf_test_dpath(fx, "secrets/ca.pass")), 0600);
	assert_int_equal(cf_test_file_mode(cf_test_dpath(fx, "offline-root/root.pass")), 0600);

	/* The keys decrypt with their passphrases, and only with them. */
	cf_test_openssl(
		fx, CF_TEST_EXIT_OK, "pkey", "-in", int_key, "-passin",
		cf_test_keep(fx, cf_test_printf("file:%s", cf_test_dpath(fx, "secrets/ca.pass"))),
		"-noout", NULL);
	assert_true(cf_test_openssl(fx, -1, "pkey", "-in", int_key, "-passin", "pass:wrong",
				    "-noout", NULL) != 0);
	cf_test_openssl(
		fx, CF_TEST_EXIT_OK, "pkey", "-in", root_key, "-passin",
		cf_test_keep(
			fx, cf_test_printf("file:%s", cf_test_dpath(fx, "offline-root/root.pass"))),
		"-pubout", NULL);
	root_pub = cf_test_keep(fx, strdup(fx->r.out));
	/* ... and the root key is the key of root.pem, which is self-signed. */
	assert_string_equal(
		root_pub,
		ossl_pubkey(fx, "x509", cf_test_dpath(fx, "offline-root/root.pem"), "PEM"));
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "verify", "-CAfile",
			cf_test_dpath(fx, "offline-root/root.pem"),
			cf_test_dpath(fx, "offline-root/root.pem"), NULL);
	int_pem = ca_pem_file(fx, "default");
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "verify", "-CAfile",
			cf_test_dpath(fx, "offline-root/root.pem"), int_pem, NULL);
	cf_test_assert_contains(ossl_text(fx, int_pem), "CA:TRUE");

	/* Running it again keeps what exists. */
	quickstart(fx);
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "ca", "list", NULL)), 2);
}

/* ---- issuance ---------------------------------------------------------------- */

static void
test_cli_pki__issue_p256_checked_by_openssl(void **state)
{
	cf_test_fleet *fx = *state;
	const char *csr, *cert = cf_test_tpath(fx, "cert.pem"), *id, *text, *root, *inter, *v;
	const char *inter_ski;
	json_t *d;
	time_t now, nb, na;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=x");
	id = cf_test_cert_issue(fx, "t1", csr, cert, NULL);

	/* The id is the SHA-256 of the DER. */
	assert_string_equal(id, ossl_cert_id(fx, cert));

	/* The chain verifies: root from the offline dir, intermediate from the registry. */
	root = cf_test_dpath(fx, "offline-root/root.pem");
	inter = ca_pem_file(fx, "default");
	ossl_verify(fx, root, inter, cert, CF_TEST_EXIT_OK);
	/* ... and not without the intermediate. */
	assert_true(cf_test_openssl(fx, -1, "verify", "-CAfile", root, cert, NULL) != 0);

	/* The subject is the thing only, whatever the CSR asked. */
	assert_string_equal(ossl_subject(fx, cert), "subject=CN=t1");
	text = ossl_text(fx, cert);
	cf_test_assert_contains(text, "URI:urn:certfleet:thing:t1");
	assert_not_contains(text, "CN = x");
	assert_string_equal(line_after(fx, text, "X509v3 Extended Key Usage:"),
			    "TLS Web Client Authentication");
	assert_string_equal(line_after(fx, text, "X509v3 Key Usage: critical"),
			    "Digital Signature");
	assert_string_equal(line_after(fx, text, "X509v3 Basic Constraints: critical"), "CA:FALSE");
	cf_test_assert_contains(text, "X509v3 Subject Key Identifier:");
	v = line_after(fx, text, "X509v3 Authority Key Identifier:");
	if (strncmp(v, "keyid:", 6) == 0)
		v += 6;
	/* The AKI names the intermediate's SKI. */
	inter_ski = line_after(fx, ossl_text(fx, inter), "X509v3 Subject Key Identifier:");
	assert_string_equal(v, inter_ski);
	assert_not_contains(text, "CRL Distribution Points");
	assert_not_contains(text, "Authority Information Access");
	/* The certificate carries the CSR's key. */
	assert_string_equal(ossl_pubkey(fx, "x509", cert, "PEM"),
			    ossl_pubkey(fx, "req", csr, "PEM"));

	/* Serial: as the registry has it (it is random: compare, never predict). */
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", cert, "-noout", "-serial", NULL);
	v = cf_test_chomp(fx, fx->r.out);
	assert_true(strncmp(v, "serial=", 7) == 0);
	v += 7;
	assert_true(strlen(v) >= 16);
	d = cf_test_certfleet_json(fx, "cert", "describe", id, NULL);
	assert_true(strcasecmp(cf_test_jstr(d, "serial"), v) == 0 ||
		    strcasecmp(cf_test_jstr(d, "serial"), v + strspn(v, "0")) == 0);
	assert_string_equal(cf_test_jstr(d, "certificateId"), id);
	assert_string_equal(cf_test_jstr(d, "status"), "ACTIVE");
	assert_string_equal(cf_test_jstr(d, "thing"), "t1");
	assert_string_equal(cf_test_jstr(d, "ca"), "default");
	assert_string_equal(cf_test_jstr(d, "keyType"), "EC-P256");
	{
		char *pem = NULL;

		assert_int_equal(cf_test_file_read(&pem, NULL, cert, 65536), 0);
		assert_string_equal(cf_test_jstr(d, "certificatePem"), pem);
		free(pem);
	}

	/* Validity: 365 days, notBefore backdated about 5 minutes. */
	now = time(NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", cert, "-noout", "-startdate", NULL);
	nb = parse_ossl_date(cf_test_chomp(fx, fx->r.out) + strlen("notBefore="));
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", cert, "-noout", "-enddate", NULL);
	na = parse_ossl_date(cf_test_chomp(fx, fx->r.out) + strlen("notAfter="));
	if (now - nb < 240 || now - nb > 420)
		fail_msg("notBefore is %lld s before now, not about 300", (long long)(now - nb));
	if (llabs((long long)(na - now) - 365LL * DAY) > 600)
		fail_msg("notAfter is %lld s after now, not about 365 days", (long long)(na - now));

	/* The thing lists the certificate. */
	d = cf_test_certfleet_json(fx, "thing", "describe", "t1", NULL);
	assert_non_null(find_by(json_object_get(d, "certificates"), "certificateId", id));
}

static void
test_cli_pki__crl_and_ocsp_urls_from_config(void **state)
{
	cf_test_fleet *fx = *state;
	const char *csr, *plain = cf_test_tpath(fx, "plain.pem"),
			 *urls = cf_test_tpath(fx, "urls.pem"), *text;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	cf_test_cert_issue(fx, "t1", csr, plain, NULL);
	text = ossl_text(fx, plain);
	assert_not_contains(text, "CRL Distribution Points");
	assert_not_contains(text, "OCSP");

	cf_test_config_set(fx, "crl_url", "http://crl.example.test/default.crl", 0640);
	cf_test_config_set(fx, "ocsp_url", "http://ocsp.example.test/", 0640);
	cf_test_cert_issue(fx, "t1", csr, urls, NULL);
	text = ossl_text(fx, urls);
	cf_test_assert_contains(text, "X509v3 CRL Distribution Points:");
	cf_test_assert_contains(text, "URI:http://crl.example.test/default.crl");
	cf_test_assert_contains(text, "Authority Information Access:");
	cf_test_assert_contains(text, "OCSP - URI:http://ocsp.example.test/");
	ossl_verify(fx, cf_test_dpath(fx, "offline-root/root.pem"), ca_pem_file(fx, "default"),
		    urls, CF_TEST_EXIT_OK);
}

/* A CSR from the fixtures when the pki engineer committed it, else made now. */
static const char *
fixture(cf_test_fleet *fx, const char *name)
{
	const char *path = cf_test_keep(fx, cf_test_printf("%s/tests/data/csr/%s", g_src, name));

	/* The fixtures are committed: a missing one is a broken checkout, not a skip. */
	if (access(path, R_OK) != 0)
		fail_msg("missing fixture %s", path);
	return path;
}

struct keycase {
	const char *thing;
	const char *fixture;
	const char *keyspec, *pkeyopt;
	const char *key_type; /* as the registry names it */
	bool der;
};

static void
issue_and_verify(cf_test_fleet *fx, const struct keycase *k, const char *csr, const char *root,
		 const char *inter)
{
	const char *cert = cf_test_tpath(
		fx, cf_test_keep(fx, cf_test_printf("%s-%zu.pem", k->thing, ++g_seq)));
	const char *id;

	id = cf_test_cert_issue(fx, k->thing, csr, cert, NULL);
	assert_string_equal(id, ossl_cert_id(fx, cert));
	ossl_verify(fx, root, inter, cert, CF_TEST_EXIT_OK);
	assert_string_equal(ossl_pubkey(fx, "x509", cert, "PEM"),
			    ossl_pubkey(fx, "req", csr, k->der ? "DER" : "PEM"));
	assert_string_equal(ossl_subject(fx, cert),
			    cf_test_keep(fx, cf_test_printf("subject=CN=%s", k->thing)));
	assert_string_equal(cert_status(fx, id), "ACTIVE");
	assert_string_equal(
		cf_test_jstr(cf_test_certfleet_json(fx, "cert", "describe", id, NULL), "keyType"),
		k->key_type);
}

static void
test_cli_pki__issue_other_key_types(void **state)
{
	cf_test_fleet *fx = *state;
	static const struct keycase cases[] = {
		{ "k-p384", "good-p384.pem", "ec", "ec_paramgen_curve:P-384", "EC-P384", false },
		{ "k-ed25519", "good-ed25519.pem", "ed25519", NULL, "ED25519", false },
		{ "k-rsa2048", "good-rsa2048.pem", "rsa:2048", NULL, "RSA-2048", false },
		{ "k-der", "good-der-p256.der", "ec", "ec_paramgen_curve:P-256", "EC-P256", true },
	};
	const char *root, *inter, *csr, *fix;
	size_t i, issued = 0;

	quickstart(fx);
	root = cf_test_dpath(fx, "offline-root/root.pem");
	inter = ca_pem_file(fx, "default");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct keycase *k = &cases[i];

		thing(fx, k->thing);
		/* A key made now by openssl ... */
		csr = make_csr_with(fx, k->thing, k->keyspec, k->pkeyopt, "/CN=d",
				    k->der ? "-outform" : NULL, k->der ? "der" : NULL);
		if (k->der) {
			/* Really DER: openssl reads it only as such. */
			assert_true(cf_test_openssl(fx, -1, "req", "-in", csr, "-noout", NULL) !=
				    0);
			cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-in", csr, "-inform", "DER",
					"-noout", "-verify", NULL);
			cf_test_assert_contains(fx->r.err, "verify OK");
		}
		issue_and_verify(fx, k, csr, root, inter);
		issued++;
		/* ... and the committed fixture of the same kind. */
		fix = fixture(fx, k->fixture);
		issue_and_verify(fx, k, fix, root, inter);
		issued++;
	}
	assert_int_equal(cert_count(fx), issued);
}

/* ---- refused CSRs ---------------------------------------------------------------- */

struct badcase {
	const char *name;
	const char *path;
	const char *reason;
};

/* Each CSR is refused with exit 6 and its reason, and nothing reaches the registry. */
static void
check_refused(cf_test_fleet *fx, const struct badcase *cases, size_t n)
{
	const char *out = cf_test_tpath(fx, "refused.pem");
	size_t certs, events, i;

	certs = cert_count(fx);
	events = event_count(fx);
	for (i = 0; i < n; i++) {
		cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "cert", "issue", "--thing", "victim",
				  "--csr", cases[i].path, "--out", out, NULL);
		if (strstr(fx->r.err, cases[i].reason) == NULL)
			fail_msg("%s: stderr '%s' lacks %s", cases[i].name, fx->r.err,
				 cases[i].reason);
		assert_int_equal(access(out, F_OK), -1);
		assert_int_equal(cert_count(fx), certs);
		assert_int_equal(event_count(fx), events);
	}
}

static void
test_cli_pki__bad_csr_fixtures_refused(void **state)
{
	cf_test_fleet *fx = *state;
	static const struct {
		const char *file, *reason;
	} want[] = {
		{ "bad-truncated.pem", "[BAD_CSR]" },
		{ "bad-garbage.pem", "[BAD_CSR]" },
		{ "bad-tampered-signature.pem", "[BAD_SIGNATURE]" },
		{ "bad-rsa1024.pem", "[WEAK_KEY]" },
		{ "bad-p192.pem", "[WEAK_KEY]" },
		{ "bad-secp256k1.pem", "[WEAK_KEY]" },
		{ "bad-sha1.pem", "[WEAK_KEY]" },
		{ "bad-trailing-garbage.pem", "[BAD_CSR]" },
	};
	struct badcase cases[sizeof(want) / sizeof(want[0])];
	size_t i, n = 0;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cases[n].name = want[i].file;
		cases[n].path = fixture(fx, want[i].file);
		cases[n].reason = want[i].reason;
		n++;
	}
	quickstart(fx);
	thing(fx, "victim");
	check_refused(fx, cases, n);
}

/* Write the PEM text of path with its base64 body cut in half. */
static void
write_truncated(cf_test_fleet *fx, const char *from, const char *to)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(cf_test_file_read(&text, &len, from, 65536), 0);
	assert_int_equal(cf_test_file_write(to, text, len / 2, 0644), 0);
	free(text);
	(void)fx;
}

/* Change one base64 digit in the last line of the body: the signature's last bytes. */
static void
write_tampered(cf_test_fleet *fx, const char *from, const char *to)
{
	char *text = NULL, *end, *p;
	size_t len = 0, n;

	assert_int_equal(cf_test_file_read(&text, &len, from, 65536), 0);
	end = strstr(text, "-----END");
	assert_non_null(end);
	/* Back over "\n", any '=' padding, and three more digits (the last may be partial). */
	p = end - 1;
	while (p > text && (*p == '\n' || *p == '='))
		p--;
	for (n = 0; n < 3 && p > text; p--) {
		if (*p != '\n')
			n++;
	}
	while (p > text && *p == '\n')
		p--;
	assert_true(p > text && (isalnum((unsigned char)*p) || *p == '+' || *p == '/'));
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(cf_test_file_write(to, text, len, 0644), 0);
	free(text);
	(void)fx;
}

/* A 1 MiB file that looks like a PEM CSR. */
static void
write_huge(const char *to)
{
	FILE *fp = fopen(to, "w");
	size_t i;

	assert_non_null(fp);
	fputs("-----BEGIN CERTIFICATE REQUEST-----\n", fp);
	for (i = 0; i < (1024 * 1024) / 65; i++)
		fputs("MIIBVzCB/wIBADAdMRswGQYDVQQDDBJ0aGluZy1wMjU2LWZpeHR1cmUwWTATBgcq\n", fp);
	fputs("-----END CERTIFICATE REQUEST-----\n", fp);
	assert_int_equal(fclose(fp), 0);
}

static void
test_cli_pki__bad_csr_generated_refused(void **state)
{
	cf_test_fleet *fx = *state;
	const char *good, *p;
	struct badcase cases[9];
	size_t n = 0;
	char *text = NULL;
	size_t len = 0;

	quickstart(fx);
	thing(fx, "victim");
	good = cf_test_csr_new(fx, "good", "ec", "/CN=victim");

	p = cf_test_tpath(fx, "truncated.pem");
	write_truncated(fx, good, p);
	cases[n++] = (struct badcase){ "truncated", p, "[BAD_CSR]" };

	p = cf_test_tpath(fx, "garbage.pem");
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "rand", "-base64", "-out",
			cf_test_tpath(fx, "rand.b64"), "300", NULL);
	assert_int_equal(cf_test_file_read(&text, &len, cf_test_tpath(fx, "rand.b64"), 65536), 0);
	assert_int_equal(cf_test_file_write(p, "-----BEGIN CERTIFICATE REQUEST-----\n", 36, 0644),
			 0);
	assert_int_equal(cf_test_file_append(p, text), 0);
	assert_int_equal(cf_test_file_append(p, "-----END CERTIFICATE REQUEST-----\n"), 0);
	free(text);
	cases[n++] = (struct badcase){ "garbage", p, "[BAD_CSR]" };

	p = cf_test_tpath(fx, "huge.pem");
	write_huge(p);
	cases[n++] = (struct badcase){ "1 MiB", p, "[BAD_CSR]" };

	p = cf_test_tpath(fx, "tampered.pem");
	write_tampered(fx, good, p);
	/*
	 * openssl agrees: it still parses, but the signature is now wrong
	 * (openssl 3.0 req -verify exits 0 either way: read what it says).
	 */
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-in", p, "-noout", NULL);
	cf_test_openssl(fx, -1, "req", "-in", p, "-noout", "-verify", NULL);
	cf_test_assert_contains(fx->r.err, "verify failure");
	cases[n++] = (struct badcase){ "tampered", p, "[BAD_SIGNATURE]" };

	p = make_csr_with(fx, "rsa1024", "rsa:1024", NULL, "/CN=victim", NULL, NULL);
	cases[n++] = (struct badcase){ "rsa1024", p, "[WEAK_KEY]" };
	p = make_csr_with(fx, "p192", "ec", "ec_paramgen_curve:prime192v1", "/CN=victim", NULL,
			  NULL);
	cases[n++] = (struct badcase){ "p192", p, "[WEAK_KEY]" };
	p = make_csr_with(fx, "k1", "ec", "ec_paramgen_curve:secp256k1", "/CN=victim", NULL, NULL);
	cases[n++] = (struct badcase){ "secp256k1", p, "[WEAK_KEY]" };
	p = make_csr_with(fx, "sha1", "ec", "ec_paramgen_curve:P-256", "/CN=victim", "-sha1", NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-in", p, "-noout", "-text", NULL);
	cf_test_assert_contains(fx->r.out, "ecdsa-with-SHA1");
	cases[n++] = (struct badcase){ "sha1", p, "[WEAK_KEY]" };

	p = cf_test_tpath(fx, "trailing.pem");
	assert_int_equal(cf_test_file_read(&text, &len, good, 65536), 0);
	assert_int_equal(cf_test_file_write(p, text, len, 0644), 0);
	assert_int_equal(cf_test_file_append(p, "trailing garbage\n"), 0);
	free(text);
	cases[n++] = (struct badcase){ "trailing garbage", p, "[BAD_CSR]" };

	check_refused(fx, cases, n);
	/* The good CSR the bad ones were made from does issue. */
	cf_test_cert_issue(fx, "victim", good, NULL, NULL);
	assert_int_equal(cert_count(fx), 1);
}

static void
test_cli_pki__subject_comes_from_the_registry(void **state)
{
	cf_test_fleet *fx = *state;
	const char *csr, *cert, *text, *fix;

	quickstart(fx);

	/* An empty subject is accepted: the thing's name is used. */
	thing(fx, "t-empty");
	csr = cf_test_csr_new(fx, "empty", "ec", "/");
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-in", csr, "-noout", "-subject", NULL);
	assert_string_equal(cf_test_chomp(fx, fx->r.out), "subject=");
	cert = cf_test_tpath(fx, "empty.pem");
	cf_test_cert_issue(fx, "t-empty", csr, cert, NULL);
	assert_string_equal(ossl_subject(fx, cert), "subject=CN=t-empty");
	cf_test_assert_contains(ossl_text(fx, cert), "URI:urn:certfleet:thing:t-empty");

	/* A CSR asking for another thing's name gets the requested thing's. */
	thing(fx, "real-thing");
	thing(fx, "other-thing");
	csr = cf_test_csr_new(fx, "other", "ec", "/CN=other-thing");
	cert = cf_test_tpath(fx, "other.pem");
	cf_test_cert_issue(fx, "real-thing", csr, cert, NULL);
	assert_string_equal(ossl_subject(fx, cert), "subject=CN=real-thing");
	text = ossl_text(fx, cert);
	cf_test_assert_contains(text, "URI:urn:certfleet:thing:real-thing");
	assert_not_contains(text, "other-thing");
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "cert", "list", "--thing",
								"other-thing", NULL)),
			 0);

	/* The committed fixtures of both kinds. */
	fix = fixture(fx, "empty-subject.pem");
	cert = cf_test_tpath(fx, "fix-empty.pem");
	cf_test_cert_issue(fx, "t-empty", fix, cert, NULL);
	assert_string_equal(ossl_subject(fx, cert), "subject=CN=t-empty");
	fix = fixture(fx, "other-thing-cn.pem");
	cert = cf_test_tpath(fx, "fix-other.pem");
	cf_test_cert_issue(fx, "real-thing", fix, cert, NULL);
	assert_string_equal(ossl_subject(fx, cert), "subject=CN=real-thing");
}

static void
test_cli_pki__issue_not_found_and_retired(void **state)
{
	cf_test_fleet *fx = *state;
	const char *csr;
	size_t certs, events;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	certs = cert_count(fx);
	events = event_count(fx);

	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "issue", "--thing", "nobody", "--csr",
			  csr, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--ca", "no-such-ca", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--policy", "no-such-policy", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "issue", "--thing", "t1", "--csr",
			  cf_test_tpath(fx, "no-such-file.csr"), NULL);
	assert_int_equal(cert_count(fx), certs);
	assert_int_equal(event_count(fx), events);

	/* The same request works against what exists ... */
	cf_test_cert_issue(fx, "t1", csr, NULL, NULL);
	/* ... until the CA is retired. */
	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_OK, "ca", "retire", "default", NULL);
	assert_string_equal(cf_test_jstr(cf_test_json_out(fx), "status"), "RETIRED");
	events = event_count(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--ca", "default", NULL);
	assert_int_equal(cert_count(fx), certs + 1);
	assert_int_equal(event_count(fx), events);
	/* The root never issues device certificates: it has no key here. */
	assert_true(cf_test_certfleet(fx, CF_TEST_ANY_EXIT, "cert", "issue", "--thing", "t1",
				      "--csr", csr, "--ca", "root", NULL) != 0);
	assert_int_equal(cert_count(fx), certs + 1);
	/* A retired CA stops being the default issuer, and the error says so. */
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "issue", "--thing", "t1", "--csr", csr,
			  NULL);
	cf_test_assert_contains(fx->r.err, "no default CA is set");
}

/* ---- CA lifecycle -------------------------------------------------------------- */

/* notAfter - notBefore of a certificate, in days, by openssl. */
static double
ossl_validity_days(cf_test_fleet *fx, const char *pem)
{
	time_t nb, na;

	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-noout", "-startdate", NULL);
	nb = parse_ossl_date(cf_test_chomp(fx, fx->r.out) + strlen("notBefore="));
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", pem, "-noout", "-enddate", NULL);
	na = parse_ossl_date(cf_test_chomp(fx, fx->r.out) + strlen("notAfter="));
	return (double)(na - nb) / DAY;
}

/*
 * Without --quickstart: a root made with init-root, two intermediates, the
 * default issuer moved between them, --days and its cap at the CA's expiry,
 * a revoked CA that issues nothing, and a thing that cannot be deleted while
 * a certificate of its is live.
 */
static void
test_cli_pki__ca_lifecycle(void **state)
{
	cf_test_fleet *fx = *state;
	const char *pass = cf_test_tpath(fx, "root.pass");
	const char *root_dir = cf_test_tpath(fx, "root");
	const char *root_key, *root_pem, *csr, *id, *a_pem, *b_pem, *leaf;
	json_t *cas;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", NULL);
	assert_int_equal(cf_test_file_write(pass, "correct horse\n", 14, 0600), 0);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "init-root", "--name", "r", "--out-dir",
			  root_dir, "--passphrase-file", pass, "--cn", "Test Root", "--key-type",
			  "EC-P256", NULL);
	root_key = cf_test_tpath(fx, "root/r.key.pem");
	root_pem = cf_test_tpath(fx, "root/r.pem");
	assert_encrypted_key(fx, root_key);
	/* The root key never enters the data dir. */
	assert_int_equal(access(cf_test_dpath(fx, "ca/r.key.pem"), F_OK), -1);
	/* A passphrase file others can read is refused. */
	assert_int_equal(chmod(pass, 0644), 0);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "ca", "create-intermediate", "--name", "a",
			  "--root-key", root_key, "--root-cert", root_pem, "--root-passphrase-file",
			  pass, NULL);
	assert_int_equal(chmod(pass, 0600), 0);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "create-intermediate", "--name", "a", "--days",
			  "30", "--root-key", root_key, "--root-cert", root_pem,
			  "--root-passphrase-file", pass, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "create-intermediate", "--name", "b",
			  "--key-type", "EC-P384", "--root-key", root_key, "--root-cert", root_pem,
			  "--root-passphrase-file", pass, NULL);
	cas = cf_test_certfleet_json(fx, "ca", "list", NULL);
	assert_true(json_is_true(json_object_get(find_by(cas, "name", "a"), "default")));
	assert_false(json_is_true(json_object_get(find_by(cas, "name", "b"), "default")));
	assert_string_equal(cf_test_jstr(find_by(cas, "name", "b"), "keyType"), "EC-P384");
	a_pem = ca_pem_file(fx, "a");
	b_pem = ca_pem_file(fx, "b");

	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	/* --days is honoured ... */
	leaf = cf_test_tpath(fx, "ten.pem");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--days", "10", "--out", leaf, NULL);
	assert_true(ossl_validity_days(fx, leaf) > 10.0 && ossl_validity_days(fx, leaf) < 10.01);
	ossl_verify(fx, root_pem, a_pem, leaf, CF_TEST_EXIT_OK);
	/* ... and capped at the issuing CA's expiry (a lives 30 days). */
	leaf = cf_test_tpath(fx, "long.pem");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--days", "3650", "--out", leaf, NULL);
	assert_true(ossl_validity_days(fx, leaf) < 30.01);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-in", leaf, "-noout", "-checkend", "0", NULL);

	/* The default moves to b: a certificate issued without --ca chains to b. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "set-default", "b", NULL);
	leaf = cf_test_tpath(fx, "by-b.pem");
	cf_test_cert_issue(fx, "t1", csr, leaf, NULL);
	ossl_verify(fx, root_pem, b_pem, leaf, CF_TEST_EXIT_OK);
	ossl_verify(fx, root_pem, a_pem, leaf, 2);
	/* The root is never a default issuer; an unknown CA is not found. */
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "ca", "set-default", "r", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "ca", "set-default", "nope", NULL);

	/* Revoking b: final, no issuance, no longer the default. */
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "ca", "revoke", "b", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "ca", "revoke", "b", "--reason", "because", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "revoke", "b", "--reason", "keyCompromise",
			  NULL);
	cas = cf_test_certfleet_json(fx, "ca", "list", NULL);
	assert_string_equal(cf_test_jstr(find_by(cas, "name", "b"), "status"), "REVOKED");
	assert_false(json_is_true(json_object_get(find_by(cas, "name", "b"), "default")));
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--ca", "b", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "ca", "set-default", "b", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "ca", "retire", "b", NULL);

	/* A thing with a live certificate stays; once none is live it goes. */
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "thing", "delete", "t1", NULL);
	json_t *certs = cf_test_certfleet_json(fx, "cert", "list", "--thing", "t1", "--status",
					       "ACTIVE", NULL);
	size_t i;
	json_t *c;

	assert_int_equal(json_array_size(certs), 3);
	json_array_foreach (certs, i, c) {
		cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "revoke",
				  cf_test_jstr(c, "certificateId"), "--reason",
				  "cessationOfOperation", NULL);
	}
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "thing", "delete", "t1", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "thing", "describe", "t1", NULL);
	/* Its certificates stay in history, and cannot be brought back. */
	assert_int_equal(
		json_array_size(cf_test_certfleet_json(fx, "cert", "list", "--thing", "t1", NULL)),
		3);
	id = cf_test_jstr(json_array_get(certs, 0), "certificateId");
	cf_test_certfleet(fx, CF_TEST_EXIT_STATE, "cert", "activate", id, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

/* An intermediate made elsewhere, imported with its key (re-encrypted here). */
static void
test_cli_pki__ca_import_with_key(void **state)
{
	cf_test_fleet *fx = *state;
	const char *root_key = cf_test_dpath(fx, "offline-root/root.key.pem");
	const char *root_pem = cf_test_dpath(fx, "offline-root/root.pem");
	const char *root_pass = cf_test_dpath(fx, "offline-root/root.pass");
	const char *ext_key = cf_test_tpath(fx, "x.key"), *ext_csr = cf_test_tpath(fx, "x.csr");
	const char *ext_pem = cf_test_tpath(fx, "x.pem"), *ext_pass = cf_test_tpath(fx, "x.pass");
	const char *ext_cnf = cf_test_tpath(fx, "x.cnf"), *csr, *leaf;
	static const char ext[] = "[v3]\nbasicConstraints=critical,CA:TRUE,pathlen:0\n"
				  "keyUsage=critical,keyCertSign,cRLSign\n"
				  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

	quickstart(fx);
	assert_int_equal(cf_test_file_write(ext_pass, "imported\n", 9, 0600), 0);
	assert_int_equal(cf_test_file_write(ext_cnf, ext, strlen(ext), 0644), 0);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "genpkey", "-algorithm", "EC", "-pkeyopt",
			"ec_paramgen_curve:P-256", "-aes-256-cbc", "-pass",
			cf_test_keep(fx, cf_test_printf("file:%s", ext_pass)), "-out", ext_key,
			NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-new", "-key", ext_key, "-passin",
			cf_test_keep(fx, cf_test_printf("file:%s", ext_pass)), "-subj",
			"/CN=imported CA", "-out", ext_csr, NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-req", "-in", ext_csr, "-CA", root_pem,
			"-CAkey", root_key, "-passin",
			cf_test_keep(fx, cf_test_printf("file:%s", root_pass)), "-days", "100",
			"-extfile", ext_cnf, "-extensions", "v3", "-out", ext_pem, NULL);
	/* The key must come with its passphrase, and must match. */
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "ca", "import", "--name", "x", "--cert", ext_pem,
			  "--key", ext_key, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "ca", "import", "--name", "x", "--cert", ext_pem,
			  "--key", cf_test_dpath(fx, "ca/default.key.pem"), "--key-passphrase-file",
			  cf_test_dpath(fx, "secrets/ca.pass"), NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "import", "--name", "x", "--cert", ext_pem,
			  "--key", ext_key, "--key-passphrase-file", ext_pass, NULL);
	assert_encrypted_key(fx, cf_test_dpath(fx, "ca/x.key.pem"));
	/* Re-encrypted with the data dir's passphrase, not the one it came with. */
	cf_test_openssl(
		fx, CF_TEST_EXIT_OK, "pkey", "-in", cf_test_dpath(fx, "ca/x.key.pem"), "-passin",
		cf_test_keep(fx, cf_test_printf("file:%s", cf_test_dpath(fx, "secrets/ca.pass"))),
		"-noout", NULL);
	cf_test_openssl(fx, 1, "pkey", "-in", cf_test_dpath(fx, "ca/x.key.pem"), "-passin",
			cf_test_keep(fx, cf_test_printf("file:%s", ext_pass)), "-noout", NULL);
	assert_string_equal(
		cf_test_jstr(cf_test_certfleet_json(fx, "ca", "describe", "x", NULL), "parent"),
		"root");

	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	leaf = cf_test_tpath(fx, "leaf.pem");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--ca", "x", "--out", leaf, NULL);
	ossl_verify(fx, root_pem, ext_pem, leaf, CF_TEST_EXIT_OK);
	/* A second import under the same name is refused. */
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "ca", "import", "--name", "x", "--cert", ext_pem,
			  "--key", ext_key, "--key-passphrase-file", ext_pass, NULL);
}

/* ---- status transitions -------------------------------------------------------- */

static const char *
cert_in_status(cf_test_fleet *fx, const char *csr, const char *status)
{
	const char *id;

	if (strcmp(status, "REVOKED") == 0) {
		id = issue_status(fx, "t1", csr, "ACTIVE");
		cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "revoke", id, "--reason",
				  "superseded", NULL);
	} else {
		id = issue_status(fx, "t1", csr, status);
	}
	assert_string_equal(cert_status(fx, id), status);
	return id;
}

static void
test_cli_pki__status_transitions(void **state)
{
	cf_test_fleet *fx = *state;
	static const char *const statuses[] = { "PENDING_ACTIVATION", "ACTIVE", "INACTIVE",
						"REVOKED" };
	static const struct {
		const char *verb, *to;
	} verbs[] = { { "activate", "ACTIVE" },
		      { "deactivate", "INACTIVE" },
		      { "revoke", "REVOKED" } };
	/* allowed[from][verb], from store.h: REVOKED is final, no move to the same status. */
	static const bool allowed[4][3] = {
		{ true, true, true },    /* PENDING_ACTIVATION */
		{ false, true, true },   /* ACTIVE */
		{ true, false, true },   /* INACTIVE */
		{ false, false, false }, /* REVOKED */
	};
	const char *csr, *id;
	size_t f, v, events;
	json_t *o;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	for (f = 0; f < 4; f++) {
		for (v = 0; v < 3; v++) {
			id = cert_in_status(fx, csr, statuses[f]);
			events = event_count(fx);
			if (strcmp(verbs[v].verb, "revoke") == 0)
				cf_test_certfleet_json_want(
					fx, allowed[f][v] ? CF_TEST_EXIT_OK : CF_TEST_EXIT_STATE,
					"cert", "revoke", id, "--reason", "keyCompromise", "--why",
					"test", NULL);
			else
				cf_test_certfleet_json_want(
					fx, allowed[f][v] ? CF_TEST_EXIT_OK : CF_TEST_EXIT_STATE,
					"cert", verbs[v].verb, id, "--why", "test", NULL);
			if (allowed[f][v]) {
				o = cf_test_json_out(fx);
				assert_string_equal(cf_test_jstr(o, "status"), verbs[v].to);
				assert_string_equal(cert_status(fx, id), verbs[v].to);
				assert_int_equal(event_count(fx), events + 1);
			} else {
				assert_string_equal(cert_status(fx, id), statuses[f]);
				assert_int_equal(event_count(fx), events);
			}
		}
	}

	/* revoke needs a valid --reason; activate takes none. */
	id = cf_test_cert_issue(fx, "t1", csr, NULL, NULL);
	events = event_count(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "cert", "revoke", id, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "cert", "revoke", id, "--reason", "bored", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "cert", "deactivate", id, "--reason",
			  "keyCompromise", NULL);
	assert_string_equal(cert_status(fx, id), "ACTIVE");
	assert_int_equal(event_count(fx), events);
	/* A unique prefix names the certificate; an unknown id is not found. */
	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_OK, "cert", "revoke",
				    cf_test_keep(fx, strndup(id, 12)), "--reason", "keyCompromise",
				    NULL);
	o = cf_test_certfleet_json(fx, "cert", "describe", id, NULL);
	assert_string_equal(cf_test_jstr(o, "status"), "REVOKED");
	assert_string_equal(cf_test_jstr(o, "revocationReason"), "keyCompromise");
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "activate",
			  "0000000000000000000000000000000000000000000000000000000000000000", NULL);
	/* Everything written so far is chained correctly. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

/* ---- policies --------------------------------------------------------------------- */

static size_t
policies_of(cf_test_fleet *fx, const char *id, const char *name)
{
	json_t *rows = cf_test_certfleet_json(fx, "policy", "list", "--cert", id, NULL);

	return find_by(rows, "name", name) != NULL ? json_array_size(rows) : 0;
}

static void
test_cli_pki__policies(void **state)
{
	cf_test_fleet *fx = *state;
	static const char good[] =
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": "
		"[\"publish\", \"subscribe\"], \"resources\": [\"fleet/${thing}/#\", "
		"\"fleet/+/status\"]}]}";
	static const char *const bad[] = {
		"{\"version\": 1, \"statements\": [",
		"not json at all",
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": "
		"[\"publish\"], \"resources\": [\"fleet/#/x\"]}]}",
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": "
		"[\"publish\"], \"resources\": [\"fleet/a#\"]}]}",
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": "
		"[\"publish\"], \"resources\": [\"fleet/x+/y\"]}]}",
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": "
		"[\"fly\"], \"resources\": [\"fleet/x\"]}]}",
	};
	const char *file = cf_test_tpath(fx, "policy.json"), *csr, *id, *id2;
	json_t *d;
	size_t i, npol;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	id = cf_test_cert_issue(fx, "t1", csr, NULL, NULL);

	/* The default policy is attached to issued certificates. */
	d = cf_test_certfleet_json(fx, "cert", "describe", id, NULL);
	assert_int_equal(json_array_size(json_object_get(d, "policies")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "policies"), 0)),
			    "certfleet-device");

	npol = count_of(fx, "policy");
	assert_int_equal(cf_test_file_write(file, good, strlen(good), 0644), 0);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "policy", "create", "telemetry", "--file", file,
			  NULL);
	assert_int_equal(count_of(fx, "policy"), npol + 1);
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "policy", "create", "telemetry", "--file", file,
			  NULL);
	d = cf_test_certfleet_json(fx, "policy", "describe", "telemetry", NULL);
	assert_true(json_is_object(json_object_get(d, "document")));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cf_test_file_write(file, bad[i], strlen(bad[i]), 0644), 0);
		cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "policy", "create",
				  cf_test_keep(fx, cf_test_printf("bad%zu", i)), "--file", file,
				  NULL);
	}
	assert_int_equal(count_of(fx, "policy"), npol + 1);

	/* attach, list --cert, describe, detach. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "policy", "attach", "telemetry", "--cert", id, NULL);
	assert_int_equal(policies_of(fx, id, "telemetry"), 2);
	assert_int_equal(policies_of(fx, id, "certfleet-device"), 2);
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "policy", "attach", "telemetry", "--cert", id,
			  NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "policy", "attach", "nope", "--cert", id,
			  NULL);
	d = cf_test_certfleet_json(fx, "cert", "describe", id, NULL);
	assert_int_equal(json_array_size(json_object_get(d, "policies")), 2);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "policy", "detach", "certfleet-device", "--cert", id,
			  NULL);
	assert_int_equal(policies_of(fx, id, "telemetry"), 1);
	assert_int_equal(policies_of(fx, id, "certfleet-device"), 0);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "policy", "detach", "certfleet-device",
			  "--cert", id, NULL);

	/* --policy replaces the default. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--policy", "telemetry", NULL);
	id2 = cf_test_chomp(fx, fx->r.out);
	assert_int_equal(policies_of(fx, id2, "telemetry"), 1);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

/* ---- event log --------------------------------------------------------------------- */

/* A data dir with some history: quickstart, a thing, two certificates, a revoke. */
static size_t
make_history(cf_test_fleet *fx)
{
	const char *csr, *id;
	json_t *v;
	size_t n;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	id = cf_test_cert_issue(fx, "t1", csr, NULL, NULL);
	cf_test_cert_issue(fx, "t1", csr, NULL, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "revoke", id, "--reason", "superseded",
			  NULL);
	n = event_count(fx);
	assert_true(n >= 5);
	v = cf_test_certfleet_json(fx, "events", "verify", NULL);
	assert_true(json_is_true(json_object_get(v, "ok")));
	assert_int_equal(json_integer_value(json_object_get(v, "checked")), (json_int_t)n);
	return n;
}

static void
sql(cf_test_fleet *fx, const char *statement)
{
	const char *argv[] = { "sqlite3", cf_test_dpath(fx, "registry.db"), statement, NULL };

	cf_test_fleet_run(fx, argv, CF_TEST_EXIT_OK);
}

/* events verify exits 9 and names bad_seq as the first bad event. */
static void
assert_chain_broken(cf_test_fleet *fx, json_int_t bad_seq)
{
	json_t *v;

	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_INTEGRITY, "events", "verify", NULL);
	v = cf_test_json_out(fx);
	assert_false(json_is_true(json_object_get(v, "ok")));
	assert_int_equal(json_integer_value(json_object_get(v, "firstBadSeq")), bad_seq);
	/* The table form says so too. */
	cf_test_certfleet(fx, CF_TEST_EXIT_INTEGRITY, "events", "verify", NULL);
	assert_true(fx->r.err[0] != '\0');
}

static void
test_cli_pki__events_verify_detects_edit(void **state)
{
	cf_test_fleet *fx = *state;

	make_history(fx);
	/* The registry refuses edits of the log (schema 2): an attacker drops the guards. */
	sql(fx, "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; "
		"DROP TRIGGER event_head_no_delete; DROP TRIGGER event_head_forward_only; "
		"UPDATE events SET actor='mallory' WHERE seq=3");
	sql(fx, "SELECT actor FROM events WHERE seq=3");
	assert_string_equal(cf_test_chomp(fx, fx->r.out), "mallory");
	assert_chain_broken(fx, 3);
}

static void
test_cli_pki__events_verify_detects_deleted_middle(void **state)
{
	cf_test_fleet *fx = *state;
	size_t n = make_history(fx);
	char *stmt = cf_test_printf("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; "
				    "DROP TRIGGER event_head_no_delete; "
				    "DROP TRIGGER event_head_forward_only; "
				    "DELETE FROM events WHERE seq=%zu",
				    n / 2);

	sql(fx, cf_test_keep(fx, stmt));
	assert_int_equal(event_count(fx), n - 1);
	assert_chain_broken(fx, (json_int_t)(n / 2));
}

static void
test_cli_pki__events_verify_detects_deleted_last(void **state)
{
	cf_test_fleet *fx = *state;
	size_t n = make_history(fx);

	sql(fx, "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; "
		"DROP TRIGGER event_head_no_delete; DROP TRIGGER event_head_forward_only; "
		"DELETE FROM events WHERE seq=(SELECT max(seq) FROM events)");
	assert_int_equal(event_count(fx), n - 1);
	assert_chain_broken(fx, (json_int_t)n);
}

/*
 * A log cut short with its head rewritten passes the chain check (nothing
 * inside the file says more events existed), but not an anchor taken before.
 */
static void
test_cli_pki__events_anchor_catches_truncation(void **state)
{
	cf_test_fleet *fx = *state;
	const char *anchor, *before;
	json_t *head;

	quickstart(fx);
	thing(fx, "t1");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "head", NULL);
	before = cf_test_chomp(fx, fx->r.out);
	thing(fx, "t2");
	thing(fx, "t3");
	head = cf_test_certfleet_json(fx, "events", "head", NULL);
	anchor = cf_test_jstr(head, "anchor");
	assert_non_null(strchr(anchor, ':'));
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", "--anchor", anchor, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", "--anchor", before, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "events", "verify", "--anchor", "12:abc", NULL);

	/* A plain edit of the log is refused by the registry itself ... */
	{
		const char *argv[] = { "sqlite3", cf_test_dpath(fx, "registry.db"),
				       "DELETE FROM events WHERE seq = 1", NULL };

		assert_true(cf_test_fleet_run(fx, argv, CF_TEST_ANY_EXIT) != 0);
		cf_test_assert_contains(fx->r.err, "append-only");
	}
	/* ... so an attacker drops the triggers, removes t2 and t3, and rewinds the head. */
	sql(fx,
	    cf_test_keep(
		    fx,
		    cf_test_printf(
			    "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; "
			    "DROP TRIGGER event_head_no_delete; DROP TRIGGER "
			    "event_head_forward_only; "
			    "DELETE FROM events WHERE seq > %s; DELETE FROM things WHERE name "
			    "IN ('t2', 't3'); UPDATE event_head SET seq = (SELECT max(seq) FROM "
			    "events), hash = (SELECT hash FROM events ORDER BY seq DESC LIMIT 1)",
			    cf_test_keep(
				    fx, strndup(before, (size_t)(strchr(before, ':') - before))))));
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", "--anchor", before, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INTEGRITY, "events", "verify", "--anchor", anchor, NULL);
}

/* ---- concurrency --------------------------------------------------------------------- */

#define CONC_PROCS 2
#define CONC_EACH  50

/* One issuing process: N fresh CSRs, N `cert issue`, ids appended to a file. */
static const char conc_script[] =
	"bin=$1; dir=$2; thing=$3; work=$4; n=$5; i=0\n"
	"while [ $i -lt $n ]; do\n"
	"  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\\n"
	"    -keyout \"$work/k$i.pem\" -out \"$work/c$i.pem\" -subj \"/CN=$thing\" 2>/dev/null ||\n"
	"    { echo \"openssl failed at $i\" >&2; exit 100; }\n"
	"  \"$bin\" --data-dir \"$dir\" cert issue --thing \"$thing\" --csr \"$work/c$i.pem\" \\\n"
	"    >> \"$work/ids\" || { rc=$?; echo \"issue $i failed: exit $rc\" >&2; exit $rc; }\n"
	"  i=$((i + 1))\n"
	"done\n";

static void
test_cli_pki__concurrent_issuance(void **state)
{
	cf_test_fleet *fx = *state;
	cf_test_proc *procs[CONC_PROCS];
	cf_test_result res[CONC_PROCS];
	char count[16];
	const char *work[CONC_PROCS], *things[CONC_PROCS];
	json_t *rows, *events, *ev;
	size_t p, i, issued = 0;

	quickstart(fx);
	snprintf(count, sizeof(count), "%d", CONC_EACH);
	for (p = 0; p < CONC_PROCS; p++) {
		things[p] = cf_test_keep(fx, cf_test_printf("conc-%zu", p));
		work[p] = cf_test_tpath(fx, things[p]);
		assert_int_equal(mkdir(work[p], 0700), 0);
		thing(fx, things[p]);
		res[p] = (cf_test_result)CF_TEST_RESULT_INIT;
	}
	for (p = 0; p < CONC_PROCS; p++) {
		const char *argv[] = { "/bin/sh", "-c",      conc_script, "sh",  fx->certfleet,
				       fx->data,  things[p], work[p],     count, NULL };

		assert_int_equal(cf_test_proc_start(&procs[p], argv), 0);
	}
	assert_int_equal(cf_test_proc_wait(procs, res, CONC_PROCS, 300), 0);
	for (p = 0; p < CONC_PROCS; p++) {
		if (res[p].status != 0)
			fprintf(stderr, "process %zu: exit %d\n%s\n", p, res[p].status, res[p].err);
	}
	for (p = 0; p < CONC_PROCS; p++) {
		assert_int_equal(res[p].status, 0);
		cf_test_result_clear(&res[p]);
	}

	/* Every certificate is listed, under its thing, with the id its process printed. */
	rows = cf_test_certfleet_json(fx, "cert", "list", NULL);
	assert_int_equal(json_array_size(rows), CONC_PROCS * CONC_EACH);
	for (p = 0; p < CONC_PROCS; p++) {
		char *ids = NULL, *line, *next;
		size_t n = 0;

		assert_int_equal(
			cf_test_file_read(&ids, NULL,
					  cf_test_keep(fx, cf_test_printf("%s/ids", work[p])),
					  1024 * 1024),
			0);
		for (line = ids; line != NULL && *line != '\0'; line = next) {
			json_t *row;

			next = strchr(line, '\n');
			if (next != NULL)
				*next++ = '\0';
			assert_true(cf_test_is_hex(line, 64));
			row = find_by(rows, "certificateId", line);
			assert_non_null(row);
			assert_string_equal(cf_test_jstr(row, "thing"), things[p]);
			n++;
		}
		free(ids);
		assert_int_equal(n, CONC_EACH);
		issued += n;
		assert_int_equal(json_array_size(cf_test_certfleet_json(
					 fx, "cert", "list", "--thing", things[p], NULL)),
				 CONC_EACH);
	}
	assert_int_equal(issued, CONC_PROCS * CONC_EACH);

	/* One issue event each, and an intact chain. */
	events = cf_test_certfleet_json(fx, "events", "list", NULL);
	issued = 0;
	json_array_foreach (events, i, ev) {
		if (strcmp(cf_test_jstr(ev, "action"), "cert.issued") == 0)
			issued++;
	}
	assert_int_equal(issued, CONC_PROCS * CONC_EACH);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

/* ---- offline intermediate --------------------------------------------------------------- */

static void
test_cli_pki__offline_intermediate(void **state)
{
	cf_test_fleet *fx = *state;
	const char *ops_csr = cf_test_tpath(fx, "ops.csr"), *ops_pem = cf_test_tpath(fx, "ops.pem");
	const char *root = cf_test_dpath(fx, "offline-root/root.pem"), *csr,
		   *cert = cf_test_tpath(fx, "dev.pem");
	const char *text, *id;
	json_t *cas, *ops;

	quickstart(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "create-intermediate", "--name", "ops",
			  "--csr-out", ops_csr, NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-in", ops_csr, "-noout", "-verify", NULL);
	cf_test_assert_contains(fx->r.err, "verify OK");
	cas = cf_test_certfleet_json(fx, "ca", "list", NULL);
	ops = find_by(cas, "name", "ops");
	assert_non_null(ops);
	assert_string_equal(cf_test_jstr(ops, "status"), "PENDING");
	assert_int_equal(cf_test_file_mode(cf_test_dpath(fx, "ca/ops.key.pem")), 0600);
	/* A pending CA does not issue. */
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	assert_true(cf_test_certfleet(fx, CF_TEST_ANY_EXIT, "cert", "issue", "--thing", "t1",
				      "--csr", csr, "--ca", "ops", NULL) != 0);

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "sign-intermediate", "--csr", ops_csr,
			  "--root-key", cf_test_dpath(fx, "offline-root/root.key.pem"),
			  "--root-cert", root, "--root-passphrase-file",
			  cf_test_dpath(fx, "offline-root/root.pass"), "--out", ops_pem, NULL);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "verify", "-CAfile", root, ops_pem, NULL);
	text = ossl_text(fx, ops_pem);
	cf_test_assert_contains(text, "CA:TRUE");
	cf_test_assert_contains(text, "pathlen:0");
	cf_test_assert_contains(text, "Certificate Sign");
	/* The signed certificate holds the pending key. */
	assert_string_equal(ossl_pubkey(fx, "x509", ops_pem, "PEM"),
			    ossl_pubkey(fx, "req", ops_csr, "PEM"));

	/* It does not fit another pending CA's key. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "create-intermediate", "--name", "ops2",
			  "--csr-out", cf_test_tpath(fx, "ops2.csr"), NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "ca", "import", "--name", "ops2", "--cert",
			  ops_pem, NULL);
	cf_test_assert_contains(fx->r.err, "KEY_MISMATCH");

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "import", "--name", "ops", "--cert", ops_pem,
			  NULL);
	ops = find_by(cf_test_certfleet_json(fx, "ca", "list", NULL), "name", "ops");
	assert_non_null(ops);
	assert_string_equal(cf_test_jstr(ops, "status"), "ACTIVE");
	assert_string_equal(cf_test_jstr(ops, "parent"), "root");
	assert_string_equal(cf_test_jstr(find_by(cf_test_certfleet_json(fx, "ca", "list", NULL),
						 "name", "ops2"),
					 "status"),
			    "PENDING");
	/* Importing twice is refused. */
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "ca", "import", "--name", "ops", "--cert",
			  ops_pem, NULL);

	cf_test_cert_issue(fx, "t1", csr, NULL, NULL); /* the default CA still issues */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--ca", "ops", "--out", cert, NULL);
	id = cf_test_chomp(fx, fx->r.out);
	assert_string_equal(id, ossl_cert_id(fx, cert));
	assert_string_equal(
		cf_test_jstr(cf_test_certfleet_json(fx, "cert", "describe", id, NULL), "ca"),
		"ops");
	ossl_verify(fx, root, ops_pem, cert, CF_TEST_EXIT_OK);
	/* Not with the other intermediate: it really is ops that signed. */
	assert_true(ossl_verify(fx, root, ca_pem_file(fx, "default"), cert, -1) != 0);
	assert_int_equal(
		json_array_size(cf_test_certfleet_json(fx, "cert", "list", "--ca", "ops", NULL)),
		1);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

/* ---- bring your own CA ---------------------------------------------------------------------- */

/* A self-signed CA made by openssl: NAME.key, NAME.pem. */
static const char *
ext_ca(cf_test_fleet *fx, const char *name)
{
	const char *pem = cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.pem", name)));

	cf_test_openssl(fx, CF_TEST_EXIT_OK, "req", "-x509", "-newkey", "ec", "-pkeyopt",
			"ec_paramgen_curve:P-256", "-nodes", "-keyout",
			cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.key", name))), "-out",
			pem, "-subj", cf_test_keep(fx, cf_test_printf("/CN=%s external CA", name)),
			"-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
			"keyUsage=critical,keyCertSign,cRLSign", NULL);
	return pem;
}

/* A certificate for a fresh P-256 key with subject /CN=cn, signed by CA ca. */
static const char *
ext_sign(cf_test_fleet *fx, const char *ca, const char *cn, const char *name)
{
	const char *csr =
		cf_test_csr_new(fx, name, "ec", cf_test_keep(fx, cf_test_printf("/CN=%s", cn)));
	const char *out = cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.pem", name)));
	const char *ext = cf_test_tpath(fx, "leaf.ext");
	static const char exts[] = "basicConstraints=critical,CA:FALSE\n"
				   "keyUsage=critical,digitalSignature\n"
				   "extendedKeyUsage=clientAuth\n";

	assert_int_equal(cf_test_file_write(ext, exts, strlen(exts), 0644), 0);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-req", "-in", csr, "-CA",
			cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.pem", ca))), "-CAkey",
			cf_test_tpath(fx, cf_test_keep(fx, cf_test_printf("%s.key", ca))),
			"-set_serial", cf_test_keep(fx, cf_test_printf("%zu", 1000 + ++g_seq)),
			"-days", "30", "-extfile", ext, "-out", out, NULL);
	return out;
}

static const char *
regcode(cf_test_fleet *fx)
{
	const char *code;

	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "registration-code", NULL);
	code = cf_test_chomp(fx, fx->r.out);
	assert_true(strlen(code) >= 16);
	assert_true(strspn(code, "0123456789abcdef") == strlen(code));
	return code;
}

static void
test_cli_pki__bring_your_own_ca(void **state)
{
	cf_test_fleet *fx = *state;
	const char *a, *b, *code1, *code2, *dev, *id;
	json_t *cas, *ext;
	size_t certs;

	quickstart(fx);
	a = ext_ca(fx, "ca-a");
	b = ext_ca(fx, "ca-b");
	ext_ca(fx, "ca-c"); /* never registered */

	code1 = regcode(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "register", "--name", "ext-a", "--cert", a,
			  "--verification-cert", ext_sign(fx, "ca-a", code1, "verif-a1"), NULL);
	cas = cf_test_certfleet_json(fx, "ca", "list", NULL);
	ext = find_by(cas, "name", "ext-a");
	assert_non_null(ext);
	/* A self-signed external CA is listed as external, without a key here. */
	assert_string_equal(cf_test_jstr(ext, "kind"), "external");
	assert_true(json_is_true(json_object_get(ext, "selfSigned")));
	assert_true(json_is_null(json_object_get(ext, "keyFile")));
	assert_string_equal(cf_test_jstr(ext, "status"), "ACTIVE");
	assert_false(json_is_true(json_object_get(ext, "default")));

	/* A used code does not work twice, even for another CA. */
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "ca", "register", "--name", "ext-b", "--cert",
			  b, "--verification-cert", ext_sign(fx, "ca-b", code1, "verif-b1"), NULL);
	cf_test_assert_contains(fx->r.err, "BAD_REGISTRATION_CODE");
	/* A verification certificate signed by another key proves nothing. */
	code2 = regcode(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "ca", "register", "--name", "ext-b", "--cert", b,
			  "--verification-cert", ext_sign(fx, "ca-a", code2, "verif-a2"), NULL);
	cf_test_assert_contains(fx->r.err, "BAD_VERIFICATION_CERTIFICATE");
	assert_null(find_by(cf_test_certfleet_json(fx, "ca", "list", NULL), "name", "ext-b"));
	/* A made-up code is refused. */
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "ca", "register", "--name", "ext-b", "--cert",
			  b, "--verification-cert",
			  ext_sign(fx, "ca-b", "00112233445566778899aabbccddeeff", "verif-b0"),
			  NULL);
	/* The fresh code with the right key works: the refusals above were about the proof. */
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "register", "--name", "ext-b", "--cert", b,
			  "--verification-cert", ext_sign(fx, "ca-b", code2, "verif-b2"), NULL);

	/* Device certificates of a registered CA can be registered ... */
	thing(fx, "dev1");
	dev = ext_sign(fx, "ca-a", "dev1", "dev1");
	certs = cert_count(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "register", "--cert", dev, "--thing", "dev1",
			  NULL);
	id = cf_test_chomp(fx, fx->r.out);
	assert_string_equal(id, ossl_cert_id(fx, dev));
	ext = cf_test_certfleet_json(fx, "cert", "describe", id, NULL);
	assert_string_equal(cf_test_jstr(ext, "ca"), "ext-a");
	assert_string_equal(cf_test_jstr(ext, "status"), "ACTIVE");
	assert_string_equal(cf_test_jstr(ext, "thing"), "dev1");
	assert_int_equal(cert_count(fx), certs + 1);
	/* ... once. */
	cf_test_certfleet(fx, CF_TEST_EXIT_EXISTS, "cert", "register", "--cert", dev, "--thing",
			  "dev1", NULL);

	/* ... but not those of an unregistered CA. */
	dev = ext_sign(fx, "ca-c", "dev1", "dev-c");
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "register", "--cert", dev, "--thing",
			  "dev1", NULL);
	cf_test_assert_contains(fx->r.err, "UNKNOWN_CA");
	/* A CA certificate is not a device certificate. */
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "cert", "register", "--cert", a, "--thing",
			  "dev1", NULL);
	assert_int_equal(cert_count(fx), certs + 1);
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "events", "verify", NULL);
}

/* ---- refusals found in review ---------------------------------------------------------------- */

/* Weak CA keys are refused wherever a CA comes in; a weak device key of a registered CA too. */
static void
test_cli_pki__weak_ca_refused(void **state)
{
	cf_test_fleet *fx = *state;
	const char *root_key = cf_test_dpath(fx, "offline-root/root.key.pem");
	const char *root_pem = cf_test_dpath(fx, "offline-root/root.pem");
	const char *root_pass = cf_test_dpath(fx, "offline-root/root.pass");
	const char *weak_csr, *weak_pem = cf_test_tpath(fx, "weak.pem"), *a, *dev;
	static const char ca_ext[] = "basicConstraints=critical,CA:TRUE\n"
				     "keyUsage=critical,keyCertSign,cRLSign\n";
	size_t cas;

	quickstart(fx);
	cas = json_array_size(cf_test_certfleet_json(fx, "ca", "list", NULL));
	/* The offline root does not sign an RSA-1024 intermediate ... */
	weak_csr = make_csr_with(fx, "weak", "rsa:1024", NULL, "/CN=weak CA", NULL, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "ca", "sign-intermediate", "--csr", weak_csr,
			  "--out", weak_pem, "--root-key", root_key, "--root-cert", root_pem,
			  "--root-passphrase-file", root_pass, NULL);
	cf_test_assert_contains(fx->r.err, "WEAK_KEY");
	assert_int_equal(access(weak_pem, F_OK), -1);
	/* ... and one signed by other means is not imported. */
	assert_int_equal(
		cf_test_file_write(cf_test_tpath(fx, "ca.ext"), ca_ext, strlen(ca_ext), 0644), 0);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-req", "-in", weak_csr, "-CA", root_pem,
			"-CAkey", root_key, "-passin",
			cf_test_keep(fx, cf_test_printf("file:%s", root_pass)), "-days", "30",
			"-extfile", cf_test_tpath(fx, "ca.ext"), "-out", weak_pem, NULL);
	assert_int_equal(cf_test_file_write(cf_test_tpath(fx, "weak.pass"), "p\n", 2, 0600), 0);
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "pkey", "-in", cf_test_tpath(fx, "weak.key"),
			"-aes-256-cbc", "-passout",
			cf_test_keep(fx, cf_test_printf("file:%s", cf_test_tpath(fx, "weak.pass"))),
			"-out", cf_test_tpath(fx, "weak.enc"), NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "ca", "import", "--name", "weak", "--cert",
			  weak_pem, "--key", cf_test_tpath(fx, "weak.enc"), "--key-passphrase-file",
			  cf_test_tpath(fx, "weak.pass"), NULL);
	cf_test_assert_contains(fx->r.err, "WEAK_KEY");
	assert_int_equal(json_array_size(cf_test_certfleet_json(fx, "ca", "list", NULL)), cas);
	assert_int_equal(access(cf_test_dpath(fx, "ca/weak.key.pem"), F_OK), -1);

	/* A registered CA's RSA-1024 device certificate is refused too. */
	a = ext_ca(fx, "ca-a");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "register", "--name", "ext-a", "--cert", a,
			  "--verification-cert", ext_sign(fx, "ca-a", regcode(fx), "verif-a"),
			  NULL);
	thing(fx, "dev1");
	make_csr_with(fx, "dev-weak", "rsa:1024", NULL, "/CN=dev1", NULL, NULL);
	dev = cf_test_tpath(fx, "dev-weak.pem");
	cf_test_openssl(fx, CF_TEST_EXIT_OK, "x509", "-req", "-in",
			cf_test_tpath(fx, "dev-weak.csr"), "-CA", a, "-CAkey",
			cf_test_tpath(fx, "ca-a.key"), "-days", "30", "-out", dev, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "cert", "register", "--cert", dev, "--thing",
			  "dev1", NULL);
	cf_test_assert_contains(fx->r.err, "WEAK_KEY");
}

/* --out, --replaces, an empty default_policy, and the 64-character name limit. */
static void
test_cli_pki__issue_edges(void **state)
{
	cf_test_fleet *fx = *state;
	const char *csr, *csr2, *id, *a, *dev;
	char name[70];
	size_t certs;

	quickstart(fx);
	thing(fx, "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	/* An --out that cannot be written issues nothing. */
	certs = cert_count(fx);
	cf_test_certfleet(fx, 8, "cert", "issue", "--thing", "t1", "--csr", csr, "--out",
			  cf_test_tpath(fx, "no-such-dir/t1.pem"), NULL);
	assert_int_equal(cert_count(fx), certs);

	/* --replaces: the same key again is KEY_REUSE; a new key is fine. */
	id = cf_test_cert_issue(fx, "t1", csr, NULL, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_INPUT, "cert", "issue", "--thing", "t1", "--csr", csr,
			  "--replaces", id, NULL);
	cf_test_assert_contains(fx->r.err, "KEY_REUSE");
	csr2 = cf_test_csr_new(fx, "t1b", "ec", "/CN=t1");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr", csr2,
			  "--replaces", cf_test_keep(fx, strndup(id, 12)), NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_NOTFOUND, "cert", "issue", "--thing", "t1", "--csr",
			  csr2, "--replaces", "00000000deadbeef", NULL);
	/* Standard input works as a file. */
	{
		const char *argv[] = { "/bin/sh", "-c",
				       cf_test_keep(
					       fx, cf_test_printf("'%s' --data-dir '%s' cert issue "
								  "--thing t1 --csr - < '%s'",
								  fx->certfleet, fx->data, csr2)),
				       NULL };

		cf_test_fleet_run(fx, argv, CF_TEST_EXIT_OK);
		assert_true(cf_test_is_hex(cf_test_chomp(fx, fx->r.out), 64));
	}

	/* default_policy empty: issued and registered certificates get no policy. */
	cf_test_config_set(fx, "default_policy", "", 0640);
	id = cf_test_cert_issue(fx, "t1", csr2, NULL, NULL);
	assert_int_equal(
		json_array_size(json_object_get(
			cf_test_certfleet_json(fx, "cert", "describe", id, NULL), "policies")),
		0);
	a = ext_ca(fx, "ca-a");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "ca", "register", "--name", "ext-a", "--cert", a,
			  "--verification-cert", ext_sign(fx, "ca-a", regcode(fx), "verif-a"),
			  NULL);
	dev = ext_sign(fx, "ca-a", "t1", "dev1");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "cert", "register", "--cert", dev, "--thing", "t1",
			  NULL);

	/* Names are at most 64 characters: a thing's name is its certificates' CN. */
	memset(name, 'n', sizeof(name));
	name[64] = '\0';
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "thing", "create", name, NULL);
	name[64] = 'n';
	name[65] = '\0';
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "thing", "create", name, NULL);
}

/* ---- command line ------------------------------------------------------------------------------
 */

static void
test_cli_pki__help_and_usage(void **state)
{
	cf_test_fleet *fx = *state;
	static const char *const nouns[] = { "ca", "thing", "cert", "policy", "events" };
	/* Verbs that must be there; the help may list more, which are checked too. */
	static const char *const expected[] = {
		"ca init-root",
		"ca create-intermediate",
		"ca sign-intermediate",
		"ca import",
		"ca list",
		"ca describe",
		"ca set-default",
		"ca retire",
		"ca revoke",
		"ca registration-code",
		"ca register",
		"thing create",
		"thing list",
		"thing describe",
		"thing delete",
		"cert issue",
		"cert register",
		"cert list",
		"cert describe",
		"cert pem",
		"cert activate",
		"cert deactivate",
		"cert revoke",
		"policy create",
		"policy attach",
		"policy detach",
		"policy list",
		"policy describe",
		"events list",
		"events verify",
	};
	char seen[sizeof(expected) / sizeof(expected[0])];
	size_t i, j, verbs = 0;

	memset(seen, 0, sizeof(seen));
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "--help", NULL);
	cf_test_assert_contains(fx->r.out, "usage");
	cf_test_certfleet(fx, CF_TEST_EXIT_OK, "init", "--help", NULL);
	cf_test_assert_contains(fx->r.out, "usage");
	for (i = 0; i < sizeof(nouns) / sizeof(nouns[0]); i++) {
		char *help, *line, *next;
		bool in_verbs = false;

		cf_test_certfleet(fx, CF_TEST_EXIT_OK, nouns[i], "--help", NULL);
		cf_test_assert_contains(fx->r.out, "usage");
		help = strdup(fx->r.out);
		assert_non_null(help);
		/* Each "  <verb>  summary" line under "verbs:". */
		for (line = help; line != NULL && *line != '\0'; line = next) {
			char verb[64];

			next = strchr(line, '\n');
			if (next != NULL)
				*next++ = '\0';
			if (strcmp(line, "verbs:") == 0) {
				in_verbs = true;
				continue;
			}
			if (!in_verbs || strncmp(line, "  ", 2) != 0) {
				in_verbs = in_verbs && line[0] == ' ';
				continue;
			}
			if (sscanf(line, " %63s", verb) != 1)
				continue;
			cf_test_certfleet(fx, CF_TEST_EXIT_OK, nouns[i], verb, "--help", NULL);
			if (strstr(fx->r.out, "usage") == NULL)
				fail_msg("%s %s --help prints no usage", nouns[i], verb);
			for (j = 0; j < sizeof(expected) / sizeof(expected[0]); j++) {
				size_t nl = strlen(nouns[i]);

				if (strncmp(expected[j], nouns[i], nl) == 0 &&
				    expected[j][nl] == ' ' &&
				    strcmp(expected[j] + nl + 1, verb) == 0)
					seen[j] = 1;
			}
			verbs++;
		}
		free(help);
		/* An unknown verb is a usage error that shows the verbs. */
		cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, nouns[i], "frobnicate", NULL);
		cf_test_assert_contains(fx->r.err, "usage");
		/* No verb at all, too. */
		cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, nouns[i], NULL);
	}
	for (j = 0; j < sizeof(expected) / sizeof(expected[0]); j++) {
		if (!seen[j])
			fail_msg("'%s' is not in its noun's help", expected[j]);
	}
	assert_true(verbs >= sizeof(expected) / sizeof(expected[0]));
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "frobnicate", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "--output", "yaml", "ca", "list", NULL);
	/* Help never needs, or makes, a data dir. */
	assert_int_equal(access(fx->data, F_OK), -1);

	/* Missing or unknown options are usage errors too. */
	quickstart(fx);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "cert", "issue", "--thing", "t1", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "cert", "issue", "--thing", "t1", "--csr", "x",
			  "--bogus", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "cert", "list", "--status", "SLEEPING", NULL);
	cf_test_certfleet(fx, CF_TEST_EXIT_USAGE, "thing", "create", "bad name!", NULL);
}

static void
test_cli_pki__json_output_parses(void **state)
{
	cf_test_fleet *fx = *state;
	const char *csr, *id;
	json_t *v;

	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_OK, "init", "--quickstart", NULL);
	v = cf_test_json_out(fx);
	assert_string_equal(cf_test_jstr(v, "defaultCa"), "default");
	assert_string_equal(cf_test_jstr(v, "defaultPolicy"), "certfleet-device");
	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_OK, "thing", "create", "t1", "--attr",
				    "model=x1", NULL);
	assert_string_equal(cf_test_jstr(cf_test_json_out(fx), "name"), "t1");
	csr = cf_test_csr_new(fx, "t1", "ec", "/CN=t1");
	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_OK, "cert", "issue", "--thing", "t1", "--csr",
				    csr, NULL);
	v = cf_test_json_out(fx);
	id = cf_test_jstr(v, "certificateId");
	assert_true(cf_test_is_hex(id, 64));
	assert_string_equal(cf_test_jstr(v, "status"), "ACTIVE");

	assert_true(json_is_array(cf_test_certfleet_json(fx, "ca", "list", NULL)));
	assert_true(json_is_object(cf_test_certfleet_json(fx, "ca", "describe", "root", NULL)));
	v = cf_test_certfleet_json(fx, "thing", "list", NULL);
	assert_int_equal(json_array_size(v), 1);
	assert_string_equal(
		cf_test_jstr(json_object_get(json_array_get(v, 0), "attributes"), "model"), "x1");
	assert_true(json_is_object(cf_test_certfleet_json(fx, "thing", "describe", "t1", NULL)));
	assert_true(json_is_array(
		cf_test_certfleet_json(fx, "cert", "list", "--status", "ACTIVE", NULL)));
	assert_true(json_is_array(
		cf_test_certfleet_json(fx, "cert", "list", "--expiring-within", "400d", NULL)));
	v = cf_test_certfleet_json(fx, "cert", "pem", id, NULL);
	cf_test_assert_contains(cf_test_jstr(v, "certificatePem"), "-----BEGIN CERTIFICATE-----");
	assert_true(json_is_array(cf_test_certfleet_json(fx, "policy", "list", NULL)));
	assert_true(json_is_object(
		cf_test_certfleet_json(fx, "policy", "describe", "certfleet-device", NULL)));
	v = cf_test_certfleet_json(fx, "events", "list", "--resource",
				   cf_test_keep(fx, cf_test_printf("cert:%s", id)), NULL);
	assert_int_equal(json_array_size(v), 1);
	assert_string_equal(cf_test_jstr(json_array_get(v, 0), "action"), "cert.issued");
	assert_true(json_is_array(cf_test_certfleet_json(fx, "events", "list", "--newest-first",
							 "--limit", "2", NULL)));
	assert_true(json_is_object(cf_test_certfleet_json(fx, "events", "verify", NULL)));
	v = cf_test_certfleet_json(fx, "ca", "registration-code", NULL);
	assert_non_null(json_object_get(v, "registrationCode"));
	/* Not found: no JSON on stdout to mistake for an answer. */
	cf_test_certfleet_json_want(fx, CF_TEST_EXIT_NOTFOUND, "thing", "describe", "nobody", NULL);
	assert_string_equal(fx->r.out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cli_pki__init_quickstart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__issue_p256_checked_by_openssl, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__crl_and_ocsp_urls_from_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__issue_other_key_types, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__bad_csr_fixtures_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__bad_csr_generated_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__subject_comes_from_the_registry,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__issue_not_found_and_retired, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__ca_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__ca_import_with_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__status_transitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__policies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__events_verify_detects_edit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__events_verify_detects_deleted_middle,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__events_verify_detects_deleted_last,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__events_anchor_catches_truncation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__concurrent_issuance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__offline_intermediate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__bring_your_own_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__weak_ca_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__issue_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__help_and_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_pki__json_output_parses, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
