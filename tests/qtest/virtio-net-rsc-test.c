/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-net receive segment coalescing (RSC)
 *
 * Every test is named after the rule of docs/system/devices/virtio-net-rsc.rst
 * it checks, and is the frames it sends and the packets it expects; the
 * fixture (virtio-net-rsc-utils.c) starts QEMU with the device, drives it
 * like the Windows netkvm driver through a socketpair or a tap backend,
 * and checks every byte the guest receives.  Rules that one connection
 * shows with a few segments are rows of a table of cases (see ConnCase).
 *
 * Each test runs with 64 KiB receive buffers, and where the table says so
 * also with mergeable 4 KiB buffers and through a tap backend with vnet
 * headers in a private network namespace (skipped, with the reason, where
 * no tap can be made).
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include "qemu/bswap.h"
#include "qobject/qnum.h"
#include "virtio-net-rsc-utils.h"

/* --- scaffolding --------------------------------------------------------- */

/*
 * Send @n frames in one burst, check that nothing is delivered before the
 * interval has passed, step the clock and check the expectations.
 */
static void send_hold_expire(RscTest *t, Frame **f, unsigned n)
{
    send_frames(t, f, n);
    clock_step(t, RSC_INTERVAL - 1);
    assert_idle(t, "units are held until rsc_interval has passed");
    clock_step(t, 1);
    check_expected(t);
}

/*
 * Check the expectations; they must be delivered without a clock step
 * (flushed by the frame that arrived, not by the timer).
 */
static void check_now(RscTest *t)
{
    backend_sync(t);
    t->wait_us = 2 * G_USEC_PER_SEC;
    check_expected_full(t, true);
    t->wait_us = 0;
}

/* Step over the interval and check the expectations. */
static void expire_and_check(RscTest *t)
{
    clock_step(t, RSC_INTERVAL - 1);
    assert_idle(t, "units are held until rsc_interval has passed");
    clock_step(t, 1);
    check_expected(t);
}

/*
 * Hold a unit of three segments on each connection of @c[0..n-1], sent
 * in one burst, and expect the units.
 */
static void hold_units(RscTest *t, Conn **c, unsigned n)
{
    g_autofree Frame **f = g_new(Frame *, 3 * n);
    g_autofree Frame **all = g_new(Frame *, 3 * n);
    unsigned i, j;

    for (i = 0; i < n; i++) {
        segs(t, c[i], f + 3 * i, 3, MSS);
    }
    for (j = 0; j < 3; j++) {
        for (i = 0; i < n; i++) {
            all[j * n + i] = f[3 * i + j];
        }
    }
    send_frames(t, all, 3 * n);
    assert_idle(t, "the units are held");
    for (i = 0; i < n; i++) {
        expect_unit(t, f + 3 * i, 3);
    }
}

/*
 * Have a unit of @c delivered at once (its last segment is short), and
 * leave it in the used ring, not yet read by the guest.
 */
static void deliver_unread(RscTest *t, Conn *c)
{
    Frame *f[3];

    segs(t, c, f, 2, MSS);
    f[2] = seg(t, c, 700);
    expect_unit(t, f, 3);
    send_frames(t, f, 3);
    backend_sync(t);
}

/*
 * The packet of the last expectation may come at once or only when the
 * timer fires (a unit that is held, in a burst checked with check_now()).
 */
static void expect_later(RscTest *t)
{
    ((Expect *)g_queue_peek_tail(&t->expect))->flexible = true;
}

/*
 * Send three mergeable segments of @c, then @x (built by the caller):
 * expect the unit of the three, then @x alone, both without waiting for
 * the timer.
 */
static void flush_then_alone(RscTest *t, Frame **f, Frame *x)
{
    Frame *all[4] = { f[0], f[1], f[2], x };

    expect_unit(t, f, 3);
    expect_frame(t, x);
    send_frames(t, all, 4);
    check_now(t);
}

/* --- merge: what may be merged ----------------------------------------- */

/* Segments without any TCP option merge. */
static void test_merge_no_options(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3], *g[3];

    conn_set_opts(c, NULL, 0);
    conn_set_opts(c6, NULL, 0);
    segs(t, c, f, 3, 1460);
    segs(t, c6, g, 3, 1440);
    expect_unit(t, f, 3);
    expect_unit(t, g, 3);
    send_frames(t, f, 3);
    send_hold_expire(t, g, 3);
}

/* Equal ECN codepoints (ECT(0)) merge, IPv4 and IPv6. */
static void test_merge_ecn_equal(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3], *g[3];

    c->tos = 0x28 | ECN_ECT0;
    c6->tos = ECN_ECT0;
    segs(t, c, f, 3, MSS);
    segs(t, c6, g, 3, MSS);
    expect_unit(t, f, 3);
    expect_unit(t, g, 3);
    send_frames(t, f, 3);
    send_hold_expire(t, g, 3);
}

/*
 * Bytes after the IP datagram (Ethernet padding, trailers) are never
 * copied into a unit, also when the first frame is padded; a frame
 * delivered alone keeps them.
 */
static void test_merge_padding_not_copied(RscTest *t, const void *arg)
{
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, false);
    Conn *c = conn_new(t, true);
    Frame *f[9];

    a->trailer = 6;
    segs(t, a, f, 3, 100);
    conn_set_opts(b, NULL, 0);
    b->trailer = 4;     /* 56-byte frames padded to 60 */
    segs(t, b, f + 3, 3, 2);
    c->trailer = 8;
    f[6] = seg(t, c, MSS);
    c->trailer = 0;
    f[7] = seg(t, c, MSS);
    c->trailer = 3;
    f[8] = seg(t, c, MSS);
    expect_unit(t, f, 3);
    expect_unit(t, f + 3, 3);
    expect_unit(t, f + 6, 3);
    send_hold_expire(t, f, 9);
}

/* --- hdr: the coalesced packet's headers ------------------------------- */

/*
 * A held segment that was never merged goes out byte for byte as it came
 * in, with an all-zero vnet header and no RSC_INFO.
 */
static void test_hdr_single_untouched(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[2];

    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c6, 1000);
    expect_frames(t, f, 2);
    send_hold_expire(t, f, 2);
    assert_stat(t, "units-delivered", ==, 0);
    assert_stat(t, "frames-uncoalesced", ==, 2);
}

/* --- limit: the unit stays a legal packet ------------------------------ */

/*
 * Segments that fill a unit exactly to the limit (IPv4 total length 65535,
 * or a 65549-byte IPv6 frame) are all merged; the last, shorter one ends
 * the unit.
 */
static void test_limit_exact(RscTest *t, const void *arg)
{
    bool v6 = *(const bool *)arg;
    Conn *c = conn_new(t, v6);
    uint32_t room = MAX_FRAME - ETH_HLEN - (v6 ? IP6_HLEN : IP4_HLEN) - 32;
    Frame *f[66];

    segs(t, c, f, 65, 1000);
    f[65] = seg(t, c, room - 65000);
    expect_unit(t, f, 66);
    send_frames(t, f, 66);
    check_now(t);
}

/*
 * With receive buffers too small for any unit, every segment still
 * reaches the guest, untouched and in order.
 */
static void test_limit_small_buffers(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f[6];

    segs(t, c, f, 6, MSS);
    expect_frames(t, f, 6);
    send_frames(t, f, 6);
    clock_step(t, RSC_INTERVAL);
    check_expected(t);
}

/* --- exception: what ends a unit ------------------------------------------ */

/*
 * A SYN is delivered alone at once; it does not flush another
 * connection's unit.
 */
static void test_exception_syn(RscTest *t, const void *arg)
{
    static const uint8_t syn_opts[] = {
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7,
    };
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, false);
    Conn *b6 = conn_new(t, true);
    Frame *f[3], *syn[2];

    segs(t, a, f, 3, MSS);
    send_frames(t, f, 3);
    conn_set_opts(b, syn_opts, sizeof(syn_opts));
    b->flags = TCP_SYN;
    b->ack = 0;
    syn[0] = tcp_frame(t, b, 0, 0);
    conn_set_opts(b6, syn_opts, sizeof(syn_opts));
    b6->flags = TCP_SYN | TCP_ACK;
    syn[1] = tcp_frame(t, b6, 0, 0);
    expect_frames(t, syn, 2);
    send_frames(t, syn, 2);
    check_now(t);
    expect_unit(t, f, 3);
    expire_and_check(t);
}

/* --- pure-ack ---------------------------------------------------------- */

/* A pure ACK with no unit held is delivered at once, untouched. */
static void test_pure_ack_no_unit(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[2];

    f[0] = seg(t, c, 0);
    f[1] = seg(t, c6, 0);
    expect_frames(t, f, 2);
    send_frames(t, f, 2);
    check_now(t);
}

/* --- bypass: never merged, delivered untouched ---------------------------- */

static void ip4_fix_csum(Frame *f)
{
    uint8_t *ip = f->data + f->l3;

    stw_be_p(ip + 10, rsc_csum_ip4(ip, MAX((ip[0] & 0xf) * 4, IP4_HLEN)));
}

/* Frames that are not TCP/IP are delivered at once, untouched. */
static void test_bypass_not_tcpip(RscTest *t, const void *arg)
{
    uint8_t arp[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t udp[14 + 20 + 8 + 20] = { 0 };
    uint8_t icmp6[14 + 40 + 8] = { 0 };
    uint8_t other[60] = { 0 };
    Frame *f[4];

    memcpy(arp + 6, peer_mac, 6);
    stw_be_p(arp + 12, ETH_P_ARP);
    stl_be_p(arp + 14, 0x00010800);
    stl_be_p(arp + 18, 0x06040001);

    memcpy(udp, guest_mac, 6);
    stw_be_p(udp + 12, ETH_P_IP);
    udp[14] = 0x45;
    stw_be_p(udp + 16, 48);
    udp[22] = 64;
    udp[23] = 17;
    udp[26] = 10;
    udp[29] = 1;
    udp[30] = 10;
    udp[33] = 2;
    stw_be_p(udp + 24, rsc_csum_ip4(udp + 14, 20));
    stw_be_p(udp + 34, 40000);
    stw_be_p(udp + 36, 5001);
    stw_be_p(udp + 38, 28);

    memcpy(icmp6, guest_mac, 6);
    stw_be_p(icmp6 + 12, ETH_P_IPV6);
    icmp6[14] = 0x60;
    stw_be_p(icmp6 + 18, 8);
    icmp6[20] = 58;
    icmp6[21] = 64;
    icmp6[54] = 128;

    memcpy(other, guest_mac, 6);
    stw_be_p(other + 12, 0x88b5);
    memset(other + 14, 0xa5, sizeof(other) - 14);

    f[0] = raw_frame(t, arp, sizeof(arp));
    f[1] = raw_frame(t, udp, sizeof(udp));
    f[2] = raw_frame(t, icmp6, sizeof(icmp6));
    f[3] = raw_frame(t, other, sizeof(other));
    expect_frames(t, f, 4);
    send_frames(t, f, 4);
    check_now(t);
    assert_stat(t, "bypass-not-tcpip", ==, 4);
}

/*
 * Malformed or truncated frames are delivered untouched, never dropped
 * and never read past their end.
 */
static void test_bypass_malformed(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    uint8_t one = 0x42;
    Frame *f[32], *whole, *whole6;
    unsigned n = 0;

    /* IPv4 total length beyond the frame */
    f[n] = seg(t, c, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 2, lduw_be_p(f[n]->data + 16) + 100);
    ip4_fix_csum(f[n++]);
    /* IPv4 total length shorter than the IP and TCP headers */
    f[n] = seg(t, c, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 2, 30);
    ip4_fix_csum(f[n++]);
    /* IHL 4 */
    f[n] = seg(t, c, MSS);
    f[n]->data[f[n]->l3] = 0x44;
    ip4_fix_csum(f[n++]);
    /* version 6 in an IPv4 ethertype */
    f[n] = seg(t, c, MSS);
    f[n]->data[f[n]->l3] = 0x65;
    ip4_fix_csum(f[n++]);
    /* TCP data offset 4 */
    c->doff = 4;
    f[n++] = seg(t, c, MSS);
    /* TCP data offset beyond the segment */
    c->doff = 15;
    f[n++] = seg(t, c, 10);
    c->doff = 0;
    /* IPv6 payload length beyond the frame */
    f[n] = seg(t, c6, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 4, MSS + 32 + 100);
    n++;
    /* IPv6 payload length shorter than the TCP header */
    f[n] = seg(t, c6, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 4, 10);
    n++;
    /* truncated headers */
    whole = seg(t, c, MSS);
    whole6 = seg(t, c6, MSS);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + 10);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + IP4_HLEN);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + IP4_HLEN + 10);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + IP4_HLEN + 30);
    f[n++] = raw_frame(t, whole6->data, ETH_HLEN + 30);
    f[n++] = raw_frame(t, whole6->data, ETH_HLEN + IP6_HLEN + 12);
    f[n++] = raw_frame(t, whole->data, 13);
    f[n++] = raw_frame(t, &one, 1);
    expect_frames(t, f, n);
    send_frames(t, f, n);
    check_now(t);
}

/* --- order: per connection, nothing overtakes a held unit --------------- */

/*
 * A frame of a connection with a unit held is delivered after that unit,
 * whatever path it takes.  Unless @flexible, the unit of another
 * connection (same addresses, other ports) must stay held; otherwise it
 * may be flushed with it.
 */
