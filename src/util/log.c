/* Log lines on stderr: logfmt, or JSON lines (jansson) for certfleetd's log_format. */
#include "util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

static cf_log_level log_level = CF_LOG_INFO;
static bool log_json;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
cf_log_set_level(cf_log_level level)
{
	log_level = level;
}

void
cf_log_set_json(bool json)
{
	log_json = json;
}

cf_log_level
cf_log_get_level(void)
{
	return log_level;
}

int
cf_log_level_parse(cf_log_level *out, const char *name)
{
	size_t i;

	for (i = 0; i < CF_ARRAY_LEN(level_names); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (cf_log_level)i;
			return CF_OK;
		}
	}
	return CF_EINVAL;
}

/* Append text to line as a logfmt value: bare when it needs no quoting. */
static size_t
logfmt_value(char *line, size_t size, size_t used, const char *text)
{
	bool bare = text[0] != '\0' && strpbrk(text, " =\"\\") == NULL;
	const char *p;

	for (p = text; bare && *p != '\0'; p++)
		bare = (unsigned char)*p >= 0x20 && *p != 0x7f;

	if (bare)
		return used + (size_t)snprintf(line + used, used < size ? size - used : 0, "%s", text);
	if (used + 1 < size)
		line[used] = '"';
	used++;
	for (p = text; *p != '\0' && used + 3 < size; p++) {
		if (*p == '"' || *p == '\\') {
			line[used++] = '\\';
			line[used++] = *p;
		} else if (*p == '\n' || *p == '\t') {
			line[used++] = '\\';
			line[used++] = *p == '\n' ? 'n' : 't';
		} else if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			/* CR, ESC...: a device's text must not forge lines or colour a terminal. */
			if (used + 5 >= size)
				break;
			used += (size_t)snprintf(line + used, 5, "\\x%02x", (unsigned char)*p);
		} else {
			line[used++] = *p;
		}
	}
	if (used + 1 < size)
		line[used++] = '"';
	line[used < size ? used : size - 1] = '\0';
	return used;
}

const char *
cf_log_quote(char *buf, size_t size, const char *text)
{
	if (size == 0)
		return "";
	buf[0] = '\0';
	logfmt_value(buf, size, 0, text != NULL ? text : "");
	return buf;
}

/*
 * Turn a logfmt message into members of obj: key=value and key="quoted
 * \"value\"" pairs; any other word goes to "msg". Malformed input is kept,
 * never lost: the rest of the line then goes to "msg" as it is.
 */
static void
logfmt_to_json(json_t *obj, const char *msg)
{
	const char *p = msg;
	char key[64], value[1024];

	while (*p != '\0') {
		size_t k = 0, v = 0;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		while (*p != '\0' && *p != '=' && *p != ' ' && k + 1 < sizeof(key))
			key[k++] = *p++;
		key[k] = '\0';
		if (*p != '=' || k == 0) {
			json_object_set_new(obj, "msg", json_string(msg));
			return;
		}
		p++;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && v + 1 < sizeof(value); p++) {
				if (*p == '\\' && p[1] != '\0') {
					p++;
					value[v++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
				} else {
					value[v++] = *p;
				}
			}
			if (*p == '"')
				p++;
		} else {
			while (*p != '\0' && *p != ' ' && v + 1 < sizeof(value))
				value[v++] = *p++;
		}
		value[v] = '\0';
		json_object_set_new(obj, key, json_string(value));
	}
}

static void
emit_json(const char *when, cf_log_level level, const char *func, const char *msg,
	  const cf_err *err)
{
	json_t *obj = json_object();
	char *text;

	if (obj == NULL)
		return;
	json_object_set_new(obj, "time", json_string(when));
	json_object_set_new(obj, "level", json_string(level_names[level]));
	json_object_set_new(obj, "func", json_string(func));
	logfmt_to_json(obj, msg);
	if (err != NULL && err->msg[0] != '\0')
		json_object_set_new(obj, "error", json_string(err->msg));
	text = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text != NULL) {
		fprintf(stderr, "%s\n", text);
		free(text);
	}
	json_decref(obj);
}

void
cf_log_emit(cf_log_level level, const char *func, const cf_err *err, const char *fmt, ...)
{
	char line[1024], msg[900];
	char when[CF_TIME_BUF];
	size_t used;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cf_time_format(when, cf_time_now());
	if (log_json) {
		emit_json(when, level, func, msg, err);
		return;
	}
	snprintf(line, sizeof(line), "time=%s level=%s func=%s %s", when, level_names[level],
		 func, msg);
	used = strlen(line);
	if (err != NULL && err->msg[0] != '\0' && used + 8 < sizeof(line)) {
		memcpy(line + used, " error=", 8);
		logfmt_value(line, sizeof(line), used + 7, err->msg);
	}
	/* One write per line, so that lines from several threads do not mix. */
	fprintf(stderr, "%s\n", line);
}
