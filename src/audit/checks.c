/*
 * The audit checks. Names, reasons and severities follow the device
 * defender audits operators already know. Each check reads only what the
 * engine hands it (a CA, an ACTIVE certificate) or, after the pass, the
 * state the pass gathered and the connection and rotation records.
 */
#include "audit/audit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400

const cf_audit_check_info cf_audit__checks[CF_AUDIT__COUNT] = {
	{ "DEVICE_CERTIFICATE_EXPIRING_CHECK", CF_SEVERITY_MEDIUM,
	  "an ACTIVE device certificate expires within audit_device_expiring_days, or has expired" },
	{ "CA_CERTIFICATE_EXPIRING_CHECK", CF_SEVERITY_MEDIUM,
	  "an ACTIVE CA expires within audit_ca_expiring_days, or has expired" },
	{ "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK", CF_SEVERITY_CRITICAL,
	  "an ACTIVE device certificate has a weak key or signature, or a key another thing uses" },
	{ "CA_CERTIFICATE_KEY_QUALITY_CHECK", CF_SEVERITY_CRITICAL,
	  "an ACTIVE CA has a weak key or signature" },
	{ "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK", CF_SEVERITY_CRITICAL,
	  "a REVOKED CA still has ACTIVE device certificates" },
	{ "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK", CF_SEVERITY_CRITICAL,
	  "an ACTIVE device certificate was issued under a REVOKED CA" },
	{ "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK", CF_SEVERITY_CRITICAL,
	  "an ACTIVE device certificate is on its CA's revocation list (audit_crl_files)" },
	{ "DEVICE_CERTIFICATE_SHARED_CHECK", CF_SEVERITY_CRITICAL,
	  "a certificate was presented with several client ids or from several addresses "
	  "within audit_shared_window" },
	{ "CONFLICTING_CLIENT_IDS_CHECK", CF_SEVERITY_HIGH,
	  "a client id was used with several certificates within audit_shared_window" },
	{ "DEVICE_CERTIFICATE_AGE_CHECK", CF_SEVERITY_LOW,
	  "an ACTIVE device certificate is older than audit_device_age_days and not expiring" },
	{ "ROTATION_FAILING_CHECK", CF_SEVERITY_HIGH,
	  "a thing's last audit_rotation_failures rotations all failed or timed out" },
	/*
	 * HIGH: what it finds ranges from a fleet-wide read-only topic to
	 * publishing on every device's csr_res; the detail names the actions.
	 */
	{ "POLICY_OVERLY_PERMISSIVE_CHECK", CF_SEVERITY_HIGH,
	  "a policy attached to a device lets it reach topics outside its own "
	  "(no ${clientid}, or a wildcard above it)" },
	/*
	 * MEDIUM: one severity for both reasons; a missing notifier alone is
	 * LOW elsewhere, a broken chain is worse, and `certfleet events
	 * verify` says more about it.
	 */
	{ "LOGGING_DISABLED_CHECK", CF_SEVERITY_MEDIUM,
	  "no notifier is configured, or the event log's hash chain is broken" },
};

/* ---- expiry and age ---------------------------------------------------- */

/* "CERTIFICATE_PAST_EXPIRATION", "CERTIFICATE_APPROACHING_EXPIRATION", or NULL. */
static const char *
expiry_reason(int64_t not_after, int64_t now, int64_t days)
{
	if (not_after <= now)
		return "CERTIFICATE_PAST_EXPIRATION";
	if (not_after - now < days * DAY)
		return "CERTIFICATE_APPROACHING_EXPIRATION";
	return NULL;
}

/* Whole days from now to t, rounded down (negative once past). */
static int64_t
days_left(int64_t t, int64_t now)
{
	int64_t d = t - now;

	return d >= 0 ? d / DAY : -((-d + DAY - 1) / DAY);
}

/* ---- key quality from the registry's columns ----------------------------- */

/*
 * The facts cf_pki_key_quality() reads, rebuilt from the key_type label
 * ("EC-P256", "ED25519", "RSA-2048", or "RSA-1024" / "EC-secp256k1" for a
 * registered certificate outside the list: see cli_key_label()).
 */
static void
info_from_columns(cf_pki_cert_info *info, const char *key_type, int key_bits, const char *sig_alg,
		  bool key_roca)
{
	cf_key_type kt = CF_KEY_UNKNOWN;

	memset(info, 0, sizeof(*info));
	info->key_valid = true; /* what the registry cannot say: see audit.h */
	info->key_roca = key_roca;
	info->key_bits = key_bits;
	snprintf(info->sig_alg, sizeof(info->sig_alg), "%s", sig_alg != NULL ? sig_alg : "");
	if (key_type == NULL)
		key_type = "";
	if (cf_pki_key_type_parse(&kt, key_type) == CF_OK)
		info->key_type = kt;
	if (strncmp(key_type, "RSA", 3) == 0) {
		snprintf(info->key_alg, sizeof(info->key_alg), "RSA");
		if (key_bits <= 0 && key_type[3] == '-')
			info->key_bits = (int)strtol(key_type + 4, NULL, 10);
	} else if (strncmp(key_type, "EC-", 3) == 0) {
		snprintf(info->key_alg, sizeof(info->key_alg), "EC");
		snprintf(info->key_curve, sizeof(info->key_curve), "%s", key_type + 3);
	} else if (strcmp(key_type, "ED25519") == 0) {
		snprintf(info->key_alg, sizeof(info->key_alg), "ED25519");
	} else {
		snprintf(info->key_alg, sizeof(info->key_alg), "%s",
			 key_type[0] != '\0' ? key_type : "unknown");
	}
}

/* The verdict for these columns, from a small cache: a fleet has few distinct key kinds. */
static const cf_pki_quality *
verdict(cf_audit__run *run, const char *key_type, int key_bits, const char *sig_alg,
	bool key_roca)
{
	struct cf_audit__verdict *v;
	cf_pki_cert_info info;
	size_t i;

	if (key_type == NULL)
		key_type = "";
	if (sig_alg == NULL)
		sig_alg = "";
	for (i = 0; i < run->nverdicts; i++) {
		v = &run->verdicts[i];
		if (v->key_bits == key_bits && v->key_roca == key_roca &&
		    strcmp(v->key_type, key_type) == 0 && strcmp(v->sig_alg, sig_alg) == 0)
			return &v->q;
	}
	/* A full cache starts over: only a very mixed fleet pays the lookups again. */
	if (run->nverdicts == CF_AUDIT__VERDICTS)
		run->nverdicts = 0;
	v = &run->verdicts[run->nverdicts++];
	snprintf(v->key_type, sizeof(v->key_type), "%s", key_type);
	snprintf(v->sig_alg, sizeof(v->sig_alg), "%s", sig_alg);
	v->key_bits = key_bits;
	v->key_roca = key_roca;
	info_from_columns(&info, key_type, key_bits, sig_alg, key_roca);
	cf_pki_key_quality(&v->q, &info, &run->cfg->key_policy);
	return &v->q;
}

