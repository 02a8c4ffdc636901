/* audit: shared between the engine (audit.c) and the checks (checks.c). Private. */
#ifndef CF_AUDIT_INT_H
#define CF_AUDIT_INT_H

#include <jansson.h>

#include "audit/audit.h"

/* The checks, in the order of the table in checks.c. */
enum {
	CF_AUDIT__DEVICE_EXPIRING = 0,
	CF_AUDIT__CA_EXPIRING,
	CF_AUDIT__DEVICE_KEY_QUALITY,
	CF_AUDIT__CA_KEY_QUALITY,
	CF_AUDIT__REVOKED_CA_ACTIVE,
	CF_AUDIT__INTERMEDIATE_REVOKED,
	CF_AUDIT__REVOKED_DEVICE_ACTIVE,
	CF_AUDIT__DEVICE_SHARED,
	CF_AUDIT__CONFLICTING_CLIENT_IDS,
	CF_AUDIT__DEVICE_AGE,
	CF_AUDIT__ROTATION_FAILING,
	CF_AUDIT__POLICY_PERMISSIVE,
	CF_AUDIT__LOGGING_DISABLED,
	CF_AUDIT__COUNT
};

/* Findings are written this many at a time. */
#define CF_AUDIT__BATCH 2000

/* A CA as the checks need it. */
struct cf_audit__ca {
	char *name;
	char *parent;
	cf_ca_status status;
	bool is_root;
	bool chain_revoked;    /* it or an ancestor is REVOKED */
	const char *revoked;   /* the nearest REVOKED one of the chain (borrowed), or NULL */
	int64_t active_certs;  /* ACTIVE device certificates it issued */
};

/*
 * An ACTIVE certificate's key, for the shared-key part of the key quality
 * check: one per ACTIVE certificate, so kept to 72 bytes (binary digests,
 * the thing as a hash): 72 MB for a million certificates.
 */
struct cf_audit__key {
	unsigned char spki[32];
	unsigned char id[32];
	uint64_t thing_hash : 63;
	uint64_t reported : 1; /* already has a key quality finding */
};

/* A verdict of cf_pki_key_quality() for one (key_type, key_bits, sig_alg). */
struct cf_audit__verdict {
	char key_type[48];
	int key_bits;
	bool key_roca;
	char sig_alg[64];
	cf_pki_quality q;
};

#define CF_AUDIT__VERDICTS 64

typedef struct cf_audit__run {
	cf_store *store;
	const cf_audit_config *cfg;
	int64_t now;
	int64_t run_id;
	bool on[CF_AUDIT__COUNT];
	cf_audit_summary *sum;
	cf_err *err;
	/* the pending batch: resource and detail owned */
	cf_store_finding batch[CF_AUDIT__BATCH];
	size_t nbatch;
	/* CAs, loaded first */
	struct cf_audit__ca *cas;
	size_t ncas;
	struct cf_audit__ca *last_ca; /* the CA of the previous certificate */
	/* keys of the ACTIVE certificates */
	struct cf_audit__key *keys;
	size_t nkeys, capkeys;
	struct cf_audit__verdict verdicts[CF_AUDIT__VERDICTS];
	size_t nverdicts;
} cf_audit__run;

/* The table of checks. */
extern const cf_audit_check_info cf_audit__checks[CF_AUDIT__COUNT];

_Static_assert(CF_AUDIT__COUNT <= CF_AUDIT_CHECKS_MAX, "raise CF_AUDIT_CHECKS_MAX");

/* The index in the table of the check named by name[0, len), or -1. */
int cf_audit__check_index(const char *name, size_t len);

/*
 * Queue a finding of check on resource (copied) with reason (static) and
 * detail (stolen, may be NULL), writing the batch when it is full.
 */
int cf_audit__emit(cf_audit__run *run, int check, const char *resource, const char *reason,
		   json_t *detail);

/* The CA named name, or NULL. */
struct cf_audit__ca *cf_audit__ca_find(cf_audit__run *run, const char *name);

/* The checks' hooks: per CA, per ACTIVE certificate, and after the pass. */
int cf_audit__check_cas(cf_audit__run *run);
int cf_audit__check_cert(cf_audit__run *run, const cf_store_cert_facts *cert);
int cf_audit__check_after(cf_audit__run *run);

#endif
