/*
 * bench/issue: certificates issued per second through cf_authority_issue(),
 * the code path of `certfleet cert issue` (CSR validation + signing +
 * registry write), against two baselines measured in the same run:
 *   - the raw OpenSSL limit: one P-256 verify + one P-256 sign per
 *     certificate, with EVP and reused contexts;
 *   - the `openssl x509 -req` CLI, one process per certificate.
 *
 * Two issuance rates: one registry commit per certificate (a lone
 * `certfleet cert issue`, a lone device), and BATCH certificates per commit
 * (certfleetd's group commit when many CSRs wait).
 *
 *   bench_issue [-n COUNT] [-c CLI_COUNT] [-b BATCH] [-d DIR]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "authority/authority.h"
#include "pki/pki.h"
#include "store/store.h"
#include "util/util.h"

#define PASSPHRASE "bench-passphrase-not-secret"

struct csr_blob {
	char *pem;
	size_t len;
};

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, const cf_err *err)
{
	fprintf(stderr, "bench_issue: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

/* A fresh P-256 key and a CSR for it, as a device would send. */
static void
make_csr(struct csr_blob *out, int i)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = X509_REQ_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char cn[32];
	BUF_MEM *mem;

	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	snprintf(cn, sizeof(cn), "device-%06d", i);
	if (key == NULL || req == NULL || bio == NULL ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    PEM_write_bio_X509_REQ(bio, req) != 1)
		die("making a CSR", NULL);
	BIO_get_mem_ptr(bio, &mem);
	out->pem = malloc(mem->length + 1);
	if (out->pem == NULL)
		die("malloc", NULL);
	memcpy(out->pem, mem->data, mem->length);
	out->pem[mem->length] = '\0';
	out->len = mem->length;
	BIO_free(bio);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

/* A registry with a root and an intermediate "bench" whose key is encrypted in dir. */
static void
setup_registry(cf_store **store_out, const char *dir, X509 **int_cert_out, EVP_PKEY **int_key_out)
{
	cf_err err = CF_ERR_INIT;
	cf_store_actor actor = { "bench", NULL };
	EVP_PKEY *root_key = NULL, *int_key = NULL;
	X509 *root = NULL, *inter = NULL;
	cf_pki_ca *root_ca = NULL;
	cf_pki_cert_info info;
	cf_store_ca rec;
	char uri[384], path[384], *pem = NULL;
	char root_name[] = "root", int_name[] = "bench", p384[] = "EC-P384", p256[] = "EC-P256";
	char key_ref[] = "bench.key.pem";
	size_t len;

	snprintf(uri, sizeof(uri), "sqlite:%s/registry.db", dir);
	if (cf_store_open(store_out, uri, &err) != CF_OK)
		die("store", &err);
	if (cf_pki_key_generate(&root_key, CF_KEY_EC_P384, &err) != CF_OK ||
	    cf_pki_root_create(&root, root_key, "bench root", NULL, 3650, &err) != CF_OK ||
	    cf_pki_ca_new(&root_ca, root, root_key, &err) != CF_OK ||
	    cf_pki_key_generate(&int_key, CF_KEY_EC_P256, &err) != CF_OK ||
	    cf_pki_intermediate_sign(&inter, root_ca, int_key, "bench intermediate", NULL, 1825,
				     &err) != CF_OK)
		die("CA hierarchy", &err);
	snprintf(path, sizeof(path), "%s/bench.key.pem", dir);
	if (cf_pki_key_write_encrypted(path, int_key, PASSPHRASE, strlen(PASSPHRASE), &err) !=
	    CF_OK)
		die("intermediate key", &err);
	snprintf(path, sizeof(path), "%s/ca.pass", dir);
	if (cf_file_write_atomic(path, PASSPHRASE "\n", strlen(PASSPHRASE) + 1, 0600, false,
				 &err) != CF_OK)
		die("passphrase", &err);

	memset(&rec, 0, sizeof(rec));
	if (cf_pki_cert_info_get(&info, root, &err) != CF_OK ||
	    cf_pki_cert_to_pem(&pem, &len, root, &err) != CF_OK)
		die("root facts", &err);
	rec.name = root_name;
	rec.status = CF_CA_ACTIVE;
	rec.is_root = true;
	rec.cert_id = info.id;
	rec.subject = info.subject;
	rec.cert_pem = pem;
	rec.key_type = p384;
	rec.not_before = info.not_before;
	rec.not_after = info.not_after;
	if (cf_store_ca_insert(*store_out, &rec, &actor, &err) != CF_OK)
		die("register root", &err);
	free(pem);
	if (cf_pki_cert_info_get(&info, inter, &err) != CF_OK ||
	    cf_pki_cert_to_pem(&pem, &len, inter, &err) != CF_OK)
		die("intermediate facts", &err);
	rec.name = int_name;
	rec.is_root = false;
	rec.parent = root_name;
	rec.cert_id = info.id;
	rec.subject = info.subject;
	rec.cert_pem = pem;
	rec.key_type = p256;
	rec.key_ref = key_ref;
	rec.not_before = info.not_before;
	rec.not_after = info.not_after;
	if (cf_store_ca_insert(*store_out, &rec, &actor, &err) != CF_OK ||
	    cf_store_ca_set_default(*store_out, "bench", &actor, &err) != CF_OK)
		die("register intermediate", &err);
	free(pem);
	*int_cert_out = inter;
	*int_key_out = int_key;
	cf_pki_ca_free(root_ca);
	X509_free(root);
	EVP_PKEY_free(root_key);
}

