/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * TCP/IP frames for the virtio-net RSC tests: builder, parser, checker
 *
 * One description of a TCP segment (RscSeg) becomes an Ethernet frame
 * with IPv4 or IPv6 and TCP headers, options and payload; a received
 * frame is read back with rsc_seg_parse(); rsc_unit_expect() is the
 * reference for the packet the device makes of a list of segments
 * (docs/system/devices/virtio-net-rsc.rst, "what the guest sees").
 *
 * Used by the qtest, the unit test, the fuzz target and the benchmarks.
 * Header only, no glib and no QEMU code beyond qemu/osdep.h, which the
 * includer includes first.  The checksums are computed here rather than
 * with net/checksum.c, so that a test does not share a bug with the code
 * under test.
 */

#ifndef TESTS_VIRTIO_NET_RSC_FRAMES_H
#define TESTS_VIRTIO_NET_RSC_FRAMES_H

#include "standard-headers/linux/virtio_net.h"

#define RSC_SEG_ETH_HLEN    14
#define RSC_SEG_VLAN_HLEN   4
#define RSC_SEG_IP4_HLEN    20
#define RSC_SEG_IP6_HLEN    40
#define RSC_SEG_HBH_LEN     8       /* the IPv6 hop-by-hop header built */
#define RSC_SEG_TCP_HLEN    20
#define RSC_SEG_VHDR_LEN    10      /* struct virtio_net_hdr */
#define RSC_SEG_MAX_UNIT    65549   /* the largest unit: 65535 + 14 */

#define RSC_SEG_TCP_PSH     0x08

/* NOP, NOP, timestamp (values filled from RscSeg): the usual options. */
static const uint8_t rsc_seg_ts_opts[12] = { 1, 1, 8, 10 };

/* A TCP segment to build. */
typedef struct RscSeg {
    const uint8_t *dst_mac;     /* 6 bytes, NULL: zeros */
    const uint8_t *src_mac;     /* 6 bytes, NULL: zeros */
    bool vlan;                  /* an 802.1Q tag with @vlan_tci */
    uint16_t vlan_tci;
    bool v6;
    uint8_t src_ip[16];         /* IPv4: the first 4 bytes */
    uint8_t dst_ip[16];
    uint8_t tos;                /* IPv4 TOS / IPv6 traffic class, ECN */
    uint8_t ttl;                /* TTL / hop limit */
    uint32_t flow;              /* IPv6 flow label */
    bool df;
    uint16_t frag;              /* IPv4 MF and fragment offset */
    uint16_t ip_id;
    uint8_t ip_opts_len;        /* IPv4 option bytes: NOPs, then EOL */
    bool hbh;                   /* IPv6 hop-by-hop header (PadN) */
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;              /* TCP flags */
    bool ns;                    /* the NS/AE bit next to the data offset */
    uint16_t win, urg;
    const uint8_t *opts;        /* TCP options, @opts_len bytes */
    uint8_t opts_len;           /* a multiple of 4, at most 40 */
    uint32_t tsval, tsecr;      /* into the timestamp option of @opts */
    uint8_t doff;               /* data offset in words, 0: computed */
    uint32_t plen;              /* payload bytes */
    const uint8_t *payload;     /* @plen bytes, NULL: the pattern below */
    uint32_t stream;            /* pattern: rsc_payload_byte(stream, */
    uint32_t pay_off;           /*          pay_off + i) */
    size_t trailer;             /* bytes after the IP datagram */
    uint8_t trailer_byte;
    uint16_t ip_csum_xor;       /* spoil the IPv4 header checksum */
    uint16_t tcp_csum_xor;      /* spoil the TCP checksum */
} RscSeg;

/* A TCP/IP frame as read by rsc_seg_parse(). */
typedef struct RscSegView {
    bool v6;
    bool vlan;
    size_t l3;                  /* offset of the IP header */
    size_t l4;                  /* offset of the TCP header */
    size_t hdr_len;             /* offset of the payload */
    size_t end;                 /* end of the IP datagram */
    uint32_t plen;              /* payload bytes, by the IP length */
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t win;
    uint8_t ttl;
    int ts;                     /* offset of TSval in the frame, or -1 */
} RscSegView;

