/* certfleet cert: issue, register, inspect and change device certificates. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authority/authority.h"
#include "cli.h"
#include "pki/pki.h"

#define MAX_POLICIES 16

enum {
	OPT_THING = 256,
	OPT_CSR,
	OPT_CA,
	OPT_DAYS,
	OPT_POLICY,
	OPT_OUT,
	OPT_STATUS,
	OPT_CERT,
	OPT_EXPIRING,
	OPT_LIMIT,
	OPT_REASON,
	OPT_WHY,
	OPT_REPLACES,
	OPT_DELETED,
};

static const struct option cert_long_opts[] = {
	{ "thing", required_argument, NULL, OPT_THING },
	{ "csr", required_argument, NULL, OPT_CSR },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "status", required_argument, NULL, OPT_STATUS },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "expiring-within", required_argument, NULL, OPT_EXPIRING },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "why", required_argument, NULL, OPT_WHY },
	{ "replaces", required_argument, NULL, OPT_REPLACES },
	{ "deleted", no_argument, NULL, OPT_DELETED },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct cert_opts {
	const char *thing, *csr, *ca, *out, *cert, *reason, *why, *replaces;
	const char *policies[MAX_POLICIES];
	size_t npolicies;
	int days;
	int status; /* -1: not given */
	int64_t expiring_within, limit;
	bool deleted;
};

/* Parse a cert verb's options (allowed: the codes it takes). -1 to carry on, else exit code. */
static int
cert_parse(struct cert_opts *o, int argc, char **argv, const char *usage, const int *allowed)
{
	cf_cert_status status;
	int64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->status = -1;
	if (cli_wants_help(argc, argv, usage))
		return CLI_EXIT_OK;
	optind = 0;
	while ((c = cli_getopt(argc, argv, cert_long_opts, allowed, usage)) != -1) {
		switch (c) {
		case '?':
			return CLI_EXIT_USAGE;
		case OPT_THING: o->thing = optarg; break;
		case OPT_DELETED: o->deleted = true; break;
		case OPT_CSR: o->csr = optarg; break;
		case OPT_CA: o->ca = optarg; break;
		case OPT_OUT: o->out = optarg; break;
		case OPT_CERT: o->cert = optarg; break;
		case OPT_REASON: o->reason = optarg; break;
		case OPT_WHY: o->why = optarg; break;
		case OPT_REPLACES: o->replaces = optarg; break;
		case OPT_DAYS:
			if (cf_parse_int64(&v, optarg, 1, 36500) != CF_OK)
				return cli_usage_error(usage, "--days takes 1 to 36500");
			o->days = (int)v;
			break;
		case OPT_POLICY:
			if (o->npolicies == MAX_POLICIES)
				return cli_usage_error(usage, "at most %d --policy", MAX_POLICIES);
			o->policies[o->npolicies++] = optarg;
			break;
		case OPT_STATUS:
			if (cf_cert_status_parse(&status, optarg) != CF_OK)
				return cli_usage_error(usage, "unknown status '%s'", optarg);
			o->status = (int)status;
			break;
		case OPT_EXPIRING:
			if (cf_duration_parse(&o->expiring_within, optarg) != CF_OK)
				return cli_usage_error(usage, "--expiring-within takes a duration "
							      "such as 30d");
			break;
		case OPT_LIMIT:
			if (cf_parse_int64(&o->limit, optarg, 1, INT64_MAX) != CF_OK)
				return cli_usage_error(usage, "--limit takes a positive number");
			break;
		default:
			break;
		}
	}
	return -1;
}

/* ---- issue ------------------------------------------------------------ */

static const char issue_usage[] =
	"usage: certfleet cert issue --thing NAME --csr FILE [--ca NAME] [--days N]\n"
	"           [--policy NAME]... [--status S] [--replaces ID] [--out FILE]\n"
	"\n"
	"Issue a certificate for an existing thing from a CSR (PEM or DER, at most 16 KiB).\n"
	"The subject is CN=NAME with the SAN URI urn:certfleet:thing:NAME, whatever the CSR\n"
	"asks. Prints the certificate id; --out writes the PEM. The default CA is the\n"
	"default issuer, the default policy the config's default_policy, the default status\n"
	"ACTIVE (PENDING_ACTIVATION and INACTIVE may be asked for).\n"
	"--replaces ID refuses a CSR that reuses the key of certificate ID (KEY_REUSE).\n"
	"A refused CSR exits 6 with a reason: BAD_CSR, BAD_SIGNATURE, WEAK_KEY, KEY_REUSE.\n";

