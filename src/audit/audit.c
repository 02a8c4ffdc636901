/*
 * The audit engine: one run of a set of checks over the registry.
 *
 * How it works: the check names are validated before anything is written,
 * then the run is begun (its own small transaction), and everything else
 * happens in one transaction: the CAs are loaded (few) and the CA checks
 * run over them; the ACTIVE certificates are streamed once with
 * cf_store_cert_scan() (borrowed columns, no PEM, table order: the pass
 * copies nothing per certificate) and each is handed to every certificate
 * check that is on (per-check state lives in cf_audit__run); then the checks that look
 * at what the pass gathered (shared keys, revoked CAs) or at other tables
 * (connections, rotations) run. Findings are queued and written
 * CF_AUDIT__BATCH at a time; the run is finished COMPLETED inside the same
 * transaction, so a run's findings and its RESOLVED rows appear together.
 * When a step fails the transaction is rolled back and the run finished
 * FAILED on its own.
 */
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
cf_audit_config_init(cf_audit_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->device_expiring_days = 30;
	cfg->ca_expiring_days = 90;
	cfg->device_age_days = 365;
	cfg->rotation_failures = 3;
	cfg->shared_window = 86400;
	cfg->events_full_every = 7 * 86400;
	cf_pki_key_policy_init(&cfg->key_policy);
}

size_t
cf_audit_check_count(void)
{
	return CF_AUDIT__COUNT;
}

const cf_audit_check_info *
cf_audit_check_at(size_t i)
{
	return i < CF_AUDIT__COUNT ? &cf_audit__checks[i] : NULL;
}

int
cf_audit__check_index(const char *name, size_t len)
{
	int i;

	for (i = 0; name != NULL && i < CF_AUDIT__COUNT; i++)
		if (strlen(cf_audit__checks[i].name) == len &&
		    strncmp(cf_audit__checks[i].name, name, len) == 0)
			return i;
	return -1;
}

const cf_audit_check_info *
cf_audit_check_find(const char *name)
{
	int i = name != NULL ? cf_audit__check_index(name, strlen(name)) : -1;

	return i >= 0 ? &cf_audit__checks[i] : NULL;
}

int
cf_audit_checks_parse(const char **names, size_t *n, const char *text, cf_err *err)
{
	const char *p = text != NULL ? text : "", *end, *item;
	size_t len, k;
	int i;

	*n = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strcmp(p, "all") == 0)
		return CF_OK;
	for (;;) {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		item = p;
		while (len > 0 && (*item == ' ' || *item == '\t')) {
			item++;
			len--;
		}
		while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
			len--;
		i = cf_audit__check_index(item, len);
		if (i < 0)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_checks: '%.*s' is not a check ('all' or check "
					  "names separated by commas)",
					  (int)len, item);
		for (k = 0; k < *n; k++)
			if (names[k] == cf_audit__checks[i].name)
				return cf_err_set(err, CF_EINVAL, NULL,
						  "audit_checks: %s is named twice",
						  cf_audit__checks[i].name);
		names[(*n)++] = cf_audit__checks[i].name;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return CF_OK;
}

static void
batch_clear(cf_audit__run *run)
{
	size_t i;

	for (i = 0; i < run->nbatch; i++) {
		free((char *)(uintptr_t)run->batch[i].resource);
		free((char *)(uintptr_t)run->batch[i].detail);
	}
	run->nbatch = 0;
}

static int
batch_flush(cf_audit__run *run)
{
	int rc = CF_OK;

	if (run->nbatch > 0)
		rc = cf_store_audit_findings_add(run->store, run->run_id, run->batch, run->nbatch,
						 run->err);
	batch_clear(run);
	return rc;
}

int
cf_audit__emit(cf_audit__run *run, int check, const char *resource, const char *reason,
	       json_t *detail)
{
	cf_store_finding *f = &run->batch[run->nbatch];
	char *res = NULL, *text = NULL;

	res = cf_strdup(resource);
	if (detail != NULL)
		text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(detail);
	if (res == NULL || (detail != NULL && text == NULL)) {
		free(res);
		free(text);
		return cf_err_set(run->err, CF_ENOMEM, NULL, "finding of %s",
				  cf_audit__checks[check].name);
	}
	memset(f, 0, sizeof(*f));
	f->run_id = run->run_id;
	f->check = cf_audit__checks[check].name;
	f->resource = res;
	f->severity = cf_audit__checks[check].severity;
	f->reason = reason;
	f->detail = text;
	run->nbatch++;
	run->sum->findings++;
	run->sum->by_check[check]++;
	run->sum->by_severity[cf_audit__checks[check].severity]++;
	return run->nbatch == CF_AUDIT__BATCH ? batch_flush(run) : CF_OK;
}

struct cf_audit__ca *
cf_audit__ca_find(cf_audit__run *run, const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	if (run->last_ca != NULL && strcmp(run->last_ca->name, name) == 0)
		return run->last_ca;
	for (i = 0; i < run->ncas; i++) {
		if (strcmp(run->cas[i].name, name) == 0) {
			run->last_ca = &run->cas[i];
			return run->last_ca;
		}
	}
	return NULL;
}

