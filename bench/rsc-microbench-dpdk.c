/*
 * DPDK's GRO library on the frames of the RSC engine microbenchmark
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Issue 5 asks the engine to cost less per segment than DPDK's GRO
 * (librte_gro, Debian's librte-gro23).  Rather than compare with a figure
 * measured elsewhere, bench/rsc-microbench.c runs DPDK's GRO beside the
 * engine, on the same frames, in the same repetition.  This file is the
 * only one that sees DPDK's headers (libdpdk-dev's, unpacked by
 * scripts/microbench.sh); the QEMU side sees the two functions of
 * rsc-microbench-dpdk.h.
 *
 * DPDK's "lightweight mode" is used: rte_gro_reassemble_burst() merges
 * within one receive burst of at most RTE_GRO_MAX_BURST_ITEM_NUM (128)
 * packets, with a table on its stack that it scans linearly, and chains
 * the payloads of merged packets as mbuf segments (no copy).  The mbufs
 * are plain structures around the frames: GRO never allocates or frees.
 */

#include <rte_config.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_gro.h>
#include <rte_version.h>
#include "rsc-microbench-dpdk.h"

static struct rte_mbuf mbufs[DPDK_GRO_MAX_FRAMES];
static struct rte_mbuf *pkts[DPDK_GRO_MAX_FRAMES];

void dpdk_gro_load(uint8_t *frames, size_t stride, unsigned n, size_t skip,
                   size_t len, unsigned l3_len, unsigned l4_len)
{
    unsigned i;

    for (i = 0; i < n && i < DPDK_GRO_MAX_FRAMES; i++) {
        struct rte_mbuf *m = &mbufs[i];

        memset(m, 0, sizeof(*m));
        m->buf_addr = frames + i * stride;
        m->buf_len = stride;
        m->data_off = skip;
        m->data_len = len;
        m->pkt_len = len;
        m->nb_segs = 1;
        m->packet_type = RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 |
                         RTE_PTYPE_L4_TCP;
        m->l2_len = RTE_ETHER_HDR_LEN;
        m->l3_len = l3_len;
        m->l4_len = l4_len;
        pkts[i] = m;
    }
}

unsigned dpdk_gro_run(unsigned n)
{
    const struct rte_gro_param param = {
        .gro_types = RTE_GRO_TCP_IPV4,
        .max_flow_num = RTE_GRO_MAX_BURST_ITEM_NUM,
        .max_item_per_flow = RTE_GRO_MAX_BURST_ITEM_NUM,
    };
    unsigned i, out = 0;

    n = RTE_MIN(n, DPDK_GRO_MAX_FRAMES);
    for (i = 0; i < n; i += RTE_GRO_MAX_BURST_ITEM_NUM) {
        out += rte_gro_reassemble_burst(pkts + i,
                                        RTE_MIN(n - i,
                                                RTE_GRO_MAX_BURST_ITEM_NUM),
                                        &param);
    }
    return out;
}

const char *dpdk_gro_version(void)
{
    static char version[32];

    snprintf(version, sizeof(version), "%d.%02d.%d", RTE_VER_YEAR,
             RTE_VER_MONTH, RTE_VER_MINOR);
    return version;
}