typedef struct OrderCase {
    void (*spoil)(Conn *c);
    bool flexible;
} OrderCase;

static void test_order_after_unit(RscTest *t, const void *arg)
{
    const OrderCase *k = arg;
    bool flexible = k->flexible;
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, false);
    Frame *f[3], *g[2], *x;

    segs(t, b, g, 2, MSS);
    send_frames(t, g, 2);
    segs(t, a, f, 3, MSS);
    k->spoil(a);
    x = seg(t, a, MSS);
    if (flexible) {
        /* the device may flush more than the connection's unit */
        expect_unit(t, g, 2);
        ((Expect *)g_queue_peek_tail(&t->expect))->flexible = true;
    }
    flush_then_alone(t, f, x);
    if (!flexible) {
        expect_unit(t, g, 2);
    }
    expire_and_check(t);
}

static void spoil_ip_options(Conn *c)
{
    c->ip_opts_len = 4;
}

static void spoil_fragment(Conn *c)
{
    c->df = true;
    c->frag = IP_MF;
}

static void spoil_data_offset(Conn *c)
{
    c->doff = 4;
}

static void spoil_fin(Conn *c)
{
    c->flags = TCP_ACK | TCP_FIN;
}

/* --- timer ------------------------------------------------------------- */

/*
 * Each unit is delivered rsc_interval after its first segment arrived:
 * not a nanosecond earlier, not later.
 */
static void test_timer_interval(RscTest *t, const void *arg)
{
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, true);
    Frame *f[2], *g[2];

    segs(t, a, f, 2, MSS);
    send_frames(t, f, 2);
    clock_step(t, 400000);
    segs(t, b, g, 2, MSS);
    send_frames(t, g, 2);
    clock_step(t, RSC_INTERVAL - 400000 - 1);
    assert_idle(t, "the first unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, f, 2);
    check_expected(t);
    clock_step(t, 400000 - 1);
    assert_idle(t, "the second unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, g, 2);
    check_expected(t);
    assert_stat(t, "flush-timer", ==, 2);
}

/*
 * A unit waits at most rsc_interval after its first segment, however
 * late later segments joined; segments in gaps shorter than the interval
 * (as HLK sends them) are bridged into the unit.
 */
static void test_timer_gaps(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f[4];
    unsigned i;

    for (i = 0; i < 4; i++) {
        f[i] = seg(t, c, MSS);
        send1(t, f[i]);
        if (i < 3) {
            clock_step(t, 300000);
        }
    }
    clock_step(t, RSC_INTERVAL - 900000 - 1);
    assert_idle(t, "the unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, f, 4);
    check_expected(t);
}

/* Without rsc_interval the device waits 300000 ns. */
static void test_timer_default_interval(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f[3];

    segs(t, c, f, 3, MSS);
    send_frames(t, f, 3);
    clock_step(t, RSC_DEFAULT_INTERVAL - 1);
    assert_idle(t, "the unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, f, 3);
    check_expected(t);
}

/* --- burst: rsc_interval=0 --------------------------------------------- */

/*
 * rsc_interval=0: units are delivered when the receive burst ends, with
 * no clock step; the next burst makes new units.
 */
static void test_burst_end(RscTest *t, const void *arg)
{
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, true);
    Frame *f[10], *g[8];
    unsigned i;

    segs(t, a, f, 5, MSS);
    expect_unit(t, f, 5);
    send_frames(t, f, 5);
    check_expected(t);
    segs(t, a, f + 5, 5, MSS);
    for (i = 0; i < 4; i++) {
        g[2 * i] = f[5 + i];
        g[2 * i + 1] = seg(t, b, 1000);
    }
    g[7] = f[9];
    send_frames(t, g, 8);
    g[0] = g[1];
    g[1] = g[3];
    g[2] = g[5];
    expect_unit(t, f + 5, 5);
    expect_unit(t, g, 3);
    check_expected(t);
    assert_stat(t, "flush-burst-end", ==, 3);
    assert_stat(t, "flush-timer", ==, 0);
}

/* rsc_interval=0: a burst of one segment delivers it untouched. */
static void test_burst_single(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f = seg(t, c, MSS);

    expect_frame(t, f);
    send1(t, f);
    check_expected(t);
}

/* --- flows ------------------------------------------------------------- */

/*
 * 64 connections (32 IPv4, 32 IPv6), segments interleaved round robin:
 * one unit per connection.
 */
static void test_flows_interleaved(RscTest *t, const void *arg)
{
    enum { NCONN = 64, NSEG = 6 };
    Conn *c[NCONN];
    Frame *f[NCONN][NSEG];
    g_autofree Frame **all = g_new(Frame *, NCONN * NSEG);
    unsigned i, j, n = 0;

    for (i = 0; i < NCONN; i++) {
        c[i] = conn_new(t, i & 1);
    }
    for (j = 0; j < NSEG; j++) {
        for (i = 0; i < NCONN; i++) {
            c[i]->tsval += j;
            f[i][j] = seg(t, c[i], 1000 + i * 7);
            all[n++] = f[i][j];
        }
    }
    for (i = 0; i < NCONN; i++) {
        expect_unit(t, f[i], NSEG);
    }
    send_hold_expire(t, all, n);
    assert_stat(t, "units-delivered", ==, NCONN);
    assert_stat(t, "flush-evict", ==, 0);
}

/*
 * With the flow table full (rsc_max_flows=4), a new connection flushes
 * the oldest unit.
 */
static void test_flows_evict_oldest(RscTest *t, const void *arg)
{
    Frame *f[5][2];
    unsigned i;

    for (i = 0; i < 5; i++) {
        Conn *c = conn_new(t, i == 2);

        segs(t, c, f[i], 2, MSS);
        send_frames(t, f[i], 2);
        if (i < 4) {
            clock_step(t, 1000);
        }
    }
    expect_unit(t, f[0], 2);
    check_now(t);
    assert_stat(t, "flush-evict", ==, 1);
    for (i = 1; i < 5; i++) {
        expect_unit(t, f[i], 2);
    }
    clock_step(t, RSC_INTERVAL);
    check_expected(t);
}

/*
 * Memory is bounded by the flow table whatever the traffic: 960 new
 * connections with the default table (64 flows) evict the oldest units,
 * delivered at once and untouched; the newest 64 wait for the timer.
 */
static void test_flows_table_bounded(RscTest *t, const void *arg)
{
    enum { NCONN = 960, NFLOWS = 64 };
    g_autofree Frame **f = g_new(Frame *, NCONN);
    unsigned i;

    for (i = 0; i < NCONN; i++) {
        f[i] = seg(t, conn_new(t, false), MSS);
    }
    send_frames(t, f, NCONN);
    expect_frames(t, f, NCONN - NFLOWS);
    check_now(t);
    assert_stat(t, "flush-evict", ==, NCONN - NFLOWS);
    expect_frames(t, f + NCONN - NFLOWS, NFLOWS);
    clock_step(t, RSC_INTERVAL);
    check_expected(t);
}

/* An IPv4 and an IPv6 connection with the same ports are two flows. */
static void test_flows_ipv4_ipv6_same_ports(RscTest *t, const void *arg)
{
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, true);
    Frame *f[6], *fa[3], *fb[3];
    unsigned i;

    b->sport = a->sport;
    b->isn = a->isn;
    b->ack = a->ack;
    for (i = 0; i < 3; i++) {
        f[2 * i] = fa[i] = seg(t, a, MSS);
        f[2 * i + 1] = fb[i] = seg(t, b, MSS);
    }
    expect_unit(t, fa, 3);
    expect_unit(t, fb, 3);
    send_hold_expire(t, f, 6);
}

/*
 * Pop every used buffer that is ready (rx buffers not mergeable), hand
 * each packet to @fn and post the buffers again, in a few qtest round
 * trips per batch.  Returns the number of packets.
 */
static unsigned rx_drain_batch(RscTest *t,
                               void (*fn)(RscTest *t, const uint8_t *hdr,
                                          const uint8_t *frame, size_t len,
                                          void *opaque),
                               void *opaque)
{
    uint16_t size = t->rx->size;
    uint16_t n = used_idx(t, t->rx) - t->used_idx;
    g_autofree uint8_t *elems = g_malloc(8 * n + 1);
    g_autofree uint8_t *ids = g_malloc(2 * n + 1);
    g_autofree uint8_t *buf = g_malloc(t->buf_size);
    uint16_t i, k, slot;
    uint16_t le;

    g_assert(!t->opts.mergeable);
    for (i = 0; i < n; i += k) {
        slot = (t->used_idx + i) % size;
        k = MIN(n - i, size - slot);
        qtest_memread(t->qts, t->rx->used + 4 + 8 * slot, elems + 8 * i,
                      8 * k);
    }
    for (i = 0; i < n; i++) {
        uint32_t id = ldl_le_p(elems + 8 * i);
        uint32_t len = ldl_le_p(elems + 8 * i + 4);

        if (id >= size || len < VNET_HDR_LEN || len > t->buf_size) {
            rsc_fail("used element with id %u, length %u (ring size %u, "
                     "buffer size %u)", id, len, size, t->buf_size);
        }
        qtest_bufread(t->qts, rx_buf(t, id), buf, len);
        fn(t, buf, buf + VNET_HDR_LEN, len - VNET_HDR_LEN, opaque);
        stw_le_p(ids + 2 * i, id);
    }
    t->used_idx += n;
    for (i = 0; i < n; i += k) {
        slot = (t->avail_idx + i) % size;
        k = MIN(n - i, size - slot);
        qtest_memwrite(t->qts, t->rx->avail + 4 + 2 * slot, ids + 2 * i,
                       2 * k);
    }
    if (n) {
        t->avail_idx += n;
        le = cpu_to_le16(t->avail_idx);
        qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
        rx_kick(t);
    }
    return n;
}

/* A value of /proc/@pid/status, in kB. */
static uint64_t proc_status_kb(pid_t pid, const char *key)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    size_t klen = strlen(key);
    unsigned i;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        rsc_fail("cannot read %s", path);
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (!strncmp(lines[i], key, klen) && lines[i][klen] == ':') {
            return g_ascii_strtoull(lines[i] + klen + 1, NULL, 10);
        }
    }
    rsc_fail("no %s in %s", key, path);
}

enum {
    FLOOD_CONNS = 100000,
    FLOOD_PER_HOST = 50000,
    FLOOD_PLEN = 64,
};

/* The frames of a flood of connections, one segment each. */
typedef struct Flood {
    Conn *c;                /* retargeted at each connection in turn */
    uint8_t *bytes;         /* per connection: payload bytes received */
    unsigned received;      /* frames received */
} Flood;

/*
 * The segment of connection @i of the flood: @c takes its addresses,
 * ports, sequence numbers and payload.
 */
static Frame *flood_frame(RscTest *t, Conn *c, unsigned i)
{
    c->idx = i;
    c->v6 = i & 1;
    c->src_host = 0x100 + i / FLOOD_PER_HOST;
    c->sport = 10000 + i % FLOOD_PER_HOST;
    c->isn = i * 0x9e3779b1u;
    c->ack = i * 0x85ebca6bu;
    c->ip_id = i;
    c->tsval = i;
    return tcp_frame(t, c, 0, FLOOD_PLEN);
}

static void flood_check(RscTest *t, const uint8_t *hdr, const uint8_t *p,
                        size_t len, void *opaque)
{
    static const uint8_t zero[10];
    Flood *fl = opaque;
    bool v6 = len >= ETH_HLEN && lduw_be_p(p + 12) == ETH_P_IPV6;
    size_t l4 = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN);
    unsigned i;
    Frame *f;

    if (len < l4 + TCP_HLEN) {
        rsc_fail("flood: %zu-byte packet", len);
    }
    i = (lduw_be_p(p + ETH_HLEN + (v6 ? 22 : 14)) - 0x100) * FLOOD_PER_HOST +
        lduw_be_p(p + l4) - 10000;
    if (i >= FLOOD_CONNS || (i & 1) != v6) {
        g_autofree char *d = describe_frame(t, p, len);

        rsc_fail("flood: packet of no connection: %s", d);
    }
    f = flood_frame(t, fl->c, i);
    if (memcmp(hdr, zero, sizeof(zero))) {
        hexdump("vnet header", hdr, VNET_HDR_LEN);
        rsc_fail("flood: connection %u: the segment must come untouched, "
                 "with a zero vnet header", i);
    }
    if (len != f->len || memcmp(p, f->data, len)) {
        hexdump("expected", f->data, f->len);
        hexdump("got", p, len);
        rsc_fail("flood: connection %u: got %zu bytes that differ from the "
                 "%zu-byte segment sent", i, len, f->len);
    }
    if (fl->bytes[i]) {
        rsc_fail("flood: connection %u: its segment came twice", i);
    }
    fl->bytes[i] += f->plen;
    fl->received++;
}

/* Receive until @n frames of the flood have come. */
static void flood_receive(RscTest *t, Flood *fl, unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

    while (fl->received < n) {
        if (!rx_drain_batch(t, flood_check, fl) &&
            g_get_monotonic_time() > deadline) {
            rsc_fail("flood: %u of %u segments received", fl->received, n);
        }
    }
    /* frames built to check what came */
    g_ptr_array_set_size(t->frames, 0);
}

