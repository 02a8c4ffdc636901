/*
 * agent_int.h: private to agent/. The JSON reader and writer, the on-disk
 * slots, and the OpenSSL helpers shared by agent.c and its transport.
 */
#ifndef CF_AGENT_INT_H
#define CF_AGENT_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certfleet/agent.h"

#if defined(__GNUC__)
#define CF_AGENT__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CF_AGENT__PRINTF(f, a)
#endif

/* Fill *err (may be NULL) and return code. */
int cf_agent__err_set(cf_agent_err *err, int code, const char *reason, const char *fmt, ...)
	CF_AGENT__PRINTF(4, 5);
/* Same, then append and empty the OpenSSL error queue. */
int cf_agent__err_ossl(cf_agent_err *err, int code, const char *reason, const char *fmt, ...)
	CF_AGENT__PRINTF(4, 5);

/*
 * Make ctx check that the broker's certificate names host: an IP SAN for
 * an address, a DNS name otherwise. 1 on success (OpenSSL's convention).
 */
int cf_agent__expect_host(struct ssl_ctx_st *ctx, const char *host);

/* Log a transport failure through the agent's logger (used by the runner). */
void cf_agent__log_err(cf_agent *agent, const cf_agent_err *err, const char *what);

/* ---- JSON (json.c) ----------------------------------------------------- */

enum { CF_AGENT__JSON_STR = 1, CF_AGENT__JSON_BOOL = 2 };

/* One top-level member the caller wants; filled by cf_agent__json_read(). */
typedef struct cf_agent__json_field {
	const char *name;
	int type;      /* CF_AGENT__JSON_STR or CF_AGENT__JSON_BOOL */
	bool present;  /* false when absent or null */
	bool boolean;  /* BOOL */
	char *str;     /* STR: decoded UTF-8, NUL-terminated, freed by _fields_clear() */
	size_t len;
} cf_agent__json_field;

/*
 * Parse text (len bytes, no NUL needed) as one JSON object and pick the
 * named top-level members. Strict RFC 8259 syntax, UTF-8 checked, no NUL
 * in strings, nesting at most CF_AGENT_JSON_MAX_DEPTH, no recursion. A
 * wanted member of the wrong type or given twice is an error; unknown
 * members are skipped. CF_AGENT_EINVAL or CF_AGENT_ENOMEM.
 */
int cf_agent__json_read(const char *text, size_t len, cf_agent__json_field *fields, size_t n,
			cf_agent_err *err);
void cf_agent__json_fields_clear(cf_agent__json_field *fields, size_t n);

/*
 * Build a flat object of string members from NULL-terminated (name, value)
 * pairs; a pair whose value is NULL is left out. *out is freed with free().
 */
int cf_agent__json_object(char **out, size_t *len_out, ...);

/* ---- on-disk slots (store.c) ------------------------------------------- */

#define CF_AGENT__KEY_FILE  "key.pem"
#define CF_AGENT__CERT_FILE "cert.pem"
#define CF_AGENT__CSR_FILE  "csr.pem"
#define CF_AGENT__ROT_FILE  "rotation.json"
#define CF_AGENT__ACK_FILE  "ack_pending.json"

/* Write data to dir/name: name.tmp with mode 0600, fsync, rename, fsync of dir. */
int cf_agent__file_write(const char *dir, const char *name, const void *data, size_t len,
			 cf_agent_err *err);
/* Read dir/name (at most max bytes) into a NUL-terminated buffer freed with free(). */
int cf_agent__file_read(char **out, size_t *len_out, const char *dir, const char *name,
			size_t max, cf_agent_err *err);
bool cf_agent__file_exists(const char *dir, const char *name);
int cf_agent__file_remove(const char *dir, const char *name, cf_agent_err *err);
/* mkdir dir 0700 (existing is fine) and fsync its parent. */
int cf_agent__dir_make(const char *dir, cf_agent_err *err);
/* Remove every file in dir, then dir itself; fsync the parent. Missing is fine. */
int cf_agent__dir_remove(const char *dir, cf_agent_err *err);
/* rename(from, to) of two entries of one parent, then fsync the parent. */
int cf_agent__dir_rename(const char *from, const char *to, cf_agent_err *err);
bool cf_agent__dir_exists(const char *dir);
/* Remove leftover *.tmp files in dir. */
void cf_agent__dir_clean_tmp(const char *dir);
/* "dir/name" into a new string; NULL on ENOMEM. */
char *cf_agent__path(const char *dir, const char *name);

/* ---- OpenSSL helpers (crypto.c) ---------------------------------------- */

int cf_agent__key_generate(EVP_PKEY **out, cf_agent_key_type type, cf_agent_err *err);
/* Parse "EC-P256"... -1 when unknown. */
int cf_agent__key_type_parse(const char *name);
const char *cf_agent__key_type_name(cf_agent_key_type type);
/* Unencrypted PKCS#8 PEM; *out freed with cf_agent__secret_free(). */
int cf_agent__key_to_pem(char **out, size_t *len_out, EVP_PKEY *key, cf_agent_err *err);
void cf_agent__secret_free(char *buf, size_t len);
int cf_agent__key_load(EVP_PKEY **out, const char *dir, cf_agent_err *err);
/* Certificates of a PEM text, in order; at least one. */
int cf_agent__certs_parse(STACK_OF(X509) **out, const char *pem, size_t len, cf_agent_err *err);
int cf_agent__certs_load(STACK_OF(X509) **out, const char *dir, cf_agent_err *err);
/* Leaf then chain as one PEM text. */
int cf_agent__certs_to_pem(char **out, size_t *len_out, STACK_OF(X509) *certs, cf_agent_err *err);
/* A PEM CSR for key with CN=cn, SHA-256 (none for Ed25519). */
int cf_agent__csr_make(char **out, size_t *len_out, EVP_PKEY *key, const char *cn,
		       cf_agent_err *err);
/* Lowercase hex SHA-256 of the DER into out[65]. */
int cf_agent__cert_id(char out[65], X509 *cert, cf_agent_err *err);
/*
 * X509_verify_cert of leaf with untrusted intermediates against store,
 * purpose TLS client. CF_AGENT_EPROTO "UNTRUSTED" on failure.
 */
int cf_agent__cert_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted,
			  cf_agent_err *err);
/* A client SSL_CTX: chain (leaf first), key, store as trust anchors, verify peer. */
int cf_agent__ssl_ctx_new(SSL_CTX **out, X509_STORE *store, STACK_OF(X509) *chain,
			  EVP_PKEY *key, cf_agent_err *err);

/* Milliseconds of the monotonic clock (run.c). */
int64_t cf_agent__now_ms(void);

#endif
