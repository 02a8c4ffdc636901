/* certfleet ca: the CA hierarchy and bring-your-own-CA registration. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "pki/pki.h"

#define ROOT_DAYS_DEFAULT         7300
#define INTERMEDIATE_DAYS_DEFAULT 1825
#define REGCODE_TTL_DEFAULT       3600

/* ---- shared helpers -------------------------------------------------- */

/*
 * A CA certificate's key must meet the key policy, and so must its
 * signature unless it is self-signed (a trust anchor's self-signature
 * proves nothing either way).
 */
static int
ca_quality_check(const cf_pki_cert_info *info, X509 *cert, cf_err *err)
{
	cf_pki_key_policy policy;
	cf_pki_quality q;
	bool self_signed = X509_check_issued(cert, cert) == X509_V_OK;

	cf_pki_key_policy_init(&policy);
	cf_pki_key_quality(&q, info, &policy);
	if (q.ok || (self_signed && strcmp(q.reason, "WEAK_SIGNATURE") == 0))
		return CF_OK;
	return cf_err_set(err, CF_EPROTO, q.reason, "CA %s: %s", info->subject, q.detail);
}

/* Fill the certificate facts of a CA record (owned strings), refusing a weak CA. */
static int
ca_record_set_cert(cf_store_ca *rec, X509 *cert, cf_err *err)
{
	cf_pki_cert_info info;
	char label[48];
	size_t len;
	int rc;

	rc = cf_pki_cert_info_get(&info, cert, err);
	if (rc != CF_OK)
		return rc;
	if (!info.is_ca)
		return cf_err_set(err, CF_EINVAL, "NOT_A_CA", "%s is not a CA certificate",
				  info.subject);
	rc = ca_quality_check(&info, cert, err);
	if (rc != CF_OK)
		return rc;
	cli_key_label(label, sizeof(label), &info);
	free(rec->cert_id);
	free(rec->subject);
	free(rec->key_type);
	free(rec->cert_pem);
	rec->cert_pem = NULL;
	rec->cert_id = strdup(info.id);
	rec->subject = strdup(info.subject);
	rec->key_type = strdup(label);
	rec->not_before = info.not_before;
	rec->not_after = info.not_after;
	if (rec->cert_id == NULL || rec->subject == NULL || rec->key_type == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "ca record");
	return cf_pki_cert_to_pem(&rec->cert_pem, &len, cert, err);
}

struct find_parent {
	X509 *cert;
	char *parent;
	int rc;
};

static int
find_parent_cb(const cf_store_ca *ca, void *payload)
{
	struct find_parent *fp = payload;
	X509 *issuer = NULL;

	if (ca->cert_pem == NULL)
		return 0;
	if (cf_pki_cert_from_pem(&issuer, ca->cert_pem, strlen(ca->cert_pem), NULL) != CF_OK)
		return 0;
	if (X509_check_issued(issuer, fp->cert) == X509_V_OK &&
	    cf_pki_cert_signed_by(fp->cert, issuer)) {
		fp->parent = strdup(ca->name);
		if (fp->parent == NULL)
			fp->rc = CF_ENOMEM;
	}
	X509_free(issuer);
	return fp->parent != NULL || fp->rc != CF_OK;
}

int
cli_find_issuer(cf_cli *cli, char **out, X509 *cert, cf_err *err)
{
	struct find_parent fp = { cert, NULL, CF_OK };
	int rc;

	*out = NULL;
	rc = cf_store_ca_list(cli->store, find_parent_cb, &fp, err);
	if (fp.rc != CF_OK)
		rc = cf_err_set(err, fp.rc, NULL, "looking for the issuing CA");
	if (rc < 0) {
		free(fp.parent);
		return rc;
	}
	*out = fp.parent;
	return CF_OK;
}

/* The registry name of CA certificate cert; CF_ENOTFOUND with advice when absent. */
static int
registered_name(cf_cli *cli, char **out, X509 *cert, cf_err *err)
{
	char id[CF_PKI_ID_LEN];
	cf_store_ca rec;
	int rc;

	*out = NULL;
	memset(&rec, 0, sizeof(rec));
	rc = cf_pki_cert_id(id, cert, err);
	if (rc == CF_OK)
		rc = cf_store_ca_get_by_cert(cli->store, &rec, id, err);
	if (rc == CF_ENOTFOUND)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL,
				"the root certificate is not in the registry: "
				"'certfleet ca import --name NAME --cert ROOT.pem' first");
	if (rc == CF_OK) {
		*out = rec.name;
		rec.name = NULL;
	}
	cf_store_ca_clear(&rec);
	return rc;
}

