/*
 * Faults: parsing --fault, choosing the devices, and the few messages the
 * sim makes itself because the agent library would never send them (a bad
 * or weak CSR, a refused certificate). Everything else a faulty device
 * does is the agent's own code, driven differently by device.c.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "sim.h"

static const char *const fault_names[SIM_FAULT_COUNT] = {
	"ignore_csr_req",   "bad_csr",           "weak_csr",    "reuse_key",
	"crash_before_ack", "crash_after_store", "refuse_cert", "offline",
};

const char *
sim_fault_name(sim_fault_kind kind)
{
	if ((unsigned int)kind >= SIM_FAULT_COUNT)
		return "unknown";
	return fault_names[kind];
}

void
sim_fault_clear(sim_fault *f)
{
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->nnames; i++)
		free(f->names[i]);
	free(f->names);
	f->names = NULL;
	f->nnames = 0;
}

/* "@a,b,c" into f->names. */
static int
parse_names(sim_fault *f, const char *list, cf_err *err)
{
	const char *p = list;
	size_t cap = 1;

	for (; *p != '\0'; p++)
		if (*p == ',')
			cap++;
	f->names = calloc(cap, sizeof(*f->names));
	if (f->names == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "--fault");
	p = list;
	while (f->nnames < cap) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *name = malloc(len + 1);

		if (name == NULL)
			return cf_err_set(err, CF_ENOMEM, NULL, "--fault");
		memcpy(name, p, len);
		name[len] = '\0';
		f->names[f->nnames++] = name;
		if (!cf_name_valid(name))
			return cf_err_set(err, CF_EINVAL, NULL,
					  "--fault: '%s' is not a device name", name);
		if (end == NULL)
			break;
		p = end + 1;
	}
	return CF_OK;
}

/* FRACTION or @NAMES. */
static int
parse_selection(sim_fault *f, const char *sel, cf_err *err)
{
	if (sel[0] == '@')
		return parse_names(f, sel + 1, err);
	if (sim_fraction_parse(&f->fraction, sel) != CF_OK)
		return cf_err_set(
			err, CF_EINVAL, NULL,
			"--fault %s: '%s' is neither a fraction (0.1, 10%%) nor @NAME,...",
			sim_fault_name(f->kind), sel);
	return CF_OK;
}

/* offline=DUR[:SEL] or offline=DUR@NAMES. */
static int
parse_offline(sim_fault *f, const char *value, cf_err *err)
{
	char dur[32];
	const char *sel = NULL;
	size_t len = strcspn(value, ":@");

	if (value[len] == ':')
		sel = value + len + 1;
	else if (value[len] == '@')
		sel = value + len;
	if (len == 0 || len >= sizeof(dur))
		return cf_err_set(err, CF_EINVAL, NULL, "--fault offline=DUR needs a duration");
	memcpy(dur, value, len);
	dur[len] = '\0';
	if (sim_duration_parse_ms(&f->offline_ms, dur) != CF_OK)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "--fault offline: '%s' is not a duration (30s, 5m)", dur);
	return sel != NULL ? parse_selection(f, sel, err) : CF_OK;
}

int
sim_fault_parse(sim_fault *out, const char *text, cf_err *err)
{
	size_t klen = strcspn(text, "=@");
	const char *rest = text + klen;
	int k, rc;

	memset(out, 0, sizeof(*out));
	out->fraction = 1.0;
	for (k = 0; k < SIM_FAULT_COUNT; k++)
		if (strlen(fault_names[k]) == klen && strncmp(text, fault_names[k], klen) == 0)
			break;
	if (k == SIM_FAULT_COUNT)
		return cf_err_set(err, CF_EINVAL, NULL, "--fault: unknown kind '%.*s'", (int)klen,
				  text);
	out->kind = (sim_fault_kind)k;
	if (out->kind == SIM_FAULT_OFFLINE) {
		if (*rest != '=')
			return cf_err_set(err, CF_EINVAL, NULL,
					  "--fault offline=DUR needs a "
					  "duration");
		rc = parse_offline(out, rest + 1, err);
	} else if (*rest == '\0') {
		rc = CF_OK;
	} else {
		rc = parse_selection(out, *rest == '=' ? rest + 1 : rest, err);
	}
	if (rc != CF_OK)
		sim_fault_clear(out);
	return rc;
}

uint64_t
sim_name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	/* FNV alone leaves "sim-00001".."sim-00009" close together: mix (splitmix64). */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

struct ranked {
	uint64_t hash;
	size_t index;
	const char *name;
};

