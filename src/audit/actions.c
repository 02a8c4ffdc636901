/*
 * audit mitigation actions: what is done about a finding, by hand
 * (certfleet audit mitigate) or bound to a check in the config (certfleetd
 * after a scheduled run). Each action is a registry change the store writes
 * with its event, so the event log tells who acted on which finding.
 */
#include "audit/audit_int.h"

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
		/* The broker admits no expired certificate: its device cannot take csr_req. */
		if (cert.not_after <= cf_store_now(store)) {
			rc = cf_err_set(err, CF_ESTATE, NULL,
					"certificate %.16s has expired: its device cannot connect "
					"to be rotated; provision it again",
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
		/* The event is the notice: certfleetd sends it on (docs/daemon.md). */
		rc = cf_store_audit_notified(store, finding, &actor, err);
		if (rc == CF_OK)
			out->changed = 1;
		return rc;
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


/* What the findings of a check name, and what an action takes: resource kinds. */
enum {
	RES_CERT = 1u << 0,
	RES_CA = 1u << 1,
	RES_THING = 1u << 2,
	RES_CLIENT = 1u << 3,
	RES_POLICY = 1u << 4,
	RES_OTHER = 1u << 5, /* file:, registry:, config: */
	RES_ANY = 0x3fu,
};

static const unsigned int check_resources[CF_AUDIT__COUNT] = {
	[CF_AUDIT__DEVICE_EXPIRING] = RES_CERT,
	[CF_AUDIT__CA_EXPIRING] = RES_CA,
	[CF_AUDIT__DEVICE_KEY_QUALITY] = RES_CERT,
	[CF_AUDIT__CA_KEY_QUALITY] = RES_CA,
	[CF_AUDIT__REVOKED_CA_ACTIVE] = RES_CA,
	[CF_AUDIT__INTERMEDIATE_REVOKED] = RES_CERT,
	[CF_AUDIT__REVOKED_DEVICE_ACTIVE] = RES_CERT | RES_OTHER,
	[CF_AUDIT__DEVICE_SHARED] = RES_CERT,
	[CF_AUDIT__CONFLICTING_CLIENT_IDS] = RES_CLIENT,
	[CF_AUDIT__DEVICE_AGE] = RES_CERT,
	[CF_AUDIT__ROTATION_FAILING] = RES_THING,
	[CF_AUDIT__POLICY_PERMISSIVE] = RES_POLICY,
	[CF_AUDIT__LOGGING_DISABLED] = RES_OTHER,
};

static const unsigned int action_resources[CF_AUDIT_ACTION_COUNT] = {
	[CF_AUDIT_ROTATE_DEVICE_CERTIFICATE] = RES_CERT | RES_THING,
	[CF_AUDIT_DEACTIVATE_DEVICE_CERTIFICATE] = RES_CERT,
	[CF_AUDIT_REVOKE_DEVICE_CERTIFICATE] = RES_CERT,
	[CF_AUDIT_DEACTIVATE_CA_CERTIFICATE] = RES_CA,
	[CF_AUDIT_QUARANTINE_THING] = RES_THING | RES_CERT,
	[CF_AUDIT_NOTIFY] = RES_ANY,
};

/* The kind of a finding's resource. */
static unsigned int
resource_kind(const char *resource)
{
	static const struct {
		const char *prefix;
		unsigned int kind;
	} kinds[] = {
		{ "cert:", RES_CERT },	   { "ca:", RES_CA },	       { "thing:", RES_THING },
		{ "client:", RES_CLIENT }, { "policy:", RES_POLICY },
	};
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(kinds); i++)
		if (resource_of(resource, kinds[i].prefix) != NULL)
			return kinds[i].kind;
	return RES_OTHER;
}

bool
cf_audit_action_fits(cf_audit_action action, const char *resource)
{
	return (unsigned int)action < CF_AUDIT_ACTION_COUNT &&
	       (action_resources[action] & resource_kind(resource)) != 0;
}

/* s[0, *len) without blanks at either end. */
static const char *
trim_span(const char *s, size_t *len)
{
	while (*len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		(*len)--;
	}
	while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
		(*len)--;
	return s;
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

		const char *check, *act;
		size_t clen;

		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		colon = memchr(item, ':', (size_t)(end - item));
		if (colon == NULL)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_actions: '%.*s' is not CHECK:ACTION",
					  (int)(end - item), item);
		clen = (size_t)(colon - item);
		check = trim_span(item, &clen);
		ci = cf_audit__check_index(check, clen);
		if (ci < 0)
			return cf_err_set(err, CF_EINVAL, NULL, "audit_actions: unknown check '%.*s'",
					  (int)clen, check);
		alen = (size_t)(end - colon - 1);
		act = trim_span(colon + 1, &alen);
		if (alen == 0 || alen >= sizeof(action))
			return cf_err_set(err, CF_EINVAL, NULL, "audit_actions: bad action after %.*s",
					  (int)clen, check);
		memcpy(action, act, alen);
		action[alen] = '\0';
		if (cf_audit_action_parse(&a, action) != CF_OK)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_actions: unknown action '%s'", action);
		if ((check_resources[ci] & action_resources[a]) == 0)
			return cf_err_set(err, CF_EINVAL, NULL,
					  "audit_actions: %s cannot act on the findings of %.*s",
					  action, (int)clen, check);
		out->actions[ci] |= 1u << a;
		p = *end == ',' ? end + 1 : end;
	}
	return CF_OK;
}