static inline void rsc_put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static inline void rsc_put32(uint8_t *p, uint32_t v)
{
    rsc_put16(p, v >> 16);
    rsc_put16(p + 2, v);
}

static inline uint16_t rsc_get16(const uint8_t *p)
{
    return p[0] << 8 | p[1];
}

static inline uint32_t rsc_get32(const uint8_t *p)
{
    return (uint32_t)rsc_get16(p) << 16 | rsc_get16(p + 2);
}

/* --- checksums ---------------------------------------------------------- */

/* Add @len bytes at @p, as big-endian 16-bit words, to @sum. */
static inline uint32_t rsc_csum_add(uint32_t sum, const uint8_t *p,
                                    size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i += 2) {
        sum += (p[i] << 8) | p[i + 1];
    }
    if (len & 1) {
        sum += p[len - 1] << 8;
    }
    return sum;
}

/* Fold @sum to 16 bits (not inverted). */
static inline uint16_t rsc_csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

/* The sum of the TCP pseudo header; @l3 points to the IP header. */
static inline uint32_t rsc_csum_pseudo(const uint8_t *l3, bool v6,
                                       uint32_t tcp_len)
{
    uint32_t sum = 6 + (tcp_len >> 16) + (tcp_len & 0xffff);

    return v6 ? rsc_csum_add(sum, l3 + 8, 32) : rsc_csum_add(sum, l3 + 12, 8);
}

/* The checksum field value of the IPv4 header @ip of @hlen bytes. */
static inline uint16_t rsc_csum_ip4(const uint8_t *ip, size_t hlen)
{
    uint32_t sum = rsc_csum_add(0, ip, 10);

    sum = rsc_csum_add(sum, ip + 12, hlen - 12);
    return ~rsc_csum_fold(sum);
}

/* --- building ----------------------------------------------------------- */

/* The payload byte at offset @off of stream @stream. */
static inline uint8_t rsc_payload_byte(uint32_t stream, uint32_t off)
{
    uint32_t x = (off + 1) * 0x9e3779b1u ^ (stream + 1) * 0x85ebca6bu;

    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

/* Offset of the timestamp values in the TCP options @o/@len, or -1. */
static inline int rsc_ts_offset(const uint8_t *o, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (o[i] == 0) {
            break;
        }
        if (o[i] == 1) {
            i++;
            continue;
        }
        if (i + 1 >= len || o[i + 1] < 2 || i + o[i + 1] > len) {
            break;
        }
        if (o[i] == 8 && o[i + 1] == 10) {
            return i + 2;
        }
        i += o[i + 1];
    }
    return -1;
}

static inline size_t rsc_seg_l3(const RscSeg *s)
{
    return RSC_SEG_ETH_HLEN + (s->vlan ? RSC_SEG_VLAN_HLEN : 0);
}

static inline size_t rsc_seg_ip_hlen(const RscSeg *s)
{
    return s->v6 ? RSC_SEG_IP6_HLEN + (s->hbh ? RSC_SEG_HBH_LEN : 0)
                 : RSC_SEG_IP4_HLEN + s->ip_opts_len;
}

/* Ethernet, IP and TCP header bytes of @s. */
static inline size_t rsc_seg_hdr_len(const RscSeg *s)
{
    return rsc_seg_l3(s) + rsc_seg_ip_hlen(s) + RSC_SEG_TCP_HLEN +
           s->opts_len;
}

/* The whole frame: headers, payload and trailer. */
static inline size_t rsc_seg_len(const RscSeg *s)
{
    return rsc_seg_hdr_len(s) + s->plen + s->trailer;
}

/*
 * Write the headers of @s to @p (rsc_seg_hdr_len() bytes): Ethernet, IP
 * with its header checksum, TCP with options and a checksum field of 0
 * (rsc_seg_put_tcp_csum() fills it in).  Returns the header length.
 */