/*
 * Memory held for coalescing is bounded whatever the traffic: 100000
 * connections, one segment each, with rsc_interval so long that units
 * are only delivered when evicted from the default-sized flow table.
 * Every byte of every connection arrives once, untouched, and QEMU's
 * VmData and VmRSS grow by less than 1 MiB between the first 5000
 * connections and the end.
 */
static void test_flows_memory_bounded(RscTest *t, const void *arg)
{
    enum { NFLOWS = 64, BATCH = 256, WARMUP = 5000 };
    g_autofree uint8_t *bytes = g_new0(uint8_t, FLOOD_CONNS);
    Flood fl = { .bytes = bytes };
    uint64_t data0 = 0, rss0 = 0, data1, rss1;
    Frame *f[BATCH];
    pid_t pid;
    unsigned i, n, sent = 0;

    pid = qtest_pid(t->qts);
    g_assert_cmpint(pid, >, 0);
    fl.c = conn_new(t, false);
    while (sent < FLOOD_CONNS) {
        n = MIN(BATCH, FLOOD_CONNS - sent);
        for (i = 0; i < n; i++) {
            f[i] = flood_frame(t, fl.c, sent + i);
        }
        send_frames(t, f, n);
        sent += n;
        flood_receive(t, &fl, sent > NFLOWS ? sent - NFLOWS : 0);
        if (!data0 && sent >= WARMUP) {
            data0 = proc_status_kb(pid, "VmData");
            rss0 = proc_status_kb(pid, "VmRSS");
        }
    }
    assert_idle(t, "the newest units are held");
    clock_step(t, UINT32_MAX);
    flood_receive(t, &fl, FLOOD_CONNS);
    assert_idle(t, "every segment was received");
    data1 = proc_status_kb(pid, "VmData");
    rss1 = proc_status_kb(pid, "VmRSS");
    g_test_message("QEMU memory after %u connections: VmData %" PRIu64
                   " kB, VmRSS %" PRIu64 " kB; after %u: VmData %" PRIu64
                   " kB, VmRSS %" PRIu64 " kB", WARMUP, data0, rss0,
                   FLOOD_CONNS, data1, rss1);
    for (i = 0; i < FLOOD_CONNS; i++) {
        if (bytes[i] != FLOOD_PLEN) {
            rsc_fail("flood: connection %u: %u of %u payload bytes "
                     "received", i, bytes[i], FLOOD_PLEN);
        }
    }
    if (getenv("RSC_TEST_SANITIZED")) {
        /* ASan keeps freed memory in quarantine: growth means nothing */
        g_test_message("QEMU is built with sanitizers: memory growth not "
                       "checked");
    } else if (data1 > data0 + 1024 || rss1 > rss0 + 1024) {
        rsc_fail("QEMU grew by more than 1 MiB over %u connections: VmData "
                 "%" PRIu64 " -> %" PRIu64 " kB, VmRSS %" PRIu64 " -> %"
                 PRIu64 " kB", FLOOD_CONNS - WARMUP, data0, data1, rss0,
                 rss1);
    }
    assert_stat(t, "flush-evict", ==, FLOOD_CONNS - NFLOWS);
    assert_stat(t, "flush-timer", ==, NFLOWS);
}

/* --- ctrl: CTRL_GUEST_OFFLOADS_SET ------------------------------------ */

/* Bit 61 is accepted in CTRL_GUEST_OFFLOADS_SET when RSC_EXT is on. */
static void test_ctrl_rsc_ext_accepted(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f[3];

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    send_hold_expire(t, f, 3);
}

/*
 * Without RSC_EXT negotiated, bit 61 is refused (VIRTIO_NET_ERR) and RSC
 * stays off.
 */
static void test_ctrl_rsc_ext_not_negotiated(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f[3];

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_ERR);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS &
                                   ~BIT(VIRTIO_NET_F_RSC_EXT)),
                     ==, VIRTIO_NET_OK);
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
}

/*
 * Clearing TSO4/TSO6 (bit 61 still set) turns RSC off and flushes the
 * held units of every connection, next to a unit already delivered and
 * not yet read; segments then come untouched, in order.  Setting TSO4/TSO6
 * again turns RSC on, and the same connections build units again.
 */
static void test_ctrl_offloads_toggle(RscTest *t, const void *arg)
{
    Conn *c[4];
    Frame *g[6];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, i & 1);
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                   BIT(VIRTIO_NET_F_RSC_EXT)),
                     ==, VIRTIO_NET_OK);
    check_now(t);
    assert_stat(t, "flush-offloads", ==, 3);

    for (i = 0; i < 6; i++) {
        g[i] = seg(t, c[i % 4], MSS);
    }
    expect_frames(t, g, 6);
    send_frames(t, g, 6);
    check_now(t);

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    hold_units(t, c, 4);
    expire_and_check(t);
    /* the six frames sent while RSC was off did not go through it */
    assert_stat(t, "segments-received", ==, t->nsent - 6);
}

/* TSO4 off, TSO6 on: IPv4 passes untouched, IPv6 is still merged. */
static void test_ctrl_tso4_off(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3], *g[3];

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS &
                                   ~BIT(VIRTIO_NET_F_GUEST_TSO4)),
                     ==, VIRTIO_NET_OK);
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    assert_stat(t, "bypass-disabled", ==, 3);
    segs(t, c6, g, 3, MSS);
    expect_unit(t, g, 3);
    send_hold_expire(t, g, 3);
}

/*
 * A command with an offload that was not negotiated is refused before
 * anything changes: RSC stays on and the held unit keeps growing.
 */
static void test_ctrl_invalid_no_change(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f[5];

    segs(t, c, f, 3, MSS);
    send_frames(t, f, 3);
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                   BIT(VIRTIO_NET_F_GUEST_UFO) |
                                   BIT(VIRTIO_NET_F_RSC_EXT)),
                     ==, VIRTIO_NET_ERR);
    assert_idle(t, "a refused command changes nothing");
    segs(t, c, f + 3, 2, MSS);
    expect_unit(t, f, 5);
    send_frames(t, f + 3, 2);
    expire_and_check(t);
    assert_stat(t, "flush-offloads", ==, 0);
}

/* --- flush: VM stop, link down, reset ----------------------------------- */

/*
 * Stopping the VM flushes held units (nothing pending for migration),
 * next to a unit already delivered and not yet read.  Frames the backend
 * offers while the VM is stopped wait and, after cont, are coalesced with
 * the traffic that follows.  Every byte arrives once, in order.
 */
static void test_flush_vm_stop(RscTest *t, const void *arg)
{
    Conn *c[4];
    Frame *f[5], *g[3];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, i & 1);
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'stop' }");
    check_now(t);
    assert_stat(t, "flush-vm-stop", ==, 3);

    segs(t, c[0], f, 3, MSS);
    send_frames(t, f, 3);
    assert_idle(t, "the VM is stopped");
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'cont' }");
    assert_idle(t, "frames offered while stopped start a unit at cont");
    segs(t, c[0], f + 3, 2, MSS);
    segs(t, c[1], g, 3, MSS);
    send_frames(t, f + 3, 2);
    send_frames(t, g, 3);
    expect_unit(t, f, 5);
    expect_unit(t, g, 3);
    expire_and_check(t);
    assert_stat(t, "segments-received", ==, t->nsent);
}

static void set_link(RscTest *t, bool up)
{
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'set_link', 'arguments':"
                             " { 'name': 'net0', 'up': %i } }", up);
}

/*
 * Link down flushes held units, next to a unit already delivered and not
 * yet read.  Frames offered while the link is down are dropped before
 * the device, as without RSC: none of them shows up later.  After link
 * up the same connections build units again.
 */
static void test_flush_link_down(RscTest *t, const void *arg)
{
    Conn *c[4];
    Frame *f[3];
    unsigned i, accepted;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, !(i & 1));
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    set_link(t, false);
    check_now(t);
    assert_stat(t, "flush-link-down", ==, 3);

    accepted = t->nsent;
    segs(t, c[0], f, 3, MSS);
    send_frames(t, f, 3);
    assert_idle(t, "frames offered while the link is down are dropped");
    set_link(t, true);
    assert_idle(t, "nothing offered while the link was down comes later");
    hold_units(t, c, 4);
    expire_and_check(t);
    assert_stat(t, "segments-received", ==, accepted + 12);
}

/*
 * A device reset delivers held units to the ring before the queues are
 * reset (accepted data is never freed), next to a unit already delivered
 * and not yet read; after the driver has set the device up again, the
 * same connections build units again.
 */
static void test_flush_reset(RscTest *t, const void *arg)
{
    Conn *c[4];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, i & 1);
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    qvirtio_reset(t->vdev);
    t->repost = false;
    check_now(t);
    assert_stat(t, "flush-reset", ==, 3);
    t->repost = true;
    rsc_driver_init(t);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    hold_units(t, c, 4);
    expire_and_check(t);
    assert_stat(t, "segments-received", ==, t->nsent);
}

/* --- lifecycle: nothing lost across flushes, stops and migration -------- */

/*
 * Traffic whose unit boundaries the test does not fix: the data frames
 * sent on each connection, in order, checked with check_stream_packet().
 */
typedef struct RscStream {
    unsigned nconn;         /* connections of the test when created */
    GPtrArray **frames;     /* per connection: Frame *, in sequence */
    unsigned *next;         /* per connection: frames received */
    GPtrArray *sent;        /* Frame *, in the order they were sent */
} RscStream;

/* A stream over the connections @t has now. */
static RscStream *stream_new(RscTest *t)
{
    RscStream *s = g_new0(RscStream, 1);
    unsigned i;

    s->nconn = t->conns->len;
    s->frames = g_new(GPtrArray *, s->nconn);
    s->next = g_new0(unsigned, s->nconn);
    s->sent = g_ptr_array_new();
    for (i = 0; i < s->nconn; i++) {
        s->frames[i] = g_ptr_array_new();
    }
    return s;
}

static void stream_free(RscStream *s)
{
    unsigned i;

    for (i = 0; i < s->nconn; i++) {
        g_ptr_array_unref(s->frames[i]);
    }
    g_ptr_array_unref(s->sent);
    g_free(s->frames);
    g_free(s->next);
    g_free(s);
}

/* Send @f[0..n-1] in one burst, as traffic of @s. */
static void stream_send(RscTest *t, RscStream *s, Frame **f, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        g_assert(f[i]->conn >= 0 && f[i]->conn < s->nconn);
        g_ptr_array_add(s->frames[f[i]->conn], f[i]);
        g_ptr_array_add(s->sent, f[i]);
    }
    send_frames(t, f, n);
}

/*
 * Forget the frames of @s from the @accepted-th sent on: the backend
 * never handed them to the device.
 */
static void stream_truncate(RscStream *s, unsigned accepted)
{
    unsigned i;

    g_assert_cmpuint(accepted, <=, s->sent->len);
    for (i = s->sent->len; i > accepted; i--) {
        Frame *f = g_ptr_array_index(s->sent, i - 1);
        GPtrArray *cf = s->frames[f->conn];

        g_assert(g_ptr_array_index(cf, cf->len - 1) == f);
        g_ptr_array_set_size(cf, cf->len - 1);
    }
    g_ptr_array_set_size(s->sent, accepted);
}

/* Check every packet that is ready now; returns how many there were. */
static unsigned stream_poll(RscTest *t, RscStream *s)
{
    unsigned n = 0;

    while (rx_ready(t)) {
        RxPacket p;

        rx_pop(t, &p);
        check_stream_packet(t, &p, s->frames, s->next);
        rx_packet_free(&p);
        n++;
    }
    return n;
}

static bool stream_complete(RscStream *s)
{
    unsigned i;

    for (i = 0; i < s->nconn; i++) {
        if (s->next[i] != s->frames[i]->len) {
            return false;
        }
    }
    return true;
}

/* Has QEMU read every frame given to the backend? */
static bool backend_drained(RscTest *t)
{
    int outq;

    if (t->pkt >= 0) {
        return tap_frames_read(t) >= t->nsent;
    }
    g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
    return outq == 0;
}

static G_NORETURN void stream_stuck(RscTest *t, RscStream *s,
                                    const char *what)
{
    unsigned i;

    for (i = 0; i < s->nconn; i++) {
        g_test_message("conn %u: %u of %u frames received", i, s->next[i],
                       s->frames[i]->len);
    }
    rsc_fail("%s", what);
}

/*
 * Receive (and give the buffers back) until QEMU has read everything the
 * backend was given, so that the next burst cannot block the sender.
 */
static void stream_settle(RscTest *t, RscStream *s)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

    while (!backend_drained(t)) {
        stream_poll(t, s);
        if (g_get_monotonic_time() > deadline) {
            stream_stuck(t, s, "QEMU stopped reading the backend");
        }
    }
}

/*
 * Receive until every frame of @s has arrived, stepping the clock by
 * @step_ns whenever nothing is ready (0: never); then nothing else may
 * come.
 */
static void stream_finish(RscTest *t, RscStream *s, int64_t step_ns)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

    while (!stream_complete(s)) {
        if (!stream_poll(t, s) && step_ns) {
            qtest_clock_step(t->qts, step_ns);
        }
        if (g_get_monotonic_time() > deadline) {
            stream_stuck(t, s, "frames lost or stuck");
        }
    }
    assert_idle(t, "every frame sent was received");
}