/* Refuse an --out path that cannot be written, before anything is issued. */
static int
out_writable(const char *path, cf_err *err)
{
	char *dir = strdup(path);
	char *slash;
	int ok;

	if (dir == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "--out");
	slash = strrchr(dir, '/');
	if (slash == NULL)
		ok = access(".", W_OK) == 0;
	else if (slash == dir)
		ok = access("/", W_OK) == 0;
	else {
		*slash = '\0';
		ok = access(dir, W_OK) == 0;
	}
	free(dir);
	if (!ok)
		return cf_err_set(err, CF_EIO, NULL, "cannot write %s: %s", path, strerror(errno));
	return CF_OK;
}

static int
cert_issue(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_THING,  OPT_CSR, OPT_CA,	  OPT_DAYS, OPT_POLICY,
				       OPT_OUT,	   OPT_STATUS, OPT_REPLACES, 'h',	0 };
	cf_authority_request req;
	cf_authority_result res;
	cf_authority *auth = NULL;
	cf_err err = CF_ERR_INIT;
	cf_store_cert old;
	struct cert_opts o;
	char *csr = NULL;
	size_t csr_len = 0;
	int rc = cert_parse(&o, argc, argv, issue_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.thing == NULL || o.csr == NULL || optind != argc)
		return cli_usage_error(issue_usage, "--thing and --csr are required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&res, 0, sizeof(res));
	memset(&req, 0, sizeof(req));
	memset(&old, 0, sizeof(old));
	rc = o.out != NULL ? out_writable(o.out, &err) : CF_OK;
	if (rc == CF_OK && o.replaces != NULL)
		rc = cf_store_cert_get(cli->store, &old, o.replaces, &err);
	/* One byte over the limit is read so that an oversized CSR says BAD_CSR. */
	if (rc == CF_OK) {
		rc = cli_read_file(&csr, &csr_len, o.csr, 2 * CF_PKI_CSR_MAX, &err);
		if (rc == CF_EINVAL)
			err.reason = "BAD_CSR";
	}
	if (rc == CF_OK)
		rc = cli_authority_open(cli, &auth, &err);
	if (rc != CF_OK)
		goto out;
	req.thing = o.thing;
	req.csr = csr;
	req.csr_len = csr_len;
	req.ca = o.ca;
	req.days = o.days;
	req.policies = o.policies;
	req.npolicies = o.npolicies;
	req.status = o.status >= 0 ? (cf_cert_status)o.status : CF_CERT_ACTIVE;
	req.reject_spki = old.spki_sha256; /* NULL without --replaces */
	rc = cf_authority_issue(auth, &res, &req, &cli->actor, &err);
	if (rc == CF_OK && o.out != NULL) {
		rc = cf_file_write_atomic(o.out, res.pem, strlen(res.pem), 0644, false, &err);
		if (rc != CF_OK) {
			/* Issued all the same: say which certificate, so that nothing is lost. */
			puts(res.id);
			fprintf(stderr, "certfleet: certificate %s was issued; 'certfleet cert pem "
					"%s' prints it\n",
				res.id, res.id);
		}
	}
out:
	free(csr);
	cf_store_cert_clear(&old);
	cf_authority_free(auth);
	if (rc != CF_OK) {
		cf_authority_result_clear(&res);
		return cli_fail(rc, &err, "cert issue");
	}
	if (cli->json)
		rc = cli_print(cli, json_pack("{s:s, s:s, s:s}", "certificateId", res.id,
					      "thing", o.thing, "status",
					      cf_cert_status_name(req.status)),
			       NULL);
	else
		puts(res.id);
	cf_authority_result_clear(&res);
	return rc;
}

