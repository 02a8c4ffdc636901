/*
 * Unit tests for broker/policy.c: the topic filter algebra and the decision
 * for each action, with variables, deny statements, and the device and
 * service policies certfleet creates (cf_store_policy_device_document()).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/policy.h"
#include "store/store.h"

static cf_broker_policy *
compile1(const char *doc)
{
	cf_broker_policy *p = NULL;
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_broker_policy_compile(&p, &doc, 1, &err), CF_OK);
	return p;
}

static void
test_broker_policy__topic_matches(void **state)
{
	(void)state;
	assert_true(cf_store_topic_matches("a/b/c", "a/b/c", true));
	assert_false(cf_store_topic_matches("a/b/c", "a/b", true));
	assert_false(cf_store_topic_matches("a/b", "a/b/c", true));
	assert_false(cf_store_topic_matches("a/b/c", "a/b/cd", true));
	assert_true(cf_store_topic_matches("a/+/c", "a/x/c", true));
	assert_true(cf_store_topic_matches("a/+/c", "a//c", true)); /* an empty level is a level */
	assert_false(cf_store_topic_matches("a/+/c", "a/x/y/c", true));
	assert_true(cf_store_topic_matches("a/+", "a/", true));
	assert_false(cf_store_topic_matches("a/+", "a", true));
	assert_true(cf_store_topic_matches("a/#", "a", true)); /* the parent too (MQTT 4.7.1.2) */
	assert_true(cf_store_topic_matches("a/#", "a/b/c", true));
	assert_false(cf_store_topic_matches("a/#", "ab", true));
	assert_true(cf_store_topic_matches("#", "a/b", true));
	assert_true(cf_store_topic_matches("+/+", "/x", true));
	/* A wildcard first level never matches a '$' topic. */
	assert_false(cf_store_topic_matches("#", "$SYS/broker/uptime", true));
	assert_false(cf_store_topic_matches("+/broker/uptime", "$SYS/broker/uptime", true));
	assert_true(cf_store_topic_matches("$SYS/#", "$SYS/broker/uptime", true));
}

static void
test_broker_policy__filter_covers(void **state)
{
	(void)state;
	assert_true(cf_store_topic_filter_covers("a/b", "a/b"));
	assert_true(cf_store_topic_filter_covers("a/+", "a/b"));
	assert_true(cf_store_topic_filter_covers("a/+", "a/+"));
	assert_false(cf_store_topic_filter_covers("a/+", "a/#")); /* a/b/c is not under a/+ */
	assert_false(cf_store_topic_filter_covers("a/+", "a"));
	assert_false(cf_store_topic_filter_covers("a/b", "a/+"));
	assert_false(cf_store_topic_filter_covers("a/b", "a/#"));
	assert_false(cf_store_topic_filter_covers("a/b", "#"));
	assert_true(cf_store_topic_filter_covers("a/#", "a"));
	assert_true(cf_store_topic_filter_covers("a/#", "a/#"));
	assert_true(cf_store_topic_filter_covers("a/#", "a/+/c/#"));
	assert_false(cf_store_topic_filter_covers("a/#", "+/b"));
	assert_false(cf_store_topic_filter_covers("a/b/#", "a/#"));
	assert_true(cf_store_topic_filter_covers("#", "a/+/#"));
	assert_false(cf_store_topic_filter_covers("#", "$SYS/#"));
	assert_false(cf_store_topic_filter_covers("a/b", "a/b/c"));
	assert_false(cf_store_topic_filter_covers("a/b/c", "a/b"));
}

static void
test_broker_policy__filters_overlap(void **state)
{
	(void)state;
	assert_true(cf_store_topic_filters_overlap("a/b", "a/b"));
	assert_false(cf_store_topic_filters_overlap("a/b", "a/c"));
	assert_true(cf_store_topic_filters_overlap("a/+", "+/b"));
	assert_true(cf_store_topic_filters_overlap("a/#", "a"));
	assert_true(cf_store_topic_filters_overlap("a", "a/#"));
	assert_false(cf_store_topic_filters_overlap("a/+", "a"));
	assert_true(cf_store_topic_filters_overlap("#", "x/y/z"));
	assert_true(cf_store_topic_filters_overlap("a/b/c", "+/+/#"));
	assert_false(cf_store_topic_filters_overlap("a/b/c", "+/+"));
	assert_false(cf_store_topic_filters_overlap("a/b", "a/b/c"));
	/* Conservative for denials: '#' overlaps '$' topics too. */
	assert_true(cf_store_topic_filters_overlap("#", "$SYS/x"));
}

