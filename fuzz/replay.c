/*
 * Without libFuzzer: run LLVMFuzzerTestOneInput over every file of the
 * directories (or files) given, the way libFuzzer replays a corpus. ctest
 * runs the committed corpora through the fuzz targets this way, under
 * ASan and UBSan.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX (4 * 1024 * 1024)

static int
replay_file(const char *path)
{
	char *data = NULL;
	size_t len = 0;

	if (cf_file_read(&data, &len, path, REPLAY_MAX, NULL) != CF_OK) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	free(data);
	return 0;
}

static int
replay_dir(const char *dir, size_t *count)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	char *path;
	int failed = 0;

	if (d == NULL)
		return replay_file(dir) == 0 ? (++*count, 0) : 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path = cf_path_join(dir, de->d_name);
		if (path == NULL) {
			failed = 1;
			break;
		}
		failed |= replay_file(path);
		(*count)++;
		free(path);
	}
	closedir(d);
	return failed;
}

int
main(int argc, char **argv)
{
	size_t count = 0;
	int i, failed = 0;

	for (i = 1; i < argc; i++)
		failed |= replay_dir(argv[i], &count);
	printf("replayed %zu inputs\n", count);
	return failed || count == 0;
}
