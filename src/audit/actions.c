/*
 * audit mitigation actions: what is done about a finding, by hand
 * (certfleet audit mitigate) or bound to a check in the config (certfleetd
 * after a scheduled run). Each action is a registry change the store writes
 * with its event, so the event log tells who acted on which finding.
 */
#include "audit/audit.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "rotation/rotation.h"

static const char *const action_names[CF_AUDIT_ACTION_COUNT] = {
	"ROTATE_DEVICE_CERTIFICATE",  "DEACTIVATE_DEVICE_CERTIFICATE",
	"REVOKE_DEVICE_CERTIFICATE",  "DEACTIVATE_CA_CERTIFICATE",
	"QUARANTINE_THING",           "NOTIFY",
};

const char *
cf_audit_action_name(cf_audit_action action)
{
	if ((int)action < 0 || action >= CF_AUDIT_ACTION_COUNT)
		return NULL;
	return action_names[action];
}

int
cf_audit_action_parse(cf_audit_action *out, const char *name)
{
	size_t i;

	for (i = 0; i < CF_AUDIT_ACTION_COUNT; i++) {
		if (name != NULL && strcmp(name, action_names[i]) == 0) {
			*out = (cf_audit_action)i;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

/* ---- resources ----------------------------------------------------------- */

/* The value of resource after prefix ("cert:"), or NULL. */
static const char *
resource_of(const char *resource, const char *prefix)
{
	size_t n = strlen(prefix);

	if (resource == NULL || strncmp(resource, prefix, n) != 0 || resource[n] == '\0')
		return NULL;
	return resource + n;
}

static int
misfit(cf_err *err, cf_audit_action action, const char *resource, const char *fits)
{
	return cf_err_set(err, CF_EINVAL, NULL, "%s does not apply to %s: it takes %s",
			  cf_audit_action_name(action), resource != NULL ? resource : "(none)",
			  fits);
}

/* ---- the actions ----------------------------------------------------------- */

static int
rotate(cf_audit_mitigation *out, cf_store *store, cf_rotation_engine *eng, const char *resource,
       const cf_store_actor *actor, cf_err *err)
{
	const char *cert_id = resource_of(resource, "cert:");
	const char *thing = resource_of(resource, "thing:");
	cf_store_cert cert;
	int rc;

	if (eng == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "ROTATE_DEVICE_CERTIFICATE needs an engine");
	memset(&cert, 0, sizeof(cert));
	if (cert_id != NULL) {
		rc = cf_store_cert_get(store, &cert, cert_id, err);
		if (rc != CF_OK)
			return rc;
		if (cert.thing == NULL) {
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"certificate %.16s is bound to no thing: nothing to rotate",
					cert_id);
			goto out;
		}
		thing = cert.thing;
	}
	rc = cf_rotation_start(eng, out->rotation_id, thing, cert_id, actor, err);
	if (rc == CF_EEXISTS) {
		out->already = true;
		rc = CF_OK;
	} else if (rc == CF_OK) {
		out->changed = 1;
	}
out:
	cf_store_cert_clear(&cert);
	return rc;
}

static int
cert_status(cf_audit_mitigation *out, cf_store *store, const char *cert_id, cf_cert_status to,
	    const cf_store_actor *actor, cf_err *err)
{
	cf_store_cert cert;
	int rc;

	memset(&cert, 0, sizeof(cert));
	rc = cf_store_cert_get(store, &cert, cert_id, err);
	if (rc != CF_OK)
		return rc;
	if (cert.status == to) {
		out->already = true;
	} else {
		rc = cf_store_cert_transition(store, cert.id, to, NULL, actor, err);
		if (rc == CF_OK)
			out->changed = 1;
	}
	cf_store_cert_clear(&cert);
	return rc;
}

static int
ca_retire(cf_audit_mitigation *out, cf_store *store, const char *name,
	  const cf_store_actor *actor, cf_err *err)
{
	cf_store_ca ca;
	int rc;

	memset(&ca, 0, sizeof(ca));
	rc = cf_store_ca_get(store, &ca, name, err);
	if (rc != CF_OK)
		return rc;
	if (ca.status == CF_CA_RETIRED) {
		out->already = true;
	} else {
		rc = cf_store_ca_set_status(store, name, CF_CA_RETIRED, NULL, actor, err);
		if (rc == CF_OK)
			out->changed = 1;
	}
	cf_store_ca_clear(&ca);
	return rc;
}

#define QUARANTINE_MAX 64

struct active_ids {
	size_t n;
	bool truncated;
	char id[QUARANTINE_MAX][65];
};

static int
active_cb(const cf_store_cert *cert, void *payload)
{
	struct active_ids *a = payload;

	if (a->n == QUARANTINE_MAX) {
		a->truncated = true;
		return 1;
	}
	snprintf(a->id[a->n++], sizeof(a->id[0]), "%s", cert->id);
	return 0;
}

/*
 * The broker plugin refuses and disconnects a certificate with a deny-all
 * policy attached, whatever else is attached (deny wins), so attaching it
 * to each ACTIVE certificate of the thing cuts the thing off.
 */
static int
quarantine(cf_audit_mitigation *out, cf_store *store, const char *thing,
	   const cf_store_actor *actor, cf_err *err)
{
	cf_store_cert_filter filter = CF_STORE_CERT_FILTER_INIT;
	struct active_ids ids;
	size_t i, attached = 0;
	int rc;

	memset(&ids, 0, sizeof(ids));
	filter.thing = thing;
	filter.status = CF_CERT_ACTIVE;
	rc = cf_store_cert_list(store, &filter, active_cb, &ids, err);
	if (rc < 0)
		return rc;
	if (ids.truncated)
		return cf_err_set(err, CF_EINVAL, NULL, "thing %s has over %d ACTIVE certificates",
				  thing, QUARANTINE_MAX);
	if (ids.n == 0) {
		out->already = true;
		return CF_OK;
	}
	rc = cf_store_tx_begin(store, err);
	if (rc != CF_OK)
		return rc;
	rc = cf_store_policy_insert(store, CF_AUDIT_QUARANTINE_POLICY, CF_AUDIT_QUARANTINE_DOCUMENT,
				    actor, err);
	if (rc == CF_EEXISTS)
		rc = CF_OK;
	for (i = 0; rc == CF_OK && i < ids.n; i++) {
		rc = cf_store_policy_attach(store, CF_AUDIT_QUARANTINE_POLICY, ids.id[i], actor, err);
		if (rc == CF_OK)
			attached++;
		else if (rc == CF_EEXISTS)
			rc = CF_OK;
	}
	if (rc != CF_OK) {
		cf_store_tx_rollback(store);
		return rc;
	}
	rc = cf_store_tx_commit(store, err);
	if (rc != CF_OK)
		return rc;
	out->changed = attached;
	out->already = attached == 0;
	return CF_OK;
}

int
cf_audit_mitigate(cf_audit_mitigation *out, cf_store *store, struct cf_rotation_engine *eng,
		  const cf_store_finding *finding, cf_audit_action action, const char *who,
		  cf_err *err)
{
	const char *res = finding->resource;
	const char *cert_id = resource_of(res, "cert:");
	const char *thing = resource_of(res, "thing:");
	const char *ca = resource_of(res, "ca:");
	cf_store_cert cert;
	char why[200];
	cf_store_actor actor;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&cert, 0, sizeof(cert));
	snprintf(why, sizeof(why), "audit finding %s of %s (run %lld)",
		 finding->finding_id != NULL ? finding->finding_id : "-", finding->check,
		 (long long)finding->run_id);
	actor.who = who;
	actor.why = why;
	switch (action) {
	case CF_AUDIT_ROTATE_DEVICE_CERTIFICATE:
		if (cert_id == NULL && thing == NULL)
			return misfit(err, action, res, "a cert: or thing: resource");
		return rotate(out, store, eng, res, &actor, err);
	case CF_AUDIT_DEACTIVATE_DEVICE_CERTIFICATE:
	case CF_AUDIT_REVOKE_DEVICE_CERTIFICATE:
		if (cert_id == NULL)
			return misfit(err, action, res, "a cert: resource");
		return cert_status(out, store, cert_id,
				   action == CF_AUDIT_REVOKE_DEVICE_CERTIFICATE ? CF_CERT_REVOKED
										: CF_CERT_INACTIVE,
				   &actor, err);
	case CF_AUDIT_DEACTIVATE_CA_CERTIFICATE:
		if (ca == NULL)
			return misfit(err, action, res, "a ca: resource");
		return ca_retire(out, store, ca, &actor, err);
	case CF_AUDIT_QUARANTINE_THING:
		if (thing != NULL)
			return quarantine(out, store, thing, &actor, err);
		if (cert_id == NULL)
			return misfit(err, action, res, "a thing: or cert: resource");
		rc = cf_store_cert_get(store, &cert, cert_id, err);
		if (rc == CF_OK && cert.thing == NULL)
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"certificate %.16s is bound to no thing: nothing to quarantine",
					cert_id);
		if (rc == CF_OK)
			rc = quarantine(out, store, cert.thing, &actor, err);
		cf_store_cert_clear(&cert);
		return rc;
	case CF_AUDIT_NOTIFY:
		return CF_OK;
	default:
		return cf_err_set(err, CF_EINVAL, NULL, "unknown action %d", (int)action);
	}
}

