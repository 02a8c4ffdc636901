/* The configuration file: one descriptor table drives everything. */
#include "daemon/config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

typedef enum {
	KEY_STRING,
	KEY_INT,
	KEY_DURATION,
	KEY_BOOL,
	KEY_LOG_LEVEL,
	KEY_CHOICE, /* a string from the '|'-separated list in help's first words */
	KEY_TOPIC,  /* an MQTT topic prefix: no wildcard, no empty level, no '/' at an end */
	KEY_TOPIC_OPT, /* a KEY_TOPIC, or "" */
	KEY_SCHEDULE,  /* cf_audit_schedule_parse() */
	KEY_ACTIONS,   /* cf_audit_bindings_parse() */
	KEY_PATHS,     /* "", or file paths separated by commas */
	KEY_CHECKS     /* cf_audit_checks_parse() */
} key_type;

struct key_desc {
	const char *name;
	key_type type;
	size_t offset;
	const char *def;
	int64_t min, max;    /* for KEY_INT and KEY_DURATION */
	const char *choices; /* for KEY_CHOICE: "a|b|c" */
	const char *help;
};

#define STR(field)  KEY_STRING, offsetof(cf_config, field)
#define NUM(field)  KEY_INT, offsetof(cf_config, field)
#define DUR(field)  KEY_DURATION, offsetof(cf_config, field)
#define BOOL(field) KEY_BOOL, offsetof(cf_config, field)
#define CHOICE(field) KEY_CHOICE, offsetof(cf_config, field)
#define TOPIC(field) KEY_TOPIC, offsetof(cf_config, field)
#define TOPIC_OPT(field) KEY_TOPIC_OPT, offsetof(cf_config, field)
#define SCHEDULE(field) KEY_SCHEDULE, offsetof(cf_config, field)
#define ACTIONS(field) KEY_ACTIONS, offsetof(cf_config, field)
#define PATHS(field) KEY_PATHS, offsetof(cf_config, field)
#define CHECKS(field) KEY_CHECKS, offsetof(cf_config, field)

