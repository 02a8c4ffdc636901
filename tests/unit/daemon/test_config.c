/* Unit tests for src/daemon/config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cf-test-config-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/certfleet.conf", fx->dir);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	unlink(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
write_conf(const struct fixture *fx, const char *text)
{
	cf_err err = CF_ERR_INIT;

	assert_int_equal(cf_file_write_atomic(fx->path, text, strlen(text), 0600, false, &err),
			 CF_OK);
}

static void
test_daemon_config__defaults(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	cf_config cfg;
	char *uri;

	assert_int_equal(cf_config_init(&cfg, fx->dir, &err), CF_OK);
	assert_string_equal(cfg.store, "sqlite:registry.db");
	assert_int_equal(cfg.cert_days, 365);
	assert_int_equal(cfg.cert_backdate, 300);
	assert_int_equal(cfg.key_min_rsa_bits, 2048);
	assert_string_equal(cfg.crl_url, "");
	uri = cf_config_store_uri(&cfg);
	assert_non_null(uri);
	assert_true(strncmp(uri, "sqlite:/tmp/cf-test-config-", 27) == 0);
	assert_non_null(strstr(uri, "/registry.db"));
	free(uri);
	cf_config_clear(&cfg);
}

static void
test_daemon_config__load_values_and_comments(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	cf_config cfg;
	char *p;

	write_conf(fx, "# a comment\n\n  cert_days = 90  \ncert_backdate=1h\n"
		       "crl_url = http://pki.example/crl.der\nstore = sqlite:/var/x.db\n"
		       "ca_passphrase_file = /etc/certfleet/pass\n");
	assert_int_equal(cf_config_init(&cfg, fx->dir, &err), CF_OK);
	assert_int_equal(cf_config_load(&cfg, fx->path, &err), CF_OK);
	assert_int_equal(cfg.cert_days, 90);
	assert_int_equal(cfg.cert_backdate, 3600);
	assert_string_equal(cfg.crl_url, "http://pki.example/crl.der");
	p = cf_config_store_uri(&cfg);
	assert_string_equal(p, "sqlite:/var/x.db");
	free(p);
	p = cf_config_path(&cfg, cfg.ca_passphrase_file);
	assert_string_equal(p, "/etc/certfleet/pass");
	free(p);
	cf_config_clear(&cfg);
}

/* The audit's parameters: CRL paths made absolute, a notifier is a webhook or a topic. */
static void
test_daemon_config__audit_parameters(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	cf_config_audit ca;
	cf_config cfg;
	char *want;

	write_conf(fx, "audit_crl_files = crl/a.pem , /etc/pki/b.der\n"
		       "audit_device_expiring_days = 45\naudit_events_full_every = 0\n");
	assert_int_equal(cf_config_init(&cfg, fx->dir, &err), CF_OK);
	assert_int_equal(cf_config_load(&cfg, fx->path, &err), CF_OK);
	assert_int_equal(cf_config_audit_get(&ca, &cfg, &err), CF_OK);
	assert_int_equal(ca.audit.ncrl_files, 2);
	want = cf_path_join(fx->dir, "crl/a.pem");
	assert_string_equal(ca.audit.crl_files[0], want);
	free(want);
	assert_string_equal(ca.audit.crl_files[1], "/etc/pki/b.der");
	assert_int_equal(ca.audit.device_expiring_days, 45);
	assert_int_equal(ca.audit.events_full_every, 0);
	assert_false(ca.audit.notifier_configured);
	cf_config_audit_clear(&ca);
	write_conf(fx, "audit_notify_topic = ops/audit\n");
	assert_int_equal(cf_config_load(&cfg, fx->path, &err), CF_OK);
	assert_int_equal(cf_config_audit_get(&ca, &cfg, &err), CF_OK);
	assert_true(ca.audit.notifier_configured);
	assert_int_equal(ca.audit.events_full_every, 0); /* loaded over the earlier values */
	cf_config_audit_clear(&ca);
	cf_config_clear(&cfg);
}

