/*
 * certfleet service: identities for the system's own MQTT clients.
 *
 * A service principal is a thing with the attribute role=service and a
 * certificate with the policy certfleet-service, which lets it speak the
 * server's side of protocol.md for every device: publish csr_req, crt and
 * csr_rej, subscribe to and receive csr_res, crt_ack and crt_err. Bulk
 * rotation skips service principals (cf_rotation_start_many()).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "cli.h"

#define SERVICE_POLICY "certfleet-service"

enum {
	OPT_OUT_DIR = 256,
	OPT_DAYS,
};

static const char create_usage[] =
	"usage: certfleet service create NAME [--out-dir DIR] [--days N]\n"
	"\n"
	"Create a service principal: the thing NAME with the attribute role=service, the\n"
	"policy " SERVICE_POLICY " (created when missing: publish P/+/csr_req, P/+/crt,\n"
	"P/+/csr_rej; subscribe and receive P/+/csr_res, P/+/crt_ack, P/+/crt_err, where P\n"
	"is the config's topic_prefix), an EC P-256 key made here and a certificate for it\n"
	"from the default issuer. Writes DIR/NAME.pem (the certificate, then the issuing\n"
	"CA) and DIR/NAME.key (unencrypted PKCS#8, mode 0600). DIR defaults to\n"
	"DATA_DIR/service, so that 'certfleet service create certfleetd' matches\n"
	"certfleetd's defaults. Run again for an existing service principal, it renews it:\n"
	"a new key and certificate replace the files, then its other ACTIVE certificates\n"
	"go INACTIVE (certfleetd uses the new pair at its next connect, at once on SIGHUP).\n"
	"A thing that is not a service principal exits 4.\n";

struct service_opts {
	const char *name;
	const char *out_dir; /* NULL: DATA_DIR/service */
	int days;            /* 0: cert_days */
};

