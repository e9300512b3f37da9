# The fuzz targets: tests/fuzz/NAME.c defines LLVMFuzzerTestOneInput and
# tests/fuzz/corpus/NAME/ holds its corpus. Shared by the libFuzzer build
# (tests/fuzz/CMakeLists.txt) and the corpus replay tests (replay.cmake).
set(CFS_FUZZ_TARGETS oci-json tar-layer image-read dump-read mount-options
  record-read toc chunked-write)
