/* The configuration file: one descriptor table drives everything. */
#include "daemon/config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KEY_STRING, KEY_INT, KEY_DURATION, KEY_LOG_LEVEL } key_type;

struct key_desc {
	const char *name;
	key_type type;
	size_t offset;
	const char *def;
	int64_t min, max; /* for KEY_INT and KEY_DURATION */
	const char *help;
};

#define STR(field)  KEY_STRING, offsetof(cf_config, field)
#define NUM(field)  KEY_INT, offsetof(cf_config, field)
#define DUR(field)  KEY_DURATION, offsetof(cf_config, field)

static const struct key_desc keys[] = {
	{ "store", STR(store), "sqlite:registry.db", 0, 0,
	  "registry URI: sqlite:PATH (relative to the data dir)" },
	{ "ca_passphrase_file", STR(ca_passphrase_file), "secrets/ca.pass", 0, 0,
	  "file (mode 0600) with the passphrase of the intermediate CA keys" },
	{ "cert_days", NUM(cert_days), "365", 1, 36500,
	  "validity of issued device certificates, in days" },
	{ "cert_backdate", DUR(cert_backdate), "5m", 0, 86400,
	  "notBefore is set this far in the past to absorb device clock skew" },
	{ "crl_url", STR(crl_url), "", 0, 0,
	  "CRL distribution point written into device certificates (empty: none)" },
	{ "ocsp_url", STR(ocsp_url), "", 0, 0,
	  "OCSP responder written into device certificates (empty: none)" },
	{ "default_policy", STR(default_policy), "certfleet-device", 0, 0,
	  "policy attached to certificates issued without --policy" },
	{ "key_min_rsa_bits", NUM(key_min_rsa_bits), "2048", 2048, 16384,
	  "smallest RSA key accepted in a CSR" },
	{ "log_level", KEY_LOG_LEVEL, offsetof(cf_config, log_level), "info", 0, 0,
	  "error, warn, info or debug" },
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
		if (strcmp(text, "0") != 0 &&
		    (cf_duration_parse(&v, text) != CF_OK || v < k->min || v > k->max)) {
			snprintf(why, why_len,
				 "%s must be a duration such as 30s, 5m, 1h, up to %lld seconds",
				 k->name, (long long)k->max);
			return CF_EINVAL;
		}
		*num_field(cfg, k) = v;
		return CF_OK;
	case KEY_LOG_LEVEL:
		if (cf_log_level_parse(&level, text) != CF_OK) {
			snprintf(why, why_len, "%s must be error, warn, info or debug", k->name);
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
	return rc;
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
		case KEY_STRING:
		case KEY_LOG_LEVEL:
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
		if (keys[i].type == KEY_STRING || keys[i].type == KEY_LOG_LEVEL) {
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