/* Each bad file is refused with its line number and a reason. */
static void
test_daemon_config__errors_name_file_and_line(void **state)
{
	static const struct {
		const char *text;
		const char *expect;
	} cases[] = {
		{ "cert_days = 10\nno_such_key = 1\n", ":2: unknown key 'no_such_key'" },
		{ "cert_days = 0\n", ":1: cert_days must be a whole number from 1 to 36500" },
		{ "cert_days = 12abc\n", ":1: cert_days must be" },
		{ "\n\njust words\n", ":3: expected 'key = value'" },
		{ "cert_backdate = 2d\n", ":1: cert_backdate must be a duration" },
		{ "cert_backdate = 300\n", ":1: cert_backdate must be a duration" },
		{ "log_level = loud\n", ":1: log_level must be error, warn, info or debug" },
		{ "key_min_rsa_bits = 1024\n", ":1: key_min_rsa_bits must be a whole number" },
		{ "rotation_rekey = yes\n", ":1: rotation_rekey must be true or false" },
		{ "log_format = xml\n", ":1: log_format must be one of: logfmt|json" },
		{ "rotation_key_type = EC-P521\n", ":1: rotation_key_type must be one of:" },
		{ "topic_prefix = a/+/b\n", ":1: topic_prefix must be a topic" },
		{ "topic_prefix = a/#\n", ":1: topic_prefix must be a topic" },
		{ "topic_prefix = a//b\n", ":1: topic_prefix must be a topic" },
		{ "topic_prefix = /a\n", ":1: topic_prefix must be a topic" },
		{ "topic_prefix = a/\n", ":1: topic_prefix must be a topic" },
		{ "topic_prefix = $SYS/x\n", ":1: topic_prefix must be a topic" },
		{ "topic_prefix =\n", ":1: topic_prefix must be a topic" },
		{ "mqtt_port = 70000\n", ":1: mqtt_port must be a whole number from 1 to 65535" },
		{ "mqtt_keepalive = 1s\n", ":1: mqtt_keepalive must be a duration" },
		{ "rotation_resend_interval = 0\n", ":1: rotation_resend_interval must be" },
		{ "audit_crl_files = a.crl,,b.crl\n", ":1: audit_crl_files must be empty or paths" },
		{ "audit_checks = DEVICE_CERTIFICATE_EXPIRING_CHECK, NO_SUCH_CHECK\n",
		  ":1: audit_checks: 'NO_SUCH_CHECK' is not a check" },
		{ "audit_checks =\n", ":1: audit_checks: '' is not a check" },
		{ "audit_checks = LOGGING_DISABLED_CHECK,LOGGING_DISABLED_CHECK\n",
		  ":1: audit_checks: LOGGING_DISABLED_CHECK is named twice" },
		{ "audit_crl_files = ,\n", ":1: audit_crl_files must be empty or paths" },
		{ "audit_schedule = 400d\n", ":1: audit_schedule: '400d' is not" },
		{ "audit_actions = DEVICE_CERTIFICATE_EXPIRING_CHECK:DEACTIVATE_CA_CERTIFICATE\n",
		  ":1: audit_actions: DEACTIVATE_CA_CERTIFICATE cannot act on" },
		{ "audit_events_full_every = 1\n", ":1: audit_events_full_every must be a duration" },
		{ "mqtt_reconnect_min = 2m\nmqtt_reconnect_max = 1m\n",
		  ": mqtt_reconnect_min (120s) is longer than mqtt_reconnect_max (60s)" },
	};
	struct fixture *fx = *state;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cf_err err = CF_ERR_INIT;
		cf_config cfg;

		write_conf(fx, cases[i].text);
		assert_int_equal(cf_config_init(&cfg, fx->dir, &err), CF_OK);
		assert_int_equal(cf_config_load(&cfg, fx->path, &err), CF_EINVAL);
		if (strstr(err.msg, cases[i].expect) == NULL || strstr(err.msg, fx->path) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].expect);
		cf_config_clear(&cfg);
	}
}

/* What --dump-config and init write reads back to the same values. */
static void
test_daemon_config__dump_round_trips(void **state)
{
	struct fixture *fx = *state;
	cf_err err = CF_ERR_INIT;
	cf_config a, b;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	assert_int_equal(cf_config_init(&a, fx->dir, &err), CF_OK);
	a.cert_days = 42;
	a.cert_backdate = 0;
	a.rotation_rekey = 0;
	free(a.rotation_key_type);
	a.rotation_key_type = strdup("EC-P384");
	assert_non_null(a.rotation_key_type);
	fp = open_memstream(&text, &len);
	assert_non_null(fp);
	cf_config_dump(&a, fp);
	fclose(fp);
	write_conf(fx, text);
	free(text);
	assert_int_equal(cf_config_init(&b, fx->dir, &err), CF_OK);
	assert_int_equal(cf_config_load(&b, fx->path, &err), CF_OK);
	assert_int_equal(b.cert_days, 42);
	assert_int_equal(b.cert_backdate, 0);
	assert_int_equal(b.key_min_rsa_bits, a.key_min_rsa_bits);
	assert_string_equal(b.store, a.store);
	assert_int_equal(b.rotation_rekey, 0);
	assert_string_equal(b.rotation_key_type, "EC-P384");
	assert_string_equal(b.topic_prefix, "management/topic");
	assert_int_equal(b.rotation_grace, 0);
	assert_int_equal(b.rotation_deadline, 86400);
	cf_config_clear(&a);
	cf_config_clear(&b);
}

/* docs/config.md documents every key of the descriptor table. */
static void
test_daemon_config__docs_list_every_key(void **state)
{
	const char *src = getenv("CF_SOURCE_DIR");
	cf_err err = CF_ERR_INIT;
	char path[512], needle[80], *doc = NULL;
	const char *key;
	size_t i;

	(void)state;
	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/docs/config.md", src);
	assert_int_equal(cf_file_read(&doc, NULL, path, 1 << 20, &err), CF_OK);
	for (i = 0; (key = cf_config_key_name(i)) != NULL; i++) {
		snprintf(needle, sizeof(needle), "| `%s` |", key);
		if (strstr(doc, needle) == NULL)
			fail_msg("docs/config.md does not document %s", key);
	}
	assert_true(i > 5);
	free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_daemon_config__defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_config__load_values_and_comments,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_config__audit_parameters, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_daemon_config__errors_name_file_and_line,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_config__dump_round_trips, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_daemon_config__docs_list_every_key, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