/* A lowercase hex digit's value plus one; 0 for anything else (the registry writes lowercase). */
static const unsigned char hex_value1[256] = {
	['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,  ['5'] = 6,
	['6'] = 7,  ['7'] = 8,	['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
	['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/*
 * 64 lowercase hex digits into 32 bytes; false for anything else. By table:
 * it runs twice per ACTIVE certificate, and the branchy version was a tenth
 * of a million-certificate audit.
 */
static bool
hex32(unsigned char out[32], const char *hex)
{
	const unsigned char *h = (const unsigned char *)hex;
	unsigned int hi, lo;
	size_t i;

	if (hex == NULL)
		return false;
	for (i = 0; i < 32; i++) {
		/* A NUL maps to 0: the string ends here, nothing past it is read. */
		hi = hex_value1[h[2 * i]];
		if (hi == 0)
			return false;
		lo = hex_value1[h[2 * i + 1]];
		if (lo == 0)
			return false;
		out[i] = (unsigned char)((hi - 1) << 4 | (lo - 1));
	}
	return h[64] == '\0';
}

/* FNV-1a, 64 bits. */
static uint64_t
hash_str(const char *s, uint64_t h)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_BASIS 0xcbf29ce484222325ULL

static int
key_remember(cf_audit__run *run, const cf_store_cert_facts *cert, bool reported)
{
	struct cf_audit__key *k;

	if (run->nkeys == run->capkeys) {
		size_t cap = run->capkeys == 0 ? 4096 : run->capkeys * 2;
		struct cf_audit__key *grown = realloc(run->keys, cap * sizeof(*grown));

		if (grown == NULL)
			return cf_err_set(run->err, CF_ENOMEM, NULL, "%zu keys", cap);
		run->keys = grown;
		run->capkeys = cap;
	}
	k = &run->keys[run->nkeys];
	if (!hex32(k->spki, cert->spki_sha256) || !hex32(k->id, cert->id))
		return CF_OK; /* no usable key digest: nothing to compare */
	/* An unbound certificate is nobody's: it shares with everyone. */
	k->thing_hash = (cert->thing != NULL ? hash_str(cert->thing, FNV_BASIS)
					      : hash_str(cert->id, hash_str("cert:", FNV_BASIS))) >>
			1;
	k->reported = reported ? 1 : 0;
	run->nkeys++;
	return CF_OK;
}

static json_t *
cert_detail(const cf_store_cert_facts *cert)
{
	json_t *d = json_object();

	if (d == NULL)
		return NULL;
	json_object_set_new(d, "thing", cert->thing != NULL ? json_string(cert->thing) : json_null());
	json_object_set_new(d, "ca", json_string(cert->ca != NULL ? cert->ca : ""));
	json_object_set_new(d, "notAfter", json_integer(cert->not_after));
	return d;
}

static int
emit_cert(cf_audit__run *run, int check, const cf_store_cert_facts *cert, const char *reason,
	  json_t *detail)
{
	char resource[80];

	snprintf(resource, sizeof(resource), "cert:%s", cert->id);
	if (detail == NULL)
		return cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail");
	return cf_audit__emit(run, check, resource, reason, detail);
}

static int
emit_ca(cf_audit__run *run, int check, const char *name, const char *reason, json_t *detail)
{
	char resource[CF_STORE_AUDIT_RESOURCE_MAX];

	snprintf(resource, sizeof(resource), "ca:%s", name);
	if (detail == NULL)
		return cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail");
	return cf_audit__emit(run, check, resource, reason, detail);
}

/* ---- per certificate ----------------------------------------------------- */

int
cf_audit__check_cert(cf_audit__run *run, const cf_store_cert_facts *cert)
{
	const cf_audit_config *cfg = run->cfg;
	struct cf_audit__ca *ca = NULL;
	const char *reason;
	json_t *d;
	bool expiring;
	int rc = CF_OK;

	reason = expiry_reason(cert->not_after, run->now, cfg->device_expiring_days);
	expiring = reason != NULL;
	if (run->on[CF_AUDIT__DEVICE_EXPIRING] && expiring) {
		d = cert_detail(cert);
		if (d != NULL)
			json_object_set_new(d, "daysLeft",
					    json_integer(days_left(cert->not_after, run->now)));
		rc = emit_cert(run, CF_AUDIT__DEVICE_EXPIRING, cert, reason, d);
	}
	if (rc == CF_OK && run->on[CF_AUDIT__DEVICE_AGE] && !expiring &&
	    run->now - cert->not_before > cfg->device_age_days * DAY) {
		d = cert_detail(cert);
		if (d != NULL) {
			json_object_set_new(d, "notBefore", json_integer(cert->not_before));
			json_object_set_new(d, "ageDays",
					    json_integer((run->now - cert->not_before) / DAY));
		}
		rc = emit_cert(run, CF_AUDIT__DEVICE_AGE, cert, "CERTIFICATE_PAST_AGE_THRESHOLD", d);
	}
	if (rc == CF_OK && run->on[CF_AUDIT__DEVICE_KEY_QUALITY]) {
		const cf_pki_quality *q = verdict(run, cert->key_type, cert->key_bits, cert->sig_alg,
							   cert->key_roca);

		if (!q->ok) {
			d = cert_detail(cert);
			if (d != NULL) {
				json_object_set_new(d, "keyType", json_string(cert->key_type != NULL
										     ? cert->key_type
										     : ""));
				json_object_set_new(d, "keyBits", json_integer(cert->key_bits));
				json_object_set_new(d, "sigAlg", json_string(cert->sig_alg != NULL
										    ? cert->sig_alg
										    : ""));
				json_object_set_new(d, "problem", json_string(q->detail));
			}
			rc = emit_cert(run, CF_AUDIT__DEVICE_KEY_QUALITY, cert, q->reason, d);
		}
		if (rc == CF_OK)
			rc = key_remember(run, cert, !q->ok);
	}
	if (rc == CF_OK && (run->on[CF_AUDIT__REVOKED_CA_ACTIVE] ||
			    run->on[CF_AUDIT__INTERMEDIATE_REVOKED]))
		ca = cf_audit__ca_find(run, cert->ca);
	if (ca != NULL)
		ca->active_certs++;
	if (rc == CF_OK && ca != NULL && ca->chain_revoked &&
	    run->on[CF_AUDIT__INTERMEDIATE_REVOKED]) {
		d = cert_detail(cert);
		if (d != NULL)
			json_object_set_new(d, "revokedCa", json_string(ca->revoked));
		rc = emit_cert(run, CF_AUDIT__INTERMEDIATE_REVOKED, cert, "ISSUER_CA_REVOKED", d);
	}
	return rc;
}

/* ---- CAs ----------------------------------------------------------------- */

/* A CA's key and signature: from its certificate when it parses, else from its key_type. */
static void
ca_quality(cf_audit__run *run, cf_pki_quality *q, const cf_store_ca *ca)
{
	cf_pki_cert_info info;
	X509 *x = NULL;

	if (ca->cert_pem != NULL &&
	    cf_pki_cert_from_pem(&x, ca->cert_pem, strlen(ca->cert_pem), NULL) == CF_OK &&
	    cf_pki_cert_info_get(&info, x, NULL) == CF_OK) {
		cf_pki_key_quality(q, &info, &run->cfg->key_policy);
		/* A trust anchor's self-signature proves nothing either way (cmd_ca.c). */
		if (!q->ok && ca->is_root && strcmp(q->reason, "WEAK_SIGNATURE") == 0)
			q->ok = true;
	} else {
		info_from_columns(&info, ca->key_type, 0, NULL, false);
		cf_pki_key_quality(q, &info, &run->cfg->key_policy);
	}
	X509_free(x);
}

static int
ca_check_cb(const cf_store_ca *ca, void *payload)
{
	cf_audit__run *run = payload;
	const char *reason;
	cf_pki_quality q;
	json_t *d;
	int rc = CF_OK;

	if (ca->status != CF_CA_ACTIVE)
		return 0;
	reason = expiry_reason(ca->not_after, run->now, run->cfg->ca_expiring_days);
	if (run->on[CF_AUDIT__CA_EXPIRING] && reason != NULL) {
		d = json_pack("{s:I, s:I, s:s}", "notAfter", (json_int_t)ca->not_after, "daysLeft",
			      (json_int_t)days_left(ca->not_after, run->now), "subject",
			      ca->subject != NULL ? ca->subject : "");
		rc = emit_ca(run, CF_AUDIT__CA_EXPIRING, ca->name, reason, d);
	}
	if (rc == CF_OK && run->on[CF_AUDIT__CA_KEY_QUALITY]) {
		ca_quality(run, &q, ca);
		if (!q.ok) {
			d = json_pack("{s:s, s:s}", "keyType", ca->key_type != NULL ? ca->key_type : "",
				      "problem", q.detail);
			rc = emit_ca(run, CF_AUDIT__CA_KEY_QUALITY, ca->name, q.reason, d);
		}
	}
	return rc;
}

int
cf_audit__check_cas(cf_audit__run *run)
{
	int rc;

	if (!run->on[CF_AUDIT__CA_EXPIRING] && !run->on[CF_AUDIT__CA_KEY_QUALITY])
		return CF_OK;
	/* The CA records again, with their certificates: a fleet has a handful. */
	rc = cf_store_ca_list(run->store, ca_check_cb, run, run->err);
	if (rc == CF_ENOMEM)
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "CA checks");
	return rc;
}

/* ---- shared keys --------------------------------------------------------- */

static int
key_cmp(const void *a, const void *b)
{
	const struct cf_audit__key *x = a, *y = b;
	int c = memcmp(x->spki, y->spki, sizeof(x->spki));

	return c != 0 ? c : memcmp(x->id, y->id, sizeof(x->id));
}

#define KEY_BUCKETS 65536
#define KEY_SMALL 32

static unsigned int
key_bucket(const struct cf_audit__key *k)
{
	return (unsigned int)k->spki[0] << 8 | k->spki[1];
}

static void
key_swap(struct cf_audit__key *a, struct cf_audit__key *b)
{
	struct cf_audit__key t = *a;

	*a = *b;
	*b = t;
}

/*
 * Sort the keys by (spki, id) in place. qsort() would take a copy of the
 * whole array (glibc's merge sort: 65 MB more at a million certificates).
 * The digests are uniform, so one pass of an in-place radix sort on their
 * first two bytes (American flag sort) leaves buckets of a few entries,
 * finished by insertion sort, or by qsort() for a big bucket (many
 * certificates with one key).
 */
static int
keys_sort(cf_audit__run *run)
{
	struct cf_audit__key *keys = run->keys;
	size_t *start = NULL, *next = NULL, b, i, j;
	int rc = CF_OK;

	start = calloc(KEY_BUCKETS + 1, sizeof(*start));
	next = malloc(KEY_BUCKETS * sizeof(*next));
	if (start == NULL || next == NULL) {
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "sorting %zu keys", run->nkeys);
		goto out;
	}
	for (i = 0; i < run->nkeys; i++)
		start[key_bucket(&keys[i]) + 1]++;
	for (b = 0; b < KEY_BUCKETS; b++)
		start[b + 1] += start[b];
	memcpy(next, start, KEY_BUCKETS * sizeof(*next));
	for (b = 0; b < KEY_BUCKETS; b++) {
		while (next[b] < start[b + 1]) {
			unsigned int d = key_bucket(&keys[next[b]]);

			if (d == b)
				next[b]++;
			else
				key_swap(&keys[next[b]], &keys[next[d]++]);
		}
	}
	for (b = 0; b < KEY_BUCKETS; b++) {
		size_t from = start[b], to = start[b + 1];

		if (to - from > KEY_SMALL) {
			qsort(keys + from, to - from, sizeof(*keys), key_cmp);
			continue;
		}
		for (i = from + 1; i < to; i++)
			for (j = i; j > from && key_cmp(&keys[j - 1], &keys[j]) > 0; j--)
				key_swap(&keys[j - 1], &keys[j]);
	}
out:
	free(start);
	free(next);
	return rc;
}

/* The things named by the certificates of keys[from, to), at most 10, as a JSON array. */
static json_t *
group_things(cf_audit__run *run, size_t from, size_t to)
{
	json_t *things = json_array();
	cf_store_cert cert;
	char id[65];
	size_t i, j;

	for (i = from; things != NULL && i < to && json_array_size(things) < 10; i++) {
		bool seen = false;

		memset(&cert, 0, sizeof(cert));
		cf_hex_encode(id, run->keys[i].id, 32);
		if (cf_store_cert_get(run->store, &cert, id, NULL) == CF_OK && cert.thing != NULL) {
			for (j = 0; j < json_array_size(things); j++)
				seen = seen || strcmp(json_string_value(json_array_get(things, j)),
						      cert.thing) == 0;
			if (!seen)
				json_array_append_new(things, json_string(cert.thing));
		}
		cf_store_cert_clear(&cert);
	}
	return things;
}

static int
shared_keys(cf_audit__run *run)
{
	size_t i = 0, j, k;
	int rc = CF_OK;

	if (run->nkeys > 1)
		rc = keys_sort(run);
	while (rc == CF_OK && i < run->nkeys) {
		bool mixed = false;
		json_t *things = NULL;
		char spki[65];

		for (j = i + 1; j < run->nkeys && memcmp(run->keys[j].spki, run->keys[i].spki, 32) == 0;
		     j++)
			mixed = mixed || run->keys[j].thing_hash != run->keys[i].thing_hash;
		if (mixed) {
			things = group_things(run, i, j);
			cf_hex_encode(spki, run->keys[i].spki, 32);
		}
		for (k = i; mixed && rc == CF_OK && k < j; k++) {
			char resource[80], id[65];
			json_t *d;

			if (run->keys[k].reported)
				continue;
			cf_hex_encode(id, run->keys[k].id, 32);
			snprintf(resource, sizeof(resource), "cert:%s", id);
			d = json_pack("{s:s, s:O, s:I}", "spkiSha256", spki, "things", things,
				      "certificates", (json_int_t)(j - i));
			if (d == NULL)
				rc = cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail");
			else
				rc = cf_audit__emit(run, CF_AUDIT__DEVICE_KEY_QUALITY, resource,
						    "KEY_REUSE", d);
		}
		json_decref(things);
		i = j;
	}
	return rc;
}

/* ---- revoked CAs --------------------------------------------------------- */

static int
revoked_cas(cf_audit__run *run)
{
	size_t i;
	int rc = CF_OK;

	for (i = 0; rc == CF_OK && i < run->ncas; i++) {
		const struct cf_audit__ca *ca = &run->cas[i];

		if (ca->status != CF_CA_REVOKED || ca->active_certs == 0)
			continue;
		rc = emit_ca(run, CF_AUDIT__REVOKED_CA_ACTIVE, ca->name,
			     "CA_REVOKED_WITH_ACTIVE_CERTIFICATES",
			     json_pack("{s:I}", "activeCertificates", (json_int_t)ca->active_certs));
	}
	return rc;
}

/* ---- connections ---------------------------------------------------------- */

/*
 * A string-keyed map to small sets of strings: key -> up to SET_MAX
 * distinct values kept, and a flag when there were more. Chained, sized
 * once from the number of records read.
 */
#define SET_MAX 16

/* Comebacks of an address after another one that make a certificate shared. */
#define SHARED_RETURNS_MIN 3

struct set_entry {
	char *key;
	char *vals[SET_MAX];
	size_t nvals;
	bool more;
	size_t last;    /* the value added last, by index (SET_MAX: one not kept) */
	size_t returns; /* times a value came again after another one */
	struct set_entry *next;
};

struct set_map {
	struct set_entry **slots;
	size_t nslots;
};

static void
set_map_free(struct set_map *m)
{
	size_t i, j;

	for (i = 0; m->slots != NULL && i < m->nslots; i++) {
		struct set_entry *e = m->slots[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			for (j = 0; j < e->nvals; j++)
				free(e->vals[j]);
			free(e->key);
			free(e);
		}
	}
	free(m->slots);
	m->slots = NULL;
}

static int
set_map_add(struct set_map *m, const char *key, const char *val)
{
	size_t slot = (size_t)(hash_str(key, FNV_BASIS) % m->nslots), i;
	struct set_entry *e;

	for (e = m->slots[slot]; e != NULL && strcmp(e->key, key) != 0; e = e->next)
		;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return CF_ENOMEM;
		e->key = cf_strdup(key);
		if (e->key == NULL) {
			free(e);
			return CF_ENOMEM;
		}
		e->next = m->slots[slot];
		m->slots[slot] = e;
	}
	for (i = 0; i < e->nvals; i++) {
		if (strcmp(e->vals[i], val) == 0) {
			e->returns += e->last != i;
			e->last = i;
			return CF_OK;
		}
	}
	if (e->nvals == SET_MAX) {
		e->more = true;
		e->last = SET_MAX;
		return CF_OK;
	}
	e->vals[e->nvals] = cf_strdup(val);
	if (e->vals[e->nvals] == NULL)
		return CF_ENOMEM;
	e->last = e->nvals++;
	return CF_OK;
}

static json_t *
set_json(const struct set_entry *e)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < e->nvals; i++)
		json_array_append_new(a, json_string(e->vals[i]));
	return a;
}

