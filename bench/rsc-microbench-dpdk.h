/*
 * DPDK's GRO library on the frames of the RSC engine microbenchmark
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef RSC_MICROBENCH_DPDK_H
#define RSC_MICROBENCH_DPDK_H

#define DPDK_GRO_MAX_FRAMES 256

/*
 * Wrap @n frames, @stride bytes apart from @frames on, in mbufs: each
 * starts @skip bytes in and is @len bytes of Ethernet/IPv4/TCP with
 * @l3_len bytes of IP header and @l4_len of TCP header.  Untimed.
 */
void dpdk_gro_load(uint8_t *frames, size_t stride, unsigned n, size_t skip,
                   size_t len, unsigned l3_len, unsigned l4_len);

/*
 * Merge the @n frames loaded last, as DPDK's GRO does in lightweight mode,
 * in receive bursts of 128.  Returns the number of packets left after
 * merging.  Frames are changed: load them again before the next run.
 */
unsigned dpdk_gro_run(unsigned n);

/* The version of DPDK's headers, "22.11.11" say. */
const char *dpdk_gro_version(void);

#endif
