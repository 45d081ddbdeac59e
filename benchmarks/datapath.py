"""
Micro-benchmark of the relay data path, in process, without sockets: the per-datagram cost of
ListenerProtocol (client ChannelData to a peer) and RelayProtocol (peer data to a client as
ChannelData or as a Data indication), against a bare forwarder that does only a dictionary
lookup and a write (the floor any Python relay pays).

Run:  PYTHONPATH=. python benchmarks/datapath.py [--datagrams N] [--rounds R] [--max-bps B]

Variants alternate within each round, so the printed ratios compare runs taken side by side on
a noisy machine. Writes go to a transport whose write() does nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from twisted_turn.allocation import FiveTuple
from twisted_turn.stun.attributes import ChannelNumber, Data, RequestedTransport, XorPeerAddress
from twisted_turn.stun.channeldata import encodeChannelData
from twisted_turn.stun.message import (
    MessageClass,
    Method,
    encodeDataIndication,
    encodeMessage,
)
from twisted_turn.testing import ServerFixture

PEER = ("8.8.8.8", 6000)
PAYLOAD = b"x" * 120


class NullTransport:
    def write(self, data, addr):
        pass


def setUp(maxBps=0):
    fixture = ServerFixture()
    client = fixture.client()
    client.request(Method.ALLOCATE, [RequestedTransport(17)])
    host, port = client.address
    allocation = fixture.server.table.get(FiveTuple(host, port, "198.51.100.1", 3478))
    client.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
    client.request(Method.CREATE_PERMISSION, [XorPeerAddress("8.8.4.4", 1)])
    client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
    relay = fixture.relayFactory.open[allocation.relayAddress]
    allocation.relay = NullTransport()
    allocation.channels[0x4000].relay = allocation.relay
    allocation.clientTransport = NullTransport()
    if maxBps:
        # A limit far above what the loop offers: the bucket is spent from on every datagram
        # (the common case: one comparison, one subtraction) and never runs dry.
        fixture.server.setBandwidth(maxBps, 0)
    return fixture, client, relay


def timeIt(function, datagram, addr, count):
    start = time.perf_counter()
    for _ in range(count):
        function(datagram, addr)
    return (time.perf_counter() - start) / count * 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--datagrams", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-bps", type=int, default=0,
                        help="give the allocation this bandwidth limit (bytes a second)")
    options = parser.parse_args()

    fixture, client, relay = setUp(options.max_bps)
    table = {client.address: (NullTransport(), PEER)}

    def bare(data, addr):
        transport, peer = table[addr]
        transport.write(data[4:], peer)

    transactionId = b"t" * 12

    def genericEncoder(data, addr):
        encodeMessage(
            Method.DATA, MessageClass.INDICATION, transactionId,
            [XorPeerAddress(*addr), Data(data)],
        )

    def fastEncoder(data, addr):
        encodeDataIndication(transactionId, addr[0], addr[1], data)

    channelData = encodeChannelData(0x4000, PAYLOAD)
    sendIndication = encodeMessage(
        Method.SEND, MessageClass.INDICATION, transactionId, [XorPeerAddress(*PEER), Data(PAYLOAD)]
    )
    listener = fixture.listener

    def fullDecodeSend(data, addr):
        listener._server.handleStun(data, listener.transport, addr, listener.serverAddress)
    variants = {
        "bare lookup+write": (bare, channelData, client.address),
        "uplink ChannelData": (fixture.listener.datagramReceived, channelData, client.address),
        "uplink Send (fast path)": (listener.datagramReceived, sendIndication, client.address),
        "uplink Send (full decode)": (fullDecodeSend, sendIndication, client.address),
        "downlink ChannelData": (relay.datagramReceived, PAYLOAD, PEER),
        "downlink Data indication": (relay.datagramReceived, PAYLOAD, ("8.8.4.4", 1)),
        "encode: encodeMessage": (genericEncoder, PAYLOAD, PEER),
        "encode: encodeDataIndication": (fastEncoder, PAYLOAD, PEER),
    }
    results = {name: [] for name in variants}
    for function, datagram, addr in variants.values():
        timeIt(function, datagram, addr, options.datagrams // 10)  # warm-up
    for _ in range(options.rounds):
        for name, (function, datagram, addr) in variants.items():
            results[name].append(timeIt(function, datagram, addr, options.datagrams))
    # Every variant must have relayed, not dropped: a drop would be a cheaper, wrong path.
    drops = {k: v for k, v in fixture.server.counters.items() if k.startswith("drop")}
    assert not drops, drops
    base = statistics.median(results["bare lookup+write"])
    print(f"{'variant':30} {'median ns':>10} {'min':>8} {'max':>8} {'x bare':>7}")
    for name, samples in results.items():
        median = statistics.median(samples)
        print(
            f"{name:30} {median:10.0f} {min(samples):8.0f} {max(samples):8.0f} "
            f"{median / base:7.2f}"
        )


if __name__ == "__main__":
    main()
