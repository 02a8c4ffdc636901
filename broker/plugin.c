/*
 * certfleet_broker: the Mosquitto 2.0 plugin (API v5) that lets a client
 * connect only with an ACTIVE certificate bound to the thing its client id
 * names, and publish, subscribe and receive only what the certificate's
 * policies allow (docs/broker.md). This file: the entry points, the
 * options, the callbacks and the tick; broker_int.h lists the others.
 */
#include "broker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_MS_DEFAULT  250
#define RECORDS_MAX_DEFAULT 100000
#define SWEEP_MS            60000

static cf_broker_plugin plugin;

static int
on_tick(int event, void *event_data, void *userdata)
{
	cf_broker_plugin *p = userdata;
	int64_t now = cf_time_mono_ms();

	(void)event;
	(void)event_data;
	if (now >= p->next_refresh_ms) {
		cf_broker__registry_refresh(p);
		p->next_refresh_ms = now + p->refresh_ms;
	}
	if (now >= p->next_sweep_ms) {
		cf_broker__sessions_recheck(p); /* certificates that expired during a session */
		p->next_sweep_ms = now + SWEEP_MS;
	}
	cf_broker__records_flush(p, false);
	return MOSQ_ERR_SUCCESS;
}

int
mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for (i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5)
			return 5;
	}
	return -1;
}

/* plugin_opt_<key> as an integer in [min, max]; logs and fails otherwise. */
static int
option_int(int64_t *out, const struct mosquitto_opt *opt, int64_t min, int64_t max)
{
	if (cf_parse_int64(out, opt->value, min, max) != CF_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: plugin_opt_%s must be %lld to %lld",
				     opt->key, (long long)min, (long long)max);
		return MOSQ_ERR_INVAL;
	}
	return MOSQ_ERR_SUCCESS;
}

/* Options: registry (required), refresh_ms (10 to 1000), connections_keep (0: no records). */
static int
options_read(const char **registry, cf_broker_plugin *p, struct mosquitto_opt *options,
	     int option_count)
{
	int64_t v = 0;
	int i, rc = MOSQ_ERR_SUCCESS;

	*registry = NULL;
	p->refresh_ms = REFRESH_MS_DEFAULT;
	p->records_max = RECORDS_MAX_DEFAULT;
	for (i = 0; i < option_count && rc == MOSQ_ERR_SUCCESS; i++) {
		if (strcmp(options[i].key, "registry") == 0) {
			*registry = options[i].value;
		} else if (strcmp(options[i].key, "refresh_ms") == 0) {
			rc = option_int(&v, &options[i], 10, 1000);
			p->refresh_ms = (int)v;
		} else if (strcmp(options[i].key, "connections_keep") == 0) {
			rc = option_int(&p->records_max, &options[i], 0, 100000000);
		} else {
			mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: unknown option plugin_opt_%s",
					     options[i].key);
			rc = MOSQ_ERR_INVAL;
		}
	}
	if (rc == MOSQ_ERR_SUCCESS && *registry == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "certfleet: plugin_opt_registry is required "
						   "(the registry, e.g. /var/lib/certfleet/registry.db)");
		rc = MOSQ_ERR_INVAL;
	}
	return rc;
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
	{ MOSQ_EVT_BASIC_AUTH, cf_broker__on_basic_auth },
	{ MOSQ_EVT_ACL_CHECK, cf_broker__on_acl_check },
	{ MOSQ_EVT_DISCONNECT, cf_broker__on_disconnect },
	{ MOSQ_EVT_TICK, on_tick },
};

int
mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		      struct mosquitto_opt *options, int option_count)
{
	cf_broker_plugin *p = &plugin;
	const char *registry;
	size_t i;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = options_read(&registry, p, options, option_count);
	if (rc != MOSQ_ERR_SUCCESS)
		return rc;
	if (cf_broker__registry_open(p, registry) != CF_OK) {
		cf_broker__registry_close(p);
		return MOSQ_ERR_UNKNOWN;
	}
	cf_broker__records_open(p); /* failure logged: enforcement goes on without records */
	p->pid = identifier;
	p->next_refresh_ms = cf_time_mono_ms() + p->refresh_ms;
	p->next_sweep_ms = cf_time_mono_ms() + SWEEP_MS;
	*userdata = p;
	for (i = 0; i < CF_ARRAY_LEN(callbacks); i++) {
		if (mosquitto_callback_register(p->pid, callbacks[i].event, callbacks[i].cb, NULL,
						p) != MOSQ_ERR_SUCCESS) {
			while (i-- > 0)
				mosquitto_callback_unregister(p->pid, callbacks[i].event,
							      callbacks[i].cb, NULL);
			cf_broker__records_close(p);
			cf_broker__registry_close(p);
			return MOSQ_ERR_UNKNOWN;
		}
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "certfleet: %zu certificates indexed, refresh every %d ms, "
			     "connection records %s",
			     cf_broker_index_size(&p->idx), p->refresh_ms,
			     p->writer != NULL ? "on" : "off");
	return MOSQ_ERR_SUCCESS;
}

int
mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	cf_broker_plugin *p = userdata;
	size_t i;

	(void)options;
	(void)option_count;
	if (p == NULL)
		return MOSQ_ERR_SUCCESS;
	for (i = 0; i < CF_ARRAY_LEN(callbacks); i++)
		mosquitto_callback_unregister(p->pid, callbacks[i].event, callbacks[i].cb, NULL);
	cf_broker__records_close(p);
	cf_broker__sessions_clear(p);
	cf_broker__registry_close(p);
	return MOSQ_ERR_SUCCESS;
}