struct conn_maps {
	struct set_map cert_clients, cert_addrs, client_certs;
	int64_t count;
	int rc;
};

/* Text safe as a "client:" resource: 1 to 256 bytes, no control characters, UTF-8 for JSON. */
static bool
client_id_usable(const char *s)
{
	size_t len = strlen(s), i;
	json_t *probe;

	if (len == 0 || len > 256)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	probe = json_string(s);
	json_decref(probe);
	return probe != NULL;
}

static int
conn_cb(const cf_store_connection *c, void *payload)
{
	struct conn_maps *m = payload;
	int rc = CF_OK;

	m->count++;
	if (c->cert_id == NULL || !client_id_usable(c->client_id))
		return 0;
	rc = set_map_add(&m->cert_clients, c->cert_id, c->client_id);
	if (rc == CF_OK && c->address[0] != '\0' && strcmp(c->outcome, "accepted") == 0)
		rc = set_map_add(&m->cert_addrs, c->cert_id, c->address);
	if (rc == CF_OK)
		rc = set_map_add(&m->client_certs, c->client_id, c->cert_id);
	return rc;
}

static int
count_cb(const cf_store_connection *c, void *payload)
{
	(void)c;
	(*(int64_t *)payload)++;
	return 0;
}

static int
map_init(struct set_map *m, int64_t n)
{
	m->nslots = (size_t)(n < 64 ? 64 : n);
	m->slots = calloc(m->nslots, sizeof(*m->slots));
	return m->slots != NULL ? CF_OK : CF_ENOMEM;
}