/*
 * A flush racing new segments: the clock step that fires the timer (or,
 * with rsc_interval=0, the end of a receive burst) comes while QEMU is
 * still reading a burst, and only 16 buffers are posted, so a segment
 * may join a unit, start the next one, or wait for a buffer.  Every byte
 * arrives exactly once and in order, whichever happens.
 */
static void test_lifecycle_race(RscTest *t, const void *arg)
{
    enum { NCONN = 8, ROUNDS = 150, MAX_BURST = 48 };
    g_autoptr(GRand) rnd = g_rand_new_with_seed(0x52534321);
    Conn *c[NCONN];
    RscStream *s;
    unsigned i, r;

    for (i = 0; i < NCONN; i++) {
        c[i] = conn_new(t, i & 1);
    }
    s = stream_new(t);
    for (r = 0; r < ROUNDS; r++) {
        Frame *f[MAX_BURST];
        unsigned n = g_rand_int_range(rnd, 1, MAX_BURST + 1);

        for (i = 0; i < n; i++) {
            Conn *x = c[g_rand_int_range(rnd, 0, NCONN)];
            uint32_t plen = g_rand_int_range(rnd, 0, 4) ?
                            MSS : g_rand_int_range(rnd, 1, MSS + 1);

            f[i] = seg(t, x, plen);
        }
        stream_settle(t, s);
        stream_send(t, s, f, n);
        qtest_clock_step(t->qts, g_rand_int_range(rnd, 1, 2 * RSC_INTERVAL));
        stream_poll(t, s);
    }
    stream_finish(t, s, RSC_INTERVAL);
    assert_stat(t, "segments-received", ==, t->nsent);
    assert_stat(t, "segments-merged", >, 0);
    g_test_message("%u frames: %" PRIu64 " units, %" PRIu64 " flushed by "
                   "the timer, %" PRIu64 " at burst end, %" PRIu64 " not "
                   "accepted at first", t->nsent,
                   rsc_stat(t, "units-delivered"), rsc_stat(t, "flush-timer"),
                   rsc_stat(t, "flush-burst-end"),
                   rsc_stat(t, "not-accepted"));
    stream_free(s);
}

/*
 * Live migration with units held.  The source flushes them when the VM
 * stops, before the last RAM pass, so the guest finds every accepted byte
 * exactly once: read on the source, or in the ring it reads on the
 * destination.  Frames sent while the migration runs were accepted by the
 * source (counted in its segments-received, in the order sent) and reach
 * the guest, or never reached the device.  RSC goes on at the destination.
 */
static void test_lifecycle_migration(RscTest *t, const void *arg)
{
    enum { NCONN = 6, BURSTS = 12 };
    g_autoptr(QDict) src = NULL;
    RscMigration m;
    RscStream *s;
    Conn *c[NCONN];
    Frame *f[3 * NCONN];
    unsigned i, j, before;

    for (i = 0; i < NCONN; i++) {
        c[i] = conn_new(t, i & 1);
    }
    s = stream_new(t);

    /* units delivered and read on the source */
    for (i = 0; i < 3 * NCONN; i++) {
        f[i] = seg(t, c[i % NCONN], MSS);
    }
    stream_send(t, s, f, 3 * NCONN);
    stream_finish(t, s, RSC_INTERVAL);
    assert_stat(t, "units-delivered", ==, NCONN);

    /* units held, and one delivered but not read */
    for (i = 0; i < 3 * NCONN; i++) {
        f[i] = seg(t, c[i % NCONN], MSS);
    }
    stream_send(t, s, f, 3 * NCONN);
    assert_idle(t, "the units are held");
    segs(t, c[0], f, 2, MSS);
    f[2] = seg(t, c[0], 700);
    stream_send(t, s, f, 3);
    backend_sync(t);
    before = s->sent->len;

    /* segments that arrive while the migration runs */
    rsc_migrate_start(t, &m);
    for (j = 0; j < BURSTS; j++) {
        for (i = 0; i < NCONN; i++) {
            f[i] = seg(t, c[i], MSS);
        }
        stream_send(t, s, f, NCONN);
    }
    src = rsc_migrate_finish(t, &m);
    g_test_message("the source accepted %" PRIu64 " of %u frames, %u of "
                   "them while the migration ran",
                   stats_get(src, "segments-received"), s->sent->len,
                   (unsigned)stats_get(src, "segments-received") - before);
    if (stats_get(src, "segments-received") < before) {
        rsc_fail("the source accepted %" PRIu64 " frames, %u were read "
                 "before the migration started",
                 stats_get(src, "segments-received"), before);
    }
    if (stats_get(src, "flush-vm-stop") < 1) {
        rsc_fail("the source held units when it stopped, flush-vm-stop "
                 "is 0");
    }
    stream_truncate(s, stats_get(src, "segments-received"));

    /* everything accepted is in the ring, without a clock step */
    stream_finish(t, s, 0);

    /* the destination coalesces */
    for (i = 0; i < 3 * NCONN; i++) {
        f[i] = seg(t, c[i % NCONN], MSS);
    }
    stream_send(t, s, f, 3 * NCONN);
    assert_idle(t, "the destination holds units");
    stream_finish(t, s, RSC_INTERVAL);
    assert_stat(t, "segments-received", ==, 3 * NCONN);
    assert_stat(t, "units-delivered", ==, NCONN);
    stream_free(s);
}

/* --- lossless: nothing lost when the guest is short of buffers -------- */

/*
 * @nconn connections send @nseg segments each while only @nbufs buffers
 * are posted; the test consumes packets (stepping the clock when none is
 * ready) and checks that every byte arrives exactly once and in order.
 */
typedef struct LosslessCase {
    unsigned nconn;
    unsigned nseg;
} LosslessCase;

static void test_lossless(RscTest *t, const void *arg)
{
    const LosslessCase *k = arg;
    unsigned nbufs = t->opts.nbufs, nconn = k->nconn, nseg = k->nseg;
    g_autofree GPtrArray **cf = g_new0(GPtrArray *, nconn);
    g_autofree unsigned *next = g_new0(unsigned, nconn);
    g_autofree Frame **all = g_new(Frame *, nconn * nseg);
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    unsigned i, j, n = 0, done = 0;

    for (i = 0; i < nconn; i++) {
        conn_new(t, i & 1);
        cf[i] = g_ptr_array_new();
    }
    for (j = 0; j < nseg; j++) {
        for (i = 0; i < nconn; i++) {
            Frame *f = seg(t, g_ptr_array_index(t->conns, i), MSS);

            g_ptr_array_add(cf[i], f);
            all[n++] = f;
        }
    }
    send_frames(t, all, n);
    while (done < nconn) {
        if (rx_ready(t)) {
            RxPacket p;

            rx_pop(t, &p);
            check_stream_packet(t, &p, cf, next);
            rx_packet_free(&p);
            done = 0;
            for (i = 0; i < nconn; i++) {
                done += next[i] == nseg;
            }
            continue;
        }
        if (g_get_monotonic_time() > deadline) {
            for (i = 0; i < nconn; i++) {
                g_test_message("conn %u: %u of %u segments delivered", i,
                               next[i], nseg);
            }
            rsc_fail("segments lost or stuck with %u guest buffers", nbufs);
        }
        qtest_clock_step(t->qts, RSC_INTERVAL);
    }
    assert_idle(t, "every segment was delivered");
    for (i = 0; i < nconn; i++) {
        g_ptr_array_unref(cf[i]);
    }
}

/* --- stats ------------------------------------------------------------- */

/* rsc-stats has every documented counter, as uint64. */
static void test_stats_counters(RscTest *t, const void *arg)
{
    static const char *const names[] = {
        "segments-received", "segments-merged", "units-delivered",
        "frames-uncoalesced", "window-updates", "not-accepted",
        "bypass-not-tcpip", "bypass-disabled", "bypass-malformed",
        "bypass-fragment", "bypass-ip-options", "bypass-checksum",
        "bypass-tcp-flags", "bypass-tcp-options", "bypass-pure-ack",
        "bypass-dup-ack", "bypass-backend-gso", "bypass-no-unit",
        "flush-timer", "flush-burst-end", "flush-full", "flush-short",
        "flush-exception", "flush-evict", "flush-no-buffer",
        "flush-offloads", "flush-reset", "flush-vm-stop",
        "flush-link-down",
    };
    Conn *c = conn_new(t, false);
    g_autoptr(QDict) s = NULL;
    Frame *f[3];
    unsigned i;

    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    send_hold_expire(t, f, 3);
    s = rsc_stats(t);
    for (i = 0; i < ARRAY_SIZE(names); i++) {
        stats_get(s, names[i]);
    }
    g_assert_cmpuint(stats_get(s, "segments-received"), ==, 3);
    g_assert_cmpuint(stats_get(s, "units-delivered"), ==, 1);
    g_assert_cmpuint(stats_get(s, "flush-timer"), ==, 1);
    g_assert_cmpuint(stats_get(s, "frames-uncoalesced"), ==, 0);
}

/* --- tap: backend vnet header flags and GSO ------------------------------ */

static bool frame_is_v6(const Frame *f)
{
    return lduw_be_p(f->data + f->l3 - 2) == ETH_P_IPV6;
}

/*
 * Give @f a partial TCP checksum (the pseudo header sum, as the host
 * stack leaves it) and the NEEDS_CSUM header the kernel passes on.
 */
static void frame_needs_csum(Frame *f)
{
    uint32_t tcp_len = f->hdr_len - f->l4 + f->plen;

    stw_be_p(f->data + f->l4 + 16,
             rsc_csum_fold(rsc_csum_pseudo(f->data + f->l3, frame_is_v6(f),
                                           tcp_len)));
    f->tx_vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    stw_le_p(f->tx_vhdr + 6, f->l4);
    stw_le_p(f->tx_vhdr + 8, 16);
    memcpy(f->rx_vhdr, f->tx_vhdr, sizeof(f->rx_vhdr));
}

/*
 * Make @f a GSO packet of the backend: delivered untouched, never merged,
 * with RSC_INFO and its segment count.
 */
static void frame_gso(Frame *f, uint16_t gso_size)
{
    uint8_t type = frame_is_v6(f) ? VIRTIO_NET_HDR_GSO_TCPV6
                                  : VIRTIO_NET_HDR_GSO_TCPV4;

    frame_needs_csum(f);
    f->tx_vhdr[1] = type;
    stw_le_p(f->tx_vhdr + 2, f->hdr_len);
    stw_le_p(f->tx_vhdr + 4, gso_size);
    f->rx_vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO;
    f->rx_vhdr[1] = type;
    stw_le_p(f->rx_vhdr + 4, gso_size);
    stw_le_p(f->rx_vhdr + 6, DIV_ROUND_UP(f->plen, gso_size));
    stw_le_p(f->rx_vhdr + 8, 0);
    f->any_hdr_len = true;
}

/*
 * Frames marked NEEDS_CSUM by the backend need no checksum check: they
 * merge although their checksum field only holds the pseudo header sum.
 */
static void test_tap_needs_csum_merge(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[8];
    unsigned i;

    segs(t, c, f, 4, MSS);
    segs(t, c6, f + 4, 4, 1400);
    for (i = 0; i < 8; i++) {
        frame_needs_csum(f[i]);
    }
    expect_unit(t, f, 4);
    expect_unit(t, f + 4, 4);
    send_hold_expire(t, f, 8);
    assert_stat(t, "bypass-checksum", ==, 0);
}

/*
 * A NEEDS_CSUM frame held alone goes out untouched, with the backend's
 * vnet header (flags, csum_start, csum_offset).
 */
static void test_tap_needs_csum_single(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[2];

    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c6, 1000);
    frame_needs_csum(f[0]);
    frame_needs_csum(f[1]);
    expect_frames(t, f, 2);
    send_hold_expire(t, f, 2);
}

/*
 * A GSO packet from the backend is never merged; with RSC_EXT it carries
 * RSC_INFO and csum_start = ceil(payload / gso_size).
 */
static void test_tap_gso_passthrough(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3];

    f[0] = seg(t, c, 3500);
    frame_gso(f[0], 1000);
    f[1] = seg(t, c, 3500);
    frame_gso(f[1], 1000);
    f[2] = seg(t, c6, 5000);
    frame_gso(f[2], 1448);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    assert_stat(t, "bypass-backend-gso", ==, 3);
}

/*
 * Send @f through the NAPI tap and the bridge: the kernel validates its
 * checksum (GRO) and QEMU gets it with DATA_VALID.  PSH keeps GRO from
 * merging segments itself.
 */
static void frame_via_gro(Frame *f)
{
    g_assert_cmpint(f->data[f->l4 + 13] & TCP_PSH, !=, 0);
    f->via_gro = true;
    f->rx_vhdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
}

/* Frames marked DATA_VALID by the backend merge. */
static void test_tap_data_valid_merge(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[8];
    unsigned i;

    c->flags = c6->flags = TCP_ACK | TCP_PSH;
    segs(t, c, f, 4, MSS);
    segs(t, c6, f + 4, 4, 1400);
    for (i = 0; i < 8; i++) {
        frame_via_gro(f[i]);
    }
    expect_unit(t, f, 4);
    expect_unit(t, f + 4, 4);
    send_hold_expire(t, f, 8);
}

/*
 * A DATA_VALID frame held alone goes out untouched, with the backend's
 * vnet header flags.
 */
