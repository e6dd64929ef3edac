/*
 * Unit tests of the virtio-net RSC engine on plain memory
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "net/eth.h"
#include "standard-headers/linux/virtio_net.h"
#include "hw/virtio/virtio-net-rsc.h"
#include "../include/virtio-net-rsc-frames.h"
#include "virtio-net-rsc-unit.h"
#ifdef CONFIG_AVX2_OPT
#include "host/cpuinfo.h"
#endif

#define VHDR_LEN 12     /* backend vnet header in the vnet-header tests */
/* Description of one TCP segment to build. */
typedef struct Seg {
    bool v6;
    uint16_t sport;
    uint32_t seq;
    uint32_t ack;
    uint8_t flags;
    uint16_t win;
    uint16_t len;           /* payload bytes */
    bool ts;
    uint32_t tsval;
    uint32_t tsecr;
    uint8_t ttl;
    uint8_t tos;
    bool df;
    uint16_t pad;           /* Ethernet padding after the datagram */
    bool bad_csum;
    bool bad_ip_csum;       /* IPv4 header checksum */
    uint8_t vflags;         /* vnet header flags, if the frames have one */
} Seg;

/*
 * Build the frame of @s into @buf, after a vnet header of e->fake.vhl
 * bytes (flags @s->vflags).  Payload byte i is rsc_payload_byte(sport,
 * seq + i).
 */
static size_t build(Env *e, const Seg *s, uint8_t *buf)
{
    static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t src[6] = { 0x52, 0x54, 0x00, 0x65, 0x43, 0x21 };
    uint16_t sport = s->sport ? s->sport : 1000;
    RscSeg r = {
        .dst_mac = dst, .src_mac = src, .v6 = s->v6,
        .tos = s->tos, .ttl = s->ttl ? s->ttl : 64, .df = s->df,
        .ip_id = s->v6 ? 0 : 0x1234,
        .sport = sport, .dport = 80, .seq = s->seq, .ack = s->ack,
        .flags = s->flags ? s->flags : TCP_FLAG_ACK,
        .win = s->win ? s->win : 1000,
        .opts = rsc_seg_ts_opts, .opts_len = s->ts ? 12 : 0,
        .tsval = s->tsval, .tsecr = s->tsecr,
        .plen = s->len, .stream = sport, .pay_off = s->seq,
        .trailer = s->pad,
        .ip_csum_xor = s->bad_ip_csum ? 0x100 : 0,
        .tcp_csum_xor = s->bad_csum ? 1 : 0,
    };

    if (s->v6) {
        r.src_ip[0] = r.dst_ip[0] = 0x20;       /* 2000::1 -> 2000::2 */
        r.src_ip[15] = 1;
        r.dst_ip[15] = 2;
    } else {
        stl_be_p(r.src_ip, 0x0a000001);         /* 10.0.0.1 -> 10.0.0.2 */
        stl_be_p(r.dst_ip, 0x0a000002);
    }
    memset(buf, 0, e->fake.vhl);
    if (e->fake.vhl) {
        buf[0] = s->vflags;
    }
    return e->fake.vhl + rsc_seg_build(&r, buf + e->fake.vhl);
}

/* Offer the @len-byte frame @buf (after its vnet header) on @queue. */
static ssize_t rx_frame(Env *e, unsigned queue, const uint8_t *buf,
                        size_t len)
{
    return virtio_net_rsc_receive(e->chain, queue, buf, len, e->fake.vhl,
                                  NULL);
}

static ssize_t rx_queue(Env *e, unsigned queue, const Seg *s)
{
    uint8_t buf[70000];

    return rx_frame(e, queue, buf, build(e, s, buf));
}

static ssize_t rx(Env *e, const Seg *s)
{
    return rx_queue(e, 0, s);
}

static void flush(Env *e)
{
    virtio_net_rsc_flush_all(e->chain, NET_RSC_FLUSH_BURST);
}

/*
 * Check that @o is a valid TCP packet of @len payload bytes from @seq on,
 * whose payload matches the stream.
 */
static void check_pkt(const OutPkt *o, bool v6, uint32_t seq, uint32_t len)
{
    RscSegView v;

    g_assert_true(rsc_seg_parse(o->frame, o->len, &v));
    g_assert_cmpint(v.v6, ==, v6);
    g_assert_cmpuint(v.seq, ==, seq);
    g_assert_cmpuint(v.plen, ==, len);
    g_assert_true(rsc_seg_ip_csum_ok(o->frame, &v));
    g_assert_cmpint(rsc_payload_mismatch(o->frame + v.hdr_len, len, v.sport,
                                         seq), ==, -1);
}

/*
 * Check that @o is, byte for byte and with its vnet header, the unit the
 * device must make of the segments @s[0..n-1]: the reference of
 * tests/include/virtio-net-rsc-frames.h.
 */
