/*
 * util: errors, logging, time, secure memory, hex, files.
 *
 * The bottom of the module stack: it knows nothing of certificates, the
 * registry or MQTT. Every other module reports failures through cf_err.
 */
#ifndef CF_UTIL_H
#define CF_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CF_PRINTF(f, a)
#endif

#define CF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The one list of error codes. Functions return 0 or one of these. */
enum {
	CF_OK = 0,
	CF_ENOMEM = -1,    /* out of memory */
	CF_EINVAL = -2,    /* bad argument or bad input (malformed PEM, JSON, config) */
	CF_ENOTFOUND = -3, /* no such thing, certificate, CA, policy, file */
	CF_EEXISTS = -4,   /* the name or id is taken */
	CF_ESTATE = -5,    /* refused in the current state (status transition, retired CA) */
	CF_EPROTO = -6,    /* a request broke the protocol or policy (BAD_CSR, WEAK_KEY, ...) */
	CF_ECRYPTO = -7,   /* OpenSSL failed, or a key does not decrypt */
	CF_EIO = -8,       /* file system or socket */
	CF_ESTORE = -9,    /* the registry backend failed */
	CF_EBUSY = -10,    /* locked by someone else; try again */
	CF_EINTEGRITY = -11 /* tampering detected (event chain) */
};

/* Error record filled by the failing function; see style.md. */
typedef struct cf_err {
	int code;           /* what the failing function returned */
	const char *reason; /* stable token safe for a device or API client, or NULL */
	char msg[256];      /* detail for logs and operators, never for devices */
} cf_err;

#define CF_ERR_INIT { 0, NULL, { 0 } }

/* Fill *err (err may be NULL) and return code, so that: rc = cf_err_set(...). */
int cf_err_set(cf_err *err, int code, const char *reason, const char *fmt, ...) CF_PRINTF(4, 5);

/*
 * Like cf_err_set(), then append the OpenSSL error queue to msg and empty
 * the queue, so that a stale OpenSSL error never sticks to a later failure.
 */
int cf_err_set_ossl(cf_err *err, int code, const char *reason, const char *fmt, ...)
	CF_PRINTF(4, 5);

/* Reset *err to "no error". NULL is accepted. */
void cf_err_clear(cf_err *err);

/* A short English name for a CF_E* code ("not found"). Never NULL. */
const char *cf_strerror(int code);

/* ---- logging ---------------------------------------------------------- */

typedef enum { CF_LOG_ERR = 0, CF_LOG_WARN, CF_LOG_INFO, CF_LOG_DEBUG } cf_log_level;

/* Lines below this level are dropped. Default CF_LOG_INFO. */
void cf_log_set_level(cf_log_level level);
cf_log_level cf_log_get_level(void);

/*
 * Lines as JSON objects instead of logfmt: time, level, func, then each
 * key=value pair of the message as a member ("msg" for a message that is
 * not pairs), and "error".
 */
void cf_log_set_json(bool json);

/* Parse "error", "warn", "info", "debug". Returns CF_EINVAL for anything else. */
int cf_log_level_parse(cf_log_level *out, const char *name);

/*
 * Write one line to stderr: time, level, func, the message, and err->msg
 * (quoted as logfmt needs) when err is not NULL. The message should be
 * key=value pairs, values with spaces or quotes in "double quotes" with
 * \" and \\ escaped (cf_log_quote()).
 */
void cf_log_emit(cf_log_level level, const char *func, const cf_err *err, const char *fmt, ...)
	CF_PRINTF(4, 5);

/*
 * text as a logfmt value into buf: as it is when it has no space, '=',
 * quote or backslash, else in double quotes with \" \\ \n \t escapes;
 * cut to size. Returns buf.
 */
const char *cf_log_quote(char *buf, size_t size, const char *text);

