# cf_build: the compile flags every certfleet target links to.
add_library(cf_build INTERFACE)
target_compile_definitions(cf_build INTERFACE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
	OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED)
target_compile_options(cf_build INTERFACE
	-Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wshadow -Wvla
	-Wpointer-arith -Wcast-qual -Wwrite-strings -Wundef -Wnull-dereference
	-fno-common)
if(CF_WERROR)
	target_compile_options(cf_build INTERFACE -Werror)
endif()
if(CF_SANITIZE)
	target_compile_options(cf_build INTERFACE -fsanitize=address,undefined
		-fno-sanitize-recover=undefined -fno-omit-frame-pointer)
	target_link_options(cf_build INTERFACE -fsanitize=address,undefined)
endif()
option(CF_FUZZ "Build libFuzzer targets in fuzz/ (needs CC=clang)" OFF)
if(CF_FUZZ)
	# Coverage for every library the fuzz targets reach, not only the targets.
	target_compile_options(cf_build INTERFACE -fsanitize=fuzzer-no-link)
endif()