static int
read_cert_file(X509 **out, const char *path, cf_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = cli_read_file(&pem, &len, path, CF_PKI_CERT_MAX, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_pki_cert_from_pem(out, pem, len, err);
	free(pem);
	return rc;
}

/* Load an encrypted key with the passphrase in pass_file. */
static int
read_key_file(EVP_PKEY **out, const char *key_path, const char *pass_file, cf_err *err)
{
	char *pass = NULL;
	size_t pass_len = 0;
	int rc;

	*out = NULL;
	rc = cf_secret_read(&pass, &pass_len, pass_file, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_pki_key_read_encrypted(out, key_path, pass, pass_len, err);
	cf_secret_free(pass, pass_len);
	return rc;
}

/* Load the root's key and certificate, checking that they belong together. */
static int
root_load(cf_pki_ca **out, const cli_root_files *root, cf_err *err)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc;

	*out = NULL;
	if (root->key == NULL || root->cert == NULL || root->pass_file == NULL)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "--root-key, --root-cert and --root-passphrase-file are required");
	rc = read_cert_file(&cert, root->cert, err);
	if (rc == CF_OK)
		rc = read_key_file(&key, root->key, root->pass_file, err);
	if (rc == CF_OK)
		rc = cf_pki_ca_new(out, cert, key, err);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

/* Encrypt key with the data dir's CA passphrase into DIR/ca/<name>.key.pem. */
static int
store_ca_key(cf_cli *cli, char **key_ref_out, const char *name, EVP_PKEY *key, cf_err *err)
{
	char *pass_path = NULL, *pass = NULL, *dir = NULL, *path = NULL, *ref = NULL;
	size_t pass_len = 0, n = strlen(name) + 16;
	int rc;

	*key_ref_out = NULL;
	ref = malloc(n);
	dir = cf_path_join(cli->data_dir, "ca");
	pass_path = cf_config_path(&cli->cfg, cli->cfg.ca_passphrase_file);
	if (ref == NULL || dir == NULL || pass_path == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca key");
		goto out;
	}
	snprintf(ref, n, "ca/%s.key.pem", name);
	path = cf_path_join(cli->data_dir, ref);
	if (path == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca key");
		goto out;
	}
	rc = cf_dir_create(dir, 0700, err);
	if (rc == CF_OK)
		rc = cf_secret_read(&pass, &pass_len, pass_path, err);
	if (rc == CF_OK)
		rc = cf_pki_key_write_encrypted(path, key, pass, pass_len, err);
	if (rc != CF_OK)
		goto out;
	*key_ref_out = ref;
	ref = NULL;
out:
	cf_secret_free(pass, pass_len);
	free(pass_path);
	free(dir);
	free(path);
	free(ref);
	return rc;
}

static bool
has_default_ca(cf_cli *cli)
{
	cf_store_ca def;
	int rc;

	memset(&def, 0, sizeof(def));
	rc = cf_store_ca_get_default(cli->store, &def, NULL);
	cf_store_ca_clear(&def);
	return rc == CF_OK;
}

/*
 * Store a new CA's key under DATA_DIR/ca/ and insert its record, the
 * default flag with it in the same transaction; a key whose record could
 * not be written is removed again.
 */
static int
ca_insert_with_key(cf_cli *cli, cf_store_ca *rec, EVP_PKEY *key, bool make_default, cf_err *err)
{
	char *path;
	int rc;

	rc = store_ca_key(cli, &rec->key_ref, rec->name, key, err);
	if (rc != CF_OK)
		return rc;
	rec->is_default = make_default || !has_default_ca(cli);
	rc = cf_store_ca_insert(cli->store, rec, &cli->actor, err);
	if (rc != CF_OK) {
		path = cf_path_join(cli->data_dir, rec->key_ref);
		if (path != NULL)
			unlink(path);
		free(path);
	}
	return rc;
}

static int
key_type_of(cf_key_type *out, const char *name, cf_key_type def, cf_err *err)
{
	if (name == NULL) {
		*out = def;
		return CF_OK;
	}
	if (cf_pki_key_type_parse(out, name) != CF_OK)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "unknown key type '%s' (EC-P256, EC-P384, ED25519, RSA-2048, "
				  "RSA-3072, RSA-4096)",
				  name);
	return CF_OK;
}

/* Name the registry uses for a CA whose common name was not given. */
static void
default_cn(char *buf, size_t len, const cli_ca_spec *spec, const char *kind)
{
	if (spec->common_name != NULL)
		snprintf(buf, len, "%s", spec->common_name);
	else
		snprintf(buf, len, "certfleet %s CA %s", kind, spec->name);
}


int
cli_ca_make_root(cf_cli *cli, const cli_ca_spec *spec, const cli_root_files *root, cf_err *err)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char *pass = NULL, *pem = NULL;
	size_t pass_len = 0, pem_len = 0;
	cf_store_ca rec;
	cf_key_type kt;
	char cn[160];
	int rc;

	memset(&rec, 0, sizeof(rec));
	if (!cf_name_valid(spec->name))
		return cf_err_set(err, CF_EINVAL, NULL, "invalid CA name '%s'", spec->name);
	rc = key_type_of(&kt, spec->key_type, CF_KEY_EC_P384, err);
	if (rc != CF_OK)
		return rc;
	default_cn(cn, sizeof(cn), spec, "root");
	rc = cf_secret_read(&pass, &pass_len, root->pass_file, err);
	if (rc == CF_OK)
		rc = cf_pki_key_generate(&key, kt, err);
	if (rc == CF_OK)
		rc = cf_pki_root_create(&cert, key, cn, spec->organization,
					spec->days > 0 ? spec->days : ROOT_DAYS_DEFAULT, err);
	if (rc == CF_OK)
		rc = cf_pki_cert_to_pem(&pem, &pem_len, cert, err);
	/* The certificate first: a key without it is useless, the reverse is not. */
	if (rc == CF_OK)
		rc = cf_file_write_atomic(root->cert, pem, pem_len, 0644, true, err);
	if (rc == CF_OK)
		rc = cf_pki_key_write_encrypted(root->key, key, pass, pass_len, err);
	if (rc != CF_OK)
		goto out;
	rec.name = strdup(spec->name);
	rec.status = CF_CA_ACTIVE;
	rec.is_root = true;
	if (rec.name == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca record");
		goto out;
	}
	rc = ca_record_set_cert(&rec, cert, err);
	if (rc == CF_OK)
		rc = cf_store_ca_insert(cli->store, &rec, &cli->actor, err);