static void test_tap_data_valid_single(RscTest *t, const void *arg)
{
    Conn *c = conn_new(t, false);
    Frame *f;

    c->flags = TCP_ACK | TCP_PSH;
    f = seg(t, c, MSS);
    frame_via_gro(f);
    expect_frame(t, f);
    send_hold_expire(t, &f, 1);
}

/* --- hostile: no input from the backend hurts QEMU or other traffic ----- */

/*
 * A connection with an address pair of its own: frames that flush every
 * unit of their address pair leave other connections' units alone.
 */
static Conn *victim_new(RscTest *t, bool v6)
{
    Conn *c = conn_new(t, v6);

    c->src_host = 0x200 + c->idx;
    return c;
}

/*
 * Send @bad[0..n-1] in one burst with the four segments of a well-formed
 * connection spread between them.  The caller has declared what the
 * guest gets of @bad, marking with expect_later() what waits for the
 * timer.  Check that, then that the bystander connection makes one unit
 * at the timer: QEMU is alive and good traffic was not disturbed.
 */
static void hostile_burst(RscTest *t, Frame **bad, unsigned n)
{
    Conn *good = victim_new(t, false);
    g_autofree Frame **all = g_new(Frame *, n + 4);
    Frame *g[4];
    unsigned i, j = 0, k = 0;

    segs(t, good, g, 4, MSS);
    for (i = 0; i < n; i++) {
        while (k < 3 && i == k * n / 3) {
            all[j++] = g[k++];
        }
        all[j++] = bad[i];
    }
    while (k < 4) {
        all[j++] = g[k++];
    }
    send_frames(t, all, j);
    check_now(t);
    expect_unit(t, g, 4);
    expire_and_check(t);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'query-status' }");
}

/* Add @f to @bad, to be delivered at once and untouched. */
static void bad_now(RscTest *t, GPtrArray *bad, Frame *f)
{
    expect_frame(t, f);
    g_ptr_array_add(bad, f);
}

static void hostile_burst_array(RscTest *t, GPtrArray *bad)
{
    hostile_burst(t, (Frame **)bad->pdata, bad->len);
    g_ptr_array_set_size(bad, 0);
}

enum {
    OPTS_NOPS,          /* NOPs, EOL padding */
    OPTS_UNKNOWN,       /* one option of an unknown kind */
    OPTS_TS,            /* NOPs, then the timestamp option */
    OPTS_TS_LENGTH,     /* the timestamp kind with a wrong length */
    OPTS_LENGTH_0,      /* NOPs, then the timestamp kind with length 0 */
    OPTS_LENGTH_1,      /* NOPs, then the timestamp kind with length 1 */
    OPTS_TS_OVERRUN,    /* a timestamp option running past the options */
    OPTS_TS_TWICE,      /* two timestamp options */
    OPTS_EOL_GARBAGE,   /* EOL, then bytes that are not zero */
    OPTS__MAX,
};

/*
 * Fill @o with @n bytes of TCP options of @kind, padded with EOL to a
 * multiple of 4 bytes (*@len).  Returns 1 if segments with these options
 * may be merged (only NOPs, EOL padding and at most one timestamp option,
 * in 12 bytes at most), 0 if not, -1 if @kind has no case of @n bytes.
 */
static int tcp_opts_case(unsigned kind, unsigned n, uint8_t *o, size_t *len)
{
    memset(o, 0, 40);
    *len = ROUND_UP(n, 4);
    switch (kind) {
    case OPTS_NOPS:
        memset(o, 1, n);
        return *len <= 12;
    case OPTS_UNKNOWN:
        if (n == 0) {
            return -1;
        }
        o[0] = 253;
        if (n >= 2) {
            o[1] = n;
            memset(o + 2, 0xa5, n - 2);
        }
        return 0;
    case OPTS_TS:
        if (n < 10) {
            return -1;
        }
        memset(o, 1, n - 10);
        o[n - 10] = 8;
        o[n - 9] = 10;
        return *len <= 12;
    case OPTS_TS_LENGTH:
        if (n == 0 || n == 10) {
            return -1;
        }
        o[0] = 8;
        o[1] = n >= 2 ? n : 0;
        return 0;
    case OPTS_LENGTH_0:
    case OPTS_LENGTH_1:
        if (n < 2) {
            return -1;
        }
        memset(o, 1, n - 2);
        o[n - 2] = 8;
        o[n - 1] = kind == OPTS_LENGTH_1;
        return 0;
    case OPTS_TS_OVERRUN:
        if (n < 2) {
            return -1;
        }
        memset(o, 1, n - 2);
        o[n - 2] = 8;
        o[n - 1] = 10;
        return 0;
    case OPTS_TS_TWICE:
        if (n < 20) {
            return -1;
        }
        memset(o, 1, n - 20);
        o[n - 20] = 8;
        o[n - 19] = 10;
        o[n - 10] = 8;
        o[n - 9] = 10;
        return 0;
    case OPTS_EOL_GARBAGE:
        if (n < 2) {
            return -1;
        }
        memset(o + 1, 0xa5, n - 1);
        return 0;
    }
    g_assert_not_reached();
}

/*
 * TCP options of every length from 0 to 40 bytes, well and badly encoded.
 * Two segments of each case make one unit at the timer if their options
 * may be merged; otherwise each comes at once, untouched.
 */
static void test_hostile_tcp_options(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    unsigned kind, n, merged = 0, alone = 0;

    for (kind = 0; kind < OPTS__MAX; kind++) {
        for (n = 0; n <= 40; n++) {
            uint8_t opts[40];
            size_t len;
            int merge = tcp_opts_case(kind, n, opts, &len);
            Conn *c;
            Frame *f[2];

            if (merge < 0) {
                continue;
            }
            c = victim_new(t, n & 1);
            conn_set_opts(c, opts, len);
            f[0] = seg(t, c, 100);
            c->tsval++;
            f[1] = seg(t, c, 100);
            if (merge) {
                expect_unit(t, f, 2);
                expect_later(t);
                merged++;
            } else {
                expect_frames(t, f, 2);
                alone += 2;
            }
            g_ptr_array_add(bad, f[0]);
            g_ptr_array_add(bad, f[1]);
        }
        hostile_burst_array(t, bad);
    }
    g_test_message("%u cases merged, %u frames alone", merged, alone);
    assert_stat(t, "bypass-tcp-options", ==, alone);
}

/*
 * Make @f declare only @plen of its payload bytes in the IP header
 * (checksums fixed): the bytes after them become a trailer.
 */
static void frame_declare_payload(Frame *f, uint32_t plen)
{
    bool v6 = lduw_be_p(f->data + f->l3 - 2) == ETH_P_IPV6;
    uint8_t *ip = f->data + f->l3, *tcp = f->data + f->l4;
    uint32_t tcp_len = f->hdr_len - f->l4 + plen, sum;

    g_assert_cmpuint(plen, <=, f->plen);
    if (v6) {
        stw_be_p(ip + 4, tcp_len);
    } else {
        stw_be_p(ip + 2, f->l4 - f->l3 + tcp_len);
        ip4_fix_csum(f);
    }
    stw_be_p(tcp + 16, 0);
    sum = rsc_csum_add(rsc_csum_pseudo(ip, v6, tcp_len), tcp, tcp_len);
    stw_be_p(tcp + 16, ~rsc_csum_fold(sum) & 0xffff);
    f->plen = plen;
}

/* Recompute the checksums of @f after a change of its headers. */
static void frame_fix_csums(Frame *f)
{
    frame_declare_payload(f, f->plen);
}

/* Set the IPv4 total length or IPv6 payload length field of @f. */
static void frame_set_ip_length(Frame *f, uint16_t len)
{
    if (lduw_be_p(f->data + f->l3 - 2) == ETH_P_IPV6) {
        stw_be_p(f->data + f->l3 + 4, len);
    } else {
        stw_be_p(f->data + f->l3 + 2, len);
        ip4_fix_csum(f);
    }
}

static void hostile_ip_length(RscTest *t, bool v6)
{
    static const uint16_t short4[] = { 0, 19, 20, 39, 45, 51 };
    static const uint16_t short6[] = { 0, 19, 31 };
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    uint16_t dgram;
    Conn *c;
    Frame *f[3];
    unsigned i;

    /* larger than the frame */
    for (i = 0; i < 3; i++) {
        f[0] = seg(t, victim_new(t, v6), MSS);
        dgram = lduw_be_p(f[0]->data + f[0]->l3 + (v6 ? 4 : 2));
        frame_set_ip_length(f[0], i == 0 ? dgram + 1 :
                                  i == 1 ? dgram + 1000 : 0xffff);
        bad_now(t, bad, f[0]);
    }
    /* smaller than the IP and TCP headers */
    for (i = 0; i < (v6 ? ARRAY_SIZE(short6) : ARRAY_SIZE(short4)); i++) {
        f[0] = seg(t, victim_new(t, v6), MSS);
        frame_set_ip_length(f[0], v6 ? short6[i] : short4[i]);
        bad_now(t, bad, f[0]);
    }

    /* no payload declared: a pure ACK with the payload as trailer */
    f[0] = seg(t, victim_new(t, v6), MSS);
    frame_declare_payload(f[0], 0);
    bad_now(t, bad, f[0]);

    /* the first segment of a unit declares less than it carries */
    c = victim_new(t, v6);
    f[0] = seg(t, c, MSS);
    frame_declare_payload(f[0], 1000);
    c->next_off = f[0]->off + 1000;
    f[1] = seg(t, c, 1000);
    f[2] = seg(t, c, 1000);
    expect_unit(t, f, 3);
    expect_later(t);
    g_ptr_array_add(bad, f[0]);
    g_ptr_array_add(bad, f[1]);
    g_ptr_array_add(bad, f[2]);

    /* ... a segment in the middle of a unit */
    c = victim_new(t, v6);
    f[0] = seg(t, c, 1000);
    f[1] = seg(t, c, MSS);
    frame_declare_payload(f[1], 1000);
    c->next_off = f[1]->off + 1000;
    f[2] = seg(t, c, 1000);
    expect_unit(t, f, 3);
    expect_later(t);
    g_ptr_array_add(bad, f[0]);
    g_ptr_array_add(bad, f[1]);
    g_ptr_array_add(bad, f[2]);

    /* ... the last one, declaring less than the MSS: the unit ends */
    c = victim_new(t, v6);
    f[0] = seg(t, c, 1000);
    f[1] = seg(t, c, MSS);
    frame_declare_payload(f[1], 300);
    expect_unit(t, f, 2);
    g_ptr_array_add(bad, f[0]);
    g_ptr_array_add(bad, f[1]);

    hostile_burst_array(t, bad);
}

/*
 * IPv4 total length and IPv6 payload length larger than the frame, or
 * smaller than the headers: delivered at once, untouched.  Smaller than
 * the frame but covering the headers is legal: what follows the datagram
 * is a trailer, and a unit takes only the declared payload.
 */
static void test_hostile_ip_length(RscTest *t, const void *arg)
{
    hostile_ip_length(t, false);
    hostile_ip_length(t, true);
}

/*
 * IPv4 IHL below 5, a version that is not the ethertype's, and IHL above
 * 5 without real options: delivered at once, untouched.
 */
static void test_hostile_ihl(RscTest *t, const void *arg)
{
    static const uint8_t version4[] = { 0x05, 0x65, 0xf5 };
    static const uint8_t version6[] = { 0x40, 0x00, 0xf0 };
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Frame *f;
    unsigned i;

    for (i = 0; i < 16; i++) {
        if (i == 5) {
            continue;
        }
        f = seg(t, victim_new(t, false), 200);
        f->data[f->l3] = 0x40 | i;
        ip4_fix_csum(f);
        bad_now(t, bad, f);
    }
    for (i = 0; i < ARRAY_SIZE(version4); i++) {
        f = seg(t, victim_new(t, false), 200);
        f->data[f->l3] = version4[i];
        ip4_fix_csum(f);
        bad_now(t, bad, f);
    }
    for (i = 0; i < ARRAY_SIZE(version6); i++) {
        f = seg(t, victim_new(t, true), 200);
        f->data[f->l3] = version6[i];
        bad_now(t, bad, f);
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "bypass-ip-options", ==, 10);
}

/*
 * A TCP data offset below 5, past the segment, or past the IP datagram
 * into a trailer; and one that takes the payload for options: delivered
 * at once, untouched.
 */
static void test_hostile_data_offset(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *f;
    unsigned i, v6;

    for (v6 = 0; v6 < 2; v6++) {
        for (i = 0; i < 5; i++) {
            f = seg(t, victim_new(t, v6), 200);
            f->data[f->l4 + 12] = i << 4;
            frame_fix_csums(f);
            bad_now(t, bad, f);
        }
        for (i = 9; i < 16; i++) {
            c = victim_new(t, v6);
            c->doff = i;
            bad_now(t, bad, seg(t, c, 0));
            if (i >= 11) {
                c->doff = i;
                bad_now(t, bad, seg(t, c, 10));
            }
        }
        c = victim_new(t, v6);
        c->doff = 15;
        c->trailer = 64;
        bad_now(t, bad, seg(t, c, 0));
        c = victim_new(t, v6);
        c->doff = 10;
        bad_now(t, bad, seg(t, c, 8));
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "bypass-malformed", >=, 2 * 15);
}

/*
 * Frames with Ethernet padding or a trailer - tiny frames padded to 60
 * bytes, a tiny datagram in a full-size frame, full-size and jumbo frames
 * with trailers - followed by full segments of their connection.  What
 * is held alone comes untouched, padding included; units never take it.
 */
