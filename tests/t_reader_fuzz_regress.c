/*
 * t_reader_fuzz_regress - replays every input in tests/fuzz/regress/ (crash
 * reproducers and a sample of fuzzer-found inputs) through both fuzz
 * harnesses, built into this ordinary test (checksums enforced), so a fixed
 * crash stays fixed without clang or libFuzzer.  A crash or sanitizer
 * report fails the test (run it under `make SAN=asan` too).
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define LLVMFuzzerTestOneInput fuzz_reader_one
#include "../tests/fuzz/fuzz_reader.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_stream_one
#include "../tests/fuzz/fuzz_stream.c"
#undef LLVMFuzzerTestOneInput

int main(void)
{
	const char *dir = "tests/fuzz/regress";
	DIR *d = opendir(dir);
	if (!d)
		SKIP("%s not found (run from the source tree)", dir);
	struct dirent *e;
	unsigned n = 0;
	static uint8_t buf[1 << 20];
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		CHECK(f, "open %s", path);
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		fuzz_reader_one(buf, len);
		fuzz_stream_one(buf, len);
		n++;
	}
	closedir(d);
	printf("ok: %u inputs replayed through the reader and stream harnesses\n", n);
	return 0;
}
