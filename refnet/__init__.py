"""The reference network: a runnable, fault-injectable implementation of the TR 23.701 flow.

It never imports the harness (`conformance`) except the sans-IO codecs in `conformance.codec`,
which it shares on purpose (issue 3 allows one codec package). The harness reaches it only over
the wire; the only other link is `refnet.launcher`, which starts and stops it as subprocesses.
"""