static void test_hostile_trailer_then_full(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *f[5];
    unsigned i, j, v6;

    for (v6 = 0; v6 < 2; v6++) {
        /* a tiny segment, a pure ACK, a tiny datagram in 1500 bytes */
        for (i = 0; i < 3; i++) {
            c = victim_new(t, v6);
            if (i < 2) {
                conn_set_opts(c, NULL, 0);
            }
            c->trailer = i == 0 ? 4 : i == 1 ? 6 : 1500;
            f[0] = seg(t, c, i == 1 ? 0 : 2);
            c->trailer = 0;
            segs(t, c, f + 1, 4, i < 2 ? 1460 : MSS);
            bad_now(t, bad, f[0]);
            expect_unit(t, f + 1, 4);
            expect_later(t);
            for (j = 1; j < 5; j++) {
                g_ptr_array_add(bad, f[j]);
            }
        }
        /* a 100- or 7000-byte trailer on the first or second segment */
        for (i = 0; i < 4; i++) {
            c = victim_new(t, v6);
            for (j = 0; j < 4; j++) {
                c->trailer = j != (i & 1) ? 0 : i < 2 ? 100 : 7000;
                f[j] = seg(t, c, MSS);
            }
            if (i == 2 && t->opts.mergeable) {
                /*
                 * The trailer fills mergeable buffers that the datagram
                 * does not need, and a unit could not hand them back:
                 * the segment is delivered alone, untouched.
                 */
                bad_now(t, bad, f[0]);
                expect_unit(t, f + 1, 3);
            } else {
                g_ptr_array_add(bad, f[0]);
                expect_unit(t, f, 4);
            }
            for (j = 1; j < 4; j++) {
                g_ptr_array_add(bad, f[j]);
            }
            expect_later(t);
        }
    }
    /* what corrupted the heap upstream, on many connections */
    for (i = 0; i < 16; i++) {
        c = victim_new(t, false);
        conn_set_opts(c, NULL, 0);
        c->trailer = 4;
        f[0] = seg(t, c, 2);
        c->trailer = 0;
        segs(t, c, f + 1, 3, 1460);
        bad_now(t, bad, f[0]);
        expect_unit(t, f + 1, 3);
        expect_later(t);
        for (j = 1; j < 4; j++) {
            g_ptr_array_add(bad, f[j]);
        }
    }
    hostile_burst_array(t, bad);
}

/*
 * Floods of 1-byte and of zero-payload segments: 2000 1-byte segments of
 * one connection and 20 of each of 48 more make one unit each; 500
 * window updates are absorbed by a held unit; 300 duplicate ACKs (the
 * first flushes the unit of their connection) and 200 pure ACKs of other
 * connections each come alone, at once.
 */
static void test_hostile_tiny_flood(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    g_autofree Frame **f = g_new(Frame *, 2000);
    Frame *g[48][20], *x;
    Conn *c, *m[48];
    unsigned i, j;

    c = victim_new(t, false);
    segs(t, c, f, 2000, 1);
    expect_unit(t, f, 2000);
    expect_later(t);
    for (i = 0; i < 2000; i++) {
        g_ptr_array_add(bad, f[i]);
    }

    for (i = 0; i < 48; i++) {
        m[i] = victim_new(t, i & 1);
    }
    for (j = 0; j < 20; j++) {
        for (i = 0; i < 48; i++) {
            g[i][j] = seg(t, m[i], 1);
            g_ptr_array_add(bad, g[i][j]);
        }
    }
    for (i = 0; i < 48; i++) {
        expect_unit(t, g[i], 20);
        expect_later(t);
    }

    c = victim_new(t, true);
    segs(t, c, f, 3, MSS);
    for (i = 3; i < 503; i++) {
        c->win = 1000 + i;
        f[i] = seg(t, c, 0);
    }
    expect_unit(t, f, 503);
    expect_later(t);
    for (i = 0; i < 503; i++) {
        g_ptr_array_add(bad, f[i]);
    }

    c = victim_new(t, false);
    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    for (i = 0; i < 3; i++) {
        g_ptr_array_add(bad, f[i]);
    }
    for (i = 0; i < 300; i++) {
        bad_now(t, bad, seg(t, c, 0));
    }

    for (i = 0; i < 200; i++) {
        x = seg(t, victim_new(t, i & 1), 0);
        bad_now(t, bad, x);
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "window-updates", ==, 500);
    assert_stat(t, "bypass-dup-ack", ==, 1);
}

/*
 * 1-byte segments fill a unit to the frame limit (65483 segments, the
 * count needs all 16 bits of csum_start); the next segment starts a new
 * unit.
 */
static void test_hostile_tiny_fill_unit(RscTest *t, const void *arg)
{
    enum { FULL = MAX_FRAME - ETH_HLEN - IP4_HLEN - TCP_HLEN - 12 };
    g_autofree Frame **f = g_new(Frame *, FULL + 3);
    Conn *c = conn_new(t, false);

    segs(t, c, f, FULL + 3, 1);
    expect_unit(t, f, FULL);
    send_frames(t, f, FULL + 3);
    check_now(t);
    assert_stat(t, "flush-full", ==, 1);
    expect_unit(t, f + FULL, 3);
    expire_and_check(t);
}

/*
 * Sequence, ACK and timestamp wrapping at 2^32 in the middle of a unit:
 * still one unit.  An older timestamp, an older ACK or retransmitted data
 * across the wrap ends it.
 */
static void test_hostile_wrap_mid_unit(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *f[4];
    unsigned i, j;

    /* wrap on a segment boundary, then inside a segment (IPv6) */
    for (i = 0; i < 2; i++) {
        c = victim_new(t, i);
        c->isn = i ? -500 : -2 * MSS;
        c->ack = -3000;
        c->tsval = -2;
        for (j = 0; j < 4; j++) {
            f[j] = seg(t, c, MSS);
            c->ack += 1000;
            c->tsval++;
            g_ptr_array_add(bad, f[j]);
        }
        expect_unit(t, f, 4);
        expect_later(t);
    }
    /* older TSval, older ACK, retransmission, each across the wrap */
    for (i = 0; i < 3; i++) {
        c = victim_new(t, i & 1);
        c->isn = -MSS;
        c->tsval = 5;
        c->ack = 3;
        segs(t, c, f, 2, MSS);
        if (i == 0) {
            c->tsval = -16;
        } else if (i == 1) {
            c->ack = -16;
        } else {
            c->next_off = 0;
        }
        segs(t, c, f + 2, 2, MSS);
        expect_unit(t, f, 2);
        expect_unit(t, f + 2, 2);
        expect_later(t);
        for (j = 0; j < 4; j++) {
            g_ptr_array_add(bad, f[j]);
        }
    }
    hostile_burst_array(t, bad);
}

/* A copy of @f with an 802.1Q tag, as a frame of no connection. */
static Frame *vlan_copy(RscTest *t, const Frame *f)
{
    g_autofree uint8_t *buf = g_malloc(f->len + 4);

    memcpy(buf, f->data, 12);
    stw_be_p(buf + 12, ETH_P_8021Q);
    stw_be_p(buf + 14, 7);
    memcpy(buf + 16, f->data + 12, f->len - 12);
    return raw_frame(t, buf, f->len + 4);
}

/*
 * 802.1Q and 802.1ad tagged frames, whole or cut short, runts of 1 to 13
 * bytes, and frames that end inside the IP header: delivered at once,
 * untouched.  A tagged copy of a segment does not disturb the untagged
 * unit of its connection.
 */
static void test_hostile_vlan_runt(RscTest *t, const void *arg)
{
    static const size_t cut[] = { 14, 15, 16, 17, 18, 19, 30, 38, 50, 58 };
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c, *tagged;
    Frame *f[3], *x;
    unsigned i, v6;

    for (v6 = 0; v6 < 2; v6++) {
        tagged = victim_new(t, v6);
        tagged->vlan = true;
        segs(t, tagged, f, 3, MSS);
        for (i = 0; i < 3; i++) {
            bad_now(t, bad, f[i]);
        }
        /* an 802.1ad tag */
        x = seg(t, tagged, MSS);
        stw_be_p(x->data + 12, 0x88a8);
        bad_now(t, bad, x);
        for (i = 0; i < ARRAY_SIZE(cut); i++) {
            bad_now(t, bad, raw_frame(t, x->data, cut[i]));
            bad_now(t, bad, raw_frame(t, f[0]->data, cut[i]));
        }
        /* untagged unit, tagged copy of its second segment in between */
        c = victim_new(t, v6);
        segs(t, c, f, 3, MSS);
        g_ptr_array_add(bad, f[0]);
        bad_now(t, bad, vlan_copy(t, f[1]));
        g_ptr_array_add(bad, f[1]);
        g_ptr_array_add(bad, f[2]);
        expect_unit(t, f, 3);
        expect_later(t);
    }
    x = seg(t, victim_new(t, false), MSS);
    for (i = 1; i < ETH_HLEN; i++) {
        bad_now(t, bad, raw_frame(t, x->data, i));
    }
    hostile_burst_array(t, bad);
}

/*
 * TCP/IP frames cut at every length up to one byte past their headers,
 * IPv4 and IPv6, with and without an 802.1Q tag: delivered at once,
 * untouched, never read past their end.
 */
static void test_hostile_truncated(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *x;
    unsigned i, k;

    for (k = 0; k < 4; k++) {
        c = victim_new(t, k & 1);
        c->vlan = k >= 2;
        x = seg(t, c, 100);
        for (i = 1; i <= x->hdr_len + 1; i++) {
            bad_now(t, bad, raw_frame(t, x->data, i));
        }
        hostile_burst_array(t, bad);
    }
}

/*
 * Bad TCP checksums (IPv4 and IPv6), bad IPv4 header checksums, both,
 * and a zero TCP checksum: each segment comes alone, untouched, even
 * several in a row of one connection; their good retransmissions merge.
 */
static void test_hostile_bad_checksums(RscTest *t, const void *arg)
{
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    unsigned i, k;
    Conn *c;
    Frame *f[3];

    for (k = 0; k < 5; k++) {
        c = victim_new(t, k == 1);
        c->bad_tcp_csum = k < 2 || k == 3;
        c->bad_ip_csum = k >= 2 && k < 4;
        segs(t, c, f, 3, MSS);
        for (i = 0; i < 3; i++) {
            if (k == 4) {
                g_assert_cmpuint(lduw_be_p(f[i]->data + f[i]->l4 + 16) %
                                 0xffff, !=, 0);
                stw_be_p(f[i]->data + f[i]->l4 + 16, 0);
            }
            bad_now(t, bad, f[i]);
        }
        c->bad_tcp_csum = c->bad_ip_csum = false;
        for (i = 0; i < 3; i++) {
            f[i] = tcp_frame(t, c, i * MSS, MSS);
            g_ptr_array_add(bad, f[i]);
        }
        expect_unit(t, f, 3);
        expect_later(t);
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "bypass-checksum", ==, 15);
}

/*
 * A frame of 0 bytes (a socket peer can send one) does not stall the
 * receive path: it is dropped or comes as an empty packet, and the
 * frames after it arrive.
 */
static void test_hostile_zero_length(RscTest *t, const void *arg)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    uint8_t none = 0;
    unsigned empty = 0;
    Frame *zero, *f[4];
    RscStream *s;

    segs(t, victim_new(t, false), f, 4, MSS);
    s = stream_new(t);
    zero = raw_frame(t, &none, 0);
    send1(t, zero);
    stream_send(t, s, f, 4);
    clock_step(t, RSC_INTERVAL);
    while (!stream_complete(s)) {
        RxPacket p;

        if (!rx_ready(t)) {
            if (g_get_monotonic_time() > deadline) {
                g_autoptr(QDict) st = rsc_stats(t);

                rsc_fail("%u of 4 frames after a 0-byte frame arrived: the "
                         "receive path is stalled (not-accepted %" PRIu64
                         ")", s->next[0], stats_get(st, "not-accepted"));
            }
            continue;
        }
        rx_pop(t, &p);
        if (p.len == 0 && !empty++) {
            rx_packet_free(&p);
            continue;
        }
        check_stream_packet(t, &p, s->frames, s->next);
        rx_packet_free(&p);
    }
    assert_idle(t, "the frames after the 0-byte frame were received");
    stream_free(s);
}

/* --- one connection, one shape: the rule tables ------------------------ */

/*
 * Most rules are checked by one connection that sends a few segments in
 * one burst, changed before each by a step function, and by what the
 * guest must get of them: the shape.  Each row of the table of tests that
 * names run_conn_case() is such a case (like the tests of the Linux
 * kernel's tools/testing/selftests/net/gro.c).
 */
typedef enum ConnShape {
    /* all segments make one unit, delivered by the timer */
    SHAPE_ONE_UNIT,
    /* every segment comes at once, untouched */
    SHAPE_UNTOUCHED,
    /*
     * the first @split segments make a unit that comes at once, flushed by
     * the next segment; the next @alone segments come alone, at once; the
     * rest make a unit that the timer delivers
     */
    SHAPE_FLUSH,
} ConnShape;

typedef struct RscStatWant {
    const char *name;
    uint64_t value;
} RscStatWant;

