"""Benchmarks that print ratios against anchors measured in the same run.

``python -m bench`` runs every module below (each exposes ``main()``); run one
with ``python -m bench.<name>``. Nothing here is asserted by the test suite.
"""