/* The default device policy: exactly the device's own rotation topics. */
static void
test_broker_policy__device_policy(void **state)
{
	char *doc = cf_store_policy_device_document("management/topic");
	cf_broker_policy *p = compile1(doc);
	static const char *const pub_ok[] = { "csr_res", "crt_ack", "crt_err" };
	static const char *const sub_ok[] = { "csr_req", "crt", "csr_rej" };
	char topic[128];
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(topic, sizeof(topic), "management/topic/dev-a/%s", pub_ok[i]);
		assert_true(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, topic, "dev-a", "dev-a"));
		assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, topic, "dev-a", "dev-a"));
		assert_false(cf_broker_policy_allows(p, CF_BROKER_RECEIVE, topic, "dev-a", "dev-a"));
		snprintf(topic, sizeof(topic), "management/topic/dev-b/%s", pub_ok[i]);
		assert_false(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, topic, "dev-a", "dev-a"));
		snprintf(topic, sizeof(topic), "management/topic/dev-a/%s", sub_ok[i]);
		assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, topic, "dev-a", "dev-a"));
		assert_true(cf_broker_policy_allows(p, CF_BROKER_RECEIVE, topic, "dev-a", "dev-a"));
		assert_false(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, topic, "dev-a", "dev-a"));
		snprintf(topic, sizeof(topic), "management/topic/dev-b/%s", sub_ok[i]);
		assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, topic, "dev-a", "dev-a"));
		assert_false(cf_broker_policy_allows(p, CF_BROKER_RECEIVE, topic, "dev-a", "dev-a"));
	}
	/* Wildcards above its own topics reach other devices: refused. */
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "management/topic/#", "dev-a",
					     "dev-a"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "management/topic/+/csr_req",
					     "dev-a", "dev-a"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "management/topic/dev-a/#",
					     "dev-a", "dev-a"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "management/topic/dev-a/+",
					     "dev-a", "dev-a"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "#", "dev-a", "dev-a"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "$SYS/#", "dev-a", "dev-a"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, "management/topic/dev-a",
					     "dev-a", "dev-a"));
	/* Connecting is the registry's decision: a policy without "connect" does not stop it. */
	assert_true(cf_broker_policy_allows(p, CF_BROKER_CONNECT, "dev-a", "dev-a", "dev-a"));
	cf_broker_policy_free(p);
	free(doc);
}

/* The service policy, and a shared subscription ($share/GROUP/ is taken off). */
static void
test_broker_policy__service_policy(void **state)
{
	char *doc = cf_store_policy_service_document("management/topic");
	cf_broker_policy *p = compile1(doc);

	(void)state;
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "management/topic/+/csr_res",
					    "certfleetd", "certfleetd"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE,
					    "$share/certfleet/management/topic/+/csr_res",
					    "certfleetd", "certfleetd"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE,
					     "$share/certfleet/management/topic/#", "certfleetd",
					     "certfleetd"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "$share/certfleet",
					     "certfleetd", "certfleetd"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "$share//management/topic/+/crt",
					     "certfleetd", "certfleetd"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, "management/topic/dev-9/csr_req",
					    "certfleetd", "certfleetd"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, "management/topic/dev-9/csr_res",
					     "certfleetd", "certfleetd"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_RECEIVE, "management/topic/dev-9/crt_ack",
					    "certfleetd", "certfleetd"));
	cf_broker_policy_free(p);
	free(doc);
}

/* Deny wins, in either order, over allows of several documents; "*" is every action. */
static void
test_broker_policy__deny_wins(void **state)
{
	static const char *docs[] = {
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": [\"*\"], "
		"\"resources\": [\"fleet/${thing}/#\"]}]}",
		"{\"version\": 1, \"statements\": [{\"effect\": \"deny\", \"actions\": [\"publish\", "
		"\"subscribe\"], \"resources\": [\"fleet/+/secret\"]}, {\"effect\": \"deny\", "
		"\"actions\": [\"connect\"], \"resources\": [\"banned-${clientid}\", \"lab-1\"]}]}",
	};
	cf_broker_policy *p = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	assert_int_equal(cf_broker_policy_compile(&p, docs, 2, &err), CF_OK);
	assert_true(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, "fleet/t1/data", "t1", "t1"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "fleet/t1/+", "t1", "t1") ==
		    false); /* overlaps the denied fleet/t1/secret */
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "fleet/t1/data/#", "t1", "t1"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, "fleet/t1/secret", "t1", "t1"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_RECEIVE, "fleet/t1/secret", "t1", "t1"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_PUBLISH, "fleet/t2/data", "t1", "t1"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_CONNECT, "t1", "t1", "t1"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_CONNECT, "lab-1", "lab-1", "lab-1"));
	cf_broker_policy_free(p);
}