static void check_unit(Env *e, const OutPkt *o, const Seg *s, unsigned n)
{
    g_autofree const uint8_t **segs = g_new(const uint8_t *, n);
    g_autofree size_t *lens = g_new(size_t, n);
    g_autofree uint8_t *exp = g_malloc(RSC_SEG_MAX_UNIT);
    g_autofree uint8_t *bufs = g_malloc((size_t)n * 70000);
    uint8_t vhdr[RSC_SEG_VHDR_LEN] = { 0 };
    size_t len;
    unsigned i;

    for (i = 0; i < n; i++) {
        uint8_t *b = bufs + (size_t)i * 70000;

        lens[i] = build(e, &s[i], b) - e->fake.vhl;
        segs[i] = b + e->fake.vhl;
    }
    len = rsc_unit_expect(segs, lens, n, exp, vhdr);
    g_assert_cmpuint(len, !=, 0);
    g_assert_true(o->coalesced);
    g_assert_cmpmem(o->frame, o->len, exp, len);
    g_assert_cmpuint(o->hdr.flags, ==, vhdr[0]);
    g_assert_cmpuint(o->hdr.gso_type, ==, vhdr[1]);
    g_assert_cmpuint(o->hdr.hdr_len, ==, lduw_le_p(vhdr + 2));
    g_assert_cmpuint(o->hdr.gso_size, ==, lduw_le_p(vhdr + 4));
    g_assert_cmpuint(o->hdr.csum_start, ==, lduw_le_p(vhdr + 6));
    g_assert_cmpuint(o->hdr.csum_offset, ==, lduw_le_p(vhdr + 8));
}

static void test_merge_basic(void)
{
    const Seg s[] = {
        { .seq = 100, .ack = 5, .len = 1000 },
        { .seq = 1100, .ack = 7, .len = 1000,
          .flags = TCP_FLAG_ACK | TCP_FLAG_PSH, .win = 2000, .ttl = 30 },
        { .seq = 2100, .ack = 7, .len = 1000, .win = 3000 },
    };
    Env *e = env_new(8, 0);
    const OutPkt *o;
    const uint8_t *tcp;
    RscSegView v;

    g_assert_cmpint(rx(e, &s[0]), >, 0);
    g_assert_cmpint(rx(e, &s[1]), >, 0);
    g_assert_cmpint(rx(e, &s[2]), >, 0);
    g_assert_cmpuint(e->fake.nout, ==, 0);
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 1);
    o = &e->fake.out[0];
    g_assert_true(o->coalesced);
    g_assert_cmpuint(o->hdr.flags, ==, VIRTIO_NET_HDR_F_NEEDS_CSUM |
                     VIRTIO_NET_HDR_F_RSC_INFO);
    g_assert_cmpuint(o->hdr.gso_type, ==, VIRTIO_NET_HDR_GSO_TCPV4);
    g_assert_cmpuint(o->hdr.gso_size, ==, 1000);
    g_assert_cmpuint(o->hdr.hdr_len, ==, 54);
    g_assert_cmpuint(o->hdr.csum_start, ==, 3);
    g_assert_cmpuint(o->hdr.csum_offset, ==, 0);
    g_assert_cmpuint(o->len, ==, 54 + 3000);
    check_pkt(o, false, 100, 3000);
    tcp = o->frame + 34;
    g_assert_cmpuint(ldl_be_p(tcp + 8), ==, 7);
    g_assert_cmpuint(lduw_be_p(tcp + 14), ==, 3000);
    g_assert_cmpuint(tcp[13], ==, TCP_FLAG_ACK | TCP_FLAG_PSH);
    g_assert_cmpuint(o->frame[14 + 8], ==, 30);
    g_assert_cmpuint(lduw_be_p(o->frame + 14 + 4), ==, 0x1234);
    /* pseudo-header checksum, not inverted */
    g_assert_true(rsc_seg_parse(o->frame, o->len, &v));
    g_assert_true(rsc_seg_tcp_csum_ok(o->frame, &v, true));
    check_unit(e, o, s, 3);
    env_free(e);
}

static void test_single_untouched(void)
{
    Env *e = env_new(8, 0);
    uint8_t buf[2000];
    Seg s = { .seq = 1, .len = 6, .pad = 10 };
    size_t len = build(e, &s, buf);

    g_assert_cmpint(rx(e, &s), ==, len);
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 1);
    g_assert_false(e->fake.out[0].coalesced);
    g_assert_cmpuint(e->fake.out[0].len, ==, len);
    g_assert_cmpmem(e->fake.out[0].frame, len, buf, len);
    env_free(e);
}

static void test_padding_not_copied(void)
{
    Env *e = env_new(8, 0);

    rx(e, &(Seg){ .seq = 0, .len = 4, .pad = 8 });
    rx(e, &(Seg){ .seq = 4, .len = 4, .pad = 8 });
    rx(e, &(Seg){ .seq = 8, .len = 4 });
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 1);
    g_assert_cmpuint(e->fake.out[0].len, ==, 54 + 12);
    check_pkt(&e->fake.out[0], false, 0, 12);
    env_free(e);
}

static void test_timestamps(void)
{
    const Seg s[] = {
        { .seq = 0, .len = 100, .ts = true, .tsval = 10, .tsecr = 3 },
        { .seq = 100, .len = 100, .ts = true, .tsval = 11, .tsecr = 4 },
    };
    Env *e = env_new(8, 0);
    const uint8_t *tcp;

    rx(e, &s[0]);
    rx(e, &s[1]);
    /* older timestamp: flush, starts a new unit */
    rx(e, &(Seg){ .seq = 200, .len = 100, .ts = true, .tsval = 9,
                  .tsecr = 4 });
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_cmpuint(e->fake.out[0].hdr.csum_start, ==, 2);
    g_assert_cmpuint(e->fake.out[0].hdr.hdr_len, ==, 66);
    check_pkt(&e->fake.out[0], false, 0, 200);
    tcp = e->fake.out[0].frame + 34;
    g_assert_cmpuint(ldl_be_p(tcp + 24), ==, 11);
    g_assert_cmpuint(ldl_be_p(tcp + 28), ==, 4);
    check_unit(e, &e->fake.out[0], s, 2);
    g_assert_false(e->fake.out[1].coalesced);
    check_pkt(&e->fake.out[1], false, 200, 100);
    env_free(e);
}