static int
create_parse(struct service_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out-dir", required_argument, NULL, OPT_OUT_DIR },
		{ "days", required_argument, NULL, OPT_DAYS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	if (cli_wants_help(argc, argv, create_usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_OUT_DIR) {
			o->out_dir = optarg;
		} else if (c == OPT_DAYS) {
			if (cf_parse_int64(&v, optarg, 1, 36500) != CF_OK)
				return cli_usage_error(create_usage, "--days takes 1 to 36500");
			o->days = (int)v;
		} else {
			return cli_usage_error(create_usage, "option not understood here");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(create_usage, "one service name is required");
	o->name = argv[optind];
	if (!cf_name_valid(o->name))
		return cli_usage_error(create_usage, "'%s' is not a valid name", o->name);
	return -1;
}

/* The thing NAME as a service principal: created, or found with role=service. */
static int
ensure_thing(cf_cli *cli, const char *name, cf_err *err)
{
	cf_store_thing thing;
	const char *role;
	json_t *attrs;
	int rc;

	memset(&thing, 0, sizeof(thing));
	rc = cf_store_thing_get(cli->store, &thing, name, err);
	if (rc == CF_ENOTFOUND) {
		cf_err_clear(err);
		return cf_store_thing_insert(cli->store, name, "{\"role\":\"service\"}",
					     &cli->actor, err);
	}
	if (rc != CF_OK)
		return rc;
	attrs = json_loads(thing.attributes, 0, NULL);
	role = json_string_value(json_object_get(attrs, "role"));
	if (role == NULL || strcmp(role, "service") != 0)
		rc = cf_err_set(err, CF_EEXISTS, NULL,
				"thing '%s' exists and is not a service principal (role=service)",
				name);
	json_decref(attrs);
	cf_store_thing_clear(&thing);
	return rc;
}

/* The policy, created when missing; an existing one is kept as it is. */
static int
ensure_policy(cf_cli *cli, cf_err *err)
{
	char *doc = cf_store_policy_service_document(cli->cfg.topic_prefix);
	int rc;

	if (doc == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "policy document");
	rc = cf_store_policy_insert(cli->store, SERVICE_POLICY, doc, &cli->actor, err);
	if (rc == CF_EEXISTS) {
		cf_err_clear(err);
		rc = CF_OK;
	}
	free(doc);
	return rc;
}

/* A CSR for key, as DER, freed with OPENSSL_free(). */
static int
csr_der(unsigned char **out, int *len, EVP_PKEY *key, const char *name, cf_err *err)
{
	X509_REQ *req = NULL;
	int rc;

	*out = NULL;
	rc = cf_pki_ca_csr_create(&req, key, name, NULL, err);
	if (rc != CF_OK)
		return rc;
	*len = i2d_X509_REQ(req, out);
	X509_REQ_free(req);
	if (*len <= 0)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "encoding the request");
	return CF_OK;
}

/* The thing, the policy and the certificate, all in one registry transaction. */
static int
register_service(cf_cli *cli, cf_authority *auth, const struct service_opts *o,
		 const unsigned char *csr, int csr_len, cf_authority_result *res, cf_err *err)
{
	static const char *const policies[] = { SERVICE_POLICY };
	cf_authority_request req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.thing = o->name;
	req.csr = csr;
	req.csr_len = (size_t)csr_len;
	req.days = o->days;
	req.policies = policies;
	req.npolicies = 1;
	req.status = CF_CERT_ACTIVE;
	rc = cf_store_tx_begin(cli->store, err);
	if (rc != CF_OK)
		return rc;
	rc = ensure_thing(cli, o->name, err);
	if (rc == CF_OK)
		rc = ensure_policy(cli, err);
	if (rc == CF_OK)
		rc = cf_authority_issue(auth, res, &req, &cli->actor, err);
	if (rc == CF_OK)
		return cf_store_tx_commit(cli->store, err);
	cf_store_tx_rollback(cli->store);
	return rc;
}

/* The key as unencrypted PKCS#8 PEM, mode 0600; the PEM is wiped from memory. */
static int
key_write(const char *path, EVP_PKEY *key, cf_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	int rc = cf_pki_key_pem_plain(&pem, &len, key, err);

	if (rc == CF_OK)
		rc = cf_file_write_atomic(path, pem, len, 0600, false, err);
	if (pem != NULL)
		OPENSSL_secure_clear_free(pem, len + 1);
	return rc;
}

/* The certificate, then the CA that issued it: what a TLS client presents. */
static int
chain_write(cf_cli *cli, const char *path, const char *cert_id, cf_err *err)
{
	cf_store_cert cert;
	cf_store_ca ca;
	char *text = NULL;
	size_t a, b;
	int rc;

	memset(&cert, 0, sizeof(cert));
	memset(&ca, 0, sizeof(ca));
	rc = cf_store_cert_get(cli->store, &cert, cert_id, err);
	if (rc == CF_OK)
		rc = cf_store_ca_get(cli->store, &ca, cert.ca, err);
	if (rc == CF_OK && ca.cert_pem == NULL)
		rc = cf_err_set(err, CF_ESTATE, NULL, "CA '%s' has no certificate", ca.name);
	if (rc == CF_OK) {
		a = strlen(cert.pem);
		b = strlen(ca.cert_pem);
		text = malloc(a + b + 1);
		if (text == NULL)
			rc = cf_err_set(err, CF_ENOMEM, NULL, "certificate chain");
	}
	if (rc == CF_OK) {
		memcpy(text, cert.pem, a);
		memcpy(text + a, ca.cert_pem, b + 1);
		rc = cf_file_write_atomic(path, text, a + b, 0644, false, err);
	}
	free(text);
	cf_store_ca_clear(&ca);
	cf_store_cert_clear(&cert);
	return rc;
}

/* The output directory, made 0700 when missing, and the two file names in it. */
static int
out_paths(cf_cli *cli, const struct service_opts *o, char **dir, char **pem, char **key,
	  cf_err *err)
{
	char name[CF_NAME_MAX + 8];
	int rc;

	*dir = o->out_dir != NULL ? strdup(o->out_dir) : cf_path_join(cli->data_dir, "service");
	if (*dir == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "paths");
	rc = cf_dir_create(*dir, 0700, err);
	if (rc != CF_OK)
		return rc;
	if (access(*dir, W_OK) != 0)
		return cf_err_set(err, CF_EIO, NULL, "cannot write to %s: %s", *dir,
				  strerror(errno));
	snprintf(name, sizeof(name), "%s.pem", o->name);
	*pem = cf_path_join(*dir, name);
	snprintf(name, sizeof(name), "%s.key", o->name);
	*key = cf_path_join(*dir, name);
	if (*pem == NULL || *key == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "paths");
	return CF_OK;
}

static int
print_result(cf_cli *cli, const struct service_opts *o, const char *id, const char *pem,
	     const char *key)
{
	return cli_print(cli, json_pack("{s:s, s:s, s:s, s:s, s:s}", "thing", o->name,
					"certificateId", id, "policy", SERVICE_POLICY, "certFile",
					pem, "keyFile", key),
			 NULL);
}

struct superseded {
	char (*ids)[CF_PKI_ID_LEN];
	size_t n, cap;
	const char *keep;
};

static int
superseded_cb(const cf_store_cert *cert, void *payload)
{
	struct superseded *s = payload;

	if (strcmp(cert->id, s->keep) == 0)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? s->cap * 2 : 8;
		void *ids = realloc(s->ids, cap * sizeof(*s->ids));

		if (ids == NULL)
			return CF_ENOMEM;
		s->ids = ids;
		s->cap = cap;
	}
	snprintf(s->ids[s->n++], CF_PKI_ID_LEN, "%s", cert->id);
	return 0;
}

/*
 * A renewal: the service's other ACTIVE certificates go INACTIVE once the
 * new pair is on disk, so that one identity is in use at a time. certfleetd
 * picks the new files up at its next connect (or at once on SIGHUP).
 */
static int
retire_superseded(cf_cli *cli, const char *name, const char *keep, cf_err *err)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	cf_store_actor actor = { cli->who, "renewed by certfleet service create" };
	struct superseded s;
	size_t i;
	int rc;

	memset(&s, 0, sizeof(s));
	s.keep = keep;
	filter.thing = name;
	filter.status = CF_CERT_ACTIVE;
	rc = cf_store_cert_list(cli->store, &filter, superseded_cb, &s, err);
	if (rc == CF_ENOMEM)
		rc = cf_err_set(err, CF_ENOMEM, NULL, "superseded certificates");
	for (i = 0; rc == CF_OK && i < s.n; i++)
		rc = cf_store_cert_transition(cli->store, s.ids[i], CF_CERT_INACTIVE, NULL, &actor,
					      err);
	free(s.ids);
	return rc;
}

