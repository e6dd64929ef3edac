/*
 * libFuzzer's interface, as tests/unit/fuzz-virtio-net-rsc.c uses it
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer ships no C header: these are the functions it calls in the
 * target (LLVMFuzzerInitialize, LLVMFuzzerTestOneInput and the custom
 * mutators) and the one it offers to them (LLVMFuzzerMutate).
 */

#ifndef TESTS_UNIT_FUZZ_VIRTIO_NET_RSC_H
#define TESTS_UNIT_FUZZ_VIRTIO_NET_RSC_H

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1,
                                 const uint8_t *data2, size_t size2,
                                 uint8_t *out, size_t max_out_size,
                                 unsigned int seed);

#endif