static int
emit_shared(cf_audit__run *run, struct conn_maps *m)
{
	size_t i;
	int rc = CF_OK;

	for (i = 0; rc == CF_OK && i < m->cert_clients.nslots; i++) {
		const struct set_entry *e;

		for (e = m->cert_clients.slots[i]; rc == CF_OK && e != NULL; e = e->next) {
			const struct set_entry *a;
			size_t slot = (size_t)(hash_str(e->key, FNV_BASIS) % m->cert_addrs.nslots);
			char resource[80];
			const char *reason = NULL;
			json_t *d;

			for (a = m->cert_addrs.slots[slot]; a != NULL && strcmp(a->key, e->key) != 0;
			     a = a->next)
				;
			/*
			 * Addresses: one device that moves (a new DHCP lease, a
			 * cellular network) goes from one to the next, and one that
			 * switches between two networks now and then comes back
			 * once or twice; copies of it running at once take the
			 * session from each other, back and forth, at every
			 * reconnect.
			 */
			if (e->nvals > 1)
				reason = "CERTIFICATE_SHARED_BY_CLIENT_IDS";
			else if (a != NULL && a->returns >= SHARED_RETURNS_MIN)
				reason = "CERTIFICATE_SHARED_BY_ADDRESSES";
			if (reason == NULL || strlen(e->key) != 64)
				continue;
			d = json_pack("{s:o, s:o, s:b}", "clientIds", set_json(e), "addresses",
				      a != NULL ? set_json(a) : json_array(), "more",
				      e->more || (a != NULL && a->more));
			snprintf(resource, sizeof(resource), "cert:%s", e->key);
			rc = d == NULL ? cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail")
				       : cf_audit__emit(run, CF_AUDIT__DEVICE_SHARED, resource,
							reason, d);
		}
	}
	return rc;
}

/*
 * Whether the certificates client id e->key was used with conflict: they
 * belong to several identities (things; a certificate the registry does not
 * know or that is unbound is an identity of its own), or the client's own
 * thing has two of them ACTIVE at once outside a rotation. A rotation alone
 * is no conflict: the thing connects with its old, then its new certificate,
 * and after crt_ack the old one is no longer ACTIVE.
 */
static int
client_conflicts(cf_audit__run *run, const struct set_entry *e, bool *out)
{
	cf_store_rotation rot;
	cf_store_cert cert;
	size_t i, foreign = 0, own = 0, active = 0;
	int rc = CF_OK;

	*out = false;
	for (i = 0; rc == CF_OK && i < e->nvals; i++) {
		rc = cf_store_cert_get(run->store, &cert, e->vals[i], NULL);
		if (rc == CF_ENOTFOUND) {
			foreign++;
			rc = CF_OK;
			continue;
		}
		if (rc != CF_OK)
			return cf_err_set(run->err, rc, NULL, "certificate %.16s", e->vals[i]);
		if (cert.thing == NULL || strcmp(cert.thing, e->key) != 0) {
			foreign++;
		} else {
			own++;
			if (cert.status == CF_CERT_ACTIVE && cert.deleted_at == 0)
				active++;
		}
		cf_store_cert_clear(&cert);
	}
	if (foreign + (own > 0 ? 1 : 0) > 1 || e->more) {
		*out = true;
		return CF_OK;
	}
	if (active < 2)
		return CF_OK;
	rc = cf_store_rotation_get_open(run->store, &rot, e->key, NULL);
	if (rc == CF_OK)
		cf_store_rotation_clear(&rot);
	else if (rc == CF_ENOTFOUND)
		*out = true;
	else
		return cf_err_set(run->err, rc, NULL, "rotation of %.64s", e->key);
	return CF_OK;
}

static int
emit_conflicting(cf_audit__run *run, struct conn_maps *m)
{
	size_t i;
	int rc = CF_OK;

	for (i = 0; rc == CF_OK && i < m->client_certs.nslots; i++) {
		const struct set_entry *e;

		for (e = m->client_certs.slots[i]; rc == CF_OK && e != NULL; e = e->next) {
			char resource[CF_STORE_AUDIT_RESOURCE_MAX];
			bool conflict;
			json_t *d;

			if (e->nvals < 2)
				continue;
			rc = client_conflicts(run, e, &conflict);
			if (rc != CF_OK || !conflict)
				continue;
			d = json_pack("{s:o, s:b}", "certificates", set_json(e), "more", e->more);
			snprintf(resource, sizeof(resource), "client:%s", e->key);
			rc = d == NULL ? cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail")
				       : cf_audit__emit(run, CF_AUDIT__CONFLICTING_CLIENT_IDS, resource,
							"CLIENT_ID_WITH_SEVERAL_CERTIFICATES", d);
		}
	}
	return rc;
}

static int
connections(cf_audit__run *run)
{
	cf_store_connection_filter filter = CF_STORE_CONNECTION_FILTER_INIT;
	struct conn_maps m;
	int64_t n = 0;
	int rc;

	memset(&m, 0, sizeof(m));
	filter.since = run->now - run->cfg->shared_window > 0 ? run->now - run->cfg->shared_window
							       : 1;
	/* Count first so the maps are sized once (the table is pruned, so bounded). */
	rc = cf_store_connection_list(run->store, &filter, count_cb, &n, run->err);
	if (rc == CF_OK && (map_init(&m.cert_clients, n) != CF_OK ||
			    map_init(&m.cert_addrs, n) != CF_OK ||
			    map_init(&m.client_certs, n) != CF_OK))
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "connection maps");
	if (rc == CF_OK) {
		rc = cf_store_connection_list(run->store, &filter, conn_cb, &m, run->err);
		if (rc == CF_ENOMEM)
			rc = cf_err_set(run->err, CF_ENOMEM, NULL, "connection maps");
	}
	run->sum->connections = m.count;
	if (rc == CF_OK && run->on[CF_AUDIT__DEVICE_SHARED])
		rc = emit_shared(run, &m);
	if (rc == CF_OK && run->on[CF_AUDIT__CONFLICTING_CLIENT_IDS])
		rc = emit_conflicting(run, &m);
	set_map_free(&m.cert_clients);
	set_map_free(&m.cert_addrs);
	set_map_free(&m.client_certs);
	return rc;
}

