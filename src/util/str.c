/* Small string and number helpers. */
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *
cf_hex_encode(char *out, const unsigned char *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
	return out;
}

int
cf_parse_int64(int64_t *out, const char *text, int64_t min, int64_t max)
{
	char *end = NULL;
	long long v;

	if (text == NULL || *text == '\0')
		return CF_EINVAL;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return CF_EINVAL;
	*out = (int64_t)v;
	return CF_OK;
}

char *
cf_strdup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

bool
cf_name_valid(const char *s)
{
	size_t n;

	if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '.')
		return false;
	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= CF_NAME_MAX)
			return false;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == ':' || c == '-')
			continue;
		return false;
	}
	return true;
}

char *
cf_path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}