static void test_ipv6(void)
{
    const Seg s[] = {
        { .v6 = true, .seq = 0, .len = 500, .ttl = 9 },
        { .v6 = true, .seq = 500, .len = 500, .ttl = 7 },
    };
    Env *e = env_new(8, 0);

    rx(e, &s[0]);
    rx(e, &s[1]);
    /* a new traffic class ends the unit */
    rx(e, &(Seg){ .v6 = true, .seq = 1000, .len = 500, .tos = 4 });
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_cmpuint(e->fake.out[0].hdr.gso_type, ==,
                     VIRTIO_NET_HDR_GSO_TCPV6);
    g_assert_cmpuint(e->fake.out[0].frame[14 + 7], ==, 7);
    check_pkt(&e->fake.out[0], true, 0, 1000);
    check_unit(e, &e->fake.out[0], s, 2);
    check_pkt(&e->fake.out[1], true, 1000, 500);
    env_free(e);
}

/* A segment after one of 100 bytes at sequence 0, and whether it merges. */
static const struct {
    Seg second;
    bool merges;
} exception_cases[] = {
    { { .seq = 100, .len = 100 }, true },
    { { .seq = 101, .len = 100 }, false },                  /* gap */
    { { .seq = 0, .len = 100 }, false },                    /* retrans */
    { { .seq = 100, .len = 100, .ack = 0xffffffff }, false }, /* old ack */
    { { .seq = 100, .len = 100, .tos = 1 }, false },        /* ECN */
    { { .seq = 100, .len = 100, .df = true }, false },      /* DF */
    { { .seq = 100, .len = 100, .flags = TCP_FLAG_ACK | TCP_FLAG_ECE },
      false },
    { { .seq = 100, .len = 100, .ts = true }, false },      /* options */
    /* options, and the same TCP length as a segment without them */
    { { .seq = 100, .len = 88, .ts = true }, false },
    { { .seq = 100, .len = 101 }, false },                  /* > MSS */
    { { .seq = 100, .len = 100, .bad_csum = true }, false },
    { { .seq = 100, .len = 100, .bad_ip_csum = true }, false },
    { { .seq = 100, .len = 100, .flags = TCP_FLAG_ACK | TCP_FLAG_FIN },
      false },
    { { .seq = 100, .len = 100, .flags = TCP_FLAG_ACK | TCP_FLAG_URG },
      false },
};

static void test_exceptions(void)
{
    unsigned i;

    for (i = 0; i < ARRAY_SIZE(exception_cases); i++) {
        Env *e = env_new(8, 0);

        rx(e, &(Seg){ .seq = 0, .len = 100 });
        rx(e, &exception_cases[i].second);
        flush(e);
        if (exception_cases[i].merges) {
            g_assert_cmpuint(e->fake.nout, ==, 1);
        } else {
            /* the held unit first, then the other segment */
            g_assert_cmpuint(e->fake.nout, ==, 2);
            g_assert_false(e->fake.out[0].coalesced);
            check_pkt(&e->fake.out[0], false, 0, 100);
            g_assert_cmpuint(ldl_be_p(e->fake.out[1].frame + 38), ==,
                             exception_cases[i].second.seq);
        }
        env_free(e);
    }
}

/* The packets delivered to @e's guest for source port @sport, in order. */
static unsigned out_of_port(Env *e, unsigned iphl, uint16_t sport,
                            const OutPkt **pkts, unsigned max)
{
    unsigned i, n = 0;

    for (i = 0; i < e->fake.nout; i++) {
        const OutPkt *o = &e->fake.out[i];

        g_assert_cmpuint(o->len, >=, ETH_HLEN + iphl + 20);
        if (lduw_be_p(o->frame + ETH_HLEN + iphl) == sport) {
            g_assert_cmpuint(n, <, max);
            pkts[n++] = o;
        }
    }
    return n;
}

/*
 * The same exceptions in the middle of a run of one connection, for IPv4
 * and IPv6, with and without timestamps; without vnet headers and with
 * vnet headers without flags (checksums checked), and with DATA_VALID
 * vnet headers.  Alone, the run takes the engine's fast path from the
 * third segment on; interleaved with a second connection, whose segments
 * come before each of its own, every segment after the first two takes
 * the fast path through the hash lookup.
 */