static const struct key_desc keys[] = {
	{ "store", STR(store), "sqlite:registry.db", 0, 0, NULL,
	  "registry URI: sqlite:PATH (relative to the data dir)" },
	{ "store_sync", CHOICE(store_sync), "full", 0, 0, "full|normal",
	  "full: every registry commit is on disk before it is acted on; normal: faster, a power loss may undo the last commits" },
	{ "ca_passphrase_file", STR(ca_passphrase_file), "secrets/ca.pass", 0, 0, NULL,
	  "file (mode 0600) with the passphrase of the intermediate CA keys" },
	{ "cert_days", NUM(cert_days), "365", 1, 36500, NULL,
	  "validity of issued device certificates, in days" },
	{ "cert_backdate", DUR(cert_backdate), "5m", 0, 86400, NULL,
	  "notBefore is set this far in the past to absorb device clock skew" },
	{ "crl_url", STR(crl_url), "", 0, 0, NULL,
	  "CRL distribution point written into device certificates (empty: none)" },
	{ "ocsp_url", STR(ocsp_url), "", 0, 0, NULL,
	  "OCSP responder written into device certificates (empty: none)" },
	{ "default_policy", STR(default_policy), "certfleet-device", 0, 0, NULL,
	  "policy attached to certificates issued without --policy" },
	{ "key_min_rsa_bits", NUM(key_min_rsa_bits), "2048", 2048, 16384, NULL,
	  "smallest RSA key accepted in a CSR" },
	{ "log_level", KEY_LOG_LEVEL, offsetof(cf_config, log_level), "info", 0, 0, NULL,
	  "error, warn, info or debug" },
	{ "log_format", CHOICE(log_format), "logfmt", 0, 0, "logfmt|json",
	  "certfleetd's log lines: logfmt or json (one object a line)" },
	{ "mqtt_host", STR(mqtt_host), "127.0.0.1", 0, 0, NULL,
	  "broker host certfleetd connects to; its certificate must name it" },
	{ "mqtt_port", NUM(mqtt_port), "8883", 1, 65535, NULL,
	  "broker TLS port" },
	{ "mqtt_ca_file", STR(mqtt_ca_file), "broker-ca.pem", 0, 0, NULL,
	  "PEM trust anchors for the broker's server certificate" },
	{ "mqtt_cert_file", STR(mqtt_cert_file), "service/certfleetd.pem", 0, 0, NULL,
	  "certfleetd's client certificate chain (certfleet service create)" },
	{ "mqtt_key_file", STR(mqtt_key_file), "service/certfleetd.key", 0, 0, NULL,
	  "its private key (mode 0600)" },
	{ "mqtt_client_id", STR(mqtt_client_id), "certfleetd", 0, 0, NULL,
	  "MQTT client id: the service principal's thing name" },
	{ "mqtt_keepalive", DUR(mqtt_keepalive), "30s", 5, 3600, NULL,
	  "MQTT keepalive" },
	{ "mqtt_reconnect_min", DUR(mqtt_reconnect_min), "1s", 1, 3600, NULL,
	  "first delay before reconnecting to the broker; doubles up to mqtt_reconnect_max" },
	{ "mqtt_reconnect_max", DUR(mqtt_reconnect_max), "1m", 1, 3600, NULL,
	  "longest delay between reconnect attempts" },
	{ "mqtt_shared_group", STR(mqtt_shared_group), "", 0, 0, NULL,
	  "when set, subscribe through $share/GROUP/ so that several certfleetd share the work" },
	{ "mqtt_publish_rate", NUM(mqtt_publish_rate), "1000", 0, 1000000, NULL,
	  "outbox messages published per second at most (0: no limit)" },
	{ "topic_prefix", TOPIC(topic_prefix), "management/topic", 0, 0, NULL,
	  "P of the rotation topics P/{clientId}/..." },
	{ "rotation_resend_interval", DUR(rotation_resend_interval), "5m", 1, 86400, NULL,
	  "csr_req is re-sent this often until the device answers" },
	{ "rotation_deadline", DUR(rotation_deadline), "24h", 1, 365 * 86400, NULL,
	  "a rotation without crt_ack this long after it opened times out" },
	{ "rotation_grace", DUR(rotation_grace), "0", 0, 365 * 86400, NULL,
	  "the replaced certificate is deleted (kept in history) this long after crt_ack" },
	{ "rotation_csr_max", NUM(rotation_csr_max), "5", 1, 1000, NULL,
	  "csr_res accepted per rotation before RATE_LIMITED" },
	{ "rotation_rekey", BOOL(rotation_rekey), "true", 0, 0, NULL,
	  "devices must make a new key (csr_req rekey; KEY_REUSE otherwise)" },
	{ "rotation_key_type", CHOICE(rotation_key_type), "", 0, 0,
	  "|EC-P256|EC-P384|ED25519|RSA-2048|RSA-3072",
	  "csr_req keyType (empty: omitted, the device's default)" },
	{ "audit_device_expiring_days", NUM(audit_device_expiring_days), "30", 1, 3650, NULL,
	  "DEVICE_CERTIFICATE_EXPIRING_CHECK: an ACTIVE device certificate expiring within this many days" },
	{ "audit_ca_expiring_days", NUM(audit_ca_expiring_days), "90", 1, 3650, NULL,
	  "CA_CERTIFICATE_EXPIRING_CHECK: an ACTIVE CA expiring within this many days" },
	{ "audit_device_age_days", NUM(audit_device_age_days), "365", 1, 36500, NULL,
	  "DEVICE_CERTIFICATE_AGE_CHECK: an ACTIVE device certificate older than this many days" },
	{ "audit_rotation_failures", NUM(audit_rotation_failures), "3", 1, 100, NULL,
	  "ROTATION_FAILING_CHECK: a thing whose last this many rotations failed or timed out" },
	{ "audit_shared_window", DUR(audit_shared_window), "24h", 60, 365 * 86400, NULL,
	  "DEVICE_CERTIFICATE_SHARED_CHECK, CONFLICTING_CLIENT_IDS_CHECK: broker connections this recent" },
	{ "audit_crl_files", PATHS(audit_crl_files), "", 0, 0, NULL,
	  "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK: CRL files (PEM or DER, comma-separated, relative to the data dir) of CAs in the registry" },
	{ "audit_events_full_every", DUR(audit_events_full_every), "7d", 0, 3650 * 86400, NULL,
	  "LOGGING_DISABLED_CHECK: each run walks the events since the last run and sweeps a share of the older ones, so that all are walked within this period (0: every run walks all)" },
	{ "audit_checks", CHECKS(audit_checks), "all", 0, 0, NULL,
	  "the checks certfleetd's scheduled runs run: all, or check names separated by commas" },
	{ "audit_schedule", SCHEDULE(audit_schedule), "daily", 0, 0, NULL,
	  "when certfleetd runs the audit_checks: off, daily, weekly, monthly, daily@HH:MM (UTC) or an interval from 1s to 366d such as 6h" },
	{ "audit_actions", ACTIONS(audit_actions), CF_AUDIT_ACTIONS_DEFAULT, 0, 0, NULL,
	  "after a scheduled run, CHECK:ACTION, ... applied to NEW and OPEN unsuppressed findings (none: nothing)" },
	{ "audit_notify_topic", TOPIC_OPT(audit_notify_topic), "", 0, 0, NULL,
	  "MQTT topic a JSON summary of each scheduled run is published to (empty: the log only)" },
	{ "webhook_url", STR(webhook_url), "", 0, 0, NULL,
	  "http:// or https:// URL audit summaries and rotation failures are POSTed to (empty: none)" },
	{ "webhook_secret_file", STR(webhook_secret_file), "secrets/webhook.secret", 0, 0, NULL,
	  "file (mode 0600) with the HMAC-SHA256 key of the X-Certfleet-Signature header" },
	{ "webhook_ca_file", STR(webhook_ca_file), "", 0, 0, NULL,
	  "PEM trust anchors for an https webhook (empty: the system's)" },
	{ "webhook_connect_timeout", DUR(webhook_connect_timeout), "5s", 1, 300, NULL,
	  "a webhook connection not made in this long is an attempt failed" },
	{ "webhook_timeout", DUR(webhook_timeout), "10s", 1, 600, NULL,
	  "a webhook request not answered in this long is an attempt failed" },
	{ "webhook_retries", NUM(webhook_retries), "5", 0, 20, NULL,
	  "attempts after the first on connection errors, timeouts, 5xx and 429, with backoff" },
	{ "webhook_queue_max", NUM(webhook_queue_max), "1000", 1, 100000, NULL,
	  "webhook notifications waiting at most; the oldest is dropped (logged) beyond" },
};

