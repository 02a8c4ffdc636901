/* Policy documents: what is accepted, and what is refused with which message. */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wrap one statement's resources in an otherwise valid document. */
#define DOC_RES(res)                                                                             \
	"{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"    \
	"\"resources\":[" res "]}]}"

static void
test_store_policy__valid(void **state)
{
	static const char *const docs[] = {
		DOC_RES("\"management/topic/${clientid}/#\""),
		DOC_RES("\"#\""),
		DOC_RES("\"+/status/${thing}\", \"a/+/b\", \"+\""),
		DOC_RES("\"$SYS/broker/load\""),
		DOC_RES("\"fleet/${thing}-${clientid}/x\""),
		"{\"version\":1,\"statements\":[{\"effect\":\"deny\",\"actions\":[\"*\"],"
		"\"resources\":[\"a\"]},{\"effect\":\"allow\",\"actions\":[\"connect\","
		"\"subscribe\",\"receive\"],\"resources\":[\"b/#\"]}]}",
		"{\"statements\":[{\"resources\":[\"x\"],\"actions\":[\"receive\"],"
		"\"effect\":\"allow\"}],\"version\":1}",
	};
	cf_err err = CF_ERR_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(docs); i++) {
		if (cf_store_policy_validate(docs[i], &err) != 0)
			fail_msg("doc %zu refused: %s", i, err.msg);
	}
}

struct bad_case {
	const char *doc;
	const char *msg; /* a part of err.msg */
};

static void
test_store_policy__invalid(void **state)
{
	static const struct bad_case cases[] = {
		{ "{\"version\":1,", "bad JSON" },
		{ "[]", "must be a JSON object" },
		{ "{\"version\":2,\"statements\":[]}", "version" },
		{ "{\"version\":\"1\",\"statements\":[]}", "version" },
		{ "{\"version\":1}", "statements" },
		{ "{\"version\":1,\"statements\":[]}", "non-empty" },
		{ "{\"version\":1,\"statements\":{}}", "statements" },
		{ "{\"version\":1,\"statement\":[]}", "unknown key 'statement'" },
		{ "{\"version\":1,\"version\":1,\"statements\":[]}", "duplicate" },
		{ "{\"version\":1,\"statements\":[42]}", "statements[0]: must be an object" },
		{ "{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"],"
		  "\"resources\":[\"a\"],\"condition\":{}}]}",
		  "statements[0]: unknown key 'condition'" },
		{ "{\"version\":1,\"statements\":[{\"effect\":\"permit\",\"actions\":[\"publish\"],"
		  "\"resources\":[\"a\"]}]}",
		  "statements[0].effect" },
		{ "{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"pub\"],"
		  "\"resources\":[\"a\"]}]}",
		  "statements[0].actions[0]: unknown action 'pub'" },
		{ "{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":\"publish\","
		  "\"resources\":[\"a\"]}]}",
		  "statements[0].actions: must be a non-empty array" },
		{ "{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[1],"
		  "\"resources\":[\"a\"]}]}",
		  "statements[0].actions[0]: must be a string" },
		{ "{\"version\":1,\"statements\":[{\"effect\":\"allow\",\"actions\":[\"publish\"]}]}",
		  "statements[0]: missing \"resources\"" },
		{ DOC_RES("\"a\",\"#/b\""), "statements[0].resources[1]: '#' must be the last level" },
		{ DOC_RES("\"a/b#\""), "statements[0].resources[0]: '#' must be a whole level" },
		{ DOC_RES("\"a/+b/c\""), "statements[0].resources[0]: '+' must be a whole level" },
		{ DOC_RES("\"a/${client}/c\""), "statements[0].resources[0]: unknown variable" },
		{ DOC_RES("\"a/${thing\""), "unknown variable" },
		{ DOC_RES("\"\""), "statements[0].resources[0]: empty topic filter" },
		{ DOC_RES("\"a\\u0000b\""), "NUL" },
		{ DOC_RES("null"), "statements[0].resources[0]: must be a string" },
		{ DOC_RES(""), "statements[0].resources: must be a non-empty array" },
	};
	cf_err err;
	size_t i;

	(void)state;
	for (i = 0; i < CF_ARRAY_LEN(cases); i++) {
		cf_err_clear(&err);
		if (cf_store_policy_validate(cases[i].doc, &err) != CF_EINVAL)
			fail_msg("case %zu accepted: %s", i, cases[i].doc);
		if (strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' does not contain '%s'", i, err.msg, cases[i].msg);
	}
	assert_int_equal(cf_store_policy_validate(NULL, NULL), CF_EINVAL);
}

/* Build a document with nstmt statements of nres resources each. */
static char *
big_doc(int nstmt, int nres, size_t res_len)
{
	size_t cap = 1024 + (size_t)nstmt * (size_t)nres * (res_len + 8) + (size_t)nstmt * 96;
	char *doc = malloc(cap), *res = malloc(res_len + 1);
	size_t used;
	int s, r;

	assert_non_null(doc);
	assert_non_null(res);
	memset(res, 'a', res_len);
	res[res_len] = '\0';
	used = (size_t)snprintf(doc, cap, "{\"version\":1,\"statements\":[");
	for (s = 0; s < nstmt; s++) {
		used += (size_t)snprintf(doc + used, cap - used,
					 "%s{\"effect\":\"allow\",\"actions\":[\"publish\"],"
					 "\"resources\":[", s == 0 ? "" : ",");
		for (r = 0; r < nres; r++)
			used += (size_t)snprintf(doc + used, cap - used, "%s\"%s\"",
						 r == 0 ? "" : ",", res);
		used += (size_t)snprintf(doc + used, cap - used, "]}");
	}
	snprintf(doc + used, cap - used, "]}");
	free(res);
	return doc;
}

static void
test_store_policy__limits(void **state)
{
	cf_err err = CF_ERR_INIT;
	char *doc;

	(void)state;
	doc = big_doc(64, 64, 4);
	assert_int_equal(cf_store_policy_validate(doc, &err), 0);
	free(doc);
	doc = big_doc(65, 1, 4);
	assert_int_equal(cf_store_policy_validate(doc, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "more than 64"));
	free(doc);
	doc = big_doc(1, 65, 4);
	assert_int_equal(cf_store_policy_validate(doc, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "statements[0].resources: more than 64"));
	free(doc);
	doc = big_doc(1, 1, 256);
	assert_int_equal(cf_store_policy_validate(doc, &err), 0);
	free(doc);
	doc = big_doc(1, 1, 257);
	assert_int_equal(cf_store_policy_validate(doc, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "longer than 256"));
	free(doc);
	doc = big_doc(60, 60, 20); /* well past 64 KiB */
	assert_int_equal(cf_store_policy_validate(doc, &err), CF_EINVAL);
	assert_non_null(strstr(err.msg, "larger than"));
	free(doc);
}

int
test_policy_run(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_policy__valid),
		cmocka_unit_test(test_store_policy__invalid),
		cmocka_unit_test(test_store_policy__limits),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