out:
	cf_store_ca_clear(&rec);
	cf_secret_free(pass, pass_len);
	free(pem);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int
cli_ca_make_intermediate(cf_cli *cli, const cli_ca_spec *spec, const cli_root_files *root,
			 cf_err *err)
{
	cf_pki_ca *issuer = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	cf_store_ca rec;
	cf_key_type kt;
	char cn[160];
	int rc;

	memset(&rec, 0, sizeof(rec));
	if (!cf_name_valid(spec->name))
		return cf_err_set(err, CF_EINVAL, NULL, "invalid CA name '%s'", spec->name);
	rc = key_type_of(&kt, spec->key_type, CF_KEY_EC_P256, err);
	if (rc != CF_OK)
		return rc;
	default_cn(cn, sizeof(cn), spec, "intermediate");
	rc = root_load(&issuer, root, err);
	if (rc == CF_OK)
		rc = registered_name(cli, &rec.parent, cf_pki_ca_cert(issuer), err);
	if (rc == CF_OK)
		rc = cf_pki_key_generate(&key, kt, err);
	if (rc == CF_OK)
		rc = cf_pki_intermediate_sign(&cert, issuer, key, cn, spec->organization,
					      spec->days > 0 ? spec->days
							     : INTERMEDIATE_DAYS_DEFAULT,
					      err);
	if (rc != CF_OK)
		goto out;
	rec.name = strdup(spec->name);
	rec.status = CF_CA_ACTIVE;
	if (rec.name == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca record");
		goto out;
	}
	rc = ca_record_set_cert(&rec, cert, err);
	if (rc == CF_OK)
		rc = ca_insert_with_key(cli, &rec, key, spec->make_default, err);
out:
	cf_store_ca_clear(&rec);
	X509_free(cert);
	EVP_PKEY_free(key);
	cf_pki_ca_free(issuer);
	return rc;
}

/* ---- verbs ------------------------------------------------------------ */

enum {
	OPT_NAME = 256,
	OPT_CN,
	OPT_ORG,
	OPT_KEY_TYPE,
	OPT_DAYS,
	OPT_OUT_DIR,
	OPT_PASS_FILE,
	OPT_ROOT_KEY,
	OPT_ROOT_CERT,
	OPT_ROOT_PASS,
	OPT_CSR_OUT,
	OPT_CSR,
	OPT_OUT,
	OPT_CERT,
	OPT_KEY,
	OPT_KEY_PASS,
	OPT_VERIF,
	OPT_REASON,
	OPT_TTL,
	OPT_DEFAULT,
};

/* Options every CA-making verb understands; each verb accepts a subset. */
struct ca_opts {
	cli_ca_spec spec;
	cli_root_files root;
	const char *out_dir, *pass_file, *csr_out, *csr, *out, *cert, *key, *key_pass;
	const char *verification, *reason, *ttl;
	bool make_default;
};

static const struct option ca_long_opts[] = {
	{ "name", required_argument, NULL, OPT_NAME },
	{ "cn", required_argument, NULL, OPT_CN },
	{ "org", required_argument, NULL, OPT_ORG },
	{ "key-type", required_argument, NULL, OPT_KEY_TYPE },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "out-dir", required_argument, NULL, OPT_OUT_DIR },
	{ "passphrase-file", required_argument, NULL, OPT_PASS_FILE },
	{ "root-key", required_argument, NULL, OPT_ROOT_KEY },
	{ "root-cert", required_argument, NULL, OPT_ROOT_CERT },
	{ "root-passphrase-file", required_argument, NULL, OPT_ROOT_PASS },
	{ "csr-out", required_argument, NULL, OPT_CSR_OUT },
	{ "csr", required_argument, NULL, OPT_CSR },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "key-passphrase-file", required_argument, NULL, OPT_KEY_PASS },
	{ "verification-cert", required_argument, NULL, OPT_VERIF },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "default", no_argument, NULL, OPT_DEFAULT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/*
 * Parse the options of a CA verb. allowed lists the option codes this verb
 * takes; positional arguments are left at argv[optind..]. Returns an exit
 * code, or -1 to carry on.
 */
