/*
 * Provisioning: things, keys and first certificates for the simulated
 * fleet, straight into a certfleet data dir.
 *
 * The same path as `certfleet cert issue` (config, store, authority), but
 * in batches: things are inserted a batch per transaction and certificates
 * issued with cf_authority_issue_batch() (one group commit per batch), so
 * 10,000 devices take seconds. Keys are made in-process. State files are
 * written without an fsync each; one syncfs() at the end flushes them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "authority/authority.h"
#include "daemon/config.h"
#include "daemon/wiring.h"
#include "sim.h"

#define BATCH 500

int
sim_csr_new(char **out, size_t *len_out, EVP_PKEY *key, const char *cn, bool pem, cf_err *err)
{
	X509_REQ *req = NULL;
	BIO *bio = NULL;
	unsigned char *der = NULL;
	char *buf = NULL, *data;
	long n;
	int rc, dlen;

	*out = NULL;
	req = X509_REQ_new();
	if (req == NULL || X509_REQ_set_version(req, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "CSR for %s", cn);
		goto out;
	}
	if (!pem) {
		dlen = i2d_X509_REQ(req, &der);
		if (dlen <= 0) {
			rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "CSR DER");
			goto out;
		}
		*out = (char *)der;
		*len_out = (size_t)dlen;
		der = NULL;
		rc = CF_OK;
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1) {
		rc = cf_err_set_ossl(err, CF_ECRYPTO, NULL, "CSR PEM");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	buf = malloc((size_t)n + 1);
	if (buf == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "CSR");
		goto out;
	}
	memcpy(buf, data, (size_t)n);
	buf[n] = '\0';
	*out = buf;
	*len_out = (size_t)n;
	rc = CF_OK;
out:
	OPENSSL_free(der);
	BIO_free(bio);
	X509_REQ_free(req);
	return rc;
}


static int
write_file(const char *dir, const char *name, const char *a, size_t alen, const char *b,
	   size_t blen, cf_err *err)
{
	char *path = cf_path_join(dir, name);
	ssize_t w1 = 0, w2 = 0;
	int fd = -1, rc;

	if (path == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "path");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0 && fchmod(fd, 0600) == 0) {
		w1 = write(fd, a, alen);
		w2 = blen > 0 ? write(fd, b, blen) : 0;
	}
	if (fd < 0 || w1 != (ssize_t)alen || w2 != (ssize_t)blen) {
		rc = cf_err_set(err, CF_EIO, NULL, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	rc = CF_OK;
out:
	if (fd >= 0 && close(fd) != 0 && rc == CF_OK)
		rc = cf_err_set(err, CF_EIO, NULL, "cannot write %s: %s", path, strerror(errno));
	free(path);
	return rc;
}

/* One device being provisioned. */
struct dev {
	char name[CF_NAME_MAX + 1];
	bool make_thing;
	EVP_PKEY *key;
	char *csr;
	size_t csr_len;
	cf_authority_request req;
};

static void
dev_clear(struct dev *d)
{
	EVP_PKEY_free(d->key);
	OPENSSL_free(d->csr);
	memset(d, 0, sizeof(*d));
}

struct ctx {
	const sim_provision_opts *o;
	char *state_dir; /* absolute */
	cf_config cfg;
	bool cfg_ready;
	cf_store *store;
	cf_authority *auth;
	char *chain_pem; /* the default CA's certificate */
	cf_store_actor actor;
};

static bool
dir_exists(const char *dir, const char *name)
{
	char *path = cf_path_join(dir, name);
	struct stat st;
	bool yes = path != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode);

	free(path);
	return yes;
}

