/*
 * audit: the checks of a fleet audit and the engine that runs them.
 *
 * Pure over the store and a clock (now is passed in): an audit run reads the
 * registry (CAs, then one pass over the ACTIVE certificates, then the
 * broker's connection records and the rotations, each only when a check
 * asks for it), and writes its findings, in one transaction, through the
 * store's audit record (cf_store_audit_*). The run's NEW / OPEN / RESOLVED
 * bookkeeping and the suppressions are the store's.
 *
 * Key quality is judged from the registry's columns (key_type, key_bits,
 * sig_alg, spki_sha256), never by parsing a device certificate, so that a
 * million certificates audit in seconds. Not done yet (issue 5): the ROCA
 * fingerprint of device certificates (it needs the modulus, which the
 * registry does not keep), scheduling, notifications, mitigation actions.
 */
#ifndef CF_AUDIT_H
#define CF_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"
#include "store/store.h"
#include "util/util.h"

/* The checks' parameters. */
typedef struct cf_audit_config {
	int64_t device_expiring_days; /* DEVICE_CERTIFICATE_EXPIRING_CHECK, 30 */
	int64_t ca_expiring_days;     /* CA_CERTIFICATE_EXPIRING_CHECK, 90 */
	int64_t device_age_days;      /* DEVICE_CERTIFICATE_AGE_CHECK, 365 */
	int64_t rotation_failures;    /* ROTATION_FAILING_CHECK, 3 */
	int64_t shared_window;        /* connection checks: seconds back from now, 86400 */
	cf_pki_key_policy key_policy; /* the *_KEY_QUALITY_CHECKs: cf_pki_key_policy_init() */
} cf_audit_config;

/* Fill cfg with the defaults above. */
void cf_audit_config_init(cf_audit_config *cfg);

/* One check of the table. */
typedef struct cf_audit_check_info {
	const char *name; /* "DEVICE_CERTIFICATE_EXPIRING_CHECK" */
	cf_audit_severity severity;
	const char *summary; /* one line, for --help and `audit checks` */
} cf_audit_check_info;

/* Number of checks in the table, and check i of it (NULL past the end). Borrowed, static. */
size_t cf_audit_check_count(void);
const cf_audit_check_info *cf_audit_check_at(size_t i);

/* The check named name (exactly, upper case), or NULL. Borrowed, static. */
const cf_audit_check_info *cf_audit_check_find(const char *name);

/* The most checks of the table (an upper bound for the summary's arrays). */
#define CF_AUDIT_CHECKS_MAX 16

/* What a run did. */
typedef struct cf_audit_summary {
	int64_t certificates; /* ACTIVE certificates read */
	int64_t cas;
	int64_t connections;
	int64_t rotations;
	int64_t findings; /* written, suppressed ones included */
	int64_t by_severity[4];                   /* indexed by cf_audit_severity */
	int64_t by_check[CF_AUDIT_CHECKS_MAX];    /* indexed like cf_audit_check_at() */
	bool ran[CF_AUDIT_CHECKS_MAX];            /* the check was part of the run */
	int64_t elapsed_ms;
} cf_audit_summary;

/*
 * Run the n checks named in checks (n == 0: every check of the table) at
 * time now: a run record is begun (trigger), the findings are written in
 * one transaction, and the run is finished COMPLETED with a summary JSON of
 * the counts per check and severity, or FAILED when a step fails (then
 * the error is returned, and *run_out still names the run). *run_out and
 * summary (either may be NULL) get the run id and the counts.
 * CF_EINVAL, before anything is written, for an unknown or repeated check
 * name or a bad config; CF_ESTATE on a read-only store; CF_EBUSY,
 * CF_ENOMEM, CF_ESTORE.
 */
int cf_audit_run(int64_t *run_out, cf_audit_summary *summary, cf_store *store,
		 const cf_audit_config *cfg, cf_audit_trigger trigger, const char *const *checks,
		 size_t n, int64_t now, cf_err *err);

#endif