static int
ca_parse(struct ca_opts *o, int argc, char **argv, const char *usage, const int *allowed)
{
	int64_t days;
	int c;

	memset(o, 0, sizeof(*o));
	if (cli_wants_help(argc, argv, usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = cli_getopt(argc, argv, ca_long_opts, allowed, usage)) != -1) {
		switch (c) {
		case '?':
			return CLI_EXIT_USAGE;
		case OPT_NAME: o->spec.name = optarg; break;
		case OPT_CN: o->spec.common_name = optarg; break;
		case OPT_ORG: o->spec.organization = optarg; break;
		case OPT_KEY_TYPE: o->spec.key_type = optarg; break;
		case OPT_DAYS:
			if (cf_parse_int64(&days, optarg, 1, 36500) != CF_OK)
				return cli_usage_error(usage, "--days takes 1 to 36500");
			o->spec.days = (int)days;
			break;
		case OPT_OUT_DIR: o->out_dir = optarg; break;
		case OPT_PASS_FILE: o->pass_file = optarg; break;
		case OPT_ROOT_KEY: o->root.key = optarg; break;
		case OPT_ROOT_CERT: o->root.cert = optarg; break;
		case OPT_ROOT_PASS: o->root.pass_file = optarg; break;
		case OPT_CSR_OUT: o->csr_out = optarg; break;
		case OPT_CSR: o->csr = optarg; break;
		case OPT_OUT: o->out = optarg; break;
		case OPT_CERT: o->cert = optarg; break;
		case OPT_KEY: o->key = optarg; break;
		case OPT_KEY_PASS: o->key_pass = optarg; break;
		case OPT_VERIF: o->verification = optarg; break;
		case OPT_REASON: o->reason = optarg; break;
		case OPT_TTL: o->ttl = optarg; break;
		case OPT_DEFAULT: o->make_default = true; break;
		default: break;
		}
	}
	return -1;
}

/* Print the CA just made or changed. */
static int
print_ca(cf_cli *cli, const char *name)
{
	cf_err err = CF_ERR_INIT;
	cf_store_ca ca;
	int rc;

	memset(&ca, 0, sizeof(ca));
	rc = cf_store_ca_get(cli->store, &ca, name, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, name);
	rc = cli_print(cli, cli_ca_json(&ca, false), NULL);
	cf_store_ca_clear(&ca);
	return rc;
}

static const char init_root_usage[] =
	"usage: certfleet ca init-root --name NAME --out-dir DIR --passphrase-file FILE\n"
	"                              [--cn CN] [--org O] [--key-type T] [--days N]\n"
	"\n"
	"Create a self-signed root CA: DIR/NAME.key.pem (PKCS#8, AES-256, encrypted with\n"
	"the passphrase in FILE, mode 0600) and DIR/NAME.pem, and register the certificate\n"
	"(never the key) in the registry. Keep DIR offline. Key type EC-P384 by default;\n"
	"validity 7300 days by default.\n";

static int
ca_init_root(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_NAME, OPT_CN, OPT_ORG, OPT_KEY_TYPE, OPT_DAYS,
				       OPT_OUT_DIR, OPT_PASS_FILE, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	char *key = NULL, *cert = NULL, kname[160], cname[160];
	int rc = ca_parse(&o, argc, argv, init_root_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.spec.name == NULL || o.out_dir == NULL || o.pass_file == NULL)
		return cli_usage_error(init_root_usage,
				       "--name, --out-dir and --passphrase-file are required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	snprintf(kname, sizeof(kname), "%s.key.pem", o.spec.name);
	snprintf(cname, sizeof(cname), "%s.pem", o.spec.name);
	rc = cf_dir_create(o.out_dir, 0700, &err);
	key = cf_path_join(o.out_dir, kname);
	cert = cf_path_join(o.out_dir, cname);
	if (rc == CF_OK && (key == NULL || cert == NULL))
		rc = cf_err_set(&err, CF_ENOMEM, NULL, "paths");
	if (rc == CF_OK) {
		cli_root_files root = { key, cert, o.pass_file };

		rc = cli_ca_make_root(cli, &o.spec, &root, &err);
	}
	free(key);
	free(cert);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "ca init-root");
	return print_ca(cli, o.spec.name);
}

static const char create_int_usage[] =
	"usage: certfleet ca create-intermediate --name NAME [--cn CN] [--org O]\n"
	"           [--key-type T] [--days N] [--default]\n"
	"           (--root-key F --root-cert F --root-passphrase-file F | --csr-out FILE)\n"
	"\n"
	"Create an intermediate CA whose key is kept in DATA_DIR/ca/NAME.key.pem, encrypted\n"
	"with the data dir's CA passphrase. With the root's files it is signed at once and\n"
	"becomes ACTIVE (and the default issuer if there is none, or with --default). With\n"
	"--csr-out it is registered PENDING and its CSR written to FILE, for\n"
	"'certfleet ca sign-intermediate' on the offline machine and 'certfleet ca import'.\n"
	"Key type EC-P256 by default; validity 1825 days by default.\n";

static int
write_intermediate_csr(cf_cli *cli, const struct ca_opts *o, cf_err *err)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	cf_store_ca rec;
	cf_key_type kt;
	char cn[160], subject[200];
	int rc;

	memset(&rec, 0, sizeof(rec));
	rc = key_type_of(&kt, o->spec.key_type, CF_KEY_EC_P256, err);
	if (rc != CF_OK)
		return rc;
	default_cn(cn, sizeof(cn), &o->spec, "intermediate");
	rc = cf_pki_key_generate(&key, kt, err);
	if (rc == CF_OK)
		rc = cf_pki_ca_csr_create(&req, key, cn, o->spec.organization, err);
	if (rc != CF_OK)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "writing the CSR");
		goto out;
	}
	BIO_get_mem_ptr(bio, &mem);
	rc = cf_file_write_atomic(o->csr_out, mem->data, mem->length, 0644, false, err);
	if (rc != CF_OK)
		goto out;
	snprintf(subject, sizeof(subject), "CN=%s", cn);
	rec.name = strdup(o->spec.name);
	rec.subject = strdup(subject);
	rec.key_type = strdup(cf_pki_key_type_name(kt));
	rec.status = CF_CA_PENDING;
	if (rec.name == NULL || rec.subject == NULL || rec.key_type == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca record");
		goto out;
	}
	rc = store_ca_key(cli, &rec.key_ref, o->spec.name, key, err);
	if (rc == CF_OK)
		rc = cf_store_ca_insert(cli->store, &rec, &cli->actor, err);