static int
ctx_open(struct ctx *c, cf_err *err)
{
	cf_store_ca ca;
	cf_pki_ca *signer;
	char abs[PATH_MAX];
	char *conf = NULL;
	int rc;

	memset(&ca, 0, sizeof(ca));
	if (realpath(c->o->data_dir, abs) == NULL)
		return cf_err_set(err, CF_ENOTFOUND, NULL, "data dir %s: %s", c->o->data_dir,
				  strerror(errno));
	rc = cf_config_init(&c->cfg, abs, err);
	if (rc != CF_OK)
		return rc;
	c->cfg_ready = true;
	conf = cf_path_join(abs, "certfleet.conf");
	if (conf == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "config");
	rc = cf_config_load(&c->cfg, conf, err);
	free(conf);
	if (rc == CF_ENOTFOUND)
		return cf_err_set(err, rc, NULL,
				  "%s is not a certfleet data dir (no certfleet.conf)", abs);
	if (rc != CF_OK)
		return rc;
	rc = cf_daemon_store_open(&c->store, &c->cfg, err);
	if (rc == CF_OK)
		rc = cf_daemon_authority_open(&c->auth, c->store, &c->cfg, err);
	if (rc != CF_OK)
		goto out;
	rc = cf_store_ca_get_default(c->store, &ca, err);
	if (rc == CF_ENOTFOUND)
		rc = cf_err_set(err, rc, NULL,
				"no default CA in %s ('certfleet init --quickstart' "
				"makes one)",
				abs);
	if (rc != CF_OK)
		goto out;
	c->chain_pem = ca.cert_pem;
	ca.cert_pem = NULL;
	/* Decrypt the CA key now: a wrong passphrase should stop us before any thing exists. */
	rc = cf_authority_signer(&signer, c->auth, NULL, err);
out:
	cf_store_ca_clear(&ca);
	return rc;
}

static void
ctx_close(struct ctx *c)
{
	cf_authority_free(c->auth);
	cf_store_close(c->store);
	if (c->cfg_ready)
		cf_config_clear(&c->cfg);
	free(c->chain_pem);
	free(c->state_dir);
}

/*
 * Decide for every name: skip, issue only, or create the thing and issue.
 * Without skip_existing, one existing thing or state dir stops everything.
 */
static int
plan(struct ctx *c, struct dev *devs, long n, long *skipped, cf_err *err)
{
	cf_store_thing thing;
	const char *first = NULL;
	long i, exists = 0;
	int rc;

	*skipped = 0;
	for (i = 0; i < n; i++) {
		bool in_registry, has_state;
		char *cur;

		memset(&thing, 0, sizeof(thing));
		rc = cf_store_thing_get(c->store, &thing, devs[i].name, err);
		cf_store_thing_clear(&thing);
		if (rc != CF_OK && rc != CF_ENOTFOUND)
			return rc;
		in_registry = rc == CF_OK;
		cur = cf_path_join(c->state_dir, devs[i].name);
		if (cur == NULL)
			return cf_err_set(err, CF_ENOMEM, NULL, "path");
		has_state = dir_exists(cur, "current");
		if (!has_state && !in_registry)
			has_state = access(cur, F_OK) == 0;
		free(cur);
		devs[i].make_thing = !in_registry;
		if (!in_registry && !has_state)
			continue;
		if (first == NULL)
			first = devs[i].name;
		exists++;
		if (c->o->skip_existing && in_registry && has_state) {
			devs[i].name[0] = '\0'; /* skipped */
			(*skipped)++;
		}
	}
	cf_err_clear(err);
	if (exists > 0 && !c->o->skip_existing)
		return cf_err_set(err, CF_EEXISTS, NULL,
				  "%ld of the %ld devices already exist (%s, in the registry or in "
				  "%s); use --skip-existing or another --prefix",
				  exists, n, first, c->state_dir);
	return CF_OK;
}

static int
insert_things(struct ctx *c, struct dev *devs, size_t n, cf_err *err)
{
	size_t i;
	int rc;

	rc = cf_store_tx_begin(c->store, err);
	if (rc != CF_OK)
		return rc;
	for (i = 0; i < n; i++) {
		if (devs[i].name[0] == '\0' || !devs[i].make_thing)
			continue;
		rc = cf_store_thing_insert(c->store, devs[i].name, "{\"source\":\"certfleet-sim\"}",
					   &c->actor, err);
		if (rc != CF_OK) {
			cf_store_tx_rollback(c->store);
			return rc;
		}
	}
	return cf_store_tx_commit(c->store, err);
}

/* STATE/NAME/current/{key.pem,cert.pem}. */
static int
write_state(struct ctx *c, const struct dev *d, const char *cert_pem, cf_err *err)
{
	char *dev_dir = cf_path_join(c->state_dir, d->name);
	char *cur = dev_dir != NULL ? cf_path_join(dev_dir, "current") : NULL;
	char *kp = NULL;
	size_t klen = 0;
	int rc;

	if (cur == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "path");
		goto out;
	}
	rc = cf_dir_create(cur, 0700, err);
	if (rc == CF_OK)
		rc = cf_pki_key_pem_plain(&kp, &klen, d->key, err);
	if (rc == CF_OK)
		rc = write_file(cur, "key.pem", kp, klen, NULL, 0, err);
	if (rc == CF_OK)
		rc = write_file(cur, "cert.pem", cert_pem, strlen(cert_pem), c->chain_pem,
				strlen(c->chain_pem), err);