/* ---- finding lookup ---------------------------------------------------------- */

struct find_ctx {
	const char *id;
	size_t len;
	size_t matches;
	cf_audit_finding_ref *out;
};

static int
find_cb(const cf_store_finding *f, void *payload)
{
	struct find_ctx *fc = payload;
	cf_audit_finding_ref *r = fc->out;

	if (f->finding_id == NULL || strncmp(f->finding_id, fc->id, fc->len) != 0)
		return 0;
	if (++fc->matches > 1)
		return 0;
	r->run_id = f->run_id;
	snprintf(r->finding_id, sizeof(r->finding_id), "%s", f->finding_id);
	snprintf(r->check, sizeof(r->check), "%s", f->check);
	snprintf(r->resource, sizeof(r->resource), "%s", f->resource);
	r->state = f->state;
	r->suppressed = f->suppressed;
	r->finding.severity = f->severity;
	return 0;
}

int
cf_audit_finding_find(cf_audit_finding_ref *out, cf_store *store, int64_t run_id, const char *id,
		      cf_err *err)
{
	cf_store_finding_filter filter = CF_STORE_FINDING_FILTER_INIT;
	struct find_ctx fc;
	size_t i, len = id != NULL ? strlen(id) : 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len < 8 || len > 32)
		return cf_err_set(err, CF_EINVAL, NULL, "a finding id is 8 to 32 hex digits");
	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
			return cf_err_set(err, CF_EINVAL, NULL,
					  "a finding id is lowercase hex digits");
	fc.id = id;
	fc.len = len;
	fc.matches = 0;
	fc.out = out;
	filter.run_id = run_id;
	filter.include_suppressed = true;
	rc = cf_store_audit_finding_list(store, &filter, find_cb, &fc, err);
	if (rc < 0)
		return rc;
	if (fc.matches == 0)
		return cf_err_set(err, CF_ENOTFOUND, NULL, "no finding %s in %s", id,
				  run_id > 0 ? "that run" : "the latest completed run");
	if (fc.matches > 1)
		return cf_err_set(err, CF_EINVAL, NULL, "finding id %s is ambiguous", id);
	out->finding.run_id = out->run_id;
	out->finding.finding_id = out->finding_id;
	out->finding.check = out->check;
	out->finding.resource = out->resource;
	out->finding.state = out->state;
	out->finding.suppressed = out->suppressed;
	return CF_OK;
}