static inline size_t rsc_seg_put_headers(const RscSeg *s, uint8_t *p)
{
    size_t l3 = rsc_seg_l3(s), ip_len = rsc_seg_ip_hlen(s);
    size_t tcp_len = RSC_SEG_TCP_HLEN + s->opts_len;
    size_t hl = l3 + ip_len + tcp_len, i;
    uint32_t dgram = ip_len + tcp_len + s->plen;
    uint8_t *ip = p + l3, *tcp = ip + ip_len;
    int ts;

    memset(p, 0, hl);
    if (s->dst_mac) {
        memcpy(p, s->dst_mac, 6);
    }
    if (s->src_mac) {
        memcpy(p + 6, s->src_mac, 6);
    }
    if (s->vlan) {
        rsc_put16(p + 12, 0x8100);
        rsc_put16(p + 14, s->vlan_tci);
    }
    rsc_put16(p + l3 - 2, s->v6 ? 0x86dd : 0x0800);

    if (s->v6) {
        rsc_put32(ip, 6u << 28 | (uint32_t)s->tos << 20 | (s->flow & 0xfffff));
        rsc_put16(ip + 4, dgram - RSC_SEG_IP6_HLEN);
        ip[6] = s->hbh ? 0 : 6;
        ip[7] = s->ttl;
        memcpy(ip + 8, s->src_ip, 16);
        memcpy(ip + 24, s->dst_ip, 16);
        if (s->hbh) {
            /* next header TCP, length 0, PadN of 4 bytes */
            ip[40] = 6;
            ip[42] = 1;
            ip[43] = 4;
        }
    } else {
        ip[0] = 0x40 | (ip_len / 4);
        ip[1] = s->tos;
        rsc_put16(ip + 2, dgram);
        rsc_put16(ip + 4, s->ip_id);
        rsc_put16(ip + 6, (s->df ? 0x4000 : 0) | s->frag);
        ip[8] = s->ttl;
        ip[9] = 6;
        memcpy(ip + 12, s->src_ip, 4);
        memcpy(ip + 16, s->dst_ip, 4);
        for (i = RSC_SEG_IP4_HLEN; i < ip_len; i++) {
            ip[i] = i + 1 < ip_len ? 1 : 0;     /* NOPs, then EOL */
        }
        rsc_put16(ip + 10, rsc_csum_ip4(ip, ip_len) ^ s->ip_csum_xor);
    }

    rsc_put16(tcp, s->sport);
    rsc_put16(tcp + 2, s->dport);
    rsc_put32(tcp + 4, s->seq);
    rsc_put32(tcp + 8, s->ack);
    tcp[12] = (s->doff ? s->doff : tcp_len / 4) << 4 | (s->ns ? 1 : 0);
    tcp[13] = s->flags;
    rsc_put16(tcp + 14, s->win);
    rsc_put16(tcp + 18, s->urg);
    if (s->opts_len) {
        memcpy(tcp + RSC_SEG_TCP_HLEN, s->opts, s->opts_len);
    }
    ts = rsc_ts_offset(tcp + RSC_SEG_TCP_HLEN, s->opts_len);
    if (ts >= 0) {
        rsc_put32(tcp + RSC_SEG_TCP_HLEN + ts, s->tsval);
        rsc_put32(tcp + RSC_SEG_TCP_HLEN + ts + 4, s->tsecr);
    }
    return hl;
}

/*
 * Fill in the TCP checksum of the frame @p of @s, whose headers are
 * written; @payload_sum is rsc_csum_add(0, payload, s->plen), computed
 * once by callers that send the same payload again and again.
 */
static inline void rsc_seg_put_tcp_csum(const RscSeg *s, uint8_t *p,
                                        uint32_t payload_sum)
{
    size_t l3 = rsc_seg_l3(s), l4 = l3 + rsc_seg_ip_hlen(s);
    size_t tcp_len = RSC_SEG_TCP_HLEN + s->opts_len;
    uint32_t sum;

    sum = rsc_csum_pseudo(p + l3, s->v6, tcp_len + s->plen);
    sum = rsc_csum_add(sum, p + l4, tcp_len);
    sum = rsc_csum_fold(sum) + rsc_csum_fold(payload_sum);
    rsc_put16(p + l4 + 16, (~rsc_csum_fold(sum) & 0xffff) ^ s->tcp_csum_xor);
}