static void test_exceptions_in_run(void)
{
    unsigned i, layout;

    for (layout = 0; layout < 24; layout++) {
        bool v6 = layout & 1, ts = layout & 2;
        bool has_vhdr = layout % 12 >= 4, valid = layout % 12 >= 8;
        bool interleaved = layout >= 12;
        uint8_t vflags = valid ? VIRTIO_NET_HDR_F_DATA_VALID : 0;
        unsigned iphl = v6 ? 40 : 20;

        for (i = 0; i < ARRAY_SIZE(exception_cases); i++) {
            Seg next = exception_cases[i].second;
            bool merges = exception_cases[i].merges ||
                          (valid && next.bad_csum) ||  /* not checked */
                          /* no DF, no header checksum in IPv6 */
                          (v6 && (next.df || next.bad_ip_csum));
            Env *e = env_new(8, 0);
            const OutPkt *a[2], *b[1];
            uint32_t seq;

            e->fake.vhl = has_vhdr ? VHDR_LEN : 0;
            for (seq = 0; seq < 400; seq += 100) {
                if (interleaved) {
                    rx(e, &(Seg){ .v6 = v6, .ts = ts, .sport = 2000,
                                  .seq = seq, .len = 100, .vflags = vflags });
                }
                if (seq < 300) {
                    rx(e, &(Seg){ .v6 = v6, .ts = ts, .seq = seq,
                                  .len = 100, .vflags = vflags });
                }
            }
            next.v6 = v6;
            next.ts = ts != next.ts;
            next.seq += 200;
            next.vflags = vflags;
            rx(e, &next);
            flush(e);
            if (interleaved) {
                /* the other connection: one unit of its four segments */
                g_assert_cmpuint(out_of_port(e, iphl, 2000, b, 1), ==, 1);
                g_assert_true(b[0]->coalesced);
                g_assert_cmpuint(b[0]->hdr.csum_start, ==, 4);
                check_pkt(b[0], v6, 0, 400);
            }
            g_assert_cmpuint(out_of_port(e, iphl, 1000, a, 2), ==,
                             merges ? 1 : 2);
            g_assert_true(a[0]->coalesced);
            if (merges) {
                g_assert_cmpuint(a[0]->hdr.csum_start, ==, 4);
                check_pkt(a[0], v6, 0, 400);
            } else {
                /* the held unit first, then the other segment */
                g_assert_cmpuint(a[0]->hdr.csum_start, ==, 3);
                check_pkt(a[0], v6, 0, 300);
                g_assert_cmpuint(ldl_be_p(a[1]->frame + ETH_HLEN + iphl + 4),
                                 ==, next.seq);
            }
            env_free(e);
        }
    }
}

static void test_pure_acks(void)
{
    Env *e = env_new(8, 0);

    rx(e, &(Seg){ .seq = 0, .len = 100, .ack = 1 });
    rx(e, &(Seg){ .seq = 100, .len = 100, .ack = 1 });
    /* window update: absorbed */
    rx(e, &(Seg){ .seq = 200, .ack = 1, .win = 5000 });
    g_assert_cmpuint(e->fake.nout, ==, 0);
    /* duplicate ACK: flush, then delivered alone */
    rx(e, &(Seg){ .seq = 200, .ack = 1, .win = 5000 });
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_true(e->fake.out[0].coalesced);
    g_assert_cmpuint(e->fake.out[0].hdr.csum_offset, ==, 0);
    g_assert_cmpuint(lduw_be_p(e->fake.out[0].frame + 34 + 14), ==, 5000);
    g_assert_true(e->fake.out[1].alone);
    env_free(e);
}

static void test_short_segment(void)
{
    Env *e = env_new(8, 0);

    rx(e, &(Seg){ .seq = 0, .len = 100 });
    rx(e, &(Seg){ .seq = 100, .len = 50 });
    g_assert_cmpuint(e->fake.nout, ==, 1);
    check_pkt(&e->fake.out[0], false, 0, 150);
    env_free(e);
}

static void test_size_limit(void)
{
    Env *e = env_new(8, 0);
    uint32_t seq = 0, total = 0;
    unsigned i;

    for (i = 0; i < 100; i++) {
        rx(e, &(Seg){ .seq = seq, .len = 1448 });
        seq += 1448;
    }
    flush(e);
    for (i = 0; i < e->fake.nout; i++) {
        const OutPkt *o = &e->fake.out[i];

        g_assert_cmpuint(o->len, <=, NET_RSC_MAX_FRAME);
        check_pkt(o, false, total, o->len - 54);
        total += o->len - 54;
    }
    g_assert_cmpuint(total, ==, seq);
    g_assert_cmpuint(e->fake.nout, ==, 3);
    env_free(e);

    /* the guest's buffers are the other limit */
    e = env_new(8, 0);
    e->fake.cap = 54 + 3000;
    for (i = 0, seq = 0; i < 10; i++) {
        rx(e, &(Seg){ .seq = seq, .len = 1000 });
        seq += 1000;
    }
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 4);
    env_free(e);
}

static void test_no_buffer(void)
{
    Env *e = env_new(8, 0);
    ssize_t r;

    e->fake.buffers = 1;
    g_assert_cmpint(rx(e, &(Seg){ .seq = 0, .len = 100, .sport = 1 }), >, 0);
    /* another connection needs a buffer: refused, the held unit goes */
    r = rx(e, &(Seg){ .seq = 0, .len = 100, .sport = 2 });
    g_assert_cmpint(r, ==, 0);
    g_assert_cmpuint(e->fake.nout, ==, 1);
    g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 0);
    e->fake.buffers = -1;
    g_assert_cmpint(rx(e, &(Seg){ .seq = 0, .len = 100, .sport = 2 }), >, 0);
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    check_pkt(&e->fake.out[1], false, 0, 100);
    env_free(e);
}