/* ---- bindings ------------------------------------------------------------------ */

static int
check_index(const char *name, size_t len)
{
	const cf_audit_check_info *c;
	size_t i;

	for (i = 0; (c = cf_audit_check_at(i)) != NULL; i++)
		if (strlen(c->name) == len && strncmp(c->name, name, len) == 0)
			return (int)i;
	return -1;
}

int
cf_audit_bindings_parse(cf_audit_bindings *out, const char *text, cf_err *err)
{
	const char *p = text != NULL ? text : "";
	char action[64];

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || strcmp(p, "none") == 0)
		return CF_OK;
	while (*p != '\0') {
		const char *item = p, *colon, *end;
		size_t alen;
		cf_audit_action a;
		int ci;

		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		while (item < end && (*item == ' ' || *item == '\t'))
			item++;
		colon = memchr(item, ':', (size_t)(end - item));
		if (colon == NULL)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_actions: '%.*s' is not CHECK:ACTION",
					  (int)(end - item), item);
		ci = check_index(item, (size_t)(colon - item));
		if (ci < 0)
			return cf_err_set(err, CF_EINVAL, NULL, "audit_actions: unknown check '%.*s'",
					  (int)(colon - item), item);
		alen = (size_t)(end - colon - 1);
		while (alen > 0 && (colon[alen] == ' ' || colon[alen] == '\t'))
			alen--;
		if (alen == 0 || alen >= sizeof(action))
			return cf_err_set(err, CF_EINVAL, NULL, "audit_actions: bad action after %.*s",
					  (int)(colon - item), item);
		memcpy(action, colon + 1, alen);
		action[alen] = '\0';
		if (cf_audit_action_parse(&a, action) != CF_OK)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_actions: unknown action '%s'", action);
		out->actions[ci] |= 1u << a;
		p = *end == ',' ? end + 1 : end;
	}
	return CF_OK;
}
