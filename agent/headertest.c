/* Compiles include/certfleet/agent.h alone, as C99 -pedantic -Werror. */
#include "certfleet/agent.h"

int cf_agent_headertest(void);

int
cf_agent_headertest(void)
{
	cf_agent_config cfg;

	cf_agent_config_init(&cfg);
	return cfg.key_type == CF_AGENT_KEY_EC_P256 ? 0 : 1;
}