/* ---- rotations ------------------------------------------------------------ */

/* Per thing: failures in a row at the end of its rotation history, oldest first. */
struct rot_entry {
	char *thing;
	int64_t tail_failures;
	char *last_error;
	struct rot_entry *next;
};

struct rot_map {
	struct rot_entry **slots;
	size_t nslots, nentries;
	int64_t count;
};

/* Twice the slots once there are as many things as slots (chains stay short). */
static void
rot_map_grow(struct rot_map *m)
{
	size_t n = m->nslots * 2, i, slot;
	struct rot_entry **slots = calloc(n, sizeof(*slots)), *e, *next;

	if (slots == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < m->nslots; i++) {
		for (e = m->slots[i]; e != NULL; e = next) {
			next = e->next;
			slot = (size_t)(hash_str(e->thing, FNV_BASIS) % n);
			e->next = slots[slot];
			slots[slot] = e;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = n;
}

static int
rot_cb(const cf_store_rotation *rot, void *payload)
{
	struct rot_map *m = payload;
	struct rot_entry *e;
	size_t slot;

	m->count++;
	/* Open rotations have not failed yet; cancelled ones say nothing of the device. */
	if (rot->state != CF_ROTATION_COMPLETED && rot->state != CF_ROTATION_FAILED &&
	    rot->state != CF_ROTATION_TIMED_OUT)
		return 0;
	slot = (size_t)(hash_str(rot->thing, FNV_BASIS) % m->nslots);
	for (e = m->slots[slot]; e != NULL && strcmp(e->thing, rot->thing) != 0; e = e->next)
		;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return CF_ENOMEM;
		e->thing = cf_strdup(rot->thing);
		if (e->thing == NULL) {
			free(e);
			return CF_ENOMEM;
		}
		e->next = m->slots[slot];
		m->slots[slot] = e;
		if (++m->nentries > m->nslots)
			rot_map_grow(m);
	}
	if (rot->state == CF_ROTATION_COMPLETED) {
		e->tail_failures = 0;
		return 0;
	}
	e->tail_failures++;
	free(e->last_error);
	e->last_error = cf_strdup(rot->error != NULL ? rot->error : cf_rotation_state_name(rot->state));
	return e->last_error != NULL ? 0 : CF_ENOMEM;
}

static int
rotations(cf_audit__run *run)
{
	cf_store_rotation_filter filter = CF_STORE_ROTATION_FILTER_INIT;
	struct rot_map m = { NULL, 4096, 0, 0 };
	size_t i;
	int rc;

	m.slots = calloc(m.nslots, sizeof(*m.slots));
	if (m.slots == NULL)
		return cf_err_set(run->err, CF_ENOMEM, NULL, "rotation map");
	rc = cf_store_rotation_list(run->store, &filter, rot_cb, &m, run->err);
	if (rc == CF_ENOMEM)
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "rotation map");
	run->sum->rotations = m.count;
	for (i = 0; i < m.nslots; i++) {
		struct rot_entry *e = m.slots[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			if (rc == CF_OK && e->tail_failures >= run->cfg->rotation_failures) {
				char resource[CF_STORE_AUDIT_RESOURCE_MAX];
				json_t *d = json_pack("{s:I, s:s}", "failuresInARow",
						      (json_int_t)e->tail_failures, "lastError",
						      e->last_error != NULL ? e->last_error : "");

				snprintf(resource, sizeof(resource), "thing:%s", e->thing);
				rc = d == NULL ? cf_err_set(run->err, CF_ENOMEM, NULL, "detail")
					       : cf_audit__emit(run, CF_AUDIT__ROTATION_FAILING,
								resource, "ROTATIONS_FAILING", d);
			}
			free(e->thing);
			free(e->last_error);
			free(e);
		}
	}
	free(m.slots);
	return rc;
}

/* ---- overly permissive policies ------------------------------------------ */

/*
 * The rule. A device's own topics are <prefix>/<client id>/...: the broker
 * admits a client only with the name of its certificate's thing as client
 * id, so ${clientid} and ${thing} both stand for that one name. An allow
 * resource of a statement that can publish, subscribe or receive (connect
 * alone is the registry's decision) is overly permissive when:
 * - with two different sample names substituted, the two filters overlap
 *   (cf_store_topic_filters_overlap()): two devices reach one topic.
 *   Always so for a resource without a variable ("#",
 *   "management/topic/+/csr_req", "status"): RESOURCE_WITHOUT_CLIENT_ID;
 *   with a variable, RESOURCE_SHARED_BY_DEVICES (a level naming the client
 *   is a one-to-one function of the name, so the first rule below makes
 *   this one a safety net);
 * - or a wildcard comes before the first level that names the client
 *   ("+/+/${clientid}/x"): its expansion reaches topics under any prefix,
 *   other namespaces and other devices' own trees ("P/dev-2/dev-1" is in
 *   dev-2's "P/${clientid}/#"): WILDCARD_ABOVE_CLIENT_ID.
 * So a resource passes only when a literal prefix leads to a level naming
 * the client, which makes the topics of two devices disjoint. Deny
 * statements are not weighed: an allow that only a deny narrows is still
 * reported (suppress the finding when that is intended). Not covered: a
 * client name equal to a literal level of another resource.
 *
 * Which policies: those attached to an ACTIVE certificate bound to a thing
 * that is not a service principal (attribute role "service", skipped as
 * cf_rotation_start_many() does: the service policy's "P/+/..." is meant
 * for them). An unbound certificate cannot connect. The documents are
 * judged first (a handful); only when one is reported are the ACTIVE
 * certificates read again, with their policies, until each reported policy
 * has a device, so a clean fleet costs one query.
 */
#define SAMPLE_A "cf-audit-sample-a"
#define SAMPLE_B "cf-audit-sample-b"
#define POLICY_RESOURCES_MAX 16 /* in a finding's detail */

struct perm_policy {
	char *name;
	json_t *resources; /* [{resource, actions, reason}] */
	const char *reason; /* the first resource's */
	char *thing;        /* a device it is attached to, once found */
	char *cert;
};

struct perm {
	cf_audit__run *run;
	struct perm_policy *p;
	size_t n;
	struct perm_policy *cur; /* the one whose certificates are read */
	/* the last thing looked up, for the service principal test */
	char *last_thing;
	bool last_service;
};

/* Whether a level of resource before the first one naming the client is a wildcard. */
static bool
wildcard_above(const char *res)
{
	const char *lv = res, *slash;
	size_t len;

	for (;;) {
		slash = strchr(lv, '/');
		len = slash != NULL ? (size_t)(slash - lv) : strlen(lv);
		if (len == 1 && (lv[0] == '+' || lv[0] == '#'))
			return true;
		for (size_t i = 0; i + 1 < len; i++)
			if (lv[i] == '$' && lv[i + 1] == '{')
				return false;
		if (slash == NULL)
			return false;
		lv = slash + 1;
	}
}

/* Why res is overly permissive (see the rule above), or NULL when it is not. */
static const char *
resource_verdict(const char *res)
{
	char a[CF_STORE_TOPIC_EXPANDED_MAX], b[CF_STORE_TOPIC_EXPANDED_MAX];
	bool named = strstr(res, "${") != NULL;

	if (!cf_store_topic_expand(a, res, SAMPLE_A, SAMPLE_A) ||
	    !cf_store_topic_expand(b, res, SAMPLE_B, SAMPLE_B))
		return NULL; /* too long once expanded: the broker allows nothing with it */
	if (cf_store_topic_filters_overlap(a, b))
		return named ? "RESOURCE_SHARED_BY_DEVICES" : "RESOURCE_WITHOUT_CLIENT_ID";
	if (wildcard_above(res))
		return "WILDCARD_ABOVE_CLIENT_ID";
	return NULL;
}

