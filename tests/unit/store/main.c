/* test_store: every group of the store's unit tests in one executable. */
#include "fixture.h"

int
main(void)
{
	int failed = 0;

	failed += test_store_run();
	failed += test_policy_run();
	failed += test_sqlite_run();
	failed += test_tx_run();
	failed += test_rotation_run();
	failed += test_delete_run();
	failed += test_connections_run();
	failed += test_audit_run();
	return failed == 0 ? 0 : 1;
}