static int
ca_load_cb(const cf_store_ca *ca, void *payload)
{
	cf_audit__run *run = payload;
	struct cf_audit__ca *grown, *c;

	grown = realloc(run->cas, (run->ncas + 1) * sizeof(*grown));
	if (grown == NULL)
		return CF_ENOMEM;
	run->cas = grown;
	c = &run->cas[run->ncas];
	memset(c, 0, sizeof(*c));
	c->name = cf_strdup(ca->name);
	c->parent = ca->parent != NULL ? cf_strdup(ca->parent) : NULL;
	c->status = ca->status;
	c->is_root = ca->is_root;
	run->ncas++;
	if (c->name == NULL || (ca->parent != NULL && c->parent == NULL))
		return CF_ENOMEM;
	return 0;
}

/* Mark the CAs whose chain has a REVOKED CA (a chain is at most ncas long: no loops). */
static void
ca_chains(cf_audit__run *run)
{
	size_t i, depth;

	for (i = 0; i < run->ncas; i++) {
		struct cf_audit__ca *c = &run->cas[i];

		for (depth = 0; c != NULL && depth <= run->ncas; depth++) {
			if (c->status == CF_CA_REVOKED) {
				run->cas[i].chain_revoked = true;
				run->cas[i].revoked = c->name;
				break;
			}
			c = cf_audit__ca_find(run, c->parent);
		}
	}
	run->last_ca = NULL;
}

static int
cert_cb(const cf_store_cert_facts *cert, void *payload)
{
	cf_audit__run *run = payload;

	run->sum->certificates++;
	return cf_audit__check_cert(run, cert);
}

static bool
any_on(const cf_audit__run *run, const int *checks, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (run->on[checks[i]])
			return true;
	return false;
}

/* The run's summary as JSON text (freed with free()), or NULL when out of memory. */
static char *
summary_json(const cf_audit_summary *sum)
{
	json_t *o = json_object(), *sev = json_object(), *checks = json_object();
	char *text = NULL;
	size_t i;

	if (o == NULL || sev == NULL || checks == NULL)
		goto out;
	for (i = 0; i < 4; i++)
		json_object_set_new(sev, cf_audit_severity_name((cf_audit_severity)i),
				    json_integer(sum->by_severity[i]));
	for (i = 0; i < CF_AUDIT__COUNT; i++)
		if (sum->ran[i])
			json_object_set_new(checks, cf_audit__checks[i].name,
					    json_integer(sum->by_check[i]));
	json_object_set_new(o, "certificates", json_integer(sum->certificates));
	json_object_set_new(o, "cas", json_integer(sum->cas));
	json_object_set_new(o, "connections", json_integer(sum->connections));
	json_object_set_new(o, "rotations", json_integer(sum->rotations));
	json_object_set_new(o, "findings", json_integer(sum->findings));
	json_object_set(o, "bySeverity", sev);
	json_object_set(o, "byCheck", checks);
	json_object_set_new(o, "elapsedMs", json_integer(sum->elapsed_ms));
	if (sum->events_broken)
		json_object_set_new(o, "eventsHead", json_pack("{s:b}", "broken", 1));
	else if (sum->events_verified)
		json_object_set_new(o, "eventsHead",
				    json_pack("{s:I, s:s, s:I, s:s, s:I, s:I}", "seq",
					      (json_int_t)sum->events_head.seq, "hash",
					      sum->events_head.hash, "sweepSeq",
					      (json_int_t)sum->events_sweep.seq, "sweepHash",
					      sum->events_sweep.hash, "fullAt",
					      (json_int_t)sum->events_full_at, "checked",
					      (json_int_t)sum->events_checked));
	if (sum->events_verified && !sum->events_broken && sum->events_damaged_run > 0)
		json_object_set_new(json_object_get(o, "eventsHead"), "damagedRun",
				    json_integer(sum->events_damaged_run));
	text = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	json_decref(sev);
	json_decref(checks);
	return text;
}

/* Everything after the run was begun, inside one transaction. */
static int
run_checks(cf_audit__run *run, int64_t started_ms)
{
	static const int cert_checks[] = {
		CF_AUDIT__DEVICE_EXPIRING,   CF_AUDIT__DEVICE_KEY_QUALITY,
		CF_AUDIT__REVOKED_CA_ACTIVE, CF_AUDIT__INTERMEDIATE_REVOKED,
		CF_AUDIT__DEVICE_AGE,
	};
	char *summary = NULL;
	int rc;

	rc = cf_store_ca_list(run->store, ca_load_cb, run, run->err);
	if (rc == CF_ENOMEM)
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "loading the CAs");
	if (rc != CF_OK)
		return rc;
	run->sum->cas = (int64_t)run->ncas;
	ca_chains(run);
	rc = cf_audit__check_cas(run);
	if (rc == CF_OK && any_on(run, cert_checks, CF_ARRAY_LEN(cert_checks))) {
		rc = cf_store_cert_scan(run->store, CF_CERT_ACTIVE, false, cert_cb, run, run->err);
		/* A callback's own failure carries no detail unless it set one. */
		if (rc == CF_ENOMEM && run->err != NULL && run->err->code == 0)
			rc = cf_err_set(run->err, CF_ENOMEM, NULL, "reading the certificates");
	}
	if (rc == CF_OK)
		rc = cf_audit__check_after(run);
	if (rc == CF_OK)
		rc = batch_flush(run);
	if (rc != CF_OK)
		return rc;
	run->sum->elapsed_ms = cf_time_mono_ms() - started_ms;
	summary = summary_json(run->sum);
	if (summary == NULL)
		return cf_err_set(run->err, CF_ENOMEM, NULL, "audit summary");
	rc = cf_store_audit_run_finish(run->store, run->run_id, CF_AUDIT_COMPLETED, summary,
				       run->err);
	free(summary);
	return rc;
}

