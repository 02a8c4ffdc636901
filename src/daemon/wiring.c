/* Module settings from certfleet.conf. */
#include "daemon/wiring.h"

#include <stdlib.h>
#include <string.h>

int
cf_daemon_store_open(cf_store **out, const cf_config *cfg, cf_err *err)
{
	char *uri = cf_config_store_uri(cfg);
	int rc;

	*out = NULL;
	if (uri == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "registry");
	rc = cf_store_open(out, uri, err);
	free(uri);
	if (rc == CF_OK)
		rc = cf_store_set_durable(*out, strcmp(cfg->store_sync, "full") == 0, err);
	if (rc != CF_OK) {
		cf_store_close(*out);
		*out = NULL;
	}
	return rc;
}

int
cf_daemon_authority_open(cf_authority **out, cf_store *store, const cf_config *cfg, cf_err *err)
{
	cf_authority_config ac;
	char *pass = cf_config_path(cfg, cfg->ca_passphrase_file);
	int rc;

	if (pass == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "authority");
	memset(&ac, 0, sizeof(ac));
	ac.data_dir = cfg->data_dir;
	ac.ca_passphrase_file = pass;
	cf_pki_profile_init(&ac.profile);
	ac.profile.days = (int)cfg->cert_days;
	ac.profile.backdate_seconds = (int)cfg->cert_backdate;
	ac.profile.crl_url = cfg->crl_url;
	ac.profile.ocsp_url = cfg->ocsp_url;
	cf_pki_key_policy_init(&ac.key_policy);
	ac.key_policy.rsa_min_bits = (unsigned int)cfg->key_min_rsa_bits;
	ac.default_policy = cfg->default_policy;
	rc = cf_authority_new(out, store, &ac, err);
	free(pass);
	return rc;
}

void
cf_daemon_rotation_config(cf_rotation_config *out, const cf_config *cfg)
{
	cf_rotation_config_init(out);
	out->topic_prefix = cfg->topic_prefix;
	out->resend_interval = cfg->rotation_resend_interval;
	out->deadline = cfg->rotation_deadline;
	out->grace = cfg->rotation_grace;
	out->rekey = cfg->rotation_rekey != 0;
	out->key_type = cfg->rotation_key_type[0] != '\0' ? cfg->rotation_key_type : NULL;
	out->csr_max = (unsigned int)cfg->rotation_csr_max;
}
