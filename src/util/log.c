/* logfmt lines on stderr. */
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static cf_log_level log_level = CF_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
cf_log_set_level(cf_log_level level)
{
	log_level = level;
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

void
cf_log_emit(cf_log_level level, const char *func, const cf_err *err, const char *fmt, ...)
{
	char line[1024];
	char when[CF_TIME_BUF];
	size_t used;
	va_list ap;

	if (level > log_level)
		return;
	snprintf(line, sizeof(line), "time=%s level=%s func=%s ",
		 cf_time_format(when, cf_time_now()), level_names[level], func);
	used = strlen(line);
	va_start(ap, fmt);
	vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	va_end(ap);
	used = strlen(line);
	if (err != NULL && err->msg[0] != '\0' && used < sizeof(line))
		snprintf(line + used, sizeof(line) - used, " error=\"%s\"", err->msg);
	/* One write per line, so that lines from several threads do not mix. */
	fprintf(stderr, "%s\n", line);
}