static void
run_release(cf_audit__run *run)
{
	size_t i;

	batch_clear(run);
	for (i = 0; i < run->ncas; i++) {
		free(run->cas[i].name);
		free(run->cas[i].parent);
	}
	free(run->cas);
	free(run->keys);
}

static int
config_check(const cf_audit_config *cfg, cf_err *err)
{
	if (cfg->device_expiring_days < 1 || cfg->ca_expiring_days < 1 ||
	    cfg->device_age_days < 1 || cfg->rotation_failures < 1 || cfg->shared_window < 1 ||
	    cfg->device_expiring_days > 36500 || cfg->ca_expiring_days > 36500 ||
	    cfg->device_age_days > 36500 || cfg->rotation_failures > 100000 ||
	    cfg->events_full_every < 0 || (cfg->crl_files == NULL && cfg->ncrl_files > 0))
		return cf_err_set(err, CF_EINVAL, NULL, "audit parameters out of range");
	return CF_OK;
}

int
cf_audit_run(int64_t *run_out, cf_audit_summary *summary, cf_store *store,
	     const cf_audit_config *cfg, cf_audit_trigger trigger, const char *const *checks,
	     size_t n, int64_t now, cf_err *err)
{
	const char *names[CF_AUDIT__COUNT];
	cf_audit_summary local;
	cf_audit__run *run = NULL;
	int64_t started_ms = cf_time_mono_ms();
	cf_err ferr = CF_ERR_INIT;
	size_t i, nnames = 0;
	int rc, idx;

	if (run_out != NULL)
		*run_out = 0;
	if (summary == NULL)
		summary = &local;
	memset(summary, 0, sizeof(*summary));
	if (store == NULL || cfg == NULL || (checks == NULL && n > 0))
		return cf_err_set(err, CF_EINVAL, NULL, "cf_audit_run: missing argument");
	rc = config_check(cfg, err);
	if (rc != CF_OK)
		return rc;
	run = calloc(1, sizeof(*run));
	if (run == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "audit run");
	for (i = 0; i < n; i++) {
		idx = checks[i] != NULL ? cf_audit__check_index(checks[i], strlen(checks[i])) : -1;
		if (idx < 0) {
			rc = cf_err_set(err, CF_EINVAL, "UNKNOWN_CHECK", "unknown check '%.64s'",
					checks[i] != NULL ? checks[i] : "(null)");
			goto out;
		}
		if (run->on[idx]) {
			rc = cf_err_set(err, CF_EINVAL, NULL, "check %s given twice", checks[i]);
			goto out;
		}
		run->on[idx] = true;
	}
	for (i = 0; i < CF_AUDIT__COUNT; i++) {
		if (n == 0)
			run->on[i] = true;
		if (run->on[i])
			names[nnames++] = cf_audit__checks[i].name;
		summary->ran[i] = run->on[i];
	}
	run->store = store;
	run->cfg = cfg;
	run->now = now;
	run->sum = summary;
	run->err = err;
	rc = cf_store_audit_run_begin(&run->run_id, store, trigger, names, nnames, err);
	if (rc != CF_OK)
		goto out;
	if (run_out != NULL)
		*run_out = run->run_id;
	rc = cf_store_tx_begin(store, err);
	if (rc == CF_OK) {
		rc = run_checks(run, started_ms);
		if (rc == CF_OK)
			rc = cf_store_tx_commit(store, err);
		else
			cf_store_tx_rollback(store);
	}
	if (rc != CF_OK) {
		json_t *why = json_pack("{s:s, s:i}", "error", err != NULL ? err->msg : "",
					"code", rc);
		char *text = why != NULL ? json_dumps(why, JSON_COMPACT) : NULL;

		/* The run's own error wins: a failure to record it is only logged. */
		if (cf_store_audit_run_finish(store, run->run_id, CF_AUDIT_FAILED, text, &ferr) !=
		    CF_OK)
			cf_log_debug("run=%lld cannot be marked FAILED: %s",
				     (long long)run->run_id, ferr.msg);
		free(text);
		json_decref(why);
		memset(summary->by_check, 0, sizeof(summary->by_check));
	}
out:
	if (run != NULL)
		run_release(run);
	free(run);
	return rc;
}