out:
	cf_store_ca_clear(&rec);
	BIO_free(bio);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

static int
ca_create_intermediate(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_NAME,	OPT_CN,	       OPT_ORG,	      OPT_KEY_TYPE,
				       OPT_DAYS,	OPT_ROOT_KEY,  OPT_ROOT_CERT, OPT_ROOT_PASS,
				       OPT_CSR_OUT, OPT_DEFAULT,   'h',	      0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	int rc = ca_parse(&o, argc, argv, create_int_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.spec.name == NULL)
		return cli_usage_error(create_int_usage, "--name is required");
	if ((o.csr_out != NULL) == (o.root.key != NULL || o.root.cert != NULL))
		return cli_usage_error(create_int_usage,
				       "give either the root's files or --csr-out");
	if (!cf_name_valid(o.spec.name))
		return cli_usage_error(create_int_usage, "invalid CA name '%s'", o.spec.name);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (o.csr_out != NULL) {
		rc = write_intermediate_csr(cli, &o, &err);
		if (rc != CF_OK)
			return cli_fail(rc, &err, "ca create-intermediate");
		fprintf(stderr, "certfleet: CSR written to %s; sign it with the root, then "
				"'certfleet ca import --name %s --cert SIGNED.pem'\n",
			o.csr_out, o.spec.name);
		return print_ca(cli, o.spec.name);
	}
	o.spec.make_default = o.make_default;
	rc = cli_ca_make_intermediate(cli, &o.spec, &o.root, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "ca create-intermediate");
	return print_ca(cli, o.spec.name);
}

static const char sign_int_usage[] =
	"usage: certfleet ca sign-intermediate --csr FILE --out FILE --root-key F\n"
	"           --root-cert F --root-passphrase-file F [--days N] [--cn CN] [--org O]\n"
	"\n"
	"On the offline machine: sign an intermediate CA's CSR with the root. Needs no data\n"
	"dir. The subject is CN (default: the CSR's CN); validity 1825 days by default.\n";

static int
csr_check(const char *pem, size_t len, cf_err *err)
{
	cf_pki_key_policy policy;
	cf_pki_csr *csr = NULL;
	int rc;

	cf_pki_key_policy_init(&policy);
	rc = cf_pki_csr_parse(&csr, pem, len, err);
	if (rc == CF_OK)
		rc = cf_pki_csr_check_policy(csr, &policy, err);
	cf_pki_csr_free(csr);
	return rc;
}

/* The CSR's CN, for an intermediate whose name was chosen where its key was made. */
static int
csr_common_name(char *buf, int len, X509_REQ *req)
{
	X509_NAME *name = X509_REQ_get_subject_name(req);

	return X509_NAME_get_text_by_NID(name, NID_commonName, buf, len) > 0 ? CF_OK : CF_EINVAL;
}

static int
sign_intermediate(const struct ca_opts *o, cf_err *err)
{
	cf_pki_ca *root = NULL;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	size_t pem_len = 0;
	char cn[160];
	int rc;

	rc = cli_read_file(&pem, &pem_len, o->csr, CF_PKI_CSR_MAX, err);
	if (rc != CF_OK)
		goto out;
	/* The same checks as a device CSR gets: signature, key and digest policy. */
	rc = csr_check(pem, pem_len, err);
	if (rc != CF_OK)
		goto out;
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	if (req == NULL) {
		rc = cf_err_set_ossl(err, CF_EPROTO, "BAD_CSR", "%s is not a PEM CSR", o->csr);
		goto out;
	}
	if (o->spec.common_name != NULL)
		snprintf(cn, sizeof(cn), "%s", o->spec.common_name);
	else if (csr_common_name(cn, sizeof(cn), req) != CF_OK) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "the CSR has no CN; give --cn");
		goto out;
	}
	rc = root_load(&root, &o->root, err);
	if (rc == CF_OK)
		rc = cf_pki_intermediate_sign(&cert, root, X509_REQ_get0_pubkey(req), cn,
					      o->spec.organization,
					      o->spec.days > 0 ? o->spec.days
							       : INTERMEDIATE_DAYS_DEFAULT,
					      err);
	free(pem);
	pem = NULL;
	if (rc == CF_OK)
		rc = cf_pki_cert_to_pem(&pem, &pem_len, cert, err);
	if (rc == CF_OK)
		rc = cf_file_write_atomic(o->out, pem, pem_len, 0644, false, err);
out:
	free(pem);
	BIO_free(bio);
	X509_REQ_free(req);
	X509_free(cert);
	cf_pki_ca_free(root);
	return rc;
}

