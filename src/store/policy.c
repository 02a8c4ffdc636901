/*
 * policy.c: validation of policy documents.
 *
 * A policy decides what a device may do at the broker, so a document that
 * means something other than what its author thinks is a security bug.
 * Hence the strictness: unknown keys, duplicate keys, misplaced wildcards
 * and unknown ${...} variables are errors rather than ignored, and every
 * message says where the problem is ("statements[2].resources[0]: ...").
 */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define POLICY_MAX_BYTES      (64 * 1024)
#define POLICY_MAX_STATEMENTS 64
#define POLICY_MAX_RESOURCES  64
#define POLICY_MAX_ACTIONS    16
#define RESOURCE_MAX_BYTES    256

static const char *const actions[] = { "connect", "publish", "subscribe", "receive", "*" };
static const char *const variables[] = { "${clientid}", "${thing}" };

/* Every key of obj must be in keys (NULL-terminated). */
static int
check_keys(json_t *obj, const char *const *keys, const char *where, cf_err *err)
{
	const char *key;
	json_t *value;
	size_t i;

	json_object_foreach(obj, key, value) {
		(void)value;
		for (i = 0; keys[i] != NULL; i++) {
			if (strcmp(key, keys[i]) == 0)
				break;
		}
		if (keys[i] == NULL)
			return cf_err_set(err, CF_EINVAL, NULL, "%sunknown key '%.40s'", where, key);
	}
	return CF_OK;
}

/*
 * Check the ${...} references in one level: each must be a whole known
 * variable. A '$' not followed by '{' is an ordinary character ($SYS).
 */
static int
check_variables(const char *level, size_t len, const char *where, cf_err *err)
{
	size_t i, v, n;

	for (i = 0; i + 1 < len; i++) {
		if (level[i] != '$' || level[i + 1] != '{')
			continue;
		for (v = 0; v < CF_ARRAY_LEN(variables); v++) {
			n = strlen(variables[v]);
			if (n <= len - i && memcmp(level + i, variables[v], n) == 0)
				break;
		}
		if (v == CF_ARRAY_LEN(variables))
			return cf_err_set(err, CF_EINVAL, NULL,
					  "%s: unknown variable (only ${clientid} and ${thing})",
					  where);
		i += strlen(variables[v]) - 1;
	}
	return CF_OK;
}

/* One level of a topic filter: '#' and '+' only alone, '#' only last. */
static int
check_level(const char *level, size_t len, bool last, const char *where, cf_err *err)
{
	bool has_hash = memchr(level, '#', len) != NULL;
	bool has_plus = memchr(level, '+', len) != NULL;

	if (has_hash && (len != 1 || !last))
		return cf_err_set(err, CF_EINVAL, NULL, len != 1 ?
				  "%s: '#' must be a whole level" : "%s: '#' must be the last level",
				  where);
	if (has_plus && len != 1)
		return cf_err_set(err, CF_EINVAL, NULL, "%s: '+' must be a whole level", where);
	return check_variables(level, len, where, err);
}

static int
check_resource(json_t *value, const char *where, cf_err *err)
{
	const char *text, *level, *slash;
	size_t len, level_len;
	int rc;

	if (!json_is_string(value))
		return cf_err_set(err, CF_EINVAL, NULL, "%s: must be a string", where);
	text = json_string_value(value);
	len = json_string_length(value);
	if (len == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "%s: empty topic filter", where);
	if (strlen(text) != len)
		return cf_err_set(err, CF_EINVAL, NULL, "%s: NUL in topic filter", where);
	if (len > RESOURCE_MAX_BYTES)
		return cf_err_set(err, CF_EINVAL, NULL, "%s: longer than %d bytes", where,
				  RESOURCE_MAX_BYTES);
	level = text;
	for (;;) {
		slash = strchr(level, '/');
		level_len = slash == NULL ? strlen(level) : (size_t)(slash - level);
		rc = check_level(level, level_len, slash == NULL, where, err);
		if (rc != CF_OK || slash == NULL)
			return rc;
		level = slash + 1;
	}
}

static int
check_action(json_t *value, const char *where, cf_err *err)
{
	size_t i;

	if (!json_is_string(value))
		return cf_err_set(err, CF_EINVAL, NULL, "%s: must be a string", where);
	for (i = 0; i < CF_ARRAY_LEN(actions); i++) {
		if (strcmp(json_string_value(value), actions[i]) == 0)
			return CF_OK;
	}
	return cf_err_set(err, CF_EINVAL, NULL,
			  "%s: unknown action '%.32s' (connect, publish, subscribe, receive, *)",
			  where, json_string_value(value));
}

typedef int (*item_check_fn)(json_t *value, const char *where, cf_err *err);