#define cf_log_error(...)        cf_log_emit(CF_LOG_ERR, __func__, NULL, __VA_ARGS__)
#define cf_log_warn(...)         cf_log_emit(CF_LOG_WARN, __func__, NULL, __VA_ARGS__)
#define cf_log_info(...)         cf_log_emit(CF_LOG_INFO, __func__, NULL, __VA_ARGS__)
#define cf_log_debug(...)        cf_log_emit(CF_LOG_DEBUG, __func__, NULL, __VA_ARGS__)
#define cf_log_error_err(e, ...) cf_log_emit(CF_LOG_ERR, __func__, (e), __VA_ARGS__)
#define cf_log_warn_err(e, ...)  cf_log_emit(CF_LOG_WARN, __func__, (e), __VA_ARGS__)
#define cf_log_info_err(e, ...)  cf_log_emit(CF_LOG_INFO, __func__, (e), __VA_ARGS__)

/* ---- time ------------------------------------------------------------- */

/* Seconds since the epoch (UTC). */
int64_t cf_time_now(void);

/* Milliseconds on CLOCK_MONOTONIC: for timers and durations, never for dates. */
int64_t cf_time_mono_ms(void);

/* Format t as "2026-11-22T11:15:00Z" into buf (at least CF_TIME_BUF bytes). */
#define CF_TIME_BUF 32
const char *cf_time_format(char buf[CF_TIME_BUF], int64_t t);

/*
 * Parse a duration: a positive integer followed by s, m, h, d or w
 * ("30d", "12h"). The unit is required: a bare "3600" could mean seconds
 * or days. Result in seconds. CF_EINVAL on anything else or on overflow.
 */
int cf_duration_parse(int64_t *out, const char *text);

/* ---- strings and numbers ---------------------------------------------- */

/* Lowercase hex of len bytes into out (2 * len + 1 bytes). Returns out. */
char *cf_hex_encode(char *out, const unsigned char *in, size_t len);

/* Parse a whole decimal integer in [min, max]. CF_EINVAL otherwise. */
int cf_parse_int64(int64_t *out, const char *text, int64_t min, int64_t max);

/* strdup that returns NULL on NULL. The caller frees the copy with free(). */
char *cf_strdup(const char *s);

/*
 * True when s is a valid name: 1 to CF_NAME_MAX characters of
 * [A-Za-z0-9_.:-], not starting with '-' or '.'. A thing's name is its
 * certificates' CN, which RFC 5280 caps at 64.
 */
#define CF_NAME_MAX 64
bool cf_name_valid(const char *s);

/* ---- files ------------------------------------------------------------ */

/*
 * Read a whole file of at most max bytes into a NUL-terminated buffer the
 * caller frees with free(). CF_ENOTFOUND if missing, CF_EINVAL if larger
 * than max, CF_EIO otherwise.
 */
int cf_file_read(char **out, size_t *len_out, const char *path, size_t max, cf_err *err);

/*
 * Write data to path atomically: a temporary file in the same directory
 * created with mode, fsync, rename, fsync of the directory. With exclusive
 * set, an existing path is an error (CF_EEXISTS).
 */
int cf_file_write_atomic(const char *path, const void *data, size_t len, unsigned int mode,
			 bool exclusive, cf_err *err);

/* mkdir -p with mode for the directories it creates. */
int cf_dir_create(const char *path, unsigned int mode, cf_err *err);

/*
 * Read a secret (passphrase, PIN) from a file into the OpenSSL secure heap,
 * with the trailing newline removed. The file must not be readable by group
 * or others (CF_EPERM-like CF_EINVAL otherwise). Release with
 * cf_secret_free(). An empty secret is CF_EINVAL.
 */
int cf_secret_read(char **out, size_t *len_out, const char *path, cf_err *err);

/* Wipe and release a secret from cf_secret_read(). NULL is accepted. */
void cf_secret_free(char *secret, size_t len);

/* Join dir and name with '/' into a new string freed with free(); NULL on ENOMEM. */
char *cf_path_join(const char *dir, const char *name);

#endif
