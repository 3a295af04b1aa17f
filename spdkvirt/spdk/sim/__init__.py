"""spdkvirt-sim: a process that serves SPDK v26.05's JSON-RPC for the subset spdkvirt uses.

It follows transcripts recorded from a real spdk_tgt (tests/data/spdk-reference). It keeps no
state beyond what SPDK keeps: memory, plus the metadata that SPDK itself writes into aio files.
"""