typedef struct ConnCase {
    ConnShape shape;
    bool v6;
    unsigned n;                 /* segments, 0: 4 */
    uint32_t plen;              /* payload of each segment, 0: MSS */
    const uint32_t *plens;      /* or of each one, @n of them */
    unsigned split, alone;      /* SHAPE_FLUSH */
    void (*step)(Conn *c, unsigned i);      /* before segment @i */
    void (*frame_fn)(Frame *f, unsigned i); /* on segment @i, built */
    RscStatWant stats[3];       /* counters once the first packets came */
} ConnCase;

#define PLENS(...) ((const uint32_t[]){ __VA_ARGS__ })

static void run_conn_case(RscTest *t, const void *arg)
{
    const ConnCase *k = arg;
    unsigned n = k->n ? k->n : 4, rest, i;
    g_autofree Frame **f = g_new(Frame *, n);
    Conn *c = conn_new(t, k->v6);

    for (i = 0; i < n; i++) {
        if (k->step) {
            k->step(c, i);
        }
        f[i] = seg(t, c, k->plens ? k->plens[i] : k->plen ? k->plen : MSS);
        if (k->frame_fn) {
            k->frame_fn(f[i], i);
        }
    }
    switch (k->shape) {
    case SHAPE_ONE_UNIT:
        expect_unit(t, f, n);
        send_hold_expire(t, f, n);
        break;
    case SHAPE_UNTOUCHED:
        expect_frames(t, f, n);
        send_frames(t, f, n);
        check_now(t);
        break;
    case SHAPE_FLUSH:
        g_assert_cmpuint(k->split + k->alone, <=, n);
        expect_unit(t, f, k->split);
        expect_frames(t, f + k->split, k->alone);
        send_frames(t, f, n);
        check_now(t);
        break;
    }
    for (i = 0; i < ARRAY_SIZE(k->stats) && k->stats[i].name; i++) {
        assert_stat(t, k->stats[i].name, ==, k->stats[i].value);
    }
    rest = n - k->split - k->alone;
    if (k->shape == SHAPE_FLUSH && rest) {
        expect_unit(t, f + n - rest, rest);
        expire_and_check(t);
    }
}

/*
 * merge: a segment shorter than the MSS is merged and ends the unit: the
 * unit is delivered at once.  The next segment starts a new unit.
 */
static const ConnCase case_short_segment = {
    SHAPE_FLUSH, .plens = PLENS(MSS, MSS, 700, MSS), .split = 3,
    .stats = { { "flush-short", 1 } },
};

/*
 * limit: a segment that would make the unit exceed the limit flushes it
 * (unit full) and starts a new unit.
 */
static const ConnCase case_limit_full_ipv4 = {
    SHAPE_FLUSH, .n = 67, .plen = 1000, .split = 65,
    .stats = { { "flush-full", 1 } },
};
static const ConnCase case_limit_full_ipv6 = {
    SHAPE_FLUSH, .v6 = true, .n = 67, .plen = 1000, .split = 65,
    .stats = { { "flush-full", 1 } },
};

/* exception: out-of-order data flushes the unit and starts a new one */
static void step_out_of_order(Conn *c, unsigned i)
{
    if (i == 2) {
        c->next_off += MSS;
    }
}

/* exception: retransmitted data flushes the unit and starts a new one */
static void step_retransmit(Conn *c, unsigned i)
{
    if (i == 3) {
        c->next_off = MSS;
    }
}

/*
 * exception: a TCP option other than timestamps flushes the unit; that
 * segment is not mergeable and comes alone; the next one starts a new
 * unit.
 */
static void step_tcp_option(Conn *c, unsigned i)
{
    static const uint8_t sack[] = {
        1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 1, 1, 8, 10,
        0, 0, 0, 0, 0, 0, 0, 0,
    };

    if (i == 3) {
        conn_set_opts(c, sack, sizeof(sack));
    } else if (i == 4) {
        conn_set_opts(c, rsc_seg_ts_opts, sizeof(rsc_seg_ts_opts));
    }
}

/*
 * exception: CWR on one segment flushes the unit before it, and the
 * segment after it (CWR clear again) flushes the unit it started.
 */
static void step_cwr(Conn *c, unsigned i)
{
    c->flags = i == 2 ? TCP_ACK | TCP_CWR : TCP_ACK;
}

/*
 * exception: a segment with a bad TCP (or IPv4 header) checksum is never
 * merged: it flushes the unit and is delivered alone, untouched; the next
 * segment starts a new unit.
 */
static void step_bad_tcp_csum(Conn *c, unsigned i)
{
    c->bad_tcp_csum = i == 2;
}

static void step_bad_ip_csum(Conn *c, unsigned i)
{
    c->bad_ip_csum = i == 2;
}

/*
 * merge: the timestamp option; the unit carries TSval and TSecr of the
 * latest segment
 */
static void step_timestamps(Conn *c, unsigned i)
{
    c->tsval += i & 1;
    c->tsecr += 3;
}

/* merge: the timestamp option followed by two NOPs of padding */
static void step_timestamps_padded(Conn *c, unsigned i)
{
    static const uint8_t opts[] = { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 };

    if (i == 0) {
        conn_set_opts(c, opts, sizeof(opts));
    }
    c->tsval++;
}

/* merge: TSval is compared modulo 2^32, a wrapped TSval is newer */
static void step_timestamp_wrap(Conn *c, unsigned i)
{
    static const uint32_t tsval[] = { 0xfffffff0u, 0xffffffffu, 5 };

    c->tsval = tsval[i];
}

/* merge: sequence numbers are contiguous modulo 2^32 */
static void step_seq_wrap(Conn *c, unsigned i)
{
    if (i == 0) {
        c->isn = 0xffffffffu - 2000;
    }
}

/* merge: an ACK number that stays or advances (modulo 2^32) */
static void step_ack_advancing(Conn *c, unsigned i)
{
    static const uint32_t ack[] = {
        0xfffff000u, 0xfffff900u, 0xfffff900u, 0x00000200u, 0x00000b00u,
    };

    c->ack = ack[i];
}

/* merge: the window may change; the unit carries the latest window */
static void step_window_change(Conn *c, unsigned i)
{
    static const uint16_t win[] = { 502, 1000, 300, 65535, 777 };

    c->win = win[i];
}

/*
 * merge: PSH of any merged segment is set in the unit, PSH does not end
 * it
 */
static void step_psh(Conn *c, unsigned i)
{
    c->flags = i == 1 ? TCP_ACK | TCP_PSH : TCP_ACK;
}

/*
 * merge: the unit carries the minimum TTL (and the IPv4 ID of the first
 * segment) or the minimum hop limit
 */
static void step_min_ttl(Conn *c, unsigned i)
{
    static const uint8_t ttl[] = { 64, 60, 62, 61 };

    c->ttl = ttl[i];
}

/* merge: a flow with DF clear (DF equal to the unit's) */
static void step_df_clear(Conn *c, unsigned i)
{
    c->df = false;
}

/* merge: equal ECE flags; the unit keeps ECE */
static void step_ece(Conn *c, unsigned i)
{
    c->flags = TCP_ACK | TCP_ECE;
}

/* hdr: a padded segment held alone is delivered with its padding */
static void step_single_padded(Conn *c, unsigned i)
{
    conn_set_opts(c, NULL, 0);
    c->trailer = 4;
}

/*
 * hdr: the segment count (csum_start) and the other vnet header fields
 * are little endian: a unit of 300 segments needs both bytes.
 */
static const ConnCase case_segment_count_le = {
    SHAPE_ONE_UNIT, .n = 300, .plen = 200,
    .stats = { { "segments-merged", 299 } },
};

/* bypass: TCP in an 802.1Q frame is not Ethernet II + IP */
static void step_vlan(Conn *c, unsigned i)
{
    c->vlan = true;
}

/* bypass: IPv4 with options (IHL > 5) */
static void step_ipv4_options(Conn *c, unsigned i)
{
    c->ip_opts_len = 8;
}

/* bypass: IPv6 with an extension header */
static void step_ipv6_ext_header(Conn *c, unsigned i)
{
    c->hbh = true;
}

/*
 * bypass: IPv4 fragments (MF set, or an offset), with DF clear or set.
 * Their TCP checksum is computed as if they were whole, so only the
 * fragment fields make them ineligible.
 */
static void step_ipv4_fragment(Conn *c, unsigned i)
{
    static const uint16_t frag[] = { IP_MF, IP_MF, IP_MF, 185 };

    c->df = i == 2;
    c->frag = frag[i];
}

/* exception: an older TSval */
static void step_timestamp_older(Conn *c, unsigned i)
{
    c->tsval = i < 2 ? 1000 : 999;
}

/* exception: an ACK number going backwards */
static void step_ack_older(Conn *c, unsigned i)
{
    if (i == 2) {
        c->ack -= 100;
    }
}

/*
 * exception: options that differ in layout (the timestamp option
 * appears)
 */
static void step_option_layout(Conn *c, unsigned i)
{
    if (i == 0) {
        conn_set_opts(c, NULL, 0);
    } else if (i == 2) {
        conn_set_opts(c, rsc_seg_ts_opts, sizeof(rsc_seg_ts_opts));
    }
}

/* exception: a change of the IP ECN codepoint */
static void step_ecn_change(Conn *c, unsigned i)
{
    c->tos = i < 2 ? ECN_ECT0 : ECN_CE;
}

/* exception: a change of ECE */
static void step_ece_change(Conn *c, unsigned i)
{
    c->flags = i < 2 ? TCP_ACK : TCP_ACK | TCP_ECE;
}

/* exception: a change of DF */
static void step_df_change(Conn *c, unsigned i)
{
    c->df = i < 2;
}

/* exception: a change of the IPv6 traffic class */
static void step_traffic_class(Conn *c, unsigned i)
{
    c->tos = i < 2 ? 0 : 0x20;
}

/*
 * pure-ack: a pure ACK with the same ACK number and a new window is
 * absorbed as a window update: no packet of its own, the unit takes the
 * new window.
 */
static void step_window_update(Conn *c, unsigned i)
{
    if (i == 3) {
        c->win = 4000;
    }
}

/* exception: a change of the IPv6 flow label */
static void step_flow_label(Conn *c, unsigned i)
{
    c->flow = i < 2 ? 0x12345 : 0x54321;
}

/* exception: FIN flushes the unit; the FIN segment comes alone */
static void step_fin(Conn *c, unsigned i)
{
    c->flags = i < 3 ? TCP_ACK : TCP_ACK | TCP_FIN | TCP_PSH;
}

/* exception: RST flushes the unit; the RST segment comes alone */
static void step_rst(Conn *c, unsigned i)
{
    c->flags = i < 3 ? TCP_ACK : TCP_ACK | TCP_RST;
}

/* exception: URG flushes the unit; the URG segment comes alone */
static void step_urg(Conn *c, unsigned i)
{
    c->flags = i < 3 ? TCP_ACK : TCP_ACK | TCP_URG;
    c->urg = i < 3 ? 0 : 10;
}

/* exception: the NS/AE bit is a flag outside ACK/PSH */
static void step_ns(Conn *c, unsigned i)
{
    c->ns = i == 3;
}

/*
 * pure-ack: any pure ACK but a window update or a duplicate ACK flushes
 * the unit and comes alone
 */
static void step_ack_advance_last(Conn *c, unsigned i)
{
    if (i == 3) {
        c->ack += 1000;
    }
}

/*
 * gso: a GSO packet of a connection with a unit held (the last segment,
 * 4 * MSS) comes after the unit
 */
static void last_gso(Frame *f, unsigned i)
{
    if (i == 3) {
        frame_gso(f, MSS);
    }
}

#define FLAG_STATS { { "bypass-tcp-flags", 1 }, { "flush-exception", 1 } }
#define EXC_STATS { { "flush-exception", 1 } }
#define CSUM_STATS { { "bypass-checksum", 1 } }

static const ConnCase case_merge_ipv4 = {
    SHAPE_ONE_UNIT, .stats = {
        { "segments-received", 4 }, { "units-delivered", 1 },
        { "flush-timer", 1 } },
};
static const ConnCase case_merge_ipv6 = {
    SHAPE_ONE_UNIT, .v6 = true, .stats = {
        { "segments-received", 4 }, { "units-delivered", 1 },
        { "flush-timer", 1 } },
};

/* --- registration -------------------------------------------------------- */

enum {
    MRG = 1,            /* also with mergeable rx buffers */
    TAP = 2,            /* also through the tap backend */
    TAP_ONLY = 4,       /* only through the tap backend */
    GRO = 8,            /* needs the DATA_VALID path (bridge, NAPI tap) */
    MRG_ONLY = 16,      /* only with mergeable rx buffers (of opts.buf_size) */
};

typedef struct RscTestCase {
    const char *name;
    void (*fn)(RscTest *t, const void *arg);
    unsigned variants;
    const void *arg;            /* for @fn */
    RscOpts opts;               /* besides the variant's buffers, backend */
} RscTestCase;

/* A case of the one-connection table: the shape, then the fields. */
#define CONN(shape, ...) (&(const ConnCase){ shape, __VA_ARGS__ })

static const bool ipv4 = false, ipv6 = true;