static void test_evict_oldest(void)
{
    Env *e = env_new(4, 0);
    unsigned i;

    for (i = 0; i < 6; i++) {
        rx(e, &(Seg){ .seq = 0, .len = 100, .sport = 10 + i });
    }
    g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 4);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_cmpuint(lduw_be_p(e->fake.out[0].frame + 34), ==, 10);
    g_assert_cmpuint(lduw_be_p(e->fake.out[1].frame + 34), ==, 11);
    env_free(e);
}

static void test_interleaved(void)
{
    Env *e = env_new(64, 0);
    unsigned i, c;

    for (i = 0; i < 4; i++) {
        for (c = 0; c < 64; c++) {
            rx(e, &(Seg){ .seq = i * 1000, .len = 1000, .sport = 2000 + c });
        }
    }
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 64);
    for (c = 0; c < 64; c++) {
        g_assert_cmpuint(e->fake.out[c].hdr.csum_start, ==, 4);
        check_pkt(&e->fake.out[c], false, 0, 4000);
    }
    env_free(e);
}

static void test_timer(void)
{
    Env *e = env_new(8, 1000);

    e->fake.now = 5000;
    rx(e, &(Seg){ .seq = 0, .len = 100, .sport = 1 });
    e->fake.now = 5500;
    rx(e, &(Seg){ .seq = 0, .len = 100, .sport = 2 });
    g_assert_cmpint(virtio_net_rsc_deadline(e->chain, 0), ==, 6000);
    g_assert_cmpint(virtio_net_rsc_expire(e->chain, 0, 5999), ==, 6000);
    g_assert_cmpuint(e->fake.nout, ==, 0);
    g_assert_cmpint(virtio_net_rsc_expire(e->chain, 0, 6000), ==, 6500);
    g_assert_cmpuint(e->fake.nout, ==, 1);
    g_assert_cmpint(virtio_net_rsc_expire(e->chain, 0, 7000), ==, -1);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    env_free(e);
}

/*
 * Each receive queue has its own flow table, limit, age list and
 * deadline: a connection seen on two queues (RSS changed its mind) builds
 * one unit per queue, and nothing done on one queue touches the other.
 */
static void test_multiqueue(void)
{
    Env *e = env_new_mq(2, 2, 1000);
    const OutPkt *o;

    e->fake.now = 1000;
    rx_queue(e, 0, &(Seg){ .seq = 0, .len = 100, .sport = 1 });
    rx_queue(e, 0, &(Seg){ .seq = 100, .len = 100, .sport = 1 });
    e->fake.now = 1500;
    /* in sequence with queue 0's unit, but on queue 1: a unit of its own */
    rx_queue(e, 1, &(Seg){ .seq = 200, .len = 100, .sport = 1 });
    rx_queue(e, 1, &(Seg){ .seq = 300, .len = 100, .sport = 1 });
    g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 2);
    g_assert_cmpuint(e->fake.nout, ==, 0);
    g_assert_cmpint(virtio_net_rsc_deadline(e->chain, 0), ==, 2000);
    g_assert_cmpint(virtio_net_rsc_deadline(e->chain, 1), ==, 2500);

    /* queue 1 full (2 flows): its oldest unit goes, queue 0's stays */
    rx_queue(e, 1, &(Seg){ .seq = 0, .len = 100, .sport = 2 });
    g_assert_cmpuint(e->fake.nout, ==, 0);
    rx_queue(e, 1, &(Seg){ .seq = 0, .len = 100, .sport = 3 });
    g_assert_cmpuint(e->fake.nout, ==, 1);
    o = &e->fake.out[0];
    g_assert_cmpuint(o->queue, ==, 1);
    g_assert_true(o->coalesced);
    g_assert_cmpuint(o->hdr.csum_start, ==, 2);
    check_pkt(o, false, 200, 200);
    g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 3);

    /* the timer of queue 0 flushes queue 0 only */
    g_assert_cmpint(virtio_net_rsc_expire(e->chain, 0, 2000), ==, -1);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    o = &e->fake.out[1];
    g_assert_cmpuint(o->queue, ==, 0);
    g_assert_cmpuint(o->hdr.csum_start, ==, 2);
    check_pkt(o, false, 0, 200);
    g_assert_cmpint(virtio_net_rsc_deadline(e->chain, 1), ==, 2500);

    /* flushing queue 1 delivers its two units, oldest first */
    virtio_net_rsc_flush_queue(e->chain, 1, NET_RSC_FLUSH_BURST);
    g_assert_cmpuint(e->fake.nout, ==, 4);
    g_assert_cmpuint(e->fake.out[2].queue, ==, 1);
    g_assert_cmpuint(lduw_be_p(e->fake.out[2].frame + 34), ==, 2);
    g_assert_cmpuint(e->fake.out[3].queue, ==, 1);
    g_assert_cmpuint(lduw_be_p(e->fake.out[3].frame + 34), ==, 3);
    g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 0);
    env_free(e);
}

/*
 * A GSO packet from the backend in the middle of a run, even one no
 * longer than the MSS, is never merged: the unit goes first, then the
 * packet with its segment count.
 */