/* ---- register --------------------------------------------------------- */

static const char register_usage[] =
	"usage: certfleet cert register --cert FILE --thing NAME [--policy NAME]...\n"
	"           [--status S]\n"
	"\n"
	"Register a device certificate issued by a registered CA (for example an external\n"
	"CA added with 'ca register'). Its issuer must verify, its key pass the key policy,\n"
	"and it must not be expired or a CA. Status ACTIVE by default.\n";


static int
register_cert(cf_cli *cli, const struct cert_opts *o, char id_out[CF_PKI_ID_LEN], cf_err *err)
{
	cf_pki_key_policy policy;
	cf_pki_quality quality;
	cf_pki_cert_info info;
	cf_store_cert rec;
	X509 *cert = NULL;
	char *pem = NULL, *issuer = NULL, label[48];
	size_t len = 0;
	int rc;

	memset(&rec, 0, sizeof(rec));
	rc = cli_read_file(&pem, &len, o->cert, CF_PKI_CERT_MAX, err);
	if (rc == CF_OK)
		rc = cf_pki_cert_from_pem(&cert, pem, len, err);
	if (rc == CF_OK)
		rc = cf_pki_cert_info_get(&info, cert, err);
	if (rc != CF_OK)
		goto out;
	cf_pki_key_policy_init(&policy);
	policy.rsa_min_bits = (unsigned int)cli->cfg.key_min_rsa_bits;
	cf_pki_key_quality(&quality, &info, &policy);
	if (info.is_ca)
		rc = cf_err_set(err, CF_EINVAL, "BAD_CERTIFICATE", "a CA certificate is not a "
								   "device certificate");
	else if (info.not_after <= cf_time_now())
		rc = cf_err_set(err, CF_EINVAL, "EXPIRED", "the certificate expired");
	else if (!quality.ok)
		rc = cf_err_set(err, CF_EPROTO, quality.reason, "%s", quality.detail);
	else
		rc = cli_find_issuer(cli, &issuer, cert, err);
	if (rc == CF_OK && issuer == NULL)
		rc = cf_err_set(err, CF_ENOTFOUND, "UNKNOWN_CA",
				"no registered CA issued this certificate ('ca register' it first)");
	if (rc != CF_OK)
		goto out;
	free(pem);
	pem = NULL;
	rc = cf_pki_cert_to_pem(&pem, &len, cert, err);
	if (rc != CF_OK)
		goto out;
	cli_key_label(label, sizeof(label), &info);
	rec.id = info.id;
	rec.serial = info.serial;
	rec.ca = issuer;
	rec.thing = (char *)(uintptr_t)o->thing; /* read-only for the insert */
	rec.status = o->status >= 0 ? (cf_cert_status)o->status : CF_CERT_ACTIVE;
	rec.not_before = info.not_before;
	rec.not_after = info.not_after;
	rec.key_type = label;
	rec.key_bits = info.key_bits;
	rec.key_roca = info.key_roca;
	rec.sig_alg = info.sig_alg;
	rec.spki_sha256 = info.spki_sha256;
	rec.pem = pem;
	if (o->npolicies > 0)
		rc = cf_store_cert_insert(cli->store, &rec, o->policies, o->npolicies, true,
					  &cli->actor, err);
	else if (cli->cfg.default_policy[0] != '\0')
		rc = cf_store_cert_insert(cli->store, &rec,
					  (const char *const *)&cli->cfg.default_policy, 1, true,
					  &cli->actor, err);
	else /* default_policy is empty: no policy, as for issued certificates */
		rc = cf_store_cert_insert(cli->store, &rec, NULL, 0, true, &cli->actor, err);
	if (rc == CF_OK)
		memcpy(id_out, info.id, CF_PKI_ID_LEN);
out:
	free(issuer);
	free(pem);
	X509_free(cert);
	return rc;
}