static int
service_create(cf_cli *cli, int argc, char **argv)
{
	cf_authority_result res;
	cf_authority *auth = NULL;
	cf_pki_ca *signer = NULL;
	EVP_PKEY *key = NULL;
	unsigned char *csr = NULL;
	char *dir = NULL, *pem_path = NULL, *key_path = NULL;
	cf_err err = CF_ERR_INIT;
	struct service_opts o;
	bool issued;
	int rc, code, csr_len = 0;

	rc = create_parse(&o, argc, argv);
	if (rc >= 0)
		return rc;
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&res, 0, sizeof(res));
	rc = out_paths(cli, &o, &dir, &pem_path, &key_path, &err);
	if (rc == CF_OK)
		rc = cli_authority_open(cli, &auth, &err);
	/* The CA key is decrypted before the registry's write lock is taken. */
	if (rc == CF_OK)
		rc = cf_authority_signer(&signer, auth, NULL, &err);
	if (rc == CF_OK)
		rc = cf_pki_key_generate(&key, CF_KEY_EC_P256, &err);
	if (rc == CF_OK)
		rc = csr_der(&csr, &csr_len, key, o.name, &err);
	if (rc == CF_OK)
		rc = register_service(cli, auth, &o, csr, csr_len, &res, &err);
	issued = rc == CF_OK;
	if (rc == CF_OK)
		rc = key_write(key_path, key, &err);
	if (rc == CF_OK)
		rc = chain_write(cli, pem_path, res.id, &err);
	if (rc == CF_OK)
		rc = retire_superseded(cli, o.name, res.id, &err);
	if (rc != CF_OK && issued)
		fprintf(stderr, "certfleet: certificate %s was issued for '%s' but its files "
				"are incomplete: run 'service create' again\n",
			res.id, o.name);
	if (rc == CF_OK)
		code = print_result(cli, &o, res.id, pem_path, key_path);
	else
		code = cli_fail(rc, &err, "service create");
	OPENSSL_free(csr);
	EVP_PKEY_free(key); /* OpenSSL wipes the private key */
	cf_authority_result_clear(&res);
	cf_authority_free(auth);
	free(dir);
	free(pem_path);
	free(key_path);
	return code;
}

static const cli_verb verbs[] = {
	{ "create", service_create, "create a service principal with its key and certificate" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_service(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "service", verbs, argc, argv);
}
