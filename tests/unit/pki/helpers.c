/* Shared helpers for the pki unit tests. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
pki_test_fixture(const char *name, size_t *len)
{
	const char *root = getenv("CF_SOURCE_DIR");
	char path[1024];
	char *data = NULL;

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/tests/data/csr/%s", root, name);
	assert_int_equal(cf_file_read(&data, len, path, 1 << 20, NULL), 0);
	return data;
}

void
pki_test_chain_make(struct pki_test_chain *chain, cf_key_type type)
{
	memset(chain, 0, sizeof(*chain));
	assert_int_equal(cf_pki_key_generate(&chain->root_key, type, NULL), 0);
	assert_int_equal(cf_pki_root_create(&chain->root, chain->root_key, "Test Root", "certfleet",
					    3650, NULL),
			 0);
	assert_int_equal(cf_pki_ca_new(&chain->root_ca, chain->root, chain->root_key, NULL), 0);
	assert_int_equal(cf_pki_key_generate(&chain->int_key, type, NULL), 0);
	assert_int_equal(cf_pki_intermediate_sign(&chain->inter, chain->root_ca, chain->int_key,
						  "Test Issuing CA", "certfleet", 1825, NULL),
			 0);
	assert_int_equal(cf_pki_ca_new(&chain->int_ca, chain->inter, chain->int_key, NULL), 0);
}

void
pki_test_chain_clear(struct pki_test_chain *chain)
{
	cf_pki_ca_free(chain->int_ca);
	X509_free(chain->inter);
	EVP_PKEY_free(chain->int_key);
	cf_pki_ca_free(chain->root_ca);
	X509_free(chain->root);
	EVP_PKEY_free(chain->root_key);
	memset(chain, 0, sizeof(*chain));
}

cf_pki_csr *
pki_test_csr(const char *name)
{
	cf_pki_csr *csr = NULL;
	cf_err err = CF_ERR_INIT;
	size_t len = 0;
	char *data = pki_test_fixture(name, &len);

	if (cf_pki_csr_parse(&csr, data, len, &err) != 0)
		fail_msg("%s: %s", name, err.msg);
	free(data);
	return csr;
}