static char **
str_field(cf_config *cfg, const struct key_desc *k)
{
	return (char **)(void *)((char *)cfg + k->offset);
}

static int64_t *
num_field(cf_config *cfg, const struct key_desc *k)
{
	return (int64_t *)(void *)((char *)cfg + k->offset);
}

/* Is text one of the '|'-separated choices ("" matches an empty first choice)? */
static bool
choice_valid(const char *choices, const char *text)
{
	size_t len = strlen(text);
	const char *p = choices;

	for (;;) {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (n == len && memcmp(p, text, len) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

/* An MQTT topic prefix: levels of printable bytes, none empty, no wildcard, not "$...". */
static bool
topic_prefix_valid(const char *text)
{
	size_t len = strlen(text);
	size_t i;

	if (len == 0 || len > CF_CONFIG_TOPIC_MAX || text[0] == '/' || text[0] == '$' ||
	    text[len - 1] == '/' || strstr(text, "//") != NULL)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '+' || c == '#' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* The longest path of a KEY_PATHS list (an audit finding names it as "file:<path>"). */
#define PATH_ITEM_MAX 255

/*
 * Call fn for each path of a KEY_PATHS list, blanks around commas trimmed.
 * False (fn not called further) for an empty or over-long item.
 */
static bool
paths_each(const char *text, bool (*fn)(const char *path, size_t len, void *payload),
	   void *payload)
{
	const char *p = text, *end, *comma;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return true;
	for (;;) {
		comma = strchr(p, ',');
		end = comma != NULL ? comma : p + strlen(p);
		while (isspace((unsigned char)*p) && p < end)
			p++;
		while (end > p && isspace((unsigned char)end[-1]))
			end--;
		if (end == p || end - p > PATH_ITEM_MAX)
			return false;
		if (fn != NULL && !fn(p, (size_t)(end - p), payload))
			return false;
		if (comma == NULL)
			return true;
		p = comma + 1;
	}
}

static bool
paths_valid(const char *text)
{
	return paths_each(text, NULL, NULL);
}

/* Validate text for key k and store it in cfg; on error fill why. */
static int
key_set(cf_config *cfg, const struct key_desc *k, const char *text, char *why, size_t why_len)
{
	int64_t v = 0;
	cf_log_level level;
	char *copy;

	switch (k->type) {
	case KEY_INT:
		if (cf_parse_int64(&v, text, k->min, k->max) != CF_OK) {
			snprintf(why, why_len, "%s must be a whole number from %lld to %lld",
				 k->name, (long long)k->min, (long long)k->max);
			return CF_EINVAL;
		}
		*num_field(cfg, k) = v;
		return CF_OK;
	case KEY_DURATION:
		if (strcmp(text, "0") == 0 ? k->min > 0
					   : cf_duration_parse(&v, text) != CF_OK || v < k->min ||
						     v > k->max) {
			snprintf(why, why_len,
				 "%s must be a duration such as 30s, 5m, 1h, from %llds to %llds",
				 k->name, (long long)k->min, (long long)k->max);
			return CF_EINVAL;
		}
		*num_field(cfg, k) = v;
		return CF_OK;
	case KEY_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
			*num_field(cfg, k) = strcmp(text, "true") == 0;
			return CF_OK;
		}
		snprintf(why, why_len, "%s must be true or false", k->name);
		return CF_EINVAL;
	case KEY_LOG_LEVEL:
		if (cf_log_level_parse(&level, text) != CF_OK) {
			snprintf(why, why_len, "%s must be error, warn, info or debug", k->name);
			return CF_EINVAL;
		}
		break;
	case KEY_CHOICE:
		if (!choice_valid(k->choices, text)) {
			snprintf(why, why_len, "%s must be one of: %s%s", k->name,
				 k->choices[0] == '|' ? "(empty)" : "", k->choices);
			return CF_EINVAL;
		}
		break;
	case KEY_TOPIC:
		if (!topic_prefix_valid(text)) {
			snprintf(why, why_len,
				 "%s must be a topic without '+', '#', empty levels or a leading '$' or '/', at most %d bytes",
				 k->name, CF_CONFIG_TOPIC_MAX);
			return CF_EINVAL;
		}
		break;
	case KEY_TOPIC_OPT:
		if (text[0] != '\0' && !topic_prefix_valid(text)) {
			snprintf(why, why_len,
				 "%s must be empty or a topic without '+', '#', empty levels or a leading '$' or '/', at most %d bytes",
				 k->name, CF_CONFIG_TOPIC_MAX);
			return CF_EINVAL;
		}
		break;
	case KEY_SCHEDULE: {
		cf_audit_schedule sched;
		cf_err err = CF_ERR_INIT;

		if (cf_audit_schedule_parse(&sched, text, &err) != CF_OK) {
			snprintf(why, why_len, "%.150s", err.msg);
			return CF_EINVAL;
		}
		break;
	}
	case KEY_ACTIONS: {
		cf_audit_bindings b;
		cf_err err = CF_ERR_INIT;

		if (cf_audit_bindings_parse(&b, text, &err) != CF_OK) {
			snprintf(why, why_len, "%.150s", err.msg);
			return CF_EINVAL;
		}
		break;
	}
	case KEY_CHECKS: {
		const char *names[CF_AUDIT_CHECKS_MAX];
		cf_err err = CF_ERR_INIT;
		size_t n;

		if (cf_audit_checks_parse(names, &n, text, &err) != CF_OK) {
			snprintf(why, why_len, "%.150s", err.msg);
			return CF_EINVAL;
		}
		break;
	}
	case KEY_PATHS:
		if (!paths_valid(text)) {
			snprintf(why, why_len,
				 "%s must be empty or paths separated by commas, each 1 to %d bytes",
				 k->name, PATH_ITEM_MAX);
			return CF_EINVAL;
		}
		break;
	case KEY_STRING:
		break;
	}
	copy = strdup(text);
	if (copy == NULL) {
		snprintf(why, why_len, "out of memory");
		return CF_ENOMEM;
	}
	free(*str_field(cfg, k));
	*str_field(cfg, k) = copy;
	return CF_OK;
}

static bool
key_is_string(const struct key_desc *k)
{
	return k->type != KEY_INT && k->type != KEY_DURATION && k->type != KEY_BOOL;
}

static const struct key_desc *
key_find(const char *name)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(keys); i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

int
cf_config_init(cf_config *cfg, const char *data_dir, cf_err *err)
{
	char why[160];
	size_t i;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->data_dir = strdup(data_dir);
	if (cfg->data_dir == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "config");
	for (i = 0; i < CF_ARRAY_LEN(keys); i++) {
		rc = key_set(cfg, &keys[i], keys[i].def, why, sizeof(why));
		if (rc != CF_OK) {
			cf_config_clear(cfg);
			return cf_err_set(err, rc, NULL, "default of %s: %s", keys[i].name, why);
		}
	}
	return CF_OK;
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Parse one line; *why is set on error. Blank lines and comments are fine. */
static int
parse_line(cf_config *cfg, char *line, char *why, size_t why_len)
{
	const struct key_desc *k;
	char *eq, *name, *value;

	name = trim(line);
	if (*name == '\0' || *name == '#')
		return CF_OK;
	eq = strchr(name, '=');
	if (eq == NULL) {
		snprintf(why, why_len, "expected 'key = value'");
		return CF_EINVAL;
	}
	*eq = '\0';
	name = trim(name);
	value = trim(eq + 1);
	k = key_find(name);
	if (k == NULL) {
		snprintf(why, why_len, "unknown key '%.64s'", name);
		return CF_EINVAL;
	}
	return key_set(cfg, k, value, why, why_len);
}

int
cf_config_load(cf_config *cfg, const char *path, cf_err *err)
{
	char *text = NULL, *line, *next;
	char why[160];
	int lineno = 0, rc;

	rc = cf_file_read(&text, NULL, path, 1024 * 1024, err);
	if (rc != CF_OK)
		return rc;
	for (line = text; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		if (strlen(line) > 4096) {
			rc = cf_err_set(err, CF_EINVAL, NULL, "%s:%d: line too long", path, lineno);
			break;
		}
		why[0] = '\0';
		rc = parse_line(cfg, line, why, sizeof(why));
		if (rc != CF_OK) {
			cf_err_set(err, rc, NULL, "%s:%d: %s", path, lineno, why);
			break;
		}
	}
	free(text);
	if (rc == CF_OK && cfg->mqtt_reconnect_min > cfg->mqtt_reconnect_max)
		rc = cf_err_set(err, CF_EINVAL, NULL,
				"%s: mqtt_reconnect_min (%llds) is longer than mqtt_reconnect_max (%llds)",
				path, (long long)cfg->mqtt_reconnect_min,
				(long long)cfg->mqtt_reconnect_max);
	if (rc == CF_OK && cfg->webhook_url[0] != '\0' &&
	    strncmp(cfg->webhook_url, "http://", 7) != 0 &&
	    strncmp(cfg->webhook_url, "https://", 8) != 0)
		rc = cf_err_set(err, CF_EINVAL, NULL,
				"%s: webhook_url must be empty or start with http:// or https://", path);
	return rc;
}

struct audit_paths {
	const cf_config *cfg;
	cf_config_audit *out;
};

static bool
audit_path_add(const char *path, size_t len, void *payload)
{
	struct audit_paths *ap = payload;
	char **grown, *rel = strndup(path, len), *abs;

	abs = rel != NULL ? cf_config_path(ap->cfg, rel) : NULL;
	free(rel);
	grown = abs != NULL ? realloc(ap->out->crl_files,
				      (ap->out->ncrl_files + 1) * sizeof(*grown))
			    : NULL;
	if (grown == NULL) {
		free(abs);
		return false;
	}
	ap->out->crl_files = grown;
	grown[ap->out->ncrl_files++] = abs;
	return true;
}

int
cf_config_audit_get(cf_config_audit *out, const cf_config *cfg, cf_err *err)
{
	struct audit_paths ap = { cfg, out };
	cf_audit_config *a = &out->audit;

	memset(out, 0, sizeof(*out));
	cf_audit_config_init(a);
	a->device_expiring_days = cfg->audit_device_expiring_days;
	a->ca_expiring_days = cfg->audit_ca_expiring_days;
	a->device_age_days = cfg->audit_device_age_days;
	a->rotation_failures = cfg->audit_rotation_failures;
	a->shared_window = cfg->audit_shared_window;
	a->events_full_every = cfg->audit_events_full_every;
	a->key_policy.rsa_min_bits = (unsigned int)cfg->key_min_rsa_bits;
	a->notifier_configured = cfg->webhook_url[0] != '\0' || cfg->audit_notify_topic[0] != '\0';
	/* Checked when the key was set: only memory can fail here. */
	if (!paths_each(cfg->audit_crl_files, audit_path_add, &ap)) {
		cf_config_audit_clear(out);
		return cf_err_set(err, CF_ENOMEM, NULL, "audit_crl_files");
	}
	a->crl_files = (const char *const *)out->crl_files;
	a->ncrl_files = out->ncrl_files;
	return CF_OK;
}

void
cf_config_audit_clear(cf_config_audit *ca)
{
	size_t i;

	for (i = 0; i < ca->ncrl_files; i++)
		free(ca->crl_files[i]);
	free(ca->crl_files);
	ca->crl_files = NULL;
	ca->ncrl_files = 0;
	ca->audit.crl_files = NULL;
	ca->audit.ncrl_files = 0;
}

char *
cf_config_path(const cf_config *cfg, const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	return cf_path_join(cfg->data_dir, path);
}

char *
cf_config_store_uri(const cf_config *cfg)
{
	const char *prefix = "sqlite:";
	size_t plen = strlen(prefix);
	char *abs, *uri;

	if (strncmp(cfg->store, prefix, plen) != 0 || cfg->store[plen] == '/')
		return strdup(cfg->store);
	abs = cf_config_path(cfg, cfg->store + plen);
	if (abs == NULL)
		return NULL;
	uri = malloc(plen + strlen(abs) + 1);
	if (uri != NULL) {
		memcpy(uri, prefix, plen);
		memcpy(uri + plen, abs, strlen(abs) + 1);
	}
	free(abs);
	return uri;
}

void
cf_config_dump(const cf_config *cfg, FILE *fp)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(keys); i++) {
		const struct key_desc *k = &keys[i];
		const char *base = (const char *)cfg + k->offset;
		int64_t num;
		const char *str;

		fprintf(fp, "# %s (default: %s)\n", k->help, k->def[0] ? k->def : "empty");
		switch (k->type) {
		case KEY_INT:
		case KEY_DURATION:
			memcpy(&num, base, sizeof(num));
			fprintf(fp, "%s = %lld%s\n", k->name, (long long)num,
				k->type == KEY_DURATION && num != 0 ? "s" : "");
			break;
		case KEY_BOOL:
			memcpy(&num, base, sizeof(num));
			fprintf(fp, "%s = %s\n", k->name, num ? "true" : "false");
			break;
		case KEY_STRING:
		case KEY_LOG_LEVEL:
		case KEY_CHOICE:
		case KEY_TOPIC:
		case KEY_TOPIC_OPT:
		case KEY_SCHEDULE:
		case KEY_ACTIONS:
		case KEY_PATHS:
		case KEY_CHECKS:
			memcpy(&str, base, sizeof(str));
			fprintf(fp, "%s = %s\n", k->name, str);
			break;
		}
	}
}

void
cf_config_clear(cf_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CF_ARRAY_LEN(keys); i++) {
		if (key_is_string(&keys[i])) {
			free(*str_field(cfg, &keys[i]));
			*str_field(cfg, &keys[i]) = NULL;
		}
	}
	free(cfg->data_dir);
	cfg->data_dir = NULL;
}

const char *
cf_config_key_name(size_t i)
{
	return i < CF_ARRAY_LEN(keys) ? keys[i].name : NULL;
}
