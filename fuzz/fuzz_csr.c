/*
 * Fuzz target: the CSR parser and key policy, as a device's csr_res reaches
 * them. Built with libFuzzer (-DCF_FUZZ=ON, clang), or with replay.c to run
 * a corpus in ctest.
 */
#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cf_pki_key_policy policy;
	cf_pki_csr *csr = NULL;

	cf_pki_key_policy_init(&policy);
	if (cf_pki_csr_parse(&csr, data, size, NULL) == CF_OK) {
		(void)cf_pki_csr_check_policy(csr, &policy, NULL);
		(void)cf_pki_csr_spki_sha256(csr);
	}
	cf_pki_csr_free(csr);
	return 0;
}