/*
 * Offer @s (IPv4, no TCP options) as a GSO packet of the backend, with
 * NEEDS_CSUM and @gso_size, after a vnet header.
 */
static ssize_t rx_gso(Env *e, const Seg *s, uint16_t gso_size)
{
    uint8_t buf[70000];
    size_t len;

    g_assert(e->fake.vhl >= 10 && !s->v6 && !s->ts);
    len = build(e, s, buf);
    buf[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    buf[1] = VIRTIO_NET_HDR_GSO_TCPV4;
    stw_le_p(buf + 2, 54);
    stw_le_p(buf + 4, gso_size);
    return rx_frame(e, 0, buf, len);
}

static void test_backend_gso_in_run(void)
{
    Env *e = env_new(8, 0);
    uint32_t seq;

    e->fake.vhl = VHDR_LEN;
    for (seq = 0; seq < 300; seq += 100) {
        rx(e, &(Seg){ .seq = seq, .len = 100,
                      .vflags = VIRTIO_NET_HDR_F_DATA_VALID });
    }
    rx_gso(e, &(Seg){ .seq = 300, .len = 100 }, 100);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_true(e->fake.out[0].coalesced);
    g_assert_cmpuint(e->fake.out[0].hdr.csum_start, ==, 3);
    check_pkt(&e->fake.out[0], false, 0, 300);
    g_assert_true(e->fake.out[1].alone);
    g_assert_cmpuint(e->fake.out[1].hdr.gso_type, ==,
                     VIRTIO_NET_HDR_GSO_TCPV4);
    g_assert_cmpuint(e->fake.out[1].hdr.csum_start, ==, 1);
    env_free(e);
}

static void test_backend_flags_and_gso(void)
{
    Env *e = env_new(8, 0);

    e->fake.vhl = VHDR_LEN;
    /* DATA_VALID: a wrong checksum field is not looked at */
    rx(e, &(Seg){ .seq = 0, .len = 100, .bad_csum = true,
                  .vflags = VIRTIO_NET_HDR_F_DATA_VALID });
    rx(e, &(Seg){ .seq = 100, .len = 100, .bad_csum = true,
                  .vflags = VIRTIO_NET_HDR_F_DATA_VALID });
    /* a GSO packet from the backend: flushes, passes with RSC_INFO */
    rx_gso(e, &(Seg){ .seq = 200, .len = 3000 }, 1000);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_true(e->fake.out[0].coalesced);
    g_assert_cmpuint(e->fake.out[0].hdr.csum_start, ==, 2);
    g_assert_true(e->fake.out[1].alone);
    g_assert_true(e->fake.out[1].has_hdr);
    g_assert_cmpuint(e->fake.out[1].hdr.flags, ==,
                     VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO);
    g_assert_cmpuint(e->fake.out[1].hdr.csum_start, ==, 3);
    g_assert_cmpuint(e->fake.out[1].hdr.gso_size, ==, 1000);
    env_free(e);
}

/*
 * The engine validates TCP checksums itself (no vnet header flags): a
 * segment with a good checksum starts a unit (is held), one with a bad
 * checksum is delivered at once - for every payload length, odd or even,
 * and both IP versions.
 */
static void test_checksum_lengths(void)
{
    unsigned len, v6, bad;

    for (v6 = 0; v6 < 2; v6++) {
        for (len = 1; len <= 300; len++) {
            for (bad = 0; bad < 2; bad++) {
                Env *e = env_new(8, 0);

                rx(e, &(Seg){ .v6 = v6, .seq = 7, .len = len,
                              .bad_csum = bad, .ts = len & 1 });
                g_assert_cmpuint(e->fake.nout, ==, bad);
                g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, !bad);
                env_free(e);
            }
        }
    }
}

/*
 * Build the frame of @s at @buf (rx_queue()'s way), its payload filled
 * with @pattern (0: the stream's bytes; 1: all 0xff; 2: 16-bit words of
 * 0x0080, which the engine's AVX2 sum turns into its most negative lane
 * values), and its TCP checksum recomputed here, then spoiled by flipping
 * bit @bad - 1 of the segment's payload if @bad.  Returns the length.
 */
static size_t build_pattern(Env *e, const Seg *s, uint8_t *buf,
                            unsigned pattern, unsigned bad)
{
    size_t len = build(e, s, buf);
    uint8_t *p = buf + e->fake.vhl;
    RscSegView v;
    uint32_t sum, i;

    g_assert_true(rsc_seg_parse(p, len - e->fake.vhl, &v));
    g_assert_cmpuint(v.plen, ==, s->len);
    for (i = 0; pattern && i < v.plen; i++) {
        p[v.hdr_len + i] = pattern == 1 ? 0xff : (i & 1 ? 0x80 : 0);
    }
    rsc_put16(p + v.l4 + 16, 0);
    sum = rsc_csum_pseudo(p + v.l3, v.v6, v.end - v.l4);
    sum = rsc_csum_add(sum, p + v.l4, v.end - v.l4);
    rsc_put16(p + v.l4 + 16, ~rsc_csum_fold(sum));
    if (bad) {
        bad--;
        p[v.hdr_len + bad / 8 % v.plen] ^= 1 << bad % 8;
    }
    return len;
}

