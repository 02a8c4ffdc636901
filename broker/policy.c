/*
 * broker/policy.c: policies compiled for the broker, and the decision for
 * publish, subscribe and delivery (policy.h), made with the store's topic
 * filter algebra (cf_store_topic_*, src/store/policy.c), which the audit
 * shares.
 */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/store.h"

struct statement {
	bool deny;
	unsigned int actions; /* cf_broker_action bits */
	char **resources;
	bool *has_vars;
	size_t n;
};

struct cf_broker_policy {
	struct statement *statements;
	size_t n;
};

/* ---- compiling -------------------------------------------------------------- */

static unsigned int
action_bits(const char *name)
{
	if (strcmp(name, "connect") == 0)
		return CF_BROKER_CONNECT;
	if (strcmp(name, "publish") == 0)
		return CF_BROKER_PUBLISH;
	if (strcmp(name, "subscribe") == 0)
		return CF_BROKER_SUBSCRIBE;
	if (strcmp(name, "receive") == 0)
		return CF_BROKER_RECEIVE;
	return CF_BROKER_CONNECT | CF_BROKER_PUBLISH | CF_BROKER_SUBSCRIBE | CF_BROKER_RECEIVE;
}

/* One validated statement into st. */
static int
compile_statement(struct statement *st, json_t *stmt)
{
	json_t *actions = json_object_get(stmt, "actions");
	json_t *resources = json_object_get(stmt, "resources");
	json_t *value;
	size_t i;

	st->deny = strcmp(json_string_value(json_object_get(stmt, "effect")), "deny") == 0;
	json_array_foreach(actions, i, value)
		st->actions |= action_bits(json_string_value(value));
	st->resources = calloc(json_array_size(resources), sizeof(*st->resources));
	st->has_vars = calloc(json_array_size(resources), sizeof(*st->has_vars));
	if (st->resources == NULL || st->has_vars == NULL)
		return CF_ENOMEM;
	json_array_foreach(resources, i, value) {
		st->resources[i] = strdup(json_string_value(value));
		if (st->resources[i] == NULL)
			return CF_ENOMEM;
		st->has_vars[i] = strstr(st->resources[i], "${") != NULL;
		st->n++;
	}
	return CF_OK;
}

/* Append the statements of one document (validated first: it decides who reaches what). */
static int
compile_document(cf_broker_policy *policy, const char *document, size_t index, cf_err *err)
{
	json_t *doc = NULL, *statements, *stmt;
	struct statement *grown;
	size_t i;
	int rc;
	cf_err why = CF_ERR_INIT;

	rc = cf_store_policy_validate(document, &why);
	if (rc != CF_OK)
		return cf_err_set(err, rc, NULL, "policy document %zu: %s", index, why.msg);
	doc = json_loads(document, JSON_REJECT_DUPLICATES, NULL);
	if (doc == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "policy document %zu", index);
	statements = json_object_get(doc, "statements");
	grown = realloc(policy->statements,
			(policy->n + json_array_size(statements)) * sizeof(*grown));
	if (grown == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "policy statements");
		goto out;
	}
	policy->statements = grown;
	json_array_foreach(statements, i, stmt) {
		memset(&policy->statements[policy->n], 0, sizeof(policy->statements[policy->n]));
		policy->n++; /* counted before filling, so that a failure frees what it got */
		rc = compile_statement(&policy->statements[policy->n - 1], stmt);
		if (rc != CF_OK) {
			rc = cf_err_set(err, rc, NULL, "policy statements");
			goto out;
		}
	}
	rc = CF_OK;
out:
	json_decref(doc);
	return rc;
}

int
cf_broker_policy_compile(cf_broker_policy **out, const char *const *documents, size_t n,
			 cf_err *err)
{
	cf_broker_policy *policy;
	size_t i;
	int rc = CF_OK;

	*out = NULL;
	policy = calloc(1, sizeof(*policy));
	if (policy == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "policy");
	for (i = 0; i < n && rc == CF_OK; i++)
		rc = compile_document(policy, documents[i], i, err);
	if (rc != CF_OK) {
		cf_broker_policy_free(policy);
		return rc;
	}
	*out = policy;
	return CF_OK;
}

void
cf_broker_policy_free(cf_broker_policy *policy)
{
	size_t i, j;

	if (policy == NULL)
		return;
	for (i = 0; i < policy->n; i++) {
		for (j = 0; j < policy->statements[i].n; j++)
			free(policy->statements[i].resources[j]);
		free(policy->statements[i].resources);
		free(policy->statements[i].has_vars);
	}
	free(policy->statements);
	free(policy);
}

/* ---- deciding ----------------------------------------------------------------- */

/* Whether one (expanded) resource of an allow or a deny statement applies to topic. */
static bool
applies(const char *res, bool deny, cf_broker_action action, const char *topic)
{
	if (action == CF_BROKER_SUBSCRIBE)
		return deny ? cf_store_topic_filters_overlap(res, topic)
			    : cf_store_topic_filter_covers(res, topic);
	return cf_store_topic_matches(res, topic, !deny);
}

/* "$share/GROUP/filter" -> "filter"; NULL when malformed. Other filters as they are. */
static const char *
unshared(const char *filter)
{
	const char *slash;

	if (strncmp(filter, "$share/", 7) != 0)
		return filter;
	slash = strchr(filter + 7, '/');
	return slash != NULL && slash > filter + 7 && slash[1] != '\0' ? slash + 1 : NULL;
}

bool
cf_broker_policy_allows(const cf_broker_policy *policy, cf_broker_action action,
			const char *topic, const char *client_id, const char *thing)
{
	char buf[CF_STORE_TOPIC_EXPANDED_MAX];
	const struct statement *st;
	const char *res;
	bool allowed = action == CF_BROKER_CONNECT;
	size_t i, j;

	if (policy == NULL || topic == NULL)
		return allowed;
	if (action == CF_BROKER_SUBSCRIBE)
		topic = unshared(topic);
	if (topic == NULL)
		return false;
	for (i = 0; i < policy->n; i++) {
		st = &policy->statements[i];
		if ((st->actions & (unsigned int)action) == 0 || (allowed && !st->deny))
			continue;
		for (j = 0; j < st->n; j++) {
			res = st->resources[j];
			if (st->has_vars[j] && !cf_store_topic_expand(buf, res, client_id, thing)) {
				if (st->deny)
					return false; /* fail closed */
				continue;
			}
			if (st->has_vars[j])
				res = buf;
			if (!applies(res, st->deny, action, topic))
				continue;
			if (st->deny)
				return false;
			allowed = true;
			break;
		}
	}
	return allowed;
}