/* The actions of stmt that reach topics (all but connect), as a JSON array; NULL: none. */
static json_t *
topic_actions(json_t *stmt)
{
	json_t *out = json_array(), *v;
	size_t i;

	json_array_foreach(json_object_get(stmt, "actions"), i, v) {
		const char *a = json_string_value(v);

		if (a != NULL && strcmp(a, "connect") != 0)
			json_array_append_new(out, json_string(a));
	}
	if (out != NULL && json_array_size(out) == 0) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

/* The reported resources of one policy document, as a JSON array (empty: none). */
static json_t *
judge_document(const char *document, const char **reason)
{
	json_t *doc, *out = json_array(), *stmt, *res;
	size_t i, j;

	*reason = NULL;
	doc = json_loads(document != NULL ? document : "", JSON_REJECT_DUPLICATES, NULL);
	json_array_foreach(json_object_get(doc, "statements"), i, stmt) {
		const char *effect = json_string_value(json_object_get(stmt, "effect"));
		json_t *actions;

		if (effect == NULL || strcmp(effect, "allow") != 0)
			continue;
		actions = topic_actions(stmt);
		json_array_foreach(json_object_get(stmt, "resources"), j, res) {
			const char *why = json_string_value(res) != NULL
						  ? resource_verdict(json_string_value(res))
						  : NULL;

			if (actions == NULL || why == NULL || out == NULL)
				continue;
			if (*reason == NULL)
				*reason = why;
			if (json_array_size(out) < POLICY_RESOURCES_MAX)
				json_array_append_new(out, json_pack("{s:O, s:O, s:s}", "resource",
								     res, "actions", actions,
								     "reason", why));
		}
		json_decref(actions);
	}
	json_decref(doc);
	return out;
}

static int
perm_policy_cb(const cf_store_policy *policy, void *payload)
{
	struct perm *pm = payload;
	struct perm_policy *grown, *p;
	const char *reason;
	json_t *res = judge_document(policy->document, &reason);

	if (res == NULL)
		return CF_ENOMEM;
	if (json_array_size(res) == 0) {
		json_decref(res);
		return 0;
	}
	grown = realloc(pm->p, (pm->n + 1) * sizeof(*grown));
	if (grown == NULL) {
		json_decref(res);
		return CF_ENOMEM;
	}
	pm->p = grown;
	p = &pm->p[pm->n];
	memset(p, 0, sizeof(*p));
	p->resources = res;
	p->reason = reason;
	p->name = cf_strdup(policy->name);
	pm->n++;
	return p->name != NULL ? 0 : CF_ENOMEM;
}

/* Whether thing is a service principal, the last answer kept (its certificates come in a row). */
static int
perm_is_service(struct perm *pm, bool *out, const char *thing)
{
	int rc;

	if (pm->last_thing != NULL && strcmp(pm->last_thing, thing) == 0) {
		*out = pm->last_service;
		return CF_OK;
	}
	rc = cf_store_thing_is_service(pm->run->store, out, thing, pm->run->err);
	if (rc == CF_ENOTFOUND)
		rc = CF_OK; /* not a service principal */
	if (rc != CF_OK)
		return rc;
	free(pm->last_thing);
	pm->last_thing = cf_strdup(thing);
	pm->last_service = *out;
	return pm->last_thing != NULL ? CF_OK : CF_ENOMEM;
}

#define PERM_DONE 1 /* the policy has its device: its pass stops */

/* A certificate pm->cur is attached to: the first device's makes the finding. */
static int
perm_cert_cb(const cf_store_cert_facts *cert, void *payload)
{
	struct perm *pm = payload;
	struct perm_policy *p = pm->cur;
	bool service;
	int rc;

	if (cert->thing == NULL)
		return 0; /* cannot connect */
	rc = perm_is_service(pm, &service, cert->thing);
	if (rc != CF_OK || service)
		return rc;
	p->thing = cf_strdup(cert->thing);
	p->cert = cf_strdup(cert->id);
	return p->thing != NULL && p->cert != NULL ? PERM_DONE : CF_ENOMEM;
}

static int
permissive_policies(cf_audit__run *run)
{
	struct perm pm;
	size_t i;
	int rc;

	memset(&pm, 0, sizeof(pm));
	pm.run = run;
	rc = cf_store_policy_list(run->store, NULL, perm_policy_cb, &pm, run->err);
	for (i = 0; rc == CF_OK && i < pm.n; i++) {
		pm.cur = &pm.p[i];
		rc = cf_store_cert_scan_policy(run->store, pm.cur->name, CF_CERT_ACTIVE,
					       perm_cert_cb, &pm, run->err);
		if (rc == PERM_DONE)
			rc = CF_OK;
	}
	if (rc == CF_ENOMEM && run->err != NULL && run->err->code == 0)
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "policy check");
	for (i = 0; i < pm.n; i++) {
		struct perm_policy *p = &pm.p[i];
		char resource[CF_STORE_AUDIT_RESOURCE_MAX];
		json_t *d;

		if (rc == CF_OK && p->thing != NULL) {
			snprintf(resource, sizeof(resource), "policy:%s", p->name);
			d = json_pack("{s:O, s:s, s:s}", "resources", p->resources, "thing", p->thing,
				      "certificate", p->cert);
			rc = d == NULL ? cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail")
				       : cf_audit__emit(run, CF_AUDIT__POLICY_PERMISSIVE, resource,
							p->reason, d);
		}
		json_decref(p->resources);
		free(p->name);
		free(p->thing);
		free(p->cert);
	}
	free(pm.p);
	free(pm.last_thing);
	return rc;
}

/* ---- revocation lists --------------------------------------------------- */

/*
 * The registry's CA certificates, parsed, to find who signed a CRL; and the
 * resources already reported, so that a certificate on two CRLs (or a file
 * listed twice) is one finding.
 */
struct crl_issuers {
	X509 **certs;
	char **names;
	size_t n;
	struct set_map seen;
};

static int
crl_issuer_cb(const cf_store_ca *ca, void *payload)
{
	struct crl_issuers *is = payload;
	X509 **certs;
	char **names;
	X509 *x = NULL;

	if (ca->cert_pem == NULL ||
	    cf_pki_cert_from_pem(&x, ca->cert_pem, strlen(ca->cert_pem), NULL) != CF_OK)
		return 0; /* a PENDING CA signs nothing */
	certs = realloc(is->certs, (is->n + 1) * sizeof(*certs));
	if (certs != NULL)
		is->certs = certs;
	names = realloc(is->names, (is->n + 1) * sizeof(*names));
	if (names != NULL)
		is->names = names;
	if (certs == NULL || names == NULL || (names[is->n] = cf_strdup(ca->name)) == NULL) {
		X509_free(x);
		return CF_ENOMEM;
	}
	certs[is->n++] = x;
	return 0;
}

static void
crl_issuers_clear(struct crl_issuers *is)
{
	size_t i;

	for (i = 0; i < is->n; i++) {
		X509_free(is->certs[i]);
		free(is->names[i]);
	}
	free(is->certs);
	free(is->names);
	set_map_free(&is->seen);
}

/* Emit unless resource was reported by this check already (detail is taken either way). */
static int
crl_emit(cf_audit__run *run, struct crl_issuers *is, const char *resource, const char *reason,
	 json_t *d)
{
	size_t slot = (size_t)(hash_str(resource, FNV_BASIS) % is->seen.nslots);
	const struct set_entry *e;

	if (d == NULL)
		return cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail");
	for (e = is->seen.slots[slot]; e != NULL && strcmp(e->key, resource) != 0; e = e->next)
		;
	if (e != NULL) {
		json_decref(d);
		return CF_OK;
	}
	if (set_map_add(&is->seen, resource, "") != CF_OK) {
		json_decref(d);
		return cf_err_set(run->err, CF_ENOMEM, NULL, "CRL findings");
	}
	return cf_audit__emit(run, CF_AUDIT__REVOKED_DEVICE_ACTIVE, resource, reason, d);
}

/* One CRL's walk: the registry CAs that signed it (a CA renewed under a new name: two). */
#define CRL_CAS_MAX 8

