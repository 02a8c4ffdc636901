/*
 * Test support: a certfleet data dir fixture for the integration tests.
 *
 * A cf_test_fleet is one case's world on disk: a private temp dir T, the
 * data dir D = T/data that `certfleet init` fills, the last command's
 * result, and the strings and JSON values the case made along the way,
 * all released by cf_test_fleet_clear(). The steps run the real certfleet
 * binary (`certfleet --data-dir D ARGS...`) and the real openssl command
 * through support/run.h.
 *
 * Unlike run.h and broker.h, everything here but the set-up and
 * tear-down functions (which return 0 or -1) is called from inside a
 * cmocka test and fails the case itself (fail_msg) after printing what
 * was run and what it printed, so that a case reads as a list of steps.
 *
 * Strings and JSON values returned as pointers are borrowed from f and
 * live until cf_test_fleet_clear().
 */
#ifndef CF_TEST_FLEET_H
#define CF_TEST_FLEET_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "support/run.h"

/* The exits of cli/cli.h (docs/cli.md). */
enum {
	CF_TEST_EXIT_OK = 0,
	CF_TEST_EXIT_USAGE = 2,
	CF_TEST_EXIT_NOTFOUND = 3,
	CF_TEST_EXIT_EXISTS = 4,
	CF_TEST_EXIT_STATE = 5,
	CF_TEST_EXIT_INPUT = 6,
	CF_TEST_EXIT_INTEGRITY = 9
};

/* Passed as want: any exit status will do (a timeout still fails). */
#define CF_TEST_ANY_EXIT (-1)

typedef struct cf_test_fleet {
	char *tmp;             /* T: the case's private temp dir */
	char *data;            /* D = T/data, made by `certfleet init` */
	const char *certfleet; /* the certfleet binary (borrowed from the caller) */
	cf_test_result r;      /* what the last command left */
	int timeout_s;         /* deadline of one command; 0: CF_TEST_TIMEOUT */

	/* Called before a failed command fails the case (to show logs), with on_fail_payload. */
	void (*on_fail)(void *payload);
	void *on_fail_payload;

	/* Filled by cf_test_fleet_ca_files(). */
	const char *root;  /* D/offline-root/root.pem: the offline root */
	const char *inter; /* T/intermediate.pem: the intermediate "default" */

	/* Private: what cf_test_keep() and cf_test_jkeep() hold. */
	char **kept;
	size_t nkept, kept_cap;
	json_t **jkept;
	size_t njkept, jkept_cap;
} cf_test_fleet;

/* A thing with a certificate that certfleet issued for an openssl key. */
typedef struct cf_test_identity {
	const char *thing;
	const char *key;  /* T/THING.key: EC P-256, mode 0600 */
	const char *csr;  /* T/THING.csr */
	const char *cert; /* T/THING.pem: the leaf certificate alone */
	const char *id;   /* its certificateId, as `cert issue` printed it */
} cf_test_identity;

/* ---- set-up and tear-down (not inside a case: these return 0 or -1) --------- */

/*
 * $CF_BINARY_DIR/rel, when that is an executable file (ctest sets
 * CF_BINARY_DIR); NULL with a message on stderr otherwise. Freed by the
 * caller.
 */
char *cf_test_binary(const char *rel);

/*
 * cmocka group setup and teardown of a CLI test: find the certfleet
 * program (cf_test_binary("cli/certfleet")) once, and release it.
 * cf_test_cli() is its path, for cf_test_fleet_new(); NULL before.
 */
int cf_test_cli_group_setup(void **state);
int cf_test_cli_group_teardown(void **state);
const char *cf_test_cli(void);

/*
 * Make the temp dir ($TMPDIR or /tmp)/<prefix>-XXXXXX for f; D is named but
 * not made. certfleet is the binary the steps run (borrowed). On failure
 * f holds nothing to clear.
 */
int cf_test_fleet_init(cf_test_fleet *f, const char *prefix, const char *certfleet);

/*
 * Free what f keeps and remove T, unless CF_TEST_KEEP is set in the
 * environment (then T is named on stderr and kept). Returns -1 when T
 * could not be removed. A zeroed f is fine.
 */
int cf_test_fleet_clear(cf_test_fleet *f);

/*
 * cf_test_fleet_init() on a new fleet, for a case whose whole state it
 * is. The caller releases *out with cf_test_fleet_free().
 */
int cf_test_fleet_new(cf_test_fleet **out, const char *prefix, const char *certfleet);

/* cf_test_fleet_clear() and free f, returning what the clear did. NULL is accepted. */
int cf_test_fleet_free(cf_test_fleet *f);

/* ---- keeping -------------------------------------------------------------------- */

/* Keep s (malloc'd) until the clear, and return it; fails the case when s is NULL. */
const char *cf_test_keep(cf_test_fleet *f, char *s);

/* Keep the reference j until the clear, and return it; fails the case when j is NULL. */
json_t *cf_test_jkeep(cf_test_fleet *f, json_t *j);

/* T/name and D/name. */
const char *cf_test_tpath(cf_test_fleet *f, const char *name);
const char *cf_test_dpath(cf_test_fleet *f, const char *name);

/* ---- running -------------------------------------------------------------------- */