/*
 * Offer segments of @len payload bytes (IPv6 if @v6, with timestamps if
 * @ts) at @buf + @off: one with a payload bit wrong (delivered alone),
 * the same one right (parsed: starts a unit), then, when two fit in a
 * unit, the next one right (merged by the shortcut, rsc_fast()) and the
 * one after with a payload bit wrong (the shortcut and the parse both
 * refuse it).
 */
static void checksum_case(uint8_t *buf, unsigned len, bool v6, bool ts,
                          unsigned off)
{
    unsigned hlen = (v6 ? 40 : 20) + 20 + (ts ? 12 : 0);
    unsigned bit = (len * 7919u + v6) % (len * 8) + 1;
    unsigned pattern = len % 3;
    Seg s = { .v6 = v6, .seq = 7, .len = len, .ts = ts };
    Env *e = env_new(8, 0);
    size_t n;

    n = build_pattern(e, &s, buf + off, pattern, bit);
    g_assert_cmpint(rx_frame(e, 0, buf + off, n), ==, n);
    g_assert_cmpuint(env_stat(e, "bypass-checksum"), ==, 1);
    n = build_pattern(e, &s, buf + off, pattern, 0);
    g_assert_cmpint(rx_frame(e, 0, buf + off, n), ==, n);
    g_assert_cmpuint(env_stat(e, "bypass-checksum"), ==, 1);
    if (hlen + 2 * len <= 65535) {
        s.seq += len;
        n = build_pattern(e, &s, buf + 31 - off, pattern, 0);
        g_assert_cmpint(rx_frame(e, 0, buf + 31 - off, n), ==, n);
        g_assert_cmpuint(env_stat(e, "segments-merged"), ==, 1);
        s.seq += len;
        n = build_pattern(e, &s, buf + 31 - off, pattern, bit);
        g_assert_cmpint(rx_frame(e, 0, buf + 31 - off, n), ==, n);
        g_assert_cmpuint(env_stat(e, "bypass-checksum"), ==, 2);
        g_assert_cmpuint(env_stat(e, "segments-merged"), ==, 1);
    }
    env_free(e);
}

/*
 * The engine's TCP checksum sum against this test's own: both IP
 * versions, payloads of 1 to 1600 bytes, then to 9000 in steps, and the
 * largest; frames at every offset mod 32; three payload patterns.
 */
static void checksum_sweep(void)
{
    g_autofree uint8_t *buf = g_malloc(NET_RSC_MAX_FRAME + 64);
    unsigned len, v6, ts;

    for (len = 1; len <= 9000; len += len < 1600 ? 1 : 13) {
        for (v6 = 0; v6 < 2; v6++) {
            checksum_case(buf, len, v6, len & 1,
                          (len + len / 128 + v6 * 16) % 32);
        }
    }
    /* the largest frames: 65535 bytes of IP datagram (IPv6: of frame) */
    for (ts = 0; ts < 2; ts++) {
        checksum_case(buf, 65535 - 40 - 12 * ts, false, ts, 1 + ts);
        checksum_case(buf, 65535 + 14 - 74 - 12 * ts, true, ts, 2 + ts);
        checksum_case(buf, 32000 + ts, false, ts, ts);
    }
}

/* checksum_sweep() with whichever sum the host's CPU selects */
static void test_checksum_sweep(void)
{
#ifdef CONFIG_AVX2_OPT
    if (!(cpuinfo & CPUINFO_AVX2)) {
        g_test_message("this CPU has no AVX2: the portable sum is tested");
    }
#endif
    checksum_sweep();
}

/* checksum_sweep() with the portable sum, also where AVX2 would be used */
static void test_checksum_sweep_portable(void)
{
#ifdef CONFIG_AVX2_OPT
    unsigned saved = cpuinfo;

    cpuinfo &= ~CPUINFO_AVX2;
    checksum_sweep();
    cpuinfo = saved;
#else
    g_test_skip("built without CONFIG_AVX2_OPT: only the portable sum, "
                "tested by /virtio-net-rsc/checksum/sweep");
#endif
}

/* Every prefix of a valid frame, and corrupted length fields. */
static void test_truncation(void)
{
    uint8_t buf[2000], copy[2000];
    unsigned v6, cut;

    for (v6 = 0; v6 < 2; v6++) {
        Env *e = env_new(8, 0);
        size_t len = build(e, &(Seg){ .v6 = v6, .seq = 0, .len = 40,
                                      .ts = true }, buf);

        for (cut = 0; cut < len; cut++) {
            unsigned before = e->fake.nout;

            memcpy(copy, buf, cut);
            g_assert_cmpint(rx_frame(e, 0, copy, cut), ==, cut);
            g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 0);
            g_assert_cmpuint(e->fake.nout, ==, before + 1);
            g_assert_cmpmem(e->fake.out[before].frame,
                            e->fake.out[before].len, buf, cut);
        }
        env_free(e);
    }
}

/*
 * GRO rules: a segment with PSH ends a unit and never starts one, also
 * when the guest's buffers have no room for it in the unit (found by the
 * fuzz target: the segment started a unit, and the next one merged after
 * it, so that GSO would move its PSH).
 */
