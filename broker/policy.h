/*
 * Policies at the broker: the policy documents attached to a certificate
 * (cf_store_policy_validate() gives their form), compiled once, and the
 * decision for each CONNECT, PUBLISH, SUBSCRIBE and delivery. Pure: no
 * broker, no store; unit-tested in tests/unit/broker/test_policy.c.
 *
 * The rules (docs/broker.md):
 * - a statement applies when it names the action (or "*"); its resources
 *   are MQTT topic filters in which ${clientid} and ${thing} stand for the
 *   client's id and its certificate's thing;
 * - a matching "deny" statement wins over any "allow";
 * - publish and receive: the topic must match an allowed filter and no
 *   denied one;
 * - subscribe: the requested filter (a shared subscription's "$share/GROUP/"
 *   taken off) must be covered by one allowed filter, that is every topic
 *   it can match must match the allowed filter, and it must not overlap
 *   any denied filter. So "management/topic/dev-1/csr_req" allows exactly
 *   that subscription; "management/topic/#" or "management/topic/+/csr_req"
 *   is refused for the same device, since they reach other devices' topics;
 * - connect: the registry decides (an ACTIVE certificate whose thing is the
 *   client id); a policy can only forbid it, by a "deny" statement whose
 *   resource matches the client id;
 * - a filter whose first level is a wildcard never allows a topic that
 *   starts with '$' (MQTT 4.7.2); a denied one still denies it;
 * - a variable whose value is empty or holds '/', '+' or '#' would widen
 *   the filter: an allow with it matches nothing and a deny with it
 *   matches everything (names in the registry never hold them anyway).
 */
#ifndef CF_BROKER_POLICY_H
#define CF_BROKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

typedef enum cf_broker_action {
	CF_BROKER_CONNECT = 1,
	CF_BROKER_PUBLISH = 2,
	CF_BROKER_SUBSCRIBE = 4,
	CF_BROKER_RECEIVE = 8,
} cf_broker_action;

typedef struct cf_broker_policy cf_broker_policy; /* opaque */

/*
 * Compile the union of n policy documents into *out, released with
 * cf_broker_policy_free(). n may be 0: a policy that allows nothing.
 * CF_EINVAL (err->msg names the document and the problem), CF_ENOMEM.
 */
int cf_broker_policy_compile(cf_broker_policy **out, const char *const *documents, size_t n,
			     cf_err *err);

void cf_broker_policy_free(cf_broker_policy *policy);

/*
 * Whether the client may do action on topic: a topic name for publish and
 * receive, a topic filter for subscribe, the client id for connect. NULL
 * policy: nothing is allowed but connect.
 */
bool cf_broker_policy_allows(const cf_broker_policy *policy, cf_broker_action action,
			     const char *topic, const char *client_id, const char *thing);

/*
 * The topic filter algebra (match, cover, overlap, ${...} expansion) is the
 * store's: cf_store_topic_* in store/store.h.
 */

#endif