struct crl_walk {
	cf_audit__run *run;
	struct crl_issuers *is;
	const char *path;
	const char *cas[CRL_CAS_MAX];
	size_t ncas;
};

static int
crl_entry_cb(const cf_pki_crl_entry *e, void *payload)
{
	struct crl_walk *w = payload;
	cf_err gerr = CF_ERR_INIT;
	char resource[80];
	cf_store_cert cert;
	json_t *d;
	size_t i;
	int rc = CF_OK;

	for (i = 0; rc == CF_OK && i < w->ncas; i++) {
		rc = cf_store_cert_get_by_serial(w->run->store, &cert, w->cas[i], e->serial, &gerr);
		if (rc == CF_ENOTFOUND) { /* not one of the registry's */
			rc = CF_OK;
			continue;
		}
		if (rc != CF_OK)
			return cf_err_set(w->run->err, rc, NULL, "%s: %s", w->path, gerr.msg);
		if (cert.status == CF_CERT_ACTIVE && cert.deleted_at == 0) {
			snprintf(resource, sizeof(resource), "cert:%s", cert.id);
			d = json_pack("{s:o, s:s, s:I, s:s, s:s, s:I, s:s}", "thing",
				      cert.thing != NULL ? json_string(cert.thing) : json_null(),
				      "ca", w->cas[i], "notAfter", (json_int_t)cert.not_after,
				      "serial", e->serial, "crl", w->path, "revokedAt",
				      (json_int_t)e->revoked_at, "crlReason", e->reason);
			rc = crl_emit(w->run, w->is, resource, "CERTIFICATE_REVOKED_BY_CA", d);
		}
		cf_store_cert_clear(&cert);
	}
	return rc;
}

/* A finding about the CRL file itself: CRL_UNUSABLE or CRL_EXPIRED. */
static int
crl_file_finding(cf_audit__run *run, struct crl_issuers *is, const char *path,
		 const char *reason, json_t *d)
{
	char resource[CF_STORE_AUDIT_RESOURCE_MAX + 1];

	/* A path too long for a resource is cut: still one stable name per file. */
	snprintf(resource, sizeof(resource), "file:%s", path);
	return crl_emit(run, is, resource, reason, d);
}

/*
 * One CRL file: read, matched with the registry CAs whose subject is its
 * issuer and whose key verifies it, then each entry looked up by (CA,
 * serial). A file that cannot be used is a finding (CRL_UNUSABLE), not a
 * failed run: a CRL download gone wrong must not stop the other checks.
 * A CRL past its nextUpdate still counts (revocations do not expire) and
 * is reported as CRL_EXPIRED.
 */
static int
crl_file(cf_audit__run *run, struct crl_issuers *is, const char *path)
{
	cf_err rerr = CF_ERR_INIT;
	struct crl_walk w;
	cf_pki_crl *crl = NULL;
	int64_t next;
	size_t i;
	int rc;

	memset(&w, 0, sizeof(w));
	w.run = run;
	w.is = is;
	w.path = path;
	rc = cf_pki_crl_read(&crl, path, &rerr);
	if (rc == CF_ENOMEM)
		return cf_err_set(run->err, rc, NULL, "%s", rerr.msg);
	if (rc != CF_OK)
		return crl_file_finding(run, is, path, "CRL_UNUSABLE",
					json_pack("{s:s}", "problem", rerr.msg));
	for (i = 0; i < is->n && w.ncas < CRL_CAS_MAX; i++)
		if (cf_pki_crl_signed_by(crl, is->certs[i]))
			w.cas[w.ncas++] = is->names[i];
	if (w.ncas == 0) {
		rc = crl_file_finding(run, is, path, "CRL_UNUSABLE",
				      json_pack("{s:s, s:s}", "issuer", cf_pki_crl_issuer(crl),
						"problem", "no CA of the registry signed it"));
		goto out;
	}
	next = cf_pki_crl_next_update(crl);
	if (next > 0 && next <= run->now) {
		rc = crl_file_finding(run, is, path, "CRL_EXPIRED",
				      json_pack("{s:s, s:s, s:I}", "ca", w.cas[0], "issuer",
						cf_pki_crl_issuer(crl), "nextUpdate",
						(json_int_t)next));
		if (rc != CF_OK)
			goto out;
	}
	rc = cf_pki_crl_foreach(crl, crl_entry_cb, &w, NULL);
out:
	cf_pki_crl_free(crl);
	return rc;
}

static int
revocation_lists(cf_audit__run *run)
{
	struct crl_issuers is;
	size_t i;
	int rc;

	if (run->cfg->ncrl_files == 0)
		return CF_OK;
	memset(&is, 0, sizeof(is));
	if (map_init(&is.seen, 4096) != CF_OK)
		return cf_err_set(run->err, CF_ENOMEM, NULL, "CRL findings");
	rc = cf_store_ca_list(run->store, crl_issuer_cb, &is, run->err);
	if (rc == CF_ENOMEM)
		rc = cf_err_set(run->err, CF_ENOMEM, NULL, "loading the CA certificates");
	for (i = 0; rc == CF_OK && i < run->cfg->ncrl_files; i++)
		rc = crl_file(run, &is, run->cfg->crl_files[i]);
	crl_issuers_clear(&is);
	return rc;
}

/* ---- logging ---------------------------------------------------------------- */

/*
 * The runs' records of the chain (their summaries' eventsHead): the newest
 * good one, and the newest that does not read back, whenever it was.
 */
struct chain_state {
	int64_t run_id; /* the current run, skipped */
	int64_t now;
	bool found;       /* a good record */
	int64_t from_run; /* ... of this run */
	int64_t at;       /* ... begun then (the store's clock) */
	cf_store_event_anchor head, sweep;
	int64_t full_at;
	int64_t damaged_run; /* the newest run whose record was edited or removed, 0: none */
};

static bool
anchor_read(cf_store_event_anchor *out, json_t *seq, json_t *hash)
{
	const char *h = json_string_value(hash);
	size_t i;

	if (!json_is_integer(seq) || json_integer_value(seq) < 0 || h == NULL || strlen(h) != 64)
		return false;
	for (i = 0; i < 64; i++)
		if (hex_value1[(unsigned char)h[i]] == 0)
			return false;
	out->seq = (int64_t)json_integer_value(seq);
	memcpy(out->hash, h, 65);
	return true;
}

/* Clock slack allowed between a run's start and a later run's now, in seconds. */
#define CHAIN_CLOCK_SLACK 300

/*
 * Newest first, down to the newest good record. A damaged one newer than it
 * is noted; an older one was noted by the run that met it, which carried it
 * forward in its own record (damagedRun), so an edited record stays a
 * finding (suppress it to acknowledge it) without every run reading every
 * run there ever was.
 */
static int
chain_state_cb(const cf_store_audit_run *r, void *payload)
{
	struct chain_state *c = payload;
	cf_store_event_anchor head, sweep;
	json_t *sum, *eh, *full;
	bool ok;

	if (r->id == c->run_id || r->status != CF_AUDIT_COMPLETED)
		return 0;
	sum = json_loads(r->summary != NULL ? r->summary : "{}", 0, NULL);
	eh = json_object_get(sum, "eventsHead");
	if (eh == NULL) {
		/* Every run of the check records one: gone, it was removed. */
		if (r->checks != NULL && strstr(r->checks, "\"LOGGING_DISABLED_CHECK\"") != NULL &&
		    c->damaged_run == 0)
			c->damaged_run = r->id;
		json_decref(sum);
		return 0;
	}
	if (json_is_true(json_object_get(eh, "broken"))) {
		json_decref(sum);
		return 0; /* the chain was broken then: nothing verified to go on from */
	}
	full = json_object_get(eh, "fullAt");
	ok = anchor_read(&head, json_object_get(eh, "seq"), json_object_get(eh, "hash")) &&
	     anchor_read(&sweep, json_object_get(eh, "sweepSeq"), json_object_get(eh, "sweepHash")) &&
	     sweep.seq <= head.seq && json_is_integer(full) && json_integer_value(full) >= 0 &&
	     r->started_at > 0 && r->started_at <= c->now + CHAIN_CLOCK_SLACK;
	if (!ok) {
		if (c->damaged_run == 0)
			c->damaged_run = r->id;
		json_decref(sum);
		return 0;
	}
	c->found = true;
	c->from_run = r->id;
	c->at = r->started_at;
	c->head = head;
	c->sweep = sweep;
	c->full_at = (int64_t)json_integer_value(full);
	if (c->damaged_run == 0 && json_is_integer(json_object_get(eh, "damagedRun")))
		c->damaged_run = (int64_t)json_integer_value(json_object_get(eh, "damagedRun"));
	json_decref(sum);
	return 1;
}