/*
 * The crypto floor: per certificate, verify one P-256 signature (the CSR's)
 * and make one (the CA's), over messages of a certificate's size.
 */
static double
raw_rate(EVP_PKEY *ca_key, int n)
{
	EVP_PKEY *dev = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char msg[400], sig[128], ca_sig[128];
	size_t sig_len = sizeof(sig), ca_len;
	double t0;
	int i;

	memset(msg, 0x5a, sizeof(msg));
	if (dev == NULL || ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, dev) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof(msg)) != 1)
		die("raw baseline setup", NULL);
	t0 = now_seconds();
	for (i = 0; i < n; i++) {
		msg[0] = (unsigned char)i;
		if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, dev) != 1)
			die("verify init", NULL);
		(void)EVP_DigestVerify(ctx, sig, sig_len, msg, sizeof(msg));
		ca_len = sizeof(ca_sig);
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ca_key) != 1 ||
		    EVP_DigestSign(ctx, ca_sig, &ca_len, msg, sizeof(msg)) != 1)
			die("sign", NULL);
	}
	t0 = now_seconds() - t0;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(dev);
	return n / t0;
}

static int
run_quiet(const char *argv[])
{
	pid_t pid;
	int status;

	fflush(NULL); /* the child must not print our buffered output again */
	pid = fork();

	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL ||
		    freopen("/dev/null", "w", stderr) == NULL)
			_exit(127);
		execvp(argv[0], (char *const *)(void *)argv); /* execvp does not write */
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `openssl x509 -req`, one process per certificate: what a shell script would do. */
static double
cli_rate(const char *dir, X509 *inter, EVP_PKEY *int_key, const struct csr_blob *csrs, int n)
{
	char ca_cert[384], ca_key[384], csr[384], out[384], *pem = NULL;
	cf_err err = CF_ERR_INIT;
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	size_t len;
	double t0;
	int i;

	snprintf(ca_cert, sizeof(ca_cert), "%s/int.pem", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/int.key", dir);
	snprintf(csr, sizeof(csr), "%s/dev.csr", dir);
	snprintf(out, sizeof(out), "%s/dev.pem", dir);
	/* The CLI baseline gets a plain key: no decryption per process. */
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, int_key, NULL, NULL, 0, NULL, NULL) != 1)
		die("baseline key", NULL);
	BIO_get_mem_ptr(bio, &mem);
	if (cf_file_write_atomic(ca_key, mem->data, mem->length, 0600, false, &err) != CF_OK ||
	    cf_pki_cert_to_pem(&pem, &len, inter, &err) != CF_OK ||
	    cf_file_write_atomic(ca_cert, pem, len, 0644, false, &err) != CF_OK ||
	    cf_file_write_atomic(csr, csrs[0].pem, csrs[0].len, 0644, false, &err) != CF_OK)
		die("baseline files", &err);
	BIO_free(bio);
	free(pem);
	const char *argv[] = { "openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
			 "-CAcreateserial", "-days", "365", "-sha256", "-out", out, NULL };
	t0 = now_seconds();
	for (i = 0; i < n; i++) {
		if (run_quiet(argv) != 0)
			die("openssl x509 -req", NULL);
	}
	t0 = now_seconds() - t0;
	unlink(ca_key);
	return n / t0;
}

/*
 * Issue one certificate per thing through cf_authority_issue_batch(), batch
 * requests per registry commit (1: what `certfleet cert issue` does).
 */