/*
 * Run argv (NULL-terminated) into f->r. Fails the case on a timeout, or
 * when want is not CF_TEST_ANY_EXIT and the exit status differs. Returns
 * the exit status.
 */
int cf_test_fleet_run(cf_test_fleet *f, const char *const *argv, int want);

/*
 * Append the NULL-terminated arguments in ap to argv[0..n) and end argv
 * with NULL; fails the case when that needs more than max entries.
 * Returns the new count.
 */
size_t cf_test_argv_collect(const char **argv, size_t n, size_t max, va_list ap);

/* certfleet --data-dir D ARGS... (NULL-terminated), as cf_test_fleet_run(). */
int cf_test_certfleet(cf_test_fleet *f, int want, ...) CF_TEST_SENTINEL;

/* certfleet --data-dir D --output json ARGS..., as cf_test_fleet_run(); stdout stays in f->r. */
int cf_test_certfleet_json_want(cf_test_fleet *f, int want, ...) CF_TEST_SENTINEL;

/* certfleet --data-dir D --output json ARGS..., which must exit 0: its stdout, parsed. */
json_t *cf_test_certfleet_json(cf_test_fleet *f, ...) CF_TEST_SENTINEL;

/* openssl ARGS..., as cf_test_fleet_run(). */
int cf_test_openssl(cf_test_fleet *f, int want, ...) CF_TEST_SENTINEL;

/* ---- reading results ------------------------------------------------------------ */

/* text parsed as JSON (any value), kept; fails the case when it is not JSON. */
json_t *cf_test_json_parse(cf_test_fleet *f, const char *text);

/* The last command's stdout parsed as JSON, as cf_test_json_parse(). */
json_t *cf_test_json_out(cf_test_fleet *f);

/* obj's string or integer member key; fails the case when there is none. */
const char *cf_test_jstr(json_t *obj, const char *key);
json_int_t cf_test_jint(json_t *obj, const char *key);

/* Whether s is exactly n lowercase hex digits (certificate ids: 64, rotation ids: 32). */
bool cf_test_is_hex(const char *s, size_t n);

/* s without its trailing white space, kept. */
const char *cf_test_chomp(cf_test_fleet *f, const char *s);

/* Fail the case unless needle is in hay. */
void cf_test_assert_contains(const char *hay, const char *needle);

/* A whole file of at most 16 MiB, kept; fails the case when it cannot be read. */
const char *cf_test_file_text(cf_test_fleet *f, const char *path);

/* Create or replace path with text, mode mode; fails the case on an error. */
void cf_test_write_text(const char *path, const char *text, mode_t mode);

/* Write to path (mode mode) the texts of the files named (NULL-terminated), one after another. */
void cf_test_cat(cf_test_fleet *f, const char *path, mode_t mode, ...) CF_TEST_SENTINEL;

/*
 * Replace or add "key = value" in D/certfleet.conf (the new line last),
 * and leave the file with mode mode.
 */
void cf_test_config_set(cf_test_fleet *f, const char *key, const char *value, mode_t mode);

/* ---- certificates --------------------------------------------------------------- */

/*
 * Set f->root and f->inter for a quickstart data dir: the root's PEM file,
 * and T/intermediate.pem written from `certfleet ca describe default`.
 */
void cf_test_fleet_ca_files(cf_test_fleet *f);

/*
 * A new key T/NAME.key and a CSR T/NAME.csr for subject subj, by
 * `openssl req -new -newkey KEYSPEC -nodes`; keyspec "ec" is an EC
 * P-256 key, anything else goes to -newkey as it is ("rsa:1024").
 * Returns the CSR's path.
 */
const char *cf_test_csr_new(cf_test_fleet *f, const char *name, const char *keyspec,
			    const char *subj);

/*
 * certfleet cert issue --thing THING --csr CSR [--out OUT] ARGS...
 * (NULL-terminated; out may be NULL): the certificate id it prints,
 * checked to be 64 lowercase hex digits.
 */
const char *cf_test_cert_issue(cf_test_fleet *f, const char *thing, const char *csr,
			       const char *out, ...) CF_TEST_SENTINEL;

/*
 * certfleet thing create THING, an EC P-256 key and a CSR for subj by
 * openssl, and certfleet cert issue --out T/THING.pem with the extra
 * issue arguments ARGS... (NULL-terminated). Fills *out.
 */
void cf_test_identity_new(cf_test_identity *out, cf_test_fleet *f, const char *thing,
			  const char *subj, ...) CF_TEST_SENTINEL;

/*
 * The certificateId (SHA-256 of the DER) of a PEM file's first
 * certificate, by `openssl x509 -fingerprint -sha256`; kept.
 */
const char *cf_test_ossl_cert_id(cf_test_fleet *f, const char *pem);

/*
 * The public key as PEM of a certificate (what "x509"), a CSR ("req") or
 * a private key ("pkey"), by openssl; kept.
 */
const char *cf_test_ossl_pubkey(cf_test_fleet *f, const char *what, const char *path);

/*
 * A csr_res payload (protocol.md) carrying the CSR in csr_path, and
 * rotation_id unless it is NULL: compact JSON, kept.
 */
const char *cf_test_csr_res(cf_test_fleet *f, const char *csr_path, const char *rotation_id);

#endif
