/*
 * A string-keyed hash map for the broker plugin: certificate ids to index
 * entries, client ids to sessions, policy sets to compiled policies.
 * Open addressing with linear probing, kept under half full; keys are
 * copied, values are the caller's. No removal: every table of the plugin
 * only grows with the fleet (an entry changes state instead).
 */
#ifndef CF_BROKER_MAP_H
#define CF_BROKER_MAP_H

#include <stddef.h>

typedef struct cf_broker_map_slot cf_broker_map_slot; /* opaque */

typedef struct cf_broker_map {
	cf_broker_map_slot *slots; /* NULL until the first put */
	size_t cap, n;
} cf_broker_map;

#define CF_BROKER_MAP_INIT { NULL, 0, 0 }

/* The value stored under key, or NULL. */
void *cf_broker_map_get(const cf_broker_map *map, const char *key);

/* Store value under key, replacing what was there. CF_ENOMEM (the map is unchanged). */
int cf_broker_map_put(cf_broker_map *map, const char *key, void *value);

/* Call fn for every value (in no particular order). */
void cf_broker_map_each(const cf_broker_map *map, void (*fn)(const char *key, void *value,
							      void *payload),
			void *payload);

/* Free the keys, and every value with free_value unless it is NULL. */
void cf_broker_map_clear(cf_broker_map *map, void (*free_value)(void *value));

#endif