static int
cert_register(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_CERT, OPT_THING, OPT_POLICY, OPT_STATUS, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct cert_opts o;
	char id[CF_PKI_ID_LEN];
	int rc = cert_parse(&o, argc, argv, register_usage, allowed);

	if (rc >= 0)
		return rc;
	if (o.cert == NULL || o.thing == NULL || optind != argc)
		return cli_usage_error(register_usage, "--cert and --thing are required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	rc = register_cert(cli, &o, id, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, "cert register");
	if (!cli->json) {
		puts(id);
		return CLI_EXIT_OK;
	}
	return cli_print(cli, json_pack("{s:s, s:s}", "certificateId", id, "thing", o.thing),
			 NULL);
}

/* ---- list, describe, pem ---------------------------------------------- */

static const char list_usage[] =
	"usage: certfleet cert list [--status S] [--thing NAME] [--ca NAME]\n"
	"           [--expiring-within DURATION] [--limit N] [--deleted]\n"
	"\n"
	"List certificates, soonest expiry first. S is PENDING_ACTIVATION, ACTIVE, INACTIVE\n"
	"or REVOKED; DURATION is like 30d, 12h, 2w. Deleted certificates (replaced by a\n"
	"rotation, kept as history) are listed with --deleted only.\n";

static int
cert_list_cb(const cf_store_cert *c, void *payload)
{
	return json_array_append_new(payload, cli_cert_json(c, false)) == 0 ? 0 : CF_ENOMEM;
}

static int
cert_list(cf_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_STATUS, OPT_THING,	 OPT_CA, OPT_EXPIRING,
				       OPT_LIMIT,  OPT_DELETED, 'h',	 0 };
	static const char *const columns[] = { "certificateId", "thing", "status", "notAfter",
					       "ca",		"keyType", NULL };
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	cf_err err = CF_ERR_INIT;
	struct cert_opts o;
	json_t *rows;
	int rc = cert_parse(&o, argc, argv, list_usage, allowed);

	if (rc >= 0)
		return rc;
	if (optind != argc)
		return cli_usage_error(list_usage, "unexpected argument '%s'", argv[optind]);
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	filter.thing = o.thing;
	filter.ca = o.ca;
	filter.status = o.status;
	filter.limit = o.limit;
	filter.include_deleted = o.deleted;
	if (o.expiring_within > 0)
		filter.not_after_before = cf_time_now() + o.expiring_within;
	rows = json_array();
	rc = cf_store_cert_list(cli->store, &filter, cert_list_cb, rows, &err);
	if (rc != CF_OK) {
		json_decref(rows);
		return cli_fail(rc, &err, "cert list");
	}
	return cli_print(cli, rows, columns);
}

static int
policy_name_cb(const cf_store_policy *p, void *payload)
{
	return json_array_append_new(payload, json_string(p->name)) == 0 ? 0 : CF_ENOMEM;
}

static const char describe_usage[] =
	"usage: certfleet cert describe ID\n\nShow a certificate (ID or a unique prefix of at "
	"least 8 hex digits) and its policies.\n";
static const char pem_usage[] = "usage: certfleet cert pem ID\n\nPrint the certificate PEM.\n";

static int
cert_show(cf_cli *cli, int argc, char **argv, const char *usage, bool pem_only)
{
	cf_err err = CF_ERR_INIT;
	cf_store_cert c;
	json_t *out, *policies;
	int rc;

	if (cli_wants_help(argc, argv, usage))
		return CLI_EXIT_OK;
	if (argc != 2)
		return cli_usage_error(usage, "one certificate id is required");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	memset(&c, 0, sizeof(c));
	rc = cf_store_cert_get(cli->store, &c, argv[1], &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[1]);
	if (pem_only && !cli->json) {
		fputs(c.pem, stdout);
		cf_store_cert_clear(&c);
		return CLI_EXIT_OK;
	}
	if (pem_only) {
		out = json_pack("{s:s, s:s}", "certificateId", c.id, "certificatePem", c.pem);
		cf_store_cert_clear(&c);
		return cli_print(cli, out, NULL);
	}
	out = cli_cert_json(&c, true);
	policies = json_array();
	rc = cf_store_policy_list(cli->store, c.id, policy_name_cb, policies, &err);
	cf_store_cert_clear(&c);
	if (rc != CF_OK) {
		json_decref(out);
		json_decref(policies);
		return cli_fail(rc, &err, argv[1]);
	}
	json_object_set_new(out, "policies", policies);
	return cli_print(cli, out, NULL);
}

