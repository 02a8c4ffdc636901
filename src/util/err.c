/* Error records and their English names. */
#include "util.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static int err_vset(cf_err *err, int code, const char *reason, const char *fmt, va_list ap)
	CF_PRINTF(4, 0);

static int
err_vset(cf_err *err, int code, const char *reason, const char *fmt, va_list ap)
{
	if (err == NULL)
		return code;
	err->code = code;
	err->reason = reason;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int
cf_err_set(cf_err *err, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, code, reason, fmt, ap);
	va_end(ap);
	return code;
}

int
cf_err_set_ossl(cf_err *err, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;
	unsigned long e;
	size_t used;
	char buf[160];

	va_start(ap, fmt);
	err_vset(err, code, reason, fmt, ap);
	va_end(ap);
	/* Drain the whole queue even without err: a stale entry must not stay. */
	while ((e = ERR_get_error()) != 0) {
		if (err == NULL)
			continue;
		used = strlen(err->msg);
		if (used + 3 >= sizeof(err->msg))
			continue;
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", buf);
	}
	return code;
}

void
cf_err_clear(cf_err *err)
{
	if (err == NULL)
		return;
	err->code = CF_OK;
	err->reason = NULL;
	err->msg[0] = '\0';
}

const char *
cf_strerror(int code)
{
	switch (code) {
	case CF_OK:
		return "success";
	case CF_ENOMEM:
		return "out of memory";
	case CF_EINVAL:
		return "invalid input";
	case CF_ENOTFOUND:
		return "not found";
	case CF_EEXISTS:
		return "already exists";
	case CF_ESTATE:
		return "refused in the current state";
	case CF_EPROTO:
		return "request refused by policy";
	case CF_ECRYPTO:
		return "cryptographic failure";
	case CF_EIO:
		return "input/output error";
	case CF_ESTORE:
		return "registry error";
	case CF_EBUSY:
		return "busy";
	case CF_EINTEGRITY:
		return "integrity check failed";
	default:
		return "unknown error";
	}
}