/* Subscribe is decided by coverage, not by matching the filter as a topic. */
static void
test_broker_policy__subscribe_coverage(void **state)
{
	cf_broker_policy *p = compile1(
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": "
		"[\"subscribe\"], \"resources\": [\"status/+\", \"logs/${clientid}/#\"]}]}");

	(void)state;
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "status/+", "d", "d"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "status/x", "d", "d"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "status/#", "d", "d"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "status", "d", "d"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "logs/d", "d", "d"));
	assert_true(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "logs/d/+/x/#", "d", "d"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "logs/+/x", "d", "d"));
	assert_false(cf_broker_policy_allows(p, CF_BROKER_SUBSCRIBE, "logs/#", "d", "d"));
	cf_broker_policy_free(p);
}

/* A variable may not widen a filter: unsafe values allow nothing and deny everything. */
static void
test_broker_policy__unsafe_variables(void **state)
{
	static const char *docs[] = {
		"{\"version\": 1, \"statements\": [{\"effect\": \"allow\", \"actions\": [\"publish\"], "
		"\"resources\": [\"d/${clientid}/up\"]}]}",
		"{\"version\": 1, \"statements\": [{\"effect\": \"deny\", \"actions\": [\"publish\"], "
		"\"resources\": [\"d/${thing}/blocked\"]}]}",
	};
	cf_broker_policy *allow = compile1(docs[0]), *both = NULL;
	cf_err err = CF_ERR_INIT;
	char long_id[1200];

	(void)state;
	assert_true(cf_broker_policy_allows(allow, CF_BROKER_PUBLISH, "d/x/up", "x", "x"));
	assert_false(cf_broker_policy_allows(allow, CF_BROKER_PUBLISH, "d/+/up", "+", "+"));
	assert_false(cf_broker_policy_allows(allow, CF_BROKER_PUBLISH, "d/a/b/up", "a/b", "a/b"));
	assert_false(cf_broker_policy_allows(allow, CF_BROKER_PUBLISH, "d//up", "", ""));
	assert_false(cf_broker_policy_allows(allow, CF_BROKER_PUBLISH, "d/x/up", NULL, NULL));
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(cf_broker_policy_allows(allow, CF_BROKER_PUBLISH, "d/x/up", long_id, "x"));

	assert_int_equal(cf_broker_policy_compile(&both, docs, 2, &err), CF_OK);
	assert_true(cf_broker_policy_allows(both, CF_BROKER_PUBLISH, "d/x/up", "x", "x"));
	assert_false(cf_broker_policy_allows(both, CF_BROKER_PUBLISH, "d/x/up", "x", "#"));
	cf_broker_policy_free(allow);
	cf_broker_policy_free(both);
}

/* No policy, an empty set and an invalid document. */
static void
test_broker_policy__nothing_allowed(void **state)
{
	const char *bad = "{\"version\": 1, \"statements\": [{\"effect\": \"allow\", "
			  "\"actions\": [\"publish\"], \"resources\": [\"a/#/b\"]}]}";
	cf_broker_policy *p = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	assert_false(cf_broker_policy_allows(NULL, CF_BROKER_PUBLISH, "a", "x", "x"));
	assert_true(cf_broker_policy_allows(NULL, CF_BROKER_CONNECT, "x", "x", "x"));
	assert_int_equal(cf_broker_policy_compile(&p, NULL, 0, &err), CF_OK);
	assert_false(cf_broker_policy_allows(p, CF_BROKER_RECEIVE, "a", "x", "x"));
	cf_broker_policy_free(p);
	assert_int_equal(cf_broker_policy_compile(&p, &bad, 1, &err), CF_EINVAL);
	assert_null(p);
	assert_non_null(strstr(err.msg, "policy document 0"));
	assert_non_null(strstr(err.msg, "'#' must be the last level"));
	cf_broker_policy_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broker_policy__topic_matches),
		cmocka_unit_test(test_broker_policy__filter_covers),
		cmocka_unit_test(test_broker_policy__filters_overlap),
		cmocka_unit_test(test_broker_policy__device_policy),
		cmocka_unit_test(test_broker_policy__service_policy),
		cmocka_unit_test(test_broker_policy__deny_wins),
		cmocka_unit_test(test_broker_policy__subscribe_coverage),
		cmocka_unit_test(test_broker_policy__unsafe_variables),
		cmocka_unit_test(test_broker_policy__nothing_allowed),
	};

	return cmocka_run_group_tests_name("broker policy", tests, NULL, NULL);
}
