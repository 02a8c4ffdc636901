/* broker/map.c: the plugin's string-keyed hash map (map.h). */
#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct cf_broker_map_slot {
	char *key; /* NULL: free */
	void *value;
};

/* FNV-1a: keys are certificate ids (uniform hex) and names; any mix will do. */
static size_t
hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return (size_t)h;
}

/* The slot holding key, or the free slot where it would go. cap must be > n. */
static cf_broker_map_slot *
probe(const cf_broker_map *map, const char *key)
{
	size_t i;

	for (i = hash(key) & (map->cap - 1);; i = (i + 1) & (map->cap - 1)) {
		if (map->slots[i].key == NULL || strcmp(map->slots[i].key, key) == 0)
			return &map->slots[i];
	}
}

void *
cf_broker_map_get(const cf_broker_map *map, const char *key)
{
	if (map->cap == 0)
		return NULL;
	return probe(map, key)->value;
}

/* Double the table and put every slot again. */
static int
grow(cf_broker_map *map)
{
	cf_broker_map bigger = { NULL, map->cap != 0 ? map->cap * 2 : 256, map->n };
	size_t i;

	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return CF_ENOMEM;
	for (i = 0; i < map->cap; i++) {
		if (map->slots[i].key != NULL)
			*probe(&bigger, map->slots[i].key) = map->slots[i];
	}
	free(map->slots);
	*map = bigger;
	return CF_OK;
}

int
cf_broker_map_put(cf_broker_map *map, const char *key, void *value)
{
	cf_broker_map_slot *slot;

	if ((map->n + 1) * 2 > map->cap && grow(map) != CF_OK)
		return CF_ENOMEM;
	slot = probe(map, key);
	if (slot->key == NULL) {
		slot->key = strdup(key);
		if (slot->key == NULL)
			return CF_ENOMEM;
		map->n++;
	}
	slot->value = value;
	return CF_OK;
}

void
cf_broker_map_each(const cf_broker_map *map, void (*fn)(const char *key, void *value,
							  void *payload),
		   void *payload)
{
	size_t i;

	for (i = 0; i < map->cap; i++) {
		if (map->slots[i].key != NULL)
			fn(map->slots[i].key, map->slots[i].value, payload);
	}
}

void
cf_broker_map_clear(cf_broker_map *map, void (*free_value)(void *value))
{
	size_t i;

	for (i = 0; i < map->cap; i++) {
		free(map->slots[i].key);
		if (map->slots[i].key != NULL && free_value != NULL)
			free_value(map->slots[i].value);
	}
	free(map->slots);
	memset(map, 0, sizeof(*map));
}