/* Build the frame of @s into @p (rsc_seg_len() bytes); returns its length. */
static inline size_t rsc_seg_build(const RscSeg *s, uint8_t *p)
{
    size_t hl = rsc_seg_put_headers(s, p);
    uint8_t *pay = p + hl;
    uint32_t i;

    if (s->payload) {
        memcpy(pay, s->payload, s->plen);
    } else {
        for (i = 0; i < s->plen; i++) {
            pay[i] = rsc_payload_byte(s->stream, s->pay_off + i);
        }
    }
    memset(pay + s->plen, s->trailer_byte, s->trailer);
    rsc_seg_put_tcp_csum(s, p, rsc_csum_add(0, pay, s->plen));
    return hl + s->plen + s->trailer;
}

/* --- reading ------------------------------------------------------------ */

/*
 * Read the Ethernet II (or 802.1Q), IPv4 or IPv6 (with at most a
 * hop-by-hop header) and TCP headers of the @len-byte frame @p.  False
 * unless they are whole and the IP length lies within the frame.
 */
static inline bool rsc_seg_parse(const uint8_t *p, size_t len,
                                 RscSegView *v)
{
    uint16_t type;
    uint32_t l4_len;
    const uint8_t *ip, *tcp;

    memset(v, 0, sizeof(*v));
    v->ts = -1;
    if (len < RSC_SEG_ETH_HLEN) {
        return false;
    }
    v->l3 = RSC_SEG_ETH_HLEN;
    type = rsc_get16(p + 12);
    if (type == 0x8100 && len >= RSC_SEG_ETH_HLEN + RSC_SEG_VLAN_HLEN) {
        v->vlan = true;
        v->l3 += RSC_SEG_VLAN_HLEN;
        type = rsc_get16(p + 16);
    }
    ip = p + v->l3;
    if (type == 0x0800) {
        if (len < v->l3 + RSC_SEG_IP4_HLEN || ip[9] != 6 ||
            (ip[0] & 0xf) < 5) {
            return false;
        }
        v->l4 = v->l3 + (ip[0] & 0xf) * 4;
        v->end = v->l3 + rsc_get16(ip + 2);
        v->ttl = ip[8];
    } else if (type == 0x86dd) {
        if (len < v->l3 + RSC_SEG_IP6_HLEN) {
            return false;
        }
        v->v6 = true;
        v->l4 = v->l3 + RSC_SEG_IP6_HLEN;
        if (ip[6] == 0 && len >= v->l4 + 2 && p[v->l4] == 6) {
            v->l4 += (p[v->l4 + 1] + 1) * 8;
        } else if (ip[6] != 6) {
            return false;
        }
        v->end = v->l3 + RSC_SEG_IP6_HLEN + rsc_get16(ip + 4);
        v->ttl = ip[7];
    } else {
        return false;
    }
    if (len < v->l4 + RSC_SEG_TCP_HLEN || v->end > len ||
        v->end < v->l4 + RSC_SEG_TCP_HLEN) {
        return false;
    }
    tcp = p + v->l4;
    v->hdr_len = v->l4 + (tcp[12] >> 4) * 4;
    if ((tcp[12] >> 4) < 5 || v->hdr_len > v->end) {
        return false;
    }
    l4_len = v->end - v->l4;
    v->plen = l4_len - (v->hdr_len - v->l4);
    v->sport = rsc_get16(tcp);
    v->dport = rsc_get16(tcp + 2);
    v->seq = rsc_get32(tcp + 4);
    v->ack = rsc_get32(tcp + 8);
    v->flags = tcp[13];
    v->win = rsc_get16(tcp + 14);
    v->ts = rsc_ts_offset(tcp + RSC_SEG_TCP_HLEN,
                          v->hdr_len - v->l4 - RSC_SEG_TCP_HLEN);
    if (v->ts >= 0) {
        v->ts += v->l4 + RSC_SEG_TCP_HLEN;
    }
    return true;
}

/* Is the IPv4 header checksum of the parsed frame @p right (IPv6: yes)? */
static inline bool rsc_seg_ip_csum_ok(const uint8_t *p, const RscSegView *v)
{
    return v->v6 ||
           rsc_csum_fold(rsc_csum_add(0, p + v->l3, v->l4 - v->l3)) == 0xffff;
}

/*
 * Does the TCP checksum field of the parsed frame @p hold what it must:
 * the full checksum, or with @pseudo (a coalesced packet, NEEDS_CSUM) the
 * sum of the pseudo header alone?
 */