static void test_gro_push_no_room(void)
{
    Env *e = env_new(8, 0);

    virtio_net_rsc_configure(e->chain, NET_RSC_PROFILE_GRO, true, true);
    e->fake.cap = 54 + 2000;
    g_assert_cmpint(rx(e, &(Seg){ .seq = 100, .ack = 5, .len = 1000,
                                  .df = true }), >, 0);
    g_assert_cmpint(rx(e, &(Seg){ .seq = 1100, .ack = 5, .len = 1000,
                                  .df = true }), >, 0);
    g_assert_cmpint(rx(e, &(Seg){ .seq = 2100, .ack = 5, .len = 1000,
                                  .df = true,
                                  .flags = TCP_FLAG_ACK | TCP_FLAG_PSH }),
                    >, 0);
    /* the unit of two went out, then the pushed segment alone */
    g_assert_cmpuint(virtio_net_rsc_held(e->chain), ==, 0);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    g_assert_true(e->fake.out[0].coalesced);
    g_assert_cmpuint(e->fake.out[0].len, ==, 54 + 2000);
    g_assert_true(e->fake.out[1].alone);
    check_pkt(&e->fake.out[1], false, 2100, 1000);
    env_free(e);
}

/*
 * Insert an 8-byte IPv6 extension header of type @nh (PadN options) after
 * the IPv6 header of the @len-byte frame @buf from build(), which has room
 * for 8 more bytes.  The TCP checksum stays right.  Returns the new length.
 */
static size_t add_v6_ext(uint8_t *buf, size_t len, uint8_t nh)
{
    uint8_t *ip = buf + ETH_HLEN;

    memmove(ip + 48, ip + 40, len - ETH_HLEN - 40);
    memset(ip + 40, 0, 8);
    ip[40] = ip[6];
    ip[42] = 1;
    ip[43] = 4;
    ip[6] = nh;
    stw_be_p(ip + 4, lduw_be_p(ip + 4) + 8);
    return len + 8;
}

/*
 * GRO rules: extension headers merge only when identical, their types
 * included: destination options then hop-by-hop with the same bytes are
 * two units (found by the fuzz target: GSO turned the second segment's
 * hop-by-hop header into destination options).
 */
static void test_gro_v6_ext_type(void)
{
    Env *e = env_new(8, 0);
    uint8_t buf[2][2000];
    size_t len[2];
    unsigned i;

    virtio_net_rsc_configure(e->chain, NET_RSC_PROFILE_GRO, true, true);
    for (i = 0; i < 2; i++) {
        len[i] = build(e, &(Seg){ .v6 = true, .seq = 100 + i * 1000,
                                  .ack = 5, .len = 1000 }, buf[i]);
        len[i] = add_v6_ext(buf[i], len[i], i ? 0 : 60);
        g_assert_cmpint(virtio_net_rsc_receive(e->chain, 0, buf[i], len[i],
                                               0, NULL), ==, len[i]);
    }
    flush(e);
    g_assert_cmpuint(e->fake.nout, ==, 2);
    for (i = 0; i < 2; i++) {
        g_assert_false(e->fake.out[i].coalesced);
        g_assert_cmpmem(e->fake.out[i].frame, e->fake.out[i].len,
                        buf[i], len[i]);
    }
    env_free(e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-net-rsc/merge/basic", test_merge_basic);
    g_test_add_func("/virtio-net-rsc/merge/single-untouched",
                    test_single_untouched);
    g_test_add_func("/virtio-net-rsc/merge/padding-not-copied",
                    test_padding_not_copied);
    g_test_add_func("/virtio-net-rsc/merge/timestamps", test_timestamps);
    g_test_add_func("/virtio-net-rsc/merge/ipv6", test_ipv6);
    g_test_add_func("/virtio-net-rsc/merge/interleaved", test_interleaved);
    g_test_add_func("/virtio-net-rsc/exception/table", test_exceptions);
    g_test_add_func("/virtio-net-rsc/exception/in-run", test_exceptions_in_run);
    g_test_add_func("/virtio-net-rsc/exception/pure-acks", test_pure_acks);
    g_test_add_func("/virtio-net-rsc/flush/short-segment",
                    test_short_segment);
    g_test_add_func("/virtio-net-rsc/flush/size-limit", test_size_limit);
    g_test_add_func("/virtio-net-rsc/flush/timer", test_timer);
    g_test_add_func("/virtio-net-rsc/bounds/no-buffer", test_no_buffer);
    g_test_add_func("/virtio-net-rsc/bounds/evict-oldest", test_evict_oldest);
    g_test_add_func("/virtio-net-rsc/multiqueue/independent",
                    test_multiqueue);
    g_test_add_func("/virtio-net-rsc/backend/gso-in-run",
                    test_backend_gso_in_run);
    g_test_add_func("/virtio-net-rsc/backend/flags-and-gso",
                    test_backend_flags_and_gso);
    g_test_add_func("/virtio-net-rsc/hostile/truncation", test_truncation);
    g_test_add_func("/virtio-net-rsc/checksum/lengths",
                    test_checksum_lengths);
    g_test_add_func("/virtio-net-rsc/checksum/sweep", test_checksum_sweep);
    g_test_add_func("/virtio-net-rsc/checksum/sweep-portable",
                    test_checksum_sweep_portable);
    g_test_add_func("/virtio-net-rsc/gro/push-no-room",
                    test_gro_push_no_room);
    g_test_add_func("/virtio-net-rsc/gro/v6-ext-type",
                    test_gro_v6_ext_type);
    return g_test_run();
}