static int
ca_sign_intermediate(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_CSR,	      OPT_OUT,	     OPT_ROOT_KEY, OPT_ROOT_CERT,
				       OPT_ROOT_PASS, OPT_DAYS,	     OPT_CN,	   OPT_ORG,
				       'h',	      0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	int rc = ca_parse(&o, argc, argv, sign_int_usage, allowed);

	(void)cli;
	if (rc >= 0)
		return rc;
	if (o.csr == NULL || o.out == NULL)
		return cli_usage_error(sign_int_usage, "--csr and --out are required");
	rc = sign_intermediate(&o, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "ca sign-intermediate");
	fprintf(stderr, "certfleet: intermediate certificate written to %s\n", o.out);
	return CLI_EXIT_OK;
}

static const char import_usage[] =
	"usage: certfleet ca import --name NAME --cert FILE [--key FILE --key-passphrase-file F]\n"
	"\n"
	"Install a CA certificate in the registry:\n"
	"  - for a PENDING intermediate (from create-intermediate --csr-out): its signed\n"
	"    certificate, which must match the pending key; it becomes ACTIVE;\n"
	"  - a root certificate (self-signed, without --key): registered, its key stays\n"
	"    offline;\n"
	"  - an existing intermediate with its encrypted key: the key is re-encrypted with\n"
	"    the data dir's CA passphrase. Its issuer must already be registered.\n";

static int
import_pending(cf_cli *cli, cf_store_ca *rec, X509 *cert, cf_err *err)
{
	EVP_PKEY *key = NULL;
	char *key_path = NULL, *pass_path = NULL;
	int rc;

	key_path = cf_config_path(&cli->cfg, rec->key_ref);
	pass_path = cf_config_path(&cli->cfg, cli->cfg.ca_passphrase_file);
	if (key_path == NULL || pass_path == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "paths");
		goto out;
	}
	rc = read_key_file(&key, key_path, pass_path, err);
	if (rc != CF_OK)
		goto out;
	if (!cf_pki_key_matches_cert(key, cert)) {
		rc = cf_err_set(err, CF_EINVAL, "KEY_MISMATCH",
				"the certificate is not for the pending key of CA %s", rec->name);
		goto out;
	}
	rc = cli_find_issuer(cli, &rec->parent, cert, err);
	if (rc == CF_OK && rec->parent == NULL)
		rc = cf_err_set(err, CF_ENOTFOUND, NULL,
				"the issuer of the certificate is not registered: import it first");
	if (rc == CF_OK)
		rc = ca_record_set_cert(rec, cert, err);
	if (rc == CF_OK)
		rc = cf_store_ca_activate(cli->store, rec, &cli->actor, err);
	if (rc == CF_OK && !has_default_ca(cli))
		rc = cf_store_ca_set_default(cli->store, rec->name, &cli->actor, err);
out:
	EVP_PKEY_free(key);
	free(key_path);
	free(pass_path);
	return rc;
}

static int
import_new(cf_cli *cli, const struct ca_opts *o, X509 *cert, cf_err *err)
{
	EVP_PKEY *key = NULL;
	cf_store_ca rec;
	bool self_signed = X509_check_issued(cert, cert) == X509_V_OK;
	int rc;

	memset(&rec, 0, sizeof(rec));
	if (self_signed && o->key != NULL)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "a root key is never imported into the data dir: import the "
				  "root certificate alone");
	if (!self_signed && o->key == NULL)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "an intermediate needs --key and --key-passphrase-file");
	rec.name = strdup(o->spec.name);
	if (rec.name == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "ca record");
	rec.status = CF_CA_ACTIVE;
	rec.is_root = self_signed;
	rc = ca_record_set_cert(&rec, cert, err);
	if (rc == CF_OK && !self_signed) {
		rc = read_key_file(&key, o->key, o->key_pass, err);
		if (rc == CF_OK && !cf_pki_key_matches_cert(key, cert))
			rc = cf_err_set(err, CF_EINVAL, "KEY_MISMATCH",
					"the key does not match the certificate");
		if (rc == CF_OK)
			rc = cli_find_issuer(cli, &rec.parent, cert, err);
		if (rc == CF_OK && rec.parent == NULL)
			rc = cf_err_set(err, CF_ENOTFOUND, NULL,
					"the issuer of the certificate is not registered: "
					"import it first");
		if (rc == CF_OK)
			rc = ca_insert_with_key(cli, &rec, key, false, err);
	} else if (rc == CF_OK) {
		rc = cf_store_ca_insert(cli->store, &rec, &cli->actor, err);
	}
	EVP_PKEY_free(key);
	cf_store_ca_clear(&rec);
	return rc;
}

static int
ca_import(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_NAME, OPT_CERT, OPT_KEY, OPT_KEY_PASS, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	cf_store_ca rec;
	X509 *cert = NULL;
	int rc = ca_parse(&o, argc, argv, import_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.spec.name == NULL || o.cert == NULL)
		return cli_usage_error(import_usage, "--name and --cert are required");
	if ((o.key == NULL) != (o.key_pass == NULL))
		return cli_usage_error(import_usage, "--key goes with --key-passphrase-file");
	if (!cf_name_valid(o.spec.name))
		return cli_usage_error(import_usage, "invalid CA name '%s'", o.spec.name);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&rec, 0, sizeof(rec));
	rc = read_cert_file(&cert, o.cert, &err);
	if (rc == CF_OK)
		rc = cf_store_ca_get(cli->store, &rec, o.spec.name, &err);
	if (rc == CF_OK && rec.status != CF_CA_PENDING)
		rc = cf_err_set(&err, CF_EEXISTS, NULL, "CA %s exists and is not pending",
				o.spec.name);
	else if (rc == CF_OK)
		rc = import_pending(cli, &rec, cert, &err);
	else if (rc == CF_ENOTFOUND)
		rc = import_new(cli, &o, cert, &err);
	cf_store_ca_clear(&rec);
	X509_free(cert);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "ca import");
	return print_ca(cli, o.spec.name);
}