static int
ranked_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
name_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void
give(sim_fault_set *set, const sim_fault *f)
{
	set->mask |= 1u << f->kind;
	if (f->kind == SIM_FAULT_OFFLINE)
		set->offline_ms = f->offline_ms;
}

int
sim_faults_assign(sim_fault_set *out, const char *const *names, size_t n, const sim_fault *faults,
		  size_t nfaults, cf_err *err)
{
	struct ranked *order = NULL, key, *hit;
	size_t i, j, next = 0, take;
	double sum = 0;
	int rc = CF_OK;

	memset(out, 0, n * sizeof(*out));
	if (nfaults == 0 || n == 0)
		return CF_OK;
	order = calloc(n, sizeof(*order));
	if (order == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "faults");
	for (i = 0; i < n; i++)
		order[i] = (struct ranked){ sim_name_hash(names[i]), i, names[i] };
	qsort(order, n, sizeof(*order), ranked_cmp);
	for (i = 0; i < nfaults; i++) {
		if (faults[i].names != NULL)
			continue;
		sum += faults[i].fraction;
		if (sum > 1.0 + 1e-9) {
			rc = cf_err_set(err, CF_EINVAL, NULL,
					"the fault fractions add up to more "
					"than the fleet");
			goto out;
		}
		/* Rounded on the running sum, so that shares never overlap or overflow. */
		take = (size_t)(sum * (double)n + 0.5);
		if (take > n)
			take = n;
		for (; next < take; next++)
			give(&out[order[next].index], &faults[i]);
	}
	/* Named devices: look them up by name. */
	qsort(order, n, sizeof(*order), name_cmp);
	for (i = 0; i < nfaults; i++) {
		for (j = 0; j < faults[i].nnames; j++) {
			key.name = faults[i].names[j];
			hit = bsearch(&key, order, n, sizeof(*order), name_cmp);
			if (hit == NULL) {
				rc = cf_err_set(err, CF_EINVAL, NULL,
						"--fault %s names %s, which is not in the run",
						sim_fault_name(faults[i].kind), faults[i].names[j]);
				goto out;
			}
			give(&out[hit->index], &faults[i]);
		}
	}
out:
	free(order);
	return rc;
}

/* ---- messages the sim sends itself ----------------------------------------- */

/* A copy of the request's rotationId, or NULL. */
static json_t *
request_json(const char *request, size_t len)
{
	json_t *req = json_loadb(request, len, 0, NULL);

	if (req != NULL && !json_is_object(req)) {
		json_decref(req);
		req = NULL;
	}
	return req;
}

/* payload {field: value, "rotationId": the request's} as text. */
static char *
answer(const char *request, size_t len, json_t *body)
{
	json_t *req = request_json(request, len);
	json_t *rot = req != NULL ? json_object_get(req, "rotationId") : NULL;
	char *text = NULL;

	if (body != NULL) {
		if (json_is_string(rot))
			json_object_set(body, "rotationId", rot);
		text = json_dumps(body, JSON_COMPACT);
	}
	json_decref(req);
	json_decref(body);
	return text;
}

char *
sim_fault_bad_csr_res(const char *request, size_t len)
{
	static const char garbage[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
				      "this is not base64 ~~~ certfleet-sim bad_csr\n"
				      "-----END CERTIFICATE REQUEST-----\n";

	return answer(request, len, json_pack("{s:s}", "CSR", garbage));
}

char *
sim_fault_weak_csr_res(const char *request, size_t len, const char *name)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime192v1");
	char *csr = NULL, *text = NULL;
	size_t csr_len = 0;

	if (key != NULL && sim_csr_new(&csr, &csr_len, key, name, true, NULL) == CF_OK)
		text = answer(request, len, json_pack("{s:s}", "CSR", csr));
	ERR_clear_error();
	free(csr);
	EVP_PKEY_free(key);
	return text;
}

char *
sim_fault_refuse_crt(const char *request, size_t len)
{
	json_t *req = request_json(request, len);
	json_t *body = json_pack("{s:s}", "error", "REFUSED: certfleet-sim refuse_cert fault");
	json_t *id = req != NULL ? json_object_get(req, "certificateId") : NULL;

	if (body != NULL && json_is_string(id))
		json_object_set(body, "certificateId", id);
	json_decref(req);
	return answer(request, len, body);
}

char *
sim_fault_reuse_key_req(const char *request, size_t len)
{
	json_t *req = request_json(request, len);
	char *text = NULL;

	if (req != NULL && json_object_set_new(req, "rekey", json_false()) == 0)
		text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return text;
}
