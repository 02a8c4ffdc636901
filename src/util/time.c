/* Wall-clock time and durations. */
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <time.h>

int64_t
cf_time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t
cf_time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
cf_time_format(char buf[CF_TIME_BUF], int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, CF_TIME_BUF, "%lld", (long long)t);
		return buf;
	}
	strftime(buf, CF_TIME_BUF, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int
cf_duration_parse(int64_t *out, const char *text)
{
	int64_t n = 0, unit;
	const char *p = text;

	if (text == NULL || *p < '0' || *p > '9')
		return CF_EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - 9) / 10)
			return CF_EINVAL;
		n = n * 10 + (*p - '0');
	}
	switch (*p) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		return CF_EINVAL;
	}
	if (p[1] != '\0')
		return CF_EINVAL;
	if (n == 0 || n > INT64_MAX / unit)
		return CF_EINVAL;
	*out = n * unit;
	return CF_OK;
}