static int
chain_broken(cf_audit__run *run, int64_t bad_seq, const char *problem)
{
	json_t *d = json_pack("{s:I, s:I, s:s}", "badSeq", (json_int_t)bad_seq, "eventsChecked",
			      (json_int_t)run->sum->events_checked, "problem", problem);

	return d == NULL ? cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail")
			 : cf_audit__emit(run, CF_AUDIT__LOGGING_DISABLED, "registry:events",
					  "EVENT_CHAIN_BROKEN", d);
}

/* One walk; CF_EINTEGRITY is a finding, not a failed run. */
static int
chain_walk(cf_audit__run *run, const cf_store_event_anchor *from, int64_t limit,
	   cf_store_event_anchor *last, bool *broken)
{
	cf_err verr = CF_ERR_INIT;
	int64_t count = 0, bad_seq = 0;
	int rc;

	rc = cf_store_events_verify_chain(run->store, from, limit, last, &count, &bad_seq, &verr);
	run->sum->events_checked += count;
	if (rc == CF_EINTEGRITY) {
		*broken = true;
		return chain_broken(run, bad_seq, verr.msg);
	}
	if (rc != CF_OK)
		return cf_err_set(run->err, rc, NULL, "verifying the event log: %s", verr.msg);
	return CF_OK;
}

/*
 * No notifier (cfg->notifier_configured: a webhook or an MQTT topic):
 * "config:notifiers", NO_NOTIFIER. The event log's hash chain broken:
 * "registry:events", EVENT_CHAIN_BROKEN, with the bad seq and the reason.
 *
 * Each run keeps in its summary (eventsHead) the head it verified and where
 * its sweep stopped; the next run
 * - walks from that head to the current one: the head's hash covers
 *   everything before it, so a log cut short or rewritten before it no
 *   longer has that event with that hash, and a daily run reads only the
 *   day's events;
 * - and sweeps on through the older events, a share proportional to the
 *   time since the last run, so that every event is walked again within
 *   cfg->events_full_every (which also finds an old event edited in place,
 *   hash left alone): the whole chain's cost spread over the runs, not paid
 *   by one.
 * The first run of a registry takes the head as it is and starts the
 * sweep at the first event. A record that does not read back (its summary
 * edited) is itself a finding, and the walk starts over from the genesis.
 * That the registry agrees with the events is `certfleet events verify`'s.
 */
static int
logging(cf_audit__run *run)
{
	struct chain_state prev = { run->run_id, run->now, false, 0, 0, { 0, "" }, { 0, "" }, 0, 0 };
	int64_t every = run->cfg->events_full_every, span, limit;
	cf_audit_summary *sum = run->sum;
	cf_store_event_anchor sweep_from, swept;
	cf_err herr = CF_ERR_INIT;
	bool broken = false;
	json_t *d;
	int rc = CF_OK;

	if (!run->cfg->notifier_configured) {
		d = json_pack("{s:s}", "problem", "no notifier is configured (webhook_url, "
						  "audit_notify_topic): findings and events "
						  "reach nobody");
		rc = d == NULL ? cf_err_set(run->err, CF_ENOMEM, NULL, "finding detail")
			       : cf_audit__emit(run, CF_AUDIT__LOGGING_DISABLED, "config:notifiers",
						"NO_NOTIFIER", d);
	}
	if (rc == CF_OK)
		rc = cf_store_audit_run_list(run->store, 0, chain_state_cb, &prev, run->err);
	if (rc < 0)
		return rc;
	if (prev.damaged_run > 0) {
		char why[200];

		sum->events_damaged_run = prev.damaged_run;
		snprintf(why, sizeof(why),
			 "run %lld's record of the chain (its summary's eventsHead) was edited or "
			 "removed; the walk goes on from the newest good one (%s)",
			 (long long)prev.damaged_run, prev.found ? "an older run's" : "none: the head as found");
		rc = chain_broken(run, 0, why);
		if (rc != CF_OK)
			return rc;
	}
	memset(&sweep_from, 0, sizeof(sweep_from));
	memcpy(sweep_from.hash, CF_STORE_GENESIS_HASH, sizeof(sweep_from.hash));
	if (prev.found) {
		/* From the head the last run verified to the current one. */
		rc = chain_walk(run, &prev.head, 0, &sum->events_head, &broken);
		sweep_from = prev.sweep;
		/* The store's clock and the run's may differ: at worst the sweep moves one event. */
		span = run->now - prev.at;
	} else if (every > 0) {
		/* A first run: the head as it is; the sweep starts at the genesis. */
		rc = cf_store_events_head(run->store, &sum->events_head.seq, sum->events_head.hash,
					  &herr);
		if (rc != CF_OK)
			return cf_err_set(run->err, rc, NULL, "event head: %s", herr.msg);
		span = 86400;
	} else {
		span = 0;
	}
	if (rc != CF_OK || broken)
		goto out;
	/*
	 * The sweep's share: head * span / every events (without overflow),
	 * plus one so that it always moves; with every 0 or a whole period
	 * since the last run, a new round over all of them.
	 */
	if (every <= 0 || span >= every) {
		limit = 0;
		memset(&sweep_from, 0, sizeof(sweep_from));
	} else if (span <= 0)
		limit = 1;
	else
		limit = sum->events_head.seq / every * span +
			sum->events_head.seq % every * span / every + 1;
	rc = chain_walk(run, sweep_from.seq > 0 ? &sweep_from : NULL, limit, &swept, &broken);
	if (rc != CF_OK || broken)
		goto out;
	if (every <= 0)
		sum->events_head = swept; /* the whole chain, to its head */
	sum->events_full_at = prev.full_at;
	if (swept.seq >= sum->events_head.seq) {
		/* Round done: the next sweep starts over. */
		sum->events_full_at = run->now;
		memset(&sum->events_sweep, 0, sizeof(sum->events_sweep));
		memcpy(sum->events_sweep.hash, CF_STORE_GENESIS_HASH, sizeof(sum->events_sweep.hash));
	} else {
		sum->events_sweep = swept;
	}
	sum->events_verified = true;
out:
	/* A broken chain is recorded as such: the next run goes on from the last good record. */
	sum->events_broken = broken;
	return rc;
}

/* ---- after the pass ------------------------------------------------------- */

int
cf_audit__check_after(cf_audit__run *run)
{
	int rc = CF_OK;

	if (run->on[CF_AUDIT__DEVICE_KEY_QUALITY])
		rc = shared_keys(run);
	if (rc == CF_OK && run->on[CF_AUDIT__REVOKED_CA_ACTIVE])
		rc = revoked_cas(run);
	if (rc == CF_OK &&
	    (run->on[CF_AUDIT__DEVICE_SHARED] || run->on[CF_AUDIT__CONFLICTING_CLIENT_IDS]))
		rc = connections(run);
	if (rc == CF_OK && run->on[CF_AUDIT__REVOKED_DEVICE_ACTIVE])
		rc = revocation_lists(run);
	if (rc == CF_OK && run->on[CF_AUDIT__ROTATION_FAILING])
		rc = rotations(run);
	if (rc == CF_OK && run->on[CF_AUDIT__POLICY_PERMISSIVE])
		rc = permissive_policies(run);
	if (rc == CF_OK && run->on[CF_AUDIT__LOGGING_DISABLED])
		rc = logging(run);
	return rc;
}
