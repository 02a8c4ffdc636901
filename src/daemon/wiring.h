/*
 * wiring: the modules' settings made from certfleet.conf, in one place for
 * certfleetd, the certfleet CLI and the simulator's provisioning.
 */
#ifndef CF_DAEMON_WIRING_H
#define CF_DAEMON_WIRING_H

#include "authority/authority.h"
#include "daemon/config.h"
#include "rotation/rotation.h"
#include "store/store.h"
#include "util/util.h"

/*
 * Open cfg's registry read-write with cfg's durability (store_sync): the
 * one way certfleetd, the CLI and the simulator open it.
 */
int cf_daemon_store_open(cf_store **out, const cf_config *cfg, cf_err *err);

/* An authority over store with cfg's profile, key policy and CA passphrase file. */
int cf_daemon_authority_open(cf_authority **out, cf_store *store, const cf_config *cfg,
			     cf_err *err);

/*
 * The rotation engine's settings from cfg. The strings point into cfg:
 * keep cfg alive until the engine is made (it copies them).
 */
void cf_daemon_rotation_config(cf_rotation_config *out, const cf_config *cfg);

#endif
