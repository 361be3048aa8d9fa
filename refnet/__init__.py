"""The reference network: a runnable, fault-injectable implementation of the TR 23.701 flow.

It never imports the harness (`conformance`), not even its codecs: SIP is read and written by its
own `refnet.sip`, so a codec defect on either side shows up on the wire instead of being shared
(tests/unit/test_refnet_independence.py keeps it so). The harness reaches it only over the wire;
the only other link is `refnet.launcher`, which starts and stops it as subprocesses.
"""