static const RscTestCase rsc_tests[] = {
    { "merge/ipv4", run_conn_case, MRG | TAP, &case_merge_ipv4 },
    { "merge/ipv6", run_conn_case, MRG | TAP, &case_merge_ipv6 },
    { "merge/no-options", test_merge_no_options, 0 },
    { "merge/timestamps", run_conn_case, MRG | TAP,
      CONN(SHAPE_ONE_UNIT, .n = 5, .step = step_timestamps) },
    { "merge/timestamps-padded", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .v6 = true, .step = step_timestamps_padded) },
    { "merge/timestamp-wrap", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .n = 3, .step = step_timestamp_wrap) },
    { "merge/seq-wrap", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .step = step_seq_wrap) },
    { "merge/ack-advancing", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .n = 5, .step = step_ack_advancing) },
    { "merge/window-change", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .v6 = true, .n = 5, .step = step_window_change) },
    { "merge/psh", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .step = step_psh) },
    { "merge/ttl-minimum", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .step = step_min_ttl) },
    { "merge/hop-limit-minimum", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .v6 = true, .step = step_min_ttl) },
    { "merge/df-clear", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .step = step_df_clear) },
    { "merge/ecn-equal", test_merge_ecn_equal, 0 },
    { "merge/ece-equal", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .n = 3, .step = step_ece) },
    { "merge/short-segment", run_conn_case, MRG | TAP, &case_short_segment },
    { "merge/larger-than-mss", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .v6 = true, .plens = PLENS(1000, 1000, MSS, MSS),
           .split = 2) },
    { "merge/padding-not-copied", test_merge_padding_not_copied, MRG | TAP },
    { "hdr/single-untouched", test_hdr_single_untouched, MRG | TAP },
    { "hdr/single-padded", run_conn_case, 0,
      CONN(SHAPE_ONE_UNIT, .n = 1, .plen = 2, .step = step_single_padded) },
    { "hdr/segment-count-le", run_conn_case, MRG | TAP,
      &case_segment_count_le },
    { "limit/ipv4-exact", test_limit_exact, MRG | TAP, &ipv4 },
    { "limit/ipv4-full", run_conn_case, MRG, &case_limit_full_ipv4 },
    { "limit/ipv6-exact", test_limit_exact, MRG, &ipv6 },
    { "limit/ipv6-full", run_conn_case, MRG | TAP, &case_limit_full_ipv6 },
    { "limit/guest-buffer", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .n = 13, .split = 11), { .buf_size = 16384 } },
    { "limit/small-buffers", test_limit_small_buffers, 0, NULL,
      { .buf_size = 1526 + VNET_HDR_LEN } },
    { "exception/fin", run_conn_case, TAP,
      CONN(SHAPE_FLUSH, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, 100), .step = step_fin,
           .stats = FLAG_STATS) },
    { "exception/rst", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, 0), .step = step_rst,
           .stats = FLAG_STATS) },
    { "exception/urg", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, MSS), .step = step_urg,
           .stats = FLAG_STATS) },
    { "exception/other-flag", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, MSS), .step = step_ns) },
    { "exception/syn", test_exception_syn, 0 },
    { "exception/out-of-order", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .step = step_out_of_order) },
    { "exception/retransmit", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .v6 = true, .split = 3, .step = step_retransmit) },
    { "exception/timestamp-older", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .step = step_timestamp_older) },
    { "exception/ack-older", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .step = step_ack_older) },
    { "exception/tcp-option", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .n = 5, .split = 3, .alone = 1,
           .step = step_tcp_option,
           .stats = { { "bypass-tcp-options", 1 } }) },
    { "exception/option-layout", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .step = step_option_layout) },
    { "exception/ecn-change", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .step = step_ecn_change) },
    { "exception/ece-change", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .v6 = true, .step = step_ece_change) },
    { "exception/cwr-change", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .alone = 1, .step = step_cwr) },
    { "exception/df-change", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .step = step_df_change) },
    { "exception/traffic-class", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .v6 = true, .step = step_traffic_class) },
    { "exception/flow-label", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 2, .stats = EXC_STATS,
           .v6 = true, .step = step_flow_label) },
    { "exception/bad-checksum", run_conn_case, MRG | TAP,
      CONN(SHAPE_FLUSH, .n = 5, .split = 2, .alone = 1,
           .step = step_bad_tcp_csum, .stats = CSUM_STATS) },
    /*
     * Buffers of an odd size: payloads, checked for their checksum (no
     * vnet header), are split at odd offsets.
     */
    { "exception/bad-checksum-odd-buffers", run_conn_case, MRG_ONLY,
      CONN(SHAPE_FLUSH, .n = 5, .split = 2, .alone = 1,
           .step = step_bad_tcp_csum, .stats = CSUM_STATS),
      { .buf_size = 1001 } },
    { "merge/odd-buffers", run_conn_case, MRG_ONLY,
      CONN(SHAPE_ONE_UNIT, .v6 = true, .n = 6), { .buf_size = 1001 } },
    { "exception/bad-checksum-ipv6", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .v6 = true, .n = 5, .split = 2, .alone = 1,
           .step = step_bad_tcp_csum, .stats = CSUM_STATS) },
    { "exception/ip-header-checksum", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .n = 5, .split = 2, .alone = 1,
           .step = step_bad_ip_csum, .stats = CSUM_STATS) },
    { "pure-ack/window-update", run_conn_case, MRG | TAP,
      CONN(SHAPE_ONE_UNIT, .plens = PLENS(MSS, MSS, MSS, 0),
           .step = step_window_update,
           .stats = { { "window-updates", 1 } }) },
    { "pure-ack/duplicate", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .v6 = true, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, 0),
           .stats = { { "bypass-dup-ack", 1 } }) },
    { "pure-ack/advancing", run_conn_case, 0,
      CONN(SHAPE_FLUSH, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, 0),
           .step = step_ack_advance_last) },
    { "pure-ack/no-unit", test_pure_ack_no_unit, 0 },
    { "bypass/not-tcpip", test_bypass_not_tcpip, 0 },
    { "bypass/vlan", run_conn_case, 0,
      CONN(SHAPE_UNTOUCHED, .n = 3, .step = step_vlan) },
    { "bypass/ipv4-options", run_conn_case, 0,
      CONN(SHAPE_UNTOUCHED, .n = 3, .step = step_ipv4_options,
           .stats = { { "bypass-ip-options", 3 } }) },
    { "bypass/ipv4-fragment", run_conn_case, TAP,
      CONN(SHAPE_UNTOUCHED, .step = step_ipv4_fragment,
           .stats = { { "bypass-fragment", 4 } }) },
    { "bypass/ipv6-ext-header", run_conn_case, 0,
      CONN(SHAPE_UNTOUCHED, .v6 = true, .n = 3, .step = step_ipv6_ext_header,
           .stats = { { "bypass-ip-options", 3 } }) },
    { "bypass/malformed", test_bypass_malformed, MRG },
    { "order/ip-options-after-unit", test_order_after_unit, 0,
      &(const OrderCase){ spoil_ip_options, true } },
    { "order/fragment-after-unit", test_order_after_unit, 0,
      &(const OrderCase){ spoil_fragment, true } },
    { "order/malformed-after-unit", test_order_after_unit, 0,
      &(const OrderCase){ spoil_data_offset, true } },
    { "order/other-flows-unaffected", test_order_after_unit, 0,
      &(const OrderCase){ spoil_fin, false } },
    { "timer/interval", test_timer_interval, MRG | TAP },
    { "timer/gaps", test_timer_gaps, 0 },
    { "timer/default-interval", test_timer_default_interval, 0, NULL,
      { .default_interval = true } },
    { "burst/end", test_burst_end, MRG, NULL, { .burst = true } },
    { "burst/single", test_burst_single, 0, NULL, { .burst = true } },
    { "flows/interleaved-64", test_flows_interleaved, MRG | TAP },
    { "flows/evict-oldest", test_flows_evict_oldest, 0, NULL,
      { .max_flows = 4 } },
    { "flows/table-bounded", test_flows_table_bounded, 0 },
    { "flows/ipv4-ipv6-same-ports", test_flows_ipv4_ipv6_same_ports, 0 },
    { "flows/memory-bounded", test_flows_memory_bounded, 0, NULL,
      { .interval = UINT32_MAX, .buf_size = 512 } },
    { "ctrl/rsc-ext-accepted", test_ctrl_rsc_ext_accepted, 0 },
    { "ctrl/rsc-ext-not-negotiated", test_ctrl_rsc_ext_not_negotiated, 0,
      NULL, { .no_rsc_ext = true } },
    { "ctrl/offloads-toggle", test_ctrl_offloads_toggle, TAP },
    { "ctrl/tso4-off", test_ctrl_tso4_off, 0 },
    { "ctrl/invalid-no-change", test_ctrl_invalid_no_change, 0 },
    { "flush/vm-stop", test_flush_vm_stop, 0 },
    { "flush/link-down", test_flush_link_down, 0 },
    { "flush/reset", test_flush_reset, 0 },
    { "lifecycle/migration", test_lifecycle_migration, MRG },
    { "lifecycle/timer-race", test_lifecycle_race, MRG | TAP, NULL,
      { .nbufs = 16 } },
    { "lifecycle/burst-race", test_lifecycle_race, MRG, NULL,
      { .nbufs = 16, .burst = true } },
    { "lossless/ring-pressure", test_lossless, MRG | TAP,
      &(const LosslessCase){ .nconn = 4, .nseg = 12 }, { .nbufs = 8 } },
    { "lossless/ring-exhausted", test_lossless, MRG,
      &(const LosslessCase){ .nconn = 3, .nseg = 4 }, { .nbufs = 2 } },
    { "stats/counters", test_stats_counters, 0 },
    { "hostile/tcp-options", test_hostile_tcp_options, 0 },
    { "hostile/ip-length", test_hostile_ip_length, MRG | TAP },
    { "hostile/ihl", test_hostile_ihl, 0 },
    { "hostile/data-offset", test_hostile_data_offset, 0 },
    { "hostile/trailer-then-full", test_hostile_trailer_then_full,
      MRG | TAP },
    { "hostile/tiny-flood", test_hostile_tiny_flood, MRG },
    { "hostile/tiny-fill-unit", test_hostile_tiny_fill_unit, MRG },
    { "hostile/wrap-mid-unit", test_hostile_wrap_mid_unit, 0 },
    { "hostile/vlan-runt", test_hostile_vlan_runt, 0 },
    { "hostile/truncated", test_hostile_truncated, 0 },
    { "hostile/zero-length", test_hostile_zero_length, 0 },
    { "hostile/bad-checksums", test_hostile_bad_checksums, TAP },
    { "needs-csum/merge", test_tap_needs_csum_merge, TAP_ONLY | MRG },
    { "needs-csum/single-untouched", test_tap_needs_csum_single, TAP_ONLY },
    { "gso/passthrough", test_tap_gso_passthrough, TAP_ONLY | MRG },
    { "gso/after-unit", run_conn_case, TAP_ONLY,
      CONN(SHAPE_FLUSH, .v6 = true, .split = 3, .alone = 1,
           .plens = PLENS(MSS, MSS, MSS, 4 * MSS),
           .frame_fn = last_gso) },
    { "data-valid/merge", test_tap_data_valid_merge, TAP_ONLY | GRO | MRG },
    { "data-valid/single-untouched", test_tap_data_valid_single,
      TAP_ONLY | GRO },
};

/* One registered test: a case and the variant it runs in. */
typedef struct RscRun {
    const RscTestCase *tc;
    RscOpts opts;
} RscRun;

/* The fixture: QEMU and the guest driver, set up as the case says. */
static void rsc_setup(RscTest *t, const void *data)
{
    const RscRun *r = data;

    rsc_init(t, &r->opts);
}

static void rsc_run(RscTest *t, const void *data)
{
    const RscRun *r = data;

    r->tc->fn(t, r->tc->arg);
}

static void rsc_teardown(RscTest *t, const void *data)
{
    rsc_fini(t);
}

static void test_skip(const void *reason)
{
    g_test_skip(reason);
}

static void add_test(const char *prefix, const RscTestCase *tc, bool mrg,
                     bool tap)
{
    g_autofree char *path = g_strdup_printf("/%s/virtio-net-rsc/%s%s",
                                            qtest_get_arch(), prefix,
                                            tc->name);
    RscRun *r;

    if (tap && tap_unavailable) {
        g_test_add_data_func(path, tap_unavailable, test_skip);
        return;
    }
    if ((tc->variants & GRO) && gro_unavailable) {
        g_test_add_data_func(path, gro_unavailable, test_skip);
        return;
    }
    /* kept until the tests have run */
    r = g_new0(RscRun, 1);
    r->tc = tc;
    r->opts = tc->opts;
    r->opts.mergeable = mrg;
    r->opts.tap = tap;
    g_test_add(path, RscTest, r, rsc_setup, rsc_run, rsc_teardown);
}

int main(int argc, char **argv)
{
    unsigned i;

    /* before anything can start a thread */
    tap_netns_setup();
    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < ARRAY_SIZE(rsc_tests); i++) {
        const RscTestCase *tc = &rsc_tests[i];

        if (tc->variants & MRG_ONLY) {
            add_test("mergeable/", tc, true, false);
        } else if (!(tc->variants & TAP_ONLY)) {
            add_test("", tc, false, false);
            if (tc->variants & MRG) {
                add_test("mergeable/", tc, true, false);
            }
        }
        if (tc->variants & (TAP | TAP_ONLY)) {
            add_test("tap/", tc, false, true);
            if (tc->variants & MRG) {
                add_test("tap/mergeable/", tc, true, true);
            }
        }
    }
    return g_test_run();
}