out:
	if (kp != NULL)
		OPENSSL_secure_clear_free(kp, klen + 1);
	free(cur);
	free(dev_dir);
	return rc;
}

static int
issue_batch(struct ctx *c, struct dev *devs, size_t n, long *created, cf_err *err)
{
	cf_authority_item *items = NULL;
	size_t *which = NULL; /* items[k] is devs[which[k]] */
	size_t i, m = 0;
	int rc;

	rc = insert_things(c, devs, n, err);
	if (rc != CF_OK)
		return rc;
	items = calloc(n, sizeof(*items));
	which = calloc(n, sizeof(*which));
	if (items == NULL || which == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "batch");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct dev *d = &devs[i];

		if (d->name[0] == '\0')
			continue;
		rc = cf_pki_key_generate(&d->key, CF_KEY_EC_P256, err);
		if (rc == CF_OK)
			rc = sim_csr_new(&d->csr, &d->csr_len, d->key, d->name, false, err);
		if (rc != CF_OK)
			goto out;
		d->req.thing = d->name;
		d->req.csr = d->csr;
		d->req.csr_len = d->csr_len;
		d->req.days = c->o->days;
		d->req.status = CF_CERT_ACTIVE;
		which[m] = i;
		items[m++].req = &d->req;
	}
	rc = m > 0 ? cf_authority_issue_batch(c->auth, items, m, &c->actor, err) : CF_OK;
	if (rc != CF_OK)
		goto out;
	for (i = 0; i < m; i++) {
		const struct dev *d = &devs[which[i]];

		if (items[i].rc != CF_OK) {
			rc = cf_err_set(err, items[i].rc, items[i].err.reason, "%s: %s", d->name,
					items[i].err.msg);
			goto out;
		}
		rc = write_state(c, d, items[i].result.pem, err);
		if (rc != CF_OK)
			goto out;
		(*created)++;
	}
out:
	for (i = 0; i < m; i++)
		cf_authority_result_clear(&items[i].result);
	free(items);
	free(which);
	return rc;
}

int
sim_provision(sim_provision_result *res, const sim_provision_opts *o, cf_err *err)
{
	struct ctx c;
	struct dev *devs = NULL;
	char abs[PATH_MAX];
	int64_t t0 = cf_time_mono_ms();
	long i, done;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.o = o;
	c.actor.who = "certfleet-sim";
	c.actor.why = "simulated device provisioning";
	rc = cf_dir_create(o->state_dir, 0700, err);
	if (rc != CF_OK)
		goto out;
	if (realpath(o->state_dir, abs) == NULL) {
		rc = cf_err_set(err, CF_EIO, NULL, "state dir %s: %s", o->state_dir,
				strerror(errno));
		goto out;
	}
	c.state_dir = cf_strdup(abs);
	devs = calloc((size_t)o->devices, sizeof(*devs));
	if (c.state_dir == NULL || devs == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "%ld devices", o->devices);
		goto out;
	}
	for (i = 0; i < o->devices; i++) {
		snprintf(devs[i].name, sizeof(devs[i].name), "%s%05ld", o->prefix, i + 1);
		if (!cf_name_valid(devs[i].name)) {
			rc = cf_err_set(err, CF_EINVAL, NULL, "'%s' is not a valid thing name",
					devs[i].name);
			goto out;
		}
	}
	rc = ctx_open(&c, err);
	if (rc == CF_OK)
		rc = plan(&c, devs, o->devices, &res->skipped, err);
	for (done = 0; rc == CF_OK && done < o->devices; done += BATCH) {
		size_t n = (size_t)(o->devices - done < BATCH ? o->devices - done : BATCH);

		rc = issue_batch(&c, devs + done, n, &res->created, err);
		for (i = 0; i < (long)n; i++)
			dev_clear(&devs[done + i]);
	}
	/* One flush for all the files written above. */
	sync();
out:
	if (devs != NULL)
		for (i = 0; i < o->devices; i++)
			dev_clear(&devs[i]);
	free(devs);
	ctx_close(&c);
	res->seconds = (double)(cf_time_mono_ms() - t0) / 1000.0;
	return rc;
}