/* A non-empty array of at most max items, each passing check. */
static int
check_array(json_t *stmt, const char *key, size_t max, item_check_fn check, const char *where,
	    cf_err *err)
{
	json_t *array = json_object_get(stmt, key);
	char item_where[96];
	json_t *value;
	size_t i;
	int rc;

	if (array == NULL)
		return cf_err_set(err, CF_EINVAL, NULL, "%s: missing \"%s\"", where, key);
	if (!json_is_array(array) || json_array_size(array) == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "%s.%s: must be a non-empty array", where,
				  key);
	if (json_array_size(array) > max)
		return cf_err_set(err, CF_EINVAL, NULL, "%s.%s: more than %zu entries", where, key,
				  max);
	json_array_foreach(array, i, value) {
		snprintf(item_where, sizeof(item_where), "%s.%s[%zu]", where, key, i);
		rc = check(value, item_where, err);
		if (rc != CF_OK)
			return rc;
	}
	return CF_OK;
}

static int
check_statement(json_t *stmt, size_t index, cf_err *err)
{
	static const char *const keys[] = { "effect", "actions", "resources", NULL };
	char where[40], prefix[48];
	const char *effect;
	int rc;

	snprintf(where, sizeof(where), "statements[%zu]", index);
	snprintf(prefix, sizeof(prefix), "%s: ", where);
	if (!json_is_object(stmt))
		return cf_err_set(err, CF_EINVAL, NULL, "%s: must be an object", where);
	rc = check_keys(stmt, keys, prefix, err);
	if (rc != CF_OK)
		return rc;
	effect = json_string_value(json_object_get(stmt, "effect")); /* NULL if absent */
	if (effect == NULL || (strcmp(effect, "allow") != 0 && strcmp(effect, "deny") != 0))
		return cf_err_set(err, CF_EINVAL, NULL,
				  "%s.effect: must be \"allow\" or \"deny\"", where);
	rc = check_array(stmt, "actions", POLICY_MAX_ACTIONS, check_action, where, err);
	if (rc != CF_OK)
		return rc;
	return check_array(stmt, "resources", POLICY_MAX_RESOURCES, check_resource, where, err);
}

static int
check_document(json_t *doc, cf_err *err)
{
	static const char *const keys[] = { "version", "statements", NULL };
	json_t *version, *statements, *stmt;
	size_t i;
	int rc;

	if (!json_is_object(doc))
		return cf_err_set(err, CF_EINVAL, NULL, "policy must be a JSON object");
	rc = check_keys(doc, keys, "", err);
	if (rc != CF_OK)
		return rc;
	version = json_object_get(doc, "version");
	if (!json_is_integer(version) || json_integer_value(version) != 1)
		return cf_err_set(err, CF_EINVAL, NULL, "version: must be the integer 1");
	statements = json_object_get(doc, "statements");
	if (!json_is_array(statements) || json_array_size(statements) == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "statements: must be a non-empty array");
	if (json_array_size(statements) > POLICY_MAX_STATEMENTS)
		return cf_err_set(err, CF_EINVAL, NULL, "statements: more than %d entries",
				  POLICY_MAX_STATEMENTS);
	json_array_foreach(statements, i, stmt) {
		rc = check_statement(stmt, i, err);
		if (rc != CF_OK)
			return rc;
	}
	return CF_OK;
}

int
cf_store_policy_validate(const char *document, cf_err *err)
{
	json_t *doc = NULL;
	json_error_t jerr;
	size_t len;
	int rc;

	if (document == NULL) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "policy document is NULL");
		goto out;
	}
	/* Size first, so a huge document is refused before any parsing. */
	len = strnlen(document, POLICY_MAX_BYTES + 1);
	if (len > POLICY_MAX_BYTES) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "policy larger than %d bytes",
				POLICY_MAX_BYTES);
		goto out;
	}
	/* Duplicate keys would let two readers see two different policies. */
	doc = json_loadb(document, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		rc = cf_err_set(err, CF_EINVAL, NULL, "bad JSON at line %d column %d: %s",
				jerr.line, jerr.column, jerr.text);
		goto out;
	}
	rc = check_document(doc, err);
out:
	json_decref(doc);
	return rc;
}

/* The two statements of a rotation policy: publish mine[], subscribe to and receive theirs[]. */
static char *
rotation_policy(const char *prefix, const char *level, const char *const *mine,
		const char *const *theirs)
{
	char topic[6][RESOURCE_MAX_BYTES];
	json_t *doc;
	char *text;
	size_t i;

	if (prefix == NULL || strlen(prefix) > 200)
		return NULL;
	for (i = 0; i < 3; i++) {
		snprintf(topic[i], sizeof(topic[i]), "%s/%s/%s", prefix, level, mine[i]);
		snprintf(topic[i + 3], sizeof(topic[i + 3]), "%s/%s/%s", prefix, level, theirs[i]);
	}
	doc = json_pack("{s:i, s:[{s:s, s:[s], s:[s,s,s]}, {s:s, s:[s,s], s:[s,s,s]}]}",
			"version", 1, "statements", "effect", "allow", "actions", "publish",
			"resources", topic[0], topic[1], topic[2], "effect", "allow", "actions",
			"subscribe", "receive", "resources", topic[3], topic[4], topic[5]);
	text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return text;
}