static inline bool rsc_seg_tcp_csum_ok(const uint8_t *p, const RscSegView *v,
                                       bool pseudo)
{
    uint32_t len = v->end - v->l4;
    uint32_t sum = rsc_csum_pseudo(p + v->l3, v->v6, len);

    if (pseudo) {
        return rsc_get16(p + v->l4 + 16) == rsc_csum_fold(sum);
    }
    return rsc_csum_fold(rsc_csum_add(sum, p + v->l4, len)) == 0xffff;
}

/*
 * The index of the first of @len payload bytes at @p that is not
 * rsc_payload_byte(@stream, @off + i), or -1 when all are.
 */
static inline long rsc_payload_mismatch(const uint8_t *p, uint32_t len,
                                        uint32_t stream, uint32_t off)
{
    uint32_t i;

    for (i = 0; i < len; i++) {
        if (p[i] != rsc_payload_byte(stream, off + i)) {
            return i;
        }
    }
    return -1;
}

/*
 * The packet the device must deliver, under the RSC_EXT rule profile, for
 * a unit of the @n segments @seg[i] (@len[i] bytes each, in order, all of
 * one connection, whole TCP/IP frames; pure ACKs among them are window
 * updates it absorbed):
 * the first segment's headers with the IP length of the whole, the
 * minimum TTL / hop limit, a fresh IPv4 header checksum, PSH of any
 * segment, ACK, window and timestamps of the last, and the pseudo-header
 * sum in the TCP checksum field; then every payload in order, without
 * padding.  Written to @out (room for RSC_SEG_MAX_UNIT bytes), its length
 * returned; its virtio-net header (10 bytes, little endian, RSC_INFO with
 * the segment count) in @vhdr.  Returns 0 if a segment does not parse or
 * the unit would not fit.
 */
static inline size_t rsc_unit_expect(const uint8_t *const *seg,
                                     const size_t *len, unsigned n,
                                     uint8_t *out, uint8_t *vhdr)
{
    RscSegView first, last, v;
    uint32_t total = 0, count = 0;
    uint8_t ttl = 255, flags;
    uint8_t *tcp;
    size_t hl;
    unsigned i;

    memset(vhdr, 0, RSC_SEG_VHDR_LEN);
    if (!n || !rsc_seg_parse(seg[0], len[0], &first)) {
        return 0;
    }
    hl = first.hdr_len;
    memcpy(out, seg[0], hl);
    flags = first.flags;
    last = first;
    for (i = 0; i < n; i++) {
        if (!rsc_seg_parse(seg[i], len[i], &v) ||
            hl + total + v.plen > RSC_SEG_MAX_UNIT) {
            return 0;
        }
        last = v;
        ttl = MIN(ttl, v.ttl);
        flags |= v.flags & RSC_SEG_TCP_PSH;
        if (v.plen) {
            memcpy(out + hl + total, seg[i] + v.hdr_len, v.plen);
            total += v.plen;
            count++;
        }
    }
    if (first.v6) {
        rsc_put16(out + first.l3 + 4,
                  hl - first.l3 - RSC_SEG_IP6_HLEN + total);
        out[first.l3 + 7] = ttl;
    } else {
        rsc_put16(out + first.l3 + 2, hl - first.l3 + total);
        out[first.l3 + 8] = ttl;
        rsc_put16(out + first.l3 + 10,
                  rsc_csum_ip4(out + first.l3, first.l4 - first.l3));
    }
    tcp = out + first.l4;
    rsc_put32(tcp + 8, last.ack);
    tcp[13] = flags;
    rsc_put16(tcp + 14, last.win);
    if (first.ts >= 0 && last.ts >= 0) {
        memcpy(out + first.ts, seg[n - 1] + last.ts, 8);
    }
    rsc_put16(tcp + 16, rsc_csum_fold(rsc_csum_pseudo(out + first.l3,
                                                      first.v6,
                                                      hl - first.l4 + total)));

    vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO;
    vhdr[1] = first.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    vhdr[2] = hl;
    vhdr[3] = hl >> 8;
    vhdr[4] = first.plen;
    vhdr[5] = first.plen >> 8;
    vhdr[6] = count;
    vhdr[7] = count >> 8;
    return hl + total;
}

#endif
