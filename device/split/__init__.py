"""Split mode (seed 003): the palm feature and the match computed on additive shares in
Z_2^64 by two nodes, so that no single node holds the palm image, the feature model or a
template. See README, "Split mode".

    ring.py       fixed point in Z_2^64, sharing, AES-CTR PRG
    cellnet.py    the shipped cell feature as layers (im2col, scales, plaintext reference)
    dealer.py     trusted dealer: model shards, Beaver triples, gallery masks, link keys
    protocol.py   the node's computation, layer by layer, with its peer
    transport.py  AES-GCM sequenced channel over TCP/Unix sockets or pyserial
    local.py      both nodes in one process (tests, correctness runs)
    node.py       the node program (``palmgate node``) and the terminal client
    bench.py      split_bench: two node processes, latency / rounds / bytes / cosine
    leakage.py    uniformity of the transcript, least-squares input reconstruction
"""