static const char *const device_to_server[] = { "csr_res", "crt_ack", "crt_err" };
static const char *const server_to_device[] = { "csr_req", "crt", "csr_rej" };

char *
cf_store_policy_device_document(const char *prefix)
{
	return rotation_policy(prefix, "${clientid}", device_to_server, server_to_device);
}

char *
cf_store_policy_service_document(const char *prefix)
{
	return rotation_policy(prefix, "+", server_to_device, device_to_server);
}

/* ---- topic filter algebra (store.h), for the broker and the audit ---------- */

/* The next level of *s: *lv and *len; *s moves past it, to NULL after the last. */
static void
take(const char **s, const char **lv, size_t *len)
{
	const char *slash = strchr(*s, '/');

	*lv = *s;
	if (slash != NULL) {
		*len = (size_t)(slash - *s);
		*s = slash + 1;
	} else {
		*len = strlen(*s);
		*s = NULL;
	}
}

static bool
level_is(const char *lv, size_t len, char c)
{
	return len == 1 && lv[0] == c;
}

static bool
level_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* MQTT 4.7.2: a filter starting with a wildcard does not match a topic starting with '$'. */
static bool
dollar_excluded(const char *filter, const char *topic)
{
	return topic[0] == '$' && (filter[0] == '+' || filter[0] == '#');
}

static bool
matches(const char *filter, const char *topic, bool dollar_rule)
{
	const char *f = filter, *t = topic, *fl, *tl;
	size_t fn, tn;

	if (dollar_rule && dollar_excluded(filter, topic))
		return false;
	while (f != NULL) {
		take(&f, &fl, &fn);
		if (level_is(fl, fn, '#'))
			return true; /* also the parent: "a/#" matches "a" */
		if (t == NULL)
			return false;
		take(&t, &tl, &tn);
		if (!level_is(fl, fn, '+') && !level_eq(fl, fn, tl, tn))
			return false;
	}
	return t == NULL;
}

bool
cf_store_topic_matches(const char *filter, const char *topic, bool dollar_rule)
{
	return matches(filter, topic, dollar_rule);
}

bool
cf_store_topic_filter_covers(const char *filter, const char *sub)
{
	const char *r = filter, *s = sub, *rl, *sl;
	size_t rn, sn;

	if (dollar_excluded(filter, sub))
		return false;
	while (r != NULL) {
		take(&r, &rl, &rn);
		if (level_is(rl, rn, '#'))
			return true;
		if (s == NULL)
			return false;
		take(&s, &sl, &sn);
		if (level_is(sl, sn, '#'))
			return false; /* any depth under a filter of finite depth */
		if (level_is(rl, rn, '+'))
			continue;
		if (level_is(sl, sn, '+') || !level_eq(rl, rn, sl, sn))
			return false;
	}
	return s == NULL;
}

bool
cf_store_topic_filters_overlap(const char *a, const char *b)
{
	const char *x = a, *y = b, *xl, *yl, *rest;
	size_t xn, yn;

	while (x != NULL && y != NULL) {
		take(&x, &xl, &xn);
		take(&y, &yl, &yn);
		if (level_is(xl, xn, '#') || level_is(yl, yn, '#'))
			return true;
		if (level_is(xl, xn, '+') || level_is(yl, yn, '+'))
			continue;
		if (!level_eq(xl, xn, yl, yn))
			return false;
	}
	if (x == NULL && y == NULL)
		return true;
	rest = x != NULL ? x : y; /* the longer one's remaining levels */
	return strcmp(rest, "#") == 0;
}

/* A variable's value may not add levels or wildcards to a filter. */
static bool
value_safe(const char *value)
{
	return value != NULL && value[0] != '\0' && strpbrk(value, "/+#") == NULL;
}

bool
cf_store_topic_expand(char buf[CF_STORE_TOPIC_EXPANDED_MAX], const char *res,
		      const char *client_id, const char *thing)
{
	size_t n = 0, len;
	const char *value;

	while (*res != '\0') {
		if (strncmp(res, "${clientid}", 11) == 0) {
			value = client_id;
			res += 11;
		} else if (strncmp(res, "${thing}", 8) == 0) {
			value = thing;
			res += 8;
		} else {
			if (n + 1 >= CF_STORE_TOPIC_EXPANDED_MAX)
				return false;
			buf[n++] = *res++;
			continue;
		}
		if (!value_safe(value))
			return false;
		len = strlen(value);
		if (len >= CF_STORE_TOPIC_EXPANDED_MAX - n)
			return false;
		memcpy(buf + n, value, len);
		n += len;
	}
	buf[n] = '\0';
	return true;
}
