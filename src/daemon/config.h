/*
 * config: the certfleet configuration file, DIR/certfleet.conf.
 *
 * One descriptor table (config.c) drives parsing, validation, defaults,
 * --dump-config and the test that docs/config.md lists every key. The
 * format is "key = value" lines; '#' starts a comment; unknown keys and
 * bad values stop with the file, the line and the reason.
 */
#ifndef CF_DAEMON_CONFIG_H
#define CF_DAEMON_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"
#include "util/util.h"

typedef struct cf_config {
	char *data_dir;           /* absolute; not a key: where the file lives */
	char *store;              /* registry URI; relative sqlite paths are under data_dir */
	char *store_sync;         /* "full" or "normal" */
	char *ca_passphrase_file; /* passphrase of the intermediate CA keys */
	int64_t cert_days;
	int64_t cert_backdate;    /* seconds */
	char *crl_url;            /* "" when unset */
	char *ocsp_url;           /* "" when unset */
	char *default_policy;     /* attached to issued certificates without --policy */
	int64_t key_min_rsa_bits;
	char *log_level;
	char *log_format;         /* "logfmt" or "json" */
	/* certfleetd's broker connection */
	char *mqtt_host;
	int64_t mqtt_port;
	char *mqtt_ca_file;       /* relative to data_dir unless absolute */
	char *mqtt_cert_file;
	char *mqtt_key_file;
	char *mqtt_client_id;
	int64_t mqtt_keepalive;   /* seconds */
	int64_t mqtt_reconnect_min;
	int64_t mqtt_reconnect_max;
	char *mqtt_shared_group;  /* "" when unset */
	int64_t mqtt_publish_rate; /* messages per second, 0: no limit */
	/* rotation (protocol.md) */
	char *topic_prefix;
	int64_t rotation_resend_interval; /* seconds */
	int64_t rotation_deadline;
	int64_t rotation_grace;
	int64_t rotation_csr_max;
	int64_t rotation_rekey;   /* 0 or 1 */
	char *rotation_key_type;  /* "" when unset */
	/* audits (issue 5) */
	int64_t audit_device_expiring_days;
	int64_t audit_ca_expiring_days;
	int64_t audit_device_age_days;
	int64_t audit_rotation_failures;
	int64_t audit_shared_window; /* seconds */
	char *audit_crl_files;       /* "" or comma-separated CRL paths */
	char *audit_checks;          /* cf_audit_checks_parse(): "all" or names */
	int64_t audit_events_full_every; /* seconds */
	char *audit_schedule;     /* cf_audit_schedule_parse() */
	char *audit_actions;      /* cf_audit_bindings_parse() */
	char *audit_notify_topic; /* "" when unset */
	/* the webhook notifier (issue 5) */
	char *webhook_url;         /* "" when unset: no webhook */
	char *webhook_secret_file; /* HMAC key, mode 0600 */
	char *webhook_ca_file;     /* "" when unset: the system's trust anchors */
	int64_t webhook_connect_timeout; /* seconds */
	int64_t webhook_timeout;   /* seconds, a whole request */
	int64_t webhook_retries;   /* attempts after the first */
	int64_t webhook_queue_max;
} cf_config;

/* Longest topic_prefix accepted, in bytes (the rotation engine's limit). */
#define CF_CONFIG_TOPIC_MAX 256

/* Fill every field with its default, data_dir set to dir. */
int cf_config_init(cf_config *cfg, const char *data_dir, cf_err *err);

/*
 * Read path over the defaults already in cfg. CF_EINVAL with
 * "<path>:<line>: <reason>" in err->msg for a bad line or value;
 * CF_ENOTFOUND when the file is missing.
 */
int cf_config_load(cf_config *cfg, const char *path, cf_err *err);

/* The registry URI with a relative sqlite path made absolute. Freed with free(). */
char *cf_config_store_uri(const cf_config *cfg);

/* A config path made absolute against data_dir. Freed with free(). */
char *cf_config_path(const cf_config *cfg, const char *path);

/*
 * The audit's parameters from the audit_* keys, key_min_rsa_bits and the
 * notifier keys (a webhook_url or an audit_notify_topic is a notifier).
 * out->audit borrows the CRL paths, made absolute, from out. Released with
 * cf_config_audit_clear(). CF_ENOMEM.
 */
typedef struct cf_config_audit {
	cf_audit_config audit;
	char **crl_files;
	size_t ncrl_files;
} cf_config_audit;

int cf_config_audit_get(cf_config_audit *out, const cf_config *cfg, cf_err *err);
void cf_config_audit_clear(cf_config_audit *ca);

/* Write every key with its value and one-line help as a valid config file. */
void cf_config_dump(const cf_config *cfg, FILE *fp);

/* Release the strings. */
void cf_config_clear(cf_config *cfg);

/* For tests and docs: the name of key i, or NULL past the end. */
const char *cf_config_key_name(size_t i);

#endif
