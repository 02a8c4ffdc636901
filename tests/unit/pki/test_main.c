/* test_pki: every pki unit test group in one executable. */
#include "helpers.h"

int
main(void)
{
	int failed = 0;

	failed += test_pki_key_run();
	failed += test_pki_csr_run();
	failed += test_pki_issue_run();
	failed += test_pki_cert_run();
	failed += test_pki_crl_run();
	return failed == 0 ? 0 : 1;
}