static int
cert_describe(cf_cli *cli, int argc, char **argv)
{
	return cert_show(cli, argc, argv, describe_usage, false);
}

static int
cert_pem(cf_cli *cli, int argc, char **argv)
{
	return cert_show(cli, argc, argv, pem_usage, true);
}

/* ---- status changes ---------------------------------------------------- */

static const char activate_usage[] =
	"usage: certfleet cert activate ID [--why TEXT]\n\nPENDING_ACTIVATION or INACTIVE -> "
	"ACTIVE.\n";
static const char deactivate_usage[] =
	"usage: certfleet cert deactivate ID [--why TEXT]\n\nPENDING_ACTIVATION or ACTIVE -> "
	"INACTIVE.\n";
static const char revoke_usage[] =
	"usage: certfleet cert revoke ID --reason R [--why TEXT]\n"
	"\n"
	"Revoke (final). R is an RFC 5280 reason: unspecified, keyCompromise, cACompromise,\n"
	"affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn,\n"
	"aACompromise (not certificateHold: a revocation here is final).\n";

static int
cert_transition(cf_cli *cli, int argc, char **argv, const char *usage, cf_cert_status to)
{
	static const int allowed[] = { OPT_REASON, OPT_WHY, 'h', 0 };
	cf_err err = CF_ERR_INIT;
	struct cert_opts o;
	cf_store_cert c;
	int rc = cert_parse(&o, argc, argv, usage, allowed);

	if (rc >= 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage_error(usage, "one certificate id is required");
	if (to == CF_CERT_REVOKED && (o.reason == NULL || !cf_pki_revoke_reason_valid(o.reason)))
		return cli_usage_error(usage, "--reason takes an RFC 5280 reason");
	if (to != CF_CERT_REVOKED && o.reason != NULL)
		return cli_usage_error(usage, "--reason is for revoke; use --why");
	rc = cli_store(cli);
	if (rc != CLI_EXIT_OK)
		return rc;
	cli->actor.why = o.why;
	rc = cf_store_cert_transition(cli->store, argv[optind], to, o.reason, &cli->actor, &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[optind]);
	memset(&c, 0, sizeof(c));
	rc = cf_store_cert_get(cli->store, &c, argv[optind], &err);
	if (rc != CF_OK)
		return cli_fail(rc, &err, argv[optind]);
	rc = cli_print(cli, json_pack("{s:s, s:s}", "certificateId", c.id, "status",
				      cf_cert_status_name(c.status)),
		       NULL);
	cf_store_cert_clear(&c);
	return rc;
}

static int
cert_activate(cf_cli *cli, int argc, char **argv)
{
	return cert_transition(cli, argc, argv, activate_usage, CF_CERT_ACTIVE);
}

static int
cert_deactivate(cf_cli *cli, int argc, char **argv)
{
	return cert_transition(cli, argc, argv, deactivate_usage, CF_CERT_INACTIVE);
}

static int
cert_revoke(cf_cli *cli, int argc, char **argv)
{
	return cert_transition(cli, argc, argv, revoke_usage, CF_CERT_REVOKED);
}

static const cli_verb verbs[] = {
	{ "issue", cert_issue, "issue a certificate for a thing from a CSR" },
	{ "register", cert_register, "register a certificate issued by a registered CA" },
	{ "list", cert_list, "list certificates" },
	{ "describe", cert_describe, "show a certificate and its policies" },
	{ "pem", cert_pem, "print a certificate's PEM" },
	{ "activate", cert_activate, "make a certificate ACTIVE" },
	{ "deactivate", cert_deactivate, "make a certificate INACTIVE" },
	{ "revoke", cert_revoke, "revoke a certificate (final)" },
	{ NULL, NULL, NULL },
};

int
cli_cmd_cert(cf_cli *cli, int argc, char **argv)
{
	return cli_dispatch(cli, "cert", verbs, argc, argv);
}