static double
issue_rate(cf_authority *auth, const struct csr_blob *csrs, int n, int batch)
{
	cf_store_actor actor = { "bench", NULL };
	cf_authority_request *reqs = calloc((size_t)batch, sizeof(*reqs));
	cf_authority_item *items = calloc((size_t)batch, sizeof(*items));
	char (*names)[32] = calloc((size_t)batch, sizeof(*names));
	cf_err err = CF_ERR_INIT;
	double t0;
	int i, j, k;

	if (reqs == NULL || items == NULL || names == NULL)
		die("calloc", NULL);
	t0 = now_seconds();
	for (i = 0; i < n; i += batch) {
		k = n - i < batch ? n - i : batch;
		for (j = 0; j < k; j++) {
			snprintf(names[j], sizeof(names[j]), "device-%06d", i + j);
			reqs[j].thing = names[j];
			reqs[j].csr = csrs[i + j].pem;
			reqs[j].csr_len = csrs[i + j].len;
			reqs[j].status = CF_CERT_ACTIVE;
			items[j].req = &reqs[j];
		}
		if (cf_authority_issue_batch(auth, items, (size_t)k, &actor, &err) != CF_OK)
			die("issue", &err);
		for (j = 0; j < k; j++) {
			if (items[j].rc != CF_OK)
				die("issue", &items[j].err);
			cf_authority_result_clear(&items[j].result);
		}
	}
	t0 = now_seconds() - t0;
	free(reqs);
	free(items);
	free(names);
	return n / t0;
}

int
main(int argc, char **argv)
{
	int n = 20000, n_cli = 200, c, i;
	const char *dir_opt = NULL;
	char tmpl[] = "/tmp/certfleet-bench-XXXXXX", dir[256], pass[384], name[32];
	cf_err err = CF_ERR_INIT;
	cf_store_actor actor = { "bench", NULL };
	cf_authority_config ac;
	cf_authority *auth = NULL;
	cf_store *store = NULL;
	X509 *inter = NULL;
	EVP_PKEY *int_key = NULL;
	struct csr_blob *csrs;
	double rate, rate_batch, raw, cli;
	int batch = 64;

	while ((c = getopt(argc, argv, "n:c:b:d:h")) != -1) {
		switch (c) {
		case 'b': batch = (int)strtol(optarg, NULL, 10); break;
		case 'n': n = (int)strtol(optarg, NULL, 10); break;
		case 'c': n_cli = (int)strtol(optarg, NULL, 10); break;
		case 'd': dir_opt = optarg; break;
		default:
			fprintf(stderr, "usage: bench_issue [-n COUNT] [-c CLI_COUNT] [-b BATCH] [-d DIR]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (n < 1 || n > 1000000 || n_cli < 1 || n_cli > 10000 || batch < 1 || batch > 4096) {
		fprintf(stderr, "bench_issue: -n 1..1000000, -c 1..10000, -b 1..4096\n");
		return 2;
	}
	if (dir_opt == NULL && mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s", dir_opt != NULL ? dir_opt : tmpl);
	setup_registry(&store, dir, &inter, &int_key);

	fprintf(stderr, "bench_issue: preparing %d things and P-256 CSRs...\n", n);
	csrs = calloc((size_t)n, sizeof(*csrs));
	if (csrs == NULL)
		die("calloc", NULL);
	for (i = 0; i < n; i++) {
		make_csr(&csrs[i], i);
		snprintf(name, sizeof(name), "device-%06d", i);
		if (cf_store_thing_insert(store, name, NULL, &actor, &err) != CF_OK)
			die("thing", &err);
	}

	memset(&ac, 0, sizeof(ac));
	snprintf(pass, sizeof(pass), "%s/ca.pass", dir);
	ac.data_dir = dir;
	ac.ca_passphrase_file = pass;
	cf_pki_profile_init(&ac.profile);
	cf_pki_key_policy_init(&ac.key_policy);
	if (cf_authority_new(&auth, store, &ac, &err) != CF_OK)
		die("authority", &err);

	rate = issue_rate(auth, csrs, n, 1);
	rate_batch = issue_rate(auth, csrs, n, batch);
	raw = raw_rate(int_key, n < 20000 ? n : 20000);
	cli = cli_rate(dir, inter, int_key, csrs, n_cli);

	printf("bench/issue: %d P-256 certificates, one thread, SQLite registry\n", n);
	printf("  raw verify+sign (EVP)          %9.0f /s        (baseline, %.1f us)\n", raw,
	       1e6 / raw);
	printf("  openssl x509 -req, 1 process   %9.1f certs/s  (baseline)\n", cli);
	printf("  certfleet, 1 commit per cert   %9.0f certs/s  %5.1f us  %3.0f%% of raw  %4.0fx CLI\n",
	       rate, 1e6 / rate, 100.0 * rate / raw, rate / cli);
	printf("  certfleet, %3d per commit      %9.0f certs/s  %5.1f us  %3.0f%% of raw  %4.0fx CLI\n",
	       batch, rate_batch, 1e6 / rate_batch, 100.0 * rate_batch / raw, rate_batch / cli);

	for (i = 0; i < n; i++)
		free(csrs[i].pem);
	free(csrs);
	cf_authority_free(auth);
	cf_store_close(store);
	X509_free(inter);
	EVP_PKEY_free(int_key);
	if (dir_opt == NULL) {
		const char *rm[] = { "rm", "-rf", dir, NULL };

		run_quiet(rm);
	}
	return 0;
}