static int
list_ca_cb(const cf_store_ca *ca, void *payload)
{
	return json_array_append_new(payload, cli_ca_json(ca, false)) == 0 ? 0 : CF_ENOMEM;
}

static const char list_usage[] = "usage: certfleet ca list\n\nList every CA.\n";

static int
ca_list(cf_cli *cli, int argc, char **argv)
{
	static const char *const columns[] = { "name",	   "kind",     "status", "default",
					       "keyType", "notAfter", "parent", NULL };
	cf_err err = CF_ERR_INIT;
	json_t *rows;
	int rc;

	if (cli_wants_help(argc, argv, list_usage))
		return CLI_EXIT_OK;
	if (argc != 1)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[1]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rows = json_array();
	rc = cf_store_ca_list(cli->store, list_ca_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "ca list");
	}
	return cli_print(cli, rows, columns);
}

/* Verbs that take one CA name and change or show it. */
static int
ca_by_name(cf_cli *cli, int argc, char **argv, const char *usage, int what)
{
	static const int allowed[] = { OPT_REASON, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	cf_store_ca ca;
	const char *name;
	int rc = ca_parse(&o, argc, argv, usage, allowed);

	if (rc >= 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error(usage, "one CA name is required");
	name = argv[optind];
	if (what == CF_CA_REVOKED && (o.reason == NULL || !cf_pki_revoke_reason_valid(o.reason)))
		return cli_usage_error(usage, "--reason takes an RFC 5280 reason");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	switch (what) {
	case -1: /* describe */
		memset(&ca, 0, sizeof(ca));
		rc = cf_store_ca_get(cli->store, &ca, name, &err);
		if (rc != CF_OK)
			return cli_fail(rc, &err, name);
		rc = cli_print(cli, cli_ca_json(&ca, true), NULL);
		cf_store_ca_clear(&ca);
		return rc;
	case CF_CA_ACTIVE: /* set-default */
		rc = cf_store_ca_set_default(cli->store, name, &cli->actor, &err);
		break;
	default:
		rc = cf_store_ca_set_status(cli->store, name, (cf_ca_status)what, o.reason,
					    &cli->actor, &err);
		break;
	}
	if (rc != CF_OK)
		return cli_fail(rc, &err, name);
	return print_ca(cli, name);
}

static const char describe_usage[] = "usage: certfleet ca describe NAME\n";
static const char set_default_usage[] =
	"usage: certfleet ca set-default NAME\n\nMake NAME the default issuer of device "
	"certificates.\n";
static const char retire_usage[] =
	"usage: certfleet ca retire NAME\n\nStop issuing from NAME; its certificates stay "
	"valid.\n";
static const char revoke_usage[] =
	"usage: certfleet ca revoke NAME --reason R\n\nRevoke the CA (final). R is an RFC 5280 "
	"reason: unspecified, keyCompromise,\ncACompromise, affiliationChanged, superseded, "
	"cessationOfOperation, ...\n";

static int
ca_describe(cf_cli *cli, int argc, char **argv)
{
	return ca_by_name(cli, argc, argv, describe_usage, -1);
}

static int
ca_set_default(cf_cli *cli, int argc, char **argv)
{
	return ca_by_name(cli, argc, argv, set_default_usage, CF_CA_ACTIVE);
}

static int
ca_retire(cf_cli *cli, int argc, char **argv)
{
	return ca_by_name(cli, argc, argv, retire_usage, CF_CA_RETIRED);
}

static int
ca_revoke(cf_cli *cli, int argc, char **argv)
{
	return ca_by_name(cli, argc, argv, revoke_usage, CF_CA_REVOKED);
}

static const char regcode_usage[] =
	"usage: certfleet ca registration-code [--ttl DURATION]\n"
	"\n"
	"Print a one-time registration code (valid 1h by default) for 'ca register': make\n"
	"a verification certificate with subject CN=<code>, signed by the CA's key.\n";

static int
ca_registration_code(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_TTL, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	int64_t ttl = REGCODE_TTL_DEFAULT;
	char code[65];
	json_t *out;
	int rc = ca_parse(&o, argc, argv, regcode_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.ttl != NULL && cf_duration_parse(&ttl, o.ttl) != CF_OK)
		return cli_usage_error(regcode_usage, "--ttl takes a duration such as 1h");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cf_store_regcode_create(cli->store, code, ttl, &cli->actor, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "ca registration-code");
	if (!cli->json) {
		puts(code);
		return CLI_EXIT_OK;
	}
	out = json_pack("{s:s, s:o}", "registrationCode", code, "expiresAt",
			cli_json_time(cf_time_now() + ttl));
	return cli_print(cli, out, NULL);
}

static const char register_usage[] =
	"usage: certfleet ca register --name NAME --cert CA.pem --verification-cert V.pem\n"
	"\n"
	"Register a CA certificate issued elsewhere (bring your own CA). Proof of possession:\n"
	"V.pem must have the subject CN=<code from 'ca registration-code'> and be signed by\n"
	"the CA's key. Certificates issued by the CA can then be added with 'cert register'.\n";

static int
register_external(cf_cli *cli, const struct ca_opts *o, cf_err *err)
{
	X509 *ca = NULL, *verif = NULL;
	cf_pki_cert_info vinfo;
	cf_store_ca rec;
	int rc;

	memset(&rec, 0, sizeof(rec));
	rc = read_cert_file(&ca, o->cert, err);
	if (rc == CF_OK)
		rc = read_cert_file(&verif, o->verification, err);
	if (rc == CF_OK)
		rc = cf_pki_cert_info_get(&vinfo, verif, err);
	if (rc != CF_OK)
		goto out;
	if (!cf_pki_cert_signed_by(verif, ca)) {
		rc = cf_err_set(err, CF_EPROTO, "BAD_VERIFICATION_CERTIFICATE",
				"the verification certificate is not signed by the CA's key");
		goto out;
	}
	rec.name = strdup(o->spec.name);
	if (rec.name == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "ca record");
		goto out;
	}
	rec.status = CF_CA_ACTIVE;
	rec.external = true;
	rec.is_root = X509_check_issued(ca, ca) == X509_V_OK;
	rc = ca_record_set_cert(&rec, ca, err);
	if (rc == CF_OK && !rec.is_root)
		rc = cli_find_issuer(cli, &rec.parent, ca, err);
	if (rc == CF_OK)
		rc = cf_store_ca_register(cli->store, &rec, vinfo.common_name, &cli->actor, err);
	if (rc == CF_ENOTFOUND && err != NULL && err->reason == NULL)
		err->reason = "BAD_REGISTRATION_CODE";
out:
	cf_store_ca_clear(&rec);
	X509_free(ca);
	X509_free(verif);
	return rc;
}

static int
ca_register(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_NAME, OPT_CERT, OPT_VERIF, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct ca_opts o;
	int rc = ca_parse(&o, argc, argv, register_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.spec.name == NULL || o.cert == NULL || o.verification == NULL)
		return cli_usage_error(register_usage,
				       "--name, --cert and --verification-cert are required");
	if (!cf_name_valid(o.spec.name))
		return cli_usage_error(register_usage, "invalid CA name '%s'", o.spec.name);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = register_external(cli, &o, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "ca register");
	return print_ca(cli, o.spec.name);
}

static const char pem_usage[] =
	"usage: certfleet ca pem NAME [--chain]\n"
	"\n"
	"Print the CA certificate; with --chain, followed by its issuers up to the root\n"
	"(issuer first, the order of a device's caChainPem).\n";

static int
ca_pem(cf_cli *cli, int argc, char **argv)
{
	cf_err err = CF_ERR_INIT;
	cf_store_ca ca;
	char *name = NULL;
	bool chain = false;
	int i, depth, rc;

	if (cli_wants_help(argc, argv, pem_usage))
		return CLI_EXIT_OK;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--chain") == 0)
			chain = true;
		else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			return cli_usage_error(pem_usage, "unexpected argument '%s'", argv[i]);
	}
	if (name == NULL)
		return cli_usage_error(pem_usage, "a CA name is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	name = strdup(name);
	/* Walk up the parents; the depth bound guards against a cycle in a bad registry. */
	for (depth = 0; name != NULL && depth < 8; depth++) {
		memset(&ca, 0, sizeof(ca));
		rc = cf_store_ca_get(cli->store, &ca, name, &err);
		free(name);
		name = NULL;
		if (rc != CF_OK)
			return cli_fail(rc, &err, "ca pem");
		if (ca.cert_pem == NULL) {
			cf_store_ca_clear(&ca);
			return cli_fail(CF_ESTATE, NULL, "ca pem: the CA is pending");
		}
		fputs(ca.cert_pem, stdout);
		if (chain && !ca.is_root && ca.parent != NULL)
			name = strdup(ca.parent);
		cf_store_ca_clear(&ca);
	}
	free(name);
	return CLI_EXIT_OK;
}

static const cli_verb verbs[] = {
	{ "init-root", ca_init_root, "create an offline root CA and register its certificate" },
	{ "create-intermediate", ca_create_intermediate,
	  "create an intermediate CA (signed now, or a CSR for offline signing)" },
	{ "sign-intermediate", ca_sign_intermediate, "sign an intermediate's CSR with the root" },
	{ "import", ca_import, "install a signed intermediate, a root certificate, or a CA" },
	{ "list", ca_list, "list CAs" },
	{ "describe", ca_describe, "show one CA" },
	{ "pem", ca_pem, "print a CA certificate or its chain" },
	{ "set-default", ca_set_default, "make a CA the default issuer" },
	{ "retire", ca_retire, "stop issuing from a CA" },
	{ "revoke", ca_revoke, "revoke a CA" },
	{ "registration-code", ca_registration_code, "a code for bring-your-own-CA registration" },
	{ "register", ca_register, "register an external CA with proof of possession" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_ca(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "ca", verbs, argc, argv);
}
